// PubSubServerTests: pub/sub against the real binary, subscribers spread over two I/O threads,
// and a slow subscriber cut off by `client-output-buffer-limit pubsub`.
import Foundation
import TallyTestSupport
import XCTest

final class PubSubServerTests: ServerTestCase {
    private func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

    func testDeliveryAcrossIOThreadsKeepsEachPublishersOrder() throws {
        let server = try start(["--io-threads", "2"])
        // Connections are handed to the I/O threads in turn, so these four land on both.
        var subscribers: [RESPClient] = []
        for _ in 0..<4 {
            let client = try RESPClient(port: server.port)
            try client.sendRaw(RESPClient.encode(["SUBSCRIBE", "ch"]))
            XCTAssertEqual(try client.readReply(), .array([bulk("subscribe"), bulk("ch"), .integer(1)]))
            subscribers.append(client)
        }
        let patterned = subscribers[1]
        try patterned.sendRaw(RESPClient.encode(["PSUBSCRIBE", "c*"]))
        XCTAssertEqual(try patterned.readReply(), .array([bulk("psubscribe"), bulk("c*"), .integer(2)]))
        let publishers = [try RESPClient(port: server.port), try RESPClient(port: server.port)]
        let messageCount = 200
        for index in 0..<messageCount {
            // Every channel subscriber plus the pattern subscription, counted on both threads.
            XCTAssertEqual(try publishers[index % 2].call("PUBLISH", "ch", "m\(index)"), .integer(5))
        }
        for (position, client) in subscribers.enumerated() {
            for index in 0..<messageCount {
                XCTAssertEqual(try client.readReply(), .array([bulk("message"), bulk("ch"), bulk("m\(index)")]))
                if position == 1 {
                    XCTAssertEqual(try client.readReply(),
                                   .array([bulk("pmessage"), bulk("c*"), bulk("ch"), bulk("m\(index)")]))
                }
            }
        }
        let info = try publishers[0].call("INFO", "stats").text ?? ""
        XCTAssertTrue(info.contains("pubsub_channels:1\r\n") && info.contains("pubsub_patterns:1\r\n"), info)
        let list = try publishers[0].call("CLIENT", "LIST").text ?? ""
        XCTAssertTrue(list.contains("flags=P db=0 sub=1 psub=1 ssub=0"), list)
    }

    func testSlowSubscriberIsDisconnectedPastThePubsubLimit() throws {
        let server = try start(["--client-output-buffer-limit", "pubsub 1mb 256kb 60"])
        let slow = try RESPClient(port: server.port)
        slow.setReceiveBuffer(4096)
        try slow.sendRaw(RESPClient.encode(["SUBSCRIBE", "firehose"]))
        let publisher = try RESPClient(port: server.port)
        // Wait until the subscription is registered, then flood without the subscriber reading.
        let deadline = Date().addingTimeInterval(10)
        while try publisher.call("PUBSUB", "NUMSUB", "firehose") != .array([bulk("firehose"), .integer(1)]) {
            XCTAssertLessThan(Date(), deadline)
            usleep(2_000)
        }
        let payload = String(repeating: "x", count: 64 * 1024)
        var delivered = 0
        for _ in 0..<200 {
            if case .integer(let receivers) = try publisher.call("PUBLISH", "firehose", payload) {
                delivered += Int(receivers)
            }
            if try publisher.call("PUBSUB", "NUMSUB", "firehose") == .array([bulk("firehose"), .integer(0)]) { break }
        }
        // Closed long before 200 x 64 KB (12.5 MB) were queued for it.
        XCTAssertLessThan(delivered, 100)
        XCTAssertEqual(try publisher.call("PUBSUB", "NUMSUB", "firehose"), .array([bulk("firehose"), .integer(0)]))
        XCTAssertEqual(try publisher.call("CONFIG", "GET", "client-output-buffer-limit"),
                       .array([bulk("client-output-buffer-limit"),
                               bulk("normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 262144 60")]))
    }
}
