// SlowLog: SLOWLOG GET/LEN/RESET/HELP and the entries the engine records (slowlog.c).
import Synchronization
import TallyKeyspace
import TallyProtocol

/// The slow log: commands that ran at least `slowlog-log-slower-than` microseconds, newest
/// first, at most `slowlog-max-len` of them. The engine asks `isSlow` after every command (one
/// relaxed atomic load); only a slow command takes the lock and copies its arguments.
public final class SlowLog: Sendable {
    /// Redis keeps at most 32 arguments of an entry (SLOWLOG_ENTRY_MAX_ARGC)...
    static let maxArguments = 32
    /// ...and at most 128 bytes of each (SLOWLOG_ENTRY_MAX_STRING).
    static let maxArgumentBytes = 128

    /// One logged command.
    struct Entry {
        var id: Int64
        var unixSeconds: Int64
        var durationMicroseconds: Int64
        var arguments: [[UInt8]]
        var peer: String
        var clientName: [UInt8]
    }

    private struct State {
        var entries: [Entry] = []   // oldest first; replies walk it backwards
        var nextID: Int64 = 0
        var maxLength = 128
    }

    private let state = Mutex(State())
    /// `slowlog-log-slower-than` in microseconds; negative disables the log.
    private let threshold = Atomic<Int64>(10_000)

    /// An empty log with Redis's defaults (10 ms, 128 entries).
    public init() {}

    /// Applies `slowlog-log-slower-than` and `slowlog-max-len` (CONFIG SET, start-up).
    public func configure(slowerThanMicroseconds: Int64, maxLength: Int) {
        threshold.store(slowerThanMicroseconds, ordering: .relaxed)
        state.withLock { state in
            state.maxLength = maxLength
            if state.entries.count > maxLength { state.entries.removeFirst(state.entries.count - maxLength) }
        }
    }

    /// True if a command that took `microseconds` belongs in the log.
    @inline(__always) func isSlow(_ microseconds: Int64) -> Bool {
        let limit = threshold.load(ordering: .relaxed)
        return limit >= 0 && microseconds >= limit
    }

    /// Records a command (slowlogCreateEntry): past 32 arguments the last kept one says how many
    /// more there were; an argument over 128 bytes keeps 128 and says how many more bytes it had.
    func record(_ arguments: CommandArguments, durationMicroseconds: Int64, session: ClientSession,
                unixSeconds: Int64) {
        let count = arguments.count
        let kept = min(count, Self.maxArguments)
        var logged: [[UInt8]] = []
        logged.reserveCapacity(kept)
        for index in 0..<kept {
            if kept != count && index == kept - 1 {
                logged.append(Array("... (\(count - kept + 1) more arguments)".utf8))
                continue
            }
            let argument = arguments[index]
            if argument.count > Self.maxArgumentBytes {
                logged.append(Array(argument.prefix(Self.maxArgumentBytes))
                    + Array("... (\(argument.count - Self.maxArgumentBytes) more bytes)".utf8))
            } else {
                logged.append(Array(argument))
            }
        }
        let peer = session.peerAddress
        let name = session.name ?? []
        state.withLock { state in
            guard state.maxLength > 0 else {
                state.nextID += 1
                return
            }
            state.entries.append(Entry(id: state.nextID, unixSeconds: unixSeconds,
                                       durationMicroseconds: durationMicroseconds, arguments: logged,
                                       peer: peer, clientName: name))
            state.nextID += 1
            let excess = state.entries.count - state.maxLength
            if excess > 0 { state.entries.removeFirst(excess) }
        }
    }

    /// Entries in the log.
    var count: Int { state.withLock { $0.entries.count } }

    /// Forgets every entry (ids keep counting, as in Redis).
    func reset() { state.withLock { $0.entries.removeAll() } }

    /// The newest `limit` entries, newest first.
    func newest(_ limit: Int) -> [Entry] {
        state.withLock { state in Array(state.entries.suffix(limit).reversed()) }
    }
}

/// SLOWLOG, a container command: the subcommand rows carry arity and flags for dispatch and
/// COMMAND INFO; the container's handler runs the subcommand.
enum SlowLogCommands {
    static var specs: [CommandSpec] {
        let flags: CommandFlags = [.admin, .loading, .stale]
        return [
            CommandSpec(name: "slowlog", arity: -2, flags: [], categories: ["@slow"], subcommands: [
                command("slowlog|get", -2, flags, "@admin @slow @dangerous") { _ in },
                command("slowlog|len", 2, flags, "@admin @slow @dangerous") { _ in },
                command("slowlog|reset", 2, flags, "@admin @slow @dangerous") { _ in },
                command("slowlog|help", 2, [.loading, .stale], "@slow") { _ in },
            ], handler: slowlog),
        ]
    }

    /// SLOWLOG subcommand (dispatch has checked the subcommand and its arity).
    static func slowlog(_ context: inout CommandContext) {
        let log = context.engine.slowLog
        if context.arguments.matches(1, "get") {
            get(&context)
        } else if context.arguments.matches(1, "len") {
            context.output.writeInteger(Int64(log.count))
        } else if context.arguments.matches(1, "reset") {
            log.reset()
            context.output.writeOK()
        } else {
            context.writeHelp("SLOWLOG", [
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
            ])
        }
    }

    /// SLOWLOG GET [count]: 10 by default, -1 for all; each entry is [id, unix time, microseconds,
    /// [arguments], peer, client name].
    static func get(_ context: inout CommandContext) {
        var limit = 10
        if context.arguments.count > 3 {
            return context.output.writeError(Array(
                "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.".utf8))
        }
        if context.arguments.count == 3 {
            guard let count = context.integerArgument(2, in: -1...Int64.max,
                                                      message: "ERR count should be greater than or equal to -1")
            else { return }
            limit = count == -1 ? Int.max : Int(clamping: count)
        }
        let entries = context.engine.slowLog.newest(limit)
        context.output.writeArrayHeader(entries.count)
        for entry in entries {
            context.output.writeArrayHeader(6)
            context.output.writeInteger(entry.id)
            context.output.writeInteger(entry.unixSeconds)
            context.output.writeInteger(entry.durationMicroseconds)
            context.output.writeArrayHeader(entry.arguments.count)
            for argument in entry.arguments { context.output.writeBulkString(argument) }
            context.output.writeBulkString(Array(entry.peer.utf8))
            context.output.writeBulkString(entry.clientName)
        }
    }
}
