// SnapshotController: SAVE, BGSAVE, LASTSAVE, save rules, INFO fields and the MISCONF refusal after a failed save.
import Dispatch
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyProtocol

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

/// RDB snapshot settings (`dir`, `dbfilename`, `save`, `rdbcompression`...).
public struct SnapshotSettings: Sendable {
    /// `dir`.
    public var directory: String
    /// `dbfilename`.
    public var fileName: String = "dump.rdb"
    /// `save` rules; empty disables automatic saves.
    public var savePoints: [SavePoint] = SavePoint.defaults
    /// `rdbcompression` / `rdbchecksum` and hash limits.
    public var writer = RDBWriterOptions()
    /// `rdb-save-incremental-fsync`.
    public var incrementalFsync = true
    /// `stop-writes-on-bgsave-error`.
    public var stopWritesOnError = true
    /// Read size when loading (large enough to amortize read(2)).
    public var loadChunkBytes = 64 * 1024

    /// Settings for `directory` with Redis defaults.
    public init(directory: String) { self.directory = directory }
}

/// Drives RDB saves for a server: blocking SAVE, background BGSAVE on a dispatch queue, the save
/// rules checked from the cron tick, and the state INFO reports. One background job runs at a
/// time, like Redis's single child process: other jobs (AOF rewrites) claim the same slot with
/// `beginOtherBackgroundJob`, and a BGSAVE meanwhile is refused or scheduled.
///
///     command thread                       snapshot queue
///     BGSAVE ─ keyspace.snapshot() ─────▶  saveSnapshot (temp, fsync, rename, dir fsync)
///            ◀─ "+Background saving started"          │
///     tick / INFO read `state` ◀─────── record(): status, lastsave, dirty -= n ─▶ onSaveFinished
public final class SnapshotController<S: Storage>: Sendable {
    private struct State {
        var settings: SnapshotSettings
        var inProgress = false
        var scheduled = false
        var otherJobActive = false
        var lastSaveSeconds: Int64
        var lastStatusOK = true
        var lastAttemptMilliseconds: Int64 = 0
        var lastDurationSeconds: Int64 = -1
        var currentStartMilliseconds: Int64 = 0
        var currentKeysTotal = 0
        var saves = 0
        var lastLoadKeysLoaded = 0
        var lastLoadKeysExpired = 0
    }

    private enum Due { case none, scheduled, rule(SavePoint) }

    /// Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failure, automatic saves wait this long.
    public static var retryDelayMilliseconds: Int64 { 5000 }

    private let storage: S
    private let clock: any Clock
    private let log: AOFLogger
    private let usedMemoryBytes: @Sendable () -> Int64
    private let state: Mutex<State>
    private let observer = Mutex<(@Sendable (_ ok: Bool) -> Void)?>(nil)
    private let queue = DispatchQueue(label: "tally.rdb.bgsave")
    private let finished = DispatchGroup()

    /// Creates a controller; LASTSAVE starts at the current time, as in Redis. `log` receives
    /// Redis's save log lines; `usedMemoryBytes` fills the `used-mem` aux field.
    public init(storage: S, settings: SnapshotSettings, clock: any Clock, log: @escaping AOFLogger = { _, _ in },
                usedMemoryBytes: @escaping @Sendable () -> Int64 = { 0 }) {
        self.storage = storage
        self.clock = clock
        self.log = log
        self.usedMemoryBytes = usedMemoryBytes
        self.state = Mutex(State(settings: settings, lastSaveSeconds: clock.nowMilliseconds() / 1000))
    }

    /// Called after every save (SAVE, BGSAVE, shutdown) with its outcome, outside any lock
    /// (the server recomputes its MISCONF gate there).
    public func onSaveFinished(_ body: @escaping @Sendable (_ ok: Bool) -> Void) { observer.withLock { $0 = body } }

    /// The current settings.
    public var settings: SnapshotSettings { state.withLock { $0.settings } }

    /// Replaces the settings (CONFIG SET dir/dbfilename/save...).
    public func update(_ change: (inout SnapshotSettings) -> Void) { state.withLock { change(&$0.settings) } }

    /// True while a BGSAVE runs.
    public var isBackgroundSaveInProgress: Bool { state.withLock { $0.inProgress } }

    /// Unix seconds of the last successful save (LASTSAVE).
    public var lastSaveSeconds: Int64 { state.withLock { $0.lastSaveSeconds } }

    /// Whether the last save succeeded.
    public var lastSaveSucceeded: Bool { state.withLock { $0.lastStatusOK } }

    /// Claims the background slot for another job (an AOF rewrite). False while a BGSAVE runs.
    public func beginOtherBackgroundJob() -> Bool {
        state.withLock { state in
            if state.inProgress { return false }
            state.otherJobActive = true
            return true
        }
    }

    /// Releases the slot claimed by `beginOtherBackgroundJob`; a scheduled BGSAVE may run on the next tick.
    public func endOtherBackgroundJob() { state.withLock { $0.otherJobActive = false } }

    /// Records the keys an AOF's RDB preamble loaded (`rdb_last_load_keys_*`).
    public func recordLoad(keysLoaded: Int, keysExpired: Int) {
        state.withLock { state in
            state.lastLoadKeysLoaded = keysLoaded
            state.lastLoadKeysExpired = keysExpired
        }
    }

    /// Loads dump.rdb into the engine's keyspace at startup (missing or empty file: nothing loaded),
    /// dropping keys already expired by the engine's clock. `progress` gets the byte counts INFO shows.
    public func load(into engine: CommandEngine, progress: AOFLoadingStatus? = nil) throws -> RDBLoadResult? {
        let settings = self.settings
        let result = try loadSnapshotFile(
            storage: storage, directory: settings.directory, fileName: settings.fileName,
            into: engine.keyspace, nowMilliseconds: engine.clock.nowMilliseconds(), chunkBytes: settings.loadChunkBytes,
            progress: progress)
        engine.resetChangesSinceLastSave(to: 0)
        if let result {
            if let version = result.auxValue("redis-ver") {
                log(.notice, "Loading RDB produced by version \(String(decoding: version, as: UTF8.self))")
            }
            log(.notice, "Done loading RDB, keys loaded: \(result.keysLoaded), "
                + "keys expired: \(result.expiredKeysDropped).")
            recordLoad(keysLoaded: result.keysLoaded, keysExpired: result.expiredKeysDropped)
        }
        return result
    }

    private func options(_ settings: SnapshotSettings, nowMilliseconds: Int64) -> RDBWriterOptions {
        var options = settings.writer
        options.creationTimeSeconds = nowMilliseconds / 1000
        options.usedMemoryBytes = usedMemoryBytes()
        return options
    }

    private func write(_ snapshot: KeyspaceSnapshot, settings: SnapshotSettings, options: RDBWriterOptions) -> Bool {
        do {
            try saveSnapshot(snapshot, storage: storage, directory: settings.directory, fileName: settings.fileName,
                             options: options, incrementalFsync: settings.incrementalFsync)
            log(.notice, "DB saved on disk")
            return true
        } catch {
            log(.warning, "Failed opening the temp RDB file or writing it: \(error)")
            return false
        }
    }

    /// Saves synchronously (SAVE, shutdown). Returns false on failure (reported as `-ERR`). As in
    /// Redis, a failed SAVE leaves `rdb_last_bgsave_status` alone; a successful one sets it ok.
    public func save(engine: CommandEngine) -> Bool {
        let settings = self.settings
        let start = clock.nowMilliseconds()
        let changes = engine.changesSinceLastSave
        let options = options(settings, nowMilliseconds: start)
        let snapshot = engine.keyspace.snapshot(serializer: rdbShardSerializer(options: options))
        state.withLock { $0.saves += 1 }
        let ok = write(snapshot, settings: settings, options: options)
        record(ok: ok, engine: engine, changesAtStart: changes, start: start, background: false)
        return ok
    }

    /// Outcome of a BGSAVE request.
    public enum BackgroundStart: Sendable, Equatable {
        /// The save is running.
        case started
        /// It runs from the cron once the other job ends (BGSAVE SCHEDULE, or inside EXEC).
        case scheduled
        /// Another save runs already.
        case alreadyInProgress
        /// Another background job (an AOF rewrite) runs and no SCHEDULE was given.
        case otherJobActive
    }

    /// Starts a background save: the snapshot is taken now, written on the snapshot queue.
    /// `schedule` (BGSAVE SCHEDULE) and `deferred` (inside EXEC) postpone it to the cron instead.
    public func startBackgroundSave(engine: CommandEngine, schedule: Bool = false,
                                    deferred: Bool = false) -> BackgroundStart {
        let start = clock.nowMilliseconds()
        let decision: (settings: SnapshotSettings?, reply: BackgroundStart) = state.withLock { state in
            if state.inProgress { return (nil, .alreadyInProgress) }
            if state.otherJobActive || deferred {
                if schedule || deferred {
                    state.scheduled = true
                    return (nil, .scheduled)
                }
                return (nil, .otherJobActive)
            }
            state.inProgress = true
            state.scheduled = false
            state.currentStartMilliseconds = start
            state.lastAttemptMilliseconds = start
            state.saves += 1
            return (state.settings, .started)
        }
        guard let settings = decision.settings else { return decision.reply }
        let changes = engine.changesSinceLastSave
        let options = options(settings, nowMilliseconds: start)
        let snapshot = engine.keyspace.snapshot(serializer: rdbShardSerializer(options: options))
        var keys = 0
        for database in 0..<snapshot.databaseCount { keys += snapshot.keyCount(database: database) }
        state.withLock { $0.currentKeysTotal = keys }
        log(.notice, "Background saving started")
        finished.enter()
        queue.async {
            let ok = self.write(snapshot, settings: settings, options: options)
            if ok {
                self.log(.notice, "Background saving terminated with success")
            } else {
                self.log(.warning, "Background saving error")
            }
            self.record(ok: ok, engine: engine, changesAtStart: changes, start: start, background: true)
            self.finished.leave()
        }
        return .started
    }

    /// Blocks until no background save runs (tests, shutdown).
    public func waitForBackgroundSave() { finished.wait() }

    private func record(ok: Bool, engine: CommandEngine, changesAtStart: Int64, start: Int64, background: Bool) {
        let end = clock.nowMilliseconds()
        // Only the changes the snapshot contains are cleared; later writes still count.
        if ok { engine.resetChangesSinceLastSave(subtracting: changesAtStart) }
        state.withLock { state in
            if background {
                state.inProgress = false
                state.lastDurationSeconds = (end - start) / 1000
                state.lastStatusOK = ok
            } else if ok {
                state.lastStatusOK = true
            }
            if ok { state.lastSaveSeconds = end / 1000 }
        }
        observer.withLock { $0 }?(ok)
    }

    /// Cron: runs a scheduled BGSAVE, or one a save rule calls for. Returns true if one started.
    @discardableResult
    public func tick(engine: CommandEngine, nowMilliseconds now: Int64) -> Bool {
        let due: Due = state.withLock { state in
            guard !state.inProgress, !state.otherJobActive else { return .none }
            if state.scheduled { return .scheduled }
            let dirty = engine.changesSinceLastSave
            let retryAllowed = state.lastStatusOK
                || now - state.lastAttemptMilliseconds > SnapshotController.retryDelayMilliseconds
            guard retryAllowed else { return .none }
            let point = state.settings.savePoints.first { point in
                dirty >= point.changes && now / 1000 - state.lastSaveSeconds > point.seconds
            }
            return point.map { .rule($0) } ?? .none
        }
        switch due {
        case .none: return false
        case .scheduled: break
        case .rule(let point): log(.notice, "\(point.changes) changes in \(point.seconds) seconds. Saving...")
        }
        return startBackgroundSave(engine: engine) == .started
    }

    /// The MISCONF error (without the leading `-`) that write commands get while the last
    /// background save failed, save points exist and `stop-writes-on-bgsave-error` is on; nil otherwise.
    public func writeRefusal() -> [UInt8]? {
        let refuse = state.withLock { state in
            state.settings.stopWritesOnError && !state.settings.savePoints.isEmpty && !state.lastStatusOK
        }
        return refuse ? SnapshotController.misconfMessage : nil
    }

    static var otherJobActiveError: String {
        "ERR Another child process is active (AOF?): can't BGSAVE right now. "
            + "Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
    }

    /// The MISCONF text Redis 7.0 sends after a failed background save.
    public static var misconfMessage: [UInt8] {
        Array(("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
            + "Commands that may modify the data set are disabled, because this instance is configured to report "
            + "errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). "
            + "Please check the Redis logs for details about the RDB error.").utf8)
    }

    /// The RDB fields of INFO persistence, `current_save_keys_processed` through
    /// `rdb_last_load_keys_loaded` in Redis 7.0.15's order (`name:value\r\n` each).
    public func writeInfo(into text: inout String, engine: CommandEngine) {
        let now = clock.nowMilliseconds()
        let snapshot = state.withLock { $0 }
        text += "current_save_keys_processed:0\r\n"
        text += "current_save_keys_total:\(snapshot.inProgress ? snapshot.currentKeysTotal : 0)\r\n"
        text += "rdb_changes_since_last_save:\(engine.changesSinceLastSave)\r\n"
        text += "rdb_bgsave_in_progress:\(snapshot.inProgress ? 1 : 0)\r\n"
        text += "rdb_last_save_time:\(snapshot.lastSaveSeconds)\r\n"
        text += "rdb_last_bgsave_status:\(snapshot.lastStatusOK ? "ok" : "err")\r\n"
        text += "rdb_last_bgsave_time_sec:\(snapshot.lastDurationSeconds)\r\n"
        let current = snapshot.inProgress ? (now - snapshot.currentStartMilliseconds) / 1000 : -1
        text += "rdb_current_bgsave_time_sec:\(current)\r\n"
        text += "rdb_saves:\(snapshot.saves)\r\nrdb_last_cow_size:0\r\n"
        text += "rdb_last_load_keys_expired:\(snapshot.lastLoadKeysExpired)\r\n"
        text += "rdb_last_load_keys_loaded:\(snapshot.lastLoadKeysLoaded)\r\n"
    }

    /// SAVE, BGSAVE [SCHEDULE] and LASTSAVE rows for the command table, with Redis 7.0's replies.
    public var serverCommands: [CommandSpec] {
        [
            CommandSpec(name: "save", arity: 1, flags: [.admin, .noScript, .noAsyncLoading, .noMulti],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                // Redis refuses SAVE only while an RDB child runs (a rewrite may go on).
                if self.isBackgroundSaveInProgress {
                    context.output.writeError("ERR Background save already in progress")
                } else if self.save(engine: context.engine) {
                    context.output.writeSimpleString("OK")
                } else {
                    context.output.writeError("ERR")
                }
            },
            CommandSpec(name: "bgsave", arity: -1, flags: [.admin, .noScript, .noAsyncLoading],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                var schedule = false
                if context.arguments.count == 2 && context.arguments.matches(1, "schedule") {
                    schedule = true
                } else if context.arguments.count != 1 {
                    context.output.writeError("ERR syntax error")
                    return
                }
                // Inside EXEC Redis defers the fork: the save runs from the next cron tick.
                switch self.startBackgroundSave(engine: context.engine, schedule: schedule,
                                                deferred: context.insideExec) {
                case .started: context.output.writeSimpleString("Background saving started")
                case .scheduled: context.output.writeSimpleString("Background saving scheduled")
                case .alreadyInProgress: context.output.writeError("ERR Background save already in progress")
                case .otherJobActive:
                    context.output.writeError(SnapshotController.otherJobActiveError.utf8)
                }
            },
            CommandSpec(name: "lastsave", arity: 1, flags: [.fast, .loading, .stale],
                        categories: ["@admin", "@fast", "@dangerous"]) { context in
                context.output.writeInteger(self.lastSaveSeconds)
            },
        ]
    }
}
