// SlowLogTests: SLOWLOG entries (trimming as slowlog.c does, newest first, max length, EXEC skipped).
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct SlowLogTests {
    func harness() -> CommandHarness {
        let harness = CommandHarness()
        harness.engine.slowLog.configure(slowerThanMicroseconds: 0, maxLength: 128)
        return harness
    }

    @Test func trimsLongCommandsAndArguments() {
        let h = harness()
        h.run((["DEL"] + (1...40).map { "k\($0)" }).map { Array($0.utf8) })
        h.run("SET", "k", String(repeating: "A", count: 129))
        let reply = h.reply("SLOWLOG", "GET", "2")
        #expect(reply.contains("$3\r\nSET\r\n$1\r\nk\r\n$146\r\n" + String(repeating: "A", count: 128)
                               + "... (1 more bytes)\r\n"))
        #expect(reply.contains("*32\r\n$3\r\nDEL\r\n"))
        #expect(reply.contains("$3\r\nk30\r\n$23\r\n... (10 more arguments)\r\n"))
        #expect(reply.hasPrefix("*2\r\n*6\r\n:1\r\n"))
    }

    @Test func keepsTheNewestAndSkipsExec() {
        let h = harness()
        h.engine.slowLog.configure(slowerThanMicroseconds: 0, maxLength: 2)
        h.run("MULTI")
        h.run("INCR", "a")
        h.run("INCR", "b")
        h.run("EXEC")
        #expect(h.reply("SLOWLOG", "LEN") == ":2\r\n")
        let newest = h.reply("SLOWLOG", "GET", "1")
        #expect(newest.contains("$4\r\nEXEC\r\n") == false)
        #expect(h.reply("SLOWLOG", "GET", "-2") == "-ERR count should be greater than or equal to -1\r\n")
        #expect(h.reply("SLOWLOG", "RESET") == "+OK\r\n")
        h.engine.slowLog.configure(slowerThanMicroseconds: -1, maxLength: 2)
        h.run("PING")
        #expect(h.reply("SLOWLOG", "LEN") == ":1\r\n")  // the RESET itself
    }

    @Test func credentialsAreRedactedAsRedisRedactsThem() {
        let h = CommandHarness()
        h.engine.slowLog.configure(slowerThanMicroseconds: 0, maxLength: 8)
        h.run("AUTH", "user", "secret")
        h.run("HELLO", "2", "AUTH", "user", "secret", "SETNAME", "n")
        h.run("AUTH", "a", "b", "c")  // a syntax error, refused before acl.c redacts anything
        let log = h.reply("SLOWLOG", "GET", "3")
        #expect(!log.contains("secret") && !log.contains("user"))
        #expect(log.components(separatedBy: "(redacted)").count == 5)
        #expect(log.contains("$1\r\nc\r\n") && log.contains("$7\r\nSETNAME\r\n"))
    }
}
