// ListCommandsTests: list replies, propagation and memory accounting through the harness.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct ListCommandsTests {
    @Test func pushPopAndRange() {
        let h = CommandHarness()
        #expect(h.reply("RPUSH", "l", "a", "1", "-70000") == ":3\r\n")
        #expect(h.reply("LPUSH", "l", "z") == ":4\r\n")
        #expect(h.reply("LRANGE", "l", "0", "-1") == "*4\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n$6\r\n-70000\r\n")
        #expect(h.reply("LPOP", "l") == "$1\r\nz\r\n")
        #expect(h.reply("RPOP", "l", "2") == "*2\r\n$6\r\n-70000\r\n$1\r\n1\r\n")
        #expect(h.reply("LPOP", "l", "0") == "*0\r\n")
        #expect(h.reply("LPOP", "l", "5") == "*1\r\n$1\r\na\r\n")
        #expect(h.reply("EXISTS", "l") == ":0\r\n")
        #expect(h.reply("LPOP", "l", "1") == "*-1\r\n")
        #expect(h.reply("RPOP", "l") == "$-1\r\n")
        #expect(h.reply("LPOP", "l", "-1") == "-ERR value is out of range, must be positive\r\n")
        #expect(h.reply("LPUSHX", "l", "a") == ":0\r\n")
    }

    @Test func wrongTypeBothWays() {
        let h = CommandHarness()
        h.run("SET", "s", "v")
        h.run("RPUSH", "l", "a")
        let wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        #expect(h.reply("LPUSH", "s", "a") == wrongType)
        #expect(h.reply("LRANGE", "s", "0", "-1") == wrongType)
        #expect(h.reply("GET", "l") == wrongType)
        #expect(h.reply("INCR", "l") == wrongType)
        #expect(h.reply("HGET", "l", "f") == wrongType)
        #expect(h.reply("LMOVE", "l", "s", "LEFT", "LEFT") == wrongType)
        #expect(h.reply("LRANGE", "l", "0", "-1") == "*1\r\n$1\r\na\r\n")
        #expect(h.reply("TYPE", "l") == "+list\r\n")
    }

    @Test func largeListsSpanChunks() {
        let h = CommandHarness()
        let element = String(repeating: "x", count: 100)
        let batch = ["RPUSH", "big"].map { Array($0.utf8) } + Array(repeating: Array(element.utf8), count: 20)
        for _ in 0..<50 { h.run(batch) }
        #expect(h.reply("LLEN", "big") == ":1000\r\n")
        #expect(h.reply("LINDEX", "big", "-1") == "$100\r\n\(element)\r\n")
        #expect(h.reply("LSET", "big", "500", "mid") == "+OK\r\n")
        #expect(h.reply("LPOS", "big", "mid") == ":500\r\n")
        #expect(h.reply("LINSERT", "big", "AFTER", "mid", "after") == ":1001\r\n")
        #expect(h.reply("LINDEX", "big", "501") == "$5\r\nafter\r\n")
        #expect(h.reply("LREM", "big", "0", element) == ":999\r\n")
        #expect(h.reply("LRANGE", "big", "0", "-1") == "*2\r\n$3\r\nmid\r\n$5\r\nafter\r\n")
        #expect(h.reply("LTRIM", "big", "1", "1") == "+OK\r\n")
        #expect(h.reply("LRANGE", "big", "0", "-1") == "*1\r\n$5\r\nafter\r\n")
    }

    @Test func servedPopsAreLoggedDeterministically() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("RPUSH", "a", "1", "2", "3")
        h.run("LMPOP", "2", "none", "a", "RIGHT", "COUNT", "10")
        h.run("LPOP", "none")
        h.run("LTRIM", "none", "0", "1")
        h.run("LREM", "none", "0", "x")
        #expect(log.recorded == ["0:RPUSH a 1 2 3", "0:RPOP a 3"])
    }

    @Test func memoryEstimateFollowsTheList() {
        let h = CommandHarness()
        let before = h.engine.keyspace.shards.reduce(0) { $0 + $1.usedBytes.load(ordering: .relaxed) }
        for index in 0..<1000 { h.run("RPUSH", "l", String(index)) }
        let during = h.engine.keyspace.shards.reduce(0) { $0 + $1.usedBytes.load(ordering: .relaxed) }
        // At least the listpack entries: 0...127 take 2 bytes each, 128...999 take 3.
        #expect(during >= before + 128 * 2 + 872 * 3)
        h.run("LTRIM", "l", "1", "0")
        let after = h.engine.keyspace.shards.reduce(0) { $0 + $1.usedBytes.load(ordering: .relaxed) }
        #expect(after == before)
    }
}
