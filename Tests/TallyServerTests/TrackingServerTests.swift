// TrackingServerTests: CLIENT TRACKING against the real binary with two I/O threads, so a tracking
// client and the writer of its keys usually run on different loops. The bytes expected are the
// ones redis-server 7.0.15 sends for the same steps.
import Foundation
import TallyTestSupport
import XCTest

final class TrackingServerTests: ServerTestCase {
    private func push(_ keys: String...) -> String {
        ">2\r\n$10\r\ninvalidate\r\n*\(keys.count)\r\n" + keys.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
    }

    /// Reads until `expected.count` bytes arrived (or 2 s passed) and compares them exactly.
    private func expectBytes(_ client: RESPClient, _ expected: String, file: StaticString = #filePath,
                             line: UInt = #line) throws {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(2)
        while received.count < expected.utf8.count && Date() < deadline {
            received += try client.readAvailable(waitMilliseconds: 50)
        }
        XCTAssertEqual(String(decoding: received, as: UTF8.self), expected, file: file, line: line)
    }

    /// Nothing more arrives within 100 ms.
    private func expectSilence(_ client: RESPClient, file: StaticString = #filePath, line: UInt = #line) throws {
        let extra = try client.readAvailable(waitMilliseconds: 100)
        XCTAssertEqual(String(decoding: extra, as: UTF8.self), "", file: file, line: line)
    }

    private func resp3(_ client: RESPClient) throws {
        try client.sendRaw(RESPClient.encode(["HELLO", "3"]))
        _ = try client.readAvailable(waitMilliseconds: 1000)
    }

    private func send(_ client: RESPClient, _ arguments: String...) throws {
        try client.sendRaw(RESPClient.encode(arguments))
    }

    func testDefaultModeInvalidatesOnceAndBeforeTheReaderNextReply() throws {
        let server = try start(["--io-threads", "2"])
        let reader = try RESPClient(port: server.port)
        let writer = try RESPClient(port: server.port)
        try resp3(reader)
        try send(reader, "CLIENT", "TRACKING", "on")
        try expectBytes(reader, "+OK\r\n")
        XCTAssertEqual(try writer.call("MSET", "a", "1", "b", "2"), .simple("OK"))
        try send(reader, "MGET", "a", "b")
        try expectBytes(reader, "*2\r\n$1\r\n1\r\n$1\r\n2\r\n")
        for round in 0..<50 {
            XCTAssertEqual(try writer.call("SET", "a", "\(round)"), .simple("OK"))
            // The push was posted before the writer's reply: it precedes the reader's next reply.
            try send(reader, "GET", "a")
            try expectBytes(reader, push("a") + "$\("\(round)".utf8.count)\r\n\(round)\r\n")
        }
        // Forgotten once sent: a write the reader did not read again sends nothing.
        XCTAssertEqual(try writer.call("SET", "b", "x"), .simple("OK"))
        try expectBytes(reader, push("b"))
        XCTAssertEqual(try writer.call("SET", "b", "y"), .simple("OK"))
        try expectSilence(reader)
        let info = try writer.call("INFO").text ?? ""
        XCTAssertTrue(info.contains("tracking_clients:1\r\n"), info)
        XCTAssertTrue(info.contains("tracking_total_keys:1\r\n"), info)  // a, read by the last GET
    }

    func testOwnWriteIsInvalidatedAfterItsReplyUnlessNoloop() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        try resp3(client)
        try send(client, "CLIENT", "TRACKING", "on")
        try expectBytes(client, "+OK\r\n")
        try send(client, "SET", "k", "1")
        try send(client, "GET", "k")
        try send(client, "SET", "k", "2")
        try send(client, "PING")
        try expectBytes(client, "+OK\r\n$1\r\n1\r\n+OK\r\n" + push("k") + "+PONG\r\n")
        // Inside a transaction the push follows the whole EXEC reply.
        try send(client, "GET", "k")
        try send(client, "MULTI")
        try send(client, "INCR", "k")
        try send(client, "GET", "k")
        try send(client, "EXEC")
        try expectBytes(client, "$1\r\n2\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:3\r\n$1\r\n3\r\n" + push("k"))
        try send(client, "CLIENT", "TRACKING", "on", "NOLOOP")
        try send(client, "GET", "k")
        try send(client, "SET", "k", "4")
        try send(client, "PING")
        try expectBytes(client, "+OK\r\n$1\r\n3\r\n+OK\r\n+PONG\r\n")
        // FLUSHALL: a null invalidation for every tracking client, its own after the reply.
        try send(client, "FLUSHALL")
        try expectBytes(client, "+OK\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n")
    }

    func testRedirectToARESP2SubscriberAndBrokenRedirect() throws {
        let server = try start(["--io-threads", "2"])
        let subscriber = try RESPClient(port: server.port)
        guard case .integer(let subscriberID) = try subscriber.call("CLIENT", "ID") else {
            return XCTFail("CLIENT ID")
        }
        XCTAssertEqual(try subscriber.call("SUBSCRIBE", "__redis__:invalidate"),
                       .array([.bulk(Array("subscribe".utf8)), .bulk(Array("__redis__:invalidate".utf8)), .integer(1)]))
        let tracker = try RESPClient(port: server.port)
        XCTAssertEqual(try tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", "\(subscriberID)"), .simple("OK"))
        XCTAssertEqual(try tracker.call("CLIENT", "GETREDIR"), .integer(subscriberID))
        XCTAssertEqual(try tracker.call("GET", "k"), .bulk(nil))
        XCTAssertEqual(try tracker.call("SET", "k", "v"), .simple("OK"))
        let channel = "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"
        try expectBytes(subscriber, channel + "*1\r\n$1\r\nk\r\n")
        XCTAssertEqual(try tracker.call("FLUSHDB"), .simple("OK"))
        try expectBytes(subscriber, channel + "$-1\r\n")
        let list = try tracker.call("CLIENT", "LIST", "ID", "\(try tracker.call("CLIENT", "ID").integerValue)")
        XCTAssertTrue(list.text?.contains("flags=t ") == true && list.text?.contains("redir=\(subscriberID) ") == true,
                      list.description)
        // The redirect client goes away: a RESP3 tracker is told so, once per invalidation due.
        XCTAssertEqual(try tracker.call("GET", "k"), .bulk(nil))
        XCTAssertEqual(try subscriber.call("QUIT"), .simple("OK"))
        let deadline = Date().addingTimeInterval(5)
        while (try tracker.call("CLIENT", "LIST").text ?? "").contains("id=\(subscriberID) ") && Date() < deadline {
            usleep(5_000)
        }
        try resp3(tracker)
        let writer = try RESPClient(port: server.port)
        XCTAssertEqual(try writer.call("SET", "k", "w"), .simple("OK"))
        try expectBytes(tracker, ">2\r\n$21\r\ntracking-redir-broken\r\n:\(subscriberID)\r\n")
        try send(tracker, "CLIENT", "TRACKINGINFO")
        try expectBytes(tracker, "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n"
                        + "$8\r\nredirect\r\n:\(subscriberID)\r\n$8\r\nprefixes\r\n*0\r\n")
    }

    func testBroadcastSendsEachIterationsKeysOnceAndHonoursPrefixesAndNoloop() throws {
        let server = try start(["--io-threads", "2"])
        let listener = try RESPClient(port: server.port)
        let writer = try RESPClient(port: server.port)
        try resp3(listener)
        try send(listener, "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "cart:", "NOLOOP")
        try expectBytes(listener, "+OK\r\n")
        // One transaction: its keys are modified in one event-loop iteration, so one message.
        try writer.sendRaw(RESPClient.encode(["MULTI"]) + RESPClient.encode(["SET", "user:2", "a"])
                           + RESPClient.encode(["SET", "user:1", "b"]) + RESPClient.encode(["SET", "other", "c"])
                           + RESPClient.encode(["EXEC"]))
        for _ in 0..<5 { _ = try writer.readReply() }
        try expectBytes(listener, push("user:1", "user:2"))
        XCTAssertEqual(try writer.call("SET", "cart:9", "x"), .simple("OK"))
        try expectBytes(listener, push("cart:9"))
        // Its own write is left out under NOLOOP.
        try send(listener, "SET", "user:3", "mine")
        try expectBytes(listener, "+OK\r\n")
        try expectSilence(listener)
        XCTAssertEqual(try writer.call("CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab"),
                       .error("ERR Prefix 'a' overlaps with another provided prefix 'ab'. "
                              + "Prefixes for a single client must not overlap."))
        let info = try writer.call("INFO", "stats").text ?? ""
        XCTAssertTrue(info.contains("tracking_total_prefixes:2\r\n"), info)
    }

    func testOptInAndOptOutFollowClientCaching() throws {
        let server = try start()
        let reader = try RESPClient(port: server.port)
        let writer = try RESPClient(port: server.port)
        try resp3(reader)
        try send(reader, "CLIENT", "TRACKING", "on", "OPTIN")
        try send(reader, "GET", "a")
        try send(reader, "CLIENT", "CACHING", "yes")
        try send(reader, "GET", "b")
        try expectBytes(reader, "+OK\r\n_\r\n+OK\r\n_\r\n")
        XCTAssertEqual(try writer.call("MSET", "a", "1", "b", "1"), .simple("OK"))
        try expectBytes(reader, push("b"))
        try expectSilence(reader)
        try send(reader, "CLIENT", "TRACKING", "on", "OPTOUT")
        try expectBytes(reader, "-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
                        + "and then re-enabling it with a different mode.\r\n")
        try send(reader, "CLIENT", "TRACKING", "off")
        try send(reader, "CLIENT", "TRACKING", "on", "OPTOUT")
        try send(reader, "CLIENT", "CACHING", "no")
        try send(reader, "GET", "a")
        try send(reader, "GET", "b")
        try expectBytes(reader, "+OK\r\n+OK\r\n+OK\r\n$1\r\n1\r\n$1\r\n1\r\n")
        XCTAssertEqual(try writer.call("MSET", "a", "2", "b", "2"), .simple("OK"))
        try expectBytes(reader, push("b"))
        try expectSilence(reader)
    }

    func testTrackingTableLimitInvalidatesKeysToStayUnderIt() throws {
        let server = try start()
        let reader = try RESPClient(port: server.port)
        let admin = try RESPClient(port: server.port)
        try resp3(reader)
        try send(reader, "CLIENT", "TRACKING", "on")
        try expectBytes(reader, "+OK\r\n")
        for index in 0..<300 {
            try send(reader, "GET", "key\(index)")
            try expectBytes(reader, "_\r\n")
        }
        XCTAssertEqual(try admin.call("CONFIG", "SET", "tracking-table-max-keys", "10"), .simple("OK"))
        // 290 keys over the limit: the cron's growing effort invalidates them, one push each.
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(5)
        while received.count(of: UInt8(ascii: ">")) < 290 && Date() < deadline {
            received += try reader.readAvailable(waitMilliseconds: 100)
        }
        XCTAssertEqual(received.count(of: UInt8(ascii: ">")), 290)
        let info = try admin.call("INFO", "stats").text ?? ""
        XCTAssertTrue(info.contains("tracking_total_keys:10\r\n"), info)
    }
}

private extension Array where Element == UInt8 {
    func count(of byte: UInt8) -> Int { reduce(0) { $0 + ($1 == byte ? 1 : 0) } }
}

private extension RESPValue {
    var integerValue: Int64 {
        if case .integer(let value) = self { return value }
        return -1
    }
}
