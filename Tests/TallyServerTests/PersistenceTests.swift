// PersistenceTests: the real tally-server killed, restarted and cross-checked with redis-server 7.0 files.
import Foundation
import TallyTestSupport
import XCTest

final class PersistenceTests: XCTestCase {
    private var servers: [ServerProcess] = []
    private var redisProcesses: [Process] = []
    private var directories: [String] = []

    override func tearDown() {
        for server in servers { server.stop() }
        servers.removeAll()
        for process in redisProcesses where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        redisProcesses.removeAll()
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        directories.removeAll()
    }

    // MARK: Helpers

    private func makeDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "tally-persist-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        directories.append(path)
        return path
    }

    /// Starts tally-server on `directory` (the AOF on unless `arguments` say otherwise).
    private func startTally(_ directory: String, _ arguments: [String] = []) throws -> ServerProcess {
        let server = try ServerProcess(arguments: ["--dir", directory, "--appendonly", "yes"] + arguments)
        servers.append(server)
        return server
    }

    private func kill9(_ server: ServerProcess) {
        server.signal(SIGKILL)
        _ = server.waitForExit()
    }

    private static func redisBinary(_ name: String) -> String? {
        ["/usr/bin/\(name)", "/usr/local/bin/\(name)"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts redis-server 7.0 on `directory`; returns its port.
    private func startRedis(_ directory: String, appendOnly: Bool, _ extra: [String] = []) throws -> Int {
        guard let binary = Self.redisBinary("redis-server") else { throw XCTSkip("redis-server is not installed") }
        let port = ServerProcess.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--port", String(port), "--dir", directory, "--save", "", "--appendonly", appendOnly ? "yes" : "no",
            "--logfile", directory + "/redis.log",
        ] + extra
        try process.run()
        redisProcesses.append(process)
        for _ in 0..<200 {
            if let client = try? RESPClient(port: port), (try? client.call("PING")) == .simple("PONG") { return port }
            if !process.isRunning { break }
            usleep(20_000)
        }
        let log = (try? String(contentsOfFile: directory + "/redis.log", encoding: .utf8)) ?? ""
        XCTFail("redis-server did not start: \(log)")
        throw RESPClientError.closed
    }

    /// Polls INFO persistence until `field` reads `value` (a background job of a real process
    /// finished), failing after `timeoutSeconds`; replaces fixed sleeps that lose on a loaded machine.
    private func waitForInfo(_ client: RESPClient, _ field: String, _ value: String, timeoutSeconds: Double = 30,
                             file: StaticString = #filePath, line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            let info = try client.call("INFO", "persistence").text ?? ""
            if info.contains("\r\n\(field):\(value)\r\n") { return }
            usleep(2_000)
        }
        XCTFail("INFO \(field) never became \(value)", file: file, line: line)
    }

    private func stopRedis(port: Int) throws {
        let client = try RESPClient(port: port)
        _ = try? client.call("SHUTDOWN", "NOSAVE")
        for process in redisProcesses { process.waitUntilExit() }
    }

    private func files(in directory: String) -> [String: Data] {
        var result: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = directory + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                result[name] = FileManager.default.contents(atPath: path)
            }
        }
        return result
    }

    /// Per-key bookkeeping of a workload: what was acknowledged, and the increment whose reply
    /// never came (it may or may not have been applied).
    private final class Ledger: @unchecked Sendable {
        // @unchecked: every field is touched under `lock`.
        let lock = NSLock()
        var acknowledged: [Int64]
        var inFlight: [Int64]
        var operations = 0
        init(keys: Int) {
            acknowledged = Array(repeating: 0, count: keys)
            inFlight = Array(repeating: 0, count: keys)
        }
    }

    /// Runs `workers` INCRBY loops (one key each) until the server dies; `chaos` runs beside
    /// them, then the server gets SIGKILL. Then restarts on the same directory and checks that every
    /// acknowledged increment is there and nothing beyond the one unacknowledged per key.
    private func runKillScenario(
        fsync: String, workers: Int = 4, extra: [String] = [], chaos: @escaping @Sendable (Int) -> Void
    ) throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendfsync", fsync] + extra)
        let port = server.port
        let pid = server.process.processIdentifier
        let ledger = Ledger(keys: workers)
        // Real threads, not concurrentPerform: the workers never return on their own, so a
        // pool with fewer threads than iterations would never run the killer.
        let group = DispatchGroup()
        for index in 0...workers {
            group.enter()
            Thread {
                defer { group.leave() }
                if index == workers {
                    chaos(port)
                    kill(pid, SIGKILL)
                } else {
                    Self.incrementUntilClosed(port: port, index: index, ledger: ledger)
                }
            }.start()
        }
        group.wait()
        _ = server.waitForExit()
        XCTAssertGreaterThan(ledger.operations, 100, "the workload barely ran")
        print("kill -9 under \(fsync)\(extra.isEmpty ? "" : " " + extra.joined(separator: " ")): "
            + "\(ledger.operations) acknowledged INCRBYs before SIGKILL")
        let restarted = try startTally(directory, ["--appendfsync", fsync] + extra)
        let client = try RESPClient(port: restarted.port)
        for index in 0..<workers {
            let reply = try client.call("GET", "key:\(index)")
            let stored = Int64(reply.text ?? "0") ?? -1
            let acknowledged = ledger.acknowledged[index]
            let pending = ledger.inFlight[index]
            XCTAssertTrue(
                stored == acknowledged || (pending != 0 && stored == acknowledged + pending),
                "\(fsync): key:\(index) holds \(stored); acknowledged \(acknowledged), in flight \(pending)")
        }
    }

    private static func incrementUntilClosed(port: Int, index: Int, ledger: Ledger) {
        guard let client = try? RESPClient(port: port) else { return }
        var delta = Int64(index) + 1
        while true {
            delta = delta % 1000 + 1
            ledger.lock.lock()
            ledger.inFlight[index] = delta
            ledger.lock.unlock()
            guard case .integer(let value)? = try? client.call("INCRBY", "key:\(index)", String(delta)) else {
                return
            }
            ledger.lock.lock()
            ledger.acknowledged[index] += delta
            ledger.inFlight[index] = 0
            ledger.operations += 1
            let expected = ledger.acknowledged[index]
            ledger.lock.unlock()
            XCTAssertEqual(value, expected, "the server's own count diverged for key:\(index)")
        }
    }

    // MARK: kill -9

    func testKillDuringIncrbyUnderAlwaysKeepsEveryAcknowledgedIncrement() throws {
        try runKillScenario(fsync: "always") { _ in usleep(800_000) }
    }

    func testKillDuringIncrbyUnderEverysecKeepsEveryAcknowledgedIncrement() throws {
        // A process crash (not a power cut): written data is in the kernel, so nothing
        // acknowledged may be lost even though it was not fsynced yet.
        try runKillScenario(fsync: "everysec") { _ in usleep(800_000) }
    }

    func testKillDuringIncrbyUnderNoKeepsEveryAcknowledgedIncrement() throws {
        try runKillScenario(fsync: "no") { _ in usleep(800_000) }
    }

    func testKillDuringRewritesKeepsEveryAcknowledgedIncrement() throws {
        try runKillScenario(fsync: "everysec") { port in
            guard let client = try? RESPClient(port: port) else { return }
            for round in 0..<6 {
                usleep(120_000)
                let reply = try? client.call("BGREWRITEAOF")
                if round == 0 {
                    XCTAssertEqual(reply, .simple("Background append only file rewriting started"))
                }
            }
        }
    }

    func testKillDuringRewriteWithoutPreambleKeepsEveryAcknowledgedIncrement() throws {
        try runKillScenario(fsync: "always", extra: ["--aof-use-rdb-preamble", "no"]) { port in
            guard let client = try? RESPClient(port: port) else { return }
            for _ in 0..<4 {
                usleep(150_000)
                _ = try? client.call("BGREWRITEAOF")
            }
        }
    }

    // MARK: Clean shutdown

    func testSigtermKeepsEverythingAndSavesWhenSavePointsExist() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--save", "3600 1"])
        let client = try RESPClient(port: server.port)
        for index in 1...200 { _ = try client.call("INCRBY", "k\(index % 10)", String(index)) }
        XCTAssertEqual(try client.call("SET", "ttl", "v", "EX", "1000"), .simple("OK"))
        server.signal(SIGTERM)
        XCTAssertEqual(server.waitForExit(), 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/dump.rdb"), "no final RDB save")
        let restarted = try startTally(directory)
        let again = try RESPClient(port: restarted.port)
        for key in 0..<10 {
            let expected = (1...200).filter { $0 % 10 == key }.reduce(0, +)
            XCTAssertEqual(try again.call("GET", "k\(key)").text, String(expected))
        }
        guard case .integer(let ttl) = try again.call("TTL", "ttl") else { return XCTFail("no TTL") }
        XCTAssertGreaterThan(ttl, 990)
        // The same data also comes back from dump.rdb alone.
        restarted.signal(SIGKILL)
        _ = restarted.waitForExit()
        let fromDump = try startTally(directory, ["--appendonly", "no"])
        XCTAssertEqual(try RESPClient(port: fromDump.port).call("GET", "k3").text, "1960")
    }

    func testAppendOnlyFileLoadsWholeUnderASmallerMaxmemory() throws {
        // aof.c's loader runs each command's proc directly: replay neither evicts nor refuses
        // with OOM, so a file written without a limit loads whole (redis-server 7.0.15 holds all
        // of a 5,000-key file after the restart, and evicts on the first command).
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--aof-use-rdb-preamble", "no"])
        let client = try RESPClient(port: server.port)
        let value = String(repeating: "x", count: 1000)
        for index in 0..<3000 { _ = try client.call("SET", "key:\(index)", value) }
        server.signal(SIGTERM)
        XCTAssertEqual(server.waitForExit(), 0)
        let restarted = try startTally(directory, ["--maxmemory", "1mb", "--maxmemory-policy", "noeviction"])
        let again = try RESPClient(port: restarted.port)
        XCTAssertEqual(try again.call("DBSIZE"), .integer(3000))
        XCTAssertEqual(try again.call("GET", "key:2999").text?.count, value.count)
    }

    func testShutdownRefusedWhenTheFinalSaveFails() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--dbfilename", "blocked"])
        try FileManager.default.createDirectory(atPath: directory + "/blocked", withIntermediateDirectories: false)
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("INCR", "c"), .integer(1))
        XCTAssertEqual(try client.call("SHUTDOWN", "SAVE"), .error("ERR Errors trying to SHUTDOWN. Check logs."))
        // Still serving, and the data is intact.
        XCTAssertEqual(try client.call("INCR", "c"), .integer(2))
    }

    // MARK: Interoperability with redis-server 7.0.15

    func testRedisToolsAcceptTallyAppendOnlyDirectory() throws {
        guard let checker = Self.redisBinary("redis-check-aof") else { throw XCTSkip("redis-check-aof missing") }
        let directory = try makeDirectory()
        let server = try startTally(directory)
        let client = try RESPClient(port: server.port)
        for index in 0..<300 { _ = try client.call("INCRBY", "n\(index % 17)", String(index)) }
        _ = try client.call("HSET", "h", "f", "1", "g", "two")
        _ = try client.call("SET", "big", "17179869184")
        _ = try client.call("SET", "ttl", "v", "PX", "5000000")
        XCTAssertEqual(try client.call("BGREWRITEAOF"), .simple("Background append only file rewriting started"))
        try waitForInfo(client, "aof_rewrite_in_progress", "0")
        for index in 0..<50 { _ = try client.call("INCRBY", "n\(index % 17)", "1") }
        _ = try client.call("SELECT", "5")
        _ = try client.call("SET", "in5", "x")
        _ = try client.call("SELECT", "0")
        var expected: [String: String] = [:]
        for index in 0..<17 { expected["n\(index)"] = try client.call("GET", "n\(index)").text }
        kill9(server)

        let manifest = directory + "/appendonlydir/appendonly.aof.manifest"
        let base = try String(contentsOfFile: manifest, encoding: .utf8)
        XCTAssertTrue(base.hasPrefix("file appendonly.aof.2.base.rdb seq 2 type b\n"), base)
        let check = Process()
        check.executableURL = URL(fileURLWithPath: checker)
        check.arguments = [manifest]
        let pipe = Pipe()
        check.standardOutput = pipe
        try check.run()
        check.waitUntilExit()
        let report = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(check.terminationStatus, 0, report)

        let port = try startRedis(directory, appendOnly: true)
        let redis = try RESPClient(port: port)
        for (key, value) in expected { XCTAssertEqual(try redis.call("GET", key).text, value, key) }
        XCTAssertEqual(try redis.call("HGET", "h", "g").text, "two")
        XCTAssertEqual(try redis.call("GET", "big").text, "17179869184")
        guard case .integer(let ttl) = try redis.call("PTTL", "ttl") else { return XCTFail("no PTTL") }
        XCTAssertGreaterThan(ttl, 4_900_000)
        _ = try redis.call("SELECT", "5")
        XCTAssertEqual(try redis.call("GET", "in5").text, "x")
    }

    func testTallyLoadsRedisWrittenAppendOnlyDirectory() throws {
        let directory = try makeDirectory()
        let port = try startRedis(directory, appendOnly: true)
        let redis = try RESPClient(port: port)
        for index in 0..<100 { _ = try redis.call("INCRBY", "r\(index % 9)", String(index)) }
        _ = try redis.call("SET", "ttl", "v", "EX", "7000")
        _ = try redis.call("BGREWRITEAOF")
        try waitForInfo(redis, "aof_rewrite_scheduled", "0")
        try waitForInfo(redis, "aof_rewrite_in_progress", "0")
        for index in 0..<30 { _ = try redis.call("INCR", "r\(index % 9)") }
        _ = try redis.call("HSET", "h", "a", "1")
        var expected: [String: String] = [:]
        for index in 0..<9 { expected["r\(index)"] = try redis.call("GET", "r\(index)").text }
        try stopRedis(port: port)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory + "/appendonlydir")
        XCTAssertTrue(names.contains { $0.hasSuffix(".base.rdb") }, "\(names)")

        let server = try startTally(directory)
        let client = try RESPClient(port: server.port)
        for (key, value) in expected { XCTAssertEqual(try client.call("GET", key).text, value, key) }
        XCTAssertEqual(try client.call("HGET", "h", "a").text, "1")
        guard case .integer(let ttl) = try client.call("TTL", "ttl") else { return XCTFail("no TTL") }
        XCTAssertGreaterThan(ttl, 6900)
    }

    /// Like Redis, Tally accepts clients while it loads: commands without the `loading` flag get
    /// -LOADING (PING included), INFO reports loading:1, and the data is there once loading ends.
    func testClientsGetLoadingWhileALargeDumpLoads() throws {
        let directory = try makeDirectory()
        let keys = 300_000
        let port = try startRedis(directory, appendOnly: false, ["--enable-debug-command", "yes"])
        let redis = try RESPClient(port: port)
        XCTAssertEqual(try redis.call("DEBUG", "POPULATE", String(keys)), .simple("OK"))
        XCTAssertEqual(try redis.call("SAVE"), .simple("OK"))
        try stopRedis(port: port)

        let server = try ServerProcess(arguments: ["--dir", directory, "--appendonly", "no"], waitReady: false)
        servers.append(server)
        var client: RESPClient?
        let deadline = Date().addingTimeInterval(30)
        while client == nil && Date() < deadline {
            client = try? RESPClient(port: server.port)
            if client == nil { usleep(2_000) }
        }
        guard let client else { return XCTFail("never accepted a connection: \(server.output)") }
        var loadingReplies = 0
        var sawLoadingInfo = false
        while Date() < deadline {
            let reply = try client.call("GET", "key:4321")
            guard case .error(let text) = reply else {
                XCTAssertEqual(reply.text, "value:4321")
                break
            }
            XCTAssertEqual(text, "LOADING Redis is loading the dataset in memory")
            loadingReplies += 1
            if loadingReplies == 1 {
                XCTAssertEqual(try client.call("PING"), .error("LOADING Redis is loading the dataset in memory"))
                let info = try client.call("INFO", "persistence").text ?? ""
                // Loading may end between GET and INFO; while it runs the progress fields are there.
                sawLoadingInfo = info.contains("loading:1\r\n") && info.contains("loading_start_time:")
                    && !info.contains("loading_total_bytes:0\r\n") || info.contains("loading:0\r\n")
            }
        }
        XCTAssertGreaterThan(loadingReplies, 0, "the dump loaded before the first command")
        XCTAssertTrue(sawLoadingInfo)
        XCTAssertEqual(try client.call("DBSIZE"), .integer(Int64(keys)))
        XCTAssertEqual(try client.call("PING"), .simple("PONG"))
        XCTAssertTrue(try client.call("INFO", "persistence").text?.contains("loading:0\r\n") == true)
    }

    func testDumpRoundTripWithRedisBothWays() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendonly", "no"])
        let client = try RESPClient(port: server.port)
        _ = try client.call("SET", "neg", "-5")
        _ = try client.call("SET", "big", "17179869184")
        _ = try client.call("SET", "007", "1")
        _ = try client.call("SET", "gone", "x", "PX", "1")
        _ = try client.call("SET", "kept", "x", "EX", "9000")
        _ = try client.call("HSET", "h", "f", String(repeating: "z", count: 100))
        XCTAssertEqual(try client.call("SAVE"), .simple("OK"))
        kill9(server)

        let port = try startRedis(directory, appendOnly: false)
        let redis = try RESPClient(port: port)
        XCTAssertEqual(try redis.call("GET", "neg").text, "-5")
        XCTAssertEqual(try redis.call("GET", "big").text, "17179869184")
        XCTAssertEqual(try redis.call("GET", "007").text, "1")
        XCTAssertEqual(try redis.call("GET", "gone"), .bulk(nil))
        XCTAssertEqual(try redis.call("HGET", "h", "f").text?.count, 100)
        _ = try redis.call("INCRBY", "neg", "10")
        _ = try redis.call("SET", "fromredis", "yes")
        XCTAssertEqual(try redis.call("SAVE"), .simple("OK"))
        try stopRedis(port: port)

        let again = try startTally(directory, ["--appendonly", "no"])
        let second = try RESPClient(port: again.port)
        XCTAssertEqual(try second.call("GET", "neg").text, "5")
        XCTAssertEqual(try second.call("GET", "fromredis").text, "yes")
        XCTAssertEqual(try second.call("DBSIZE"), .integer(6))
        guard case .integer(let ttl) = try second.call("TTL", "kept") else { return XCTFail("no TTL") }
        XCTAssertGreaterThan(ttl, 8900)
    }

    /// Lists written before a rewrite (RDB preamble or RPUSH commands) and after it (the AOF
    /// tail) come back after a kill, and a SAVEd dump restores them with the AOF off.
    func testListsSurviveRewritesKillsAndDumps() throws {
        for preamble in ["yes", "no"] {
            let directory = try makeDirectory()
            let arguments = ["--appendfsync", "always", "--aof-use-rdb-preamble", preamble]
            let server = try startTally(directory, arguments)
            let client = try RESPClient(port: server.port)
            var expected: [String] = []
            for index in 0..<150 {
                _ = try client.call("RPUSH", "l", "e\(index)", "\(index)")
                expected += ["e\(index)", "\(index)"]
            }
            _ = try client.call("RPUSH", "q", "a", "b", String(repeating: "z", count: 10_000))
            XCTAssertEqual(try client.call("BGREWRITEAOF"), .simple("Background append only file rewriting started"))
            try waitForInfo(client, "aof_rewrite_in_progress", "0")
            _ = try client.call("RPOP", "l")
            expected.removeLast()
            XCTAssertEqual(try client.call("LMOVE", "q", "l", "LEFT", "LEFT").text, "a")
            expected.insert("a", at: 0)
            XCTAssertEqual(try client.call("LMPOP", "1", "q", "LEFT"), .array([.bulk(Array("q".utf8)),
                                                                                .array([.bulk(Array("b".utf8))])]))
            kill9(server)

            let again = try startTally(directory, arguments)
            let second = try RESPClient(port: again.port)
            XCTAssertEqual(try second.call("LRANGE", "l", "0", "-1"), .array(expected.map { .bulk(Array($0.utf8)) }))
            XCTAssertEqual(try second.call("LRANGE", "q", "0", "-1"),
                           .array([.bulk(Array(String(repeating: "z", count: 10_000).utf8))]))
            XCTAssertEqual(try second.call("SAVE"), .simple("OK"))
            kill9(again)
            let fromDump = try startTally(directory, ["--appendonly", "no"])
            let third = try RESPClient(port: fromDump.port)
            XCTAssertEqual(try third.call("LLEN", "l"), .integer(Int64(expected.count)))
            XCTAssertEqual(try third.call("LINDEX", "l", "-1").text, expected.last)
        }
    }

    // MARK: Refusing to start

    func testCorruptDumpRefusesToStartAndLeavesTheFile() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendonly", "no"])
        let client = try RESPClient(port: server.port)
        for index in 0..<50 { _ = try client.call("SET", "key\(index)", "value\(index)") }
        XCTAssertEqual(try client.call("SAVE"), .simple("OK"))
        kill9(server)
        let path = directory + "/dump.rdb"
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0x5a
        try bytes.write(to: URL(fileURLWithPath: path))
        let before = files(in: directory)

        let failing = try ServerProcess(
            arguments: ["--dir", directory, "--appendonly", "no"], waitReady: false)
        servers.append(failing)
        let status = failing.waitForExit()
        XCTAssertNotNil(status)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(failing.output.contains("dump.rdb"), failing.output)
        XCTAssertTrue(failing.output.contains("offset"), failing.output)
        XCTAssertEqual(files(in: directory), before, "a file changed while refusing to start")
    }

    func testCorruptMiddleOfAppendOnlyFileRefusesToStartAndLeavesTheFiles() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendfsync", "always"])
        let client = try RESPClient(port: server.port)
        for index in 0..<200 { _ = try client.call("INCRBY", "c", String(index)) }
        kill9(server)
        let path = directory + "/appendonlydir/appendonly.aof.1.incr.aof"
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        // Replace a '*' record header in the middle with garbage (not a truncated tail).
        let middle = bytes.count / 2
        let star = try XCTUnwrap(bytes[middle...].firstIndex(of: UInt8(ascii: "*")))
        bytes[star] = UInt8(ascii: "!")
        try bytes.write(to: URL(fileURLWithPath: path))
        let before = files(in: directory)

        let failing = try ServerProcess(
            arguments: ["--dir", directory, "--appendonly", "yes"], waitReady: false)
        servers.append(failing)
        let status = failing.waitForExit()
        XCTAssertNotNil(status)
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(failing.output.contains("appendonly.aof.1.incr.aof"), failing.output)
        XCTAssertTrue(failing.output.contains("offset"), failing.output)
        XCTAssertEqual(files(in: directory), before, "a file changed while refusing to start")
    }

    // MARK: Runtime switches

    func testConfigSetAppendOnlyYesCreatesBaseAndSurvivesKill() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendonly", "no"])
        let client = try RESPClient(port: server.port)
        _ = try client.call("SET", "before", "1")
        XCTAssertEqual(try client.call("CONFIG", "SET", "appendonly", "yes"), .simple("OK"))
        XCTAssertEqual(try client.call("INCR", "after"), .integer(1))
        try waitForInfo(client, "aof_rewrite_in_progress", "0")
        XCTAssertEqual(try client.call("CONFIG", "SET", "appendfsync", "always"), .simple("OK"))
        XCTAssertEqual(try client.call("INCR", "after"), .integer(2))
        let manifest = try String(contentsOfFile: directory + "/appendonlydir/appendonly.aof.manifest", encoding: .utf8)
        XCTAssertTrue(manifest.contains("type b"), manifest)
        kill9(server)
        let restarted = try startTally(directory)
        let again = try RESPClient(port: restarted.port)
        XCTAssertEqual(try again.call("GET", "before").text, "1")
        XCTAssertEqual(try again.call("GET", "after").text, "2")
    }

    func testFailedBackgroundSaveRefusesWritesWithMisconf() throws {
        let directory = try makeDirectory()
        let server = try startTally(directory, ["--appendonly", "no", "--save", "3600 1", "--dbfilename", "blocked"])
        try FileManager.default.createDirectory(atPath: directory + "/blocked", withIntermediateDirectories: false)
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("BGSAVE"), .simple("Background saving started"))
        try waitForInfo(client, "rdb_bgsave_in_progress", "0")
        guard case .error(let text) = try client.call("INCR", "c") else { return XCTFail("write accepted") }
        XCTAssertTrue(text.hasPrefix("MISCONF Redis is configured to save RDB snapshots"), text)
        XCTAssertEqual(try client.call("GET", "c"), .bulk(nil))
        XCTAssertEqual(try client.call("CONFIG", "SET", "dbfilename", "dump.rdb"), .simple("OK"))
        XCTAssertEqual(try client.call("BGSAVE"), .simple("Background saving started"))
        try waitForInfo(client, "rdb_bgsave_in_progress", "0")
        XCTAssertEqual(try client.call("INCR", "c"), .integer(1))
    }

    // MARK: Disk full

    /// Runs a command, returning whether it exited 0.
    private static func run(_ path: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    func testRepliesAreHeldWhileTheAppendOnlyFileCannotBeWritten() throws {
        // A 2 MB tmpfs to fill up; needs mount privileges (skipped elsewhere).
        let directory = try makeDirectory()
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", directory]) else {
            throw XCTSkip("cannot mount a tmpfs here")
        }
        defer { _ = Self.run("/bin/umount", ["-l", directory]) }
        let server = try startTally(directory, ["--appendfsync", "everysec"])
        let filler = directory + "/filler"
        XCTAssertTrue(FileManager.default.createFile(atPath: filler, contents: Data(count: 1900 * 1024)))

        let writer = try RESPClient(port: server.port, timeoutSeconds: 1)
        try writer.sendRaw(RESPClient.encode(["SET", "big", String(repeating: "a", count: 300_000)]))
        // The AOF write fails with ENOSPC: the reply must not come while the data is only in memory.
        XCTAssertThrowsError(try writer.readReply()) { error in
            XCTAssertEqual(error as? RESPClientError, .timedOut)
        }
        let other = try RESPClient(port: server.port)
        XCTAssertEqual(
            try other.call("INCR", "c"), .error("MISCONF Errors writing to the AOF file: No space left on device"))
        // Observed writes are durable writes: a reader on another connection can see the value
        // in memory, but its reply is held like the writer's until the record is written.
        let reader = try RESPClient(port: server.port, timeoutSeconds: 1)
        try reader.sendRaw(RESPClient.encode(["STRLEN", "big"]))
        XCTAssertThrowsError(try reader.readReply()) { error in
            XCTAssertEqual(error as? RESPClientError, .timedOut)
        }

        try FileManager.default.removeItem(atPath: filler)
        // The writer retries about once a second; then the held reply goes out.
        var reply: RESPValue?
        for _ in 0..<5 where reply == nil { reply = try? writer.readReply() }
        XCTAssertEqual(reply, .simple("OK"))
        var observed: RESPValue?
        for _ in 0..<5 where observed == nil { observed = try? reader.readReply() }
        XCTAssertEqual(observed, .integer(300_000))
        XCTAssertEqual(try other.call("INCR", "c"), .integer(1))
        kill9(server)
        let restarted = try startTally(directory)
        let client = try RESPClient(port: restarted.port)
        XCTAssertEqual(try client.call("STRLEN", "big"), .integer(300_000))
        XCTAssertEqual(try client.call("GET", "c").text, "1")
        restarted.signal(SIGKILL)
        _ = restarted.waitForExit()
    }
}

// MARK: Observed writes

extension PersistenceTests {
    /// The highest value each reader saw per key.
    private final class Observations: @unchecked Sendable {
        // @unchecked: every field is touched under `lock`.
        let lock = NSLock()
        var highest: [Int64]
        var reads = 0
        init(keys: Int) { highest = Array(repeating: 0, count: keys) }
    }

    /// Writers INCRBY on some connections, readers GET on others (several I/O threads), then
    /// SIGKILL: every value any reader saw must be there after the restart, since a reply
    /// may not show a write whose record has not reached the kernel (fsynced under `always`).
    private func runObservedKillScenario(fsync: String) throws {
        let workers = 3
        let readers = 4
        let directory = try makeDirectory()
        let arguments = ["--appendfsync", fsync, "--io-threads", "4"]
        let server = try startTally(directory, arguments)
        let port = server.port
        let ledger = Ledger(keys: workers)
        let observed = Observations(keys: workers)
        let group = DispatchGroup()
        for index in 0..<(workers + readers) {
            group.enter()
            Thread {
                defer { group.leave() }
                if index < workers {
                    Self.incrementUntilClosed(port: port, index: index, ledger: ledger)
                    return
                }
                guard let client = try? RESPClient(port: port) else { return }
                var key = index
                while true {
                    key = (key + 1) % workers
                    guard let reply = try? client.call("GET", "key:\(key)") else { return }
                    let value = Int64(reply.text ?? "0") ?? 0
                    observed.lock.lock()
                    observed.highest[key] = max(observed.highest[key], value)
                    observed.reads += 1
                    observed.lock.unlock()
                }
            }.start()
        }
        usleep(800_000)
        server.signal(SIGKILL)
        group.wait()
        _ = server.waitForExit()
        XCTAssertGreaterThan(observed.reads, 100, "the readers barely ran")
        let restarted = try startTally(directory, arguments)
        let client = try RESPClient(port: restarted.port)
        for key in 0..<workers {
            let stored = Int64(try client.call("GET", "key:\(key)").text ?? "0") ?? -1
            XCTAssertGreaterThanOrEqual(
                stored, observed.highest[key], "\(fsync): key:\(key) lost a value a reader had seen")
            XCTAssertGreaterThanOrEqual(
                stored, ledger.acknowledged[key], "\(fsync): key:\(key) lost an acknowledged write")
        }
    }

    func testKillWithReadersKeepsEveryObservedValueUnderAlways() throws {
        try runObservedKillScenario(fsync: "always")
    }

    func testKillWithReadersKeepsEveryObservedValueUnderNo() throws {
        try runObservedKillScenario(fsync: "no")
    }
}
