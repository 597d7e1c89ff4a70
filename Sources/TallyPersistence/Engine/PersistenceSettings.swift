// PersistenceSettings: the one typed value holding every persistence option (RDB and AOF).
import TallyKeyspace

/// One `save <seconds> <changes>` rule.
public struct SavePoint: Sendable, Equatable {
    /// Seconds since the last successful save.
    public var seconds: Int64
    /// Changes needed.
    public var changes: Int64

    /// Creates a rule.
    public init(seconds: Int64, changes: Int64) {
        self.seconds = seconds
        self.changes = changes
    }

    /// Redis's defaults: `3600 1`, `300 100`, `60 10000`.
    public static let defaults = [
        SavePoint(seconds: 3600, changes: 1), SavePoint(seconds: 300, changes: 100),
        SavePoint(seconds: 60, changes: 10000),
    ]

    /// Parses a normalized `save` value ("" or "<seconds> <changes> ...").
    public static func parse(_ text: String) -> [SavePoint] {
        let words = text.split(separator: " ").compactMap { Int64($0) }
        return stride(from: 0, to: words.count - 1, by: 2).map { SavePoint(seconds: words[$0], changes: words[$0 + 1]) }
    }
}

/// Every persistence option, with Redis 7.0's defaults. The server builds it from its
/// configuration; CONFIG SET hands the engine an updated copy (`PersistenceEngine.apply`).
public struct PersistenceSettings: Sendable {
    /// Where dump.rdb lives (the server has already chdir'ed to `dir`, so ".").
    public var directory = "."
    /// `dbfilename`.
    public var rdbFileName = "dump.rdb"
    /// `save` rules; empty disables automatic saves.
    public var savePoints: [SavePoint] = SavePoint.defaults
    /// `rdbcompression`.
    public var compression = true
    /// `rdbchecksum`.
    public var checksum = true
    /// `rdb-save-incremental-fsync`.
    public var incrementalFsync = true
    /// `stop-writes-on-bgsave-error`.
    public var stopWritesOnError = true
    /// Read size when loading RDB files: large enough to amortize read(2), small enough that
    /// zero-filling the buffer costs nothing noticeable for the tiny files most starts load.
    public var loadChunkBytes = 64 * 1024
    /// `appendonly`.
    public var appendOnly = false
    /// `appendfsync`.
    public var fsyncPolicy = AppendFsyncPolicy.everysec
    /// `appenddirname` (relative to `dir`).
    public var appendDirectory = "appendonlydir"
    /// `appendfilename`.
    public var naming = AOFNaming()
    /// `aof-use-rdb-preamble`.
    public var useRDBPreamble = true
    /// `aof-timestamp-enabled`.
    public var timestampsEnabled = false
    /// `aof-load-truncated`.
    public var loadTruncated = true
    /// `auto-aof-rewrite-percentage` (0 disables automatic rewrites).
    public var rewritePercentage: Int64 = 100
    /// `auto-aof-rewrite-min-size`, bytes.
    public var rewriteMinimumBytes: Int64 = 64 * 1024 * 1024
    /// `databases`.
    public var databases = 16
    /// `zset-max-listpack-entries`/`-value`: the form sorted sets take when loaded.
    public var sortedSetLimits = SortedSetLimits.standard
    /// `list-max-listpack-size`: how full the chunks of loaded lists grow.
    public var listFill = ListFill.standard
    /// `hash-max-listpack-entries`/`-value`: the encoding loaded hashes take.
    public var hashLimits = HashLimits.standard

    /// Redis's defaults.
    public init() {}

    /// Writer options for an RDB file (dump.rdb or an AOF base) written at `nowMilliseconds`.
    func rdbOptions(nowMilliseconds: Int64, usedMemoryBytes: Int64, aofBase: Bool) -> RDBWriterOptions {
        var options = RDBWriterOptions()
        options.compression = compression
        options.checksum = checksum
        options.aofBase = aofBase
        options.creationTimeSeconds = nowMilliseconds / 1000
        options.usedMemoryBytes = usedMemoryBytes
        return options
    }
}
