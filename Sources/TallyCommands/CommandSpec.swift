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
    /// Redis's CMD_PROTECTED: refused unless `enable-module-command` allows the client (server.c
    /// processCommand, right after the arity check). Not shown by COMMAND INFO, as in Redis.
    public static let protected = CommandFlags(rawValue: 1 << 23)
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
    public internal(set) var subcommands: [CommandSpec]
    /// The implementation.
    public let handler: CommandHandler
    /// Key specs for COMMAND INFO and COMMAND GETKEYSANDFLAGS, as Redis declares them; the table
    /// fills them from `DeclaredKeySpecs` (a row with none gets one range spec derived from its
    /// key positions).
    public var keySpecs: [KeySpec] = []
    /// Command tips for COMMAND INFO (`request_policy:all_shards`, `nondeterministic_output`...).
    public var tips: [String] = []

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

/// Key-spec flags (server.h `CMD_KEY_*`): how a command uses the keys one spec finds.
public struct KeySpecFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Read only.
    public static let ro = KeySpecFlags(rawValue: 1 << 0)
    /// Read and written.
    public static let rw = KeySpecFlags(rawValue: 1 << 1)
    /// Overwritten without being read.
    public static let ow = KeySpecFlags(rawValue: 1 << 2)
    /// Removed.
    public static let rm = KeySpecFlags(rawValue: 1 << 3)
    /// The value (or part of it) is returned or used.
    public static let access = KeySpecFlags(rawValue: 1 << 4)
    /// The value is changed in place.
    public static let update = KeySpecFlags(rawValue: 1 << 5)
    /// Data is added to the value.
    public static let insert = KeySpecFlags(rawValue: 1 << 6)
    /// Data is taken out of the value.
    public static let delete = KeySpecFlags(rawValue: 1 << 7)
    /// A name in the key position that is not a key (SPUBLISH's shard channel).
    public static let notKey = KeySpecFlags(rawValue: 1 << 8)
    /// The spec may not find every key (MIGRATE's KEYS).
    public static let incomplete = KeySpecFlags(rawValue: 1 << 9)
    /// The flags depend on the arguments (SET with GET, BITFIELD with SET/INCRBY).
    public static let variableFlags = KeySpecFlags(rawValue: 1 << 10)

    /// Flag names in the order Redis prints them (server.c `addReplyFlagsForKeyArgs`).
    public static let names: [(KeySpecFlags, String)] = [
        (.ro, "RO"), (.rw, "RW"), (.ow, "OW"), (.rm, "RM"), (.access, "access"), (.update, "update"),
        (.insert, "insert"), (.delete, "delete"), (.notKey, "not_key"), (.incomplete, "incomplete"),
        (.variableFlags, "variable_flags"),
    ]

    /// The names of the flags set, in Redis's order.
    public var names: [String] { KeySpecFlags.names.filter { contains($0.0) }.map(\.1) }
}

/// One COMMAND INFO key spec (Redis 7's keySpec): flags, where the search begins and how the keys
/// are found from there. Redis's free-text `notes` are not kept: Tally does not copy its prose.
public struct KeySpec: Sendable {
    /// Where the key search begins.
    public enum Begin: Sendable {
        /// At argument `index`.
        case index(Int)
        /// After `keyword`, looked up from argument `startFrom` on (backwards from the end when negative).
        case keyword(String, startFrom: Int)
        /// Not expressible (SORT's BY/GET patterns and STORE anywhere in the arguments).
        case unknown
    }

    /// How the keys are found from the beginning.
    public enum Find: Sendable {
        /// Keys up to `lastKey` (relative to the first; negative: from the end of the arguments), every
        /// `keyStep`; with `limit` N and lastKey -1, the first 1/N of what follows (XREAD's STREAMS).
        case range(lastKey: Int, keyStep: Int, limit: Int)
        /// The key count is at `index` (relative to the beginning), the keys start `firstKey` after it.
        case keynum(index: Int, firstKey: Int, keyStep: Int)
        /// Not expressible.
        case unknown

        /// A range, written compactly in the tables.
        public static func range(_ lastKey: Int, step: Int = 1, limit: Int = 0) -> Find {
            .range(lastKey: lastKey, keyStep: step, limit: limit)
        }

        /// A key count, written compactly in the tables.
        public static func keynum(_ index: Int, first: Int, step: Int = 1) -> Find {
            .keynum(index: index, firstKey: first, keyStep: step)
        }
    }

    /// How the command uses these keys.
    public var flags: KeySpecFlags
    /// Where the search begins.
    public var begin: Begin
    /// How the keys are found.
    public var find: Find

    /// Creates a spec; the default finds one key at the beginning.
    public init(_ flags: KeySpecFlags, _ begin: Begin, _ find: Find = .range(0)) {
        self.flags = flags
        self.begin = begin
        self.find = find
    }
}
