// PersistenceContract: what the command layer and the persistence engine agree on, below both:
// the write log (records + offsets), the dataset persistence saves and loads, and the control
// calls SAVE/BGSAVE/BGREWRITEAOF/WAITAOF make. Redis keeps rio and the AOF below the command
// layer the same way: commands call into persistence, persistence never calls command code
// except through the replay hook it is given at start-up.
import TallyProtocol

/// Write commands as they must be logged, collected while a command (or a whole EXEC) runs.
///
/// Records are RESP arrays back to back in `bytes`; each remembers the database it applies to
/// so the log can emit SELECT when the database changes. The buffer is reused per session.
public struct PropagationBuffer {
    /// Encoded records, back to back.
    public private(set) var bytes: [UInt8] = []
    /// For each record, its database and where its bytes are.
    public private(set) var records: [(database: Int, range: Range<Int>)] = []

    /// Creates an empty buffer.
    public init() {}

    /// True if nothing was recorded.
    @inlinable public var isEmpty: Bool { records.isEmpty }

    /// Records `arguments` as executed against `database`.
    public mutating func append(database: Int, arguments: CommandArguments) {
        let start = bytes.count
        arguments.encodeRESP(into: &bytes)
        records.append((database, start..<bytes.count))
    }

    /// Records a command given as separate byte arrays (rewritten forms such as PEXPIREAT, DEL).
    public mutating func append(database: Int, _ arguments: [[UInt8]]) {
        let start = bytes.count
        RESPRecord.append(arguments, to: &bytes)
        records.append((database, start..<bytes.count))
    }

    /// Forgets all records, keeping capacity.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }
}

/// Where executed write commands go (the AOF). Implementations are thread-safe.
public protocol CommandLog: AnyObject, Sendable {
    /// Appends a batch atomically (no other batch interleaves) and returns the log offset just
    /// past it. Called while the shards the commands touched are still locked, so the log
    /// order matches the execution order for every key.
    func append(_ batch: borrowing PropagationBuffer) -> UInt64

    /// The error reply for write commands while persistence is failing (MISCONF...), else nil.
    func writeRefusal() -> [UInt8]?

    /// Blocks until everything up to `offset` has reached the kernel (`write(2)`), and under
    /// `appendfsync always` has been fsynced. The network layer calls it once per event-loop
    /// iteration, before flushing replies, with the highest offset its sessions depend on:
    /// that is group commit, since one write/fsync covers every connection and thread.
    func waitUntilDurable(_ offset: UInt64)

    /// True if everything up to `offset` is written (fsynced under `always`). The network layer
    /// asks after `waitUntilDurable`; false means the replies must be held back, because the
    /// write failed and the data is only in memory.
    func isDurable(_ offset: UInt64) -> Bool
}

extension CommandLog {
    /// Logs that cannot fail (tests, in-memory logs) are durable as soon as they return.
    public func isDurable(_ offset: UInt64) -> Bool { true }
}
