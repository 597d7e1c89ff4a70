// OutputBufferTests: byte-exact goldens for the RESP2/RESP3 encoders.
import TallyProtocol
import XCTest

final class OutputBufferTests: XCTestCase {
    private func encoded(_ version: RESPVersion = .resp2, _ body: (inout OutputBuffer) -> Void) -> String {
        var buffer = OutputBuffer(protocolVersion: version)
        body(&buffer)
        return String(decoding: buffer.storage[buffer.readerIndex...], as: UTF8.self)
    }

    func testResp2Goldens() {
        XCTAssertEqual(encoded { $0.writeSimpleString("OK") }, "+OK\r\n")
        XCTAssertEqual(encoded { $0.writeError("ERR syntax error") }, "-ERR syntax error\r\n")
        XCTAssertEqual(encoded { $0.writeError(Array("ERR a\r\nb".utf8)) }, "-ERR a  b\r\n")
        XCTAssertEqual(encoded { $0.writeInteger(Int64.min) }, ":-9223372036854775808\r\n")
        XCTAssertEqual(encoded { $0.writeInteger(0) }, ":0\r\n")
        XCTAssertEqual(encoded { $0.writeBulkString(Array("hi".utf8)) }, "$2\r\nhi\r\n")
        XCTAssertEqual(encoded { $0.writeBulkDecimal(-12) }, "$3\r\n-12\r\n")
        XCTAssertEqual(encoded { $0.writeNull() }, "$-1\r\n")
        XCTAssertEqual(encoded { $0.writeNullArray() }, "*-1\r\n")
        XCTAssertEqual(encoded { $0.writeMapHeader(2) }, "*4\r\n")
        XCTAssertEqual(encoded { $0.writeBoolean(true) }, ":1\r\n")
        XCTAssertEqual(encoded { $0.writeDouble(formatted: Array("1.5".utf8)) }, "$3\r\n1.5\r\n")
        XCTAssertEqual(encoded { $0.writeVerbatim(Array("a".utf8)) }, "$1\r\na\r\n")
    }

    func testResp3Goldens() {
        XCTAssertEqual(encoded(.resp3) { $0.writeNull() }, "_\r\n")
        XCTAssertEqual(encoded(.resp3) { $0.writeMapHeader(2) }, "%2\r\n")
        XCTAssertEqual(encoded(.resp3) { $0.writeSetHeader(3) }, "~3\r\n")
        XCTAssertEqual(encoded(.resp3) { $0.writeBoolean(false) }, "#f\r\n")
        XCTAssertEqual(encoded(.resp3) { $0.writeDouble(formatted: Array("1.5".utf8)) }, ",1.5\r\n")
        XCTAssertEqual(encoded(.resp3) { $0.writeVerbatim(Array("a".utf8)) }, "=5\r\ntxt:a\r\n")
    }

    func testTruncateAndDiscard() {
        var buffer = OutputBuffer()
        buffer.writeSimpleString("OK")
        let mark = buffer.writerIndex
        buffer.writeInteger(5)
        buffer.truncate(to: mark)
        XCTAssertEqual(buffer.readableBytes, 5)
        buffer.readerIndex = 5
        buffer.discardReadBytes()
        XCTAssertEqual(buffer.readableBytes, 0)
    }
}
