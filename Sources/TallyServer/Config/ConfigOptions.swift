// ConfigOptions: the single option table (name, kind, default, mutability) behind config files,
// command-line overrides, CONFIG GET and CONFIG SET.
import TallyCommands
import TallyProtocol

/// How an option's arguments are validated and normalized.
public enum ConfigKind: Sendable {
    /// `yes` / `no`.
    case bool
    /// A signed integer within bounds.
    case integer(min: Int64, max: Int64)
    /// A byte size with optional unit (`512mb`, `1gb`, `64k`), stored as bytes.
    case memory(min: Int64, max: Int64)
    /// One of a fixed set of lowercase words.
    case enumeration([String])
    /// Any single string.
    case string
    /// `save` points: `""` or pairs of `<seconds> <changes>`.
    case savePoints
    /// One or more addresses (`bind`).
    case addressList
    /// An octal file mode (`unixsocketperm`).
    case octal
    /// `client-output-buffer-limit`: `<class> <hard> <soft> <soft seconds>` groups.
    case outputBufferLimits
    /// `notify-keyspace-events`: class letters, stored in Redis's canonical order.
    case keyspaceEvents
    /// `latency-tracking-info-percentiles`: percentiles in [0, 100], stored as `%f` with the
    /// trailing zeros cut (config.c setConfigLatencyTrackingInfoPercentilesOutputOption).
    case percentiles
    /// `replicaof`: `<host> <port>`, stored as "host port" ("" when this server is a primary).
    case hostAndPort
    /// A byte size as `.memory`, or a percentage `N%` of maxmemory (config.c PERCENT_CONFIG:
    /// `maxmemory-clients`), stored as written ("10%").
    case memoryOrPercent
    /// `oom-score-adj-values`: three integers in -2000...2000 (config.c
    /// setConfigOOMScoreAdjValuesOption), stored space-separated.
    case oomScoreValues
}

/// One row of the option table.
public struct ConfigOption: Sendable {
    /// Lowercase name as written in redis.conf.
    public let name: String
    /// Validation rules.
    public let kind: ConfigKind
    /// Default value in normalized form.
    public let defaultValue: String
    /// Whether CONFIG SET may change it.
    public let isMutable: Bool

    init(_ name: String, _ kind: ConfigKind, _ defaultValue: String, mutable: Bool = true) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.isMutable = mutable
    }

    /// Validates `arguments` and returns the normalized value, or Redis's error text.
    public func normalize(_ arguments: [String]) -> Result<String, ConfigError> {
        switch kind {
        case .savePoints:
            return normalizeSave(arguments)
        case .addressList:
            guard !arguments.isEmpty else { return .failure(ConfigError("wrong number of arguments")) }
            return .success(arguments.joined(separator: " "))
        case .outputBufferLimits:
            return ClientLimits.normalizeOutputBufferLimits(arguments)
        case .percentiles:
            return normalizePercentiles(arguments)
        case .oomScoreValues:
            let words = arguments.flatMap { $0.split(separator: " ").map(String.init) }
            guard words.count == 3 else { return .failure(ConfigError("wrong number of arguments")) }
            var values: [String] = []
            for word in words {
                guard let value = Int(word), value >= -2000 && value <= 2000 else {
                    return .failure(
                        ConfigError("Invalid oom-score-adj-values, elements must be between -2000 and 2000."))
                }
                values.append(String(value))
            }
            return .success(values.joined(separator: " "))
        case .hostAndPort:
            // config.c loadServerConfigFromString: exactly host and port, the port in 0...65535.
            // No arguments clears it (REPLICAOF NO ONE); a config file line always has two.
            if arguments.isEmpty { return .success("") }
            guard arguments.count == 2 else { return .failure(ConfigError("wrong number of arguments")) }
            guard let port = Int(arguments[1]), port >= 0 && port <= 65535 else {
                return .failure(ConfigError("Invalid master port"))
            }
            return .success(arguments[0] + " " + String(port))
        default:
            break
        }
        guard arguments.count == 1 else { return .failure(ConfigError("wrong number of arguments")) }
        let text = arguments[0]
        switch kind {
        case .bool:
            switch text.lowercased() {
            case "yes": return .success("yes")
            case "no": return .success("no")
            default: return .failure(ConfigError("argument must be 'yes' or 'no'"))
            }
        case .integer(let minimum, let maximum):
            guard let value = parseRedisInteger(Array(text.utf8)) else {
                return .failure(ConfigError("argument couldn't be parsed into an integer"))
            }
            guard value >= minimum && value <= maximum else {
                return .failure(ConfigError("argument must be between \(minimum) and \(maximum) inclusive"))
            }
            return .success(String(value))
        case .memory(let minimum, let maximum):
            guard let value = parseMemory(text) else {
                return .failure(ConfigError("argument must be a memory value"))
            }
            guard value >= minimum && value <= maximum else {
                return .failure(ConfigError("argument must be between \(minimum) and \(maximum) inclusive"))
            }
            return .success(String(value))
        case .memoryOrPercent:
            if let value = parseMemory(text) { return .success(String(value)) }
            if text.count > 1, text.hasSuffix("%"), let percent = parseRedisInteger(Array(text.dropLast().utf8)),
               percent >= 0 {
                guard percent <= 100 else {
                    return .failure(ConfigError("percentage argument must be less or equal to 100"))
                }
                return .success(String(percent) + "%")
            }
            return .failure(ConfigError("argument must be a memory or percent value"))
        case .enumeration(let words):
            let lowered = text.lowercased()
            guard words.contains(lowered) else {
                return .failure(
                    ConfigError("argument(s) must be one of the following: " + words.joined(separator: ", ")))
            }
            return .success(lowered)
        case .octal:
            guard !text.isEmpty, let value = Int(text, radix: 8), value >= 0, value <= 0o777 else {
                return .failure(ConfigError("argument couldn't be parsed into an integer"))
            }
            return .success(String(value, radix: 8))
        case .keyspaceEvents:
            guard let classes = KeyspaceEventClass(letters: text) else {
                return .failure(ConfigError(KeyspaceEventClass.invalidLettersMessage))
            }
            return .success(classes.letters)
        case .string, .savePoints, .addressList, .outputBufferLimits, .percentiles, .hostAndPort, .oomScoreValues:
            return .success(text)
        }
    }

    private func normalizePercentiles(_ arguments: [String]) -> Result<String, ConfigError> {
        // CONFIG SET passes one string of space-separated values; `""` is the empty list.
        let words = arguments.flatMap { $0.split(separator: " ").map(String.init) }
        var labels: [String] = []
        for word in words {
            guard let value = parsePercentile(word) else {
                return .failure(ConfigError("Invalid latency-tracking-info-percentiles parameters"))
            }
            guard value >= 0 && value <= 100 else {
                return .failure(
                    ConfigError("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"))
            }
            labels.append(percentileLabel(value))
        }
        return .success(labels.joined(separator: " "))
    }

    private func normalizeSave(_ arguments: [String]) -> Result<String, ConfigError> {
        // Both `save ""` and `save "3600 1 300 100"` (CONFIG SET form) are accepted, as in Redis.
        let words = arguments.flatMap { $0.split(separator: " ").map(String.init) }
        if words.isEmpty { return .success("") }
        guard words.count % 2 == 0 else { return .failure(ConfigError("Invalid save parameters")) }
        var normalized: [String] = []
        for word in words {
            guard let value = parseRedisInteger(Array(word.utf8)), value >= 0 else {
                return .failure(ConfigError("Invalid save parameters"))
            }
            normalized.append(String(value))
        }
        return .success(normalized.joined(separator: " "))
    }
}

/// A configuration error message (the text after the `>>>` line, or inside CONFIG SET's error).
public struct ConfigError: Error, Sendable, Equatable {
    /// Redis's wording.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
}

/// Parses a Redis memory size: digits with an optional `b`, `k`, `kb`, `m`, `mb`, `g`, `gb` unit
/// (case-insensitive; `k` = 1000, `kb` = 1024, as in Redis's memtoull).
public func parseMemory(_ text: String) -> Int64? {
    let lowered = text.lowercased()
    let units: [(String, Int64)] = [
        ("kb", 1024), ("mb", 1024 * 1024), ("gb", 1024 * 1024 * 1024),
        ("k", 1000), ("m", 1_000_000), ("g", 1_000_000_000), ("b", 1),
    ]
    var digits = Substring(lowered)
    var multiplier: Int64 = 1
    for (suffix, factor) in units where lowered.hasSuffix(suffix) {
        digits = digits.dropLast(suffix.count)
        multiplier = factor
        break
    }
    guard !digits.isEmpty, digits.allSatisfy({ $0 >= "0" && $0 <= "9" }), let value = Int64(digits) else {
        return nil
    }
    let (product, overflow) = value.multipliedReportingOverflow(by: multiplier)
    return overflow ? nil : product
}

/// Every option Tally understands, with Redis 7.0.15's defaults.
public enum ConfigTable {
    static let mb: Int64 = 1024 * 1024
    static let longMax = Int64.max

    /// The rows, in the order CONFIG GET * reports them.
    public static let options: [ConfigOption] = [
        ConfigOption("port", .integer(min: 0, max: 65535), "6379", mutable: true),
        ConfigOption("bind", .addressList, "127.0.0.1 -::1", mutable: true),
        ConfigOption("unixsocket", .string, "", mutable: false),
        ConfigOption("unixsocketperm", .octal, "0", mutable: false),
        ConfigOption("protected-mode", .bool, "yes"),
        ConfigOption("tcp-backlog", .integer(min: 0, max: Int64(Int32.max)), "511", mutable: false),
        ConfigOption("tcp-keepalive", .integer(min: 0, max: Int64(Int32.max)), "300"),
        ConfigOption("timeout", .integer(min: 0, max: Int64(Int32.max)), "0"),
        ConfigOption("maxclients", .integer(min: 1, max: Int64(Int32.max)), "10000"),
        ConfigOption("io-threads", .integer(min: 1, max: 128), "0", mutable: false),
        ConfigOption("shards", .integer(min: 1, max: 1024), "0", mutable: false),
        ConfigOption("databases", .integer(min: 1, max: Int64(Int32.max)), "16", mutable: false),
        ConfigOption("daemonize", .bool, "no", mutable: false),
        ConfigOption("pidfile", .string, "", mutable: false),
        ConfigOption("loglevel", .enumeration(["debug", "verbose", "notice", "warning", "nothing"]), "notice"),
        ConfigOption("logfile", .string, "", mutable: false),
        ConfigOption("hz", .integer(min: 0, max: Int64(Int32.max)), "10"),
        ConfigOption("requirepass", .string, ""),
        ConfigOption("dir", .string, "./", mutable: false),
        ConfigOption("dbfilename", .string, "dump.rdb"),
        ConfigOption("save", .savePoints, "3600 1 300 100 60 10000"),
        ConfigOption("rdbcompression", .bool, "yes"),
        ConfigOption("rdbchecksum", .bool, "yes"),
        ConfigOption("rdb-save-incremental-fsync", .bool, "yes"),
        ConfigOption("rdb-del-sync-files", .bool, "no"),
        ConfigOption("stop-writes-on-bgsave-error", .bool, "yes"),
        ConfigOption("appendonly", .bool, "yes"),
        ConfigOption("appendfsync", .enumeration(["always", "everysec", "no"]), "everysec"),
        ConfigOption("appendfilename", .string, "appendonly.aof", mutable: false),
        ConfigOption("appenddirname", .string, "appendonlydir", mutable: false),
        ConfigOption("aof-use-rdb-preamble", .bool, "yes"),
        ConfigOption("aof-load-truncated", .bool, "yes"),
        ConfigOption("aof-timestamp-enabled", .bool, "no"),
        ConfigOption("aof-rewrite-incremental-fsync", .bool, "yes"),
        ConfigOption("aof-disable-auto-gc", .bool, "no"),
        ConfigOption("no-appendfsync-on-rewrite", .bool, "no"),
        ConfigOption("auto-aof-rewrite-percentage", .integer(min: 0, max: Int64(Int32.max)), "100"),
        ConfigOption("auto-aof-rewrite-min-size", .memory(min: 0, max: longMax), String(64 * mb)),
        ConfigOption("proto-max-bulk-len", .memory(min: 1024 * 1024, max: longMax), String(512 * mb)),
        ConfigOption("client-query-buffer-limit", .memory(min: 1024 * 1024, max: longMax), String(1024 * mb)),
        ConfigOption(
            "client-output-buffer-limit", .outputBufferLimits,
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"),
        ConfigOption("notify-keyspace-events", .keyspaceEvents, ""),
        ConfigOption("maxmemory", .memory(min: 0, max: longMax), "0"),
        ConfigOption(
            "maxmemory-policy",
            .enumeration([
                "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru", "allkeys-lfu",
                "allkeys-random", "noeviction",
            ]), "noeviction"),
        ConfigOption("maxmemory-samples", .integer(min: 1, max: Int64(Int32.max)), "5"),
        ConfigOption("lfu-log-factor", .integer(min: 0, max: Int64(Int32.max)), "10"),
        ConfigOption("lfu-decay-time", .integer(min: 0, max: Int64(Int32.max)), "1"),
        ConfigOption("hll-sparse-max-bytes", .memory(min: 0, max: longMax), "3000"),
        // The *-value limits are byte sizes (MEMORY_CONFIG in config.c): `1kb` is accepted.
        ConfigOption("hash-max-listpack-entries", .integer(min: 0, max: longMax), "512"),
        ConfigOption("set-max-intset-entries", .integer(min: 0, max: longMax), "512"),
        ConfigOption("hash-max-listpack-value", .memory(min: 0, max: longMax), "64"),
        ConfigOption("hash-max-ziplist-entries", .integer(min: 0, max: longMax), "512"),
        ConfigOption("hash-max-ziplist-value", .memory(min: 0, max: longMax), "64"),
        // Redis 7.0's zset-max-ziplist-* are aliases of zset-max-listpack-*: Tally applies whichever
        // was set last (ServerCommands / Server.swift) to the engine's SortedSetLimits.
        ConfigOption("zset-max-listpack-entries", .integer(min: 0, max: longMax), "128"),
        ConfigOption("zset-max-listpack-value", .memory(min: 0, max: longMax), "64"),
        ConfigOption("zset-max-ziplist-entries", .integer(min: 0, max: longMax), "128"),
        ConfigOption("zset-max-ziplist-value", .memory(min: 0, max: longMax), "64"),
        // Parsed and reported only: Tally's list chunks are always Redis's default 8 KB listpacks
        // (-2), and chunks are never compressed (depth 0); see ListValue.
        ConfigOption("list-max-listpack-size", .integer(min: Int64(Int32.min), max: Int64(Int32.max)), "-2"),
        ConfigOption("list-max-ziplist-size", .integer(min: Int64(Int32.min), max: Int64(Int32.max)), "-2"),
        ConfigOption("list-compress-depth", .integer(min: 0, max: Int64(Int32.max)), "0"),
        ConfigOption("stream-node-max-bytes", .memory(min: 0, max: longMax), "4096"),
        ConfigOption("stream-node-max-entries", .integer(min: 0, max: longMax), "100"),
        ConfigOption("lazyfree-lazy-eviction", .bool, "no"),
        ConfigOption("lazyfree-lazy-expire", .bool, "no"),
        ConfigOption("lazyfree-lazy-server-del", .bool, "no"),
        ConfigOption("lazyfree-lazy-user-del", .bool, "no"),
        ConfigOption("always-show-logo", .bool, "no", mutable: false),
        ConfigOption("set-proc-title", .bool, "yes", mutable: false),
        ConfigOption("active-expire-effort", .integer(min: 1, max: 10), "1"),
        ConfigOption("slowlog-log-slower-than", .integer(min: -1, max: longMax), "10000"),
        ConfigOption("slowlog-max-len", .integer(min: 0, max: longMax), "128"),
        ConfigOption("latency-monitor-threshold", .integer(min: 0, max: longMax), "0"),
        ConfigOption("latency-tracking", .bool, "yes"),
        ConfigOption("latency-tracking-info-percentiles", .percentiles, "50 99 99.9"),
        ConfigOption("busy-reply-threshold", .integer(min: 0, max: longMax), "5000"),
        ConfigOption("lua-time-limit", .integer(min: 0, max: longMax), "5000"),
    ] + primaryReplicationOptions + replicaReplicationOptions + compatibilityOptions

    /// Redis 7.0 options that Debian's /etc/redis/redis.conf and common tooling set, accepted with
    /// Redis's types, bounds and defaults (config.c) so such a file and `CONFIG SET` work, but
    /// without effect in Tally, because the mechanism they tune does not exist here: jemalloc,
    /// incremental rehashing and active defragmentation of Redis's dict, fork-based children and
    /// their CPU lists and OOM scores, syslog, ACL files and logs, client eviction, key tracking,
    /// modules and DEBUG, and a cron whose frequency adapts to the client count.
    static let compatibilityOptions: [ConfigOption] = [
        ConfigOption("activerehashing", .bool, "yes"),
        ConfigOption("dynamic-hz", .bool, "yes"),
        ConfigOption("jemalloc-bg-thread", .bool, "yes"),
        ConfigOption("disable-thp", .bool, "yes", mutable: false),
        ConfigOption("lazyfree-lazy-user-flush", .bool, "no"),
        ConfigOption("oom-score-adj", .enumeration(["no", "yes", "relative", "absolute"]), "no"),
        ConfigOption("oom-score-adj-values", .oomScoreValues, "0 200 800"),
        ConfigOption("proc-title-template", .string, "{title} {listen-addr} {server-mode}"),
        ConfigOption("repl-disable-tcp-nodelay", .bool, "no"),
        ConfigOption("maxmemory-clients", .memoryOrPercent, "0"),
        ConfigOption("maxmemory-eviction-tenacity", .integer(min: 0, max: 100), "10"),
        ConfigOption("shutdown-timeout", .integer(min: 0, max: Int64(Int32.max)), "10"),
        ConfigOption("crash-log-enabled", .bool, "yes"),
        ConfigOption("crash-memcheck-enabled", .bool, "yes"),
        ConfigOption("ignore-warnings", .string, ""),
        ConfigOption("sanitize-dump-payload", .enumeration(["no", "yes", "clients"]), "no"),
        ConfigOption("enable-debug-command", .enumeration(["no", "yes", "local"]), "no", mutable: false),
        ConfigOption("enable-module-command", .enumeration(["no", "yes", "local"]), "no", mutable: false),
        ConfigOption("enable-protected-configs", .enumeration(["no", "yes", "local"]), "no", mutable: false),
        ConfigOption("supervised", .enumeration(["upstart", "systemd", "auto", "no"]), "no", mutable: false),
        ConfigOption("syslog-enabled", .bool, "no", mutable: false),
        ConfigOption("syslog-ident", .string, "redis", mutable: false),
        ConfigOption(
            "syslog-facility",
            .enumeration(["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]),
            "local0", mutable: false),
        ConfigOption("activedefrag", .bool, "no"),
        ConfigOption("active-defrag-cycle-min", .integer(min: 1, max: 99), "1"),
        ConfigOption("active-defrag-cycle-max", .integer(min: 1, max: 99), "25"),
        ConfigOption("active-defrag-ignore-bytes", .memory(min: 1, max: longMax), String(100 * mb)),
        ConfigOption("active-defrag-max-scan-fields", .integer(min: 1, max: longMax), "1000"),
        ConfigOption("active-defrag-threshold-lower", .integer(min: 0, max: 1000), "10"),
        ConfigOption("active-defrag-threshold-upper", .integer(min: 0, max: 1000), "100"),
        ConfigOption("tracking-table-max-keys", .integer(min: 0, max: longMax), "1000000"),
        ConfigOption("propagation-error-behavior", .enumeration(["ignore", "panic", "panic-on-replicas"]), "ignore"),
        ConfigOption("io-threads-do-reads", .bool, "no", mutable: false),
        ConfigOption("socket-mark-id", .integer(min: 0, max: Int64(UInt32.max)), "0", mutable: false),
        ConfigOption("server_cpulist", .string, "", mutable: false),
        ConfigOption("bio_cpulist", .string, "", mutable: false),
        ConfigOption("aof_rewrite_cpulist", .string, "", mutable: false),
        ConfigOption("bgsave_cpulist", .string, "", mutable: false),
        ConfigOption("acllog-max-len", .integer(min: 0, max: longMax), "128"),
        ConfigOption("acl-pubsub-default", .enumeration(["allchannels", "resetchannels"]), "resetchannels"),
        ConfigOption("aclfile", .string, "", mutable: false),
    ]

    /// The primary side of replication (replication.c; defaults and bounds from config.c 7.0).
    /// Redis 7.0 made diskless sync the default (`repl-diskless-sync yes`, 5 s delay).
    static let primaryReplicationOptions: [ConfigOption] = [
        ConfigOption("repl-backlog-size", .memory(min: 1, max: longMax), String(mb)),
        ConfigOption("repl-backlog-ttl", .integer(min: 0, max: longMax), "3600"),
        ConfigOption("repl-diskless-sync", .bool, "yes"),
        ConfigOption("repl-diskless-sync-delay", .integer(min: 0, max: Int64(Int32.max)), "5"),
        ConfigOption("repl-diskless-sync-max-replicas", .integer(min: 0, max: Int64(Int32.max)), "0"),
        ConfigOption("repl-ping-replica-period", .integer(min: 1, max: Int64(Int32.max)), "10"),
        ConfigOption("repl-ping-slave-period", .integer(min: 1, max: Int64(Int32.max)), "10"),
        ConfigOption("repl-timeout", .integer(min: 1, max: Int64(Int32.max)), "60"),
        ConfigOption("min-replicas-to-write", .integer(min: 0, max: Int64(Int32.max)), "0"),
        ConfigOption("min-slaves-to-write", .integer(min: 0, max: Int64(Int32.max)), "0"),
        ConfigOption("min-replicas-max-lag", .integer(min: 0, max: Int64(Int32.max)), "10"),
        ConfigOption("min-slaves-max-lag", .integer(min: 0, max: Int64(Int32.max)), "10"),
    ]

    /// The replica side of replication (PrimaryLink.swift), with Redis 7.0's slave-* aliases.
    /// `replicaof` is set by the config file, --replicaof and the REPLICAOF command, never by
    /// CONFIG SET (immutable there, as in Redis). `repl-timeout` serves both sides (above).
    static let replicaReplicationOptions: [ConfigOption] = [
        ConfigOption("replicaof", .hostAndPort, "", mutable: false),
        ConfigOption("slaveof", .hostAndPort, "", mutable: false),
        ConfigOption("masterauth", .string, ""),
        ConfigOption("masteruser", .string, ""),
        ConfigOption("replica-read-only", .bool, "yes"),
        ConfigOption("slave-read-only", .bool, "yes"),
        ConfigOption("replica-serve-stale-data", .bool, "yes"),
        ConfigOption("slave-serve-stale-data", .bool, "yes"),
        ConfigOption("replica-priority", .integer(min: 0, max: Int64(Int32.max)), "100"),
        ConfigOption("slave-priority", .integer(min: 0, max: Int64(Int32.max)), "100"),
        ConfigOption("replica-announce-ip", .string, ""),
        ConfigOption("slave-announce-ip", .string, ""),
        ConfigOption("replica-announce-port", .integer(min: 0, max: 65535), "0"),
        ConfigOption("slave-announce-port", .integer(min: 0, max: 65535), "0"),
        ConfigOption("replica-announced", .bool, "yes"),
        ConfigOption("replica-ignore-maxmemory", .bool, "yes"),
        ConfigOption("slave-ignore-maxmemory", .bool, "yes"),
        ConfigOption("replica-ignore-disk-write-errors", .bool, "no"),
        // Parsed and reported only: the replica always loads the transferred RDB from its disk
        // file, as Redis's default `disabled` does, and frees the old dataset synchronously.
        ConfigOption("repl-diskless-load", .enumeration(["disabled", "on-empty-db", "swapdb"]), "disabled"),
        ConfigOption("replica-lazy-flush", .bool, "no"),
        ConfigOption("slave-lazy-flush", .bool, "no"),
    ]

    /// Options that are one setting under two names (Redis 7.0's alias configs): setting one sets
    /// both, from a config file or CONFIG SET.
    public static let aliases: [String: String] = {
        var pairs = [
            "busy-reply-threshold": "lua-time-limit", "lua-time-limit": "busy-reply-threshold",
            "repl-ping-replica-period": "repl-ping-slave-period", "repl-ping-slave-period": "repl-ping-replica-period",
            "min-replicas-to-write": "min-slaves-to-write", "min-slaves-to-write": "min-replicas-to-write",
            "min-replicas-max-lag": "min-slaves-max-lag", "min-slaves-max-lag": "min-replicas-max-lag",
        ]
        for replicaName in ["replicaof", "replica-read-only", "replica-serve-stale-data", "replica-priority",
                            "replica-announce-ip", "replica-announce-port", "replica-ignore-maxmemory",
                            "replica-lazy-flush"] {
            let slaveName = replicaName == "replicaof" ? "slaveof" : "slave" + replicaName.dropFirst("replica".count)
            pairs[replicaName] = slaveName
            pairs[slaveName] = replicaName
        }
        return pairs
    }()

    /// Redis 7.0's listpack options and their pre-7.0 ziplist names, aliases like `aliases` (config.c
    /// createSizeTConfig/createIntConfig(name, alias, ...)): a file written for Redis 6 still applies.
    public static let encodingAliases: [String: String] = {
        var map: [String: String] = [:]
        for (name, old) in [
            ("hash-max-listpack-entries", "hash-max-ziplist-entries"),
            ("hash-max-listpack-value", "hash-max-ziplist-value"),
            ("zset-max-listpack-entries", "zset-max-ziplist-entries"),
            ("zset-max-listpack-value", "zset-max-ziplist-value"),
            ("list-max-listpack-size", "list-max-ziplist-size"),
        ] {
            map[name] = old
            map[old] = name
        }
        return map
    }()

    private static let index: [String: Int] = {
        var map: [String: Int] = [:]
        for (position, option) in options.enumerated() { map[option.name] = position }
        return map
    }()

    /// The row named `name` (case-insensitive).
    public static func option(named name: String) -> ConfigOption? {
        index[name.lowercased()].map { options[$0] }
    }
}
