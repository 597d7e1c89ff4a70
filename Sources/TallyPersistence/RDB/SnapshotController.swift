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

    /// Settings for `directory` with Redis defaults.
    public init(directory: String) { self.directory = directory }
}

/// Drives RDB saves for a server: blocking SAVE, background BGSAVE on a dispatch queue, the save
/// rules checked from the cron tick, and the state INFO reports.
///
///     command thread                       snapshot queue
///     BGSAVE ─ keyspace.snapshot() ─────▶  saveSnapshot (temp, fsync, rename, dir fsync)
///            ◀─ "+Background saving started"          │
///     tick / INFO read `state` ◀─────── record(): status, lastsave, dirty -= n
public final class SnapshotController<S: Storage>: Sendable {
    private struct State {
        var settings: SnapshotSettings
        var inProgress = false
        var scheduled = false
        var lastSaveSeconds: Int64
        var lastStatusOK = true
        var lastAttemptMilliseconds: Int64 = 0
        var lastDurationSeconds: Int64 = -1
        var currentStartMilliseconds: Int64 = 0
    }

    /// Redis's CONFIG_BGSAVE_RETRY_DELAY: after a failure, automatic saves wait this long.
    public static var retryDelayMilliseconds: Int64 { 5000 }

    private let storage: S
    private let clock: any Clock
    private let state: Mutex<State>
    private let queue = DispatchQueue(label: "tally.rdb.bgsave")
    private let finished = DispatchGroup()

    /// Creates a controller; LASTSAVE starts at the current time, as in Redis.
    public init(storage: S, settings: SnapshotSettings, clock: any Clock) {
        self.storage = storage
        self.clock = clock
        self.state = Mutex(State(settings: settings, lastSaveSeconds: clock.nowMilliseconds() / 1000))
    }

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

    /// Loads dump.rdb into the engine's keyspace at startup (missing file: nothing loaded).
    public func load(into engine: CommandEngine) throws -> RDBLoadResult? {
        let settings = self.settings
        let result = try loadSnapshotFile(
            storage: storage, directory: settings.directory, fileName: settings.fileName,
            into: engine.keyspace, nowMilliseconds: clock.nowMilliseconds())
        engine.resetChangesSinceLastSave(to: 0)
        return result
    }

    private func options(_ settings: SnapshotSettings, nowMilliseconds: Int64) -> RDBWriterOptions {
        var options = settings.writer
        options.creationTimeSeconds = nowMilliseconds / 1000
        return options
    }

    /// Saves synchronously (SAVE, shutdown). Returns false on failure (reported as `-ERR`).
    public func save(engine: CommandEngine) -> Bool {
        let settings = self.settings
        let start = clock.nowMilliseconds()
        let changes = engine.changesSinceLastSave
        let snapshot = engine.keyspace.snapshot()
        let ok = (try? saveSnapshot(snapshot, storage: storage, directory: settings.directory,
                                    fileName: settings.fileName, options: options(settings, nowMilliseconds: start),
                                    incrementalFsync: settings.incrementalFsync)) != nil
        record(ok: ok, engine: engine, changesAtStart: changes, start: start, background: false)
        return ok
    }

    /// Outcome of a BGSAVE request.
    public enum BackgroundStart: Sendable, Equatable {
        /// The save is running.
        case started
        /// Another save runs already.
        case alreadyInProgress
    }

    /// Starts a background save: the snapshot is taken now, written on the snapshot queue.
    public func startBackgroundSave(engine: CommandEngine) -> BackgroundStart {
        let start = clock.nowMilliseconds()
        let settings: SnapshotSettings? = state.withLock { state in
            if state.inProgress { return nil }
            state.inProgress = true
            state.scheduled = false
            state.currentStartMilliseconds = start
            state.lastAttemptMilliseconds = start
            return state.settings
        }
        guard let settings else { return .alreadyInProgress }
        let changes = engine.changesSinceLastSave
        let snapshot = engine.keyspace.snapshot()
        let storage = self.storage
        let options = options(settings, nowMilliseconds: start)
        finished.enter()
        queue.async {
            let ok = (try? saveSnapshot(snapshot, storage: storage, directory: settings.directory,
                                        fileName: settings.fileName, options: options,
                                        incrementalFsync: settings.incrementalFsync)) != nil
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
            }
            state.lastStatusOK = ok
            if ok { state.lastSaveSeconds = end / 1000 }
        }
    }

    /// Cron: runs a scheduled BGSAVE, or one a save rule calls for.
    public func tick(engine: CommandEngine, nowMilliseconds now: Int64) {
        let due: Bool = state.withLock { state in
            guard !state.inProgress else { return false }
            if state.scheduled { return true }
            let dirty = engine.changesSinceLastSave
            let retryAllowed = state.lastStatusOK
                || now - state.lastAttemptMilliseconds > SnapshotController.retryDelayMilliseconds
            guard retryAllowed else { return false }
            return state.settings.savePoints.contains { point in
                dirty >= point.changes && now / 1000 - state.lastSaveSeconds > point.seconds
            }
        }
        if due { _ = startBackgroundSave(engine: engine) }
    }

    /// The MISCONF error (without the leading `-`) that write commands get while the last save
    /// failed, save points exist and `stop-writes-on-bgsave-error` is on; nil otherwise.
    public func writeRefusal() -> [UInt8]? {
        let refuse = state.withLock { state in
            state.settings.stopWritesOnError && !state.settings.savePoints.isEmpty && !state.lastStatusOK
        }
        return refuse ? SnapshotController.misconfMessage : nil
    }

    static var misconfMessage: [UInt8] {
        Array(("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. "
            + "Commands that may modify the data set are disabled, because this instance is configured to report "
            + "errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). "
            + "Please check the Redis logs for details about the RDB error.").utf8)
    }

    /// The RDB fields of INFO persistence (`name:value\r\n` each).
    public func writeInfo(into text: inout String, engine: CommandEngine) {
        let now = clock.nowMilliseconds()
        let snapshot = state.withLock { $0 }
        text += "rdb_changes_since_last_save:\(engine.changesSinceLastSave)\r\n"
        text += "rdb_bgsave_in_progress:\(snapshot.inProgress ? 1 : 0)\r\n"
        text += "rdb_last_save_time:\(snapshot.lastSaveSeconds)\r\n"
        text += "rdb_last_bgsave_status:\(snapshot.lastStatusOK ? "ok" : "err")\r\n"
        text += "rdb_last_bgsave_time_sec:\(snapshot.lastDurationSeconds)\r\n"
        let current = snapshot.inProgress ? (now - snapshot.currentStartMilliseconds) / 1000 : -1
        text += "rdb_current_bgsave_time_sec:\(current)\r\n"
    }

    /// SAVE, BGSAVE [SCHEDULE] and LASTSAVE rows for the command table.
    public var serverCommands: [CommandSpec] {
        [
            CommandSpec(name: "save", arity: 1, flags: [.admin, .noScript],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                if self.isBackgroundSaveInProgress {
                    context.output.writeError("ERR Background save already in progress")
                } else if self.save(engine: context.engine) {
                    context.output.writeSimpleString("OK")
                } else {
                    context.output.writeError("ERR")
                }
            },
            CommandSpec(name: "bgsave", arity: -1, flags: [.admin, .noScript],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                var schedule = false
                if context.arguments.count == 2 && context.arguments.matches(1, "schedule") {
                    schedule = true
                } else if context.arguments.count != 1 {
                    context.output.writeError("ERR syntax error")
                    return
                }
                // A save already running is an error even with SCHEDULE, as in Redis 7.0.
                _ = schedule
                if context.insideExec && !self.isBackgroundSaveInProgress {
                    // Inside EXEC Redis defers the fork; the save runs from the next cron tick.
                    self.state.withLock { $0.scheduled = true }
                    context.output.writeSimpleString("Background saving scheduled")
                    return
                }
                switch self.startBackgroundSave(engine: context.engine) {
                case .started: context.output.writeSimpleString("Background saving started")
                case .alreadyInProgress: context.output.writeError("ERR Background save already in progress")
                }
            },
            CommandSpec(name: "lastsave", arity: 1, flags: [.fast, .random, .loading, .stale],
                        categories: ["@admin", "@fast", "@dangerous"]) { context in
                context.output.writeInteger(self.lastSaveSeconds)
            },
        ]
    }
}
