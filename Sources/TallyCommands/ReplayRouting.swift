// ReplayRouting: which logged commands may be replayed out of log order, on another thread.
import TallyProtocol

extension CommandEngine {
    /// The shard that every key of the logged command `arguments` (table row `row`) lives in,
    /// when its effect is confined to that shard's tables: a write with fixed key positions
    /// (SET, INCRBY, HSET, RPUSH, PEXPIREAT, MSET or RENAME within one shard...). Two such
    /// commands on different shards touch disjoint state, so an AOF loader may run them on
    /// different threads; only the order of commands on one shard must follow the log.
    ///
    /// Nil for everything that must run in log order with all the rest: commands without keys
    /// (MULTI, EXEC, FLUSHALL, SWAPDB, FUNCTION), keys found by parsing (movable keys: SORT ...
    /// STORE, ZUNIONSTORE, EVAL), containers (XGROUP), commands that take every shard, reads,
    /// and keys on two shards.
    public func confinedShard(ofLogged arguments: CommandArguments, row: Int) -> Int? {
        guard let keys = table.fixedWriteKeys[row] else { return nil }
        let count = arguments.count
        let last = keys.last < 0 ? count + keys.last : keys.last
        guard keys.first <= last, last < count else { return nil }
        let shard = arguments.withUnsafeBytes(of: keys.first) { keyspace.shardIndex(for: $0) }
        var index = keys.first + keys.step
        while index <= last {
            guard arguments.withUnsafeBytes(of: index, { keyspace.shardIndex(for: $0) }) == shard else { return nil }
            index += keys.step
        }
        return shard
    }
}
