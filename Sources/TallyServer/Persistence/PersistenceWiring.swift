// PersistenceWiring: tally-server's persistence engine: PosixStorage, the system clock, ServerLogger, exit on fatal.
import Glibc
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol

/// The engine `tally-server` runs.
typealias ServerPersistence = PersistenceEngine<PosixStorage>

extension PersistenceSettings {
    /// The persistence options of `configuration` (dump.rdb lives in `dir`, already the cwd).
    init(_ configuration: ServerConfiguration) {
        self.init()
        rdbFileName = configuration.string("dbfilename")
        savePoints = configuration.savePoints.map { SavePoint(seconds: $0.seconds, changes: $0.changes) }
        compression = configuration.bool("rdbcompression")
        checksum = configuration.bool("rdbchecksum")
        incrementalFsync = configuration.bool("rdb-save-incremental-fsync")
        stopWritesOnError = configuration.bool("stop-writes-on-bgsave-error")
        appendOnly = configuration.bool("appendonly")
        fsyncPolicy = AppendFsyncPolicy(rawValue: configuration.string("appendfsync")) ?? .everysec
        appendDirectory = configuration.string("appenddirname")
        naming = AOFNaming(appendFileName: configuration.string("appendfilename"))
        useRDBPreamble = configuration.bool("aof-use-rdb-preamble")
        timestampsEnabled = configuration.bool("aof-timestamp-enabled")
        loadTruncated = configuration.bool("aof-load-truncated")
        rewritePercentage = configuration.integer("auto-aof-rewrite-percentage")
        rewriteMinimumBytes = configuration.integer("auto-aof-rewrite-min-size")
        databases = Int(configuration.integer("databases"))
        sortedSetLimits = configuration.sortedSetLimits
        listFill = configuration.listFill
        hashLimits = configuration.hashLimits
    }

    /// `self` with CONFIG SET `name` `value` (already normalized) applied; nil for options
    /// persistence does not read.
    func setting(_ name: String, _ value: String) -> PersistenceSettings? {
        var next = self
        let yes = value == "yes"
        switch name {
        case "appendonly": next.appendOnly = yes
        case "zset-max-listpack-entries", "zset-max-ziplist-entries":
            next.sortedSetLimits.maxEntries = Int(value) ?? next.sortedSetLimits.maxEntries
        case "zset-max-listpack-value", "zset-max-ziplist-value":
            next.sortedSetLimits.maxValueBytes = Int(value) ?? next.sortedSetLimits.maxValueBytes
        case "list-max-listpack-size", "list-max-ziplist-size":
            next.listFill = Int(value).map(ListFill.init) ?? next.listFill
        case "hash-max-listpack-entries", "hash-max-ziplist-entries":
            next.hashLimits.maxEntries = Int(value) ?? next.hashLimits.maxEntries
        case "hash-max-listpack-value", "hash-max-ziplist-value":
            next.hashLimits.maxValueBytes = Int(value) ?? next.hashLimits.maxValueBytes
        case "appendfsync":
            guard let policy = AppendFsyncPolicy(rawValue: value) else { return nil }
            next.fsyncPolicy = policy
        case "save": next.savePoints = SavePoint.parse(value)
        case "stop-writes-on-bgsave-error": next.stopWritesOnError = yes
        case "dbfilename": next.rdbFileName = value
        case "aof-use-rdb-preamble": next.useRDBPreamble = yes
        case "aof-timestamp-enabled": next.timestampsEnabled = yes
        case "aof-load-truncated": next.loadTruncated = yes
        case "rdbcompression": next.compression = yes
        case "rdbchecksum": next.checksum = yes
        case "rdb-save-incremental-fsync": next.incrementalFsync = yes
        case "auto-aof-rewrite-percentage": next.rewritePercentage = Int64(value) ?? next.rewritePercentage
        case "auto-aof-rewrite-min-size": next.rewriteMinimumBytes = Int64(value) ?? next.rewriteMinimumBytes
        default: return nil
        }
        return next
    }
}

extension PersistenceEngine where S == PosixStorage {
    /// The engine for `configuration`, logging to `log`. A fatal AOF outcome (a failed write or
    /// fsync under `appendfsync always`) exits the process, as Redis does: acknowledged writes
    /// are promised to be on disk, and the engine already holds every later reply.
    static func make(configuration: ServerConfiguration, log: ServerLogger) -> ServerPersistence {
        ServerPersistence(
            storage: PosixStorage(), settings: PersistenceSettings(configuration), clock: SystemClock(),
            log: { level, message in
                switch level {
                case .warning: log.log(.warning, message)
                case .notice: log.log(.notice, message)
                case .verbose: log.log(.verbose, message)
                }
            },
            jobs: .thread, usedMemoryBytes: { residentBytes() },
            onFatal: { message in
                log.log(.warning, message)
                exit(1)
            })
    }

    /// CONFIG SET of one option; returns an error text to refuse it, nil to accept it.
    func configurationChanged(_ name: String, value: String) -> String? {
        guard let next = settings.setting(name, value) else { return nil }
        return apply(next)
    }

    /// Loads the dataset into `engine`, replaying AOF commands through it as a client would
    /// (a client the -LOADING gate lets through: `isReplayingLog`), on `lanes` threads
    /// (`ParallelReplay`; 1 replays everything on the calling thread).
    func load(into engine: CommandEngine, lanes: Int) throws(PersistenceStartupError) {
        let replay = ParallelReplay(engine: engine, lanes: lanes)
        defer { replay.finish() }
        try load(into: engine) { arguments, database in
            guard arguments.count > 0, let row = arguments.withUnsafeBytes(of: 0, { engine.table.lookup($0) }) else {
                let name = arguments.count > 0 ? String(decoding: arguments[0], as: UTF8.self) : ""
                throw AOFReplayError(reason: "Unknown command '\(name)' reading the append only file")
            }
            replay.replay(arguments, row: row, database: database)
        } replayBarrier: {
            replay.barrier()
        }
    }
}

/// Resident set size from /proc/self/statm (the `used-mem` aux field; informational only).
func residentBytes() -> Int64 {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let fields = text.split(separator: " ")
    guard fields.count >= 2, let pages = Int64(fields[1]) else { return 0 }
    return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
}

extension ServerConfiguration {
    /// `zset-max-listpack-entries`/`-value`; Redis 7.0's `zset-max-ziplist-*` aliases are separate
    /// options here, so a non-default alias wins.
    var sortedSetLimits: SortedSetLimits {
        SortedSetLimits(
            maxEntries: aliasedLimit("zset-max-listpack-entries", "zset-max-ziplist-entries", 128),
            maxValueBytes: aliasedLimit("zset-max-listpack-value", "zset-max-ziplist-value", 64))
    }

    /// `hash-max-listpack-entries`/`-value`, with their `ziplist` aliases as for sorted sets.
    var hashLimits: HashLimits {
        HashLimits(
            maxEntries: aliasedLimit("hash-max-listpack-entries", "hash-max-ziplist-entries", 512),
            maxValueBytes: aliasedLimit("hash-max-listpack-value", "hash-max-ziplist-value", 64))
    }

    /// A `listpack` limit whose `ziplist` alias is a separate option: the alias wins when it is
    /// not at the default.
    private func aliasedLimit(_ name: String, _ alias: String, _ standard: Int64) -> Int {
        let aliased = integer(alias)
        return Int(clamping: aliased != standard ? aliased : integer(name))
    }

    /// `list-max-listpack-size`; its Redis 7.0 alias `list-max-ziplist-size` is a separate option
    /// here, so a non-default alias wins (a config file may use either name).
    var listFill: ListFill {
        let aliased = integer("list-max-ziplist-size")
        return ListFill(Int(clamping: aliased != -2 ? aliased : integer("list-max-listpack-size")))
    }
}
