// StreamCommandsTests: stream replies, node layout, consumer groups and propagation through the harness.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct StreamCommandsTests {
    @Test func addRangeAndIds() {
        let h = CommandHarness()
        #expect(h.reply("XADD", "s", "1-1", "a", "1") == "$3\r\n1-1\r\n")
        #expect(h.reply("XADD", "s", "1-*", "b", "2") == "$3\r\n1-2\r\n")
        #expect(h.reply("XADD", "s", "1-2", "x", "y")
            == "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n")
        #expect(h.reply("XADD", "s", "0-0", "x", "y") == "-ERR The ID specified in XADD must be greater than 0-0\r\n")
        #expect(h.reply("XADD", "s", "1-x", "x", "y")
            == "-ERR Invalid stream ID specified as stream command argument\r\n")
        #expect(h.reply("XADD", "s", "5-1", "x") == "-ERR wrong number of arguments for 'xadd' command\r\n")
        #expect(h.reply("XLEN", "s") == ":2\r\n")
        #expect(h.reply("XRANGE", "s", "-", "+")
            == "*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n")
        #expect(h.reply("XREVRANGE", "s", "+", "-", "COUNT", "1")
            == "*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n")
        #expect(h.reply("XRANGE", "s", "(1-1", "+", "COUNT", "5")
            == "*1\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n")
        #expect(h.reply("XRANGE", "s", "-", "+", "COUNT", "0") == "*-1\r\n")
        #expect(h.reply("XRANGE", "missing", "-", "+") == "*0\r\n")
        #expect(h.reply("TYPE", "s") == "+stream\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$6\r\nstream\r\n")
    }

    @Test func autoIdsStayMonotonicWhenTheClockGoesBack() {
        let h = CommandHarness()
        let now = h.clock.nowMilliseconds()
        #expect(h.reply("XADD", "s", "*", "a", "1") == "$\(String(now).count + 2)\r\n\(now)-0\r\n")
        h.clock.advance(by: -5000)
        #expect(h.reply("XADD", "s", "*", "a", "1") == "$\(String(now).count + 2)\r\n\(now)-1\r\n")
    }

    @Test func nodesSplitAtOneHundredEntriesAndApproximateTrimDropsWholeNodes() {
        let h = CommandHarness()
        for index in 1...250 { h.run("XADD", "s", "1-\(index)", "f", "v") }
        #expect(h.reply("XTRIM", "s", "MAXLEN", "~", "120") == ":100\r\n")
        #expect(h.reply("XLEN", "s") == ":150\r\n")
        #expect(h.reply("XTRIM", "s", "MAXLEN", "120") == ":30\r\n")
        #expect(h.reply("XRANGE", "s", "-", "+", "COUNT", "1")
            == "*1\r\n*2\r\n$5\r\n1-131\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n")
        #expect(h.reply("XTRIM", "s", "MINID", "1-200") == ":69\r\n")
        #expect(h.reply("XLEN", "s") == ":51\r\n")
    }

    @Test func deleteKeepsAnEmptyStream() {
        let h = CommandHarness()
        h.run("XADD", "s", "1-1", "a", "1")
        h.run("XADD", "s", "2-1", "a", "2")
        #expect(h.reply("XDEL", "s", "1-1", "2-1", "3-1") == ":2\r\n")
        #expect(h.reply("XLEN", "s") == ":0\r\n")
        #expect(h.reply("EXISTS", "s") == ":1\r\n")
        #expect(h.reply("XADD", "s", "2-1", "a", "b")
            == "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n")
    }

    @Test func groupsDeliverAckAndClaim() {
        let h = CommandHarness()
        h.run("XADD", "s", "1-1", "a", "1")
        h.run("XADD", "s", "2-1", "a", "2")
        #expect(h.reply("XGROUP", "CREATE", "s", "g", "0") == "+OK\r\n")
        #expect(h.reply("XGROUP", "CREATE", "s", "g", "0") == "-BUSYGROUP Consumer Group name already exists\r\n")
        #expect(h.reply("XREADGROUP", "GROUP", "g", "alice", "COUNT", "1", "STREAMS", "s", ">")
            == "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n")
        #expect(h.reply("XPENDING", "s", "g")
            == "*4\r\n:1\r\n$3\r\n1-1\r\n$3\r\n1-1\r\n*1\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n")
        h.clock.advance(by: 50)
        #expect(h.reply("XPENDING", "s", "g", "-", "+", "10")
            == "*1\r\n*4\r\n$3\r\n1-1\r\n$5\r\nalice\r\n:50\r\n:1\r\n")
        #expect(h.reply("XCLAIM", "s", "g", "bob", "10", "1-1", "JUSTID") == "*1\r\n$3\r\n1-1\r\n")
        #expect(h.reply("XPENDING", "s", "g", "-", "+", "10", "bob")
            == "*1\r\n*4\r\n$3\r\n1-1\r\n$3\r\nbob\r\n:0\r\n:1\r\n")
        #expect(h.reply("XACK", "s", "g", "1-1", "9-9") == ":1\r\n")
        #expect(h.reply("XPENDING", "s", "g") == "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n")
        #expect(h.reply("XREADGROUP", "GROUP", "nope", "c", "STREAMS", "s", ">")
            == "-NOGROUP No such key 's' or consumer group 'nope' in XREADGROUP with GROUP option\r\n")
    }

    @Test func resp3RepliesUseMaps() {
        let h = CommandHarness(resp3: true)
        h.run("XADD", "s", "1-1", "a", "1")
        #expect(h.reply("XREAD", "STREAMS", "s", "0")
            == "%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n")
        #expect(h.reply("XREAD", "STREAMS", "s", "$") == "_\r\n")
    }

    @Test func propagationLogsConcreteIdsAndClaims() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        let now = h.clock.nowMilliseconds()
        h.run("XADD", "s", "*", "a", "1")
        h.run("XADD", "s", "MAXLEN", "~", "10", "*", "a", "2")
        h.run("XGROUP", "CREATE", "s", "g", "0")
        h.run("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")
        h.run("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", "0")
        #expect(log.recorded == [
            "0:XADD s \(now)-0 a 1",
            "0:XADD s MAXLEN = 2 \(now)-1 a 2",
            "0:XGROUP CREATE s g 0",
            "0:XCLAIM s g c 0 \(now)-0 TIME \(now) RETRYCOUNT 1 FORCE JUSTID LASTID \(now)-0; "
                + "0:XCLAIM s g c 0 \(now)-1 TIME \(now) RETRYCOUNT 1 FORCE JUSTID LASTID \(now)-1",
        ])
    }

    @Test func blockedReadIsNotBlockingInsideMulti() {
        let h = CommandHarness()
        h.run("MULTI")
        h.run("XREAD", "BLOCK", "0", "STREAMS", "s", "$")
        #expect(h.reply("EXEC") == "*1\r\n*-1\r\n")
    }
}
