// ServerTests: the real tally-server binary on an ephemeral port, spoken to over TCP.
import Foundation
import Synchronization
import TallyTestSupport
import XCTest

final class ServerTests: ServerTestCase {
    func testPipelinedCommandsInOneWriteAndSplitAcrossWrites() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        try client.sendRaw("*2\r\n$4\r\nINCR\r\n$1\r\nc\r\nINCR c\r\n*3\r\n$6\r\nINCRBY\r\n$1\r\nc\r\n$2\r\n10\r\n")
        XCTAssertEqual(try client.readReply(), .integer(1))
        XCTAssertEqual(try client.readReply(), .integer(2))
        XCTAssertEqual(try client.readReply(), .integer(12))
        // The same command delivered one byte at a time.
        for byte in RESPClient.encode(["INCR", "c"]) {
            try client.sendRaw([byte])
            usleep(1000)
        }
        XCTAssertEqual(try client.readReply(), .integer(13))
    }

    func testProtocolErrorRepliesThenCloses() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        try client.sendRaw("*1\r\n$4\r\nPING\r\n*3000000000\r\n")
        let bytes = try client.readUntilClosed()
        XCTAssertEqual(
            String(decoding: bytes, as: UTF8.self), "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n")
    }

    func testStalledReaderDoesNotBlockOtherClients() throws {
        let server = try start()
        let setup = try RESPClient(port: server.port)
        let big = String(repeating: "x", count: 512 * 1024)
        XCTAssertEqual(try setup.call("SET", "big", big), .simple("OK"))
        // This client asks for ~50 MB of replies (far beyond the socket buffers) and does not read.
        let stalled = try RESPClient(port: server.port)
        var pipeline: [UInt8] = []
        for _ in 0..<100 { pipeline += RESPClient.encode(["GET", "big"]) }
        try stalled.sendRaw(pipeline)
        usleep(300_000)
        let other = try RESPClient(port: server.port, timeoutSeconds: 3)
        for value in 1...50 { XCTAssertEqual(try other.call("INCR", "n"), .integer(Int64(value))) }
        // The stalled client still gets every reply once it reads.
        var received = 0
        while received < 100 {
            guard case .bulk(let payload?) = try stalled.readReply() else { return XCTFail("expected bulk") }
            XCTAssertEqual(payload.count, big.utf8.count)
            received += 1
        }
        let info = try other.call("INFO", "memory")
        XCTAssertNotNil(info.text?.range(of: "used_memory:"))
    }

    func testMaxClientsRefusesExtraConnections() throws {
        let server = try start(["--maxclients", "2"])
        let first = try RESPClient(port: server.port)
        let second = try RESPClient(port: server.port)
        XCTAssertEqual(try first.call("PING"), .simple("PONG"))
        XCTAssertEqual(try second.call("PING"), .simple("PONG"))
        let third = try RESPClient(port: server.port)
        let refusal = String(decoding: try third.readUntilClosed(), as: UTF8.self)
        XCTAssertEqual(refusal, "-ERR max number of clients reached\r\n")
        let info = try first.call("INFO", "stats")
        XCTAssertNotNil(info.text?.range(of: "rejected_connections:1\r\n"))
    }

    func testUnknownOptionExitsWithRedisReport() throws {
        let server = try ServerProcess(arguments: ["--foo", "bar"], waitReady: false)
        servers.append(server)
        XCTAssertEqual(server.waitForExit(), 1)
        XCTAssertTrue(server.output.contains(
            "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 6\n"
                + ">>> 'foo \"bar\"'\n"
                + "Bad directive or wrong number of arguments\n"), server.output)
    }

    func testBadValueInConfigFileNamesTheLine() throws {
        let path = NSTemporaryDirectory() + "tally-\(UUID().uuidString).conf"
        try "# comment\nport 0\nmaxmemory 12xb\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try ServerProcess(waitReady: false, configFile: path)
        servers.append(server)
        XCTAssertEqual(server.waitForExit(), 1)
        XCTAssertTrue(server.output.contains("at line 3\n>>> 'maxmemory 12xb'\nargument must be a memory value\n"),
            server.output)
    }

    func testConfigGetAndSet() throws {
        let server = try start(["--maxmemory", "64mb"])
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("CONFIG", "GET", "maxmemory"), .array([.bulk(Array("maxmemory".utf8)),
            .bulk(Array("67108864".utf8))]))
        XCTAssertEqual(try client.call("CONFIG", "SET", "timeout", "30", "hz", "20"), .simple("OK"))
        guard case .array(let items?) = try client.call("CONFIG", "GET", "timeout", "h?") else { return XCTFail() }
        XCTAssertEqual(items.compactMap(\.text), ["timeout", "30", "hz", "20"])
        XCTAssertEqual(try client.call("CONFIG", "SET", "foo", "bar"),
            .error("ERR Unknown option or number of arguments for CONFIG SET - 'foo'"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "timeout", "x"),
            .error("ERR CONFIG SET failed (possibly related to argument 'timeout') - "
                + "argument couldn't be parsed into an integer"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "hz", "5", "hz", "6"),
            .error("ERR CONFIG SET failed (possibly related to argument 'hz') - duplicate parameter"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "daemonize", "yes"),
            .error("ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "appendfsync", "bad"),
            .error("ERR CONFIG SET failed (possibly related to argument 'appendfsync') - "
                + "argument(s) must be one of the following: always, everysec, no"))
        // A failed multi-pair SET changes nothing.
        XCTAssertEqual(
            try client.call("CONFIG", "GET", "hz"), .array([.bulk(Array("hz".utf8)), .bulk(Array("20".utf8))]))
        XCTAssertEqual(try client.call("CONFIG", "RESETSTAT"), .simple("OK"))
    }

    func testInfoFields() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("INCR", "counter"), .integer(1))
        XCTAssertEqual(try client.call("GET", "missing"), .bulk(nil))
        guard let info = try client.call("INFO").text else { return XCTFail("INFO is not a bulk") }
        for expected in [
            "# Server\r\nredis_version:7.0.15\r\n", "tally_version:", "process_id:\(server.process.processIdentifier)",
            "tcp_port:\(server.port)\r\n", "connected_clients:1\r\n", "used_memory:", "used_memory_human:",
            "keyspace_misses:1\r\n", "db0:keys=1,expires=0,avg_ttl=0\r\n", "# Persistence\r\n"]
        {
            XCTAssertNotNil(info.range(of: expected), "missing \(expected)")
        }
        guard let stats = try client.call("INFO", "commandstats").text else { return XCTFail() }
        XCTAssertTrue(stats.hasPrefix("# Commandstats\r\n"))
        XCTAssertNotNil(stats.range(of: "cmdstat_incr:calls=1,usec="))
        XCTAssertNil(stats.range(of: "# Server"))
        XCTAssertEqual(try client.call("INFO", "nosuchsection"), .bulk([]))
    }

    func testClientCommands() throws {
        let server = try start()
        let first = try RESPClient(port: server.port)
        let second = try RESPClient(port: server.port)
        guard case .integer(let secondID) = try second.call("CLIENT", "ID") else { return XCTFail() }
        XCTAssertEqual(try first.call("CLIENT", "SETNAME", "worker-1"), .simple("OK"))
        XCTAssertEqual(try first.call("CLIENT", "GETNAME"), .bulk(Array("worker-1".utf8)))
        XCTAssertEqual(try first.call("CLIENT", "SETNAME", "a b"),
            .error("ERR Client names cannot contain spaces, newlines or special characters."))
        guard let list = try first.call("CLIENT", "LIST").text else { return XCTFail() }
        XCTAssertEqual(list.split(separator: "\n").count, 2)
        XCTAssertNotNil(list.range(of: "name=worker-1 "))
        XCTAssertNotNil(list.range(of: "id=\(secondID) addr=127.0.0.1:"))
        XCTAssertEqual(try first.call("CLIENT", "KILL", "ID", "999999"), .integer(0))
        XCTAssertEqual(try first.call("CLIENT", "KILL", "1.2.3.4:5"), .error("ERR No such client"))
        XCTAssertEqual(try first.call("CLIENT", "KILL", "ID", String(secondID)), .integer(1))
        XCTAssertThrowsError(try second.call("PING"))
        XCTAssertEqual(try first.call("CLIENT", "FOO"), .error("ERR unknown subcommand 'FOO'. Try CLIENT HELP."))
    }

    /// CLIENT KILL naming the caller answers and then closes it before it reads another command
    /// (the reply is the count, and the next command sees the connection gone); CLIENT LIST
    /// shows the caller's running command as `cmd=client|list` with its bytes in `qbuf`.
    func testClientKillOfTheCallerAndItsOwnListLine() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        guard let line = try client.call("CLIENT", "LIST").text else { return XCTFail() }
        XCTAssertTrue(line.contains(" qbuf=26 "), line)
        XCTAssertTrue(line.contains(" cmd=client|list "), line)
        XCTAssertTrue(try client.call("CLIENT", "INFO").text?.contains(" cmd=client|info ") == true)
        XCTAssertEqual(try client.call("CLIENT", "NO-EVICT", "on"), .simple("OK"))
        XCTAssertTrue(try client.call("CLIENT", "INFO").text?.contains(" flags=e ") == true)
        XCTAssertEqual(try client.call("CLIENT", "NO-EVICT", "maybe"), .error("ERR syntax error"))
        XCTAssertEqual(try client.call("CLIENT", "KILL", "USER", "nobody"), .error("ERR No such user 'nobody'"))
        XCTAssertEqual(try client.call("CLIENT", "KILL", "SKIPME", "no"), .integer(1))
        XCTAssertThrowsError(try client.call("PING"))
    }

    /// CONFIG SET port listens on the new port at once and stops listening on the old one; a port
    /// in use fails the whole command (the other pairs are not applied), as config.c's rollback.
    func testConfigSetPortMovesTheListener() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        let newPort = ServerProcess.freePort()
        XCTAssertEqual(try client.call("CONFIG", "SET", "port", String(newPort)), .simple("OK"))
        var moved: RESPClient?
        for _ in 0..<100 where moved == nil {
            moved = try? RESPClient(port: newPort)
            if moved == nil { usleep(10_000) }
        }
        XCTAssertEqual(try moved?.call("PING"), .simple("PONG"))
        var oldRefused = false
        for _ in 0..<100 where !oldRefused {
            oldRefused = (try? RESPClient(port: server.port)) == nil
            if !oldRefused { usleep(10_000) }
        }
        XCTAssertTrue(oldRefused)
        // The first client's connection stays open.
        XCTAssertEqual(try client.call("CONFIG", "GET", "port"),
                       .array([.bulk(Array("port".utf8)), .bulk(Array(String(newPort).utf8))]))
        let occupied = try ServerProcess(arguments: [])
        servers.append(occupied)
        XCTAssertEqual(try client.call("CONFIG", "SET", "maxmemory", "12345", "port", String(occupied.port)),
            .error("ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. "
                + "Check server logs."))
        XCTAssertEqual(try client.call("CONFIG", "GET", "maxmemory"),
                       .array([.bulk(Array("maxmemory".utf8)), .bulk(Array("0".utf8))]))
        XCTAssertEqual(try RESPClient(port: newPort).call("PING"), .simple("PONG"))
    }

    /// Debian's /etc/redis/redis.conf sets `daemonize yes`, and its service runs
    /// `redis-server /etc/redis/redis.conf --daemonize no`: only the final value is refused. The
    /// file's options for mechanisms Tally does not have (jemalloc, THP, OOM scores) are accepted.
    func testDaemonizeIsJudgedOnTheFinalValue() throws {
        let path = NSTemporaryDirectory() + "tally-\(UUID().uuidString).conf"
        try "daemonize yes\njemalloc-bg-thread yes\noom-score-adj-values 0 200 800\ndisable-thp yes\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let server = try ServerProcess(arguments: ["--daemonize", "no"], configFile: path)
        servers.append(server)
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("CONFIG", "GET", "oom-score-adj-values"),
                       .array([.bulk(Array("oom-score-adj-values".utf8)), .bulk(Array("0 200 800".utf8))]))
        XCTAssertEqual(try client.call("CONFIG", "SET", "oom-score-adj-values", "0 200"),
            .error("ERR CONFIG SET failed (possibly related to argument 'oom-score-adj-values') - wrong number of arguments"))
        let refused = try ServerProcess(arguments: [], waitReady: false, configFile: path)
        servers.append(refused)
        XCTAssertEqual(refused.waitForExit(), 1)
        XCTAssertTrue(refused.output.contains("at line 1\n>>> 'daemonize yes'\n"), refused.output)
    }

    /// MONITOR shows EVAL and FCALL before the commands they run, which come from "lua"
    /// (eval.c evalCommand feeds monitors first; replicationFeedMonitors names script clients lua).
    func testMonitorShowsScriptsBeforeTheirCommands() throws {
        let server = try start()
        let monitor = try RESPClient(port: server.port)
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try monitor.call("MONITOR"), .simple("OK"))
        _ = try client.call("SET", "foo", "bar")
        _ = try client.call("EVAL", "redis.call('set', KEYS[1], ARGV[1])", "1", "k", "v")
        let lines = try (0..<3).map { _ in try monitor.readReply().text ?? "" }
        XCTAssertTrue(lines[0].hasSuffix("] \"SET\" \"foo\" \"bar\""), lines[0])
        XCTAssertTrue(lines[1].contains(" [0 127.0.0.1:") && lines[1].contains("] \"EVAL\" "), lines[1])
        XCTAssertTrue(lines[2].hasSuffix(" [0 lua] \"set\" \"k\" \"v\""), lines[2])
    }

    /// MGET reads its keys one shard lock at a time (optimistically) yet answers one consistent
    /// state: while another I/O thread's MSETs and EXECs give eight keys on different shards the
    /// same new value, every MGET sees them all equal, as with Redis's single thread.
    func testMGetNeverSeesHalfOfAMultiShardWrite() throws {
        let server = try start(["--io-threads", "2"])
        let keys = (0..<8).map { "consistent:\($0)" }
        let writerDone = Atomic<Bool>(false)
        let port = server.port
        let writer = Thread {
            guard let client = try? RESPClient(port: port) else { return }
            var value = 0
            while !writerDone.load(ordering: .relaxed) {
                value += 1
                var arguments = ["MSET"]
                for key in keys { arguments += [key, String(value)] }
                _ = try? client.sendRaw(RESPClient.encode(arguments))
                _ = try? client.readReply()
                if value % 5 == 0 {
                    _ = try? client.call("MULTI")
                    for key in keys { _ = try? client.call("INCR", key) }
                    _ = try? client.call("EXEC")
                    value += 1
                }
            }
        }
        writer.start()
        defer { writerDone.store(true, ordering: .relaxed) }
        let reader = try RESPClient(port: server.port)
        var distinctStates = Set<String>()
        let deadline = Date().addingTimeInterval(1.5)
        while Date() < deadline {
            guard case .array(let items?) = try reader.call("MGET", keys[0], keys[1], keys[2], keys[3], keys[4],
                                                            keys[5], keys[6], keys[7]) else { return XCTFail() }
            let values = items.map { $0.text ?? "nil" }
            XCTAssertEqual(Set(values).count, 1, "a torn read: \(values)")
            if Set(values).count != 1 { break }
            distinctStates.insert(values[0])
        }
        XCTAssertGreaterThan(distinctStates.count, 10, "the writer and reader did not overlap")
    }

    func testIdleClientsAreClosedAfterTimeout() throws {
        let server = try start(["--timeout", "1"])
        let idle = try RESPClient(port: server.port)
        XCTAssertEqual(try idle.call("PING"), .simple("PONG"))
        sleep(3)
        XCTAssertEqual(try idle.readUntilClosed(), [])
    }

    func testSigtermAndShutdownExitCleanly() throws {
        let server = try start()
        server.signal(SIGTERM)
        XCTAssertEqual(server.waitForExit(), 0)
        XCTAssertTrue(server.output.contains("Received SIGTERM scheduling shutdown..."))
        XCTAssertTrue(server.output.contains("ready to exit, bye bye"))

        let second = try start()
        let client = try RESPClient(port: second.port)
        XCTAssertEqual(try client.call("SHUTDOWN", "BOGUS"), .error("ERR syntax error"))
        try client.sendRaw(RESPClient.encode(["SHUTDOWN", "NOSAVE"]))
        XCTAssertEqual(second.waitForExit(), 0)
    }
}
