// ErrorStatsServerTests: INFO errorstats through the real binary: blocked clients, protocol errors, RESETSTAT.
import Foundation
import TallyTestSupport
import XCTest

final class ErrorStatsServerTests: ServerTestCase {
    private func waitForBlocked(_ client: RESPClient, _ count: Int) throws {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try client.call("INFO", "clients").text ?? "").contains("blocked_clients:\(count)\r\n") { return }
            usleep(2_000)
        }
        XCTFail("blocked_clients never became \(count)")
    }

    private func field(_ client: RESPClient, _ section: String, _ name: String) throws -> String? {
        let info = try client.call("INFO", section).text ?? ""
        return info.components(separatedBy: "\r\n").first { $0.hasPrefix(name + ":") }
            .map { String($0.dropFirst(name.count + 1)) }
    }

    func testErrorstatsSectionAndReset() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        XCTAssertEqual(try client.call("INFO", "errorstats"), .bulk(Array("# Errorstats\r\n".utf8)))
        XCTAssertEqual(try client.call("SET", "s", "v"), .simple("OK"))
        _ = try client.call("LPUSH", "s", "x")
        _ = try client.call("NOSUCHCOMMAND")
        _ = try client.call("EVAL", "return redis.error_reply('MY:CODE#1 text')", "0")
        XCTAssertEqual(
            try client.call("INFO", "errorstats").text,
            "# Errorstats\r\nerrorstat_ERR:count=1\r\nerrorstat_MY_CODE_1:count=1\r\nerrorstat_WRONGTYPE:count=1\r\n")
        XCTAssertEqual(try field(client, "stats", "total_error_replies"), "3")
        XCTAssertEqual(try client.call("CONFIG", "RESETSTAT"), .simple("OK"))
        XCTAssertEqual(try client.call("INFO", "errorstats"), .bulk(Array("# Errorstats\r\n".utf8)))
        XCTAssertEqual(try field(client, "stats", "total_error_replies"), "0")
        XCTAssertNil(try field(client, "commandstats", "cmdstat_lpush"))
        // A container's subcommand has its own commandstats row.
        XCTAssertEqual(try client.call("CONFIG", "NOSUCH").description.hasPrefix("-ERR unknown subcommand"), true)
        XCTAssertNil(try field(client, "commandstats", "cmdstat_config"))
        XCTAssertEqual(try field(client, "commandstats", "cmdstat_config|resetstat")?.hasPrefix("calls=1,"), true)
    }

    func testBlockedClientsCountTheirErrors() throws {
        let server = try start()
        let control = try RESPClient(port: server.port)
        let blocked = try RESPClient(port: server.port)
        guard case .integer(let id) = try blocked.call("CLIENT", "ID") else { return XCTFail("CLIENT ID") }
        XCTAssertEqual(try control.call("CONFIG", "RESETSTAT"), .simple("OK"))
        try blocked.sendRaw(RESPClient.encode(["BLPOP", "list1", "0"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("CLIENT", "UNBLOCK", String(id), "ERROR"), .integer(1))
        XCTAssertEqual(try blocked.readReply(), .error("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
        XCTAssertEqual(try field(control, "errorstats", "errorstat_UNBLOCKED"), "count=1")
        XCTAssertEqual(try field(control, "commandstats", "cmdstat_blpop")?.hasSuffix(
            ",rejected_calls=0,failed_calls=1"), true)
        XCTAssertEqual(try field(control, "stats", "total_error_replies"), "1")

        XCTAssertEqual(try control.call("XGROUP", "CREATE", "st", "g", "$", "MKSTREAM"), .simple("OK"))
        try blocked.sendRaw(RESPClient.encode(["XREADGROUP", "GROUP", "g", "Alice", "BLOCK", "0", "STREAMS", "st", ">"]))
        try waitForBlocked(control, 1)
        XCTAssertEqual(try control.call("XGROUP", "DESTROY", "st", "g"), .integer(1))
        XCTAssertEqual(try blocked.readReply().description.hasPrefix("-NOGROUP"), true)
        XCTAssertEqual(try field(control, "errorstats", "errorstat_NOGROUP"), "count=1")
        XCTAssertEqual(try field(control, "commandstats", "cmdstat_xreadgroup")?.hasSuffix(
            ",rejected_calls=0,failed_calls=1"), true)
        XCTAssertEqual(try field(control, "stats", "total_error_replies"), "2")
    }

    func testProtocolErrorsCount() throws {
        let server = try start()
        let control = try RESPClient(port: server.port)
        let bad = try RESPClient(port: server.port)
        try bad.sendRaw("*1\r\n$x\r\n")
        _ = try bad.readUntilClosed()
        XCTAssertEqual(try field(control, "errorstats", "errorstat_ERR"), "count=1")
        XCTAssertEqual(try field(control, "stats", "total_error_replies"), "1")
    }
}
