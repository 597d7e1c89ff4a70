// ParallelReplayTests: an AOF replayed on several threads leaves exactly the dataset a one-thread replay leaves.
import Testing
import TallyCommands
import TallyProtocol
import TallyTestSupport
@testable import TallyServer

@Suite struct ParallelReplayTests {
    /// A deterministic pseudo-random log: single-shard writes of every type mixed with the
    /// commands that must stay in log order (MULTI..EXEC, keys on two shards, FLUSHDB, SWAPDB,
    /// MOVE, COPY), over a small key universe so commands keep hitting the same keys.
    static func log(commands: Int, seed: UInt64) -> [(arguments: [String], database: Int)] {
        var state = seed
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var log: [(arguments: [String], database: Int)] = []
        var database = 0
        while log.count < commands {
            if next(50) == 0 { database = next(3) }
            let k = "k\(next(40))"
            let other = "k\(next(40))"
            let number = String(next(1000) - 500)
            let arguments: [[String]]
            switch next(24) {
            case 0, 1: arguments = [["SET", k, number]]
            case 2, 3: arguments = [["INCRBY", k, number]]
            case 4: arguments = [["APPEND", k, "x\(number)"]]
            case 5: arguments = [["DEL", k]]
            case 6: arguments = [["HSET", "h" + k, "f\(next(5))", number]]
            case 7: arguments = [["HINCRBY", "h" + k, "n", number]]
            case 8: arguments = [["RPUSH", "l" + k, number, "v"]]
            case 9: arguments = [["LPOP", "l" + k]]
            case 10: arguments = [["ZADD", "z" + k, number, "m\(next(6))"]]
            case 11: arguments = [["ZINCRBY", "z" + k, "1.5", "m\(next(6))"]]
            case 12: arguments = [["SADD", "s" + k, "m\(next(8))"]]
            case 13: arguments = [["SREM", "s" + k, "m\(next(8))"]]
            case 14: arguments = [["PEXPIREAT", k, String(4_000_000_000_000 + next(1000))]]
            case 15: arguments = [["PERSIST", k]]
            case 16: arguments = [["RENAME", k, other]]
            case 17: arguments = [["MSET", k, number, other, "m"]]
            case 18: arguments = [["MULTI"], ["INCR", k], ["RPUSH", "l" + other, number], ["EXEC"]]
            case 19: arguments = [["COPY", k, other, "DB", String(next(3)), "REPLACE"]]
            case 20: arguments = [["MOVE", k, String(next(3))]]
            case 21: arguments = next(20) == 0 ? [["FLUSHDB"]] : [["SETRANGE", k, "2", "ab"]]
            case 22: arguments = next(20) == 0 ? [["SWAPDB", "0", String(next(3))]] : [["DECR", k]]
            default: arguments = [["LMOVE", "l" + k, "l" + other, "LEFT", "RIGHT"]]
            }
            for command in arguments { log.append((command, database)) }
        }
        return log
    }

    /// Replays `log` on `lanes` threads into a fresh engine; returns what every key holds.
    static func replayed(_ log: [(arguments: [String], database: Int)], lanes: Int) -> [String] {
        let harness = CommandHarness()
        let replay = ParallelReplay(engine: harness.engine, lanes: lanes)
        for (arguments, database) in log {
            let command = CommandArguments(arguments.map { Array($0.utf8) })
            let row = harness.engine.table.lookup(command[0])!
            replay.replay(command, row: row, database: database)
        }
        replay.finish()
        return contents(harness)
    }

    /// Each key of databases 0...2 with its type, value, and expiry time, sorted.
    static func contents(_ harness: CommandHarness) -> [String] {
        var lines: [String] = []
        for database in 0..<3 {
            harness.run("SELECT", String(database))
            let keys = harness.reply("KEYS", "*").split(separator: "\r\n").filter { !$0.hasPrefix("*") && !$0.hasPrefix("$") }
            for key in keys.map(String.init).sorted() {
                let type = harness.reply("TYPE", key)
                let value: String
                switch type {
                case "+string\r\n": value = harness.reply("GET", key)
                case "+hash\r\n": value = sortedLines(harness.reply("HGETALL", key))
                case "+list\r\n": value = harness.reply("LRANGE", key, "0", "-1")
                case "+zset\r\n": value = harness.reply("ZRANGE", key, "0", "-1", "WITHSCORES")
                default: value = sortedLines(harness.reply("SMEMBERS", key))
                }
                lines.append("\(database) \(key) \(type) \(value) \(harness.reply("PEXPIRETIME", key))")
            }
        }
        return lines
    }

    static func sortedLines(_ reply: String) -> String { reply.split(separator: "\r\n").sorted().joined(separator: ",") }

    @Test func severalLanesLeaveTheDatasetOneLaneLeaves() {
        let log = Self.log(commands: 20_000, seed: 7)
        let serial = Self.replayed(log, lanes: 1)
        #expect(serial.count > 40)
        for lanes in [2, 4, 8] {
            let parallel = Self.replayed(log, lanes: lanes)
            let differing = zip(parallel, serial).first { $0 != $1 }
            #expect(parallel.count == serial.count && differing == nil,
                    "lanes \(lanes): \(parallel.count) keys vs \(serial.count), first difference \(String(describing: differing))")
        }
    }

    @Test func theLoadingThreadKeepsAThirdOfTheShardsBesideOneWorker() {
        #expect(LoadLanes.owners(shards: 16, lanes: 1) == [Int](repeating: 0, count: 16))
        let two = LoadLanes.owners(shards: 16, lanes: 2)
        #expect(two.filter { $0 == 0 }.count == 5 && two.filter { $0 == 1 }.count == 11)
        let four = LoadLanes.owners(shards: 16, lanes: 4)
        #expect(four.filter { $0 == 0 }.count == 2 && Set(four) == [0, 1, 2, 3])
    }

    @Test func routingFollowsTheKeysShard() {
        let harness = CommandHarness()
        let engine = harness.engine
        func shard(_ words: String...) -> Int? {
            let command = CommandArguments(words.map { Array($0.utf8) })
            return engine.confinedShard(ofLogged: command, row: engine.table.lookup(command[0])!)
        }
        let keyShard = engine.keyspace.shardIndex(for: Array("counter:42".utf8))
        #expect(shard("SET", "counter:42", "1") == keyShard)
        #expect(shard("incrby", "counter:42", "1") == keyShard)
        #expect(shard("MSET", "counter:42", "1", "counter:42", "2") == keyShard)
        // Keys on two shards, keyless commands, parsed key positions, containers, reads: in order.
        let elsewhere = (0..<100).map { "key\($0)" }.first {
            engine.keyspace.shardIndex(for: Array($0.utf8)) != keyShard
        }!
        #expect(shard("RENAME", "counter:42", elsewhere) == nil)
        #expect(shard("MULTI") == nil)
        #expect(shard("FLUSHALL") == nil)
        #expect(shard("ZUNIONSTORE", "d", "1", "counter:42") == nil)
        #expect(shard("XGROUP", "CREATE", "counter:42", "g", "$") == nil)
        #expect(shard("GET", "counter:42") == nil)
        #expect(shard("SET") == nil)
    }
}
