// PersistenceEngine: start-up loading, the AOF generations, RDB saves, rewrites, the cron, MISCONF, shutdown.
//
//   start-up (Redis 7.0 loadDataFromDisk)     runtime                          shutdown
//   ─────────────────────────────────────     ───────────────────────────      ─────────────────────────
//   appendonly yes: manifest ─► base ─► incr  dataset ─► AppendLogGeneration        final RDB (save points /
//     (dump.rdb is never read then)             └─► AppendOnlyFile             SHUTDOWN SAVE), then flush
//   appendonly no: dump.rdb (expired dropped) tick(): save points, scheduled    and fsync the AOF
//   then: fresh AOF dir if none (base+incr)     jobs, auto-rewrite, retries
//
// One background job at a time (BGSAVE, a rewrite, the first rewrite of a newly enabled AOF),
// like Redis's single child process; the snapshot taken under every shard lock stands in for
// fork. Everything time-dependent reads the injected Clock and every job goes through the
// injected BackgroundJobRunner, so each schedule below is a deterministic test on SimulatedDisk.
import Dispatch
import Synchronization
import TallyKeyspace
import TallyProtocol

/// Replays one AOF command during start-up loading (the server wires it to its command
/// engine). Throw `AOFReplayError` to refuse the file (unknown command...).
public typealias CommandReplay = (_ arguments: CommandArguments, _ database: Int) throws -> Void

/// The persistence state machine, generic over where the files live.
///
/// Locks, outermost first: the keyspace's shard locks (`lockExclusive`), then `state`, then
/// the AOF writer's lock. Jobs start, and log lines are written, with `state` released.
public final class PersistenceEngine<S: Storage>: PersistenceControl, Sendable {
    /// Consecutive rewrite failures after which automatic and scheduled rewrites back off
    /// (Redis's AOF_REWRITE_LIMITE_THRESHOLD, aofRewriteLimited).
    public static var rewriteFailuresBeforeBackoff: Int { 3 }
    /// Longest rewrite back-off (AOF_REWRITE_LIMITE_MAX_MINUTES).
    public static var rewriteBackoffMinutesMax: Int64 { 60 }
    /// Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failed save, save points wait this long.
    public static var saveRetryDelayMilliseconds: Int64 { 5000 }

    enum Job: Equatable { case save, rewrite }
    enum CronStep { case none, rewrite, save(SavePoint?), autoRewrite(String) }
    enum SaveDecision { case reply(BackgroundSaveStart), start(PersistenceSettings, any PersistedDataset) }
    enum RewriteDecision { case reply(AOFRewriteStart), enable, rotate(AppendOnlyFile<S>), withoutAOF }

    struct State {
        var settings: PersistenceSettings
        var dataset: (any PersistedDataset)?
        /// Set once the dataset is loaded and the AOF attached (CONFIG SET appendonly waits).
        var startupComplete = false
        var loadStartedSeconds: Int64 = 0
        // The AOF generation in force (nil while appendonly is off) and where the next starts.
        var log: AppendLogGeneration<S>?
        var nextOffsetBase: UInt64 = 0
        /// Redis's AOF_WAIT_REWRITE: appendonly was switched on and its first base is not written.
        var enablingAOF = false
        // The one background-job slot and what waits for it.
        var job: Job?
        var jobStartedMilliseconds: Int64 = 0
        var saveScheduled = false
        var rewriteScheduled = false
        // RDB status (INFO rdb_*, LASTSAVE, MISCONF).
        var lastSaveSeconds: Int64
        var lastSaveOK = true
        var lastSaveAttemptMilliseconds: Int64 = 0
        var lastSaveDurationSeconds: Int64 = -1
        var currentSaveKeysTotal = 0
        var saves = 0
        var lastLoadKeysLoaded = 0
        /// The replication position the last loaded dump.rdb carried (repl-id/repl-offset aux).
        var lastLoadReplication: ReplicationSaveInfo?
        /// Where saves get the replication position to store (nil: none stored).
        var replicationSource: (any SnapshotReplicationSource)?
        var lastLoadKeysExpired = 0
        // Rewrite status (INFO aof_*) and the auto-rewrite schedule.
        var rewriteBaseSize: Int64 = 0
        var lastRewriteSeconds: Int64 = -1
        var lastRewriteOK = true
        var rewrites = 0
        var rewriteFailures = 0
        var nextAutoRewriteMilliseconds: Int64 = 0

        var writer: AppendOnlyFile<S>? { log?.writer }

        /// The RDB half of MISCONF (Redis's writeCommandsDeniedByDiskError, first branch).
        var refusesWritesForFailedSave: Bool {
            settings.stopWritesOnError && !settings.savePoints.isEmpty && !lastSaveOK
        }
    }

    /// The storage every file lives on.
    public let storage: S
    let clock: any Clock
    let log: PersistenceLogger
    let usedMemoryBytes: @Sendable () -> Int64
    let onFatal: @Sendable (String) -> Void
    let jobs: BackgroundJobRunner
    let startsFsyncThread: Bool
    let gate = SaveErrorGate()
    /// Loading progress (INFO `loading:1`, `loading_*_bytes`).
    public let loading = AOFLoadingStatus()
    let running = DispatchGroup()
    let state: Mutex<State>

    /// Creates the engine; nothing touches the disk until `load`.
    ///
    /// - Parameters:
    ///   - clock: every timestamp, duration, back-off and retry pacing (LASTSAVE is wall time).
    ///   - log: Redis's log lines.
    ///   - jobs: where BGSAVE and rewrites run (`.thread` in tally-server).
    ///   - startsFsyncThread: false in tests, which call `backgroundFsyncPass()` instead.
    ///   - usedMemoryBytes: the `used-mem` aux field of RDB files.
    ///   - onFatal: called when durability can no longer be promised (a failed write or fsync
    ///     under `appendfsync always`). Redis exits there; the engine holds every later reply
    ///     and leaves stopping the process to its owner.
    public init(
        storage: S, settings: PersistenceSettings, clock: any Clock, log: @escaping PersistenceLogger = { _, _ in },
        jobs: BackgroundJobRunner = .thread, startsFsyncThread: Bool = true,
        usedMemoryBytes: @escaping @Sendable () -> Int64 = { 0 },
        onFatal: @escaping @Sendable (String) -> Void
    ) {
        self.storage = storage
        self.clock = clock
        self.log = log
        self.jobs = jobs
        self.startsFsyncThread = startsFsyncThread
        self.usedMemoryBytes = usedMemoryBytes
        self.onFatal = onFatal
        state = Mutex(State(settings: settings, lastSaveSeconds: clock.nowMilliseconds() / 1000))
    }

    /// The settings in force.
    public var settings: PersistenceSettings { state.withLock { $0.settings } }

    /// The replication position the dump.rdb loaded at start-up carried, if any.
    public var loadedReplicationInfo: ReplicationSaveInfo? { state.withLock { $0.lastLoadReplication } }

    /// Installs where dump.rdb saves get the replication position from.
    public func installReplicationSource(_ source: any SnapshotReplicationSource) {
        state.withLock { $0.replicationSource = source }
    }

    /// The image of `dataset` for dump.rdb with `options`, and the replication position it
    /// corresponds to (rdbPopulateSaveInfo), both taken at one consistent point.
    func dumpImage(_ dataset: any PersistedDataset, options: RDBWriterOptions) -> (KeyspaceImage, RDBWriterOptions) {
        guard let source = state.withLock({ $0.replicationSource }) else {
            return (dataset.keyspace.image(serializer: rdbShardSerializer(options: options)), options)
        }
        return source.atConsistentPoint { info in
            var withInfo = options
            withInfo.replication = info
            return (dataset.keyspace.image(serializer: rdbShardSerializer(options: withInfo)), withInfo)
        }
    }

    var dataset: (any PersistedDataset)? { state.withLock { $0.dataset } }

    /// The AOF writer in force (nil while appendonly is off), for its counters.
    public var appendOnlyFile: AppendOnlyFile<S>? { state.withLock { $0.writer } }

    /// Blocks until no background job runs. With a runner that defers jobs, run them first.
    public func waitForBackgroundJob() { running.wait() }

    /// Runs `body` as the background job (the slot is already claimed).
    func runJob(_ body: @escaping @Sendable () -> Void) {
        running.enter()
        let running = running
        jobs.start {
            body()
            running.leave()
        }
    }

    // MARK: Cron

    /// Called `hz` times a second: retries a failed AOF write (paced to once a second inside the
    /// writer), then starts at most one job: a scheduled rewrite, a scheduled or due save, an
    /// automatic rewrite (serverCron's order, server.c).
    public func tick() {
        let now = clock.nowMilliseconds()
        let currentWriter = state.withLock { $0.writer }
        currentWriter?.tick()
        // A failed fsync poisoned the incr file: only a rewrite from memory makes the data
        // durable again (and lifts MISCONF), so it goes before anything else.
        let recovering = currentWriter?.needsRecoveryRewrite ?? false
        let next = state.withLock { state -> CronStep in
            guard state.job == nil, state.startupComplete else { return .none }
            let limited = state.rewriteFailures >= Self.rewriteFailuresBeforeBackoff
                && now < state.nextAutoRewriteMilliseconds
            if recovering && !limited && !state.enablingAOF {
                return .autoRewrite("Starting AOF rewrite to recover from an fsync error")
            }
            if state.rewriteScheduled && !limited { return .rewrite }
            if state.saveScheduled { return .save(nil) }
            if let point = duePoint(state, now: now) { return .save(point) }
            guard !limited, let writer = state.writer, !state.enablingAOF, state.settings.rewritePercentage > 0
            else { return .none }
            let current = writer.status().currentSize
            guard current > state.settings.rewriteMinimumBytes else { return .none }
            let growth = current * 100 / max(state.rewriteBaseSize, 1) - 100
            guard growth >= state.settings.rewritePercentage else { return .none }
            return .autoRewrite("Starting automatic rewriting of AOF on \(growth)% growth")
        }
        switch next {
        case .none:
            break
        case .rewrite:
            _ = startRewrite()
        case .save(let point):
            if let point { log(.notice, "\(point.changes) changes in \(point.seconds) seconds. Saving...") }
            _ = startBackgroundSave(schedule: false, deferred: false)
        case .autoRewrite(let message):
            log(.notice, message)
            _ = startRewrite()
        }
    }

    private func duePoint(_ state: State, now: Int64) -> SavePoint? {
        guard let dataset = state.dataset else { return nil }
        let retryAllowed = state.lastSaveOK || now - state.lastSaveAttemptMilliseconds > Self.saveRetryDelayMilliseconds
        guard retryAllowed else { return nil }
        let dirty = dataset.changesSinceLastSave
        return state.settings.savePoints.first { point in
            dirty >= point.changes && now / 1000 - state.lastSaveSeconds > point.seconds
        }
    }

    /// Under `everysec` the fsync thread calls this about once a second; tests call it by hand.
    /// Returns true if an fsync ran.
    @discardableResult
    public func backgroundFsyncPass() -> Bool {
        state.withLock { $0.writer }?.backgroundFsyncPass() ?? false
    }

    // MARK: CONFIG SET

    /// Applies changed settings (CONFIG SET). Switching `appendOnly` enables or disables the AOF
    /// (refused with an error text while the dataset loads or if the AOF cannot start); the
    /// other fields take effect from the next write, save or rewrite.
    public func apply(_ new: PersistenceSettings) -> String? {
        let (old, ready) = state.withLock { state -> (PersistenceSettings, Bool) in
            let old = state.settings
            state.settings = new
            state.settings.appendOnly = old.appendOnly
            return (old, state.startupComplete)
        }
        if new.fsyncPolicy != old.fsyncPolicy { state.withLock { $0.writer }?.setFsyncPolicy(new.fsyncPolicy) }
        if new.timestampsEnabled != old.timestampsEnabled {
            state.withLock { $0.writer }?.setTimestampsEnabled(new.timestampsEnabled)
        }
        refreshSaveGate()
        guard new.appendOnly != old.appendOnly else { return nil }
        // The loader owns the AOF directory until start-up finishes.
        guard ready, let dataset else { return "the dataset is still loading" }
        if new.appendOnly { return enableAppendOnly(dataset) }
        disableAppendOnly(dataset)
        return nil
    }

    // MARK: MISCONF

    /// Recomputes whether writes are refused for a failed BGSAVE and attaches the refusing log
    /// when the AOF is off (with the AOF on, its AppendLogGeneration consults the same gate).
    func refreshSaveGate() {
        let (refusing, dataset) = state.withLock { ($0.refusesWritesForFailedSave, $0.dataset) }
        let was = gate.refusing.exchange(refusing, ordering: .relaxed)
        guard was != refusing, let dataset else { return }
        // Under the shard locks so enabling/disabling the AOF cannot interleave with this.
        let locked = dataset.keyspace.lockExclusive()
        if state.withLock({ $0.log == nil }) { dataset.attachLog(gateLogIfNeeded()) }
        dataset.keyspace.unlockExclusive(locked)
    }

    /// With the AOF off, a writer-less log exists only to refuse writes after a failed BGSAVE.
    func gateLogIfNeeded() -> AppendLogGeneration<S>? {
        guard gate.refusing.load(ordering: .relaxed) else { return nil }
        let base = state.withLock { $0.nextOffsetBase }
        return AppendLogGeneration(writer: nil, offsetBase: base, gate: gate)
    }

    /// The MISCONF text Redis 7.0 sends after a failed background save (`shared.bgsaveerr`).
    public static var misconfMessage: [UInt8] {
        Array(("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
            + "Commands that may modify the data set are disabled, because this instance is configured to report "
            + "errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). "
            + "Please check the Redis logs for details about the RDB error.").utf8)
    }

    // MARK: WAITAOF

    /// Whether the AOF is fsynced up to log `offset`, without forcing a write or an fsync (a
    /// replica's FACK); nil while the AOF is off.
    public func isFsynced(_ offset: UInt64) -> Bool? {
        guard let current = state.withLock({ $0.log }), let writer = current.writer else { return nil }
        if offset <= current.offsetBase { return true }
        return writer.status().fsyncedOffset >= offset - current.offsetBase
    }

    public func waitFsynced(_ offset: UInt64, timeoutMilliseconds: Int64) -> Bool? {
        guard let current = state.withLock({ $0.log }), current.writer != nil else { return nil }
        return current.waitUntilFsynced(offset, timeoutMilliseconds: timeoutMilliseconds)
    }

    // MARK: Shutdown

    /// The final save and AOF flush before exit. Returns false if the shutdown must be refused
    /// (the save failed, or the first base of a newly enabled AOF is still being written).
    /// The caller holds every shard lock, so nothing is written meanwhile.
    public func shutdown(mode: ShutdownSaveMode) -> Bool {
        let (current, initialAOF, started, dataset, savePoints) = state.withLock {
            ($0.log, $0.enablingAOF && $0.job == .rewrite, $0.startupComplete, $0.dataset, $0.settings.savePoints)
        }
        guard started, let dataset else {
            // Like Redis's prepareForShutdown while loading: saving a partial dataset would lose data.
            log(.warning, "Shutting down while loading the dataset: not saving.")
            return true
        }
        if initialAOF {
            // Redis refuses too: the AOF on disk does not hold the dataset until this base exists.
            log(.warning, "Writing initial AOF, can't exit.")
            return false
        }
        if mode == .save || (mode == .configured && !savePoints.isEmpty) {
            log(.notice, "Saving the final RDB snapshot before exiting.")
            if !saveNow(dataset) {
                log(.warning, "Error trying to save the DB, can't exit.")
                return false
            }
        }
        if let writer = current?.writer {
            log(.notice, "Calling fsync() on the AOF file.")
            if !writer.shutdown() { log(.warning, "Error flushing the AOF file on shutdown.") }
        }
        return true
    }

    // MARK: INFO

    /// Bytes the AOF writer holds that are not written yet (INFO memory `mem_aof_buffer`).
    public var aofBufferBytes: Int {
        state.withLock { $0.writer }?.status().bufferLength ?? 0
    }

    /// The `# Persistence` section's fields (header excluded), in Redis 7.0.15's order; the
    /// only place they are written.
    public func writeInfo(into text: inout String) {
        let state = state.withLock { $0 }
        let now = clock.nowMilliseconds()
        let isLoading = loading.isLoading.load(ordering: .acquiring)
        let saving = state.job == .save
        let rewriting = state.job == .rewrite
        text += "loading:\(isLoading ? 1 : 0)\r\nasync_loading:0\r\n"
        text += "current_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\n"
        text += "current_save_keys_processed:0\r\n"
        text += "current_save_keys_total:\(saving ? state.currentSaveKeysTotal : 0)\r\n"
        text += "rdb_changes_since_last_save:\(state.dataset?.changesSinceLastSave ?? 0)\r\n"
        text += "rdb_bgsave_in_progress:\(saving ? 1 : 0)\r\n"
        text += "rdb_last_save_time:\(state.lastSaveSeconds)\r\n"
        text += "rdb_last_bgsave_status:\(state.lastSaveOK ? "ok" : "err")\r\n"
        text += "rdb_last_bgsave_time_sec:\(state.lastSaveDurationSeconds)\r\n"
        text += "rdb_current_bgsave_time_sec:\(saving ? (now - state.jobStartedMilliseconds) / 1000 : -1)\r\n"
        text += "rdb_saves:\(state.saves)\r\nrdb_last_cow_size:0\r\n"
        text += "rdb_last_load_keys_expired:\(state.lastLoadKeysExpired)\r\n"
        text += "rdb_last_load_keys_loaded:\(state.lastLoadKeysLoaded)\r\n"
        let enabled = state.settings.appendOnly
        text += "aof_enabled:\(enabled ? 1 : 0)\r\n"
        text += "aof_rewrite_in_progress:\(rewriting ? 1 : 0)\r\n"
        text += "aof_rewrite_scheduled:\(state.rewriteScheduled ? 1 : 0)\r\n"
        text += "aof_last_rewrite_time_sec:\(state.lastRewriteSeconds)\r\n"
        text += "aof_current_rewrite_time_sec:\(rewriting ? (now - state.jobStartedMilliseconds) / 1000 : -1)\r\n"
        text += "aof_last_bgrewrite_status:\(state.lastRewriteOK ? "ok" : "err")\r\n"
        text += "aof_rewrites:\(state.rewrites)\r\n"
        text += "aof_rewrites_consecutive_failures:\(state.rewriteFailures)\r\n"
        let writer = state.writer?.status()
        text += "aof_last_write_status:\(writer?.errorCode == nil ? "ok" : "err")\r\n"
        text += "aof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n"
        if enabled, let writer {
            text += "aof_current_size:\(writer.currentSize)\r\n"
            text += "aof_base_size:\(writer.baseSize)\r\n"
            text += "aof_pending_rewrite:\(state.rewriteScheduled ? 1 : 0)\r\n"
            text += "aof_buffer_length:\(writer.bufferLength)\r\n"
            text += "aof_pending_bio_fsync:\(writer.fsyncInProgress ? 1 : 0)\r\n"
            text += "aof_delayed_fsync:\(writer.delayedFsyncs)\r\n"
        }
        // Redis prints the loading progress block last.
        if isLoading {
            let total = loading.totalBytes.load(ordering: .relaxed)
            let loaded = loading.loadedBytes.load(ordering: .relaxed)
            text += "loading_start_time:\(state.loadStartedSeconds)\r\n"
            text += "loading_total_bytes:\(total)\r\nloading_rdb_used_mem:0\r\n"
            text += "loading_loaded_bytes:\(loaded)\r\nloading_loaded_perc:\(percent(loaded, of: total))\r\n"
            text += "loading_eta_seconds:1\r\n"
        }
    }
}

/// `loaded * 100 / total` as `%.2f`, without Foundation.
func percent(_ loaded: Int64, of total: Int64) -> String {
    guard total > 0 else { return "0.00" }
    let hundredths = Int64((Double(loaded) * 10_000 / Double(total)).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
}
