// Key, Value and Entry: the byte-level data model shared by the keyspace, commands and persistence.

/// A key: arbitrary bytes. Two keys are equal only if their bytes are equal (no Unicode folding).
public struct Key: Hashable, Sendable {
    /// The key's bytes.
    public var bytes: [UInt8]

    /// Wraps `bytes`.
    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Copies the bytes of a slice (an argument of a request).
    @inlinable public init(_ slice: ArraySlice<UInt8>) { self.bytes = Array(slice) }

    @inlinable public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    @inlinable public static func == (lhs: Key, rhs: Key) -> Bool { lhs.bytes == rhs.bytes }
}

/// A stored value. Canonical 64-bit integers are kept unboxed, like Redis's int encoding.
public enum Value: Sendable {
    /// A string value whose bytes are the canonical decimal form of this integer.
    case integer(Int64)
    /// Any other string value.
    case string([UInt8])
    /// A hash of field → value, in insertion order (as Redis's listpack hashes reply).
    case hash(HashValue)
}

/// A keyspace entry: a value and its absolute expiry in Unix milliseconds, if any.
public struct Entry: Sendable {
    /// The value.
    public var value: Value
    /// Absolute expiry time in Unix milliseconds; nil for a persistent key.
    public var expiresAtMilliseconds: Int64?
    /// LRU clock or LFU counter for `maxmemory` eviction (see `AccessMode`); maintained by the
    /// shard only while an LRU/LFU policy is configured, 0 otherwise.
    public var access: UInt32

    /// Creates an entry.
    @inlinable public init(value: Value, expiresAtMilliseconds: Int64? = nil, access: UInt32 = 0) {
        self.value = value
        self.expiresAtMilliseconds = expiresAtMilliseconds
        self.access = access
    }
}
