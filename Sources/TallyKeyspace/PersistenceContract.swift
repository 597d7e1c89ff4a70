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
///
/// `append(database:arguments:)` runs once per write command from TallyCommands, another
/// module, so it is `@inlinable` over `@usableFromInline` storage: moving this type below the
/// command layer must not cost the call it was inlined into before (callgrind: 14
/// instructions per INCR when it was an opaque cross-module call).
public struct PropagationBuffer {
    @usableFromInline var encoded: [UInt8] = []
    @usableFromInline var recordList: [(database: Int, range: Range<Int>)] = []

    /// Creates an empty buffer.
    public init() {}

    /// Encoded records, back to back.
    @inlinable public var bytes: [UInt8] { encoded }

    /// For each record, its database and where its bytes are.
    @inlinable public var records: [(database: Int, range: Range<Int>)] { recordList }

    /// Number of records.
    @inlinable public var recordCount: Int { recordList.count }

    /// True if nothing was recorded.
    @inlinable public var isEmpty: Bool { recordList.isEmpty }

    /// Records `arguments` as executed against `database`.
    @inlinable
    public mutating func append(database: Int, arguments: CommandArguments) {
        let start = encoded.count
        arguments.encodeRESP(into: &encoded)
        recordList.append((database, start..<encoded.count))
    }

    /// Records a command given as separate byte arrays (rewritten forms such as PEXPIREAT, DEL).
    public mutating func append(database: Int, _ arguments: [[UInt8]]) {
        let start = encoded.count
        RESPRecord.append(arguments, to: &encoded)
        recordList.append((database, start..<encoded.count))
    }

    /// Forgets the first record (a script's MULTI when it logged a single command).
    public mutating func removeFirstRecord() {
        guard let first = recordList.first else { return }
        let length = first.range.count
        encoded.removeFirst(length)
        recordList.removeFirst()
        for index in recordList.indices {
            let range = recordList[index].range
            recordList[index].range = (range.lowerBound - length)..<(range.upperBound - length)
        }
    }

    /// Forgets the records from position `index` on (writes a script asked not to log).
    public mutating func removeRecords(from index: Int) {
        guard index < recordList.count else { return }
        encoded.removeSubrange(recordList[index].range.lowerBound...)
        recordList.removeSubrange(index...)
    }

    /// Forgets all records, keeping capacity.
    @inlinable
    public mutating func removeAll() {
        encoded.removeAll(keepingCapacity: true)
        recordList.removeAll(keepingCapacity: true)
    }
}

/// Where executed write commands go (the AOF). Implementations are thread-safe.
public protocol AppendLog: AnyObject, Sendable {
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

extension AppendLog {
    /// Logs that cannot fail (tests, in-memory logs) are durable as soon as they return.
    public func isDurable(_ offset: UInt64) -> Bool { true }
}

/// The dataset the persistence engine saves, loads and logs (CommandEngine implements it).
/// Persistence reaches commands only through this and the replay hook it gets at start-up.
public protocol PersistedDataset: AnyObject, Sendable {
    /// The keyspace snapshots are taken from and loads insert into.
    var keyspace: Keyspace { get }
    /// Redis's `server.dirty`: writes since the last successful save.
    var changesSinceLastSave: Int64 { get }
    /// After a save: subtracts the changes the saved snapshot contained (later writes still count).
    func resetChangesSinceLastSave(subtracting countAtSnapshot: Int64)
    /// Sets the counter (0 after loading).
    func resetChangesSinceLastSave(to value: Int64)
    /// Routes executed writes to `log` (nil: nothing is logged or refused).
    func attachLog(_ log: (any AppendLog)?)
}

/// What SAVE did.
public enum SaveOutcome: Sendable, Equatable {
    /// `+OK`.
    case saved
    /// `-ERR` (the reason is in the log, as in Redis).
    case failed
    /// `-ERR Background save already in progress`.
    case backgroundSaveInProgress
}

/// What BGSAVE did.
public enum BackgroundSaveStart: Sendable, Equatable {
    /// The save is running.
    case started
    /// It runs from the cron once the other job ends (BGSAVE SCHEDULE, or inside EXEC).
    case scheduled
    /// Another save runs already.
    case alreadyInProgress
    /// Another background job (an AOF rewrite) runs and no SCHEDULE was given.
    case otherJobActive
}

/// What BGREWRITEAOF did.
public enum AOFRewriteStart: Equatable, Sendable {
    /// `+Background append only file rewriting started`.
    case started
    /// `-ERR Background append only file rewriting already in progress`.
    case alreadyInProgress
    /// `+Background append only file rewriting scheduled` (a BGSAVE runs; it starts after).
    case scheduled
    /// Could not even start (rotate the incr file...); nothing changed.
    case failed(String)
}

/// The calls SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF and WAITAOF make (the persistence engine
/// implements it; the command rows in TallyCommands/PersistenceCommands.swift call it).
public protocol PersistenceControl: AnyObject, Sendable {
    /// SAVE: a blocking save of the dataset.
    func save() -> SaveOutcome
    /// BGSAVE [SCHEDULE]; `deferred` is true inside EXEC (Redis defers the fork to the cron).
    func startBackgroundSave(schedule: Bool, deferred: Bool) -> BackgroundSaveStart
    /// LASTSAVE: Unix seconds of the last successful save.
    var lastSaveSeconds: Int64 { get }
    /// BGREWRITEAOF.
    func startRewrite() -> AOFRewriteStart
    /// WAITAOF: nil while appendonly is off; else waits until `offset` is fsynced or
    /// `timeoutMilliseconds` pass (0 = no limit) and returns whether it was.
    func waitFsynced(_ offset: UInt64, timeoutMilliseconds: Int64) -> Bool?
}

/// DUMP and RESTORE's serialized value (cluster.c createDumpPayload, verifyDumpPayload): the
/// RDB type byte and value encoding, the RDB version as 2 bytes little-endian, then the CRC64
/// of everything before it as 8 bytes little-endian. The command rows call it; the RDB code
/// in TallyPersistence implements it, so one encoder serves files and DUMP alike.
public protocol DumpPayloadCodec: Sendable {
    /// The payload DUMP replies with for `value`.
    func payload(of value: Value) -> [UInt8]
    /// The value a RESTORE payload holds, or why it is refused.
    func value(fromPayload payload: [UInt8]) -> DumpPayloadDecoding
    /// FUNCTION DUMP's payload for the libraries' codes (functions.c functionDumpCommand).
    func functionsPayload(_ codes: [[UInt8]]) -> [UInt8]
    /// The library codes of a FUNCTION RESTORE payload, or why it is refused.
    func functionCodes(fromPayload payload: [UInt8]) -> FunctionPayloadDecoding
}

/// What decoding a FUNCTION RESTORE payload found.
public enum FunctionPayloadDecoding: Sendable {
    /// The libraries' codes, in payload order.
    case codes([[UInt8]])
    /// Too short, from a newer RDB version, or the checksum does not match.
    case wrongVersionOrChecksum
    /// A record that is not a function, or unreadable (Redis's text, without `ERR `).
    case failure(String)
}

/// Redis's error text for a FUNCTION RESTORE record it cannot read.
public struct FunctionRecordError: Error, Sendable {
    /// The text, without `ERR `.
    public let message: String
    /// An error with `message`.
    public init(_ message: String) { self.message = message }
}

/// What decoding a RESTORE payload found.
public enum DumpPayloadDecoding: Sendable {
    /// A well-formed value.
    case value(Value)
    /// Too short, from a newer RDB version, or the checksum does not match.
    case wrongVersionOrChecksum
    /// The type or the value encoding is invalid.
    case badFormat
}
