// ObjectTests: TOUCH, OBJECT and MEMORY USAGE report Tally's own representation and access times.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct ObjectTests {
    @Test func touchCountsExistingKeys() {
        let h = CommandHarness()
        h.run("MSET", "a", "1", "b", "2")
        #expect(h.reply("TOUCH", "a", "b", "missing", "a") == ":3\r\n")
    }

    @Test func encodingNamesTallysRepresentation() {
        let h = CommandHarness()
        h.run("SET", "i", "123")
        h.run("SET", "s", "abc")
        h.run("HSET", "h", "f", "v")
        #expect(h.reply("OBJECT", "ENCODING", "i") == "$3\r\nint\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$3\r\nraw\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "h") == "$8\r\nlistpack\r\n")
        #expect(h.reply("OBJECT", "REFCOUNT", "i") == ":1\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "missing") == "$-1\r\n")
        #expect(h.reply("OBJECT", "FOO", "i") == "-ERR unknown subcommand 'FOO'. Try OBJECT HELP.\r\n")
    }

    @Test func idleTimeAndFrequencyFollowThePolicy() {
        let h = CommandHarness()
        h.run("SET", "k", "v")
        // The LRU clock is kept under the default noeviction too; EXISTS, TYPE and TTL do not touch it.
        h.clock.advance(by: 3_000)
        h.run("EXISTS", "k")
        h.run("TYPE", "k")
        h.run("TTL", "k")
        #expect(h.reply("OBJECT", "IDLETIME", "k") == ":3\r\n")
        h.run("GET", "k")
        #expect(h.reply("OBJECT", "IDLETIME", "k") == ":0\r\n")
        #expect(h.reply("OBJECT", "FREQ", "k").hasPrefix("-ERR An LFU maxmemory policy is not selected"))
        h.engine.setMemoryLimit(bytes: 0, policy: .allKeysLRU, samples: 5)
        h.run("GET", "k")
        h.clock.advance(by: 5_000)
        #expect(h.reply("OBJECT", "IDLETIME", "k") == ":5\r\n")
        // OBJECT itself is not an access; TOUCH is.
        #expect(h.reply("OBJECT", "IDLETIME", "k") == ":5\r\n")
        h.run("TOUCH", "k")
        #expect(h.reply("OBJECT", "IDLETIME", "k") == ":0\r\n")
        h.engine.setMemoryLimit(bytes: 0, policy: .allKeysLFU, samples: 5)
        #expect(h.reply("OBJECT", "FREQ", "k") == ":5\r\n")
        #expect(h.reply("OBJECT", "IDLETIME", "k").hasPrefix("-ERR An LFU maxmemory policy is selected"))
    }

    @Test func memoryUsageIsTheEntryEstimate() {
        let h = CommandHarness()
        h.run("SET", "i", "1")
        h.run("SET", "s", String(repeating: "x", count: 100))
        let integer = MemoryEstimate.bytes(key: Key(Array("i".utf8)), value: .integer(1))
        let string = MemoryEstimate.bytes(key: Key(Array("s".utf8)), value: .string(Array(repeating: 120, count: 100)))
        #expect(h.reply("MEMORY", "USAGE", "i") == ":\(integer)\r\n")
        #expect(h.reply("MEMORY", "USAGE", "s", "SAMPLES", "0") == ":\(string)\r\n")
        #expect(string > integer + 100)
        #expect(h.reply("MEMORY", "USAGE", "missing") == "$-1\r\n")
        #expect(h.reply("MEMORY", "USAGE", "s", "SAMPLES", "-1") == "-ERR syntax error\r\n")
    }
}
