// SetPersistenceTests: sets through RDB (types 2 and 11), redis-server both ways, AOF rewrite.
import Foundation
import Testing
import TallyKeyspace
import TallyPersistence
import TallyProtocol
import TallyTestSupport

/// Sets covering each intset width, the conversion limit, and hash table sets.
func sampleSets() -> [(String, [[UInt8]])] {
    let narrow = ["0", "-1", "32767", "-32768"].map(bytes)
    let medium = ["5", "70000", "-70000", "2147483647"].map(bytes)
    let wide = ["9223372036854775807", "-9223372036854775808", "1", "5000000000"].map(bytes)
    let limit = (0..<512).map { bytes("\($0 * 3)") }
    let over = (0..<513).map { bytes("\($0)") }
    let strings = ["a", "007", "", String(repeating: "x", count: 300), "12"].map(bytes)
    let large = (0..<20_000).map { bytes("member:\($0)") }
    return [("narrow", narrow), ("medium", medium), ("wide", wide), ("limit", limit), ("over", over),
            ("strings", strings), ("large", large)]
}

func setEntry(_ members: [[UInt8]]) -> Entry {
    var set = SetValue()
    for member in members { set.insert(member) }
    return Entry(value: .set(set))
}

func setMembers(_ value: Value?) -> Set<[UInt8]>? {
    guard case .set(let set)? = value else { return nil }
    return Set(set.members)
}

func setEncoding(_ value: Value?) -> String? {
    guard case .set(let set)? = value else { return nil }
    return set.encodingName
}

@Suite struct SetRDBTests {
    @Test func roundTripsBothEncodings() throws {
        let sets = sampleSets()
        let file = try makeRDB([0: sets.map { (key($0.0), setEntry($0.1)) }])
        let (loaded, result) = try readRDB(file)
        #expect(result.keysLoaded == sets.count)
        for (name, members) in sets {
            #expect(setMembers(loaded[0]?[key(name)]?.value) == Set(members), "\(name)")
            #expect(setEncoding(loaded[0]?[key(name)]?.value) == setEncoding(setEntry(members).value), "\(name)")
        }
        #expect(setEncoding(loaded[0]?[key("limit")]?.value) == "intset")
        #expect(setEncoding(loaded[0]?[key("over")]?.value) == "hashtable")
    }

    /// A hand-built type 11 value: a 16-bit intset of 1, 2, 3 (Redis's exact blob).
    @Test func readsAnIntsetBlob() throws {
        let blob: [UInt8] = [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]
        var file = bytes("REDIS0010") + [0xFE, 0x00]
        file += [0x0B, 0x01] + bytes("s") + [UInt8(blob.count)] + blob
        file += [0xFF] + [UInt8](repeating: 0, count: 8)
        let (loaded, _) = try readRDB(file)
        #expect(setMembers(loaded[0]?[key("s")]?.value) == Set(["1", "2", "3"].map(bytes)))
        var unsorted = file
        unsorted[unsorted.count - 9 - 2] = 0
        #expect(throws: RDBError.self) { try readRDB(unsorted) }
    }

    @Test func writesTheIntsetBlobAsRedisDoes() throws {
        let file = try makeRDB([0: [(key("s"), setEntry(["3", "1", "2"].map(bytes)))]])
        let blob: [UInt8] = [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]
        let expected: [UInt8] = [0x0B, 0x01] + bytes("s") + [UInt8(blob.count)] + blob
        #expect(file.firstRange(of: expected) != nil)
    }

    @Test func rewritesAsSADDOf64Members() throws {
        let members = (0..<130).map { bytes("e\($0)") }
        let entry = setEntry(members)
        var sink = MemorySink()
        try writeRESPBase({ visit in try visit(0, bytes("s"), entry) }, into: &sink)
        guard case .set(let set) = entry.value else { return }
        let ordered = set.members
        var expected: [UInt8] = []
        RESPRecord.appendSelect(0, to: &expected)
        for range in [0..<64, 64..<128, 128..<130] {
            RESPRecord.append([bytes("SADD"), bytes("s")] + Array(ordered[range]), to: &expected)
        }
        #expect(sink.bytes == expected)
    }
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct SetRDBInteropTests {
    func readDump(_ path: String) throws -> [Key: Entry] {
        var loaded: [Key: Entry] = [:]
        _ = try loadRDBFile(PosixStorage(), path: path) { _, key, entry in loaded[key] = entry }
        return loaded
    }

    func cliSet(_ redis: RedisProcess, _ name: String) throws -> Set<String> {
        Set(try redis.cli("SMEMBERS", name).split(separator: "\n", omittingEmptySubsequences: false)
            .dropLast().map(String.init))
    }

    @Test func redisLoadsTallySetsAndTallyReadsThemBack() throws {
        let directory = freshDirectory("sets-out")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sets = sampleSets()
        try atomicReplace(PosixStorage(), directory: directory, name: "dump.rdb") { sink in
            var writer = RDBWriter(sink: sink)
            try writer.writeHeader()
            try writer.beginDatabase(0, keyCount: sets.count, expiringKeyCount: 0)
            for (name, members) in sets { try writer.writeEntry(key: key(name), entry: setEntry(members)) }
            sink = try writer.finish()
        }
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0 && check.output.contains("RDB looks OK"), "redis-check-rdb: \(check.output)")
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        for (name, members) in sets {
            #expect(try redis.cli("SCARD", name) == "\(members.count)\n", "\(name)")
            #expect(try cliSet(redis, name) == Set(members.map { String(decoding: $0, as: UTF8.self) }), "\(name)")
            let encoding = setEncoding(setEntry(members).value) ?? ""
            #expect(try redis.cli("OBJECT", "ENCODING", name) == encoding + "\n", "\(name)")
        }
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        for (name, members) in sets { #expect(setMembers(loaded[key(name)]?.value) == Set(members), "\(name)") }
    }

    @Test func tallyReadsRedisSets() throws {
        let directory = freshDirectory("sets-in")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        _ = try redis.cli("EVAL", "for i=1,30000 do redis.call('SADD', KEYS[1], i) end", "1", "large")
        _ = try redis.cli("EVAL", "for i=1,300 do redis.call('SADD', KEYS[1], 'm-' .. i) end", "1", "small")
        _ = try redis.cli("SADD", "ints", "-1", "300", "-70000", "70000", "9000000000")
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        #expect(setMembers(loaded[key("large")]?.value) == Set((1...30_000).map { bytes("\($0)") }))
        #expect(setMembers(loaded[key("small")]?.value) == Set((1...300).map { bytes("m-\($0)") }))
        #expect(setMembers(loaded[key("ints")]?.value)
            == Set(["-1", "300", "-70000", "70000", "9000000000"].map(bytes)))
        #expect(setEncoding(loaded[key("ints")]?.value) == "intset")
        #expect(setEncoding(loaded[key("large")]?.value) == "hashtable")
    }
}
