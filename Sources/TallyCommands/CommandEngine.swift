// CommandEngine: dispatch (lookup, auth, arity, MULTI queuing), statistics, logging and active expiry.
import Glibc
import Synchronization
import TallyKeyspace
import TallyProtocol

/// Engine settings fixed at start (those changeable at runtime have setters on the engine).
public struct EngineConfiguration: Sendable {
    /// Number of logical databases (`databases`).
    public var databases: Int
    /// Number of keyspace shards: a power of two in 1...64.
    public var shards: Int
    /// `requirepass`; nil = no password.
    public var requirePass: [UInt8]?
    /// `proto-max-bulk-len`: the largest string SETRANGE/APPEND may build.
    public var maxStringBytes: Int

    /// Creates a configuration.
    public init(databases: Int = 16, shards: Int = 16, requirePass: [UInt8]? = nil,
                maxStringBytes: Int = 512 * 1024 * 1024) {
        self.databases = databases
        self.shards = shards
        self.requirePass = requirePass
        self.maxStringBytes = maxStringBytes
    }
}

/// One row of INFO commandstats.
public struct CommandStatisticsRow: Sendable {
    /// Lowercase command name.
    public var name: String
    /// Executions.
    public var calls: Int64
    /// Total time spent executing, in microseconds (`usec`; `usec_per_call` = usec / calls).
    public var microseconds: Int64
    /// Refused before running (arity, NOAUTH, MISCONF).
    public var rejectedCalls: Int64
    /// Ran and replied with an error.
    public var failedCalls: Int64
}

/// What dispatch refuses or skips on a replica (`CommandEngine.setReplicaRole`).
public struct ReplicaRole: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// REPLICAOF host port is in force: keys past their TTL stay until the primary's DEL.
    public static let replica = ReplicaRole(rawValue: 1)
    /// replica-read-only yes: writes from clients other than the primary get -READONLY.
    public static let readOnly = ReplicaRole(rawValue: 2)
    /// The link is not connected and replica-serve-stale-data is no: commands without the
    /// `stale` flag get -MASTERDOWN.
    public static let deniesStaleData = ReplicaRole(rawValue: 4)
    /// replica-ignore-maxmemory yes: a replica neither evicts nor refuses with OOM
    /// (evict.c isReplicaThatIgnoresMaxmemory); the primary's DELs keep it in step.
    public static let ignoresMaxmemory = ReplicaRole(rawValue: 8)
}

/// Executes commands against the sharded keyspace; shared by every I/O thread.
///
/// ```
///  execute(argv) ─► lookup ─► arity/subcommand ─► NOAUTH ─► no-multi ─► OOM ─► MISCONF ─► LOADING ─┐
///                                              (any refusal inside MULTI dooms the transaction)   │
///                                                          +QUEUED ◄── in MULTI? ──► handler ◄────┘
///                                                                                       │ locks shard(s)
///                              reply ◄── unlock ◄── log.append(derived propagation) ◄───┘
/// ```
public final class CommandEngine: Sendable {
    /// The data.
    public let keyspace: Keyspace
    /// Every command, server commands included.
    public let table: CommandTable
    /// Time source for expiry.
    public let clock: any Clock
    /// Settings.
    public let configuration: EngineConfiguration
    /// Clients parked in blocking pops.
    public let blocking = BlockingRegistry()
    /// SLOWLOG's entries and thresholds.
    public let slowLog = SlowLog()
    /// CLIENT PAUSE.
    public let clientPause: ClientPause
    /// LATENCY's events.
    public let latencyMonitor = LatencyMonitor()
    /// `latency-tracking`: per-command latency histograms on (Redis's default) or off.
    public let latencyTracking = Atomic<Bool>(true)
    /// `latency-tracking-info-percentiles`: the percentiles INFO latencystats reports.
    public let latencyPercentiles = Mutex<[Double]>([50, 99, 99.9])
    /// The process's memory figures (MEMORY STATS / DOCTOR), installed by the server.
    public let processMemory = ProcessMemoryReader()
    /// Active expiry's figures for INFO stats.
    public let expiryStatistics = ExpiryStatistics()
    /// Clients in MONITOR mode.
    public let monitors = MonitorFeed()
    /// INFO errorstats and `total_error_replies`.
    public let errorStatistics = ErrorStatistics()
    /// Every pub/sub subscription, shared by all I/O threads.
    public let pubsub = PubSubHub()
    /// CLIENT TRACKING's table of remembered keys and BCAST prefixes (Tracking.swift).
    public let tracking = KeyTracking()
    /// `notify-keyspace-events` and the publishing of keyspace events (KeyspaceEvents.swift).
    public let keyspaceEvents: KeyspaceNotifier
    /// The Lua interpreter and script cache (EVAL, SCRIPT).
    public let scripting = ScriptingRuntime()
    /// The function libraries' interpreter (FUNCTION, FCALL), apart from EVAL's as in Redis 7.0.
    public let functions = ScriptingRuntime(forFunctions: true)
    /// The running script as other threads see it (-BUSY, SCRIPT KILL, busy-reply-threshold).
    public let scriptWatch = ScriptWatch()
    /// The RDB payload codec (FUNCTION DUMP/RESTORE), installed by the server.
    private let payloadCodec = Mutex<(any DumpPayloadCodec)?>(nil)
    private let log = Mutex<(any AppendLog)?>(nil)
    private let hasLog = Atomic<Bool>(false)
    /// The replication stream, while one exists (Redis creates its backlog when the first replica
    /// attaches: until then writes cost nothing more than with no replication at all).
    private let feed = Mutex<(any ReplicationFeed)?>(nil)
    private let hasFeed = Atomic<Bool>(false)
    /// True while the AOF or the replication stream is attached: commands then record what they
    /// propagate (one atomic load per command otherwise).
    private let hasSink = Atomic<Bool>(false)
    /// The highest offset the attached log returned (raised with the shard locks still held),
    /// read once per command to give every reply the durability wait of what it could observe.
    private let appendedHighWater = Atomic<UInt64>(0)
    private let dirty = Atomic<Int64>(0)
    private let password = Mutex<[UInt8]?>(nil)
    private let passwordSet = Atomic<Bool>(false)
    private let nextClientID = Atomic<Int64>(0)
    /// Shard where the next active expiry cycle starts, so a cycle cut short by its time
    /// budget does not starve the shards after it.
    private let expireCursor = Atomic<Int>(0)
    /// `maxmemory` in bytes; 0 = unlimited, and then dispatch does no eviction work at all.
    private let memoryLimit = Atomic<Int>(0)
    /// The bound eviction holds the dataset estimate to: `maxmemory` scaled by what each
    /// estimated byte really costs in heap (see `calibrateMemoryLimit`).
    private let datasetLimit = Atomic<Int>(0)
    /// `maxmemory-policy` as an index into `EvictionPolicy.allCases`.
    private let evictionPolicyIndex = Atomic<Int>(0)
    /// `maxmemory-samples`.
    private let evictionSamples = Atomic<Int>(5)
    /// Shard where the next eviction step starts (spreads victims over shards).
    private let evictionCursor = Atomic<Int>(0)
    /// `hll-sparse-max-bytes`: a sparse HyperLogLog that would grow past it becomes dense.
    private let hyperLogLogSparseLimit = Atomic<Int>(3000)
    /// `set-max-intset-entries`.
    private let intsetLimit = Atomic<Int>(SetValue.defaultMaxIntsetEntries)
    private let lazyUserDel = Atomic<Bool>(false)
    private let lazyUserFlush = Atomic<Bool>(false)
    /// `zset-max-listpack-entries` and `zset-max-listpack-value`.
    private let sortedSetMaxEntries = Atomic<Int>(128)
    private let sortedSetMaxValue = Atomic<Int>(64)
    /// `hash-max-listpack-entries` and `hash-max-listpack-value`.
    private let hashMaxEntries = Atomic<Int>(HashLimits.standard.maxEntries)
    private let hashMaxValue = Atomic<Int>(HashLimits.standard.maxValueBytes)
    /// `list-max-listpack-size`, clamped (see `ListFill`).
    private let listFillValue = Atomic<Int>(ListFill.standard.value)
    /// True while `min-replicas-to-write` is set and fewer good replicas are attached.
    private let lacksGoodReplicas = Atomic<Bool>(false)
    /// True while the dataset loads at start-up (see `setLoading`).
    private let loadingDataset = Atomic<Bool>(false)
    /// This server's replica role as dispatch reads it (`ReplicaRole` bits; 0 = a primary, so
    /// a primary pays one relaxed load per command for it).
    private let replicaRole = Atomic<UInt8>(0)
    /// The PING row: Redis refuses PING too while persistence is failing, so a health check
    /// notices (server.c processCommand).
    private let pingRow: Int
    /// The EXEC row: dispatch judges it by the flags of the commands it would run.
    private let execRow: Int
    /// EXEC, DISCARD, QUIT and RESET: the commands OOM never refuses inside MULTI.
    private let oomExemptRowsInMulti: [Int]

    /// Creates an engine with the built-in command families plus `serverCommands`.
    public init(configuration: EngineConfiguration, clock: any Clock, serverCommands: [CommandSpec]) {
        self.configuration = configuration
        self.clock = clock
        keyspaceEvents = KeyspaceNotifier(hub: pubsub)
        keyspace = Keyspace(databases: configuration.databases, shards: configuration.shards)
        clientPause = ClientPause(expiryGate: keyspace.expiryGate)
        table = CommandTable(CommandEngine.builtinCommands() + serverCommands)
        pingRow = table.lookup(Array("ping".utf8)[...]) ?? -1
        execRow = table.lookup(Array("exec".utf8)[...]) ?? -1
        let table = self.table
        oomExemptRowsInMulti = ["exec", "discard", "quit", "reset"].compactMap { table.lookup(Array($0.utf8)[...]) }
        password.withLock { $0 = configuration.requirePass }
        passwordSet.store(configuration.requirePass != nil, ordering: .relaxed)
        // The shards stamp accesses with this engine's clock from the start (the LRU clock is kept
        // under the default policy too, as in Redis); setMemoryLimit reconfigures them.
        keyspace.configureEviction(.noEviction, clock: clock, lfuLogFactor: LFU.logFactor,
                                   lfuDecayMinutes: LFU.decayMinutes)
        let functions = self.functions
        // Weak: the registry keeps this loader, so a strong capture of the registry would be a
        // cycle that outlives the engine (the dispatch fuzzer builds one engine per input).
        keyspace.functionLibraries.installLoader { [weak libraries = keyspace.functionLibraries] code in
            guard let libraries else { return "no function engine" }
            return FunctionCommands.loadPersisted(code, runtime: functions, registry: libraries)
        }
    }

    /// Every command family implemented in this module.
    static func builtinCommands() -> [CommandSpec] {
        CounterCommands.specs + IncrementWithExpiry.specs + StringCommands.specs + BitmapCommands.specs
            + HyperLogLogCommands.specs + HashCommands.specs + ListCommands.specs + SetCommands.specs
            + SortCommand.specs + StreamCommands.specs + KeyspaceCommands.specs
            + ExpireCommands.specs + TransactionCommands.specs + ConnectionCommands.specs
            + IntrospectionCommands.specs + ObjectCommands.specs + SlowLogCommands.specs
            + HyperLogLogDebugCommands.specs + SortedSetCommands.specs + LatencyCommands.specs + PubSubCommands.specs
            + MonitorCommands.specs + GeoCommands.specs + ScriptingCommands.specs
            + FunctionCommands.specs + ClusterCommands.specs + ModuleCommands.specs
    }

    /// A fresh, unique client id (for sessions the server creates).
    public func makeClientID() -> Int64 { nextClientID.add(1, ordering: .relaxed).newValue }

    /// Installs the payload codec FUNCTION DUMP and FUNCTION RESTORE use.
    public func installDumpCodec(_ codec: any DumpPayloadCodec) { payloadCodec.withLock { $0 = codec } }

    /// The installed payload codec, if any.
    var dumpCodec: (any DumpPayloadCodec)? { payloadCodec.withLock { $0 } }

    // MARK: Log, password, dirty counter

    /// Attaches the AOF (nil detaches it).
    public func attachLog(_ log: (any AppendLog)?) {
        self.log.withLock { $0 = log }
        hasLog.store(log != nil, ordering: .releasing)
        hasSink.store(log != nil || hasFeed.load(ordering: .acquiring), ordering: .releasing)
    }

    /// Attaches the replication stream (nil detaches it: no backlog and no replica).
    public func attachReplicationFeed(_ feed: (any ReplicationFeed)?) {
        self.feed.withLock { $0 = feed }
        hasFeed.store(feed != nil, ordering: .releasing)
        hasSink.store(feed != nil || hasLog.load(ordering: .acquiring), ordering: .releasing)
    }

    /// The attached replication stream, if any.
    public var attachedReplicationFeed: (any ReplicationFeed)? {
        if !hasFeed.load(ordering: .acquiring) { return nil }
        return feed.withLock { $0 }
    }

    /// True while a log or the replication stream is attached (one atomic load: the per-command
    /// propagation fast path).
    @inline(__always) var isLogAttached: Bool { hasSink.load(ordering: .acquiring) }

    /// Sends a batch nobody's command produced (evictions, active expiry) to the AOF and the
    /// replication stream.
    private func appendToSinks(_ batch: borrowing PropagationBuffer, log: (any AppendLog)?) {
        if let log { _ = log.append(batch) }
        if let feed = attachedReplicationFeed { _ = feed.append(batch) }
    }

    /// The attached log, if any.
    public var attachedLog: (any AppendLog)? {
        if !hasLog.load(ordering: .acquiring) { return nil }
        return log.withLock { $0 }
    }

    /// Changes `requirepass` at runtime (CONFIG SET); nil or empty removes it.
    public func setRequirePass(_ newPassword: [UInt8]?) {
        let value = (newPassword?.isEmpty ?? true) ? nil : newPassword
        password.withLock { $0 = value }
        passwordSet.store(value != nil, ordering: .releasing)
    }

    /// The current `requirepass`.
    public var requirePass: [UInt8]? { password.withLock { $0 } }

    /// True when clients must AUTH before other commands.
    @inline(__always) public var requiresAuthentication: Bool { passwordSet.load(ordering: .acquiring) }

    /// Changes since the last successful save (Redis's `dirty`).
    public var changesSinceLastSave: Int64 { dirty.load(ordering: .relaxed) }

    /// Adds to the dirty counter.
    @inline(__always) public func addChanges(_ count: Int64) {
        if count != 0 { dirty.add(count, ordering: .relaxed) }
    }

    /// After a save that started when the counter read `countAtSnapshot`, keeps only the
    /// changes made since (as Redis does with `dirty_before_bgsave`).
    public func resetChangesSinceLastSave(subtracting countAtSnapshot: Int64) {
        dirty.subtract(countAtSnapshot, ordering: .relaxed)
    }

    /// Sets the dirty counter (e.g. 0 after loading).
    public func resetChangesSinceLastSave(to value: Int64) { dirty.store(value, ordering: .relaxed) }

    /// Appends the session's propagation buffer to the log (if attached) and clears it. Called
    /// with the shard locks of the logged commands still held.
    func flushPropagation(_ session: ClientSession) {
        if session.propagation.isEmpty { return }
        if let log = attachedLog {
            let offset = log.append(session.propagation)
            session.pendingLogOffset = offset
            // A monotonic maximum: appends on other threads may return out of order.
            var seen = appendedHighWater.load(ordering: .relaxed)
            while seen < offset {
                let (exchanged, original) = appendedHighWater.compareExchange(
                    expected: seen, desired: offset, ordering: .acquiringAndReleasing)
                if exchanged { break }
                seen = original
            }
        }
        // The primary's own stream, applied on its link, reaches the backlog verbatim instead
        // (ReplicationState.feedVerbatim), so offsets stay the primary's byte for byte.
        if !session.isReplicationPrimaryLink, let feed = attachedReplicationFeed {
            session.replicationOffset = feed.append(session.propagation)
        }
        session.propagation.removeAll()
    }

    // MARK: Statistics

    /// INFO commandstats rows for commands called at least once.
    public func commandStatistics() -> [CommandStatisticsRow] {
        var rows: [CommandStatisticsRow] = []
        func add(_ name: String, _ statistics: CommandStatistics) {
            let calls = statistics.calls.load(ordering: .relaxed)
            let rejected = statistics.rejectedCalls.load(ordering: .relaxed)
            let failed = statistics.failedCalls.load(ordering: .relaxed)
            if calls == 0 && rejected == 0 && failed == 0 { return }
            rows.append(CommandStatisticsRow(
                name: name, calls: calls, microseconds: statistics.microseconds.load(ordering: .relaxed),
                rejectedCalls: rejected, failedCalls: failed))
        }
        for (index, spec) in table.rows.enumerated() {
            add(spec.name, table.statistics[index])
            for (sub, subcommand) in spec.subcommands.enumerated() {
                add(subcommand.name.lowercased(), table.subcommandStatistics[index][sub])
            }
        }
        return rows
    }

    /// Calls of every command and subcommand, as the sum of `commandStatistics()`'s calls
    /// without building its rows (the cron samples it ten times a second for instantaneous_ops).
    public func totalCommandCalls() -> Int64 {
        var total: Int64 = 0
        for statistics in table.statistics { total &+= statistics.calls.load(ordering: .relaxed) }
        for row in table.subcommandStatistics {
            for statistics in row { total &+= statistics.calls.load(ordering: .relaxed) }
        }
        return total
    }

    /// The latency histograms of the commands called since the last reset, by full name
    /// (`config|get`), in table order with a container's subcommands after it (INFO
    /// latencystats, LATENCY HISTOGRAM). With `names`, only those commands, each followed by its
    /// subcommands when it is a container, skipping unknown names (latency.c
    /// latencySpecificCommandsFillCDF).
    public func latencyHistograms(named names: [ArraySlice<UInt8>]? = nil)
        -> [(name: String, histogram: LatencyHistogram.Snapshot)]
    {
        var found: [(name: String, histogram: LatencyHistogram.Snapshot)] = []
        func add(row: Int, subcommand: Int?) {
            let spec = table.rows[row]
            if let subcommand {
                if let histogram = table.subcommandStatistics[row][subcommand].latency.snapshot() {
                    found.append((spec.subcommands[subcommand].name.lowercased(), histogram))
                }
                return
            }
            if let histogram = table.statistics[row].latency.snapshot() { found.append((spec.name, histogram)) }
            for index in spec.subcommands.indices { add(row: row, subcommand: index) }
        }
        guard let names else {
            for row in table.rows.indices { add(row: row, subcommand: nil) }
            return found
        }
        for name in names {
            if let bar = name.firstIndex(of: UInt8(ascii: "|")) {
                if let row = table.lookup(name[..<bar]), table.hasSubcommands(row),
                   let sub = table.subcommand(of: row, named: name[(bar + 1)...]) {
                    add(row: row, subcommand: sub)
                }
            } else if let row = table.lookup(name) {
                add(row: row, subcommand: nil)
            }
        }
        return found
    }

    /// Zeroes command and keyspace statistics (CONFIG RESETSTAT).
    public func resetStatistics() {
        for statistics in table.statistics { statistics.reset() }
        for row in table.subcommandStatistics { for statistics in row { statistics.reset() } }
        errorStatistics.reset()
        keyspace.resetStatistics()
        keyspace.resetEvictedKeys()
        expiryStatistics.reset()
    }

    // MARK: Dispatch

    /// Executes one request and writes its reply into `output`.
    ///
    /// Every check a command's flags ask for happens here, once, in the order of Redis 7.0's
    /// `processCommand` (server.c): existence, arity (a container's subcommand has its own
    /// arity and flags), NOAUTH, `no-multi` inside MULTI, OOM, MISCONF, -LOADING, then MULTI
    /// queuing or execution. A refusal inside MULTI dooms the transaction (EXECABORT).
    public func execute(_ arguments: CommandArguments, session: ClientSession, output: inout OutputBuffer) {
        var arguments = arguments
        execute(&arguments, session: session, output: &output)
    }

    /// `execute`, lending `arguments` to the command instead of copying them: the I/O loop's
    /// path, where the copy's retains and releases of both arrays were a measurable share of a
    /// short command. `arguments` is the same when it returns.
    public func execute(_ arguments: inout CommandArguments, session: ClientSession, output: inout OutputBuffer) {
        var context: CommandContext?
        execute(&arguments, session: session, output: &output, reusing: &context)
    }

    /// `execute` running the command in `spare`, a context an earlier command left there, and
    /// leaving its own there: an I/O thread keeps one, so a command does not build a context
    /// (retaining its session and engine) and destroy it again (six releases).
    public func execute(_ arguments: inout CommandArguments, session: ClientSession, output: inout OutputBuffer,
                        reusing spare: inout CommandContext?) {
        let before = session.replyMode
        let start = output.writerIndex
        dispatch(&arguments, session: session, output: &output, spare: &spare)
        // The one place replies' errors are counted (CLIENT REPLY OFF drops the reply, not the count).
        if !output.untakenErrorCodes.isEmpty { errorStatistics.take(from: &output) }
        if before != .on || session.replyMode != .on {
            applyReplyMode(before: before, arguments, session: session, start: start, output: &output)
        }
        // Invalidations of keys this client read and then changed itself go after the reply of
        // the whole command (EXEC included), as server.c afterCommand sends tracking_pending_keys.
        if session.tracking != nil { finishTrackedCommand(arguments, session: session, output: &output) }
    }

    /// After a tracking client's command: its own invalidations, and CLIENT CACHING's flag
    /// reset unless the command was CLIENT itself or a transaction is open (networking.c
    /// resetClient).
    private func finishTrackedCommand(_ arguments: CommandArguments, session: ClientSession,
                                      output: inout OutputBuffer) {
        if !session.trackingPending.isEmpty || !session.trackingPendingFlush.isEmpty {
            tracking.sendPending(session, output: &output)
        }
        if session.trackingCaching && !session.transaction.isActive
            && table.lookup(arguments[0]).map({ table.rows[$0].name != "client" }) ?? true
        {
            session.trackingCaching = false
        }
    }

    /// trackingRememberKeys after a read-only command (server.c call()): the keys it read are
    /// remembered for `session` unless it tracks in BCAST mode, or OPTIN without CLIENT CACHING
    /// YES, or OPTOUT after CLIENT CACHING NO. EVAL_RO, EVALSHA_RO and FCALL_RO are left out:
    /// a script's reads remember its declared keys instead (see ScriptCalls).
    func rememberReadKeys(row: Int, _ arguments: CommandArguments, session: ClientSession, early: Bool = false) {
        guard let mode = session.tracking, !mode.options.contains(.broadcast) else { return }
        var spec = table.rows[row]
        if table.hasSubcommands(row) && arguments.count >= 2, let sub = table.subcommand(of: row, named: arguments[1]) {
            spec = spec.subcommands[sub]
        }
        guard spec.flags.contains(.readonly), !spec.flags.contains(.pubsub) else { return }
        if spec.name == "eval_ro" || spec.name == "evalsha_ro" || spec.name == "fcall_ro" { return }
        if session.isScriptCall { return }
        if mode.options.contains(.optIn) && !session.trackingCaching { return }
        if mode.options.contains(.optOut) && session.trackingCaching { return }
        let slices = (0..<arguments.count).map { arguments[$0] }
        guard let positions = CommandKeys.positions(spec, slices), !positions.isEmpty else { return }
        let added = tracking.remember(positions.map { Array(slices[$0]) }, session: session)
        if early { session.trackingEarlyKeys = added }
    }

    /// A script's read command ran for a tracking client: the script's declared keys are
    /// remembered (server.c call() takes the script caller's keys).
    func rememberScriptKeys(_ keys: [[UInt8]], innerRow row: Int, _ arguments: CommandArguments,
                            session: ClientSession) {
        guard let mode = session.tracking, !mode.options.contains(.broadcast), !keys.isEmpty else { return }
        var flags = table.flags[row]
        if table.hasSubcommands(row) && arguments.count >= 2, let sub = table.subcommand(of: row, named: arguments[1]) {
            flags = table.rows[row].subcommands[sub].flags
        }
        guard flags.contains(.readonly) else { return }
        if mode.options.contains(.optIn) && !session.trackingCaching { return }
        if mode.options.contains(.optOut) && session.trackingCaching { return }
        _ = tracking.remember(keys, session: session)
    }

    /// CLIENT REPLY OFF/SKIP: drops the reply just written, except the confirmations of the
    /// subscribe family, which Redis sends as pushes regardless (CLIENT_PUSHING).
    private func applyReplyMode(before: ReplyMode, _ arguments: CommandArguments, session: ClientSession,
                                start: Int, output: inout OutputBuffer) {
        let isSubscription = table.lookup(arguments[0]).map {
            table.flags[$0].isSuperset(of: [.pubsub, .allowedWhileSubscribed])
        } ?? false
        switch session.replyMode {
        case .on:
            return
        case .off:
            if !isSubscription { output.truncate(to: start) }
        case .skipArmed:
            output.truncate(to: start)
            session.replyMode = .skipNext
        case .skipNext:
            if !isSubscription { output.truncate(to: start) }
            session.replyMode = .on
        }
    }

    private func dispatch(_ arguments: inout CommandArguments, session: ClientSession, output: inout OutputBuffer,
                          spare: inout CommandContext?) {
        guard arguments.count > 0 else { return }
        output.protocolVersion = session.protocolVersion
        guard let row = arguments.withUnsafeBytes(of: 0, table.lookup) else {
            if session.transaction.isActive { session.transaction.isPoisoned = true }
            writeUnknownCommandError(arguments, into: &output)
            return
        }
        // The counters a refusal charges, looked up only then: holding them cost every command
        // a retain and a release.
        var subcommandIndex: Int?
        func statistics() -> CommandStatistics {
            subcommandIndex.map { table.subcommandStatistics[row][$0] } ?? table.statistics[row]
        }
        var flags = table.flags[row]
        if !CommandTable.arityAccepts(table.rows[row].arity, arguments.count) {
            return refuse(row, reason: arityErrorReason(table.rows[row].name), session: session, statistics(),
                          output: &output)
        }
        if table.hasSubcommands(row) && arguments.count >= 2 {
            guard let sub = table.subcommand(of: row, named: arguments[1]) else {
                // No command to charge: Redis's lookup finds none (server.c commandCheckExistence).
                return refuse(row, reason: unknownSubcommandReason(arguments, parent: table.rows[row].name),
                              session: session, nil, output: &output)
            }
            subcommandIndex = sub
            let subcommand = table.rows[row].subcommands[sub]
            if !CommandTable.arityAccepts(subcommand.arity, arguments.count) {
                return refuse(row, reason: arityErrorReason(subcommand.name), session: session, statistics(),
                              output: &output)
            }
            flags = subcommand.flags
        }
        if flags.contains(.protected) && !allowsProtectedCommand(session) {
            return refuse(row, reason: Self.moduleCommandReason, session: session, statistics(), output: &output)
        }
        let transaction = session.transaction.isActive
        let isExec = transaction && row == execRow
        if !session.isAuthenticated && requiresAuthentication && !flags.contains(.noAuth) {
            return refuse(row, reason: Self.noAuthReason, session: session, statistics(), output: &output)
        }
        if transaction && flags.contains(.noMulti) {
            return refuse(row, reason: Self.notInTransactionReason, session: session, statistics(), output: &output)
        }
        let role = ReplicaRole(rawValue: replicaRole.load(ordering: .relaxed))
        // A replayed AOF command is neither refused nor a reason to evict: aof.c's loader runs
        // cmd->proc directly, outside processCommand's performEvictions, so a file written
        // under a larger maxmemory loads whole (and replay lanes evict nothing in their own order).
        if memoryLimit.load(ordering: .relaxed) != 0 && !role.contains(.ignoresMaxmemory) && !session.isReplayingLog {
            let fits = enforceMemoryLimit(flags, row: row, isExec: isExec, session: session)
            // Evicted keys' invalidations go before this command's reply (server.c
            // processCommand flushes them right after performEvictions).
            if !session.trackingPending.isEmpty { tracking.sendPending(session, output: &output) }
            if !fits {
                return refuse(row, reason: Self.outOfMemoryReason, session: session, statistics(), output: &output)
            }
        }
        let isWrite = flags.contains(.write) || (isExec && session.transaction.queuedFlags.contains(.write))
        // The primary's stream is applied even when this replica cannot persist (Redis logs it,
        // or panics under repl-ignore-disk-write-error no): refusing it would fork the data.
        if isWrite || row == pingRow, !session.isReplicationPrimaryLink, let refusal = attachedLog?.writeRefusal() {
            return refuse(row, reason: [UInt8(ascii: "-")] + refusal, session: session, statistics(), output: &output)
        }
        // min-replicas-to-write, checked right after MISCONF as server.c processCommand does
        // (checkGoodReplicasStatus); the replication cron and ACKs keep the flag current.
        if isWrite && lacksGoodReplicas.load(ordering: .relaxed) && !session.isReplicationPrimaryLink {
            return refuse(row, reason: Self.noReplicasReason, session: session, statistics(), output: &output)
        }
        if role.contains(.readOnly) && isWrite && !session.isReplicationPrimaryLink {
            return refuse(row, reason: Self.readOnlyReplicaReason, session: session, statistics(), output: &output)
        }
        if session.subscriptionTotal > 0 && session.protocolVersion == .resp2
            && !flags.contains(.allowedWhileSubscribed)
        {
            return refuse(row, reason: subscribedContextReason(arguments, row: row), session: session, statistics(),
                          output: &output)
        }
        if role.contains(.deniesStaleData) && !session.isReplicationPrimaryLink
            && (!flags.contains(.stale) || (isExec && session.transaction.queuedMissingFlags.contains(.stale)))
        {
            return refuse(row, reason: Self.masterDownReason, session: session, statistics(), output: &output)
        }
        if loadingDataset.load(ordering: .acquiring) && !session.isReplayingLog
            && (!flags.contains(.loading) || (isExec && session.transaction.queuedMissingFlags.contains(.loading)))
        {
            return refuse(row, reason: Self.loadingReason, session: session, statistics(), output: &output)
        }
        if scriptWatch.isRunning && !session.isReplayingLog,
           let busy = scriptWatch.admission(allowBusy: flags.contains(.allowBusy))
        {
            return refuse(row, reason: busy, session: session, statistics(), output: &output)
        }
        if session.isMonitoring && !flags.isDisjoint(with: [.write, .readonly, .mayReplicate]) {
            // A monitor is a replica-like client in Redis (CLIENT_SLAVE): it may not use keys.
            return refuse(row, reason: Self.monitorKeyspaceReason, session: session, statistics(), output: &output)
        }
        if clientPause.isPossiblyActive && !session.isReplayingLog
            && clientPause.holds(isExec ? flags.union(session.transaction.queuedFlags)
                                    : ScriptingCommands.declaredFlags(flags, arguments, engine: self),
                                 now: clock.nowMilliseconds())
        {
            // Not run and not answered: the I/O thread keeps this command and runs it again
            // when the pause ends.
            session.isPostponed = true
            return
        }
        if transaction && !flags.contains(.transactionControl) {
            // A script's declared flags (no-writes) count for EXEC as for the script run alone
            // (multi.c queueMultiCommand takes getCommandFlags): a transaction of read-only
            // scripts is not held by CLIENT PAUSE WRITE.
            let declared = ScriptingCommands.declaredFlags(flags, arguments, engine: self)
            session.transaction.enqueue(arguments, flags: declared)
            output.writeStaticString("+QUEUED\r\n")
            return
        }
        run(row: row, &arguments, session: session, output: &output, insideExec: false, reusing: &spare)
    }

    /// Redis's refusal of a command on a subscribed RESP2 connection, naming the command as
    /// `parent|sub` for a subcommand.
    private func subscribedContextReason(_ arguments: CommandArguments, row: Int) -> [UInt8] {
        var name = table.rows[row].name
        if table.hasSubcommands(row) && arguments.count >= 2,
           let sub = table.subcommand(of: row, named: arguments[1]) {
            name = table.rows[row].subcommands[sub].name
        }
        return Array("Can't execute '\(name)': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
            .utf8) + Array("are allowed in this context".utf8)
    }

    /// Refusal reasons as `refuse` takes them (with their code), built once.
    static let noAuthReason: [UInt8] = errorReason(RedisError.noAuth)
    static let moduleCommandReason: [UInt8] = Array("""
        MODULE command not allowed. If the enable-module-command option is set to "local", you can run it \
        from a local connection, otherwise you need to set this option in the configuration file, and then \
        restart the server.
        """.utf8)
    static let notInTransactionReason: [UInt8] = Array("Command not allowed inside a transaction".utf8)
    static let loadingReason: [UInt8] = errorReason(RedisError.loading)
    static let monitorKeyspaceReason: [UInt8] = Array("Replica can't interact with the keyspace".utf8)
    static let readOnlyReplicaReason: [UInt8] = errorReason(RedisError.readOnlyReplica)
    static let masterDownReason: [UInt8] = errorReason(RedisError.masterDown)

    private static func errorReason(_ text: StaticString) -> [UInt8] {
        Array("-".utf8) + text.withUTF8Buffer { Array($0) }
    }

    // MARK: Loading

    /// Marks the dataset as loading (start-up): until it is cleared, commands without the
    /// `loading` flag are answered -LOADING.
    /// Runs `body` on a thread of its own (the server installs its pthread starter): waits that
    /// must not hold an I/O thread, such as WAITAOF's fsync, run there. Nil in tests: such
    /// commands then wait inline.
    public let threadStarter = Mutex<(@Sendable (@escaping @Sendable () -> Void) -> Void)?>(nil)

    /// Refuses (true) or allows writes for `min-replicas-to-write` (the replication code decides).
    public func setLacksGoodReplicas(_ lacking: Bool) { lacksGoodReplicas.store(lacking, ordering: .relaxed) }

    /// True while writes are refused with -NOREPLICAS.
    var lacksGoodReplicasForWrites: Bool { lacksGoodReplicas.load(ordering: .relaxed) }

    static let noReplicasReason: [UInt8] = Array("-NOREPLICAS Not enough good replicas to write.".utf8)

    public func setLoading(_ loading: Bool) { loadingDataset.store(loading, ordering: .releasing) }

    /// True while the dataset is loading.
    public var isLoading: Bool { loadingDataset.load(ordering: .acquiring) }

    // MARK: Replica role

    /// Sets what dispatch enforces for this server's replica role (REPLICAOF, the link's state
    /// and the replica-* options); `[]` for a primary. Active expiry stops and the keyspace keeps
    /// keys past their TTL while `.replica` is set (only the primary's DELs remove them).
    public func setReplicaRole(_ role: ReplicaRole) {
        keyspace.expiryGate.setReplica(role.contains(.replica))
        replicaRole.store(role.rawValue, ordering: .releasing)
    }

    /// The replica role dispatch enforces now.
    public var replicaRoleFlags: ReplicaRole { ReplicaRole(rawValue: replicaRole.load(ordering: .acquiring)) }

    // MARK: maxmemory

    /// Sets `maxmemory` (0 = no limit), `maxmemory-policy` and `maxmemory-samples`; takes
    /// effect for the next command (CONFIG SET is live).
    public func setMemoryLimit(
        bytes: Int, policy: EvictionPolicy, samples: Int, lfuLogFactor: Int = Int(LFU.logFactor),
        lfuDecayMinutes: Int = Int(LFU.decayMinutes)
    ) {
        let index = EvictionPolicy.allCases.firstIndex(of: policy) ?? 0
        let factor = UInt32(clamping: lfuLogFactor)
        let decay = Int64(max(0, lfuDecayMinutes))
        if evictionPolicyIndex.load(ordering: .relaxed) != index || bytes != 0 || factor != LFU.logFactor
            || decay != LFU.decayMinutes
        {
            keyspace.configureEviction(policy, clock: clock, lfuLogFactor: factor, lfuDecayMinutes: decay)
        }
        evictionPolicyIndex.store(index, ordering: .relaxed)
        evictionSamples.store(max(1, samples), ordering: .relaxed)
        memoryLimit.store(max(0, bytes), ordering: .relaxed)
        datasetLimit.store(max(0, bytes), ordering: .relaxed)
        calibrateMemoryLimit()
    }

    /// True when `maxmemory` is set.
    public var hasMemoryLimit: Bool { memoryLimit.load(ordering: .relaxed) > 0 }

    /// Keeps `maxmemory` a bound on the heap the process has allocated (INFO `used_memory`), as
    /// Redis bounds its used_memory, rather than on the keyspace's estimate: the estimate leaves
    /// out the tables' real per-key cost, client buffers and the Lua heap. The server calls this
    /// about ten times a second; eviction then holds the estimate to estimate·maxmemory/heap,
    /// whose fixed point is a heap of maxmemory. Never above maxmemory itself, and not below a
    /// sixteenth of it (a heap that is mostly not data would otherwise evict everything).
    public func calibrateMemoryLimit() {
        let limit = memoryLimit.load(ordering: .relaxed)
        let estimate = keyspace.usedMemoryBytes
        let heap = Int(processMemory.read(estimate: Int64(estimate)).allocated)
        guard limit > 0 else { return }
        // With little data its cost per byte cannot be measured: the data gets what the rest of
        // the heap leaves. When the rest alone passes maxmemory (a tiny limit), the bound is
        // below any dataset: what can be evicted is, and denyoom commands are refused, as Redis
        // refuses them when its used_memory is over maxmemory with nothing left to evict.
        guard estimate >= 64 * 1024, heap > 0 else {
            let rest = max(0, heap - estimate)
            datasetLimit.store(rest >= limit ? -1 : limit - rest, ordering: .relaxed)
            return
        }
        let scaled = Int(Double(estimate) * Double(limit) / Double(heap))
        datasetLimit.store(min(limit, max(scaled, limit / 16)), ordering: .relaxed)
    }

    /// The configured `hll-sparse-max-bytes`.
    public var hyperLogLogSparseMaxBytes: Int { hyperLogLogSparseLimit.load(ordering: .relaxed) }

    /// Changes `hll-sparse-max-bytes` (CONFIG SET); values already stored keep their encoding.
    public func setHyperLogLogSparseMaxBytes(_ bytes: Int) {
        hyperLogLogSparseLimit.store(max(0, bytes), ordering: .relaxed)
    }

    /// `lazyfree-lazy-user-del`: DEL releases big values in background, as UNLINK does.
    public var lazyFreeUserDel: Bool { lazyUserDel.load(ordering: .relaxed) }
    /// `lazyfree-lazy-user-flush`: FLUSHALL/FLUSHDB without SYNC/ASYNC run as ASYNC.
    public var lazyFreeUserFlush: Bool { lazyUserFlush.load(ordering: .relaxed) }

    /// `enable-module-command` (fixed at start): 0 no, 1 yes, 2 local.
    private let moduleCommandAccess = Atomic<UInt8>(0)

    /// Applies `enable-module-command`: "no", "yes" or "local".
    public func setModuleCommandAccess(_ value: String) {
        moduleCommandAccess.store(value == "yes" ? 1 : value == "local" ? 2 : 0, ordering: .relaxed)
    }

    /// config.c allowProtectedAction: "yes", or "local" and a client on a Unix socket or the
    /// loopback address (networking.c islocalClient: exactly 127.0.0.1 or ::1).
    private func allowsProtectedCommand(_ session: ClientSession) -> Bool {
        switch moduleCommandAccess.load(ordering: .relaxed) {
        case 1: return true
        case 2:
            let peer = session.peerAddress
            return peer.hasPrefix("127.0.0.1:") || peer.hasPrefix("::1:") || peer.hasPrefix("[::1]:")
                || peer.hasPrefix("/") || peer == ":0" || peer.isEmpty
        default: return false
        }
    }

    /// Applies `lazyfree-lazy-user-del` and `lazyfree-lazy-user-flush` (config file, CONFIG SET).
    public func setLazyFree(userDel: Bool, userFlush: Bool) {
        lazyUserDel.store(userDel, ordering: .relaxed)
        lazyUserFlush.store(userFlush, ordering: .relaxed)
    }

    /// The configured `set-max-intset-entries`.
    public var setMaxIntsetEntries: Int { intsetLimit.load(ordering: .relaxed) }

    /// Changes `set-max-intset-entries` (CONFIG SET); sets already converted stay hash tables.
    public func setSetMaxIntsetEntries(_ entries: Int) {
        intsetLimit.store(max(0, entries), ordering: .relaxed)
    }

    /// The configured `hash-max-listpack-entries` / `hash-max-listpack-value`.
    public var hashLimits: HashLimits {
        HashLimits(maxEntries: hashMaxEntries.load(ordering: .relaxed),
                   maxValueBytes: hashMaxValue.load(ordering: .relaxed))
    }

    /// Changes the hash listpack limits (CONFIG SET); hashes already converted stay hashtables.
    public func setHashLimits(_ limits: HashLimits) {
        hashMaxEntries.store(max(0, limits.maxEntries), ordering: .relaxed)
        hashMaxValue.store(max(0, limits.maxValueBytes), ordering: .relaxed)
    }

    /// The configured `list-max-listpack-size`: how full list chunks grow.
    public var listFill: ListFill { ListFill(listFillValue.load(ordering: .relaxed)) }

    /// Changes `list-max-listpack-size` (CONFIG SET). Redis fixes a list's fill when the list is
    /// created (quicklistSetOptions in t_list.c); Tally applies the current one to every push,
    /// so chunks made before a change keep their size and later ones follow the new fill.
    public func setListFill(_ fill: ListFill) {
        listFillValue.store(fill.value, ordering: .relaxed)
    }

    /// The configured `zset-max-listpack-entries` / `zset-max-listpack-value`.
    public var sortedSetLimits: SortedSetLimits {
        SortedSetLimits(maxEntries: sortedSetMaxEntries.load(ordering: .relaxed),
                        maxValueBytes: sortedSetMaxValue.load(ordering: .relaxed))
    }

    /// Changes the sorted-set listpack limits (CONFIG SET); stored values keep their form.
    public func setSortedSetLimits(_ limits: SortedSetLimits) {
        sortedSetMaxEntries.store(max(0, limits.maxEntries), ordering: .relaxed)
        sortedSetMaxValue.store(max(0, limits.maxValueBytes), ordering: .relaxed)
    }

    /// The configured `maxmemory` (0 = none).
    public var memoryLimitBytes: Int { memoryLimit.load(ordering: .relaxed) }

    /// True when `maxmemory` is set and memory is over it now (the dataset estimate against its
    /// calibrated bound), as a script's start sees it (server.c's pre_command_oom_state).
    public var isOverMemoryLimit: Bool {
        memoryLimit.load(ordering: .relaxed) != 0 && keyspace.usedMemoryBytes > datasetLimit.load(ordering: .relaxed)
    }

    /// The configured `maxmemory-policy`.
    public var evictionPolicy: EvictionPolicy {
        EvictionPolicy.allCases[evictionPolicyIndex.load(ordering: .relaxed)]
    }

    /// The OOM refusal as `refuse` takes it (with its code), built once.
    static let outOfMemoryReason: [UInt8] = errorReason(RedisError.outOfMemory)

    /// Redis's `performEvictions` before a command: evicts until the estimate is under the
    /// limit, logging each victim as DEL. Returns false when the command must be refused with
    /// OOM: still over the limit and the command may grow memory (`denyOOM`, EXEC of a
    /// transaction holding such a command, or anything but EXEC/DISCARD/QUIT/RESET inside
    /// MULTI, since queuing itself takes memory).
    func enforceMemoryLimit(_ flags: CommandFlags, row: Int, isExec: Bool, session: ClientSession) -> Bool {
        let limit = datasetLimit.load(ordering: .relaxed)
        if keyspace.usedMemoryBytes <= limit { return true }
        // Paused clients: nothing is evicted (evict.c performEvictions), and a command that
        // would need eviction is held back by the pause anyway.
        if clientPause.current(now: clock.nowMilliseconds()) != .none { return true }
        let log = attachedLog
        var cursor = evictionCursor.load(ordering: .relaxed)
        var propagation = PropagationBuffer()
        let underLimit = keyspace.evict(
            toAtMost: limit, policy: evictionPolicy, samples: evictionSamples.load(ordering: .relaxed),
            now: clock.nowMilliseconds(), cursor: &cursor
        ) { victims in
            for victim in victims { keyspaceEvents.publishEvicted(victim) }
            if tracking.isActive { tracking.invalidate(victims.map { $0.key.bytes }, writer: session) }
            guard log != nil || hasFeed.load(ordering: .acquiring) else { return }
            for victim in victims {
                propagation.append(database: victim.database, [Array("DEL".utf8), victim.key.bytes])
            }
            appendToSinks(propagation, log: log)
            propagation.removeAll()
        }
        evictionCursor.store(cursor, ordering: .relaxed)
        if underLimit { return true }
        if flags.contains(.denyOOM) { return false }
        if isExec { return !session.transaction.queuedFlags.contains(.denyOOM) }
        // Queuing takes memory too: inside MULTI only EXEC, DISCARD, QUIT and RESET pass (server.c
        // processCommand's reject_cmd_on_oom).
        return !session.transaction.isActive || oomExemptRowsInMulti.contains(row)
    }

    /// Redis's `rejectCommand`: flags an open transaction and answers `reason` as an error
    /// (`ERR reason`, or `CODE text` when `reason` is `-CODE text`); a refused EXEC instead
    /// discards the transaction and answers `EXECABORT Transaction discarded because of: ...`.
    private func refuse(_ row: Int, reason: [UInt8], session: ClientSession, _ statistics: CommandStatistics?,
                        output: inout OutputBuffer) {
        let hasCode = reason.first == UInt8(ascii: "-")
        var message: [UInt8]
        if table.rows[row].name == "exec" {
            TransactionCommands.discardTransaction(session, self)
            statistics?.rejectedCalls.add(1, ordering: .relaxed)
            message = Array("EXECABORT Transaction discarded because of: ".utf8)
        } else {
            reject(session, statistics)
            message = hasCode ? [] : Array("ERR ".utf8)
        }
        message.append(contentsOf: reason.dropFirst(hasCode ? 1 : 0))
        output.writeError(message)
    }

    private func reject(_ session: ClientSession, _ statistics: CommandStatistics?) {
        if session.transaction.isActive { session.transaction.isPoisoned = true }
        statistics?.rejectedCalls.add(1, ordering: .relaxed)
    }

    /// The counters a call of `row` with `arguments` goes to: its subcommand's for a container.
    func statistics(row: Int, _ arguments: CommandArguments) -> CommandStatistics {
        unretainedStatistics(row: row, arguments).takeUnretainedValue()
    }

    /// `statistics(row:_:)` without a retain: the table holds every counter for its lifetime.
    @inline(__always)
    private func unretainedStatistics(row: Int, _ arguments: CommandArguments) -> Unmanaged<CommandStatistics> {
        if table.hasSubcommands(row) && arguments.count >= 2,
           let sub = table.subcommand(of: row, named: arguments[1]) {
            return Unmanaged.passUnretained(table.subcommandStatistics[row][sub])
        }
        return table.unretainedStatistics[row]
    }

    /// Runs a looked-up, validated command (also used by EXEC for each queued command).
    /// `arguments` and `output` are moved into the command's context and back, not copied.
    func run(row: Int, _ arguments: inout CommandArguments, session: ClientSession, output: inout OutputBuffer,
             insideExec: Bool) {
        var context: CommandContext?
        run(row: row, &arguments, session: session, output: &output, insideExec: insideExec, reusing: &context)
    }

    /// `run` in the context `spare` holds, if any (taken out meanwhile, so EXEC's commands build
    /// their own), which is left there afterwards.
    func run(row: Int, _ arguments: inout CommandArguments, session: ClientSession,
                     output: inout OutputBuffer, insideExec: Bool, reusing spare: inout CommandContext?) {
        // One clock reading gives the command's time (expiry) and the start of its duration,
        // as Redis's call() takes both from one ustime(): clock_gettime was ~4% of a pipelined
        // PFADD's time when read three times per command. A wall clock stepped back during a
        // command reads as a duration of 0.
        let start = clock.nowMicroseconds()
        let offsetBefore = session.pendingLogOffset
        // Errors written before this command (a refusal, an earlier command of EXEC) are not its own.
        output.errorRepliesSeen = output.errorRepliesWritten
        // Move the buffer into the context instead of copying it, so appending to it does not
        // trigger a copy-on-write of the whole reply buffer.
        // The context is used where `spare` holds it: moving it out and back cost four copies
        // of it (memcpy) per command.
        if spare != nil {
            spare!.begin(row: row, session: session, now: start / 1000, insideExec: insideExec)
        } else {
            spare = CommandContext(
                arguments: CommandArguments(reservingCapacity: false),
                output: OutputBuffer(initialCapacity: 0, protocolVersion: output.protocolVersion),
                session: session, engine: self, row: row, now: start / 1000, insideExec: insideExec)
        }
        run(in: &spare!, row: row, &arguments, session: session, output: &output, insideExec: insideExec,
            start: start, offsetBefore: offsetBefore)
    }

    /// The body of `run`, in a context made ready for this command.
    private func run(in context: inout CommandContext, row: Int, _ arguments: inout CommandArguments,
                     session: ClientSession, output: inout OutputBuffer, insideExec: Bool,
                     start: Int64, offsetBefore: UInt64) {
        swap(&context.arguments, &arguments)
        swap(&context.output, &output)
        // While clients are blocked (and for EXEC, which takes every shard anyway), the command
        // holds every shard, so finish() can serve waiters on any key (see Blocking.swift).
        let takesAll = row == execRow || blocking.hasWaiters || table.flags[row].contains(.runsExclusive)
        let exclusive = !insideExec && takesAll ? keyspace.lockExclusive() : false
        context.holdsDispatchExclusive = exclusive
        if monitors.isActive && table.flags[row].contains(.skipMonitor) && !session.isReplayingLog {
            // EVAL, EVALSHA and FCALL show before the commands they run (eval.c evalCommand,
            // functions.c fcallCommandGeneric feed monitors first; call() skips them after).
            monitors.feed(context.arguments, database: session.database, session: session,
                          limitBytes: pubsub.mailboxLimitBytes)
        }
        // A tracking client's keys are remembered before the read as well as after it: another
        // thread's write between the read and the remembering would otherwise find nothing to
        // invalidate and leave the client caching a stale value (Redis, single-threaded,
        // remembers after the call only). A write in between costs at most one extra push.
        // Keys first remembered by that early call are not invalidated to the client itself by
        // its own command (a GET that expires its key), as Redis, remembering late, does not.
        if session.tracking != nil { rememberReadKeys(row: row, context.arguments, session: session, early: true) }
        table.rows[row].handler(&context)
        context.finish()
        // Unless the handler gave the shards up to wait without them (MIGRATE).
        keyspace.unlockExclusive(context.holdsDispatchExclusive)
        if session.tracking != nil {
            rememberReadKeys(row: row, context.arguments, session: session)
            session.trackingEarlyKeys.removeAll()
            // Only a tracking client's reads grow the table; the cron trims it too.
            tracking.limitUsedSlots()
        }
        // Observed writes are durable writes: whatever this command read was appended before it
        // (under the shard lock it then took), so this offset covers it. A command that appended
        // did so holding the locks of every key it read, so its own offset already covers them
        // (and it does not wait for other threads' later records). Refused and queued commands
        // observe nothing and do not wait.
        if session.pendingLogOffset == offsetBefore {
            let observed = appendedHighWater.load(ordering: .acquiring)
            if observed > session.observedLogOffset { session.observedLogOffset = observed }
        }
        swap(&context.output, &output)
        if session.isReplayingLog {
            // Redis's loader runs a logged command's proc directly, outside call() (aof.c
            // loadSingleAppendOnlyFile): no command statistics, total_commands_processed,
            // latency sample or slowlog entry, and no second clock reading.
            swap(&context.arguments, &arguments)
            return
        }
        let end = clock.nowMicroseconds()
        let elapsed = max(0, end - start)
        let tracksLatency = latencyTracking.load(ordering: .relaxed)
        unretainedStatistics(row: row, context.arguments)._withUnsafeGuaranteedRef { statistics in
            statistics.calls.add(1, ordering: .relaxed)
            statistics.microseconds.add(elapsed, ordering: .relaxed)
            if tracksLatency {
                if session.blockedWaiter == nil {
                    statistics.latency.record(microseconds: elapsed)
                } else {
                    session.blockedLatency = (statistics, elapsed)
                }
            }
            // Failed: it wrote an error reply of its own. A command EXEC or a script ran looked
            // at the counter last, so EXEC fails only when it answers an error itself (server.c
            // call()'s incrCommandStatsOnError).
            if output.errorRepliesWritten != output.errorRepliesSeen {
                statistics.failedCalls.add(1, ordering: .relaxed)
                output.errorRepliesSeen = output.errorRepliesWritten
            }
        }
        // CLIENT LIST's cmd= names a container's subcommand as "config|get" (the command's
        // fullname in Redis 7.0).
        if table.hasSubcommands(row) && context.arguments.count >= 2,
           let sub = table.subcommand(of: row, named: context.arguments[1]) {
            session.lastCommandName = table.rows[row].subcommands[sub].name
            session.lastCommandRow = -1
        } else if session.lastCommandRow != row {
            // A client repeats its command more often than not: skip the string's retain/release.
            session.lastCommandName = table.rows[row].name
            session.lastCommandRow = row
        }
        var redacted: CommandArguments?
        if !session.redactedArguments.isEmpty {
            redacted = Self.redacting(context.arguments, session.redactedArguments)
            session.redactedArguments.removeAll()
        }
        if monitors.isActive && !session.isReplayingLog {
            let shown = redacted ?? context.arguments
            // Administrative commands are not shown (a container's subcommand decides: CONFIG GET).
            var flags = table.rows[row].flags
            if table.hasSubcommands(row) && shown.count >= 2,
               let sub = table.subcommand(of: row, named: shown[1]) {
                flags = table.rows[row].subcommands[sub].flags
            }
            if !flags.contains(.admin) && !flags.contains(.skipMonitor) {
                monitors.feed(shown, database: session.database, session: session,
                              limitBytes: pubsub.mailboxLimitBytes)
            }
        }
        latencyMonitor.sample(table.rows[row].flags.contains(.fast) ? "fast-command" : "command",
                              milliseconds: elapsed / 1000, unixSeconds: end / 1_000_000)
        if slowLog.isSlow(elapsed) && !table.rows[row].flags.contains(.skipSlowlog) {
            let shown = redacted ?? context.arguments
            if session.blockedWaiter != nil {
                // Logged once the client is served or times out, as Redis logs a blocked
                // command when it unblocks (so it follows the command that served it).
                session.slowBlockedCommand = ((0..<shown.count).map { Array(shown[$0]) }, elapsed)
            } else {
                slowLog.record(shown, durationMicroseconds: elapsed, session: session,
                               unixSeconds: end / 1_000_000)
            }
        }
        swap(&context.arguments, &arguments)
    }

    /// `arguments` with those at `indexes` replaced by "(redacted)", as SLOWLOG and MONITOR show
    /// a secret.
    static func redacting(_ arguments: CommandArguments, _ indexes: [Int]) -> CommandArguments {
        CommandArguments((0..<arguments.count).map {
            indexes.contains($0) ? Array("(redacted)".utf8) : arguments.copy($0)
        })
    }

    /// A parked client was answered `reply` (an element, an UNBLOCKED or NOGROUP error...): an
    /// error counts in INFO errorstats and as a failed call of its command (blocked.c
    /// updateStatsOnUnblock).
    public func blockedReplyDelivered(_ reply: [UInt8], session: ClientSession) {
        guard reply.first == UInt8(ascii: "-") else { return }
        errorStatistics.record([OutputBuffer.errorCode(reply[...])])
        if let row = table.lookup(Array(session.lastCommandName.utf8)[...]) {
            table.statistics[row].failedCalls.add(1, ordering: .relaxed)
        }
    }

    /// Counts the errors written into `output` outside a command (protocol errors).
    public func countErrors(in output: inout OutputBuffer) {
        errorStatistics.take(from: &output)
    }

    /// A parked client was served, timed out or unblocked: logs its command if it was slow.
    public func blockedCommandEnded(_ session: ClientSession) {
        if let (statistics, elapsed) = session.blockedLatency {
            session.blockedLatency = nil
            statistics.latency.record(microseconds: elapsed)
        }
        guard let (arguments, elapsed) = session.slowBlockedCommand else { return }
        session.slowBlockedCommand = nil
        slowLog.record(CommandArguments(arguments), durationMicroseconds: elapsed, session: session,
                       unixSeconds: clock.nowMilliseconds() / 1000)
    }

    // MARK: Active expiry

    /// One active expiry cycle (the server calls it about 10 times per second): for every
    /// shard and database, samples 20 keys with a TTL, deletes the expired ones, and repeats
    /// while more than 25% of a sample was expired, within a time budget of ~25 ms per call.
    /// Deleted keys are logged as DEL while their shard is locked.
    public func activeExpireCycle() {
        // Nothing expires while clients are paused (expire.c activeExpireCycle), nor on a
        // replica, which waits for its primary's DELs (server.c databasesCron: iAmMaster()).
        if clientPause.current(now: clock.nowMilliseconds()) != .none { return }
        if keyspace.expiryGate.isReplica { return }
        let started = monotonicMicroseconds()
        let deadline = started + 25_000
        var sampledKeys = 0
        var expiredKeys = 0
        var timeCapReached = false
        defer {
            let elapsed = monotonicMicroseconds() - started
            latencyMonitor.sample("expire-cycle", milliseconds: elapsed / 1000,
                                  unixSeconds: clock.nowMilliseconds() / 1000)
            expiryStatistics.record(microseconds: elapsed, sampled: sampledKeys, expired: expiredKeys,
                                    timeCapReached: timeCapReached)
        }
        var random = SystemRandomNumberGenerator()
        var propagation = PropagationBuffer()
        let log = attachedLog
        let shardCount = keyspace.shards.count
        let first = expireCursor.load(ordering: .relaxed) % shardCount
        for step in 0..<shardCount {
            let shard = keyspace.shards[(first + step) % shardCount]
            expireCursor.store((first + step + 1) % shardCount, ordering: .relaxed)
            shard.lock()
            shard.shrinkSparseTables()
            let now = clock.nowMilliseconds()
            for database in 0..<keyspace.databaseCount where shard.expiringCount(database) > 0 {
                var rounds = 0
                while true {
                    let (sampled, expired) = shard.sampleExpired(database, now: now, sampleSize: 20, random: &random)
                    sampledKeys += sampled
                    expiredKeys += expired
                    rounds += 1
                    if sampled == 0 || expired * 4 <= sampled { break }
                    if rounds % 16 == 0 && monotonicMicroseconds() > deadline {
                        timeCapReached = true
                        break
                    }
                }
            }
            if !shard.modifiedDuringOperation.isEmpty {
                tracking.invalidate(shard.modifiedDuringOperation, writer: nil)
                shard.modifiedDuringOperation.removeAll(keepingCapacity: true)
            }
            if !shard.expiredDuringOperation.isEmpty {
                for expired in shard.expiredDuringOperation {
                    propagation.append(database: expired.database, [Array("DEL".utf8), expired.key.bytes])
                    keyspaceEvents.publishExpired(expired)
                }
                shard.expiredDuringOperation.removeAll(keepingCapacity: true)
                appendToSinks(propagation, log: log)
                propagation.removeAll()
            }
            shard.unlock()
            if monotonicMicroseconds() > deadline {
                timeCapReached = timeCapReached || step < shardCount - 1
                break
            }
        }
    }
}

/// Active expiry's INFO stats figures (expire.c activeExpireCycle): the time its cycles took,
/// how many stopped at their time budget, and a running estimate of the share of sampled keys
/// that were already expired (each cycle moves it 5% toward the cycle's own share).
public final class ExpiryStatistics: Sendable {
    private let state = Mutex<(microseconds: Int64, timeCapReached: Int64, staleShare: Double)>((0, 0, 0))

    init() {}

    func record(microseconds: Int64, sampled: Int, expired: Int, timeCapReached: Bool) {
        let share = sampled > 0 ? Double(expired) / Double(sampled) : 0
        state.withLock { figures in
            figures.microseconds += microseconds
            if timeCapReached { figures.timeCapReached += 1 }
            figures.staleShare = share * 0.05 + figures.staleShare * 0.95
        }
    }

    /// INFO's `expired_stale_perc`, `expired_time_cap_reached_count`, `expire_cycle_cpu_milliseconds`.
    public var figures: (stalePercent: Double, timeCapReached: Int64, milliseconds: Int64) {
        state.withLock { ($0.staleShare * 100, $0.timeCapReached, $0.microseconds / 1000) }
    }

    func reset() { state.withLock { $0 = (0, 0, 0) } }
}

extension CommandEngine {
    /// Releases what a closing connection holds in the keyspace (its WATCH registrations).
    /// The server calls it when a connection closes.
    public func sessionClosed(_ session: ClientSession) {
        TransactionCommands.discardTransaction(session, self)
        if let waiter = session.blockedWaiter {
            _ = blocking.cancel(waiter)
            session.blockedWaiter = nil
        }
        PubSubCommands.unsubscribeAll(session, hub: pubsub)
        tracking.disable(session)
        if session.isMonitoring { monitors.remove(clientID: session.id) }
    }

    /// Prepares a new session: unauthenticated when `requirepass` is set.
    public func sessionOpened(_ session: ClientSession) {
        session.isAuthenticated = !requiresAuthentication
    }
}
