// PropagationTests: what reaches the log (deterministic forms, MULTI/EXEC, DEL for expiry, refusals).
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct PropagationTests {
    func harness() -> (CommandHarness, RecordingLog) {
        let harness = CommandHarness()
        let log = RecordingLog()
        harness.engine.attachLog(log)
        return (harness, log)
    }

    @Test func relativeExpiriesBecomeAbsolute() {
        let (h, log) = harness()
        let now = h.clock.nowMilliseconds()
        h.run("SET", "k", "v", "EX", "100")
        h.run("EXPIRE", "k", "50")
        h.run("SETEX", "s", "10", "v")
        h.run("GETEX", "k", "PX", "5")
        #expect(log.recorded == [
            "0:SET k v PXAT \(now + 100_000)",
            "0:PEXPIREAT k \(now + 50_000)",
            "0:SET s v PXAT \(now + 10_000)",
            "0:PEXPIREAT k \(now + 5)",
        ])
        #expect(h.session.pendingLogOffset == 4)
    }

    @Test func floatsArePropagatedAsFinalValues() {
        let (h, log) = harness()
        h.run("INCRBYFLOAT", "f", "10.5")
        h.run("HINCRBYFLOAT", "h", "x", "0.25")
        #expect(log.recorded == ["0:SET f 10.5 KEEPTTL", "0:HSET h x 0.25"])
    }

    @Test func noChangeMeansNoRecord() {
        let (h, log) = harness()
        h.run("SET", "k", "v")
        h.run("SET", "k", "w", "NX")
        h.run("DEL", "missing")
        h.run("GET", "k")
        h.run("HDEL", "nohash", "f")
        h.run("PERSIST", "k")
        #expect(log.recorded == ["0:SET k v"])
    }

    @Test func lazyExpiryIsLoggedAsDelBeforeTheCommand() {
        let (h, log) = harness()
        h.run("SELECT", "3")
        h.run("SET", "k", "1", "PX", "10")
        h.clock.advance(by: 20)
        #expect(h.reply("INCR", "k") == ":1\r\n")
        #expect(log.recorded.last == "3:DEL k; 3:INCR k")
        h.run("SET", "g", "1", "PX", "10")
        h.clock.advance(by: 20)
        #expect(h.reply("GET", "g") == "$-1\r\n")
        #expect(log.recorded.last == "3:DEL g")
    }

    @Test func execIsOneBatchWrappedInMultiExec() {
        let (h, log) = harness()
        h.run("MULTI")
        h.run("INCR", "a")
        h.run("GET", "a")
        h.run("SET", "b", "x", "EX", "1")
        #expect(h.reply("EXEC") == "*3\r\n:1\r\n$1\r\n1\r\n+OK\r\n")
        let now = h.clock.nowMilliseconds()
        #expect(log.recorded == ["0:MULTI; 0:INCR a; 0:SET b x PXAT \(now + 1000); 0:EXEC"])
        h.run("MULTI")
        h.run("GET", "a")
        h.run("EXEC")
        #expect(log.recorded.count == 1)
    }

    @Test func refusedWritesAreRejectedAndReadsStillWork() {
        let (h, log) = harness()
        h.run("SET", "k", "v")
        log.refuseWrites("MISCONF disk is full")
        #expect(h.reply("SET", "k", "w") == "-MISCONF disk is full\r\n")
        #expect(h.reply("GET", "k") == "$1\r\nv\r\n")
        h.run("MULTI")
        #expect(h.reply("INCR", "k") == "-MISCONF disk is full\r\n")
        #expect(h.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
        let stats = h.engine.commandStatistics().first { $0.name == "set" }
        #expect(stats?.rejectedCalls == 1)
        #expect(stats?.calls == 1)
    }

    @Test func activeExpiryDeletesAndLogs() {
        let (h, log) = harness()
        for index in 0..<200 { h.run("SET", "k\(index)", "v", "PX", "10") }
        h.run("SET", "keep", "v")  // no TTL: sampling only sees the expired keys, so the result is exact
        h.clock.advance(by: 11)
        // A cycle stops at its 25 ms budget of real time; on a loaded machine one may not be enough.
        for _ in 0..<100 where h.reply("DBSIZE") != ":1\r\n" { h.engine.activeExpireCycle() }
        #expect(h.reply("DBSIZE") == ":1\r\n")
        let deletes = log.recorded.joined(separator: "; ").split(separator: ";").filter { $0.contains("DEL") }
        #expect(deletes.count == 200)
        #expect(h.engine.keyspace.statistics().expiredKeys == 200)
    }

    @Test func dirtyCounterFollowsRedis() {
        let (h, _) = harness()
        h.run("MSET", "a", "1", "b", "2", "c", "3")
        h.run("INCR", "a")
        h.run("DEL", "a", "b", "zz")
        h.run("SET", "a", "1", "NX")
        h.run("SET", "a", "1", "NX")
        #expect(h.engine.changesSinceLastSave == 3 + 1 + 2 + 1)
        h.engine.resetChangesSinceLastSave(subtracting: 5)
        #expect(h.engine.changesSinceLastSave == 2)
    }
}
