// DumpCommandsTests: DUMP/RESTORE payloads (Redis's exact bytes), refusals in Redis's order, propagation.
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyTestSupport
import Testing

@Suite struct DumpCommandsTests {
    func harness() -> (CommandHarness, RecordingLog) {
        let harness = CommandHarness(serverCommands: DumpCommands.specs(codec: RDBDumpPayloadCodec()))
        let log = RecordingLog()
        harness.engine.attachLog(log)
        return (harness, log)
    }

    /// `\x00\x05hello` + version 10 + CRC64, as redis-server 7.0.15 replies to DUMP of "hello".
    static let helloPayload: [UInt8] = [0x00, 0x05] + Array("hello".utf8) + [0x0A, 0x00]
        + [0x63, 0x72, 0xDF, 0x76, 0x65, 0x34, 0x20, 0x0A]

    @Test func dumpsAsRedisDoes() {
        let (h, _) = harness()
        h.run("SET", "w", "hello")
        h.run("SET", "n", "123")
        #expect(h.run("DUMP", "w") == Array("$\(Self.helloPayload.count)\r\n".utf8) + Self.helloPayload + [13, 10])
        // 123 as an 8-bit RDB integer: C0 7B.
        let integer = h.run("DUMP", "n")
        #expect(Array(integer[5..<8]) == [0x00, 0xC0, 0x7B])
        #expect(h.reply("DUMP", "missing") == "$-1\r\n")
    }

    @Test func restoreSetsTheIdleTimeOrFrequency() {
        let (h, _) = harness()
        h.run("SET", "w", "hello")
        let payload = Self.helloPayload
        h.run([Array("RESTORE".utf8), Array("r".utf8), Array("0".utf8), payload, Array("IDLETIME".utf8),
               Array("100".utf8)])
        #expect(h.reply("OBJECT", "IDLETIME", "r") == ":100\r\n")
        // FREQ sets nothing without an LFU policy (Redis ignores it there too); IDLETIME nothing under one.
        h.run([Array("RESTORE".utf8), Array("f".utf8), Array("0".utf8), payload, Array("FREQ".utf8),
               Array("42".utf8)])
        #expect(h.reply("OBJECT", "IDLETIME", "f") == ":0\r\n")
        h.engine.setMemoryLimit(bytes: 0, policy: .allKeysLFU, samples: 5)
        h.run([Array("RESTORE".utf8), Array("g".utf8), Array("0".utf8), payload, Array("FREQ".utf8),
               Array("42".utf8)])
        #expect(h.reply("OBJECT", "FREQ", "g") == ":42\r\n")
    }

    @Test func everyKindRoundTrips() {
        let (h, _) = harness()
        h.run("SET", "s", String(repeating: "abc", count: 40))
        h.run("SET", "i", "-9223372036854775808")
        h.run("HSET", "h", "a", "1", "b", String(repeating: "v", count: 100))
        h.run("RPUSH", "l", "1", "two", "3")
        for key in ["s", "i", "h", "l"] {
            let reply = h.run("DUMP", key)
            let headerEnd = reply.firstIndex(of: 10)! + 1
            let payload = Array(reply[headerEnd..<(reply.count - 2)])
            #expect(h.run([Array("RESTORE".utf8), Array((key + "2").utf8), Array("0".utf8), payload])
                    == Array("+OK\r\n".utf8))
        }
        #expect(h.reply("GET", "i2") == "$20\r\n-9223372036854775808\r\n")
        #expect(h.reply("HGET", "h2", "a") == "$1\r\n1\r\n")
        #expect(h.reply("LRANGE", "l2", "0", "-1") == "*3\r\n$1\r\n1\r\n$3\r\ntwo\r\n$1\r\n3\r\n")
        #expect(h.reply("GET", "s2") == h.reply("GET", "s"))
    }

    @Test func refusesInRestoreCommandsOrder() {
        let (h, log) = harness()
        h.run("SET", "k", "v")
        let payload = Self.helloPayload
        func restore(_ words: [String], payload: [UInt8] = payload) -> String {
            let arguments = words.map { Array($0.utf8) }
            return String(decoding: h.run(Array(arguments[..<3]) + [payload] + Array(arguments[3...])), as: UTF8.self)
        }
        #expect(restore(["RESTORE", "k", "x", "bogus"]) == "-ERR syntax error\r\n")
        #expect(restore(["RESTORE", "k", "x"]) == "-BUSYKEY Target key name already exists.\r\n")
        #expect(restore(["RESTORE", "q", "-1"]) == "-ERR Invalid TTL value, must be >= 0\r\n")
        #expect(restore(["RESTORE", "q", "0", "FREQ", "256"]) == "-ERR Invalid FREQ value, must be >= 0 and <= 255\r\n")
        #expect(restore(["RESTORE", "q", "0", "IDLETIME", "1", "FREQ", "1"]) == "-ERR syntax error\r\n")
        var corrupted = payload
        corrupted[3] ^= 1
        #expect(restore(["RESTORE", "q", "0"], payload: corrupted)
                == "-ERR DUMP payload version or checksum are wrong\r\n")
        #expect(restore(["RESTORE", "q", "0"], payload: [0x00]) == "-ERR DUMP payload version or checksum are wrong\r\n")
        // A list with no elements is refused like an unknown type (Redis never stores empty values).
        let empty = RDBDumpPayloadCodec().payload(of: .list(ListValue()))
        #expect(restore(["RESTORE", "q", "0"], payload: empty) == "-ERR Bad data format\r\n")
        #expect(log.recorded == ["0:SET k v"])
    }

    @Test func relativeTTLIsLoggedAbsoluteAndExpiredTTLStoresNothing() {
        let (h, log) = harness()
        let now = h.clock.nowMilliseconds()
        let payload = Self.helloPayload
        let name: (String) -> [UInt8] = { Array($0.utf8) }
        #expect(h.run([name("RESTORE"), name("a"), name("5000"), payload]) == name("+OK\r\n"))
        #expect(h.run([name("RESTORE"), name("b"), name("\(now + 10)"), payload, name("ABSTTL")]) == name("+OK\r\n"))
        #expect(h.run([name("RESTORE"), name("b"), name("1"), payload, name("ABSTTL"), name("REPLACE")])
                == name("+OK\r\n"))
        #expect(h.reply("EXISTS", "b") == ":0\r\n")
        let encoded = String(decoding: payload, as: UTF8.self)
        #expect(log.recorded == [
            "0:RESTORE a \(now + 5000) \(encoded) ABSTTL",
            "0:RESTORE b \(now + 10) \(encoded) ABSTTL",
            "0:DEL b",
        ])
    }
}
