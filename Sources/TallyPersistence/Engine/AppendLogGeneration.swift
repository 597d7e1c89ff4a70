// AppendLogGeneration: the AppendLog the command engine sees: one AOF generation (or none) plus the RDB MISCONF gate.
import Synchronization
import TallyKeyspace

/// Whether failed background saves currently refuse writes (`stop-writes-on-bgsave-error`).
final class SaveErrorGate: Sendable {
    /// Set while the last BGSAVE failed, save points exist and stop-writes-on-bgsave-error is yes.
    let refusing = Atomic<Bool>(false)
}

/// Wraps one `AppendOnlyFile` generation (or none, to refuse writes after a failed BGSAVE
/// while the AOF is off).
///
/// Offsets stay monotonic across AOF generations (CONFIG SET appendonly no/yes replaces the
/// writer): this log reports `offsetBase + writer offset`, and the new generation's base is
/// the old one's last offset. Sessions keep offsets from older generations in
/// `pendingLogOffset`; those were flushed when their writer was retired, so anything at or
/// below `offsetBase` is durable by construction and never waits on the new writer.
///
/// The per-command path (`append`) adds one comparison and one addition to the writer's
/// append: no lock of its own, no allocation.
final class AppendLogGeneration<S: Storage>: AppendLog {
    let writer: AppendOnlyFile<S>?
    let offsetBase: UInt64
    private let gate: SaveErrorGate

    init(writer: AppendOnlyFile<S>?, offsetBase: UInt64, gate: SaveErrorGate) {
        self.writer = writer
        self.offsetBase = offsetBase
        self.gate = gate
    }

    /// The offset just past everything appended so far.
    var endOffset: UInt64 { offsetBase + (writer?.status().appendedOffset ?? 0) }

    func append(_ batch: borrowing PropagationBuffer) -> UInt64 {
        guard let writer else { return offsetBase }
        return offsetBase + writer.append(batch)
    }

    func writeRefusal() -> [UInt8]? {
        // Redis checks the RDB error before the AOF one (writeCommandsDeniedByDiskError).
        if gate.refusing.load(ordering: .relaxed) { return PersistenceEngine<S>.misconfMessage }
        return writer?.writeRefusal()
    }

    func waitUntilDurable(_ offset: UInt64) {
        guard let writer, offset > offsetBase else { return }
        writer.waitUntilDurable(offset - offsetBase)
    }

    func isDurable(_ offset: UInt64) -> Bool {
        guard let writer, offset > offsetBase else { return true }
        return writer.isDurable(offset - offsetBase)
    }

    /// WAITAOF: whether `offset` is fsynced within the timeout.
    func waitUntilFsynced(_ offset: UInt64, timeoutMilliseconds: Int64) -> Bool {
        guard let writer, offset > offsetBase else { return true }
        return writer.waitUntilFsynced(offset - offsetBase, timeoutMilliseconds: timeoutMilliseconds)
    }
}
