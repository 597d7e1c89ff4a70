// BitmapTests: SETBIT/GETBIT/BITCOUNT/BITPOS/BITOP/BITFIELD replies, limits, TTLs and what is logged.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct BitmapTests {
    @Test func setBitGrowsAndReportsThePreviousBit() {
        let h = CommandHarness()
        #expect(h.reply("SETBIT", "b", "9", "1") == ":0\r\n")
        #expect(h.reply("SETBIT", "b", "9", "1") == ":1\r\n")
        #expect(h.reply("GET", "b") == "$2\r\n\u{0}@\r\n")
        #expect(h.reply("GETBIT", "b", "9") == ":1\r\n")
        #expect(h.reply("GETBIT", "b", "1000") == ":0\r\n")
        #expect(h.reply("SETBIT", "b", "1", "2") == "-ERR bit is not an integer or out of range\r\n")
        #expect(h.reply("SETBIT", "b", "-1", "1") == "-ERR bit offset is not an integer or out of range\r\n")
        #expect(h.reply("SETBIT", "b", "4294967296", "1") == "-ERR bit offset is not an integer or out of range\r\n")
        // Integer-encoded values are read as their decimal digits: "1" is 0x31.
        h.run("SET", "n", "1")
        #expect(h.reply("GETBIT", "n", "7") == ":1\r\n")
        #expect(h.reply("SETBIT", "n", "6", "1") == ":0\r\n")
        #expect(h.reply("GET", "n") == "$1\r\n3\r\n")
        #expect(h.reply("INCR", "n") == ":4\r\n")
        h.run("HSET", "h", "f", "v")
        #expect(h.reply("SETBIT", "h", "0", "1").hasPrefix("-WRONGTYPE"))
    }

    @Test func setBitKeepsTheTTLAndTheLimitFollowsProtoMaxBulkLen() {
        let h = CommandHarness(configuration: EngineConfiguration(maxStringBytes: 16))
        h.run("SET", "b", "x", "EX", "100")
        #expect(h.reply("SETBIT", "b", "127", "1") == ":0\r\n")
        #expect(h.reply("SETBIT", "b", "128", "1") == "-ERR bit offset is not an integer or out of range\r\n")
        #expect(h.reply("TTL", "b") == ":100\r\n")
        #expect(h.reply("STRLEN", "b") == ":16\r\n")
    }

    @Test func countAndPositionOverByteAndBitRanges() {
        let h = CommandHarness()
        h.run([Array("SET".utf8), Array("s".utf8), [0xff, 0x0f, 0xf0, 0x00]])
        #expect(h.reply("BITCOUNT", "s") == ":16\r\n")
        #expect(h.reply("BITCOUNT", "s", "1", "-2") == ":8\r\n")
        #expect(h.reply("BITCOUNT", "s", "4", "11", "BIT") == ":4\r\n")
        #expect(h.reply("BITCOUNT", "s", "-1", "-2") == ":0\r\n")
        #expect(h.reply("BITCOUNT", "s", "0") == "-ERR syntax error\r\n")
        #expect(h.reply("BITPOS", "s", "0") == ":8\r\n")
        #expect(h.reply("BITPOS", "s", "1", "1") == ":12\r\n")
        #expect(h.reply("BITPOS", "s", "0", "0", "0") == ":-1\r\n")
        #expect(h.reply("BITPOS", "s", "1", "14", "-1", "BIT") == ":14\r\n")
        #expect(h.reply("BITPOS", "s", "1", "3") == ":-1\r\n")
        #expect(h.reply("BITPOS", "missing", "0") == ":0\r\n")
        #expect(h.reply("BITPOS", "s", "2") == "-ERR The bit argument must be 1 or 0.\r\n")
    }

    @Test func bitOperationsPadAndDeleteOnEmptyResult() {
        let h = CommandHarness()
        h.run([Array("SET".utf8), Array("a".utf8), [0xf0, 0x0f]])
        h.run([Array("SET".utf8), Array("b".utf8), [0xff]])
        #expect(h.reply("BITOP", "AND", "d", "a", "b") == ":2\r\n")
        #expect(h.run("GET", "d") == Array("$2\r\n".utf8) + [0xf0, 0x00] + Array("\r\n".utf8))
        #expect(h.reply("BITOP", "NOT", "d", "b") == ":1\r\n")
        #expect(h.run("GET", "d") == Array("$1\r\n".utf8) + [0x00] + Array("\r\n".utf8))
        #expect(h.reply("BITOP", "OR", "d", "missing") == ":0\r\n")
        #expect(h.reply("EXISTS", "d") == ":0\r\n")
        #expect(h.reply("BITOP", "NOT", "d", "a", "b") == "-ERR BITOP NOT must be called with a single source key.\r\n")
    }

    @Test func bitFieldOverflowModes() {
        let h = CommandHarness()
        #expect(h.reply("BITFIELD", "f", "SET", "u8", "0", "250", "INCRBY", "u8", "0", "10")
                == "*2\r\n:0\r\n:4\r\n")
        #expect(h.reply("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "300") == "*1\r\n:255\r\n")
        #expect(h.reply("BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1") == "*1\r\n$-1\r\n")
        #expect(h.reply("BITFIELD", "f", "SET", "i8", "#1", "-128", "INCRBY", "i8", "#1", "-1")
                == "*2\r\n:0\r\n:127\r\n")
        #expect(h.reply("BITFIELD", "f", "OVERFLOW", "SAT", "SET", "u8", "0", "-1") == "*1\r\n:255\r\n")
        #expect(h.reply("BITFIELD", "f", "GET", "u64", "0").hasPrefix("-ERR Invalid bitfield type"))
        #expect(h.reply("BITFIELD_RO", "f", "GET", "u8", "0") == "*1\r\n:255\r\n")
        #expect(h.reply("BITFIELD_RO", "f", "SET", "u8", "0", "1")
                == "-ERR BITFIELD_RO only supports the GET subcommand\r\n")
        #expect(h.reply("BITFIELD", "missing", "GET", "i4", "0") == "*1\r\n:0\r\n")
        #expect(h.reply("EXISTS", "missing") == ":0\r\n")
    }

    /// SETBIT edits the stored bytes in place: 2000 writes into a 32 MB bitmap take milliseconds;
    /// copying the bitmap for each would move 64 GB.
    @Test func setBitDoesNotCopyTheBitmap() {
        let h = CommandHarness()
        #expect(h.reply("SETBIT", "big", "268435455", "1") == ":0\r\n")
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for offset in 0..<2000 { h.run("SETBIT", "big", String(offset * 8), "1") }
        }
        #expect(elapsed < .seconds(2))
        #expect(h.reply("BITCOUNT", "big") == ":2001\r\n")
    }

    @Test func onlyRealChangesAreLogged() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("SETBIT", "b", "3", "1")
        h.run("SETBIT", "b", "3", "1")
        h.run("SETBIT", "b", "2", "0")
        h.run("BITFIELD", "b", "GET", "u4", "0")
        h.run("BITFIELD", "b", "SET", "u4", "0", "1")
        h.run("BITFIELD", "b", "SET", "u4", "0", "2")
        h.run("BITFIELD", "b", "OVERFLOW", "FAIL", "INCRBY", "u4", "0", "100")
        h.run("BITFIELD", "b", "OVERFLOW", "FAIL", "INCRBY", "u4", "16", "100")
        h.run("BITOP", "OR", "none", "missing")
        #expect(log.recorded == [
            "0:SETBIT b 3 1",
            "0:BITFIELD b SET u4 0 2",
            "0:BITFIELD b OVERFLOW FAIL INCRBY u4 16 100",
        ])
    }
}
