// IncrementWithExpiryTests: INCREX from Redis 8.8's documented examples, and what it logs for Redis 7.0.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct IncrementWithExpiryTests {
    @Test func documentedExamples() {
        let h = CommandHarness()
        #expect(h.reply("INCREX", "mykey") == "*2\r\n:1\r\n:1\r\n")
        #expect(h.reply("INCREX", "mykey") == "*2\r\n:2\r\n:1\r\n")
        h.run("SET", "mykey", "100")
        #expect(h.reply("INCREX", "mykey", "BYINT", "5") == "*2\r\n:105\r\n:5\r\n")
        #expect(h.reply("INCREX", "mykey", "BYINT", "-10") == "*2\r\n:95\r\n:-10\r\n")
        h.run("SET", "mykey", "1.5")
        #expect(h.reply("INCREX", "mykey", "BYFLOAT", "0.25") == "*2\r\n$4\r\n1.75\r\n$4\r\n0.25\r\n")
        h.run("DEL", "mykey")
        #expect(h.reply("INCREX", "mykey", "BYINT", "1", "EX", "100") == "*2\r\n:1\r\n:1\r\n")
        #expect(h.reply("TTL", "mykey") == ":100\r\n")
        h.run("SET", "mykey", "10")
        #expect(h.reply("INCREX", "mykey", "BYINT", "1", "EX", "100", "ENX") == "*2\r\n:11\r\n:1\r\n")
        #expect(h.reply("TTL", "mykey") == ":100\r\n")
        h.run("SET", "mykey", "10", "EX", "500")
        #expect(h.reply("INCREX", "mykey", "BYINT", "1", "EX", "10", "ENX") == "*2\r\n:11\r\n:1\r\n")
        #expect(h.reply("TTL", "mykey") == ":500\r\n")
        h.run("SET", "mykey", "5", "EX", "1000")
        #expect(h.reply("INCREX", "mykey", "BYINT", "1", "PERSIST") == "*2\r\n:6\r\n:1\r\n")
        #expect(h.reply("TTL", "mykey") == ":-1\r\n")
        h.run("SET", "mykey", "99")
        #expect(h.reply("INCREX", "mykey", "BYINT", "5", "UBOUND", "100") == "*2\r\n:99\r\n:0\r\n")
        #expect(h.reply("INCREX", "mykey", "BYINT", "5", "UBOUND", "100", "SATURATE") == "*2\r\n:100\r\n:1\r\n")
    }

    @Test func boundsOverflowAndErrors() {
        let h = CommandHarness(resp3: true)
        h.run("SET", "k", "9223372036854775806")
        #expect(h.reply("INCREX", "k", "BYINT", "5") == "*2\r\n:9223372036854775806\r\n:0\r\n")
        #expect(h.reply("INCREX", "k", "BYINT", "5", "SATURATE") == "*2\r\n:9223372036854775807\r\n:1\r\n")
        #expect(h.reply("INCREX", "missing", "UBOUND", "0") == "*2\r\n:0\r\n:0\r\n")
        #expect(h.reply("EXISTS", "missing") == ":0\r\n")
        #expect(h.reply("INCREX", "f", "BYFLOAT", "2.5", "LBOUND", "3", "SATURATE") == "*2\r\n,3\r\n,3\r\n")
        #expect(h.reply("INCREX", "k", "ENX") == "-ERR syntax error\r\n")
        #expect(h.reply("INCREX", "k", "EX", "10", "PERSIST") == "-ERR syntax error\r\n")
        #expect(h.reply("INCREX", "k", "BYINT", "1", "BYFLOAT", "1") == "-ERR syntax error\r\n")
        #expect(h.reply("INCREX", "k", "BYINT", "x") == "-ERR value is not an integer or out of range\r\n")
        #expect(h.reply("INCREX", "k", "EX", "0") == "-ERR invalid expire time in 'increx' command\r\n")
        #expect(h.reply("INCREX", "k", "LBOUND", "5", "UBOUND", "1")
                == "-ERR LBOUND must be less than or equal to UBOUND\r\n")
        h.run("SET", "s", "1.5")
        #expect(h.reply("INCREX", "s") == "-ERR value is not an integer or out of range\r\n")
    }

    @Test func loggedAsRedis70Commands() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        let now = h.clock.nowMilliseconds()
        h.run("INCREX", "a", "EX", "10")
        h.run("INCREX", "a", "BYINT", "4")
        h.run("INCREX", "a", "PERSIST")
        h.run("INCREX", "a", "UBOUND", "0")
        h.run("INCREX", "f", "BYFLOAT", "0.5")
        #expect(log.recorded == [
            "0:SET a 1 PXAT \(now + 10_000)",
            "0:SET a 5 PXAT \(now + 10_000)",
            "0:SET a 6",
            "0:SET f 0.5",
        ])
    }
}
