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
    /// `statistics` unretained, for counting every call: reading a class reference out of an
    /// array retains and releases it (two atomic operations a command); these live as long as
    /// the table, which holds them in `statistics`.
    let unretainedStatistics: [Unmanaged<CommandStatistics>]
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
    /// Each row's name folded to lower case (see `FoldedName`), parallel to `rows`.
    private let names: [FoldedName]
    /// Open-addressing slots holding row index + 1 (0 = empty); size is a power of two.
    private let slots: [Int32]
    /// Per row, for a write whose keys sit at fixed positions: first, last (negative: from the
    /// end) and step; nil otherwise. See `CommandEngine.confinedShard`.
    let fixedWriteKeys: [FixedKeyPositions?]

    /// Builds the table; names must be unique (case-insensitively).
    public init(_ rows: [CommandSpec]) {
        let rows = rows.map(DeclaredKeySpecs.apply)
        self.rows = rows
        statistics = rows.map { _ in CommandStatistics() }
        unretainedStatistics = statistics.map(Unmanaged.passUnretained)
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
        names = rows.map {
            let name = Array($0.name.utf8).withUnsafeBytes(FoldedName.init)
            guard let name else { preconditionFailure("name \($0.name)") }
            return name
        }
        var size = 16
        while size < rows.count * 4 { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for (row, name) in names.enumerated() {
            var slot = name.hashValue32 & (size - 1)
            while slots[slot] != 0 {
                precondition(names[Int(slots[slot]) - 1] != name, "duplicate command \(rows[row].name)")
                slot = (slot + 1) & (size - 1)
            }
            slots[slot] = Int32(row + 1)
        }
        self.slots = slots
        fixedWriteKeys = rows.map { spec in
            guard spec.flags.contains(.write), !spec.flags.contains(.movableKeys),
                  !spec.flags.contains(.runsExclusive), spec.subcommands.isEmpty, spec.firstKey > 0,
                  CommandKeys.counted[spec.name] == nil else { return nil }
            return FixedKeyPositions(first: spec.firstKey, last: spec.lastKey, step: max(1, spec.step))
        }
    }

    /// Number of top-level commands (COMMAND COUNT).
    public var count: Int { rows.count }

    @inline(__always)
    private static func fold(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte | 0x20 : byte }

    /// The row index for a command name given as request bytes (any case), or nil. Runs for
    /// every request: the name is folded into four words at once, so a probe compares words.
    public func lookup(_ name: ArraySlice<UInt8>) -> Int? {
        name.withUnsafeBytes { lookup($0) }
    }

    /// `lookup` of a name's bytes in place.
    public func lookup(_ name: UnsafeRawBufferPointer) -> Int? {
        guard let folded = FoldedName(name) else { return nil }
        let mask = slots.count - 1
        var slot = folded.hashValue32 & mask
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            if names[entry - 1] == folded { return entry - 1 }
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

/// A command name of 1 to 32 bytes folded to ASCII lower case, as four zero-padded
/// little-endian words and its length (a NUL byte in a request's name cannot pass for padding).
struct FoldedName: Equatable {
    var words: (UInt64, UInt64, UInt64, UInt64)
    var count: Int

    init?(_ name: UnsafeRawBufferPointer) {
        if name.isEmpty || name.count > 32 { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: name) }
        self.words = (Self.lowercased(words.0), Self.lowercased(words.1), Self.lowercased(words.2),
                      Self.lowercased(words.3))
        count = name.count
    }

    /// `word` with each byte in A...Z turned to a...z and every other byte kept (bytes with the
    /// high bit set included): per byte, a carry-free compare of its low seven bits against
    /// 0x41 and 0x5B.
    @inline(__always)
    static func lowercased(_ word: UInt64) -> UInt64 {
        let high: UInt64 = 0x8080_8080_8080_8080
        let low = word & ~high
        let atLeastA = low &+ 0x3F3F_3F3F_3F3F_3F3F  // high bit set where low >= 0x41
        let pastZ = low &+ 0x2525_2525_2525_2525  // high bit set where low >= 0x5B
        let upper = atLeastA & ~pastZ & ~word & high
        return word | (upper >> 2)
    }

    /// A hash for the table's slots.
    var hashValue32: Int {
        var hash = (words.0 ^ UInt64(count)) &* 0x9E37_79B9_7F4A_7C15
        hash = (hash ^ words.1 ^ (hash >> 29)) &* 0xBF58_476D_1CE4_E5B9
        hash = (hash ^ words.2 ^ (hash >> 31)) &* 0x94D0_49BB_1331_11EB
        hash ^= words.3
        return Int(truncatingIfNeeded: hash ^ (hash >> 32))
    }

    static func == (left: FoldedName, right: FoldedName) -> Bool {
        left.count == right.count && left.words.0 == right.words.0 && left.words.1 == right.words.1
            && left.words.2 == right.words.2 && left.words.3 == right.words.3
    }
}

/// Where a command's keys are when they do not depend on its arguments (COMMAND INFO's
/// first key, last key and step).
struct FixedKeyPositions {
    var first: Int
    /// Negative: counted from the end of the arguments (-1 is the last).
    var last: Int
    var step: Int
}
