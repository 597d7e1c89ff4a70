// ReplicaTests: a real tally-server replica of a real redis-server 7.0 primary: full sync, the stream,
// partial resync after CLIENT KILL TYPE master, a restart that continues from dump.rdb, promotion.
import Foundation
import TallyTestSupport
import XCTest

final class ReplicaTests: ServerTestCase {
    private var redisProcesses: [Process] = []
    private var directories: [String] = []

    override func tearDown() {
        for process in redisProcesses where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        redisProcesses.removeAll()
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        directories.removeAll()
        super.tearDown()
    }

    /// Starts redis-server 7.0 as the primary (diskless sync without delay, so tests wait less).
    private func startRedisPrimary() throws -> Int {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else { throw XCTSkip("redis-server is not installed") }
        let directory = NSTemporaryDirectory() + "tally-replica-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        directories.append(directory)
        let port = ServerProcess.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--port", String(port), "--dir", directory, "--save", "", "--appendonly", "no",
            "--repl-diskless-sync-delay", "0", "--logfile", directory + "/redis.log",
        ]
        try process.run()
        redisProcesses.append(process)
        for _ in 0..<200 {
            if let client = try? RESPClient(port: port), (try? client.call("PING")) == .simple("PONG") { return port }
            usleep(20_000)
        }
        XCTFail("redis-server did not start")
        throw RESPClientError.closed
    }

    /// Polls until `check` holds, failing after `seconds`.
    private func eventually(_ what: String, seconds: Double = 20, file: StaticString = #filePath, line: UInt = #line,
                            _ check: () throws -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? check()) == true { return }
            usleep(20_000)
        }
        XCTFail("timed out waiting for \(what)", file: file, line: line)
    }

    private func linkState(_ client: RESPClient) throws -> String? {
        guard case .array(let items?) = try client.call("ROLE"), items.count == 5 else { return nil }
        return items[3].text
    }

    private func infoField(_ client: RESPClient, _ section: String, _ name: String) throws -> String? {
        let text = try client.call("INFO", section).text ?? ""
        for line in text.split(separator: "\r\n") where line.hasPrefix(name + ":") {
            return String(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// Every value the replica shows, by key, in a few types and two databases.
    private func contents(_ client: RESPClient) throws -> [String] {
        var out: [String] = []
        for database in ["0", "3"] {
            _ = try client.call("SELECT", database)
            out.append("\(database): \(try client.call("MGET", "s", "counter", "evk", "ectr"))")
            out.append("\(try client.call("HGETALL", "h")) \(try client.call("LRANGE", "l", "0", "-1"))")
            out.append("\(try client.call("ZRANGE", "z", "0", "-1", "WITHSCORES")) \(try client.call("XLEN", "x"))")
            out.append("\(try client.call("DBSIZE"))")
        }
        _ = try client.call("SELECT", "0")
        return out
    }

    func testFollowsRedisPrimaryResyncsPartiallyAndPromotes() throws {
        let primaryPort = try startRedisPrimary()
        let primary = try RESPClient(port: primaryPort)
        try primary.call("SET", "s", "before-sync")
        try primary.call("HSET", "h", "a", "1", "b", "2")
        try primary.call("RPUSH", "l", "x", "y")
        try primary.call("ZADD", "z", "1.5", "m")
        try primary.call("XADD", "x", "1-1", "f", "v")
        try primary.call("SELECT", "3")
        try primary.call("SET", "s", "in-db-3")
        try primary.call("SELECT", "0")

        let replicaDirectory = NSTemporaryDirectory() + "tally-replica-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: replicaDirectory, withIntermediateDirectories: true)
        directories.append(replicaDirectory)
        let replicaServer = try start(["--dir", replicaDirectory, "--replicaof", "127.0.0.1", String(primaryPort)])
        let replica = try RESPClient(port: replicaServer.port)
        eventually("the full sync") { try linkState(replica) == "connected" }
        XCTAssertEqual(try contents(replica), try contents(primary))
        XCTAssertEqual(try replica.call("SET", "k", "v"),
                       .error("READONLY You can't write against a read only replica."))

        // The stream: counters, a transaction, a script (replicated by effects), another db.
        for _ in 0..<50 { try primary.call("INCR", "counter") }
        try primary.call("MULTI")
        try primary.call("HSET", "h", "c", "3")
        try primary.call("LPUSH", "l", "w")
        try primary.call("EXEC")
        try primary.call("EVAL", "redis.call('set', KEYS[1], 'e'); return redis.call('incr', 'ectr')", "1", "evk")
        try primary.call("SELECT", "3")
        try primary.call("INCR", "counter")
        try primary.call("SELECT", "0")
        let target = try infoField(primary, "replication", "master_repl_offset")
        eventually("the stream") { try infoField(replica, "replication", "slave_repl_offset") == target }
        XCTAssertEqual(try contents(replica), try contents(primary))
        XCTAssertEqual(try infoField(replica, "replication", "master_link_status"), "up")

        // The link is killed from the replica's side: it comes back with PSYNC and +CONTINUE.
        XCTAssertTrue((try replica.call("CLIENT", "LIST", "TYPE", "master").text ?? "").contains("flags=M"))
        XCTAssertEqual(try replica.call("CLIENT", "KILL", "TYPE", "master"), .integer(1))
        try primary.call("INCR", "counter")
        eventually("the partial resync") { try infoField(primary, "stats", "sync_partial_ok") == "1" }
        let afterKill = try infoField(primary, "replication", "master_repl_offset")
        eventually("the stream after +CONTINUE") {
            try infoField(replica, "replication", "slave_repl_offset") == afterKill
        }
        XCTAssertEqual(try contents(replica), try contents(primary))
        XCTAssertEqual(try infoField(primary, "stats", "sync_full"), "1")

        // Killed after a SAVE while the stream goes on, a restarted replica continues from
        // dump.rdb's repl-id/repl-offset: still one full sync in total.
        XCTAssertEqual(try replica.call("SAVE"), .simple("OK"))
        try primary.call("INCR", "counter")
        replicaServer.signal(SIGKILL)
        _ = replicaServer.waitForExit()
        try primary.call("INCR", "counter")
        let restarted = try start(["--dir", replicaDirectory, "--replicaof", "127.0.0.1", String(primaryPort)])
        let again = try RESPClient(port: restarted.port)
        eventually("the resync after a restart") { try linkState(again) == "connected" }
        XCTAssertEqual(try infoField(primary, "stats", "sync_full"), "1")
        XCTAssertEqual(try infoField(primary, "stats", "sync_partial_ok"), "2")
        let afterRestart = try infoField(primary, "replication", "master_repl_offset")
        eventually("the stream after the restart") {
            try infoField(again, "replication", "slave_repl_offset") == afterRestart
        }
        XCTAssertEqual(try contents(again), try contents(primary))

        // Promotion: writes are accepted, the old history is kept as replid2.
        let oldID = try infoField(again, "replication", "master_replid")
        XCTAssertEqual(try again.call("REPLICAOF", "NO", "ONE"), .simple("OK"))
        XCTAssertEqual(try again.call("SET", "k", "v"), .simple("OK"))
        XCTAssertEqual(try infoField(again, "replication", "role"), "master")
        XCTAssertEqual(try infoField(again, "replication", "master_replid2"), oldID)
    }

    func testReplicaOfRepliesAndValidation() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("REPLICAOF", "NO", "ONE"), .simple("OK"))
        XCTAssertEqual(try client.call("REPLICAOF", "127.0.0.1", "70000"), .error("ERR Invalid master port"))
        XCTAssertEqual(try client.call("REPLICAOF", "127.0.0.1", "abc"), .error("ERR Invalid master port"))
        // Nothing listens on port 1: the link stays down and INFO says so, as Redis's does.
        XCTAssertEqual(try client.call("SLAVEOF", "127.0.0.1", "1"), .simple("OK"))
        XCTAssertEqual(try client.call("REPLICAOF", "127.0.0.1", "1"),
                       .simple("OK Already connected to specified master"))
        XCTAssertEqual(try infoField(client, "replication", "role"), "slave")
        XCTAssertEqual(try infoField(client, "replication", "master_link_status"), "down")
        XCTAssertEqual(try client.call("CONFIG", "GET", "replicaof"), .array([.bulk(Array("replicaof".utf8)),
                                                                             .bulk(Array("127.0.0.1 1".utf8))]))
        XCTAssertEqual(try client.call("CONFIG", "SET", "replica-serve-stale-data", "no"), .simple("OK"))
        XCTAssertEqual(try client.call("GET", "k"),
                       .error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."))
        XCTAssertEqual(try client.call("REPLICAOF", "NO", "ONE"), .simple("OK"))
        XCTAssertEqual(try client.call("GET", "k"), .bulk(nil))
        XCTAssertEqual(try client.call("CONFIG", "GET", "replicaof"), .array([.bulk(Array("replicaof".utf8)),
                                                                             .bulk([])]))
    }
}
