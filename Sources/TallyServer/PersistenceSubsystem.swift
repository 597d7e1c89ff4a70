// PersistenceSubsystem: the seam through which the AOF and RDB code plug into server startup,
// INFO, the cron and shutdown. The server calls it; TallyPersistence adapters implement it.
import TallyCommands
import TallyKeyspace

/// What SHUTDOWN (or SIGTERM) asked for.
public enum ShutdownSaveMode: Sendable, Equatable {
    /// Save if save points are configured (SIGTERM, plain SHUTDOWN).
    case configured
    /// SHUTDOWN SAVE: save even without save points.
    case save
    /// SHUTDOWN NOSAVE: never save.
    case noSave
}

/// A fatal startup problem reported by persistence (bad AOF, unreadable RDB...).
public struct PersistenceStartupError: Error, Sendable {
    /// The log line(s) to print before exiting with status 1.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
}

/// Startup, runtime and shutdown hooks of the persistence layer.
///
/// Startup order (see `Server.start`):
/// ```
///  config ─► serverCommands ─► CommandEngine ─► load(engine:) ─► attach(engine:) ─► listen ─► serve
///                                                                       │
///                               cron (hz) ─► tick(engine:now:)          └─► engine.attachLog(log)
///  SIGTERM / SHUTDOWN ─► shutdown(engine:mode:) ─► exit
/// ```
public protocol PersistenceSubsystem: AnyObject, Sendable {
    /// Command rows this subsystem implements (SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE...).
    var serverCommands: [CommandSpec] { get }

    /// Loads the dataset from disk into `engine` before clients are accepted.
    func load(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError)

    /// Opens the AOF for appending (if enabled) and returns it so the engine logs writes to it.
    func attach(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError) -> (any CommandLog)?

    /// Appends the `# Persistence` INFO fields (each `name:value\r\n`), header excluded.
    func writeInfo(into text: inout String, engine: CommandEngine)

    /// Called `hz` times per second: save rules, everysec fsync checks, rewrite triggers, retries.
    func tick(engine: CommandEngine, nowMilliseconds: Int64)

    /// Final save/flush before exit. Returns false if SHUTDOWN must be refused (save failed).
    func shutdown(engine: CommandEngine, mode: ShutdownSaveMode, log: ServerLog) -> Bool

    /// CONFIG SET of a persistence option (appendonly, appendfsync, save...). Returns an error
    /// text to refuse the change, nil to accept it.
    func configurationChanged(_ name: String, value: String, engine: CommandEngine) -> String?
}

/// Builds the persistence subsystem from the parsed configuration.
public typealias PersistenceFactory = @Sendable (ServerConfiguration, ServerLog) -> any PersistenceSubsystem

/// The subsystem used when no persistence implementation is wired in: nothing is loaded or
/// saved, and INFO reports persistence as disabled. `appendonly yes` is reported in the log.
public final class NoPersistence: PersistenceSubsystem {
    /// Creates it.
    public init() {}

    public var serverCommands: [CommandSpec] { [] }

    public func load(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError) {}

    public func attach(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError) -> (any CommandLog)? {
        nil
    }

    public func writeInfo(into text: inout String, engine: CommandEngine) {
        text += "loading:0\r\nasync_loading:0\r\n"
        text += "rdb_changes_since_last_save:\(engine.changesSinceLastSave)\r\n"
        text += "rdb_bgsave_in_progress:0\r\naof_enabled:0\r\naof_rewrite_in_progress:0\r\n"
    }

    public func tick(engine: CommandEngine, nowMilliseconds: Int64) {}

    public func shutdown(engine: CommandEngine, mode: ShutdownSaveMode, log: ServerLog) -> Bool { true }

    public func configurationChanged(_ name: String, value: String, engine: CommandEngine) -> String? { nil }
}
