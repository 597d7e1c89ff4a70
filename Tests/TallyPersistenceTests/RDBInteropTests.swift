// RDBInteropTests: Tally's dumps against real redis-check-rdb / redis-server 7.0, and Redis's dumps into Tally.
import Foundation
import Testing
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

/// Runs a program through the shell (popen), returning its exit status and combined output.
///
/// popen/pclose rather than Foundation's Process: Process left the daemonizing redis-server's
/// parent unreaped here and `waitUntilExit` never returned. With `captureOutput` false the
/// output goes to /dev/null, so a daemon that inherits it cannot hold the pipe open.
func runProgram(
    _ path: String, _ arguments: [String], captureOutput: Bool = true
) throws -> (status: Int32, output: String) {
    func quote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
    let command = ([path] + arguments).map(quote).joined(separator: " ")
        + (captureOutput ? " 2>&1" : " >/dev/null 2>&1")
    guard let stream = popen(command, "r") else { throw POSIXError(.EIO) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, stream)
        if count <= 0 { break }
        output += chunk[..<count]
    }
    let status = pclose(stream)
    return ((status >> 8) & 0xff, String(decoding: output, as: UTF8.self))
}

let redisServerPath = "/usr/bin/redis-server"
let redisCliPath = "/usr/bin/redis-cli"
let redisCheckRDBPath = "/usr/bin/redis-check-rdb"
let redisBinariesPresent = FileManager.default.isExecutableFile(atPath: redisServerPath)
    && FileManager.default.isExecutableFile(atPath: redisCliPath)
    && FileManager.default.isExecutableFile(atPath: redisCheckRDBPath)

/// A redis-server 7.0 on a free port, for one test.
final class RedisProcess {
    let port: Int
    let directory: String

    init(directory: String, dbfilename: String = "dump.rdb") throws {
        self.directory = directory
        // A random port can be taken between choosing and binding (other suites start servers
        // in parallel), so a bind failure retries on another port instead of failing the test.
        var lastLog = ""
        for _ in 0..<8 {
            let candidate = ServerProcess.freePort()
            if try Self.start(port: candidate, directory: directory, dbfilename: dbfilename, log: &lastLog) {
                port = candidate
                return
            }
            if !lastLog.contains("Address already in use") { break }
        }
        throw RedisStartFailure(log: lastLog)
    }

    /// Starts redis-server on `port`; true once it answers PING, false (with its log) otherwise.
    private static func start(port: Int, directory: String, dbfilename: String, log: inout String) throws -> Bool {
        let logPath = directory + "/redis-\(port).log"
        let started = try runProgram(redisServerPath, [
            "--port", "\(port)", "--dir", directory, "--dbfilename", dbfilename, "--appendonly", "no",
            "--save", "", "--daemonize", "yes", "--sanitize-dump-payload", "yes",
            "--logfile", logPath, "--pidfile", directory + "/redis-\(port).pid",
        ], captureOutput: false)
        if started.status == 0 {
            for _ in 0..<100 {
                if try runProgram(redisCliPath, ["-p", "\(port)", "PING"]).output.contains("PONG") { return true }
                if let text = try? String(contentsOfFile: logPath, encoding: .utf8),
                    text.contains("aborting") { break }
                usleep(50_000)
            }
        }
        log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? started.output
        return false
    }

    struct RedisStartFailure: Error { let log: String }

    func cli(_ arguments: String...) throws -> String {
        try runProgram(redisCliPath, ["-p", "\(port)"] + arguments).output
    }

    func stop() {
        _ = try? runProgram(redisCliPath, ["-p", "\(port)", "SHUTDOWN", "NOSAVE"])
    }
}

func freshDirectory(_ label: String) -> String {
    let path = "/tmp/tally-rdb-\(label)-\(getpid())-\(Int.random(in: 0..<1_000_000))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite(.serialized, .enabled(if: redisBinariesPresent, "redis-server/redis-cli/redis-check-rdb not installed"))
struct RDBInteropTests {
    static func tallyDataset(now: Int64) -> [Int: [(Key, Entry)]] {
        var big = HashValue()
        for index in 0..<700 { big.set(field: bytes("field:\(index)"), value: bytes("\(index)")) }
        var small = HashValue()
        for (field, value) in [("a", "1"), ("b", "-3000"), ("c", "70000"), ("d", "9000000000"), ("e", "text"),
                               ("007", "+1"), ("n", "-9223372036854775808")] {
            small.set(field: bytes(field), value: bytes(value))
        }
        return [
            0: [
                (key("counter"), Entry(value: .integer(42))),
                (key("neg"), Entry(value: .integer(-5))),
                (key("big"), Entry(value: .integer(17_179_869_184))),
                (key("min"), Entry(value: .integer(.min))),
                (key("007"), Entry(value: .string(bytes("1")))),
                (key("123"), Entry(value: .string(bytes("x")))),
                (key("compressible"), Entry(value: .string(bytes(String(repeating: "tally-", count: 200))))),
                (key("ttl"), Entry(value: .integer(7), expiresAtMilliseconds: now + 3_600_000)),
                (key("small"), Entry(value: .hash(small))),
                (key("bighash"), Entry(value: .hash(big))),
                (key("widehash"), Entry(value: .hash(hash([(bytes("f"), bytes(String(repeating: "v", count: 100)))])))),
            ],
            5: [(key("in5"), Entry(value: .string(bytes("five"))))],
        ]
    }

    @Test func redisAcceptsTallyDump() throws {
        let directory = freshDirectory("out")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let now = SystemClock().nowMilliseconds()
        let dataset = Self.tallyDataset(now: now)
        let storage = PosixStorage()
        try atomicReplace(storage, directory: directory, name: "dump.rdb") { sink in
            var writer = RDBWriter(sink: sink)
            try writer.writeHeader()
            for database in dataset.keys.sorted() {
                let entries = dataset[database] ?? []
                try writer.beginDatabase(database, keyCount: entries.count,
                                         expiringKeyCount: entries.filter { $0.1.expiresAtMilliseconds != nil }.count)
                for (key, entry) in entries { try writer.writeEntry(key: key, entry: entry) }
            }
            sink = try writer.finish()
        }
        let check = try runProgram(redisCheckRDBPath, [directory + "/dump.rdb"])
        #expect(check.status == 0, "redis-check-rdb: \(check.output)")
        #expect(check.output.contains("RDB looks OK"))

        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        #expect(try redis.cli("DBSIZE") == "11\n")
        #expect(try redis.cli("GET", "counter") == "42\n")
        #expect(try redis.cli("GET", "neg") == "-5\n")
        #expect(try redis.cli("GET", "big") == "17179869184\n")
        #expect(try redis.cli("GET", "min") == "-9223372036854775808\n")
        #expect(try redis.cli("GET", "007") == "1\n")
        #expect(try redis.cli("GET", "123") == "x\n")
        #expect(try redis.cli("GET", "compressible") == String(repeating: "tally-", count: 200) + "\n")
        #expect(try redis.cli("OBJECT", "ENCODING", "counter") == "int\n")
        let ttl = Int(try redis.cli("PTTL", "ttl").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(ttl > 3_500_000 && ttl <= 3_600_000)
        #expect(try redis.cli("HGETALL", "small")
            == "a\n1\nb\n-3000\nc\n70000\nd\n9000000000\ne\ntext\n007\n+1\nn\n-9223372036854775808\n")
        #expect(try redis.cli("OBJECT", "ENCODING", "small") == "listpack\n")
        // Reverse walks use the listpack backlens, so this checks them too.
        #expect(try redis.cli("HRANDFIELD", "small", "-3").split(separator: "\n").count == 3)
        #expect(try redis.cli("HLEN", "bighash") == "700\n")
        #expect(try redis.cli("HGET", "bighash", "field:699") == "699\n")
        #expect(try redis.cli("OBJECT", "ENCODING", "bighash") == "hashtable\n")
        #expect(try redis.cli("HGET", "widehash", "f") == String(repeating: "v", count: 100) + "\n")
        #expect(try redis.cli("-n", "5", "GET", "in5") == "five\n")
        // Redis re-saving our data and Tally reading it back closes the loop.
        #expect(try redis.cli("SAVE") == "OK\n")
        let (loaded, result) = try readRedisDump(directory + "/dump.rdb")
        #expect(result.keysLoaded == 12)
        #expect(loaded[5]?[key("in5")].map { sameValue($0.value, .string(bytes("five"))) } == true)
    }

    func readRedisDump(_ path: String) throws -> ([Int: [Key: Entry]], RDBLoadResult) {
        var loaded: [Int: [Key: Entry]] = [:]
        let result = try loadRDBFile(PosixStorage(), path: path,
                                     options: RDBLoadOptions(dropExpiredBefore: SystemClock().nowMilliseconds())) {
            database, key, entry in loaded[database, default: [:]][key] = entry
        }
        return (loaded, result)
    }

    @Test func tallyReadsRedisDump() throws {
        let directory = freshDirectory("in")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let redis = try RedisProcess(directory: directory)
        defer { redis.stop() }
        let long = String(repeating: "compress-me-", count: 100)
        _ = try redis.cli("SET", "long", long)
        _ = try redis.cli("SET", "int", "12345")
        _ = try redis.cli("SET", "bigint", "17179869184")
        _ = try redis.cli("SET", "str", "hello")
        _ = try redis.cli("SET", "ttl", "v", "PX", "5000000")
        _ = try redis.cli("SET", "gone", "v", "PX", "1")
        _ = try redis.cli("HSET", "h", "a", "1", "b", "two", "c", "-70000")
        var arguments = ["HSET", "large"]
        for index in 0..<600 { arguments += ["f\(index)", "v\(index)"] }
        _ = try runProgram(redisCliPath, ["-p", "\(redis.port)"] + arguments)
        _ = try redis.cli("-n", "2", "SET", "db2", "x")
        usleep(20_000)
        #expect(try redis.cli("SAVE") == "OK\n")
        let (loaded, result) = try readRedisDump(directory + "/dump.rdb")
        #expect(result.checksumVerified)
        #expect(result.auxValue("redis-ver") == bytes("7.0.15"))
        #expect(result.keysLoaded == 8)
        // "gone" is either reclaimed by Redis before SAVE or dropped by the loader; never loaded.
        let database = try #require(loaded[0])
        #expect(database[key("gone")] == nil)
        #expect(database[key("long")]?.value.stringBytes == bytes(long))
        guard case .integer(12345)? = database[key("int")]?.value else {
            Issue.record("int not integer-encoded")
            return
        }
        #expect(database[key("bigint")]?.value.stringBytes == bytes("17179869184"))
        #expect(database[key("str")]?.value.stringBytes == bytes("hello"))
        let ttl = try #require(database[key("ttl")]?.expiresAtMilliseconds) - SystemClock().nowMilliseconds()
        #expect(ttl > 4_000_000 && ttl <= 5_000_000)
        guard case .hash(let small)? = database[key("h")]?.value, case .hash(let large)? = database[key("large")]?.value
        else {
            Issue.record("hashes missing")
            return
        }
        #expect(pairs(small) == [bytes("a"), bytes("1"), bytes("b"), bytes("two"), bytes("c"), bytes("-70000")])
        #expect(large.count == 600)
        #expect(large.value(for: bytes("f599")).map(Array.init) == bytes("v599"))
        #expect(loaded[2]?[key("db2")]?.value.stringBytes == bytes("x"))
    }
}
