// ClientControlTests: CLIENT PAUSE/UNPAUSE and CLIENT REPLY against the real binary.
import Foundation
import TallyTestSupport
import XCTest

final class ClientControlTests: ServerTestCase {
    private func blockedClients(_ client: RESPClient) throws -> Int {
        let info = try client.call("INFO", "clients").text ?? ""
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("blocked_clients:") }) else { return -1 }
        return Int(line.dropFirst("blocked_clients:".count)) ?? -1
    }

    func testWritePauseHoldsWritesInOrderAndKeepsExpiredKeys() throws {
        let server = try start(["--io-threads", "2"])
        let control = try RESPClient(port: server.port)
        let writer = try RESPClient(port: server.port)
        XCTAssertEqual(try control.call("SET", "soon", "x", "PX", "20"), .simple("OK"))
        XCTAssertEqual(try control.call("CLIENT", "PAUSE", "100000", "WRITE"), .simple("OK"))
        // A read runs; a write and everything pipelined behind it waits.
        XCTAssertEqual(try writer.call("GET", "missing"), .bulk(nil))
        try writer.sendRaw(RESPClient.encode(["INCR", "n"]) + RESPClient.encode(["GET", "n"]))
        var waited = 0
        while try blockedClients(control) != 1 && waited < 500 {
            usleep(10_000)
            waited += 1
        }
        XCTAssertEqual(try blockedClients(control), 1)
        usleep(50_000)
        // The key is past its expiry: it reads as missing but is not deleted while paused.
        XCTAssertEqual(try control.call("GET", "soon"), .bulk(nil))
        let expired = try control.call("INFO", "stats").text ?? ""
        XCTAssertTrue(expired.contains("expired_keys:0\r\n"))
        XCTAssertEqual(try control.call("CLIENT", "UNPAUSE"), .simple("OK"))
        XCTAssertEqual(try writer.readReply(), .integer(1))
        XCTAssertEqual(try writer.readReply(), .bulk(Array("1".utf8)))
        XCTAssertEqual(try blockedClients(control), 0)
        XCTAssertEqual(try control.call("CLIENT", "PAUSE", "10", "BOTH"),
                       .error("ERR CLIENT PAUSE mode must be WRITE or ALL"))
        XCTAssertEqual(try control.call("CLIENT", "PAUSE", "-1"), .error("ERR timeout is negative"))
    }

    // EXEC of read-only scripts (flags=no-writes) is not a write: a WRITE pause lets it run, as
    // Redis does (it was held until the pause ended).
    func testWritePauseLetsTransactionsOfReadOnlyScriptsRun() throws {
        let server = try start([])
        let control = try RESPClient(port: server.port)
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try control.call("CLIENT", "PAUSE", "100000", "WRITE"), .simple("OK"))
        XCTAssertEqual(try client.call("MULTI"), .simple("OK"))
        XCTAssertEqual(try client.call("EVAL", "#!lua flags=no-writes\nreturn 12", "0"), .simple("QUEUED"))
        XCTAssertEqual(try client.call("EVAL", "#!lua flags=no-writes\nreturn 13", "0"), .simple("QUEUED"))
        XCTAssertEqual(try client.call("EXEC"), .array([.integer(12), .integer(13)]))
        XCTAssertEqual(try blockedClients(control), 0)
        XCTAssertEqual(try control.call("CLIENT", "UNPAUSE"), .simple("OK"))
    }

    func testAllPauseEndsAtItsDeadline() throws {
        let server = try start([])
        let control = try RESPClient(port: server.port)
        let started = Date()
        XCTAssertEqual(try control.call("CLIENT", "PAUSE", "300"), .simple("OK"))
        XCTAssertEqual(try control.call("PING"), .simple("PONG"))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.29)
    }

    func testReplyOffSkipOn() throws {
        let server = try start([])
        let client = try RESPClient(port: server.port)
        let commands = [["SET", "a", "1"], ["CLIENT", "REPLY", "SKIP"], ["INCR", "a"], ["INCR", "a"],
                        ["CLIENT", "REPLY", "OFF"], ["INCR", "a"], ["CLIENT", "REPLY", "SKIP"], ["GET", "a"],
                        ["CLIENT", "REPLY", "ON"], ["GET", "a"], ["CLIENT", "REPLY", "SKIP"],
                        ["CLIENT", "REPLY", "SKIP"], ["GET", "a"], ["GET", "a"], ["CLIENT", "REPLY", "FOO"]]
        try client.sendRaw(commands.flatMap { RESPClient.encode($0) })
        XCTAssertEqual(try client.readReply(), .simple("OK"))
        XCTAssertEqual(try client.readReply(), .integer(3))
        XCTAssertEqual(try client.readReply(), .simple("OK"))
        XCTAssertEqual(try client.readReply(), .bulk(Array("4".utf8)))
        XCTAssertEqual(try client.readReply(), .bulk(Array("4".utf8)))
        XCTAssertEqual(try client.readReply(), .error("ERR syntax error"))
    }
}
