// StreamPersistenceTests: streams through RDB type 19 (both ways with redis-server) and the AOF rewrite.
import Foundation
import Testing
import TallyKeyspace
import TallyPersistence
import TallyProtocol
import TallyTestSupport

/// A stream built through the commands: several nodes, a deleted entry, differing fields, two
/// groups with pending entries, an idle consumer; and an empty stream with a group.
func sampleStreams() -> [(String, Entry)] {
    let h = CommandHarness()
    for index in 1...250 { h.run("XADD", "s", "\(index)-1", "f", "v\(index)", "n", "\(index)") }
    h.run("XADD", "s", "300-1", "other", String(repeating: "x", count: 300))
    h.run("XDEL", "s", "5-1")
    h.run("XGROUP", "CREATE", "s", "g", "0")
    h.run("XREADGROUP", "GROUP", "g", "alice", "COUNT", "3", "STREAMS", "s", ">")
    h.run("XREADGROUP", "GROUP", "g", "bob", "COUNT", "2", "STREAMS", "s", ">")
    h.run("XGROUP", "CREATECONSUMER", "s", "g", "carol")
    h.run("XGROUP", "CREATE", "s", "g2", "$", "ENTRIESREAD", "3")
    h.run("XGROUP", "CREATE", "empty", "g", "7-7", "MKSTREAM")
    let shard = { (name: String) in h.engine.keyspace.shard(for: key(name)) }
    let now = h.clock.nowMilliseconds()
    return ["s", "empty"].map { ($0, shard($0).lookup(0, key($0), now: now)!) }
}

@Suite struct StreamRDBTests {
    @Test func roundTripsByteForByte() throws {
        let streams = sampleStreams()
        let file = try makeRDB([0: streams.map { (key($0.0), $0.1) }])
        let (loaded, result) = try readRDB(file)
        #expect(result.keysLoaded == 2)
        let again = try makeRDB([0: streams.map { (key($0.0), loaded[0]![key($0.0)]!) }])
        #expect(again == file)
        guard case .stream(let stream)? = loaded[0]?[key("s")]?.value else {
            Issue.record("not a stream")
            return
        }
        #expect(stream.length == 250)
        #expect(stream.nodes.count == 3)
        #expect(stream.groups.map { String(decoding: $0.name, as: UTF8.self) } == ["g", "g2"])
        #expect(stream.groups[0].pendingIDs.count == 5)
        #expect(stream.groups[0].consumers.map(\.pending.count) == [3, 2, 0])
    }

    @Test func rewriteEmitsXADDXSETIDAndGroups() throws {
        let streams = sampleStreams()
        var sink = MemorySink()
        try writeRESPBase({ visit in try visit(0, bytes("empty"), streams[1].1) }, into: &sink)
        var expected: [UInt8] = []
        RESPRecord.appendSelect(0, to: &expected)
        RESPRecord.append(["XADD", "empty", "MAXLEN", "0", "0-1", "x", "y"].map(bytes), to: &expected)
        RESPRecord.append(["XSETID", "empty", "0-0", "ENTRIESADDED", "0", "MAXDELETEDID", "0-0"].map(bytes),
                          to: &expected)
        RESPRecord.append(["XGROUP", "CREATE", "empty", "g", "7-7", "ENTRIESREAD", "-1"].map(bytes), to: &expected)
        #expect(sink.bytes == expected)
    }
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct StreamRDBInteropTests {
    @Test func redisLoadsTallyStreamsAndTallyReadsItsDump() throws {
        let directory = freshDirectory("streams-out")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let streams = sampleStreams()
        try atomicReplace(PosixStorage(), directory: directory, name: "dump.rdb") { sink in
            var writer = RDBWriter(sink: sink)
            try writer.writeHeader()
            try writer.beginDatabase(0, keyCount: streams.count, expiringKeyCount: 0)
            for (name, entry) in streams { try writer.writeEntry(key: key(name), entry: entry) }
            sink = try writer.finish()
        }
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0 && check.output.contains("RDB looks OK"), "redis-check-rdb: \(check.output)")
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        #expect(try redis.cli("XLEN", "s") == "250\n")
        #expect(try redis.cli("XRANGE", "s", "4-1", "6-1") == "4-1\nf\nv4\nn\n4\n6-1\nf\nv6\nn\n6\n")
        #expect(try redis.cli("XPENDING", "s", "g") == "5\n1-1\n6-1\nalice\n3\nbob\n2\n")
        #expect(try redis.cli("XINFO", "STREAM", "s").contains("radix-tree-keys\n3\n"))
        #expect(try redis.cli("XINFO", "GROUPS", "empty") == "name\ng\nconsumers\n0\npending\n0\n"
            + "last-delivered-id\n7-7\nentries-read\n\nlag\n0\n")
        _ = try redis.cli("XADD", "s", "400-1", "f", "new")
        #expect(try redis.cli("SAVE") == "OK\n")
        var loaded: [Key: Entry] = [:]
        _ = try loadRDBFile(PosixStorage(), path: directory + "/dump.rdb") { _, key, entry in loaded[key] = entry }
        guard case .stream(let stream)? = loaded[key("s")]?.value else {
            Issue.record("not a stream")
            return
        }
        #expect(stream.length == 251)
        #expect(stream.lastID == StreamID(400, 1))
        #expect(stream.groups[0].pendingIDs.count == 5)
    }
}
