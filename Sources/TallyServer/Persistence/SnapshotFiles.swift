// SnapshotFiles: writing keyspace snapshots as RDB files (dump.rdb, AOF bases) and reading them back.
import Glibc
import TallyKeyspace
import TallyPersistence

/// RDB file helpers shared by SAVE/BGSAVE, AOF rewrites and start-up loading.
enum SnapshotFiles {
    /// Writer options for a file written now.
    static func options(compression: Bool, checksum: Bool, aofBase: Bool) -> RDBWriterOptions {
        var options = RDBWriterOptions()
        options.compression = compression
        options.checksum = checksum
        options.aofBase = aofBase
        options.creationTimeSeconds = Int64(time(nil))
        options.usedMemoryBytes = residentBytes()
        return options
    }

    /// Writes `snapshot` to `directory/name` through atomic replace; returns the file size.
    /// Each database gets exact RESIZEDB hints, as Redis writes them.
    @discardableResult
    static func write(
        _ snapshot: KeyspaceSnapshot, storage: PosixStorage, directory: String, name: String,
        options: RDBWriterOptions, incrementalFsync: Bool
    ) throws -> Int64 {
        try atomicReplace(storage, directory: directory, name: name, incrementalFsync: incrementalFsync) { sink in
            var writer = RDBWriter(sink: sink, options: options)
            try writer.writeHeader()
            for database in 0..<snapshot.databaseCount {
                let keys = snapshot.keyCount(database: database)
                if keys == 0 { continue }
                try writer.beginDatabase(
                    database, keyCount: keys, expiringKeyCount: snapshot.expiringKeyCount(database: database))
                try snapshot.forEachEntry(database: database) { key, entry in
                    try writer.writeEntry(key: key, entry: entry)
                }
            }
            sink = try writer.finish()
        }
    }

    /// Writes an AOF base from a rewrite walker. The walker visits databases in order but does
    /// not know their sizes, so RESIZEDB carries 0 (a hint only: Redis and redis-check-rdb
    /// accept any value there).
    static func writeBase(
        _ walk: AOFEntryWalker, storage: PosixStorage, directory: String, name: String, options: RDBWriterOptions
    ) throws -> Int64 {
        try atomicReplace(storage, directory: directory, name: name, incrementalFsync: true) { sink in
            var writer = RDBWriter(sink: sink, options: options)
            try writer.writeHeader()
            var current = -1
            try walk { database, key, entry in
                if database != current {
                    try writer.beginDatabase(database, keyCount: 0, expiringKeyCount: 0)
                    current = database
                }
                try writer.writeEntry(key: Key(key), entry: entry)
            }
            sink = try writer.finish()
        }
    }

    /// Read size for loading RDB files: large enough to amortize read(2), small enough that
    /// zero-filling the buffer costs nothing noticeable for the tiny files most starts load.
    static let loadChunkBytes = 64 * 1024

    /// Loads an RDB file (dump.rdb, an AOF base or preamble), calling `body` for each key.
    static func load(
        storage: PosixStorage, path: String, options: RDBLoadOptions,
        _ body: (_ database: Int, _ key: Key, _ entry: Entry) throws -> Void
    ) throws -> RDBLoadResult {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        var reader = RDBReader(
            source: StorageSource(storage: storage, file: file), name: path, chunkBytes: loadChunkBytes)
        return try reader.load(options: options, body)
    }

    /// Visits a snapshot database by database (the order RDB and RESP bases need).
    static func walker(_ snapshot: KeyspaceSnapshot) -> AOFEntryWalker {
        { visit in
            for database in 0..<snapshot.databaseCount {
                try snapshot.forEachEntry(database: database) { key, entry in try visit(database, key.bytes, entry) }
            }
        }
    }

    /// Resident set size from /proc/self/statm (the `used-mem` aux field; informational only).
    static func residentBytes() -> Int64 {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 128)
        guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let pages = Int64(fields[1]) else { return 0 }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
