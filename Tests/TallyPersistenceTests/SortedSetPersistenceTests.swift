// SortedSetPersistenceTests: sorted sets through RDB (ZSET_LISTPACK 17 and ZSET_2 5 written; 3 and 12 read),
// redis-server both ways, redis-check-rdb, and the AOF rewrite's ZADD batches.
import Foundation
import Testing
import TallyKeyspace
import TallyPersistence
import TallyProtocol
import TallyTestSupport

/// A sorted set holding `pairs`, in the form Redis would give it.
func sortedSet(_ pairs: [(String, Double)]) -> SortedSetValue {
    var set = SortedSetValue()
    for (member, score) in pairs { set.insert(Array(member.utf8), score: score, limits: .standard) }
    return set
}

/// (member, score) pairs in order, or nil for another value.
func sortedPairs(_ value: Value?) -> [String]? {
    guard case .sortedSet(let set)? = value else { return nil }
    var pairs: [String] = []
    set.forEach { member, score in
        let text = String(decoding: formatScore(score), as: UTF8.self)
        pairs.append(String(decoding: member, as: UTF8.self) + "=" + text)
    }
    return pairs
}

/// Small (compact), large (indexed), long-member (indexed) and odd-score sets.
func sampleSortedSets() -> [(String, SortedSetValue)] {
    let odd: [(String, Double)] = [("inf", .infinity), ("ninf", -.infinity), ("tenth", 0.1), ("big", 1e300),
                                   ("int", 123_456), ("neg", -17.25), ("huge", 9.007199254740993e15),
                                   ("tiny", 5e-324)]
    let large = (0..<3000).map { ("member:\($0)", Double($0 % 97) * 1.5) }
    let long = [(String(repeating: "x", count: 100), 1.0), ("short", 2.0)]
    return [("odd", sortedSet(odd)), ("large", sortedSet(large)), ("long", sortedSet(long)),
            ("one", sortedSet([("a", 1)]))]
}

@Suite struct SortedSetRDBTests {
    @Test func roundTripsBothForms() throws {
        let sets = sampleSortedSets()
        #expect(sets[0].1.isCompact && !sets[1].1.isCompact && !sets[2].1.isCompact)
        let file = try makeRDB([0: sets.map { (key($0.0), Entry(value: .sortedSet($0.1))) }])
        let (loaded, result) = try readRDB(file)
        #expect(result.keysLoaded == sets.count)
        for (name, set) in sets {
            #expect(sortedPairs(loaded[0]?[key(name)]?.value) == sortedPairs(.sortedSet(set)), "\(name)")
            guard case .sortedSet(let back)? = loaded[0]?[key(name)]?.value else { continue }
            #expect(back.isCompact == set.isCompact, "\(name)")
        }
    }

    /// Type 3 (scores as text, 253/254/255 for nan/inf/-inf) as Redis before 2.8 wrote it.
    @Test func readsTextScores() throws {
        var file = bytes("REDIS0006") + [0xFE, 0x00]
        file += [0x03, 0x01] + bytes("z") + [0x03]
        file += [0x01] + bytes("a") + [0x03] + bytes("1.5")
        file += [0x01] + bytes("b") + [0xFE]
        file += [0x01] + bytes("c") + [0xFF]
        file += [0xFF] + [UInt8](repeating: 0, count: 8)
        let (loaded, _) = try readRDB(file)
        #expect(sortedPairs(loaded[0]?[key("z")]?.value) == ["c=-inf", "a=1.5", "b=inf"])
    }

    @Test func rewritesAsZADDOf64Pairs() throws {
        let pairs = (0..<130).map { ("m\($0)", Double($0) + 0.5) }
        let entry = Entry(value: .sortedSet(sortedSet(pairs)))
        var sink = MemorySink()
        try writeRESPBase({ visit in try visit(0, bytes("z"), entry) }, into: &sink)
        var expected: [UInt8] = []
        RESPRecord.appendSelect(0, to: &expected)
        var ordered: [(String, Double)] = []
        sortedSet(pairs).forEach { member, score in ordered.append((String(decoding: member, as: UTF8.self), score)) }
        for range in [0..<64, 64..<128, 128..<130] {
            RESPRecord.append([bytes("ZADD"), bytes("z")] + ordered[range].flatMap { [formatScore($0.1), bytes($0.0)] },
                              to: &expected)
        }
        #expect(sink.bytes == expected)
    }
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct SortedSetRDBInteropTests {
    func readDump(_ path: String) throws -> [Key: Entry] {
        var loaded: [Key: Entry] = [:]
        _ = try loadRDBFile(PosixStorage(), path: path) { _, key, entry in loaded[key] = entry }
        return loaded
    }

    @Test func redisLoadsTallySortedSetsAndTallyReadsThemBack() throws {
        let directory = freshDirectory("zsets-out")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sets = sampleSortedSets()
        try atomicReplace(PosixStorage(), directory: directory, name: "dump.rdb") { sink in
            var writer = RDBWriter(sink: sink)
            try writer.writeHeader()
            try writer.beginDatabase(0, keyCount: sets.count, expiringKeyCount: 0)
            for (name, set) in sets { try writer.writeEntry(key: key(name), entry: Entry(value: .sortedSet(set))) }
            sink = try writer.finish()
        }
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0 && check.output.contains("RDB looks OK"), "redis-check-rdb: \(check.output)")
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        for (name, set) in sets {
            #expect(try redis.cli("ZCARD", name) == "\(set.count)\n", "\(name)")
            #expect(try redis.cli("OBJECT", "ENCODING", name) == (set.isCompact ? "listpack\n" : "skiplist\n"))
        }
        #expect(try redis.cli("ZSCORE", "odd", "tenth") == "0.10000000000000001\n")
        #expect(try redis.cli("ZSCORE", "odd", "ninf") == "-inf\n")
        #expect(try redis.cli("ZSCORE", "odd", "tiny") == "4.9406564584124654e-324\n")
        #expect(try redis.cli("ZRANGE", "large", "0", "0") == "member:0\n")
        let rank = sets[1].1.rank(of: Array("member:96".utf8))?.rank ?? -1
        #expect(try redis.cli("ZRANK", "large", "member:96") == "\(rank)\n")
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        for (name, set) in sets {
            #expect(sortedPairs(loaded[key(name)]?.value) == sortedPairs(.sortedSet(set)), "\(name)")
        }
    }

    @Test func tallyReadsRedisSortedSets() throws {
        let directory = freshDirectory("zsets-in")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        _ = try redis.cli("EVAL", "for i=1,500 do redis.call('ZADD', KEYS[1], i * 0.5, 'm' .. i) end", "1", "large")
        _ = try redis.cli("ZADD", "small", "1", "a", "-inf", "b", "3.25", "c", "1e20", "d")
        #expect(try redis.cli("SAVE") == "OK\n")
        let loaded = try readDump(directory + "/dump.rdb")
        #expect(sortedPairs(loaded[key("small")]?.value) == ["b=-inf", "a=1", "c=3.25", "d=1e+20"])
        #expect(sortedPairs(loaded[key("large")]?.value)?.count == 500)
        #expect(sortedPairs(loaded[key("large")]?.value)?.last == "m500=250")
        guard case .sortedSet(let large)? = loaded[key("large")]?.value,
              case .sortedSet(let small)? = loaded[key("small")]?.value else { return }
        #expect(!large.isCompact && small.isCompact)
    }
}
