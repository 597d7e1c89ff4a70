// EvictionTests: memory estimate bookkeeping, maxmemory policies, OOM refusals and DEL propagation.
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

/// Records every propagated command as text ("DEL k"), for checking what eviction logs.
private final class RecordingLog: AppendLog {
    let lines = Mutex<[String]>([])

    func append(_ batch: borrowing PropagationBuffer) -> UInt64 {
        let text = String(decoding: batch.bytes, as: UTF8.self)
        // Keep only argument payloads: drop the *N / $N framing lines.
        let parts = text.split(separator: "\r\n").filter { !$0.hasPrefix("*") && !$0.hasPrefix("$") }
        lines.withLock { $0.append(parts.joined(separator: " ")) }
        return 1
    }

    func writeRefusal() -> [UInt8]? { nil }
    func waitUntilDurable(_ offset: UInt64) {}
}

@Suite struct EvictionTests {
    @Test func estimateReturnsToZeroAfterEveryKindOfRemoval() {
        let harness = CommandHarness()
        let keyspace = harness.engine.keyspace
        #expect(keyspace.usedMemoryBytes == 0)
        harness.run("SET", "s", String(repeating: "x", count: 1000))
        let afterString = keyspace.usedMemoryBytes
        #expect(afterString > 1000 && afterString < 1300)
        harness.run("INCR", "n")
        harness.run("HSET", "h", "f1", "v1", "f2", String(repeating: "y", count: 500))
        let withHash = keyspace.usedMemoryBytes
        #expect(withHash > afterString + 500)
        harness.run("HSET", "h", "f2", "short")
        #expect(keyspace.usedMemoryBytes < withHash - 400)
        harness.run("HDEL", "h", "f1", "f2")  // empties and removes the hash
        harness.run("APPEND", "s", "more")
        harness.run("SET", "t", "v", "PX", "10")
        harness.clock.advance(by: 20)
        harness.run("GET", "t")  // lazy expiry
        harness.run("DEL", "s", "n")
        #expect(keyspace.usedMemoryBytes == 0)
        harness.run("MSET", "a", "1", "b", "2")
        harness.run("FLUSHALL")
        #expect(keyspace.usedMemoryBytes == 0)
    }

    @Test func noevictionRefusesDenyOOMCommandsOnly() {
        let harness = CommandHarness()
        for index in 0..<200 { harness.run("SET", "key:\(index)", String(repeating: "v", count: 100)) }
        harness.engine.setMemoryLimit(bytes: 1000, policy: .noEviction, samples: 5)
        #expect(harness.reply("SET", "new", "1") == "-OOM command not allowed when used memory > 'maxmemory'.\r\n")
        #expect(harness.reply("INCR", "key:1") == "-OOM command not allowed when used memory > 'maxmemory'.\r\n")
        #expect(harness.reply("GET", "key:1").hasPrefix("$100\r\n"))
        #expect(harness.reply("DEL", "key:1") == ":1\r\n")
        // Inside MULTI every queued command is refused (queuing takes memory) and the
        // transaction is doomed, as in Redis 7.0.15.
        #expect(harness.reply("MULTI") == "+OK\r\n")
        #expect(harness.reply("GET", "key:2").hasPrefix("-OOM"))
        #expect(harness.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
        // A transaction queued before memory ran out is aborted at EXEC if it would write.
        harness.engine.setMemoryLimit(bytes: 0, policy: .noEviction, samples: 5)
        #expect(harness.reply("MULTI") == "+OK\r\n")
        #expect(harness.reply("SET", "x", "1") == "+QUEUED\r\n")
        harness.engine.setMemoryLimit(bytes: 1000, policy: .noEviction, samples: 5)
        #expect(harness.reply("EXEC") == "-EXECABORT Transaction discarded because of: "
            + "OOM command not allowed when used memory > 'maxmemory'.\r\n")
        #expect(harness.reply("EXISTS", "x") == ":0\r\n")
        #expect(harness.reply("DISCARD") == "-ERR DISCARD without MULTI\r\n")
        #expect(harness.engine.keyspace.evictedKeys == 0)
        harness.engine.setMemoryLimit(bytes: 0, policy: .noEviction, samples: 5)
        #expect(harness.reply("SET", "new", "1") == "+OK\r\n")
    }

    @Test func allkeysLRUKeepsRecentlyUsedKeys() {
        let harness = CommandHarness()
        harness.engine.setMemoryLimit(bytes: 0, policy: .allKeysLRU, samples: 10)
        for index in 0..<2000 { harness.run("SET", "key:\(index)", "value") }
        harness.clock.advance(by: 60_000)
        // The first 200 keys are touched later than all the others.
        for index in 0..<200 { harness.run("GET", "key:\(index)") }
        harness.clock.advance(by: 1_000)
        let limit = harness.engine.keyspace.usedMemoryBytes / 2
        harness.engine.setMemoryLimit(bytes: limit, policy: .allKeysLRU, samples: 10)
        for index in 2000..<2500 { harness.run("SET", "key:\(index)", "value") }
        // Eviction runs before each command (as in Redis), so the last write may overshoot by one entry.
        #expect(harness.engine.keyspace.usedMemoryBytes <= limit + 200)
        let evicted = harness.engine.keyspace.evictedKeys
        #expect(evicted > 1000)
        var hotSurvivors = 0
        for index in 0..<200 where harness.reply("EXISTS", "key:\(index)") == ":1\r\n" { hotSurvivors += 1 }
        // Sampling is approximate (Redis's too), but a random policy would keep only about half.
        #expect(hotSurvivors >= 170, "only \(hotSurvivors) of 200 recently used keys survived")
    }

    @Test func allkeysLFUKeepsFrequentlyUsedKeys() {
        let harness = CommandHarness()
        harness.engine.setMemoryLimit(bytes: 0, policy: .allKeysLFU, samples: 10)
        for index in 0..<1000 { harness.run("SET", "key:\(index)", "value") }
        for _ in 0..<50 {
            for index in 0..<100 { harness.run("GET", "key:\(index)") }
        }
        let limit = harness.engine.keyspace.usedMemoryBytes / 2
        harness.engine.setMemoryLimit(bytes: limit, policy: .allKeysLFU, samples: 10)
        for index in 1000..<1400 { harness.run("SET", "key:\(index)", "value") }
        var frequentSurvivors = 0
        for index in 0..<100 where harness.reply("EXISTS", "key:\(index)") == ":1\r\n" { frequentSurvivors += 1 }
        #expect(frequentSurvivors >= 95, "only \(frequentSurvivors) of 100 frequently used keys survived")
    }

    @Test func lfuCounterGrowsLogarithmicallyAndDecays() {
        var stamp = LFU.fresh(nowMilliseconds: 0)
        var generator = FastRandom(seed: 42)
        for _ in 0..<1000 {
            stamp = LFU.touched(stamp, nowMilliseconds: 0, random: UInt32(truncatingIfNeeded: generator.next()))
        }
        let counter = LFU.decayedCounter(stamp, nowMilliseconds: 0)
        // Redis's table for lfu-log-factor 10: ~1000 hits give a counter around 18.
        #expect(counter > 10 && counter < 30, "counter \(counter)")
        #expect(LFU.decayedCounter(stamp, nowMilliseconds: 5 * 60_000) == counter - 5)
        #expect(LFU.decayedCounter(stamp, nowMilliseconds: 600 * 60_000) == 0)
    }

    @Test func volatileTTLEvictsNearestExpiryAndNeverPersistentKeys() {
        let harness = CommandHarness()
        for index in 0..<100 { harness.run("SET", "keep:\(index)", "value") }
        for index in 0..<100 { harness.run("SET", "ttl:\(index)", "value", "EX", String(1000 + index)) }
        let limit = harness.engine.keyspace.usedMemoryBytes - 20 * 80
        harness.engine.setMemoryLimit(bytes: limit, policy: .volatileTTL, samples: 5)
        #expect(harness.reply("SET", "trigger", "1") == "+OK\r\n")
        for index in 0..<100 { #expect(harness.reply("EXISTS", "keep:\(index)") == ":1\r\n") }
        var survivingEarly = 0
        for index in 0..<20 where harness.reply("EXISTS", "ttl:\(index)") == ":1\r\n" { survivingEarly += 1 }
        var survivingLate = 0
        for index in 80..<100 where harness.reply("EXISTS", "ttl:\(index)") == ":1\r\n" { survivingLate += 1 }
        #expect(survivingLate >= 18 && survivingEarly <= 12, "early \(survivingEarly) late \(survivingLate)")
        // Once no key has a TTL, nothing is eligible: denyOOM commands get OOM.
        for index in 0..<100 { harness.run("PERSIST", "ttl:\(index)") }
        harness.engine.setMemoryLimit(bytes: 1000, policy: .volatileLRU, samples: 5)
        #expect(harness.reply("SET", "more", "1").hasPrefix("-OOM"))
        #expect(harness.reply("GET", "keep:1") == "$5\r\nvalue\r\n")
    }

    @Test func evictionsArePropagatedAsDEL() {
        let harness = CommandHarness()
        let log = RecordingLog()
        harness.engine.attachLog(log)
        for index in 0..<50 { harness.run("SET", "key:\(index)", "value") }
        let baseline = log.lines.withLock { $0.count }
        harness.engine.setMemoryLimit(bytes: harness.engine.keyspace.usedMemoryBytes - 1, policy: .allKeysRandom,
                                      samples: 5)
        harness.run("GET", "key:1")
        let deletes = log.lines.withLock { Array($0[baseline...]) }
        #expect(deletes.count == 1)
        #expect(deletes.first?.hasPrefix("SELECT 0 DEL key:") == true || deletes.first?.hasPrefix("DEL key:") == true,
                "\(deletes)")
        #expect(harness.engine.keyspace.evictedKeys == 1)
        #expect(harness.reply("DBSIZE") == ":49\r\n")
    }
}
