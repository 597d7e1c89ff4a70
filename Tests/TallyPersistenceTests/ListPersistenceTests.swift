// ListPersistenceTests: lists through RDB (QUICKLIST_2 written; types 1, 14, 18 read), redis-server both ways, AOF rewrite.
import Foundation
import Testing
import TallyKeyspace
import TallyPersistence
import TallyProtocol
import TallyTestSupport

/// Lists covering every listpack encoding, several chunks, and elements bigger than a chunk.
func sampleLists() -> [(String, [[UInt8]])] {
    let integers = ["0", "127", "128", "-1", "4095", "-4096", "4096", "32767", "-32768", "32768", "8388607",
                    "-8388608", "8388608", "2147483647", "-2147483648", "2147483648", "9223372036854775807",
                    "-9223372036854775808", "007", "+1", "-0", " 1", "1.5", ""].map(bytes)
    let strings = [String(repeating: "s", count: 63), String(repeating: "m", count: 64),
                   String(repeating: "l", count: 4095), String(repeating: "x", count: 4096)].map(bytes)
    let large = (0..<20_000).map { bytes("\($0)") }
    let big = [bytes("head"), Array(repeating: 98, count: 20_000), bytes("mid"), Array(repeating: 99, count: 70_000),
               bytes("tail")]
    return [("ints", integers), ("strings", strings), ("large", large), ("big", big), ("one", [bytes("a")])]
}

func listEntry(_ elements: [[UInt8]]) -> Entry { Entry(value: .list(ListValue(elements))) }

@Suite struct ListRDBTests {
    @Test func roundTripsEveryEncoding() throws {
        let lists = sampleLists()
        let file = try makeRDB([0: lists.map { (key($0.0), listEntry($0.1)) }])
        let (loaded, result) = try readRDB(file)
        #expect(result.keysLoaded == lists.count)
        for (name, elements) in lists { #expect(listElements(loaded[0]?[key(name)]?.value) == elements, "\(name)") }
    }

    /// Type 1 (a length and strings) and type 14 (a length and ziplists), as Redis before 7.0
    /// wrote them; the zero trailer skips the checksum.
    @Test func readsOlderListEncodings() throws {
        // A ziplist of "a", 5 and 300: zlbytes 20, zltail 15, zllen 3, entries, 0xFF.
        let ziplist: [UInt8] = [20, 0, 0, 0, 15, 0, 0, 0, 3, 0, 0x00, 0x01, 0x61, 0x03, 0xF6, 0x02, 0xC0, 0x2C, 0x01,
                                0xFF]
        var file = bytes("REDIS0009") + [0xFE, 0x00]
        file += [0x01, 0x02] + bytes("l1") + [0x02, 0x01] + bytes("x") + [0xC0, 0x07]
        file += [0x0E, 0x02] + bytes("l2") + [0x01, UInt8(ziplist.count)] + ziplist
        file += [0xFF] + [UInt8](repeating: 0, count: 8)
        let (loaded, result) = try readRDB(file)
        #expect(result.keysLoaded == 2)
        #expect(listElements(loaded[0]?[key("l1")]?.value) == [bytes("x"), bytes("7")])
        #expect(listElements(loaded[0]?[key("l2")]?.value) == [bytes("a"), bytes("5"), bytes("300")])
    }

    @Test func rejectsAnUnknownNodeContainer() throws {
        var file = bytes("REDIS0010") + [0xFE, 0x00]
        file += [0x12, 0x01] + bytes("l") + [0x01, 0x03, 0x01] + bytes("x")
        file += [0xFF] + [UInt8](repeating: 0, count: 8)
        #expect(throws: RDBError.self) { try readRDB(file) }
    }

    @Test func rewritesAsRPUSHOf64Elements() throws {
        let elements = (0..<130).map { bytes("e\($0)") }
        let entry = listEntry(elements)
        var sink = MemorySink()
        try writeRESPBase({ visit in try visit(0, bytes("l"), entry) }, into: &sink)
        var expected: [UInt8] = []
        RESPRecord.appendSelect(0, to: &expected)
        for range in [0..<64, 64..<128, 128..<130] {
            RESPRecord.append([bytes("RPUSH"), bytes("l")] + Array(elements[range]), to: &expected)
        }
        #expect(sink.bytes == expected)
    }
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct ListRDBInteropTests {
    func readDump(_ path: String) throws -> [Key: Entry] {
        var loaded: [Key: Entry] = [:]
        _ = try loadRDBFile(PosixStorage(), path: path) { _, key, entry in loaded[key] = entry }
        return loaded
    }

    func redisList(_ redis: RedisProcess, _ name: String) throws -> String {
        try redis.cli("LRANGE", name, "0", "-1")
    }

    func cliText(_ elements: [[UInt8]]) -> String {
        elements.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined()
    }

    @Test func redisLoadsTallyListsAndTallyReadsThemBack() throws {
        let directory = freshDirectory("lists-out")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lists = sampleLists()
        try atomicReplace(PosixStorage(), directory: directory, name: "dump.rdb") { sink in
            var writer = RDBWriter(sink: sink)
            try writer.writeHeader()
            try writer.beginDatabase(0, keyCount: lists.count, expiringKeyCount: 0)
            for (name, elements) in lists { try writer.writeEntry(key: key(name), entry: listEntry(elements)) }
            sink = try writer.finish()
        }
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0 && check.output.contains("RDB looks OK"), "redis-check-rdb: \(check.output)")
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        for (name, elements) in lists {
            #expect(try redis.cli("LLEN", name) == "\(elements.count)\n", "\(name)")
            // redis-cli prints an empty bulk string as an empty line too.
            #expect(try redisList(redis, name) == cliText(elements), "\(name)")
        }
        #expect(try redis.cli("LINDEX", "large", "-1") == "19999\n")
        #expect(try redis.cli("LPOS", "ints", "-8388608") == "11\n")
        #expect(try redis.cli("TYPE", "big") == "list\n")
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        for (name, elements) in lists { #expect(listElements(loaded[key(name)]?.value) == elements, "\(name)") }
    }

    @Test func tallyReadsRedisLists() throws {
        let directory = freshDirectory("lists-in")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        _ = try redis.cli("EVAL", "for i=1,30000 do redis.call('RPUSH', KEYS[1], i) end", "1", "large")
        _ = try redis.cli("EVAL", "for i=1,300 do redis.call('LPUSH', KEYS[1], 'element-' .. i) end", "1", "small")
        _ = try redis.cli("RPUSH", "big", "a", String(repeating: "z", count: 10_000), "b")
        _ = try redis.cli("RPUSH", "ints", "-1", "300", "-70000", "70000", "9000000000", "007")
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        #expect(listElements(loaded[key("large")]?.value) == (1...30_000).map { bytes("\($0)") })
        #expect(listElements(loaded[key("small")]?.value) == (1...300).reversed().map { bytes("element-\($0)") })
        #expect(listElements(loaded[key("big")]?.value) == [bytes("a"), bytes(String(repeating: "z", count: 10_000)),
                                                             bytes("b")])
        #expect(listElements(loaded[key("ints")]?.value)
            == ["-1", "300", "-70000", "70000", "9000000000", "007"].map(bytes))
    }
}
