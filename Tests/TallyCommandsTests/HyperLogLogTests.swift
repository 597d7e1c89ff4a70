// HyperLogLogTests: PFADD/PFCOUNT/PFMERGE give redis-server 7.0.15's numbers and bytes; corruption is an error.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct HyperLogLogTests {
    /// `PFADD s a b c` on redis-server 7.0.15, read back with GET.
    static let redisSparseABC: [UInt8] = Array("HYLL".utf8) + [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]
        + [0x60, 0xf3, 0x80, 0x50, 0xb1, 0x84, 0x4b, 0xfb, 0x80, 0x42, 0x5a]

    @Test func countsMatchRedisAcrossSparseAndDense() {
        let h = CommandHarness()
        #expect(h.run(["PFADD", "k"].map { Array($0.utf8) } + (1...1000).map { Array(String($0).utf8) })
                == Array(":1\r\n".utf8))
        #expect(h.reply("PFCOUNT", "k") == ":1001\r\n")
        for batch in 1...20 {
            let elements = (batch * 1000...(batch * 1000 + 999)).map { Array(String($0).utf8) }
            h.run([Array("PFADD".utf8), Array("d".utf8)] + elements)
        }
        #expect(h.reply("PFCOUNT", "d") == ":19950\r\n")
        #expect(h.reply("STRLEN", "d") == ":12304\r\n")
    }

    @Test func representationIsRedis() {
        let h = CommandHarness()
        #expect(h.reply("PFADD", "s", "a", "b", "c") == ":1\r\n")
        #expect(h.run("GET", "s") == Array("$27\r\n".utf8) + Self.redisSparseABC + Array("\r\n".utf8))
        h.run([Array("SET".utf8), Array("r".utf8), Self.redisSparseABC])
        #expect(h.reply("PFCOUNT", "r") == ":3\r\n")
        #expect(h.reply("PFADD", "r", "a") == ":0\r\n")
        // The count is cached in the header (little endian, valid flag clear).
        #expect(Array(h.run("GET", "r")[5..<21]) == Array("HYLL".utf8) + [1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func mergeAndErrors() {
        let h = CommandHarness()
        h.run("PFADD", "a", "1", "2", "3")
        h.run("PFADD", "b", "3", "4")
        #expect(h.reply("PFMERGE", "m", "a", "b") == "+OK\r\n")
        #expect(h.reply("PFCOUNT", "m") == ":4\r\n")
        #expect(h.reply("PFCOUNT", "a", "b", "missing") == ":4\r\n")
        h.run("SET", "s", "plain")
        #expect(h.reply("PFADD", "s", "x") == "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n")
        // Recorded from redis-server 7.0.15: an empty string and an integer are refused and
        // left as they were, another type is WRONGTYPE, a new key with no element is created.
        h.run("SET", "e", "")
        #expect(h.reply("PFADD", "e", "x") == "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n")
        #expect(h.reply("GET", "e") == "$0\r\n\r\n")
        h.run("SET", "n", "123")
        #expect(h.reply("PFADD", "n", "x") == "-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "n") == "$3\r\nint\r\n")
        h.run("RPUSH", "l", "a")
        #expect(h.reply("PFADD", "l", "x") == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        #expect(h.reply("PFADD", "fresh") == ":1\r\n")
        #expect(h.reply("PFCOUNT", "fresh") == ":0\r\n")
        h.run([Array("SET".utf8), Array("bad".utf8), Array(Self.redisSparseABC.dropLast())])
        #expect(h.reply("PFCOUNT", "bad") == "-INVALIDOBJ Corrupted HLL object detected\r\n")
        #expect(h.reply("PFMERGE", "m", "bad") == "-INVALIDOBJ Corrupted HLL object detected\r\n")
    }

    @Test func sparseLimitFollowsTheEngineSetting() {
        let h = CommandHarness()
        h.engine.setHyperLogLogSparseMaxBytes(40)
        h.run(["PFADD", "k"].map { Array($0.utf8) } + (1...20).map { Array("e\($0)".utf8) })
        #expect(h.reply("STRLEN", "k") == ":12304\r\n")
        #expect(h.reply("PFCOUNT", "k") == ":20\r\n")
    }
}
