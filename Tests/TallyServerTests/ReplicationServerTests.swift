// ReplicationServerTests: a real redis-server replica of the real tally-server (skipped without
// redis-server): full sync (diskless and disk), following writes, WAIT, ROLE, partial resync.
import Foundation
import TallyTestSupport
import XCTest

final class ReplicationServerTests: ServerTestCase {
    private var replicas: [(process: Process, directory: String)] = []

    override func tearDown() {
        for replica in replicas {
            replica.process.terminate()
            replica.process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: replica.directory)
        }
        replicas.removeAll()
        super.tearDown()
    }

    private static let redisServer = "/usr/bin/redis-server"

    /// Starts `redis-server --replicaof` the Tally server; returns a client once it answers.
    private func startRedisReplica(of primaryPort: Int) throws -> (client: RESPClient, port: Int) {
        guard FileManager.default.isExecutableFile(atPath: Self.redisServer) else {
            throw XCTSkip("redis-server is not installed")
        }
        let port = ServerProcess.freePort()
        let directory = NSTemporaryDirectory() + "tally-replica-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.redisServer)
        process.arguments = ["--port", String(port), "--replicaof", "127.0.0.1", String(primaryPort), "--save", "",
                             "--appendonly", "no", "--dir", directory, "--logfile", directory + "/log"]
        try process.run()
        replicas.append((process, directory))
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let client = try? RESPClient(port: port) { return (client, port) }
            usleep(20_000)
        }
        throw XCTSkip("redis-server did not start")
    }

    private func info(_ client: RESPClient, _ field: String) throws -> String? {
        let text = try client.call("INFO", "replication").text ?? ""
        for line in text.split(separator: "\r\n") where line.hasPrefix(field + ":") {
            return String(line.dropFirst(field.count + 1))
        }
        return nil
    }

    private func integerField(_ client: RESPClient, _ field: String) throws -> Int64 {
        Int64(try info(client, field) ?? "") ?? -1
    }

    /// Waits until the replica has applied everything the primary streamed.
    private func waitForCatchUp(primary: RESPClient, replica: RESPClient, file: StaticString = #filePath,
                                line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            if try info(replica, "master_link_status") == "up" {
                let target = try integerField(primary, "master_repl_offset")
                if try integerField(replica, "slave_repl_offset") == target { return }
            }
            usleep(20_000)
        }
        XCTFail("the replica never caught up", file: file, line: line)
    }

    private func writeMixedData(_ client: RESPClient) throws {
        _ = try client.call("INCRBY", "counter", "41")
        _ = try client.call("INCR", "counter")
        _ = try client.call("SET", "ttl", "v", "EX", "500")
        _ = try client.call("HSET", "hash", "a", "1", "b", "2")
        _ = try client.call("RPUSH", "list", "x", "y", "z")
        _ = try client.call("ZADD", "zset", "1", "one", "2", "two")
        _ = try client.call("SADD", "set", "m1", "m2")
        _ = try client.call("XADD", "stream", "1-1", "f", "v")
        _ = try client.call("MULTI")
        _ = try client.call("INCR", "tx")
        _ = try client.call("LPOP", "list")
        _ = try client.call("EXEC")
        _ = try client.call("EVAL", "redis.call('set', KEYS[1], ARGV[1]) return redis.call('incr', KEYS[2])", "2",
                            "scripted", "scriptcounter", "v")
        _ = try client.call("SELECT", "5")
        _ = try client.call("SET", "indb5", "five")
        _ = try client.call("SELECT", "0")
    }

    private func assertSameData(_ primary: RESPClient, _ replica: RESPClient, file: StaticString = #filePath,
                                line: UInt = #line) throws {
        let reads: [[String]] = [
            ["GET", "counter"], ["GET", "scripted"], ["GET", "scriptcounter"], ["GET", "tx"], ["HGETALL", "hash"],
            ["LRANGE", "list", "0", "-1"], ["ZRANGE", "zset", "0", "-1", "WITHSCORES"], ["SMEMBERS", "set"],
            ["XRANGE", "stream", "-", "+"], ["GET", "ttl"], ["DBSIZE"],
        ]
        for read in reads {
            try primary.sendRaw(RESPClient.encode(read))
            try replica.sendRaw(RESPClient.encode(read))
            let expected = try primary.readReply()
            var actual = try replica.readReply()
            if read[0] == "SMEMBERS", case .array(let members?) = actual {
                actual = .array(members.sorted { $0.description < $1.description })
            }
            var wanted = expected
            if read[0] == "SMEMBERS", case .array(let members?) = expected {
                wanted = .array(members.sorted { $0.description < $1.description })
            }
            XCTAssertEqual(actual, wanted, "\(read)", file: file, line: line)
        }
        guard case .integer(let ttl) = try replica.call("TTL", "ttl") else {
            return XCTFail("TTL", file: file, line: line)
        }
        XCTAssertGreaterThan(ttl, 400, file: file, line: line)
        _ = try replica.call("SELECT", "5")
        XCTAssertEqual(try replica.call("GET", "indb5"), .bulk(Array("five".utf8)), file: file, line: line)
        _ = try replica.call("SELECT", "0")
    }

    func testRedisReplicaSyncsDisklessFollowsWritesAndWaitCountsIt() throws {
        let server = try start(["--repl-diskless-sync-delay", "0"])
        let primary = try RESPClient(port: server.port)
        _ = try primary.call("SET", "before", "sync")
        let (replica, replicaPort) = try startRedisReplica(of: server.port)
        try waitForCatchUp(primary: primary, replica: replica)
        XCTAssertEqual(try replica.call("GET", "before"), .bulk(Array("sync".utf8)))
        try writeMixedData(primary)
        XCTAssertEqual(try primary.call("WAIT", "1", "5000"), .integer(1))
        try waitForCatchUp(primary: primary, replica: replica)
        try assertSameData(primary, replica)
        // ROLE and INFO list the replica with the offset it acknowledged.
        let offset = try integerField(primary, "master_repl_offset")
        let role = try primary.call("ROLE")
        guard case .array(let parts?) = role, parts.count == 3, case .array(let listed?) = parts[2] else {
            return XCTFail("ROLE: \(role)")
        }
        XCTAssertEqual(parts[0], .bulk(Array("master".utf8)))
        XCTAssertEqual(listed.count, 1)
        let slave0 = try info(primary, "slave0") ?? ""
        XCTAssertTrue(slave0.hasPrefix("ip=127.0.0.1,port=\(replicaPort),state=online,offset="), slave0)
        XCTAssertEqual(try integerField(primary, "connected_slaves"), 1)
        XCTAssertGreaterThan(offset, 0)
        // WAIT for more replicas than exist times out with the count that acknowledged.
        XCTAssertEqual(try primary.call("WAIT", "2", "200"), .integer(1))
        XCTAssertTrue((try primary.call("CLIENT", "LIST", "TYPE", "replica").text ?? "").contains("flags=S"))
    }

    func testDiskBasedSyncAndPartialResyncAfterTheLinkDrops() throws {
        let server = try start(["--repl-diskless-sync", "no"])
        let primary = try RESPClient(port: server.port)
        try writeMixedData(primary)
        let (replica, _) = try startRedisReplica(of: server.port)
        try waitForCatchUp(primary: primary, replica: replica)
        try assertSameData(primary, replica)
        let replid = try info(primary, "master_replid")
        XCTAssertEqual(try primary.call("CLIENT", "KILL", "TYPE", "replica"), .integer(1))
        _ = try primary.call("INCR", "counter")
        try waitForCatchUp(primary: primary, replica: replica)
        try assertSameData(primary, replica)
        let stats = try primary.call("INFO", "stats").text ?? ""
        XCTAssertTrue(stats.contains("sync_full:1\r\n"), stats)
        XCTAssertTrue(stats.contains("sync_partial_ok:1\r\n"), stats)
        XCTAssertEqual(try info(primary, "master_replid"), replid)
    }

    /// Writes made while the primary waits out repl-diskless-sync-delay are in the image and
    /// reach the replica once (INCRs would show a double application). The first replica makes
    /// the backlog exist, so the second one's delay runs while the stream is being fed.
    func testWritesDuringTheDisklessDelayArriveOnce() throws {
        let server = try start(["--repl-diskless-sync-delay", "1"])
        let primary = try RESPClient(port: server.port)
        let (first, _) = try startRedisReplica(of: server.port)
        try waitForCatchUp(primary: primary, replica: first)
        let (second, _) = try startRedisReplica(of: server.port)
        let deadline = Date().addingTimeInterval(1.5)
        var increments: Int64 = 0
        while Date() < deadline {
            _ = try primary.call("INCR", "during")
            increments += 1
            usleep(10_000)
        }
        try waitForCatchUp(primary: primary, replica: second)
        try waitForCatchUp(primary: primary, replica: first)
        for replica in [first, second] {
            XCTAssertEqual(try replica.call("GET", "during"), .bulk(Array(String(increments).utf8)))
        }
    }

    /// After an `$EOF:` transfer the stream waits for the replica's first REPLCONF ACK: a redis-server
    /// replica recognises the mark only as the last 40 bytes of a read, so writes sent right behind
    /// it left the replica waiting for the end of the payload forever.
    func testDisklessTransferHoldsTheStreamUntilTheFirstAck() throws {
        let server = try start(["--repl-diskless-sync-delay", "0"])
        let primary = try RESPClient(port: server.port)
        let replica = try RESPClient(port: server.port)
        XCTAssertEqual(try replica.call("REPLCONF", "capa", "eof", "capa", "psync2"), .simple("OK"))
        try replica.sendRaw(RESPClient.encode(["PSYNC", "?", "-1"]))
        var received: [UInt8] = []
        var mark: [UInt8] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            received += try replica.readAvailable(waitMilliseconds: 100)
            let text = String(decoding: received, as: UTF8.self)
            if mark.isEmpty, let range = text.range(of: "$EOF:") {
                let start = text.utf8.distance(from: text.utf8.startIndex, to: range.upperBound)
                if received.count >= start + 40 { mark = Array(received[start..<start + 40]) }
            }
            if !mark.isEmpty && received.count > 45 && Array(received.suffix(40)) == mark { break }
        }
        XCTAssertFalse(mark.isEmpty, "no $EOF: transfer: \(String(decoding: received, as: UTF8.self))")
        XCTAssertEqual(Array(received.suffix(40)), mark)
        for _ in 0..<5 { _ = try primary.call("INCR", "counter") }
        XCTAssertEqual(try replica.readAvailable(waitMilliseconds: 300), [])
        try replica.sendRaw(RESPClient.encode(["REPLCONF", "ACK", "0"]))
        var stream: [UInt8] = []
        while Date() < deadline && !String(decoding: stream, as: UTF8.self).contains("counter") {
            stream += try replica.readAvailable(waitMilliseconds: 100)
        }
        XCTAssertTrue(String(decoding: stream, as: UTF8.self).contains("$4\r\nINCR\r\n$7\r\ncounter\r\n"))
    }

    func testMinReplicasToWriteRefusesWithoutEnoughGoodReplicas() throws {
        let server = try start(["--min-replicas-to-write", "1"])
        let primary = try RESPClient(port: server.port)
        XCTAssertEqual(try primary.call("SET", "k", "v"), .error("NOREPLICAS Not enough good replicas to write."))
        XCTAssertEqual(try primary.call("GET", "k"), .bulk(nil))
        _ = try primary.call("CONFIG", "SET", "min-replicas-to-write", "0")
        XCTAssertEqual(try primary.call("SET", "k", "v"), .simple("OK"))
    }
}
