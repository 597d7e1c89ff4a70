// HashValue: an insertion-ordered field → value map, packed in one buffer while Redis would keep a listpack.

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

/// Fields and values of a hash, in insertion order, in one of Redis 7.0's two hash encodings:
///
/// - `listpack` (`isListpack`) while the hash is within its `HashLimits`: every pair lives in
///   one byte buffer (`PackedPairs`), looked up by a linear scan as t_hash.c scans a listpack.
///   A 10-field hash is one heap block instead of 20 arrays and a dictionary (README's
///   "Collections' memory" table has the bytes per field measured against Redis's).
/// - `hashtable` once a field or value grew too long or the fields too many (t_hash.c
///   hashTypeConvert): parallel field/value arrays with an index for O(1) lookup
///   (`HashTable`). A hash never converts back, as in Redis.
///
/// Deleting a field keeps the order in both forms, as Redis's listpack keeps it. OBJECT
/// ENCODING answers the form, HSCAN answers a listpack hash whole and pages a hashtable one,
/// and the RDB writes it.
public struct HashValue: Sendable {
    /// One word: the packed buffer or a reference to the table, so `Value` holds a hash without
    /// a box of its own (the boxed form cost a 48-byte block per hash on top of its buffers).
    @usableFromInline enum Storage: Sendable {
        case packed([UInt8])
        case table(HashTable)
    }

    @usableFromInline var storage = Storage.packed([])

    /// Creates an empty hash: a listpack, as t_hash.c hashTypeLookupWriteOrCreate creates one.
    public init() {}

    /// True while Redis would keep the hash as a listpack: it never outgrew the `HashLimits` it
    /// was written under.
    public var isListpack: Bool {
        if case .packed = storage { return true }
        return false
    }

    /// Number of fields.
    public var count: Int {
        switch storage {
        case .packed(let bytes): return PackedPairs.count(bytes)
        case .table(let table): return table.count
        }
    }

    /// True if there are no fields.
    public var isEmpty: Bool { count == 0 }

    /// Heap bytes held (buffer capacities included), for the memory estimate: the packed
    /// buffer and its array header, or the table's box, arrays, per-field buffers and index.
    public var heapBytes: Int {
        switch storage {
        case .packed(let bytes):
            return bytes.capacity == 0 ? 0 : MemoryEstimate.bufferHeaderBytes + bytes.capacity
        case .table(let table):
            return 4 * MemoryEstimate.bufferHeaderBytes + table.payloadBytes
                + table.count * MemoryEstimate.hashFieldOverheadBytes
        }
    }

    /// The value of `field`, if present: a slice of the hash's own storage (no copy).
    public func value<C: Collection>(for field: C) -> ArraySlice<UInt8>? where C.Element == UInt8 {
        switch storage {
        case .packed(let bytes):
            let hit = HashValue.withContiguous(field) { field in
                bytes.withUnsafeBytes { PackedPairs.find(field, in: $0) }
            }
            guard let hit else { return nil }
            return bytes[hit.valueStart..<hit.end]
        case .table(let table):
            guard let position = table.index[HashValue.lookupKey(field)] else { return nil }
            return table.values[position][...]
        }
    }

    /// Sets `field` to `value`; returns true if the field is new. The hash becomes a hashtable
    /// when the field or value is longer than `limits` allows or the fields outnumber it, as
    /// t_hash.c hashTypeSet converts.
    @discardableResult
    public mutating func set<F: Collection, V: Collection>(field: F, value: V, limits: HashLimits = .standard)
        -> Bool where F.Element == UInt8, V.Element == UInt8
    {
        if isListpack && (field.count > limits.maxValueBytes || value.count > limits.maxValueBytes) {
            convertToHashtable()
        }
        if case .packed(var bytes) = storage {
            // Drop the enum's reference first so the buffer is edited in place.
            storage = .packed([])
            let added = HashValue.withContiguous(field) { field in
                HashValue.withContiguous(value) { value in PackedPairs.set(field, value, in: &bytes) }
            }
            storage = .packed(bytes)
            if added && PackedPairs.count(bytes) > limits.maxEntries { convertToHashtable() }
            return added
        }
        return uniqueTable().set(field: Array(field), value: Array(value))
    }

    /// Makes room for `pairs` new pairs holding `payloadBytes` bytes of fields and values in
    /// all, when the hash is packed: HSET on a new key and RDB loading know the whole size, and
    /// one exact allocation beats growing the buffer pair by pair (with growth slack kept).
    public mutating func reserveCapacity(pairs: Int, payloadBytes: Int) {
        guard case .packed(var bytes) = storage else { return }
        storage = .packed([])
        PackedPairs.reserve(&bytes, adding: payloadBytes + 2 * pairs, exact: true)
        storage = .packed(bytes)
    }

    /// Makes the hash a hashtable (t_hash.c hashTypeConvert; also RDB loading, where rdb.c
    /// decides the encoding itself). No-op when it already is one.
    public mutating func convertToHashtable() {
        guard case .packed(let bytes) = storage else { return }
        let table = HashTable()
        table.fields.reserveCapacity(PackedPairs.count(bytes))
        table.values.reserveCapacity(PackedPairs.count(bytes))
        PackedPairs.forEach(bytes) { field, value in
            _ = table.set(field: Array(field), value: Array(value))
        }
        storage = .table(table)
    }

    /// Removes `field`; returns true if it existed.
    @discardableResult
    public mutating func remove<C: Collection>(field: C) -> Bool where C.Element == UInt8 {
        if case .packed(var bytes) = storage {
            storage = .packed([])
            let removed = HashValue.withContiguous(field) { PackedPairs.remove($0, from: &bytes) }
            storage = .packed(bytes)
            return removed
        }
        // Looked up before `uniqueTable()`: a miss must not copy a table a COPY shares, and no
        // reference may stay bound across it (that would make every edit copy).
        let key = HashValue.lookupKey(field)
        guard tableContains(key) else { return false }
        return uniqueTable().remove(key)
    }

    /// Calls `body` with each field and value, in order, as slices of the hash's storage.
    public func forEach(_ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) throws -> Void) rethrows {
        switch storage {
        case .packed(let bytes):
            try PackedPairs.forEach(bytes, body)
        case .table(let table):
            for position in table.fields.indices {
                guard let field = table.fields[position] else { continue }
                try body(field[...], table.values[position][...])
            }
        }
    }

    /// A uniformly random field and value (HRANDFIELD without a count): a scan of a listpack,
    /// random positions of a hashtable until one holds a field (at least half of them do).
    public func randomEntry() -> (field: ArraySlice<UInt8>, value: ArraySlice<UInt8>) {
        precondition(count > 0, "random entry of an empty hash")
        switch storage {
        case .packed(let bytes):
            let position = Int.random(in: 0..<count)
            var seen = 0
            var found: (field: ArraySlice<UInt8>, value: ArraySlice<UInt8>)?
            PackedPairs.forEach(bytes) { field, value in
                if seen == position { found = (field, value) }
                seen += 1
            }
            return found!
        case .table(let table):
            while true {
                let position = Int.random(in: 0..<table.fields.count)
                if let field = table.fields[position] { return (field[...], table.values[position][...]) }
            }
        }
    }

    /// Every field and value in order, for commands that pick pairs by position (HRANDFIELD
    /// with a count): slices, so the bytes are not copied.
    public var entries: [(field: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] {
        var result: [(field: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] = []
        result.reserveCapacity(count)
        forEach { result.append(($0, $1)) }
        return result
    }

    /// One HSCAN step from `cursor`: a listpack hash answers whole with cursor 0 (as Redis's
    /// scanGenericCommand does), a hashtable one is paged by cursor as a dict over the fields'
    /// hashes (see `virtualDictScan`). Returns the next cursor (0: done).
    public func scan(cursor: UInt64, count: Int, _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void)
        -> UInt64
    {
        switch storage {
        case .packed:
            forEach(body)
            return 0
        case .table(let table):
            var livePositions: [Int] = []
            var hashes: [UInt64] = []
            livePositions.reserveCapacity(table.count)
            hashes.reserveCapacity(table.count)
            for position in table.fields.indices {
                guard let field = table.fields[position] else { continue }
                livePositions.append(position)
                hashes.append(MemberIndex.hash(field[...]))
            }
            let (indices, next) = virtualDictScan(cursor: cursor, hashes: hashes, count: count)
            for index in indices {
                let position = livePositions[index]
                body(table.fields[position]![...], table.values[position][...])
            }
            return next
        }
    }

    private func tableContains(_ key: Key) -> Bool {
        guard case .table(let table) = storage else { return false }
        return table.index[key] != nil
    }

    /// The table, uniquely referenced (copied first when a COPY shares it), for an edit.
    private mutating func uniqueTable() -> HashTable {
        guard case .table(var table) = storage else { preconditionFailure("hash is not a hashtable") }
        storage = .packed([])
        if !isKnownUniquelyReferenced(&table) { table = table.copy() }
        storage = .table(table)
        return table
    }

    /// The index key for `field`, built from its bytes in place: request arguments are slices,
    /// and an inline key needs no intermediate array.
    private static func lookupKey<C: Collection>(_ field: C) -> Key where C.Element == UInt8 {
        field.withContiguousStorageIfAvailable { Key(UnsafeRawBufferPointer($0)) } ?? Key(Array(field))
    }

    /// Static, not a method: a method call would borrow `self` while a mutating body edits it,
    /// which makes Swift copy the buffer first (as `SetValue.withContiguous` explains).
    private static func withContiguous<C: Collection, R>(_ bytes: C, _ body: (UnsafeRawBufferPointer) -> R) -> R
    where C.Element == UInt8 {
        if let result = bytes.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes(body)
    }
}

/// The hashtable form: fields and values in insertion order with an index for O(1) lookup.
/// Boxed so `HashValue` stays one word; edited only through `HashValue.uniqueTable()`, which
/// copies a shared box first (value semantics, as COPY needs).
///
/// A removed field leaves a hole (nil field, empty value) so the others keep their positions:
/// closing the gap shifted every later field and re-indexed it, O(n) per HDEL (2,000 HDELs on
/// a 200,000-field hash took over 30 s where redis-server takes 10 ms). Holes are squeezed
/// out once they are half the positions, O(1) amortized per removal.
@usableFromInline
final class HashTable: @unchecked Sendable {
    /// Fields in insertion order; nil where one was removed since the last compaction.
    var fields: [[UInt8]?] = []
    var values: [[UInt8]] = []
    var index: [Key: Int] = [:]
    /// Sum of field and value lengths, kept up to date so the memory estimate is O(1).
    var payloadBytes = 0
    /// Holes in `fields`.
    var removedCount = 0

    init() {}

    /// Number of fields.
    var count: Int { fields.count - removedCount }

    func copy() -> HashTable {
        let copy = HashTable()
        copy.fields = fields
        copy.values = values
        copy.index = index
        copy.payloadBytes = payloadBytes
        copy.removedCount = removedCount
        return copy
    }

    func set(field: [UInt8], value: [UInt8]) -> Bool {
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

    /// Removes the field under `key`, keeping the order of the others.
    func remove(_ key: Key) -> Bool {
        guard let position = index.removeValue(forKey: key) else { return false }
        payloadBytes -= (fields[position]?.count ?? 0) + values[position].count
        fields[position] = nil
        values[position] = []
        removedCount += 1
        if removedCount * 2 > fields.count { compact() }
        return true
    }

    /// Closes the holes, moving each later field down and re-indexing it.
    private func compact() {
        var kept = 0
        for position in fields.indices {
            guard let field = fields[position] else { continue }
            if kept != position {
                fields[kept] = field
                values[kept] = values[position]
                index[Key(field)] = kept
            }
            kept += 1
        }
        fields.removeLast(fields.count - kept)
        values.removeLast(values.count - kept)
        removedCount = 0
    }
}

/// The packed form's byte layout, one buffer per hash:
///
///     [count: u32 little-endian] then per pair, in insertion order:
///     [field length: varint][field bytes][value length: varint][value bytes]
///
/// Lengths are LEB128 varints (7 bits a byte, low first): one byte for anything up to 127, so
/// a field or value within the default 64-byte limit costs one byte of framing, as a listpack
/// entry's header does. An empty hash is an empty array (no allocation). Like a listpack,
/// lookups scan from the start; insertion appends; deletion closes the gap.
enum PackedPairs {
    /// Bytes before the first pair.
    static let headerBytes = 4

    /// Where a pair sits: `start` its first byte, `valueStart..<end` its value.
    struct Hit {
        var start: Int
        var valueStart: Int
        var end: Int
    }

    static func count(_ bytes: [UInt8]) -> Int {
        bytes.isEmpty ? 0 : bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt32.self).littleEndian) }
    }

    private static func setCount(_ count: Int, in bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(count).littleEndian, as: UInt32.self) }
    }

    static func varintBytes(_ value: Int) -> Int {
        var value = value
        var bytes = 1
        while value >= 0x80 {
            value >>= 7
            bytes += 1
        }
        return bytes
    }

    /// Reads the varint at `offset`; returns it and the offset after it.
    @inline(__always)
    static func readVarint(_ raw: UnsafeRawBufferPointer, _ offset: Int) -> (value: Int, next: Int) {
        let first = raw[offset]
        if first < 0x80 { return (Int(first), offset + 1) }
        var value = Int(first & 0x7F)
        var shift = 7
        var position = offset + 1
        while true {
            let byte = raw[position]
            position += 1
            value |= Int(byte & 0x7F) << shift
            if byte < 0x80 { return (value, position) }
            shift += 7
        }
    }

    private static func appendVarint(_ value: Int, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// The pair whose field is `field`, if any.
    static func find(_ field: UnsafeRawBufferPointer, in raw: UnsafeRawBufferPointer) -> Hit? {
        var offset = raw.isEmpty ? 0 : headerBytes
        while offset < raw.count {
            let start = offset
            let (fieldLength, fieldStart) = readVarint(raw, offset)
            let (valueLength, valueStart) = readVarint(raw, fieldStart + fieldLength)
            offset = valueStart + valueLength
            if fieldLength == field.count
                && (fieldLength == 0
                    || memoryEqual(raw.baseAddress! + fieldStart, field.baseAddress!, fieldLength))
            {
                return Hit(start: start, valueStart: valueStart, end: offset)
            }
        }
        return nil
    }

    @inline(__always)
    private static func memoryEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Bool {
        // Word at a time, then bytes: fields are short, and this avoids a libc call per pair.
        var offset = 0
        while offset + 8 <= count {
            if a.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                != b.loadUnaligned(fromByteOffset: offset, as: UInt64.self) { return false }
            offset += 8
        }
        while offset < count {
            if a.load(fromByteOffset: offset, as: UInt8.self) != b.load(fromByteOffset: offset, as: UInt8.self) {
                return false
            }
            offset += 1
        }
        return true
    }

    /// Ensures room for `extra` more bytes. Growing pair by pair keeps 1/8 slack, not Array's
    /// doubling: a small hash's buffer is most of its cost, and a listpack (Redis reallocs it
    /// per insert) keeps none. A reservation for a known size (`exact`) keeps none either.
    static func reserve(_ bytes: inout [UInt8], adding extra: Int, exact: Bool = false) {
        let needed = Swift.max(bytes.count, headerBytes) + extra
        if bytes.capacity < needed { bytes.reserveCapacity(exact ? needed : needed + needed >> 3) }
    }

    /// Sets `field` to `value`; returns true if the pair is new (appended at the end).
    static func set(_ field: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, in bytes: inout [UInt8]) -> Bool {
        let encodedValue = varintBytes(value.count) + value.count
        if let hit = bytes.withUnsafeBytes({ find(field, in: $0) }) {
            let valueRange = (hit.valueStart - varintBytes(hit.end - hit.valueStart))..<hit.end
            if valueRange.count != encodedValue {
                if encodedValue > valueRange.count { reserve(&bytes, adding: encodedValue - valueRange.count) }
                bytes.replaceSubrange(valueRange, with: repeatElement(0, count: encodedValue))
            }
            var cursor = valueRange.lowerBound
            var length = value.count
            while length >= 0x80 {
                bytes[cursor] = UInt8(truncatingIfNeeded: length) | 0x80
                length >>= 7
                cursor += 1
            }
            bytes[cursor] = UInt8(length)
            cursor += 1
            if !value.isEmpty {
                bytes.withUnsafeMutableBytes { raw in
                    (raw.baseAddress! + cursor).copyMemory(from: value.baseAddress!, byteCount: value.count)
                }
            }
            return false
        }
        reserve(&bytes, adding: varintBytes(field.count) + field.count + encodedValue)
        let before = count(bytes)
        if bytes.isEmpty { bytes.append(contentsOf: repeatElement(0, count: headerBytes)) }
        appendVarint(field.count, to: &bytes)
        bytes.append(contentsOf: field)
        appendVarint(value.count, to: &bytes)
        bytes.append(contentsOf: value)
        setCount(before + 1, in: &bytes)
        return true
    }

    /// Removes the pair whose field is `field`; returns true if there was one. The last pair
    /// gone, the buffer is freed.
    static func remove(_ field: UnsafeRawBufferPointer, from bytes: inout [UInt8]) -> Bool {
        guard let hit = bytes.withUnsafeBytes({ find(field, in: $0) }) else { return false }
        let remaining = count(bytes) - 1
        if remaining == 0 {
            bytes = []
            return true
        }
        bytes.removeSubrange(hit.start..<hit.end)
        setCount(remaining, in: &bytes)
        return true
    }

    /// Calls `body` with each pair in order, as slices of `bytes`.
    static func forEach(
        _ bytes: [UInt8], _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) throws -> Void
    ) rethrows {
        var offset = headerBytes
        while offset < bytes.count {
            let (fieldStart, fieldEnd, valueStart, valueEnd) = bytes.withUnsafeBytes { raw in
                let (fieldLength, fieldStart) = readVarint(raw, offset)
                let (valueLength, valueStart) = readVarint(raw, fieldStart + fieldLength)
                return (fieldStart, fieldStart + fieldLength, valueStart, valueStart + valueLength)
            }
            try body(bytes[fieldStart..<fieldEnd], bytes[valueStart..<valueEnd])
            offset = valueEnd
        }
    }
}
