// KeyspaceTests: sharding, lazy expiry on a manual clock, snapshots, loading and number rules.
import TallyKeyspace
import TallyProtocol
import Testing

@Suite struct KeyspaceTests {
    @Test func shardIndexIsStableAndSpreads() {
        let keyspace = Keyspace(databases: 16, shards: 16)
        var seen = Set<Int>()
        for index in 0..<1000 {
            let bytes = Array("key:\(index)".utf8)
            let shard = keyspace.shardIndex(for: bytes)
            #expect(shard == keyspace.shardIndex(for: bytes[...]))
            seen.insert(shard)
        }
        #expect(seen.count == 16)
    }

    @Test func lazyExpiryRemovesAndRecords() {
        let keyspace = Keyspace()
        let key = Key(Array("k".utf8))
        let shard = keyspace.shard(for: key)
        shard.lock()
        shard.store(2, key, Entry(value: .integer(5), expiresAtMilliseconds: 1_000))
        #expect(shard.lookup(2, key, now: 999) != nil)
        #expect(shard.expiringCount(2) == 1)
        #expect(shard.lookup(2, key, now: 1_000) == nil)
        #expect(shard.count(2) == 0)
        #expect(shard.expiringCount(2) == 0)
        #expect(shard.expiredDuringOperation == [DatabaseKey(database: 2, key: key)])
        shard.unlock()
    }

    @Test func incrementKeepsTTLAndRejectsBadValues() throws {
        let keyspace = Keyspace()
        let key = Key(Array("n".utf8))
        let shard = keyspace.shard(for: key)
        shard.lock()
        defer { shard.unlock() }
        shard.store(0, key, Entry(value: .fromBytes(Array("41".utf8)), expiresAtMilliseconds: 5_000))
        #expect(try shard.incrementBy(0, key, delta: 1, now: 0) == 42)
        #expect(shard.lookup(0, key, now: 0)?.expiresAtMilliseconds == 5_000)
        shard.store(0, key, Entry(value: .string(Array("007".utf8))))
        #expect(throws: KeyspaceError.notInteger) { try shard.incrementBy(0, key, delta: 1, now: 0) }
        shard.store(0, key, Entry(value: .integer(Int64.max)))
        #expect(throws: KeyspaceError.overflow) { try shard.incrementBy(0, key, delta: 1, now: 0) }
    }

    @Test func snapshotIsPointInTime() {
        let keyspace = Keyspace(databases: 2, shards: 4)
        for index in 0..<100 {
            keyspace.insertLoaded(database: index % 2, key: Key(Array("k\(index)".utf8)),
                                  entry: Entry(value: .integer(Int64(index)), expiresAtMilliseconds: index < 10 ? 9 : nil))
        }
        let snapshot = keyspace.image()
        keyspace.removeAll()
        keyspace.insertLoaded(database: 0, key: Key(Array("later".utf8)), entry: Entry(value: .integer(1)))
        #expect(snapshot.keyCount(database: 0) == 50)
        #expect(snapshot.expiringKeyCount(database: 0) == 5)
        var sum: Int64 = 0
        var visited = 0
        snapshot.forEachEntry(database: 1) { _, entry in
            if case .integer(let value) = entry.value { sum += value }
            visited += 1
        }
        #expect(visited == 50)
        let expectedSum: Int64 = 2500  // 1 + 3 + ... + 99
        #expect(sum == expectedSum)
        #expect(snapshot.keyCount(database: 1) == 0)  // released after walking
        #expect(keyspace.count(database: 0) == 1)
        let statistics = keyspace.databaseStatistics()
        #expect(statistics.count == 1)
        #expect(statistics.first?.keys == 1)
        #expect(statistics.first?.expires == 0)
    }

    @Test func integerParsingFollowsString2ll() {
        #expect(parseRedisInteger(Array("0".utf8)) == 0)
        #expect(parseRedisInteger(Array("-9223372036854775808".utf8)) == Int64.min)
        #expect(parseRedisInteger(Array("9223372036854775807".utf8)) == Int64.max)
        for bad in ["", "-", "-0", "007", "+1", " 1", "1 ", "9223372036854775808", "1.0", "000000000000000000001"] {
            #expect(parseRedisInteger(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func longDoubleFormattingMatchesRedis() {
        // Expected texts recorded from redis-server 7.0.15 INCRBYFLOAT.
        func text(_ value: Float80) -> String { String(decoding: formatLongDouble(value), as: UTF8.self) }
        #expect(text(10.5 + 0.1) == "10.6")
        #expect(text(3) == "3")
        #expect(text(-0.0) == "0")
        #expect(text(5000) == "5000")
        #expect(parseLongDouble(Array(" 1".utf8)) == nil)
        #expect(parseLongDouble(Array("1 ".utf8)) == nil)
        #expect(parseLongDouble(Array("nan".utf8)) == nil)
        #expect(parseLongDouble(Array("1e400".utf8)) != nil)
        #expect(formatLongDouble(parseLongDouble(Array("1e400".utf8))!).count == 401)
    }
}
