// RequestParserTests: every split point, Redis 7.0's limits and the exact protocol.tcl error texts.
import TallyProtocol
import TallyTestSupport
import XCTest

final class RequestParserTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    private func command(_ parts: String...) -> ParsedItem { .command(parts.map { Array($0.utf8) }) }

    private func check(
        _ input: [UInt8], _ expected: [ParsedItem], verifier: DripFeedVerifier = DripFeedVerifier(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let failures = verifier.mismatches(input, expected: expected)
        XCTAssertEqual(failures.count, 0, failures.prefix(3).joined(separator: "\n"), file: file, line: line)
    }

    /// Redis's clientsCronResizeQueryBuffer rules: idle buffers are freed, a buffer grown for one
    /// large request shrinks to its recent peak, and a bulk still arriving keeps its room.
    func testQueryBufferShrinksAfterLargeRequestAndWhenIdle() {
        var parser = RequestParser()
        var arguments = CommandArguments()
        XCTAssertGreaterThanOrEqual(parser.freeBytes, RequestParser.readBufferBytes)
        let large = bytes("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$400000\r\n") + [UInt8](repeating: 65, count: 400_000)
            + bytes("\r\n")
        parser.append(contentsOf: large)
        XCTAssertEqual(parser.next(into: &arguments), .command)
        let grown = parser.unparsedBytes + parser.freeBytes
        XCTAssertGreaterThan(grown, 400_000)
        // The first pass only records the peak; the next one shrinks to it (a read's worth).
        parser.resizeQueryBuffer(idle: false)
        parser.append(contentsOf: bytes("PING\r\n"))
        XCTAssertEqual(parser.next(into: &arguments), .command)
        parser.resizeQueryBuffer(idle: false)
        let shrunk = parser.unparsedBytes + parser.freeBytes
        XCTAssertGreaterThan(shrunk, 0)
        XCTAssertLessThan(shrunk, 64 * 1024)
        // Resizing in the middle of a bulk keeps what was received.
        parser.append(contentsOf: bytes("*2\r\n$4\r\nECHO\r\n$100000\r\nabc"))
        XCTAssertEqual(parser.next(into: &arguments), .needMoreData)
        parser.resizeQueryBuffer(idle: false)
        parser.resizeQueryBuffer(idle: true)
        parser.append(contentsOf: [UInt8](repeating: 66, count: 99_997) + bytes("\r\n"))
        XCTAssertEqual(parser.next(into: &arguments), .command)
        XCTAssertEqual(arguments[1].count, 100_000)
        XCTAssertEqual(arguments[1].prefix(3), bytes("abc")[...])
        // Idle: nothing is kept; the next read gets a whole read buffer again.
        parser.resizeQueryBuffer(idle: true)
        XCTAssertEqual(parser.unparsedBytes + parser.freeBytes, 0)
        parser.append(contentsOf: bytes("PING\r\n"))
        XCTAssertGreaterThanOrEqual(parser.freeBytes, RequestParser.readBufferBytes - 6)
        XCTAssertEqual(parser.next(into: &arguments), .command)
    }

    /// A request that arrives whole takes the one-pass path, one arriving in pieces the
    /// incremental one: random pipelines of valid and damaged requests (leading zeros, signs,
    /// ten-digit and negative lengths, a missing `$`, `*0`, bare `\r`, limits at their edge)
    /// give the same commands and the same error either way, authenticated or not.
    func testWholeRequestsParseAsTheyDoInPieces() {
        var generator = SystemRandomNumberGenerator()
        let damages: [(String) -> String] = [
            { $0 }, { $0 }, { $0 },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$03\r\n") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$+3\r\n") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$-3\r\n") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$0000000003\r\n") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "3\r\n") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$3\r") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$3 \r\n") },
            { $0.replacingOccurrences(of: "*", with: "*0\r\n*") },
            { $0.replacingOccurrences(of: "*", with: "*-1\r\n*") },
            { $0.replacingOccurrences(of: "$3\r\n", with: "$9999999999\r\n") },
        ]
        for round in 0..<400 {
            var input = ""
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let count = Int.random(in: 1...12, using: &generator)
                var request = "*\(count)\r\n"
                for _ in 0..<count {
                    let length = [0, 1, 3, 3, 17].randomElement(using: &generator)!
                    request += "$\(length)\r\n" + String(repeating: "x", count: length) + "\r\n"
                }
                input += damages.randomElement(using: &generator)!(request)
                if Bool.random(using: &generator) { input += "PING\r\n" }
            }
            let bytes = Array(input.utf8)
            for authenticated in [true, false] {
                var limits = RequestParserLimits()
                if round % 2 == 0 { limits.unauthenticatedMaxBulkLength = 3 }
                let verifier = DripFeedVerifier(limits: limits, authenticated: authenticated)
                let whole = verifier.parse(bytes, chunks: [bytes.count])
                let pieces = verifier.parse(bytes, chunks: Array(repeating: 1, count: bytes.count))
                XCTAssertEqual(whole, pieces, "\(input.debugDescription) authenticated: \(authenticated)")
            }
        }
    }

    func testMultibulkAtEverySplit() {
        check(bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"), [command("SET", "k", "hello")])
    }

    func testPipelinedMixOfMultibulkAndInline() {
        let input = bytes("*1\r\n$4\r\nPING\r\nINCR counter\r\n*2\r\n$4\r\nINCR\r\n$1\r\nx\r\nGET  x\n")
        check(input, [command("PING"), command("INCR", "counter"), command("INCR", "x"), command("GET", "x")])
    }

    func testBinarySafeArguments() {
        var input = bytes("*2\r\n$3\r\nGET\r\n$6\r\n")
        let payload: [UInt8] = [0, 13, 10, 255, 42, 13]
        input += payload + bytes("\r\n")
        check(input, [.command([bytes("GET"), payload])])
    }

    func testEmptyInlineLinesAndEmptyMultibulkAreSkipped() {
        check(bytes("\r\n\r\n*0\r\n*-1\r\n\nPING\r\n"), [command("PING")])
    }

    func testBulkTerminatorIsSkippedUncheckedLikeRedis() {
        // Redis 7.0.15 answers two PONGs to this input: the 2 bytes after a bulk are not validated.
        check(bytes("*1\r\n$4\r\nPINGxxPING\r\n"), [command("PING"), command("PING")])
    }

    func testInlineQuotingRules() {
        check(bytes("set \"a\\x41\\n\" 'it\\'s'\r\n"), [.command([bytes("set"), bytes("aA\n"), bytes("it's")])])
        check(bytes("SET k \"\"\r\n"), [.command([bytes("SET"), bytes("k"), []])])
        check(bytes("\"foo\r\n"), [.error("Protocol error: unbalanced quotes in request")])
        check(bytes("set 'x' \"y\"z\r\n"), [.error("Protocol error: unbalanced quotes in request")])
    }

    func testProtocolErrorTexts() {
        check(bytes("*3000000000\r\n"), [.error("Protocol error: invalid multibulk length")])
        check(bytes("*\r\n"), [.error("Protocol error: invalid multibulk length")])
        check(bytes("*01\r\n"), [.error("Protocol error: invalid multibulk length")])
        check(bytes("*+1\r\n"), [.error("Protocol error: invalid multibulk length")])
        check(bytes("*abc\r\n"), [.error("Protocol error: invalid multibulk length")])
        check(bytes("*1\r\nfoo\r\n"), [.error("Protocol error: expected '$', got 'f'")])
        check(bytes("*1\r\n$-1\r\n"), [.error("Protocol error: invalid bulk length")])
        check(bytes("*1\r\n$\r\n"), [.error("Protocol error: invalid bulk length")])
        check(bytes("*1\r\n$600000000\r\n"), [.error("Protocol error: invalid bulk length")])
        check(bytes("*1\r\n$2147483648\r\n"), [.error("Protocol error: invalid bulk length")])
    }

    func testTooBigLinesWithoutNewline() {
        let verifier = DripFeedVerifier(limits: RequestParserLimits(maxInlineLength: 16))
        check(bytes(String(repeating: "a", count: 17)), [.error("Protocol error: too big inline request")],
            verifier: verifier)
        check(bytes("*" + String(repeating: "1", count: 17)), [.error("Protocol error: too big mbulk count string")],
            verifier: verifier)
        check(bytes("*1\r\n$" + String(repeating: "1", count: 17)),
            [.error("Protocol error: too big bulk count string")], verifier: verifier)
        // Exactly at the limit is still waiting for more data, not an error.
        check(bytes(String(repeating: "a", count: 16)), [], verifier: verifier)
    }

    func testDefaultInlineLimitIs64KB() {
        var parser = RequestParser()
        var arguments = CommandArguments()
        parser.append(contentsOf: [UInt8](repeating: 97, count: 64 * 1024))
        XCTAssertEqual(parser.next(into: &arguments), .needMoreData)
        parser.append(contentsOf: [97])
        XCTAssertEqual(parser.next(into: &arguments), .protocolError("Protocol error: too big inline request"))
    }

    func testProtoMaxBulkLenIsConfigurable() {
        let verifier = DripFeedVerifier(limits: RequestParserLimits(maxBulkLength: 4))
        check(bytes("*1\r\n$4\r\nPING\r\n"), [command("PING")], verifier: verifier)
        check(bytes("*1\r\n$5\r\nHELLO\r\n"), [.error("Protocol error: invalid bulk length")], verifier: verifier)
    }

    func testUnauthenticatedLimits() {
        let verifier = DripFeedVerifier(authenticated: false)
        check(bytes("*11\r\n"), [.error("Protocol error: unauthenticated multibulk length")], verifier: verifier)
        check(bytes("*1\r\n$16385\r\n"), [.error("Protocol error: unauthenticated bulk length")], verifier: verifier)
        check(bytes("*2\r\n$4\r\nAUTH\r\n$3\r\npwd\r\n"), [command("AUTH", "pwd")], verifier: verifier)
    }

    func testLargeBulkArrivingInPiecesAndBufferCompaction() {
        var parser = RequestParser()
        var arguments = CommandArguments()
        let payload = [UInt8](repeating: 7, count: 300_000)
        let input = bytes("*2\r\n$3\r\nSET\r\n$300000\r\n") + payload + bytes("\r\n*1\r\n$4\r\nPING\r\n")
        var offset = 0
        var results: [[UInt8]] = []
        while offset < input.count {
            let end = min(input.count, offset + 4096)
            parser.append(contentsOf: input[offset..<end])
            offset = end
            while case .command = parser.next(into: &arguments) { results.append(arguments.copy(arguments.count - 1)) }
        }
        XCTAssertEqual(results, [payload, bytes("PING")])
        XCTAssertEqual(parser.unparsedBytes, 0)
    }

    func testStrictIntegerParsing() {
        XCTAssertEqual(parseRedisInteger(bytes("0")), 0)
        XCTAssertEqual(parseRedisInteger(bytes("-9223372036854775808")), Int64.min)
        XCTAssertEqual(parseRedisInteger(bytes("9223372036854775807")), Int64.max)
        XCTAssertNil(parseRedisInteger(bytes("9223372036854775808")))
        XCTAssertNil(parseRedisInteger(bytes("-0")))
        XCTAssertNil(parseRedisInteger(bytes("007")))
        XCTAssertNil(parseRedisInteger(bytes(" 1")))
        XCTAssertNil(parseRedisInteger(bytes("")))
    }
}
