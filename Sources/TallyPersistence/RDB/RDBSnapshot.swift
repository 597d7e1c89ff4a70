// RDBSnapshot: writes a point-in-time KeyspaceImage as dump.rdb (atomically) and loads dump.rdb into a Keyspace.
import Synchronization
import TallyKeyspace

/// Streams the keyspace `image` through an RDB writer (header and trailer included), one shard at a time:
/// per non-empty database of a shard an `FE db` section header, then its entries, a
/// page of the table at a time, encoded by a writer that reached the page first (see
/// `Keyspace.image(serializer:)`) or by the image on this thread; each page is released once written.
public func writeSnapshot<Sink: ByteSink>(
    _ image: KeyspaceImage, to sink: Sink, options: RDBWriterOptions
) throws -> Sink {
    var writer = RDBWriter(sink: sink, options: options)
    try writer.writeHeader()
    for code in image.functionCodes { try writer.writeFunction(code) }
    try image.forEachShardImage { shardImage in
        switch shardImage {
        case .section(let database, let keys, let first):
            // The database's sizes once, in its first section: redis-server and Tally size the
            // database's table once on them (later sections for it carry only `FE db`).
            var header: [UInt8] = []
            let sizes = first ? (image.keyCount(database: database), image.expiringKeyCount(database: database)) : nil
            RDBWriter<MemorySink>.appendSectionHeader(database: database, sizes: sizes, into: &header)
            try writer.writeEncoded(header, keys: keys)
        case .serialized(let bytes):
            try CompactSections.expand(bytes) { chunk throws(StorageError) in try writer.writeEncoded(chunk, keys: 0) }
        }
    }
    return try writer.finish()
}

/// The serializer to pass to `Keyspace.image(serializer:)` for a snapshot `writeSnapshot`
/// will write with `options`: each page of a table's image becomes these bytes.
public func rdbShardSerializer(options: RDBWriterOptions) -> ShardImageSerializer {
    { page in CompactSections.encode(page, options: options) }
}

/// A page of a table's entries (RDB records, or a RESP base's commands) held in memory until
/// the save writes them, prefix-compressed record by record: each record (one entry's bytes) is stored as
/// `varint shared, varint suffixCount, suffix`, where `shared` bytes repeat the previous
/// record's start. Counters named alike (`counter:000000123456`) share most of their encoding,
/// so a held page costs about 10 bytes a key instead of 24: the peak extra memory of a save
/// under writes is the sum of the pages writers reach before the save does.
enum CompactSections {
    static func encode(_ page: TablePage, options: RDBWriterOptions) -> [UInt8] {
        encode(page) { key, entry, record in
            RDBWriter<MemorySink>.appendEntry(key: key, entry: entry, options: options, into: &record)
        }
    }

    /// `page`'s entries, each encoded by `encodeEntry` as one record.
    static func encode(_ page: TablePage, _ encodeEntry: (Key, Entry, inout [UInt8]) -> Void) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(page.slotCount * 10)
        var previous: [UInt8] = []
        var record: [UInt8] = []
        previous.reserveCapacity(64)
        record.reserveCapacity(64)
        func emit() {
            let limit = Swift.min(previous.count, record.count)
            var shared = 0
            while shared < limit && previous[shared] == record[shared] { shared += 1 }
            appendVarint(shared, to: &output)
            appendVarint(record.count - shared, to: &output)
            output.append(contentsOf: record[shared...])
            swap(&previous, &record)
            record.removeAll(keepingCapacity: true)
        }
        for (key, entry) in page {
            encodeEntry(key, entry, &record)
            emit()
        }
        return output
    }

    /// Rebuilds the RDB bytes of `compact`, handing them to `write` about 64 KiB at a time.
    static func expand(
        _ compact: [UInt8], _ write: ([UInt8]) throws(StorageError) -> Void
    ) throws(StorageError) {
        var output: [UInt8] = []
        output.reserveCapacity(80 * 1024)
        var previous: [UInt8] = []
        var record: [UInt8] = []
        var position = 0
        while position < compact.count {
            let shared = readVarint(compact, &position)
            let suffix = readVarint(compact, &position)
            record.removeAll(keepingCapacity: true)
            record.append(contentsOf: previous[..<shared])
            record.append(contentsOf: compact[position..<(position + suffix)])
            position += suffix
            output.append(contentsOf: record)
            swap(&previous, &record)
            if output.count >= 64 * 1024 {
                try write(output)
                output.removeAll(keepingCapacity: true)
            }
        }
        try write(output)
    }

    static func appendVarint(_ value: Int, to output: inout [UInt8]) {
        var remaining = UInt(value)
        while remaining >= 0x80 {
            output.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        output.append(UInt8(remaining))
    }

    static func readVarint(_ bytes: [UInt8], _ position: inout Int) -> Int {
        var value = 0
        var shift = 0
        while true {
            let byte = bytes[position]
            position += 1
            value |= Int(byte & 0x7f) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }
}

/// Saves `snapshot` to `directory/fileName` with the atomic-replace protocol (temp file, fsync,
/// rename, directory fsync). Returns the file size in bytes.
@discardableResult
public func saveSnapshot<S: Storage>(
    _ image: KeyspaceImage, storage: S, directory: String, fileName: String,
    options: RDBWriterOptions, incrementalFsync: Bool = true
) throws -> Int64 {
    try atomicReplace(storage, directory: directory, name: fileName, incrementalFsync: incrementalFsync) { sink in
        sink = try writeSnapshot(image, to: sink, options: options)
    }
}

/// Loads `directory/fileName` into `keyspace`, dropping keys already expired at `nowMilliseconds`.
/// A missing file loads nothing and returns nil (Redis starts empty then); an empty one is an
/// error, as in Redis.
public func loadSnapshotFile<S: Storage>(
    storage: S, directory: String, fileName: String, into keyspace: Keyspace, nowMilliseconds: Int64,
    chunkBytes: Int = 1 << 20, progress: AOFLoadingStatus? = nil, sortedSetLimits: SortedSetLimits = .standard,
    listFill: ListFill = .standard, hashLimits: HashLimits = .standard
) throws -> RDBLoadResult? {
    let path = storagePath(directory, fileName)
    guard storage.exists(path) else { return nil }
    let file = try storage.openForReading(path)
    defer { storage.close(file) }
    if let progress {
        progress.totalBytes.store(try storage.size(file), ordering: .relaxed)
        progress.loadedBytes.store(0, ordering: .relaxed)
    }
    let source = ProgressSource(base: StorageSource(storage: storage, file: file), progress: progress)
    var reader = RDBReader(source: source, name: path, chunkBytes: chunkBytes)
    var options = RDBLoadOptions(dropExpiredBefore: nowMilliseconds, databaseCount: keyspace.databaseCount)
    options.sortedSetLimits = sortedSetLimits
    options.listFill = listFill
    options.hashLimits = hashLimits
    options.onDatabaseSize = cappedSizeHints({ database, keys in keyspace.reserve(database: database, keys: keys) },
                                             fileBytes: try storage.size(file))
    let result = try reader.load(options: options) { database, key, entry in
        keyspace.insertLoaded(database: database, key: key, entry: entry, now: nowMilliseconds)
    }
    try loadFunctionLibraries(result.functionCodes, into: keyspace, path: path)
    return result
}

/// Creates the libraries an RDB file holds; a library that does not load refuses the file, as
/// Redis refuses it.
public func loadFunctionLibraries(_ codes: [[UInt8]], into keyspace: Keyspace, path: String) throws(RDBError) {
    for code in codes {
        if let error = keyspace.functionLibraries.load(code) {
            throw RDBError(.corrupt, file: path, offset: 0, "failed loading library: \(error)")
        }
    }
}

/// Loads the RDB file at `path` (an AOF base or preamble) reading `chunkBytes` at a time.
public func loadRDBFile<S: Storage>(
    _ storage: S, path: String, options: RDBLoadOptions, chunkBytes: Int,
    _ body: (_ database: Int, _ key: Key, _ entry: Entry) throws -> Void
) throws -> RDBLoadResult {
    let file = try storage.openForReading(path)
    defer { storage.close(file) }
    var reader = RDBReader(source: StorageSource(storage: storage, file: file), name: path, chunkBytes: chunkBytes)
    var options = options
    options.onDatabaseSize = cappedSizeHints(options.onDatabaseSize, fileBytes: try storage.size(file))
    return try reader.load(options: options, body)
}

/// `hint` with every size capped at what a file of `fileBytes` can hold (a key takes at least
/// three bytes: type, key length, value), so a damaged or hostile RESIZEDB cannot make the
/// loader allocate tables for billions of keys before the file turns out to be short.
func cappedSizeHints(
    _ hint: (@Sendable (Int, Int) -> Void)?, fileBytes: Int64
) -> (@Sendable (Int, Int) -> Void)? {
    guard let hint else { return nil }
    let most = Int(clamping: fileBytes / 3)
    return { database, keys in hint(database, Swift.min(keys, most)) }
}

/// Counts the bytes read into `progress.loadedBytes` (INFO's `loading_loaded_bytes`).
struct ProgressSource<Base: ByteSource>: ByteSource {
    var base: Base
    let progress: AOFLoadingStatus?

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        let count = try base.read(into: buffer)
        progress?.loadedBytes.add(Int64(count), ordering: .relaxed)
        return count
    }
}
