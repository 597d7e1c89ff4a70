// SnapshotUnderLoadTests: a snapshot taken while writers run is written as of its instant, and Redis loads it.
import Dispatch
import Foundation
import Synchronization
import Testing
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

/// A keyspace with writers hammering every shard, and the exact state at a snapshot's instant.
final class LoadedKeyspace: @unchecked Sendable {
    // @unchecked: `expected` is written once before the writers see the object.
    let keyspace = Keyspace(databases: 4, shards: 64)
    let stop = Atomic<Bool>(false)
    let operations = Atomic<Int>(0)
    let writers = DispatchGroup()
    var expected: [Int: [Key: Entry]] = [:]

    init(keys: Int) {
        for index in 0..<keys {
            let database = index % 3 == 0 ? 1 : 0
            let entry: Entry
            switch index % 10 {
            case 0: entry = Entry(value: .integer(Int64(index)), expiresAtMilliseconds: 4_000_000_000_000)
            case 1: entry = Entry(value: .string(Array("text-\(index)-".utf8) + Array(repeating: 120, count: 30)))
            case 2:
                var fields = HashValue()
                fields.set(field: Array("f".utf8), value: Array("\(index)".utf8))
                entry = Entry(value: .hash(fields))
            default: entry = Entry(value: .integer(Int64(index)))
            }
            keyspace.insertLoaded(database: database, key: Key(Array("key:\(index)".utf8)), entry: entry)
        }
    }

    /// Writers: INCR existing keys, create keys that did not exist, delete some, change TTLs.
    func startWriters(count: Int, keys: Int) {
        for writer in 0..<count {
            writers.enter()
            runOnOwnThread { [self] in
                defer { writers.leave() }
                var round = 0
                while !stop.load(ordering: .relaxed) {
                    round += 1
                    let index = (round &* 7919 &+ writer &* 104_729) % keys
                    let database = index % 3 == 0 ? 1 : 0
                    let key = Key(Array("key:\(index)".utf8))
                    let shard = keyspace.shard(for: key)
                    shard.lock()
                    switch round % 4 {
                    case 0:
                        let fresh = Key(Array("new:\(writer):\(round)".utf8))
                        let other = keyspace.shard(for: fresh)
                        shard.unlock()
                        other.lock()
                        other.store(database, fresh, Entry(value: .integer(Int64(round))))
                        other.unlock()
                        shard.lock()
                    case 1: shard.remove(database, key)
                    case 2: shard.setExpiry(database, key, 4_100_000_000_000)
                    default: _ = try? shard.incrementBy(database, key, delta: 1, now: 0)
                    }
                    shard.unlock()
                    operations.add(1, ordering: .relaxed)
                }
            }
        }
    }

    /// Takes a serializing snapshot with the writers running; records the state at that instant.
    func snapshotNow(options: RDBWriterOptions) -> KeyspaceImage {
        let locked = keyspace.lockExclusive()
        var state: [Int: [Key: Entry]] = [:]
        for shard in keyspace.shards {
            for database in 0..<keyspace.databaseCount {
                for (key, entry) in shard.tables[database] { state[database, default: [:]][key] = entry }
            }
        }
        let snapshot = keyspace.image(serializer: rdbShardSerializer(options: options))
        keyspace.unlockExclusive(locked)
        expected = state
        return snapshot
    }

    func stopWriters() {
        stop.store(true, ordering: .relaxed)
        writers.wait()
    }
}

/// Compares a loaded dump with the state at the snapshot instant, entry by entry.
func expectSameState(_ loaded: [Int: [Key: Entry]], _ expected: [Int: [Key: Entry]]) {
    #expect(Set(loaded.keys) == Set(expected.keys.filter { !(expected[$0]?.isEmpty ?? true) }))
    for (database, table) in expected {
        let got = loaded[database] ?? [:]
        #expect(got.count == table.count, "db \(database): \(got.count) keys loaded, \(table.count) at the instant")
        var mismatches = 0
        for (key, entry) in table {
            guard let other = got[key], sameValue(other.value, entry.value),
                  other.expiresAtMilliseconds == entry.expiresAtMilliseconds else {
                mismatches += 1
                continue
            }
        }
        #expect(mismatches == 0, "db \(database): \(mismatches) entries differ from the snapshot instant")
    }
}

@Suite(.serialized) struct SnapshotUnderLoadTests {
    @Test func dumpEqualsTheStateAtTheSnapshotInstantWhileWritersRun() throws {
        let keys = 40_000
        let load = LoadedKeyspace(keys: keys)
        load.startWriters(count: 4, keys: keys)
        usleep(50_000)
        let options = RDBWriterOptions()
        let snapshot = load.snapshotNow(options: options)
        // Let the writers reach every shard first, so most images are serialized by writers.
        let before = load.operations.load(ordering: .relaxed)
        for _ in 0..<500 where load.operations.load(ordering: .relaxed) - before < 5000 { usleep(10_000) }
        #expect(load.operations.load(ordering: .relaxed) - before >= 5000, "the writers barely ran")
        let disk = SimulatedDisk()
        disk.installDirectory("data")
        try saveSnapshot(snapshot, storage: disk, directory: "data", fileName: "dump.rdb", options: options)
        load.stopWriters()
        var loaded: [Int: [Key: Entry]] = [:]
        let result = try loadRDBFile(disk, path: "data/dump.rdb", options: RDBLoadOptions(), chunkBytes: 65536) {
            database, key, entry in
            #expect(loaded[database]?[key] == nil, "duplicate key in the dump")
            loaded[database, default: [:]][key] = entry
        }
        #expect(result.keysLoaded == load.expected.values.reduce(0) { $0 + $1.count })
        expectSameState(loaded, load.expected)
        // Keys created after the instant are live but absent from the dump.
        func created(_ keys: [Key]) -> Int {
            keys.filter { $0.bytes.starts(with: Array("new:".utf8)) }.count
        }
        let live = load.keyspace.shards.reduce(0) { $0 + created($1.tables[0].keys) + created($1.tables[1].keys) }
        let dumped = loaded.values.reduce(0) { $0 + created(Array($1.keys)) }
        #expect(live > dumped, "no key was created after the instant")
    }

    @Test func laterSnapshotAndFlushDuringPendingImagesKeepEachInstant() throws {
        let load = LoadedKeyspace(keys: 5_000)
        let options = RDBWriterOptions()
        let first = load.snapshotNow(options: options)
        let firstState = load.expected
        // A write serializes its shard's image; a second snapshot serializes the rest of the
        // first's; a flush detaches without serializing.
        let probe = Key(Array("key:1".utf8))
        let shard = load.keyspace.shard(for: probe)
        shard.lock()
        shard.store(0, probe, Entry(value: .integer(-1)))
        shard.unlock()
        let second = load.snapshotNow(options: options)
        let secondState = load.expected
        load.keyspace.removeAll()
        let disk = SimulatedDisk()
        disk.installDirectory("data")
        for (name, snapshot, state) in [("a.rdb", first, firstState), ("b.rdb", second, secondState)] {
            try saveSnapshot(snapshot, storage: disk, directory: "data", fileName: name, options: options)
            var loaded: [Int: [Key: Entry]] = [:]
            _ = try loadRDBFile(disk, path: "data/" + name, options: RDBLoadOptions(), chunkBytes: 65536) {
                database, key, entry in loaded[database, default: [:]][key] = entry
            }
            expectSameState(loaded, state)
        }
    }
}

/// The state of every database of `keyspace` (caller holds every shard or nothing runs).
func stateOf(_ keyspace: Keyspace) -> [Int: [Key: Entry]] {
    var state: [Int: [Key: Entry]] = [:]
    for shard in keyspace.shards {
        for database in 0..<keyspace.databaseCount {
            for (key, entry) in shard.tables[database] { state[database, default: [:]][key] = entry }
        }
    }
    return state
}

/// Saves `snapshot` to a simulated disk and loads it back, checking no key appears twice.
func savedAndLoaded(_ snapshot: KeyspaceImage, options: RDBWriterOptions) throws -> [Int: [Key: Entry]] {
    let disk = SimulatedDisk()
    disk.installDirectory("data")
    try saveSnapshot(snapshot, storage: disk, directory: "data", fileName: "dump.rdb", options: options)
    var loaded: [Int: [Key: Entry]] = [:]
    _ = try loadRDBFile(disk, path: "data/dump.rdb", options: RDBLoadOptions(), chunkBytes: 65536) {
        database, key, entry in
        #expect(loaded[database]?[key] == nil, "duplicate key in the dump")
        loaded[database, default: [:]][key] = entry
    }
    return loaded
}

/// Large shards, so each table's image spans many pages and a writer captures one page, not the
/// table: every way a table changes under a pending image leaves the dump at the instant.
@Suite(.serialized) struct PagedSnapshotTests {
    static let keys = 60_000

    /// Two shards of about 30,000 keys a database: dozens of pages per table.
    func loaded() -> Keyspace {
        let keyspace = Keyspace(databases: 4, shards: 2)
        for index in 0..<Self.keys {
            let entry: Entry
            switch index % 5 {
            case 0: entry = Entry(value: .integer(Int64(index)), expiresAtMilliseconds: 4_000_000_000_000)
            case 1: entry = Entry(value: .string(Array("long text value \(index) ".utf8) + Array(repeating: 46, count: 40)))
            case 2:
                var fields = HashValue()
                fields.set(field: Array("f".utf8), value: Array("\(index)".utf8))
                entry = Entry(value: .hash(fields))
            default: entry = Entry(value: .integer(Int64(index)))
            }
            keyspace.insertLoaded(database: index % 2, key: Key(Array("key:\(index)".utf8)), entry: entry)
        }
        return keyspace
    }

    func withShard(of key: Key, in keyspace: Keyspace, _ body: (Shard) -> Void) {
        let shard = keyspace.shard(for: key)
        shard.lock()
        body(shard)
        shard.unlock()
    }

    @Test func writesGrowthFlushAndSwapAfterTheInstantStayOutOfTheDump() throws {
        let keyspace = loaded()
        let options = RDBWriterOptions()
        let locked = keyspace.lockExclusive()
        let expected = stateOf(keyspace)
        let snapshot = keyspace.image(serializer: rdbShardSerializer(options: options))
        keyspace.unlockExclusive(locked)
        // Point writes on some pages: a counter, a value replaced, a TTL, a removal, a hash edit.
        for index in stride(from: 0, to: Self.keys, by: 997) {
            let key = Key(Array("key:\(index)".utf8))
            withShard(of: key, in: keyspace) { shard in
                switch index % 5 {
                case 0: _ = shard.setExpiry(index % 2, key, nil)
                case 1: _ = shard.remove(index % 2, key)
                case 2: shard.store(index % 2, key, Entry(value: .string(Array("replaced".utf8))))
                default: _ = try? shard.incrementBy(index % 2, key, delta: 1_000_000, now: 0)
                }
            }
        }
        // Growth: new keys until database 0 of every shard has rehashed at least once.
        for index in 0..<(Self.keys / 2) {
            let key = Key(Array("grown:\(index)".utf8))
            withShard(of: key, in: keyspace) { $0.store(0, key, Entry(value: .integer(Int64(index)))) }
        }
        // Database 1 swapped into 3, then database 3 (the old 1) flushed; database 0 shrunk.
        for shard in keyspace.shards {
            shard.lock()
            shard.swapDatabases(1, 3, now: 0)
            shard.removeAll(3)
            shard.shrinkSparseTables()
            shard.unlock()
        }
        let loaded = try savedAndLoaded(snapshot, options: options)
        expectSameState(loaded, expected)
    }

    @Test func aCopyingSnapshotBesideAPagedOneKeepsBothInstants() throws {
        let keyspace = loaded()
        let options = RDBWriterOptions()
        let locked = keyspace.lockExclusive()
        let expected = stateOf(keyspace)
        let paged = keyspace.image(serializer: rdbShardSerializer(options: options))
        let copying = keyspace.image()
        keyspace.unlockExclusive(locked)
        // The first write to each shared table copies it away from both snapshots.
        for index in stride(from: 0, to: Self.keys, by: 13) {
            let key = Key(Array("key:\(index)".utf8))
            withShard(of: key, in: keyspace) { _ = $0.remove(index % 2, key) }
        }
        for database in 0..<2 {
            var copied = 0
            copying.forEachEntry(database: database) { key, entry in
                #expect(expected[database]?[key].map { sameValue($0.value, entry.value) } == true)
                copied += 1
            }
            #expect(copied == expected[database]?.count)
        }
        expectSameState(try savedAndLoaded(paged, options: options), expected)
    }

    /// The RESP base of a rewrite without an RDB preamble is taken page by page too.
    @Test func aRESPBaseWrittenUnderWritesHoldsTheInstant() throws {
        let keyspace = loaded()
        let locked = keyspace.lockExclusive()
        let expected = stateOf(keyspace)
        let snapshot = keyspace.image(serializer: respShardSerializer())
        keyspace.unlockExclusive(locked)
        for index in stride(from: 0, to: Self.keys, by: 7) {
            let key = Key(Array("key:\(index)".utf8))
            withShard(of: key, in: keyspace) { shard in
                if index % 2 == 0 {
                    _ = shard.remove(0, key)
                } else {
                    _ = shard.setExpiry(1, key, 4_500_000_000_000)
                }
            }
        }
        for index in 0..<(Self.keys / 2) {
            let key = Key(Array("grown:\(index)".utf8))
            withShard(of: key, in: keyspace) { $0.store(1, key, Entry(value: .integer(1))) }
        }
        var sink = MemorySink()
        try writeRESPBase(snapshot, into: &sink)
        // Replays the base's commands (SELECT, SET, HSET, PEXPIREAT: what this dataset needs).
        var replayed: [Int: [Key: Entry]] = [:]
        var database = 0
        for command in parseRESPCommands(sink.bytes) {
            let name = String(decoding: command[0], as: UTF8.self)
            if name == "SELECT" { database = Int(String(decoding: command[1], as: UTF8.self))!; continue }
            let key = Key(command[1])
            switch name {
            case "SET":
                let text = String(decoding: command[2], as: UTF8.self)
                let value: Value = Int64(text).map { .integer($0) } ?? .string(command[2])
                replayed[database, default: [:]][key] = Entry(value: value)
            case "HSET":
                var fields = HashValue()
                fields.set(field: command[2], value: command[3])
                replayed[database, default: [:]][key] = Entry(value: .hash(fields))
            case "PEXPIREAT":
                replayed[database]![key]!.expiresAtMilliseconds = Int64(String(decoding: command[2], as: UTF8.self))
            default: Issue.record("unexpected command \(name)")
            }
        }
        expectSameState(replayed, expected)
    }

    @Test func concurrentWritersOnManyPagesLeaveTheInstant() throws {
        let keyspace = loaded()
        let stop = Atomic<Bool>(false)
        let writes = Atomic<Int>(0)
        let writers = DispatchGroup()
        for writer in 0..<3 {
            writers.enter()
            runOnOwnThread {
                defer { writers.leave() }
                var round = writer
                while !stop.load(ordering: .relaxed) {
                    round += 3
                    let index = (round &* 7919) % Self.keys
                    let key = Key(Array(((round % 7 == 0) ? "fresh:\(round)" : "key:\(index)").utf8))
                    let shard = keyspace.shard(for: key)
                    shard.lock()
                    switch round % 7 {
                    case 0: shard.store(0, key, Entry(value: .integer(Int64(round))))
                    case 1: _ = shard.remove(index % 2, key)
                    default: _ = try? shard.incrementBy(index % 2, key, delta: 1, now: 0)
                    }
                    shard.unlock()
                    writes.add(1, ordering: .relaxed)
                }
            }
        }
        usleep(20_000)
        let options = RDBWriterOptions()
        let locked = keyspace.lockExclusive()
        let expected = stateOf(keyspace)
        let snapshot = keyspace.image(serializer: rdbShardSerializer(options: options))
        keyspace.unlockExclusive(locked)
        let before = writes.load(ordering: .relaxed)
        for _ in 0..<500 where writes.load(ordering: .relaxed) - before < 20_000 { usleep(10_000) }
        let loaded = try savedAndLoaded(snapshot, options: options)
        stop.store(true, ordering: .relaxed)
        writers.wait()
        #expect(writes.load(ordering: .relaxed) - before >= 20_000, "the writers barely ran")
        expectSameState(loaded, expected)
    }
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct SnapshotUnderLoadInteropTests {
    @Test func redisLoadsADumpWrittenUnderConcurrentWrites() throws {
        let directory = freshDirectory("load")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keys = 30_000
        let load = LoadedKeyspace(keys: keys)
        load.startWriters(count: 4, keys: keys)
        usleep(50_000)
        let options = RDBWriterOptions()
        let snapshot = load.snapshotNow(options: options)
        let before = load.operations.load(ordering: .relaxed)
        for _ in 0..<500 where load.operations.load(ordering: .relaxed) - before < 5000 { usleep(10_000) }
        try saveSnapshot(snapshot, storage: PosixStorage(), directory: directory, fileName: "dump.rdb",
                         options: options)
        load.stopWriters()
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0, "redis-check-rdb: \(check.output)")
        #expect(check.output.contains("RDB looks OK"))
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        for database in 0..<2 {
            let count = load.expected[database]?.count ?? 0
            #expect(try redis.cli("-n", "\(database)", "DBSIZE") == "\(count)\n")
        }
        #expect(try redis.cli("-n", "1", "GET", "key:3").hasSuffix("\n"))
    }
}

/// The commands of a RESP stream (arrays of bulk strings, as an AOF holds them).
func parseRESPCommands(_ bytes: [UInt8]) -> [[[UInt8]]] {
    var commands: [[[UInt8]]] = []
    var position = 0
    func line() -> Int {
        var end = position
        while bytes[end] != 13 { end += 1 }
        let number = Int(String(decoding: bytes[(position + 1)..<end], as: UTF8.self))!
        position = end + 2
        return number
    }
    while position < bytes.count {
        let count = line()
        var command: [[UInt8]] = []
        for _ in 0..<count {
            let length = line()
            command.append(Array(bytes[position..<(position + length)]))
            position += length + 2
        }
        commands.append(command)
    }
    return commands
}
