// HashValue: an insertion-ordered field → value map (Redis replies small hashes in insertion order).

/// The limits under which a hash keeps Redis's listpack encoding: `hash-max-listpack-entries`
/// (512) fields, fields and values of at most `hash-max-listpack-value` (64) bytes.
public struct HashLimits: Sendable, Equatable {
    /// Most fields a listpack hash holds.
    public var maxEntries: Int
    /// Longest field or value a listpack hash holds.
    public var maxValueBytes: Int

    /// Creates limits.
    public init(maxEntries: Int = 512, maxValueBytes: Int = 64) {
        self.maxEntries = maxEntries
        self.maxValueBytes = maxValueBytes
    }

    /// Redis's defaults.
    public static let standard = HashLimits()
}

/// Fields and values of a hash, kept in insertion order with an index for O(1) lookup.
///
/// Deleting a field keeps the order, as Redis's listpack encoding keeps it. The hash also
/// tracks which of Redis's encodings it would have (`isListpack`): OBJECT ENCODING answers it,
/// HSCAN answers a listpack hash whole and pages a hashtable one, and the RDB writes it.
public struct HashValue: Sendable {
    /// Field names in order.
    public private(set) var fields: [[UInt8]] = []
    /// Values, parallel to `fields`.
    public private(set) var values: [[UInt8]] = []
    private var index: [Key: Int] = [:]
    /// Sum of field and value lengths, kept up to date so the memory estimate is O(1).
    public private(set) var payloadBytes = 0
    /// True while Redis would keep the hash as a listpack: it never outgrew the `HashLimits` it
    /// was written under. Like Redis (t_hash.c hashTypeConvert), a hash never goes back.
    public private(set) var isListpack = true

    /// One HSCAN step from `cursor`: a listpack hash answers whole with cursor 0 (as Redis's
    /// scanGenericCommand does), a hashtable one is paged by cursor as a dict over the fields'
    /// hashes (see `virtualDictScan`). Returns the next cursor (0: done).
    public func scan(cursor: UInt64, count: Int, _ body: (Int) -> Void) -> UInt64 {
        if isListpack {
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

    /// Sets `field` to `value`; returns true if the field is new. The hash becomes a hashtable
    /// when the field or value is longer than `limits` allows or the fields outnumber it, as
    /// t_hash.c hashTypeSet converts.
    @discardableResult
    public mutating func set(field: [UInt8], value: [UInt8], limits: HashLimits = .standard) -> Bool {
        if isListpack && (field.count > limits.maxValueBytes || value.count > limits.maxValueBytes) {
            isListpack = false
        }
        let added = store(field: field, value: value)
        if isListpack && fields.count > limits.maxEntries { isListpack = false }
        return added
    }

    /// Makes the hash a hashtable (RDB loading, where rdb.c decides the encoding itself).
    public mutating func convertToHashtable() { isListpack = false }

    private mutating func store(field: [UInt8], value: [UInt8]) -> Bool {
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
