// ReplicaExpiryTests: on a replica a key past its TTL reads as missing but stays until the primary's
// DEL, and the thread applying the primary's stream sees it live (db.c expireIfNeeded, Redis 7.0).
import TallyKeyspace
import Testing

@Suite struct ReplicaExpiryTests {
    private func keyspaceWithExpiredKey() -> (Keyspace, Shard, Key) {
        let keyspace = Keyspace()
        let key = Key(Array("k".utf8))
        let shard = keyspace.shard(for: key)
        shard.lock()
        shard.store(0, key, Entry(value: .integer(7), expiresAtMilliseconds: 1_000))
        shard.unlock()
        return (keyspace, shard, key)
    }

    @Test func clientsSeeMissingButTheKeyStays() {
        let (keyspace, shard, key) = keyspaceWithExpiredKey()
        keyspace.expiryGate.setReplica(true)
        shard.lock()
        defer { shard.unlock() }
        #expect(shard.lookup(0, key, now: 2_000) == nil)
        #expect(shard.lookupRead(0, key, now: 2_000) == nil)
        #expect(shard.lookupWithoutTouching(0, key, now: 2_000) == nil)
        // Still stored and not counted as expired: nothing is propagated as DEL.
        #expect(shard.count(0) == 1)
        #expect(shard.expiredKeys == 0)
        #expect(shard.expiredDuringOperation.isEmpty)
    }

    @Test func thePrimaryStreamSeesTheKeyLive() {
        let (keyspace, shard, key) = keyspaceWithExpiredKey()
        keyspace.expiryGate.setReplica(true)
        keyspace.expiryGate.setCurrentThreadAppliesStream(true)
        defer { keyspace.expiryGate.setCurrentThreadAppliesStream(false) }
        shard.lock()
        defer { shard.unlock() }
        #expect(shard.lookup(0, key, now: 2_000) != nil)
        #expect(shard.count(0) == 1)
        #expect(shard.expiredDuringOperation.isEmpty)
    }

    @Test func promotionExpiresAgain() {
        let (keyspace, shard, key) = keyspaceWithExpiredKey()
        keyspace.expiryGate.setReplica(true)
        keyspace.expiryGate.setReplica(false)
        shard.lock()
        defer { shard.unlock() }
        #expect(shard.lookup(0, key, now: 2_000) == nil)
        #expect(shard.count(0) == 0)
        #expect(shard.expiredDuringOperation == [DatabaseKey(database: 0, key: key)])
    }

    /// CLIENT PAUSE and the replica role are separate bits: ending a pause keeps the replica's rule.
    @Test func pauseEndingKeepsReplicaRule() {
        let (keyspace, shard, key) = keyspaceWithExpiredKey()
        keyspace.expiryGate.setReplica(true)
        keyspace.expiryGate.setPaused(true)
        keyspace.expiryGate.setPaused(false)
        shard.lock()
        defer { shard.unlock() }
        #expect(shard.lookup(0, key, now: 2_000) == nil)
        #expect(shard.count(0) == 1)
    }
}
