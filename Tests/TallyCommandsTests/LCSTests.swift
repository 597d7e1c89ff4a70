// LCSTests: LCS replies in RESP2 and RESP3 (the documented ohmytext / mynewtext example).
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct LCSTests {
    @Test func plainLengthAndIndexes() {
        let h = CommandHarness()
        h.run("MSET", "a", "ohmytext", "b", "mynewtext")
        #expect(h.reply("LCS", "a", "b") == "$6\r\nmytext\r\n")
        #expect(h.reply("LCS", "a", "b", "LEN") == ":6\r\n")
        #expect(h.reply("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN")
                == "*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n")
        #expect(h.reply("LCS", "a", "missing") == "$0\r\n\r\n")
        #expect(h.reply("LCS", "a", "b", "IDX", "LEN")
                == "-ERR If you want both the length and indexes, please just use IDX.\r\n")
        h.run("HSET", "h", "f", "v")
        #expect(h.reply("LCS", "a", "h") == "-ERR The specified keys must contain string values\r\n")
    }

    @Test func indexesAreAMapInRESP3() {
        let h = CommandHarness(resp3: true)
        h.run("MSET", "a", "ohmytext", "b", "mynewtext")
        #expect(h.reply("LCS", "a", "b", "IDX")
                == "%2\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n"
                + "*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n")
    }

    @Test func tableLargerThanProtoMaxBulkLenIsRefused() {
        let h = CommandHarness(configuration: EngineConfiguration(maxStringBytes: 64))
        h.run("MSET", "a", "0123456789", "b", "0123456789")
        #expect(h.reply("LCS", "a", "b")
                == "-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n")
    }
}
