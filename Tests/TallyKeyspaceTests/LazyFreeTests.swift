// LazyFreeTests: which values go to the background releaser (lazyfree.c's effort rule) and its counters.
import Glibc
import TallyKeyspace
import Testing

@Suite struct LazyFreeTests {
    private func waitUntilIdle(_ lazyFree: LazyFree) {
        for _ in 0..<500 where lazyFree.pendingObjects > 0 { usleep(2_000) }
    }

    @Test func effortFollowsRedisAllocationCounts() {
        #expect(LazyFree.freeEffort(.integer(7)) == 1)
        #expect(LazyFree.freeEffort(.string(Array(repeating: 1, count: 100_000))) == 1)
        var intset = SetValue()
        for member in 0..<500 { _ = intset.insert(Array(String(member).utf8)) }
        #expect(LazyFree.freeEffort(.set(intset)) == 1)
        var table = SetValue()
        for member in 0..<100 { _ = table.insert(Array("member:\(member)".utf8)) }
        #expect(LazyFree.freeEffort(.set(table)) == 100)
        var hash = HashValue()
        for field in 0..<10 { hash.set(field: Array("f\(field)".utf8), value: [1]) }
        #expect(LazyFree.freeEffort(.hash(hash)) == 1)
    }

    @Test func bigValuesAreReleasedInBackgroundAndCounted() {
        let lazyFree = LazyFree()
        var big = SetValue()
        for member in 0..<1000 { _ = big.insert(Array("member:\(member)".utf8)) }
        var small = SetValue()
        for member in 0..<10 { _ = small.insert(Array("member:\(member)".utf8)) }
        lazyFree.release(.set(big))
        lazyFree.release(.set(small))
        waitUntilIdle(lazyFree)
        #expect(lazyFree.pendingObjects == 0)
        #expect(lazyFree.freedObjects == 1)
        let keyspace = Keyspace(databases: 1, shards: 1)
        let shard = keyspace.shards[0]
        shard.lock()
        for index in 0..<5 { shard.store(0, Key(Array("k\(index)".utf8)), Entry(value: .integer(Int64(index)))) }
        #expect(shard.removeAll(0, releasingTo: lazyFree) == 5)
        #expect(shard.count(0) == 0)
        shard.unlock()
        waitUntilIdle(lazyFree)
        #expect(lazyFree.freedObjects == 6)
        lazyFree.resetStatistics()
        #expect(lazyFree.freedObjects == 0)
    }
}
