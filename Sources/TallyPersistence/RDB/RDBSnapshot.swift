// RDBSnapshot: writes a point-in-time KeyspaceSnapshot as dump.rdb (atomically) and loads dump.rdb into a Keyspace.
import Synchronization
import TallyKeyspace

/// Streams every non-empty database of `snapshot` through `writer` (header and trailer included).
/// The snapshot releases each shard's image after it is visited, so memory falls as it goes.
public func writeSnapshot<Sink: ByteSink>(
    _ snapshot: KeyspaceSnapshot, to sink: Sink, options: RDBWriterOptions
) throws -> Sink {
    var writer = RDBWriter(sink: sink, options: options)
    try writer.writeHeader()
    for database in 0..<snapshot.databaseCount {
        let keys = snapshot.keyCount(database: database)
        guard keys > 0 else { continue }
        try writer.beginDatabase(database, keyCount: keys,
                                 expiringKeyCount: snapshot.expiringKeyCount(database: database))
        try snapshot.forEachEntry(database: database) { key, entry in
            try writer.writeEntry(key: key, entry: entry)
        }
    }
    return try writer.finish()
}

/// Saves `snapshot` to `directory/fileName` with the atomic-replace protocol (temp file, fsync,
/// rename, directory fsync). Returns the file size in bytes.
@discardableResult
public func saveSnapshot<S: Storage>(
    _ snapshot: KeyspaceSnapshot, storage: S, directory: String, fileName: String,
    options: RDBWriterOptions, incrementalFsync: Bool = true
) throws -> Int64 {
    try atomicReplace(storage, directory: directory, name: fileName, incrementalFsync: incrementalFsync) { sink in
        sink = try writeSnapshot(snapshot, to: sink, options: options)
    }
}

/// Loads `directory/fileName` into `keyspace`, dropping keys already expired at `nowMilliseconds`.
/// A missing file loads nothing and returns nil (Redis starts empty then); an empty one is an
/// error, as in Redis.
public func loadSnapshotFile<S: Storage>(
    storage: S, directory: String, fileName: String, into keyspace: Keyspace, nowMilliseconds: Int64,
    chunkBytes: Int = 1 << 20, progress: AOFLoadingStatus? = nil
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
    let options = RDBLoadOptions(dropExpiredBefore: nowMilliseconds, databaseCount: keyspace.databaseCount)
    return try reader.load(options: options) { database, key, entry in
        keyspace.insertLoaded(database: database, key: key, entry: entry)
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
    return try reader.load(options: options, body)
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
