// SetValue: Redis sets as an intset (small all-integer sets) or a compact hash table of byte members.
import TallyProtocol

/// A set of byte strings, in one of Redis 7.0's two set encodings:
///
/// - `intset` while every member is a canonical 64-bit integer (string2ll) and there are at
///   most `set-max-intset-entries` (512) of them: Redis's exact intset bytes (an 8-byte header,
///   then sorted little-endian integers of 2, 4 or 8 bytes), so the RDB writer dumps it as is.
/// - `hashtable` otherwise (a `MemberTable`). A set never converts back, as in Redis.
///
/// Measured against redis-server 7.0.15 (see README's sets section): a 1M-member set takes
/// about half of Redis's bytes per member.
public struct SetValue: Sendable {
    /// Redis's default `set-max-intset-entries`.
    public static let defaultMaxIntsetEntries = 512

    /// One word: the intset's byte array or a reference to the table, so `Value` holds a set
    /// without a box and a small set costs one buffer (Redis's 8-byte intset header, then the
    /// integers).
    @usableFromInline enum Storage: Sendable {
        case intset(IntSet)
        case table(MemberTableBox)
    }

    @usableFromInline var storage = Storage.intset(IntSet())

    /// Creates an empty set.
    public init() {}

    /// True while the set is intset-encoded (an empty set starts as one, as SADD of an integer
    /// creates an intset: t_set.c setTypeCreate).
    public var isIntset: Bool {
        if case .intset = storage { return true }
        return false
    }

    /// Number of members.
    public var count: Int {
        switch storage {
        case .intset(let intset): return intset.count
        case .table(let box): return box.table.count
        }
    }

    /// True if the set holds no member.
    public var isEmpty: Bool { count == 0 }

    /// OBJECT ENCODING's answer.
    public var encodingName: String { isIntset ? "intset" : "hashtable" }

    /// Bytes held, for the memory estimate.
    public var payloadBytes: Int {
        switch storage {
        case .intset(let intset): return intset.bytes.count
        case .table(let box): return box.table.heapBytes + 32
        }
    }

    /// True if `member` is in the set.
    public func contains<C: Collection>(_ member: C) -> Bool where C.Element == UInt8 {
        switch storage {
        case .intset(let intset):
            guard let value = parseRedisInteger(member) else { return false }
            return intset.contains(value)
        case .table(let box):
            return SetValue.withContiguous(member) { box.table.find($0) != nil }
        }
    }

    /// The table, uniquely referenced (copied first when a COPY shares it), for an edit.
    private mutating func uniqueTable() -> MemberTableBox? {
        guard case .table(var box) = storage else { return nil }
        storage = .intset(IntSet())
        if !isKnownUniquelyReferenced(&box) { box = MemberTableBox(box.table) }
        storage = .table(box)
        return box
    }

    /// Adds `member`; returns true if it was not present. An intset converts to a hash table
    /// when `member` is not an integer or the set outgrows `maxIntsetEntries`.
    @discardableResult
    public mutating func insert<C: Collection>(_ member: C, maxIntsetEntries: Int = defaultMaxIntsetEntries) -> Bool
    where C.Element == UInt8 {
        if case .intset(var intset) = storage {
            if let value = parseRedisInteger(member) {
                // Drop the enum's reference first so the buffer is edited in place.
                storage = .intset(IntSet())
                let added = intset.insert(value)
                storage = .intset(intset)
                if added && intset.count > maxIntsetEntries { convertToTable() }
                return added
            }
            convertToTable()
        }
        let box = uniqueTable()!
        return SetValue.withContiguous(member) { box.table.insert($0) }
    }

    /// Removes `member`; returns true if it was present.
    @discardableResult
    public mutating func remove<C: Collection>(_ member: C) -> Bool where C.Element == UInt8 {
        if case .intset(var intset) = storage {
            guard let value = parseRedisInteger(member) else { return false }
            storage = .intset(IntSet())
            let removed = intset.remove(value)
            storage = .intset(intset)
            return removed
        }
        let box = uniqueTable()!
        return SetValue.withContiguous(member) { box.table.remove($0) }
    }

    /// Calls `body` with each member's bytes: ascending integers for an intset, table order
    /// (hash-dependent, as Redis's dict order) otherwise.
    public func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        switch storage {
        case .intset(let intset):
            for index in 0..<intset.count {
                let bytes = decimalBytes(intset.value(at: index))
                try bytes.withUnsafeBytes(body)
            }
        case .table(let box):
            try box.table.forEach(body)
        }
    }

    /// One SSCAN step from `cursor`: an intset answers every member and cursor 0 (as Redis
    /// does for it); a table visits home buckets in reverse-binary cursor order (dict.c
    /// dictScan) until `count` members came out or `count * 10` buckets were visited, so every
    /// member present for a whole scan comes out at least once across resizes. Returns the
    /// next cursor (0: done).
    public func scan(cursor: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> UInt64 {
        switch storage {
        case .intset:
            forEach(body)
            return 0
        case .table(let box):
            return box.table.scan(cursor: cursor, count: count, body)
        }
    }

    /// Every member as an array, in `forEach` order.
    public var members: [[UInt8]] {
        var result: [[UInt8]] = []
        result.reserveCapacity(count)
        forEach { result.append(Array($0)) }
        return result
    }

    /// The intset's integers in ascending order (empty for a hash table set).
    public var integers: [Int64] {
        guard case .intset(let intset) = storage else { return [] }
        return (0..<intset.count).map { intset.value(at: $0) }
    }

    /// A uniformly random member (the set must not be empty).
    public func randomMember<G: RandomNumberGenerator>(using generator: inout G) -> [UInt8] {
        precondition(!isEmpty, "random member of an empty set")
        switch storage {
        case .intset(let intset):
            return decimalBytes(intset.value(at: Int.random(in: 0..<intset.count, using: &generator)))
        case .table(let box):
            return box.table.randomMember(using: &generator)
        }
    }

    /// A uniformly random member (the set must not be empty).
    public func randomMember() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return randomMember(using: &generator)
    }

    /// Redis's intset blob (RDB_TYPE_SET_INTSET), or nil for a hash table set.
    public var intsetBlob: [UInt8]? {
        guard case .intset(let intset) = storage else { return nil }
        return intset.bytes
    }

    /// A set from an RDB intset blob, converted to a hash table when it holds more than
    /// `maxIntsetEntries`; nil when the blob is malformed (bad encoding, length, order).
    public init?(intsetBlob blob: [UInt8], maxIntsetEntries: Int = defaultMaxIntsetEntries) {
        guard let parsed = IntSet(validating: blob) else { return nil }
        storage = .intset(parsed)
        if parsed.count > maxIntsetEntries { convertToTable() }
    }

    /// Converts to a hash table (never back).
    mutating func convertToTable() {
        guard case .intset(let intset) = storage else { return }
        var converted = MemberTable()
        converted.reserve(intset.count + 1)
        for index in 0..<intset.count {
            decimalBytes(intset.value(at: index)).withUnsafeBytes { _ = converted.insert($0) }
        }
        storage = .table(MemberTableBox(converted))
    }

    /// Static, not a method: a method call would borrow `self` while a mutating `body` edits
    /// it, which makes Swift copy the set first (every SADD then copied the whole table).
    private static func withContiguous<C: Collection, R>(_ member: C, _ body: (UnsafeRawBufferPointer) -> R) -> R
    where C.Element == UInt8 {
        if let result = member.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(member).withUnsafeBytes(body)
    }
}

/// The hash table of a set, boxed so `SetValue` is one word. Edited only through
/// `SetValue.uniqueTable()`, which copies a shared box first (value semantics, as COPY needs).
@usableFromInline
final class MemberTableBox: @unchecked Sendable {
    var table: MemberTable

    init(_ table: MemberTable) { self.table = table }
}

/// Redis's intset, byte for byte: `u32 encoding` (2, 4 or 8: the width of each integer),
/// `u32 length`, then `length` integers of that width, little-endian, in ascending order.
/// Adding an integer that does not fit the width rewrites every entry at the wider width.
@usableFromInline
struct IntSet: Sendable {
    /// Header and entries.
    @usableFromInline var bytes: [UInt8] = []

    init() {}

    /// Parses and checks a blob as redis-check-rdb does (intsetValidateIntegrity).
    init?(validating blob: [UInt8]) {
        guard blob.count >= 8 else { return nil }
        bytes = blob
        let width = self.width
        guard width == 2 || width == 4 || width == 8 else { return nil }
        guard readU32(4) == UInt32(truncatingIfNeeded: (blob.count - 8) / width),
              (blob.count - 8) % width == 0, count > 0 else { return nil }
        for index in 1..<max(count, 1) where value(at: index - 1) >= value(at: index) { return nil }
    }

    @usableFromInline var count: Int { bytes.isEmpty ? 0 : Int(readU32(4)) }

    var width: Int { bytes.isEmpty ? 2 : Int(readU32(0)) }

    private func readU32(_ offset: Int) -> UInt32 {
        bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    }

    private mutating func writeU32(_ offset: Int, _ value: UInt32) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self) }
    }

    /// The integer at `index` (ascending order).
    @usableFromInline func value(at index: Int) -> Int64 {
        let width = self.width
        let offset = 8 + index * width
        return bytes.withUnsafeBytes { raw in
            switch width {
            case 2: return Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int16.self)))
            case 4: return Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
            default: return Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            }
        }
    }

    /// Binary search: the index of `value`, or where it would be inserted.
    private func search(_ value: Int64) -> (found: Bool, index: Int) {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            let probe = self.value(at: middle)
            if probe == value { return (true, middle) }
            if probe < value { low = middle + 1 } else { high = middle }
        }
        return (false, low)
    }

    func contains(_ value: Int64) -> Bool { search(value).found }

    /// The narrowest width that holds `value` (intset.c _intsetValueEncoding).
    static func width(for value: Int64) -> Int {
        if value < Int64(Int32.min) || value > Int64(Int32.max) { return 8 }
        if value < Int64(Int16.min) || value > Int64(Int16.max) { return 4 }
        return 2
    }

    private static func encode(_ value: Int64, width: Int, into buffer: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0.prefix(width)) }
    }

    /// Adds `value`; false if present.
    mutating func insert(_ value: Int64) -> Bool {
        let needed = IntSet.width(for: value)
        if bytes.isEmpty {
            bytes = [UInt8](repeating: 0, count: 8)
            writeU32(0, UInt32(needed))
        } else if needed > width {
            // Upgrade: a value that needs a wider encoding is below or above every entry.
            var upgraded: [UInt8] = []
            upgraded.reserveCapacity(8 + (count + 1) * needed)
            upgraded.append(contentsOf: [UInt8](repeating: 0, count: 8))
            if value < 0 { IntSet.encode(value, width: needed, into: &upgraded) }
            for index in 0..<count { IntSet.encode(self.value(at: index), width: needed, into: &upgraded) }
            if value >= 0 { IntSet.encode(value, width: needed, into: &upgraded) }
            let newCount = count + 1
            bytes = upgraded
            writeU32(0, UInt32(needed))
            writeU32(4, UInt32(newCount))
            return true
        }
        let (found, index) = search(value)
        if found { return false }
        var encoded: [UInt8] = []
        IntSet.encode(value, width: width, into: &encoded)
        let offset = 8 + index * width
        bytes.insert(contentsOf: encoded, at: offset)
        writeU32(4, UInt32(count + 1))
        return true
    }

    /// Removes `value`; false if absent.
    mutating func remove(_ value: Int64) -> Bool {
        guard !bytes.isEmpty, IntSet.width(for: value) <= width else { return false }
        let (found, index) = search(value)
        guard found else { return false }
        let offset = 8 + index * width
        bytes.removeSubrange(offset..<(offset + width))
        writeU32(4, UInt32(count - 1))
        if count == 0 { bytes = [] }
        return true
    }
}

/// An open-addressing hash table of byte strings, packed for memory:
///
/// - `arena`: the members back to back, each as a LEB128 length and its bytes, padded to 4
///   bytes, so an entry's offset / 4 fits a `UInt32` for sets of up to 16 GB.
/// - `slots`: a power-of-two array of `UInt32` (0 empty, 1 deleted, else offset / 4 + 2),
///   linear probing, at most 3/4 full (deleted slots included).
///
/// A short member costs its bytes rounded up to 4 plus one length byte, and 4–8 bytes of
/// slots: ~16 bytes for "123456", against Redis's 24-byte dictEntry, its sds and an 8-byte
/// bucket pointer. Removed members leave dead bytes in the arena; the table is rebuilt
/// (compacting the arena and dropping deleted slots) when they exceed half of it.
@usableFromInline
struct MemberTable: Sendable {
    var arena: [UInt8] = []
    var slots: [UInt32] = []
    @usableFromInline var count = 0
    /// Occupied plus deleted slots.
    var used = 0
    /// Arena bytes of removed members.
    var deadBytes = 0

    init() {}

    var heapBytes: Int { arena.capacity + slots.capacity * 4 + 64 }

    /// Makes room for `capacity` members without rehashing.
    mutating func reserve(_ capacity: Int) {
        var size = 8
        while size * 3 < capacity * 4 { size *= 2 }
        if size > slots.count { rebuild(slotCount: size) }
    }

    /// Slots for `members` after a rebuild: at most half full, so growth waits for another
    /// `members / 2` inserts (a 1M-member set gets 2^21 slots: 8 bytes per member).
    static func slotCount(for members: Int) -> Int {
        var size = 8
        while size < members * 2 { size *= 2 }
        return size
    }

    /// The keyspace's hash (one code path for members and keys: no loop up to 24 bytes).
    @inline(__always)
    private static func hash(_ member: UnsafeRawBufferPointer) -> UInt64 { KeyTableStorage.hash(member) }

    /// The member stored at arena `offset`: (start of its bytes, length).
    private func entry(at offset: Int) -> (start: Int, length: Int) {
        arena.withUnsafeBytes { MemberTable.entry($0, at: offset) }
    }

    /// Bytes an entry of `length` takes in the arena, padding included.
    private static func entrySize(_ length: Int) -> Int {
        var header = 1
        var rest = length >> 7
        while rest > 0 { header += 1; rest >>= 7 }
        return (header + length + 3) & ~3
    }

    /// The entry at arena `offset` of `arena`'s bytes: (start of its bytes, length).
    @inline(__always)
    private static func entry(_ arena: UnsafeRawBufferPointer, at offset: Int) -> (start: Int, length: Int) {
        var length = 0
        var shift = 0
        var position = offset
        while true {
            let byte = arena[position]
            length |= Int(byte & 0x7F) << shift
            position += 1
            if byte < 0x80 { break }
            shift += 7
        }
        return (position, length)
    }

    /// The slot index holding `member`, if present.
    func find(_ member: UnsafeRawBufferPointer) -> Int? {
        find(member, hash: MemberTable.hash(member))
    }

    /// `find` with the member's hash already computed (insert reuses it to place a new member).
    private func find(_ member: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        if slots.isEmpty { return nil }
        return slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBytes { raw in
                let mask = slots.count - 1
                var index = Int(truncatingIfNeeded: hash) & mask
                while true {
                    let slot = slots[index]
                    if slot == 0 { return nil }
                    if slot > 1 {
                        let (start, length) = MemberTable.entry(raw, at: Int(slot - 2) * 4)
                        if length == member.count
                            && (length == 0 || memcmpEqual(raw.baseAddress! + start, member.baseAddress!, length)) {
                            return index
                        }
                    }
                    index = (index + 1) & mask
                }
            }
        }
    }

    /// Adds `member`; false if present.
    mutating func insert(_ member: UnsafeRawBufferPointer) -> Bool {
        let hash = MemberTable.hash(member)
        if find(member, hash: hash) != nil { return false }
        if (used + 1) * 4 > slots.count * 3 {
            rebuild(slotCount: MemberTable.slotCount(for: count + 1))
        }
        append(member, hash: hash)
        return true
    }

    /// Stores a member known to be absent: its entry at the arena's end, its slot. A short
    /// entry is composed on the stack and appended at once (each `append` checks uniqueness
    /// and capacity; `append(contentsOf: repeatElement(...))` would loop byte by byte).
    private mutating func append(_ member: UnsafeRawBufferPointer, hash: UInt64) {
        let offset = arena.count
        precondition(offset / 4 < Int(UInt32.max) - 2, "set larger than 16 GB")
        var header: UInt64 = 0
        var headerLength = 0
        var length = member.count
        repeat {
            let low = UInt64(length & 0x7F)
            length >>= 7
            header |= (length > 0 ? low | 0x80 : low) << (8 * headerLength)
            headerLength += 1
        } while length > 0
        let size = MemberTable.entrySize(member.count)
        if size <= 64 {
            withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { scratch in
                let base = scratch.baseAddress!
                base.initializeMemory(as: UInt8.self, repeating: 0, count: size)
                base.storeBytes(of: header.littleEndian, as: UInt64.self)
                if let source = member.baseAddress, member.count > 0 {
                    (base + headerLength).copyMemory(from: source, byteCount: member.count)
                }
                arena.append(contentsOf: UnsafeRawBufferPointer(start: base, count: size))
            }
        } else {
            withUnsafeBytes(of: header.littleEndian) { arena.append(contentsOf: $0.prefix(headerLength)) }
            arena.append(contentsOf: member)
            let zeros: UInt32 = 0
            withUnsafeBytes(of: zeros) { arena.append(contentsOf: $0.prefix(size - headerLength - member.count)) }
        }
        place(UInt32(offset / 4 + 2), hash: hash)
        count += 1
        used += 1
    }

    private mutating func place(_ slot: UInt32, hash: UInt64) {
        let mask = slots.count - 1
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] != 0 { index = (index + 1) & mask }
        slots[index] = slot
    }

    /// Removes `member`; false if absent.
    mutating func remove(_ member: UnsafeRawBufferPointer) -> Bool {
        guard let index = find(member) else { return false }
        removeSlot(index)
        return true
    }

    private mutating func removeSlot(_ index: Int) {
        let (_, length) = entry(at: Int(slots[index] - 2) * 4)
        slots[index] = 1
        count -= 1
        deadBytes += MemberTable.entrySize(length)
        if count == 0 {
            self = MemberTable()
        } else if deadBytes * 2 > arena.count || (slots.count > 64 && count * 8 < slots.count) {
            rebuild(slotCount: MemberTable.slotCount(for: count))
        }
    }

    /// Rehashes into `slotCount` slots. Growth with no removed members keeps the arena and
    /// only places each entry again (re-appending every member cost as much as the inserts
    /// that triggered the growth); otherwise the arena is compacted too.
    private mutating func rebuild(slotCount: Int) {
        if deadBytes == 0 && count == used {
            var grown = [UInt32](repeating: 0, count: slotCount)
            let mask = slotCount - 1
            arena.withUnsafeBytes { raw in
                grown.withUnsafeMutableBufferPointer { target in
                    for slot in slots where slot > 1 {
                        let (start, length) = MemberTable.entry(raw, at: Int(slot - 2) * 4)
                        let member = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                        var index = Int(truncatingIfNeeded: MemberTable.hash(member)) & mask
                        while target[index] != 0 { index = (index + 1) & mask }
                        target[index] = slot
                    }
                }
            }
            slots = grown
            return
        }
        let old = self
        self = MemberTable()
        slots = [UInt32](repeating: 0, count: slotCount)
        arena.reserveCapacity(old.arena.count - old.deadBytes)
        old.forEach { append($0, hash: MemberTable.hash($0)) }
    }

    /// Calls `body` with each member, in slot order.
    func forEach(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try arena.withUnsafeBytes { raw in
            for slot in slots where slot > 1 {
                let (start, length) = entry(at: Int(slot - 2) * 4)
                try body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)]))
            }
        }
    }

    /// See `SetValue.scan`. A member's home bucket is `hash & mask`; linear probing keeps it
    /// between its home and the next empty slot (removals leave tombstones), so one bucket's
    /// members are found by probing that run.
    func scan(cursor: UInt64, count: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> UInt64 {
        if slots.isEmpty { return 0 }
        let mask = slots.count - 1
        let wideMask = UInt64(mask)
        var cursor = cursor
        var produced = 0
        var buckets = count >= Int.max / 10 ? Int.max : Swift.max(count, 1) * 10
        arena.withUnsafeBytes { raw in
            repeat {
                let bucket = Int(truncatingIfNeeded: cursor) & mask
                var index = bucket
                while slots[index] != 0 {
                    let slot = slots[index]
                    if slot > 1 {
                        let (start, length) = entry(at: Int(slot - 2) * 4)
                        let member = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                        if Int(truncatingIfNeeded: MemberTable.hash(member)) & mask == bucket {
                            body(member)
                            produced += 1
                        }
                    }
                    index = (index + 1) & mask
                }
                // Increment the reversed cursor over the bits of the mask.
                cursor |= ~wideMask
                cursor = reversedBits(reversedBits(cursor) &+ 1)
                buckets -= 1
            } while cursor != 0 && buckets > 0 && produced < count
        }
        return cursor
    }

    func member(inSlot index: Int) -> [UInt8] {
        let (start, length) = entry(at: Int(slots[index] - 2) * 4)
        return Array(arena[start..<(start + length)])
    }

    /// A uniformly random member: random slots until an occupied one (the table is kept at
    /// least 1/8 full, so this takes a few probes).
    func randomMember<G: RandomNumberGenerator>(using generator: inout G) -> [UInt8] {
        while true {
            let index = Int.random(in: 0..<slots.count, using: &generator)
            if slots[index] > 1 { return member(inSlot: index) }
        }
    }
}

/// `value` with its 64 bits in reverse order (the SCAN cursor's increment).
func reversedBits(_ value: UInt64) -> UInt64 {
    var bits = value
    bits = (bits >> 1) & 0x5555_5555_5555_5555 | (bits & 0x5555_5555_5555_5555) << 1
    bits = (bits >> 2) & 0x3333_3333_3333_3333 | (bits & 0x3333_3333_3333_3333) << 2
    bits = (bits >> 4) & 0x0F0F_0F0F_0F0F_0F0F | (bits & 0x0F0F_0F0F_0F0F_0F0F) << 4
    return bits.byteSwapped
}

/// Byte equality of two buffers of `count` bytes.
@inline(__always)
func memcmpEqual(_ left: UnsafeRawPointer, _ right: UnsafeRawPointer, _ count: Int) -> Bool {
    var index = 0
    while index + 8 <= count {
        if left.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            != right.loadUnaligned(fromByteOffset: index, as: UInt64.self) { return false }
        index += 8
    }
    while index < count {
        if left.load(fromByteOffset: index, as: UInt8.self) != right.load(fromByteOffset: index, as: UInt8.self) {
            return false
        }
        index += 1
    }
    return true
}

extension SetValue: AggregateValue {
    public consuming func intoValue() -> Value { .set(self) }
    public static func take(from value: inout Value) -> SetValue? {
        guard case .set = value else { return nil }
        guard case .set(let set) = consume value else { preconditionFailure("checked above") }
        value = .integer(0)
        return set
    }
}

extension Shard {
    /// Applies `body` to the set at `key` (see `withAggregate`).
    @inlinable
    public func withSet<R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout SetValue, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var result: R?
        try updateSet(database, key, now: now, create: create) {
            (value: inout SetValue, changed: inout Bool) throws(KeyspaceError) in
            result = try body(&value, &changed)
        }
        return result
    }

    /// `withSet`'s body, specialized here (see `withAggregate`).
    @usableFromInline
    func updateSet(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout SetValue, inout Bool) throws(KeyspaceError) -> Void
    ) throws(KeyspaceError) {
        _ = try withAggregate(database, key, now: now, create: create, body)
    }
}
