// CommandSpec: one row of the declarative command table (name, arity, flags, key positions, handler).
import TallyProtocol

/// Command properties that drive dispatch, MULTI queuing, AOF logging and COMMAND output.
public struct CommandFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// May modify the keyspace; successful executions are logged to the AOF.
    public static let write = CommandFlags(rawValue: 1 << 0)
    /// Only reads data.
    public static let readonly = CommandFlags(rawValue: 1 << 1)
    /// May grow memory use (refused under maxmemory noeviction).
    public static let denyOOM = CommandFlags(rawValue: 1 << 2)
    /// Administrative (CONFIG, SHUTDOWN, SAVE...).
    public static let admin = CommandFlags(rawValue: 1 << 3)
    /// O(1) or O(log N) in practice.
    public static let fast = CommandFlags(rawValue: 1 << 4)
    /// Allowed before AUTH (AUTH, HELLO, QUIT...).
    public static let noAuth = CommandFlags(rawValue: 1 << 5)
    /// Allowed while the dataset is loading.
    public static let loading = CommandFlags(rawValue: 1 << 6)
    /// Allowed on a stale replica (reported by COMMAND only).
    public static let stale = CommandFlags(rawValue: 1 << 7)
    /// Not allowed inside MULTI (WATCH, MULTI itself...): replies with an error there.
    public static let noMulti = CommandFlags(rawValue: 1 << 8)
    /// Executes immediately even inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    public static let transactionControl = CommandFlags(rawValue: 1 << 9)
    /// Not shown in MONITOR, kept for COMMAND output.
    public static let noScript = CommandFlags(rawValue: 1 << 10)
    /// Reported as `skip_slowlog`/`sentinel` etc. are not modelled; this marks random output.
    public static let random = CommandFlags(rawValue: 1 << 11)
    /// Allowed while the server is busy running a script (COMMAND reports `allow_busy`).
    public static let allowBusy = CommandFlags(rawValue: 1 << 12)
    /// Not recorded in the slow log (COMMAND reports `skip_slowlog`).
    public static let skipSlowlog = CommandFlags(rawValue: 1 << 13)
}

/// A command handler: parses its arguments from `context.arguments`, runs shard operations and
/// writes exactly one reply into `context.output`.
public typealias CommandHandler = @Sendable (inout CommandContext) -> Void

/// One row of the command table.
public struct CommandSpec: Sendable {
    /// Lowercase command name, as COMMAND reports it.
    public let name: String
    /// Redis arity: positive = exact argument count (name included); negative = at least -arity.
    public let arity: Int
    /// Behaviour flags.
    public let flags: CommandFlags
    /// Index of the first key argument (0 if none).
    public let firstKey: Int
    /// Index of the last key argument (-1 = last argument).
    public let lastKey: Int
    /// Step between key arguments.
    public let step: Int
    /// ACL categories as COMMAND INFO reports them (e.g. ["@write", "@string", "@fast"]).
    public let categories: [String]
    /// Subcommands (CLIENT, CONFIG, COMMAND...), each a full row named "parent|sub".
    public let subcommands: [CommandSpec]
    /// The implementation.
    public let handler: CommandHandler

    /// Creates a row.
    public init(
        name: String, arity: Int, flags: CommandFlags, firstKey: Int = 0, lastKey: Int = 0, step: Int = 0,
        categories: [String] = [], subcommands: [CommandSpec] = [], handler: @escaping CommandHandler
    ) {
        self.name = name
        self.arity = arity
        self.flags = flags
        self.firstKey = firstKey
        self.lastKey = lastKey
        self.step = step
        self.categories = categories
        self.subcommands = subcommands
        self.handler = handler
    }
}
