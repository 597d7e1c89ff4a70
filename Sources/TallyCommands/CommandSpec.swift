// CommandSpec: one row of the declarative command table (name, arity, flags, key positions, handler).
import TallyProtocol

/// Command properties, as Redis 7.0's `CMD_*` flags (server.h). Each flag that changes behaviour is
/// read in exactly one place of `CommandEngine.execute`, in the order of Redis's `processCommand`;
/// the others are only reported by COMMAND INFO, for clients that route on them.
public struct CommandFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// May modify the keyspace. Dispatch refuses it while persistence is failing (MISCONF); a
    /// handler that changed the dataset without it trips an assertion in debug builds.
    public static let write = CommandFlags(rawValue: 1 << 0)
    /// Only reads data (reported).
    public static let readonly = CommandFlags(rawValue: 1 << 1)
    /// May grow memory use: refused with OOM when eviction cannot get under `maxmemory`.
    public static let denyOOM = CommandFlags(rawValue: 1 << 2)
    /// Administrative (CONFIG, SHUTDOWN, SAVE...; reported).
    public static let admin = CommandFlags(rawValue: 1 << 3)
    /// O(1) or O(log N) in practice (reported).
    public static let fast = CommandFlags(rawValue: 1 << 4)
    /// Allowed before AUTH (AUTH, HELLO, QUIT...): dispatch skips the NOAUTH check.
    public static let noAuth = CommandFlags(rawValue: 1 << 5)
    /// Allowed while the dataset loads; dispatch answers -LOADING to every other command.
    public static let loading = CommandFlags(rawValue: 1 << 6)
    /// Allowed on a stale replica (reported; Tally has no replication yet).
    public static let stale = CommandFlags(rawValue: 1 << 7)
    /// Refused inside MULTI with "Command not allowed inside a transaction" (SAVE, SHUTDOWN...),
    /// which also dooms the transaction, as Redis's processCommand does.
    public static let noMulti = CommandFlags(rawValue: 1 << 8)
    /// Tally's own: runs at once inside MULTI instead of being queued (Redis names these
    /// commands in processCommand: EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    public static let transactionControl = CommandFlags(rawValue: 1 << 9)
    /// Not allowed from scripts (reported; Tally has no scripting yet).
    public static let noScript = CommandFlags(rawValue: 1 << 10)
    /// Allowed while a script is busy (reported).
    public static let allowBusy = CommandFlags(rawValue: 1 << 12)
    /// Not recorded in the slow log (reported).
    public static let skipSlowlog = CommandFlags(rawValue: 1 << 13)
    /// Refused during asynchronous (diskless replica) loading (reported; Tally always loads
    /// synchronously, where `loading` decides).
    public static let noAsyncLoading = CommandFlags(rawValue: 1 << 14)
    /// May block the client (BLPOP...): reported; inside MULTI it behaves as its non-blocking form.
    public static let blocking = CommandFlags(rawValue: 1 << 16)
    /// Redis's CMD_MAY_REPLICATE, which COMMAND INFO hides: not a write, but may change the
    /// dataset or be propagated (PFCOUNT refreshing its cache, PUBLISH, EVAL). A WRITE client
    /// pause holds these back as it holds writes.
    public static let mayReplicate = CommandFlags(rawValue: 1 << 19)
    /// Key positions depend on the arguments (LMPOP's numkeys); first/last/step are 0 (reported).
    public static let movableKeys = CommandFlags(rawValue: 1 << 15)
    /// A pub/sub command (reported).
    public static let pubsub = CommandFlags(rawValue: 1 << 17)
    /// Tally's own: allowed on a RESP2 connection with subscriptions (the subscribe family, PING,
    /// QUIT, RESET, as Redis's processCommand lists them); dispatch refuses every other command.
    public static let allowedWhileSubscribed = CommandFlags(rawValue: 1 << 18)
    /// Not shown to MONITOR (reported; EVAL and friends).
    public static let skipMonitor = CommandFlags(rawValue: 1 << 20)
    /// May run without any key even though it takes keys (EVAL's numkeys 0; reported).
    public static let noMandatoryKeys = CommandFlags(rawValue: 1 << 21)
    /// Tally's own: dispatch takes every shard before the handler runs (EVAL: a script is atomic
    /// like EXEC, and `finish()` can then serve blocked clients its writes woke).
    public static let runsExclusive = CommandFlags(rawValue: 1 << 22)
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
    /// Key specs for COMMAND INFO when one range spec derived from the key positions is not what
    /// Redis reports (GEORADIUS's STORE keywords, GEOSEARCHSTORE's write-then-read keys).
    public var keySpecs: [KeySpec] = []

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

/// One COMMAND INFO key spec (Redis 7's keySpec): flags, how the search begins, a range of keys.
public struct KeySpec: Sendable {
    /// Where the key search begins.
    public enum Begin: Sendable {
        /// At argument `index`.
        case index(Int)
        /// After `keyword`, looked up from argument `startFrom` on.
        case keyword(String, startFrom: Int)
    }

    /// Flags as Redis prints them ("RO", "access"; "OW", "update"...).
    public var flags: [String]
    /// Where the search begins.
    public var begin: Begin
    /// find_keys range: last key relative to the first (-1: the last argument), step and limit.
    public var lastKey: Int
    public var keyStep: Int
    public var limit: Int

    /// Creates a spec with a one-key range.
    public init(_ flags: [String], _ begin: Begin, lastKey: Int = 0, keyStep: Int = 1, limit: Int = 0) {
        self.flags = flags
        self.begin = begin
        self.lastKey = lastKey
        self.keyStep = keyStep
        self.limit = limit
    }
}
