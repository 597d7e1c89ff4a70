// CommandTable: the rows every command is dispatched by, looked up by argv[0] bytes without allocating.
import Synchronization
import TallyProtocol

/// Runtime counters of one command (INFO commandstats), updated from any I/O thread.
public final class CommandStatistics: Sendable {
    /// Executions.
    public let calls = Atomic<Int64>(0)
    /// Total execution time in microseconds.
    public let microseconds = Atomic<Int64>(0)
    /// Refused before running (arity, NOAUTH, MISCONF...).
    public let rejectedCalls = Atomic<Int64>(0)
    /// Ran and replied with an error.
    public let failedCalls = Atomic<Int64>(0)
    /// Call durations (INFO latencystats, LATENCY HISTOGRAM) while latency-tracking is on.
    public let latency = LatencyHistogram()

    /// Creates zeroed counters.
    public init() {}

    /// Zeroes all counters (CONFIG RESETSTAT).
    public func reset() {
        calls.store(0, ordering: .relaxed)
        microseconds.store(0, ordering: .relaxed)
        rejectedCalls.store(0, ordering: .relaxed)
        failedCalls.store(0, ordering: .relaxed)
        latency.reset()
    }
}

/// All top-level commands. Lookup folds ASCII case and compares bytes in place, so dispatching
/// a request never builds a String or an array.
public final class CommandTable: Sendable {
    /// The rows, in registration order.
    public let rows: [CommandSpec]
    /// Counters, parallel to `rows`.
    public let statistics: [CommandStatistics]
    /// A container's subcommands' counters (Redis reports `cmdstat_config|get`), parallel to
    /// `rows[row].subcommands`.
    public let subcommandStatistics: [[CommandStatistics]]
    /// Each row's flags, parallel to `rows`: dispatch reads them without copying a row (a
    /// `CommandSpec` copy retains its name, categories, subcommands and handler).
    public let flags: [CommandFlags]
    /// For container commands (CLIENT, CONFIG, COMMAND), the lowercase names of their
    /// subcommands after the `|`, in the order of `rows[row].subcommands`; empty otherwise.
    private let subcommandNames: [[[UInt8]]]
    /// True for container rows, parallel to `rows` (read per command without touching the
    /// nested arrays).
    private let isContainer: [Bool]
    private let names: [[UInt8]]
    /// Open-addressing slots holding row index + 1 (0 = empty); size is a power of two.
    private let slots: [Int32]

    /// Builds the table; names must be unique (case-insensitively).
    public init(_ rows: [CommandSpec]) {
        let rows = rows.map(DeclaredKeySpecs.apply)
        self.rows = rows
        statistics = rows.map { _ in CommandStatistics() }
        subcommandStatistics = rows.map { $0.subcommands.map { _ in CommandStatistics() } }
        flags = rows.map(\.flags)
        isContainer = rows.map { !$0.subcommands.isEmpty }
        subcommandNames = rows.map { row in
            row.subcommands.map { sub in
                let name = sub.name.lowercased()
                precondition(name.hasPrefix(row.name + "|"), "subcommand \(sub.name) of \(row.name)")
                return Array(name.utf8.dropFirst(row.name.utf8.count + 1))
            }
        }
        names = rows.map { Array($0.name.lowercased().utf8) }
        var size = 16
        while size < rows.count * 4 { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for (row, name) in names.enumerated() {
            var slot = CommandTable.hash(name[...]) & (size - 1)
            while slots[slot] != 0 {
                precondition(names[Int(slots[slot]) - 1] != name, "duplicate command \(rows[row].name)")
                slot = (slot + 1) & (size - 1)
            }
            slots[slot] = Int32(row + 1)
        }
        self.slots = slots
    }

    /// Number of top-level commands (COMMAND COUNT).
    public var count: Int { rows.count }

    @inline(__always)
    private static func fold(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

    private static func hash(_ bytes: ArraySlice<UInt8>) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(fold(byte))
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return Int(truncatingIfNeeded: hash ^ (hash >> 32))
    }

    /// The row index for a command name given as request bytes (any case), or nil.
    public func lookup(_ name: ArraySlice<UInt8>) -> Int? {
        if name.isEmpty || name.count > 32 { return nil }
        let mask = slots.count - 1
        var slot = CommandTable.hash(name) & mask
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            let candidate = names[entry - 1]
            if candidate.count == name.count {
                var equal = true
                var position = name.startIndex
                for byte in candidate {
                    if CommandTable.fold(name[position]) != byte {
                        equal = false
                        break
                    }
                    position += 1
                }
                if equal { return entry - 1 }
            }
            slot = (slot + 1) & mask
        }
    }

    /// True if `row` is a container command whose second argument names a subcommand.
    @inline(__always)
    public func hasSubcommands(_ row: Int) -> Bool { isContainer[row] }

    /// The index into `rows[row].subcommands` of the subcommand named `name` (any case), or
    /// nil (Redis's lookupSubcommand); containers have a handful, so a scan is enough.
    public func subcommand(of row: Int, named name: ArraySlice<UInt8>) -> Int? {
        for (index, candidate) in subcommandNames[row].enumerated() where candidate.count == name.count {
            if zip(candidate, name).allSatisfy({ $0 == CommandTable.fold($1) }) { return index }
        }
        return nil
    }

    /// The row for `name` (any case), or nil.
    public func spec(named name: String) -> CommandSpec? {
        lookup(Array(name.utf8)[...]).map { rows[$0] }
    }

    /// True if argument count `count` (name included) satisfies `arity`.
    @inline(__always)
    public static func arityAccepts(_ arity: Int, _ count: Int) -> Bool {
        arity >= 0 ? count == arity : count >= -arity
    }
}
