// ReplicationStreamApplierTests: a replica's offsets over the primary's stream at every split point,
// MULTI held until EXEC, REPLCONF GETACK, PING, SELECT and postponed commands.
import TallyProtocol
import XCTest

/// An in-memory primary-link session: records what ran, what was fed and what was acknowledged.
private final class RecordingTarget: ReplicationStreamTarget {
    var ran: [[String]] = []
    var fed: [UInt8] = []
    var acknowledged: [Int64] = []
    var isInTransaction = false
    /// Commands named here are postponed once each (CLIENT PAUSE, a busy script).
    var postponeOnce: Set<String> = []

    func run(_ arguments: CommandArguments) -> ReplicationStreamStep {
        let words = (0..<arguments.count).map { String(decoding: arguments[$0], as: UTF8.self) }
        let name = words[0].lowercased()
        if postponeOnce.remove(name) != nil { return .postponed }
        ran.append(words)
        // The engine's view of MULTI on the link session.
        if name == "multi" { isInTransaction = true }
        if name == "exec" || name == "discard" { isInTransaction = false }
        return .applied
    }

    func feedApplied(_ bytes: ArraySlice<UInt8>) { fed.append(contentsOf: bytes) }

    func acknowledge(offset: Int64) { acknowledged.append(offset) }
}

final class ReplicationStreamApplierTests: XCTestCase {
    private func encode(_ words: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        RESPRecord.append(words.map { Array($0.utf8) }, to: &bytes)
        return bytes
    }

    /// A stream of SELECT, writes, PING, a transaction and GETACK, with each command's end offset.
    private func sampleStream(startingAt start: Int64) -> (bytes: [UInt8], commands: [[String]]) {
        let commands = [
            ["SELECT", "3"], ["SET", "k", "v"], ["PING"], ["INCR", "counter"],
            ["MULTI"], ["INCR", "a"], ["INCR", "b"], ["EXEC"],
            ["REPLCONF", "GETACK", "*"], ["DEL", "k"],
        ]
        return (commands.flatMap(encode), commands)
    }

    /// Every 2-way split and a byte-by-byte feed end with the same offsets, the same commands run
    /// in order, and every byte fed verbatim exactly once.
    func testOffsetsAndFeedAtEverySplitPoint() {
        let start: Int64 = 1000
        let (stream, commands) = sampleStream(startingAt: start)
        let expectedRan = commands.filter { $0[0] != "REPLCONF" }
        var splits: [[Int]] = [Array(repeating: 1, count: stream.count)]
        for point in 1..<stream.count { splits.append([point, stream.count - point]) }
        for chunks in splits {
            let target = RecordingTarget()
            var applier = ReplicationStreamApplier(offset: start)
            var position = 0
            for size in chunks {
                applier.receive(contentsOf: stream[position..<(position + size)])
                position += size
                XCTAssertEqual(applier.apply(to: target), .drained)
                // The applied offset never passes a byte that is not a complete command outside MULTI.
                XCTAssertLessThanOrEqual(applier.appliedOffset, applier.receivedOffset)
                XCTAssertEqual(target.fed.count, Int(applier.appliedOffset - start))
            }
            XCTAssertEqual(target.ran, expectedRan, "chunks \(chunks.prefix(2))")
            XCTAssertEqual(applier.appliedOffset, start + Int64(stream.count))
            XCTAssertEqual(applier.receivedOffset, start + Int64(stream.count))
            XCTAssertEqual(target.fed, stream, "chunks \(chunks.prefix(2))")
        }
    }

    /// Inside MULTI the offset stays at the MULTI (a broken link resumes there, as Redis's
    /// reploff does), and the whole transaction is fed at EXEC.
    func testTransactionIsAppliedAndFedAtExec() {
        let target = RecordingTarget()
        var applier = ReplicationStreamApplier(offset: 0)
        let set = encode(["SET", "x", "1"])
        let opening = encode(["MULTI"]) + encode(["INCR", "a"])
        applier.receive(contentsOf: set + opening)
        XCTAssertEqual(applier.apply(to: target), .drained)
        XCTAssertEqual(applier.appliedOffset, Int64(set.count))
        XCTAssertEqual(applier.receivedOffset, Int64(set.count + opening.count))
        XCTAssertEqual(target.fed, set)
        XCTAssertEqual(applier.pendingBytes, Int64(opening.count))
        let exec = encode(["EXEC"])
        applier.receive(contentsOf: exec)
        XCTAssertEqual(applier.apply(to: target), .drained)
        XCTAssertEqual(applier.appliedOffset, Int64(set.count + opening.count + exec.count))
        XCTAssertEqual(target.fed, set + opening + exec)
    }

    /// GETACK is answered with the offset before it (Redis's reploff moves after the call), and
    /// its bytes count like any command's and reach sub-replicas too.
    func testGetAckReportsOffsetBeforeItself() {
        let target = RecordingTarget()
        var applier = ReplicationStreamApplier(offset: 41)
        let ping = encode(["PING"])
        let getack = encode(["REPLCONF", "GETACK", "*"])
        applier.receive(contentsOf: ping + getack)
        XCTAssertEqual(applier.apply(to: target), .drained)
        XCTAssertEqual(target.acknowledged, [41 + Int64(ping.count)])
        XCTAssertEqual(target.ran, [["PING"]])
        XCTAssertEqual(applier.appliedOffset, 41 + Int64(ping.count + getack.count))
        XCTAssertEqual(target.fed, ping + getack)
    }

    /// A postponed command holds the offset and everything after it; the next apply runs it first.
    func testPostponedCommandRunsAgainInOrder() {
        let target = RecordingTarget()
        target.postponeOnce = ["incr"]
        var applier = ReplicationStreamApplier(offset: 0)
        let set = encode(["SET", "k", "v"])
        let incr = encode(["INCR", "n"])
        let del = encode(["DEL", "k"])
        applier.receive(contentsOf: set + incr + del)
        XCTAssertEqual(applier.apply(to: target), .postponed)
        XCTAssertEqual(target.ran, [["SET", "k", "v"]])
        XCTAssertEqual(applier.appliedOffset, Int64(set.count))
        XCTAssertEqual(target.fed, set)
        XCTAssertEqual(applier.apply(to: target), .drained)
        XCTAssertEqual(target.ran, [["SET", "k", "v"], ["INCR", "n"], ["DEL", "k"]])
        XCTAssertEqual(applier.appliedOffset, Int64(set.count + incr.count + del.count))
        XCTAssertEqual(target.fed, set + incr + del)
    }

    /// Bytes that are not RESP end the link (it reconnects); nothing after them is applied.
    func testProtocolErrorStopsApplying() {
        let target = RecordingTarget()
        var applier = ReplicationStreamApplier(offset: 0)
        applier.receive(contentsOf: encode(["SET", "a", "1"]) + Array("*1\r\n!oops\r\n".utf8))
        guard case .protocolError = applier.apply(to: target) else { return XCTFail("expected a protocol error") }
        XCTAssertEqual(target.ran, [["SET", "a", "1"]])
    }

    /// The primary's values may exceed proto-max-bulk-len (no limit applies to its link).
    func testLargeValueBeyondClientLimits() {
        let target = RecordingTarget()
        var applier = ReplicationStreamApplier(offset: 0)
        let value = String(repeating: "x", count: 600_000)
        let stream = encode(["SET", "big", value])
        var defaults = RequestParser(limits: RequestParserLimits(maxBulkLength: 512 * 1024))
        var arguments = CommandArguments()
        defaults.append(contentsOf: stream)
        XCTAssertNotEqual(defaults.next(into: &arguments), .command)
        applier.receive(contentsOf: stream)
        XCTAssertEqual(applier.apply(to: target), .drained)
        XCTAssertEqual(target.ran.first?[2].count, value.count)
        XCTAssertEqual(applier.appliedOffset, Int64(stream.count))
    }
}
