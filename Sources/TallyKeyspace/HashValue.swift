// HashValue: an insertion-ordered field → value map (Redis replies small hashes in insertion order).

/// Fields and values of a hash, kept in insertion order with an index for O(1) lookup.
///
/// Deleting a field moves the last field into its slot only when the hash is large; for small
/// hashes order is kept exactly as Redis's listpack encoding keeps it.
public struct HashValue: Sendable {
    /// Field names in order.
    public private(set) var fields: [[UInt8]] = []
    /// Values, parallel to `fields`.
    public private(set) var values: [[UInt8]] = []
    private var index: [Key: Int] = [:]
    /// Sum of field and value lengths, kept up to date so the memory estimate is O(1).
    public private(set) var payloadBytes = 0

    /// One HSCAN step from `cursor`: up to `listpackEntries` fields answer whole with cursor 0
    /// (as Redis answers a listpack hash); a larger hash is paged by cursor as a dict over the
    /// fields' hashes (see `virtualDictScan`). Returns the next cursor (0: done).
    public func scan(cursor: UInt64, count: Int, listpackEntries: Int = 512, _ body: (Int) -> Void) -> UInt64 {
        if fields.count <= listpackEntries {
            for position in fields.indices { body(position) }
            return 0
        }
        let hashes = fields.map { MemberIndex.hash($0[...]) }
        let (positions, next) = virtualDictScan(cursor: cursor, hashes: hashes, count: count)
        for position in positions { body(position) }
        return next
    }

    /// Creates an empty hash.
    public init() {}

    /// Number of fields.
    @inlinable public var count: Int { fields.count }

    /// True if there are no fields.
    @inlinable public var isEmpty: Bool { fields.isEmpty }

    /// The value of `field`, if present.
    public func value<C: Collection>(for field: C) -> [UInt8]? where C.Element == UInt8 {
        guard let position = index[Self.lookupKey(field)] else { return nil }
        return values[position]
    }

    /// Sets `field` to `value`; returns true if the field is new.
    @discardableResult
    public mutating func set(field: [UInt8], value: [UInt8]) -> Bool {
        let key = Key(field)
        if let position = index[key] {
            payloadBytes += value.count - values[position].count
            values[position] = value
            return false
        }
        index[key] = fields.count
        payloadBytes += field.count + value.count
        fields.append(field)
        values.append(value)
        return true
    }

    /// The index key for `field`, built from its bytes in place: request arguments are slices,
    /// and an inline key needs no intermediate array.
    private static func lookupKey<C: Collection>(_ field: C) -> Key where C.Element == UInt8 {
        field.withContiguousStorageIfAvailable { Key(UnsafeRawBufferPointer($0)) } ?? Key(Array(field))
    }

    /// Removes `field`; returns true if it existed.
    @discardableResult
    public mutating func remove<C: Collection>(field: C) -> Bool where C.Element == UInt8 {
        guard let position = index.removeValue(forKey: Self.lookupKey(field)) else { return false }
        payloadBytes -= fields[position].count + values[position].count
        fields.remove(at: position)
        values.remove(at: position)
        for shifted in position..<fields.count { index[Key(fields[shifted])] = shifted }
        return true
    }
}
