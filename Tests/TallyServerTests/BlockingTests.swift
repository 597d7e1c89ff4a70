// BlockingTests: BLPOP/BRPOP/BLMOVE/BRPOPLPUSH/BLMPOP and BZPOP*/BZMPOP against the real binary, several connections.
import Foundation
import TallyTestSupport
import XCTest

final class BlockingTests: ServerTestCase {
    private func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

    /// Waits until INFO reports `count` blocked clients.
    private func waitForBlocked(_ client: RESPClient, _ count: Int, file: StaticString = #filePath,
                                line: UInt = #line) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try client.call("INFO", "clients").text ?? "").contains("blocked_clients:\(count)\r\n") { return }
            usleep(2_000)
        }
        XCTFail("blocked_clients never became \(count)", file: file, line: line)
    }

    func testFirstBlockedIsFirstServedAndPushesGoToWaitersFirst() throws {
        let server = try start(["--io-threads", "2"])
        let control = try RESPClient(port: server.port)
        let first = try RESPClient(port: server.port)
        let second = try RESPClient(port: server.port)
        try first.sendRaw(RESPClient.encode(["BLPOP", "q", "0"]))
        try waitForBlocked(control, 1)
        try second.sendRaw(RESPClient.encode(["BRPOP", "other", "q", "0"]))
        try waitForBlocked(control, 2)
        // One push of three: each waiter gets one element before anyone else sees the list.
        XCTAssertEqual(try control.call("RPUSH", "q", "a", "b", "c"), .integer(3))
        XCTAssertEqual(try first.readReply(), .array([bulk("q"), bulk("a")]))
        XCTAssertEqual(try second.readReply(), .array([bulk("q"), bulk("c")]))
        XCTAssertEqual(try control.call("LRANGE", "q", "0", "-1"), .array([bulk("b")]))
        XCTAssertEqual(try control.call("INFO", "clients").text?.contains("blocked_clients:0\r\n"), true)
        // The connection is usable again, and pipelined input behind the blocked command runs after it.
        try first.sendRaw(RESPClient.encode(["BLPOP", "p", "0"]) + RESPClient.encode(["PING"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("LPUSH", "p", "x"), .integer(1))
        XCTAssertEqual(try first.readReply(), .array([bulk("p"), bulk("x")]))
        XCTAssertEqual(try first.readReply(), .simple("PONG"))
    }

    func testTimeoutsAndNonBlockingForms() throws {
        let server = try start(["--timeout", "1"])
        let client = try RESPClient(port: server.port)
        let started = Date()
        XCTAssertEqual(try client.call("BLPOP", "none", "0.2"), .array(nil))
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.19)
        XCTAssertEqual(try client.call("BLMOVE", "none", "d", "LEFT", "LEFT", "0.05"), .bulk(nil))
        XCTAssertEqual(try client.call("BLMPOP", "0.05", "1", "none", "LEFT"), .array(nil))
        XCTAssertEqual(try client.call("BLPOP", "none", "-1"), .error("ERR timeout is negative"))
        XCTAssertEqual(try client.call("BLPOP", "none", "x"), .error("ERR timeout is not a float or out of range"))
        // Inside MULTI a blocking pop answers at once, like its non-blocking form.
        XCTAssertEqual(try client.call("MULTI"), .simple("OK"))
        XCTAssertEqual(try client.call("BLPOP", "none", "0"), .simple("QUEUED"))
        XCTAssertEqual(try client.call("BRPOPLPUSH", "none", "d", "0"), .simple("QUEUED"))
        XCTAssertEqual(try client.call("EXEC"), .array([.array(nil), .bulk(nil)]))
        // Served at once when the list has elements; `timeout 1` does not disconnect a blocked client.
        let other = try RESPClient(port: server.port)
        XCTAssertEqual(try other.call("RPUSH", "src", "1", "2"), .integer(2))
        XCTAssertEqual(try client.call("BLMPOP", "0", "2", "none", "src", "RIGHT", "COUNT", "5"),
                       .array([bulk("src"), .array([bulk("2"), bulk("1")])]))
        try client.sendRaw(RESPClient.encode(["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]))
        try waitForBlocked(other, 1)
        usleep(2_500_000)
        // `other` sat idle past the timeout and is gone; the blocked client is still there.
        let pusher = try RESPClient(port: server.port)
        XCTAssertEqual(try pusher.call("RPUSH", "src", "z"), .integer(1))
        XCTAssertEqual(try client.readReply(), bulk("z"))
        XCTAssertEqual(try pusher.call("LRANGE", "dst", "0", "-1"), .array([bulk("z")]))
    }

    func testClosingOrUnblockingFreesTheWaiter() throws {
        let server = try start()
        let control = try RESPClient(port: server.port)
        do {
            let leaving = try RESPClient(port: server.port)
            try leaving.sendRaw(RESPClient.encode(["BLPOP", "gone", "0"]))
            try waitForBlocked(control, 1)
        }
        try waitForBlocked(control, 0)
        XCTAssertEqual(try control.call("RPUSH", "gone", "kept"), .integer(1))
        XCTAssertEqual(try control.call("LLEN", "gone"), .integer(1))

        let blocked = try RESPClient(port: server.port)
        guard case .integer(let id) = try blocked.call("CLIENT", "ID") else { return XCTFail("no id") }
        try blocked.sendRaw(RESPClient.encode(["BRPOP", "none", "0"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("CLIENT", "UNBLOCK", "\(id)", "ERROR"), .integer(1))
        XCTAssertEqual(try blocked.readReply(), .error("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
        try blocked.sendRaw(RESPClient.encode(["BRPOP", "none", "0"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("CLIENT", "UNBLOCK", "\(id)"), .integer(1))
        XCTAssertEqual(try blocked.readReply(), .array(nil))
        XCTAssertEqual(try control.call("CLIENT", "UNBLOCK", "\(id)"), .integer(0))
    }

    /// Served pops reach the AOF as LPOP/RPOP/LMOVE, after the push that fed them, so a restart
    /// replays to the same lists.
    func testServedPopsAreLoggedAsTheirNonBlockingForms() throws {
        let directory = NSTemporaryDirectory() + "tally-blocking-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = ["--dir", directory, "--appendonly", "yes", "--appendfsync", "always"]
        let server = try start(arguments)
        let control = try RESPClient(port: server.port)
        let waiter = try RESPClient(port: server.port)
        try waiter.sendRaw(RESPClient.encode(["BLMOVE", "a", "b", "RIGHT", "LEFT", "0"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("RPUSH", "a", "1", "2", "3"), .integer(3))
        XCTAssertEqual(try waiter.readReply(), bulk("3"))
        try waiter.sendRaw(RESPClient.encode(["BLMPOP", "0", "1", "c", "LEFT", "COUNT", "2"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("LPUSH", "c", "x", "y", "z"), .integer(3))
        XCTAssertEqual(try waiter.readReply(), .array([bulk("c"), .array([bulk("z"), bulk("y")])]))
        server.stop()
        let aof = try FileManager.default.contentsOfDirectory(atPath: directory + "/appendonlydir")
            .filter { $0.hasSuffix(".incr.aof") }
            .map { try String(contentsOfFile: directory + "/appendonlydir/" + $0, encoding: .utf8) }
            .joined()
        let words = aof.split(separator: "\r\n").filter { !$0.hasPrefix("*") && !$0.hasPrefix("$") }
            .joined(separator: " ")
        XCTAssertTrue(words.contains("RPUSH a 1 2 3 LMOVE a b RIGHT LEFT"), words)
        XCTAssertTrue(words.contains("LPUSH c x y z LPOP c 2"), words)
        let again = try start(arguments)
        let check = try RESPClient(port: again.port)
        XCTAssertEqual(try check.call("LRANGE", "a", "0", "-1"), .array([bulk("1"), bulk("2")]))
        XCTAssertEqual(try check.call("LRANGE", "b", "0", "-1"), .array([bulk("3")]))
        XCTAssertEqual(try check.call("LRANGE", "c", "0", "-1"), .array([bulk("x")]))
    }

    /// A ZADD serves sorted-set waiters in blocking order (a list waiter on the same key is not
    /// served by a sorted set); served pops are logged as ZPOPMIN/ZPOPMAX [count] and replay.
    func testSortedSetWaitersAreServedAndLoggedAsZPOP() throws {
        let directory = NSTemporaryDirectory() + "tally-zblocking-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = ["--dir", directory, "--appendonly", "yes", "--appendfsync", "always"]
        let server = try start(arguments)
        let control = try RESPClient(port: server.port)
        let first = try RESPClient(port: server.port)
        let second = try RESPClient(port: server.port)
        try first.sendRaw(RESPClient.encode(["BZPOPMIN", "z", "0"]))
        try waitForBlocked(control, 1)
        try second.sendRaw(RESPClient.encode(["BZMPOP", "0", "2", "other", "z", "MAX", "COUNT", "2"]))
        try waitForBlocked(control, 2)
        XCTAssertEqual(try control.call("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"), .integer(4))
        XCTAssertEqual(try first.readReply(), .array([bulk("z"), bulk("a"), bulk("1")]))
        XCTAssertEqual(try second.readReply(),
                       .array([bulk("z"), .array([.array([bulk("d"), bulk("4")]), .array([bulk("c"), bulk("3")])])]))
        XCTAssertEqual(try control.call("ZRANGE", "z", "0", "-1"), .array([bulk("b")]))
        server.stop()
        let aof = try FileManager.default.contentsOfDirectory(atPath: directory + "/appendonlydir")
            .filter { $0.hasSuffix(".incr.aof") }
            .map { try String(contentsOfFile: directory + "/appendonlydir/" + $0, encoding: .utf8) }
            .joined()
        let words = aof.split(separator: "\r\n").filter { !$0.hasPrefix("*") && !$0.hasPrefix("$") }
            .joined(separator: " ")
        XCTAssertTrue(words.contains("ZADD z 1 a 2 b 3 c 4 d ZPOPMIN z ZPOPMAX z 2"), words)
        let again = try start(arguments)
        let check = try RESPClient(port: again.port)
        XCTAssertEqual(try check.call("ZRANGE", "z", "0", "-1"), .array([bulk("b")]))
    }
}
