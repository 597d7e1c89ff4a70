// ErrorStatistics: INFO errorstats (error replies counted by code) and `total_error_replies`.
import Synchronization
import TallyProtocol

/// The error replies the server has sent, by code (`ERR`, `WRONGTYPE`, `NOGROUP`...), as
/// Redis 7.0 keeps them in `server.errors` and `stat_total_error_replies`.
///
/// Only the error path touches it: an error reply's code is noted by `OutputBuffer.writeError`
/// and handed over here once per request (CommandEngine.execute), so a successful command
/// pays one `isEmpty` check. Redis 7.0.15 keeps every distinct code it has seen (the cap of
/// 128 codes came with 7.2), and so does this table; CONFIG RESETSTAT empties it.
public final class ErrorStatistics: Sendable {
    private let counts = Mutex<[[UInt8]: Int64]>([:])
    private let total = Atomic<Int64>(0)

    /// Creates an empty table.
    public init() {}

    /// Counts one error reply per code.
    public func record(_ codes: [[UInt8]]) {
        if codes.isEmpty { return }
        total.add(Int64(codes.count), ordering: .relaxed)
        counts.withLock { table in
            for code in codes { table[code, default: 0] += 1 }
        }
    }

    /// Counts the errors `output` has written since they were last taken.
    public func take(from output: inout OutputBuffer) {
        if output.untakenErrorCodes.isEmpty { return }
        record(output.takeErrorCodes())
    }

    /// `total_error_replies`.
    public var totalErrorReplies: Int64 { total.load(ordering: .relaxed) }

    /// The rows of INFO errorstats, in Redis's order (its radix tree sorts codes bytewise).
    public func rows() -> [(code: [UInt8], count: Int64)] {
        let snapshot = counts.withLock { $0 }
        return snapshot.map { (code: $0.key, count: $0.value) }
            .sorted { $0.code.lexicographicallyPrecedes($1.code) }
    }

    /// CONFIG RESETSTAT.
    public func reset() {
        counts.withLock { $0.removeAll() }
        total.store(0, ordering: .relaxed)
    }
}
