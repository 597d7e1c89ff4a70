// SnapshotFiles: RDB helpers for AOF bases (options, walker-driven writes) and the used-mem aux field.
import Glibc
import TallyKeyspace
import TallyPersistence

/// RDB file helpers for AOF rewrites and start-up loading (dump.rdb itself is SnapshotController's).
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
