// LatencyStatsServerTests: INFO latencystats and its two options through the real binary, as
// Redis 7.0's tests/unit/info.tcl checks them (that unit starts its own servers, so it cannot run
// against tally-server in external mode).
import Foundation
import TallyTestSupport
import XCTest

final class LatencyStatsServerTests: ServerTestCase {
    private func percentiles(_ client: RESPClient, _ command: String) throws -> String? {
        let info = try client.call("INFO", "latencystats").text ?? ""
        let prefix = "latency_percentiles_usec_\(command):"
        return info.components(separatedBy: "\r\n").first { $0.hasPrefix(prefix) }
            .map { String($0.dropFirst(prefix.count)) }
    }

    /// `p50=1.003,p99=...`: the labels, each with a value of three decimals.
    private func assertShape(_ line: String?, _ labels: [String], file: StaticString = #filePath,
                             line number: UInt = #line) {
        guard let line else { return XCTFail("no latencystats line", file: file, line: number) }
        let figures = line.components(separatedBy: ",")
        XCTAssertEqual(figures.map { $0.components(separatedBy: "=")[0] }, labels.map { "p" + $0 },
                       file: file, line: number)
        for figure in figures {
            let value = figure.components(separatedBy: "=")[1]
            XCTAssertEqual(value.components(separatedBy: ".").last?.count, 3, figure, file: file, line: number)
        }
    }

    func testTrackingOnOffAndPercentiles() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("CONFIG", "GET", "latency-tracking*"), .array([
            .bulk(Array("latency-tracking".utf8)), .bulk(Array("yes".utf8)),
            .bulk(Array("latency-tracking-info-percentiles".utf8)), .bulk(Array("50 99 99.9".utf8)),
        ]))
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking", "no"), .simple("OK"))
        _ = try client.call("SET", "a", "b")
        XCTAssertNil(try percentiles(client, "set"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking", "yes"), .simple("OK"))
        _ = try client.call("SET", "a", "b")
        assertShape(try percentiles(client, "set"), ["50", "99", "99.9"])
        XCTAssertEqual(try client.call("CONFIG", "RESETSTAT"), .simple("OK"))
        XCTAssertNil(try percentiles(client, "set"))

        _ = try client.call("SET", "a", "b")
        _ = try client.call("GET", "a")
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking-info-percentiles", "0.0 50.0 100.0"),
                       .simple("OK"))
        XCTAssertEqual(try client.call("CONFIG", "GET", "latency-tracking-info-percentiles"), .array([
            .bulk(Array("latency-tracking-info-percentiles".utf8)), .bulk(Array("0 50 100".utf8)),
        ]))
        assertShape(try percentiles(client, "set"), ["0", "50", "100"])
        assertShape(try percentiles(client, "get"), ["0", "50", "100"])
        // A container's subcommands have their own lines.
        assertShape(try percentiles(client, "config|set"), ["0", "50", "100"])
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking-info-percentiles", ""), .simple("OK"))
        XCTAssertEqual(try percentiles(client, "set"), "")
    }

    func testBadPercentilesChangeNothing() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking-info-percentiles", "10.0 50.0 a"),
                       .error("ERR CONFIG SET failed (possibly related to argument 'latency-tracking-info-percentiles')"
                              + " - Invalid latency-tracking-info-percentiles parameters"))
        XCTAssertEqual(try client.call("CONFIG", "SET", "latency-tracking-info-percentiles", "10.0 50.0 101.0"),
                       .error("ERR CONFIG SET failed (possibly related to argument 'latency-tracking-info-percentiles')"
                              + " - latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"))
        XCTAssertEqual(try client.call("CONFIG", "GET", "latency-tracking-info-percentiles"), .array([
            .bulk(Array("latency-tracking-info-percentiles".utf8)), .bulk(Array("50 99 99.9".utf8)),
        ]))
    }

    func testBlockedCommandIsRecordedWhenServed() throws {
        let server = try start()
        let control = try RESPClient(port: server.port)
        let blocked = try RESPClient(port: server.port)
        try blocked.sendRaw(RESPClient.encode(["BLPOP", "list1", "0"]))
        let deadline = Date().addingTimeInterval(10)
        while !((try control.call("INFO", "clients").text ?? "").contains("blocked_clients:1\r\n")) {
            XCTAssertLessThan(Date(), deadline)
            usleep(2_000)
        }
        // Parked, not yet answered: no histogram yet (Redis records a blocked call when it unblocks).
        XCTAssertNil(try percentiles(control, "blpop"))
        _ = try control.call("LPUSH", "list1", "a")
        XCTAssertEqual(try blocked.readReply(), .array([.bulk(Array("list1".utf8)), .bulk(Array("a".utf8))]))
        assertShape(try percentiles(control, "blpop"), ["50", "99", "99.9"])
        guard case .array(let histogram) = try control.call("LATENCY", "HISTOGRAM", "blpop") else {
            return XCTFail("LATENCY HISTOGRAM")
        }
        XCTAssertEqual(histogram?.first, .bulk(Array("blpop".utf8)))
    }
}
