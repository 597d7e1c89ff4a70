// Key, Value and Entry: the byte-level data model shared by the keyspace, commands and persistence.

/// A key: arbitrary bytes. Two keys are equal only if their bytes are equal (no Unicode folding).
///
/// Keys of up to `Key.inlineCapacity` (22) bytes, nearly all real keys (`counter:000000012345`
/// is 20), live inline in the 24-byte value: building one from request bytes does not allocate,
/// and a table slot needs no separate heap buffer (about 50 bytes per key saved). Longer keys
/// use an array. The form depends only on the length, so equal keys always share a form.
public struct Key: Hashable, Sendable {
    /// The most bytes stored inline.
    public static let inlineCapacity = 22

    @usableFromInline var storage: KeyStorage

    /// Wraps `bytes`.
    @inlinable public init(_ bytes: [UInt8]) {
        if bytes.count <= Key.inlineCapacity {
            storage = bytes.withUnsafeBytes { .small(SmallKeyBytes($0)) }
        } else {
            storage = .large(bytes)
        }
    }

    /// Copies the bytes of a slice (an argument of a request); allocates only for long keys.
    @inlinable public init(_ slice: ArraySlice<UInt8>) {
        if slice.count <= Key.inlineCapacity {
            storage = slice.withUnsafeBytes { .small(SmallKeyBytes($0)) }
        } else {
            storage = .large(Array(slice))
        }
    }

    /// Copies raw bytes.
    @inlinable public init(_ raw: UnsafeRawBufferPointer) {
        if raw.count <= Key.inlineCapacity {
            storage = .small(SmallKeyBytes(raw))
        } else {
            storage = .large(Array(raw))
        }
    }

    /// The key's bytes (a new array for an inline key: prefer `withUnsafeBytes` on hot paths).
    public var bytes: [UInt8] {
        get {
            switch storage {
            case .small: return withUnsafeBytes { Array($0) }
            case .large(let array): return array
            }
        }
        set { self = Key(newValue) }
    }

    /// Number of bytes.
    @inlinable public var count: Int {
        switch storage {
        case .small(let small): return Int(small.count)
        case .large(let array): return array.count
        }
    }

    /// Calls `body` with the key's bytes, without copying them into an array.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch storage {
        case .small(var small):
            let count = Int(small.count)
            // `small` is a local copy, so its address is stable for the duration of the call.
            return try Swift.withUnsafeBytes(of: &small) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        case .large(let array):
            return try array.withUnsafeBytes(body)
        }
    }

    @inlinable public func hash(into hasher: inout Hasher) {
        switch storage {
        case .small(let small):
            hasher.combine(small.word0)
            hasher.combine(small.word1)
            hasher.combine(UInt64(small.word2) | UInt64(small.word3) << 32 | UInt64(small.count) << 48)
        case .large(let array):
            array.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    /// What hashed collections call: for an inline key, a wyhash-style fold of its three words
    /// with the table's seed and a per-process random secret (~20 instructions), instead of
    /// SipHash through `Hasher` (~280 instructions under callgrind, 2 per INCR of a new key).
    /// The random secret keeps bucket positions unpredictable to clients, as `Hasher` does.
    @inlinable public func _rawHashValue(seed: Int) -> Int {
        switch storage {
        case .small(let small):
            let secret = keyHashSecret
            let tail = UInt64(small.word2) | UInt64(small.word3) << 32 | UInt64(small.count) << 48
            let first = keyHashFold(small.word0 ^ secret ^ 0xa076_1d64_78bd_642f,
                                    small.word1 ^ UInt64(UInt(bitPattern: seed)) ^ 0xe703_7ed1_a0b4_28db)
            return Int(truncatingIfNeeded: keyHashFold(first ^ tail ^ 0x8ebc_6af0_9c88_c6e3,
                                                       secret ^ 0x5899_65cc_7537_4cc3))
        case .large:
            var hasher = Hasher()
            hasher.combine(seed)
            hash(into: &hasher)
            return hasher.finalize()
        }
    }

    @inlinable public static func == (lhs: Key, rhs: Key) -> Bool {
        switch (lhs.storage, rhs.storage) {
        case (.small(let left), .small(let right)):
            return left.word0 == right.word0 && left.word1 == right.word1 && left.word2 == right.word2
                && left.word3 == right.word3 && left.count == right.count
        case (.large(let left), .large(let right)):
            return left == right
        default:
            return false
        }
    }
}

/// Random per process, so clients cannot choose keys that collide in the tables.
@usableFromInline let keyHashSecret: UInt64 = {
    var generator = SystemRandomNumberGenerator()
    return generator.next() | 1
}()

/// The 64×64→128-bit multiply folded to 64 bits (wyhash's mixing step).
@inlinable @inline(__always)
func keyHashFold(_ left: UInt64, _ right: UInt64) -> UInt64 {
    let product = left.multipliedFullWidth(by: right)
    return product.high ^ product.low
}

/// A key's two forms (see `Key`). 24 bytes: a 23-byte inline payload plus the case tag.
@usableFromInline
enum KeyStorage: Sendable {
    case small(SmallKeyBytes)
    case large([UInt8])
}

/// Up to 22 key bytes, zero-padded (so word comparison is byte comparison), and their count.
/// The fields are laid out in order with no padding (8 + 8 + 4 + 2 + 1 = 23 bytes), so the
/// first 22 bytes of its memory are the key bytes.
@usableFromInline
struct SmallKeyBytes: Sendable {
    @usableFromInline var word0: UInt64 = 0
    @usableFromInline var word1: UInt64 = 0
    @usableFromInline var word2: UInt32 = 0
    @usableFromInline var word3: UInt16 = 0
    @usableFromInline var count: UInt8 = 0

    /// Copies `raw` (at most 22 bytes).
    @inlinable init(_ raw: UnsafeRawBufferPointer) {
        Swift.withUnsafeMutableBytes(of: &self) { target in target.copyMemory(from: raw) }
        count = UInt8(truncatingIfNeeded: raw.count)
    }
}
/// A stored value. Canonical 64-bit integers are kept unboxed, like Redis's int encoding.
public enum Value: Sendable {
    /// A string value whose bytes are the canonical decimal form of this integer.
    case integer(Int64)
    /// Any other string value.
    case string([UInt8])
    /// A hash of field → value, in insertion order (as Redis's listpack hashes reply). Not
    /// boxed: a `HashValue` is one word (a small hash's packed buffer or a reference to its
    /// table), so the slot holds it directly, as it holds a list.
    case hash(HashValue)
    /// A list: listpack-encoded chunks (see `ListValue`). Not boxed: a `ListValue` is one word
    /// (a small list's buffer or a reference to its chunks), so the slot holds it directly.
    case list(ListValue)
    /// A set: an intset or a packed hash table (see `SetValue`), one word like a list.
    case set(SetValue)
    /// A sorted set (see `SortedSetValue`): one word like a list (a packed set's buffer or a
    /// reference to the indexed form), so not boxed.
    case sortedSet(SortedSetValue)
    /// A stream: listpack nodes and consumer groups (see `StreamValue`), boxed like hashes.
    indirect case stream(StreamValue)
}

/// A keyspace entry: a value and its absolute expiry in Unix milliseconds, if any.
///
/// 24 bytes: the value (9), the access stamp in the padding after it, and the expiry as a plain
/// Int64 with `Int64.min` for "none" (an `Int64?` would take 9 bytes and make the entry 32:
/// 8 bytes per table slot, ~17 bytes per key at the tables' load factor).
public struct Entry: Sendable {
    /// The value.
    public var value: Value
    /// LRU clock or LFU counter for `maxmemory` eviction (see `AccessMode`); maintained by the
    /// shard only while an LRU/LFU policy is configured, 0 otherwise.
    public var access: UInt32
    /// The expiry, or `Entry.noExpiry`.
    @usableFromInline var expiryStorage: Int64

    /// The stored form of "no expiry".
    @usableFromInline static let noExpiry = Int64.min

    /// Absolute expiry time in Unix milliseconds; nil for a persistent key. `Int64.min` itself
    /// is stored as `Int64.min + 1`: both are long past, so the key is expired either way.
    @inlinable public var expiresAtMilliseconds: Int64? {
        get { expiryStorage == Entry.noExpiry ? nil : expiryStorage }
        set { expiryStorage = newValue.map { max($0, Entry.noExpiry + 1) } ?? Entry.noExpiry }
    }

    /// Creates an entry.
    @inlinable public init(value: Value, expiresAtMilliseconds: Int64? = nil, access: UInt32 = 0) {
        self.value = value
        self.access = access
        expiryStorage = expiresAtMilliseconds.map { max($0, Entry.noExpiry + 1) } ?? Entry.noExpiry
    }
}

/// A value kept as one `Value` case that holds many elements (a hash, a list): what
/// `Shard.withAggregate` needs to take it out of the table, edit it in place and put it back.
public protocol AggregateValue {
    /// An empty value.
    init()
    /// True when it holds no elements (Redis deletes empty aggregates).
    var isEmpty: Bool { get }
    /// The value as stored in an entry, the aggregate moved into it (not copied: a copy
    /// retains what it holds, and the original's release follows).
    consuming func intoValue() -> Value
    /// Moves the aggregate out of a stored value, leaving the integer 0 there, or returns nil
    /// and leaves `value` as it was when it is another kind of value.
    static func take(from value: inout Value) -> Self?
}

extension HashValue: AggregateValue {
    public consuming func intoValue() -> Value { .hash(self) }
    public static func take(from value: inout Value) -> HashValue? {
        guard case .hash = value else { return nil }
        guard case .hash(let hash) = consume value else { preconditionFailure("checked above") }
        value = .integer(0)
        return hash
    }
}

extension ListValue: AggregateValue {
    public consuming func intoValue() -> Value { .list(self) }
    public static func take(from value: inout Value) -> ListValue? {
        guard case .list = value else { return nil }
        guard case .list(let list) = consume value else { preconditionFailure("checked above") }
        value = .integer(0)
        return list
    }
}

/// Streams are aggregates that may be empty: Redis keeps an empty stream (XDEL of every
/// entry, XGROUP CREATE ... MKSTREAM), so `isEmpty` is always false and nothing removes it.
extension StreamValue: AggregateValue {
    public var isEmpty: Bool { false }
    public consuming func intoValue() -> Value { .stream(self) }
    public static func take(from value: inout Value) -> StreamValue? {
        guard case .stream = value else { return nil }
        guard case .stream(let stream) = consume value else { preconditionFailure("checked above") }
        value = .integer(0)
        return stream
    }
}

extension Value {
    /// True for a hash or list without elements: RDB loading skips them and RESTORE refuses
    /// them, as Redis does (it never stores an empty aggregate).
    public var isEmptyAggregate: Bool {
        switch self {
        case .integer, .string: return false
        case .hash(let hash): return hash.isEmpty
        case .list(let list): return list.isEmpty
        case .set(let set): return set.isEmpty
        case .sortedSet(let set): return set.isEmpty
        case .stream: return false
        }
    }
}
