// ReplicationContract: where executed writes go besides the AOF, declared below the command layer
// so the engine can feed a replication stream it knows nothing else about (the server owns it).

/// The replication stream as the command engine sees it (TallyServer's `ReplicationState`).
///
/// Redis feeds replicas from `propagateNow` right beside the AOF (server.c `propagatePendingCommands`
/// → `replicationFeedSlaves`); here `CommandEngine.flushPropagation` does the same with the same
/// batch, still holding the shard locks of the commands it records, so for every key the stream
/// holds its writes in the order they ran.
public protocol ReplicationFeed: AnyObject, Sendable {
    /// Appends a batch (SELECT is added by the stream when the batch's database differs from the
    /// stream's own) and returns the stream offset just past it (Redis's `master_repl_offset`).
    func append(_ batch: borrowing PropagationBuffer) -> Int64

    /// Online replicas whose AOF has fsynced the stream up to `offset` (the FACK of their
    /// `REPLCONF ACK <offset> FACK <aofoffset>`; redis-server 7.0 replicas send none).
    func fsyncedReplicaCount(atLeast offset: Int64) -> Int

    /// Asks the replicas for their offsets now (REPLCONF GETACK *).
    func requestAcknowledgements()
}
