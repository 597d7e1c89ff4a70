// ReplicationStateTests: the backlog ring (offsets, wraparound, resize) and the PSYNC decisions
// (replid/replid2 rules of replication.c masterTryPartialResynchronization), without sockets.
import TallyKeyspace
import TallyPlatform
import TallyProtocol
import Testing

@testable import TallyServer

@Suite struct ReplicationBacklogTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func emptyBacklogServesOnlyTheNextByte() {
        let backlog = ReplicationBacklog(capacity: 16, nextOffset: 101)
        #expect(backlog.firstByteOffset == 101)
        #expect(backlog.historyLength == 0)
        #expect(backlog.lastOffset == 100)
        #expect(backlog.canServe(from: 101))
        #expect(!backlog.canServe(from: 100))
        #expect(!backlog.canServe(from: 102))
        #expect(backlog.bytes(from: 101).isEmpty)
    }

    @Test func appendsKeepOffsetsLikeRedis() {
        var backlog = ReplicationBacklog(capacity: 16, nextOffset: 1)
        backlog.append(bytes("hello"))
        backlog.append(bytes(" world"))
        #expect(backlog.firstByteOffset == 1)
        #expect(backlog.historyLength == 11)
        #expect(backlog.lastOffset == 11)
        #expect(backlog.bytes(from: 1) == bytes("hello world"))
        #expect(backlog.bytes(from: 7) == bytes("world"))
        #expect(backlog.bytes(from: 12).isEmpty)
        #expect(!backlog.canServe(from: 13))
    }

    @Test func wrapsAroundDroppingTheOldestBytes() {
        var backlog = ReplicationBacklog(capacity: 8, nextOffset: 1)
        backlog.append(bytes("abcde"))
        backlog.append(bytes("fghijk"))
        // 11 bytes fed, 8 kept: bytes 4...11.
        #expect(backlog.historyLength == 8)
        #expect(backlog.firstByteOffset == 4)
        #expect(backlog.bytes(from: 4) == bytes("defghijk"))
        #expect(backlog.bytes(from: 10) == bytes("jk"))
        #expect(!backlog.canServe(from: 3))
        #expect(backlog.canServe(from: 12))
    }

    @Test func aBatchLargerThanTheRingKeepsItsTail() {
        var backlog = ReplicationBacklog(capacity: 4, nextOffset: 1)
        backlog.append(bytes("xy"))
        backlog.append(bytes("0123456789"))
        #expect(backlog.firstByteOffset == 9)
        #expect(backlog.historyLength == 4)
        #expect(backlog.bytes(from: 9) == bytes("6789"))
    }

    /// Random appends against a plain array of everything fed: every servable offset returns
    /// exactly the fed bytes from there on.
    @Test(arguments: [1, 7, 64]) func matchesAReferenceUnderRandomAppends(capacity: Int) {
        var generator = SeededGenerator(seed: UInt64(capacity) * 7919)
        var backlog = ReplicationBacklog(capacity: capacity, nextOffset: 1)
        var fed: [UInt8] = []
        for _ in 0..<300 {
            let chunk = (0..<Int.random(in: 0...(capacity * 2), using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            backlog.append(chunk)
            fed += chunk
            let held = min(fed.count, capacity)
            #expect(backlog.historyLength == held)
            #expect(backlog.lastOffset == Int64(fed.count))
            let probe = Int64.random(in: backlog.firstByteOffset...(backlog.lastOffset + 1), using: &generator)
            #expect(backlog.bytes(from: probe) == Array(fed[Int(probe - 1)...]))
        }
    }

    @Test func resizeKeepsTheNewestBytes() {
        var backlog = ReplicationBacklog(capacity: 8, nextOffset: 1)
        backlog.append(bytes("abcdefghij"))
        backlog.resize(capacity: 4)
        #expect(backlog.firstByteOffset == 7)
        #expect(backlog.bytes(from: 7) == bytes("ghij"))
        backlog.resize(capacity: 32)
        #expect(backlog.bytes(from: 7) == bytes("ghij"))
        backlog.append(bytes("kl"))
        #expect(backlog.bytes(from: 7) == bytes("ghijkl"))
    }
}

@Suite struct PartialResyncDecisionTests {
    private func core(replid: String, replid2: String = ReplicationState.zeroID, secondOffset: Int64 = -1,
                      fed: Int, capacity: Int = 100) -> ReplicationState.Core {
        var state = ReplicationState.Core(replid: replid)
        state.replid2 = replid2
        state.secondReplOffset = secondOffset
        var backlog = ReplicationBacklog(capacity: capacity, nextOffset: 1)
        backlog.append([UInt8](repeating: 42, count: fed))
        state.backlog = backlog
        state.masterReplOffset = Int64(fed)
        return state
    }

    private let id1 = String(repeating: "a", count: 40)
    private let id2 = String(repeating: "b", count: 40)

    @Test func sameIDInsideTheBacklogContinues() {
        let state = core(replid: id1, fed: 50)
        #expect(ReplicationState.canContinue(replid: id1, offset: 1, state: state))
        #expect(ReplicationState.canContinue(replid: id1, offset: 51, state: state))
        #expect(ReplicationState.canContinue(replid: id1.uppercased(), offset: 20, state: state))
        // Past the stream end, or before the backlog's first byte: a full resync.
        #expect(!ReplicationState.canContinue(replid: id1, offset: 52, state: state))
        #expect(!ReplicationState.canContinue(replid: id1, offset: 0, state: state))
    }

    @Test func outsideTheBacklogNeedsAFullResync() {
        let state = core(replid: id1, fed: 150, capacity: 100)
        #expect(!ReplicationState.canContinue(replid: id1, offset: 50, state: state))
        #expect(ReplicationState.canContinue(replid: id1, offset: 51, state: state))
    }

    @Test func previousIDOnlyUpToTheSecondOffset() {
        let state = core(replid: id1, replid2: id2, secondOffset: 31, fed: 50)
        #expect(ReplicationState.canContinue(replid: id2, offset: 31, state: state))
        #expect(ReplicationState.canContinue(replid: id2, offset: 10, state: state))
        #expect(!ReplicationState.canContinue(replid: id2, offset: 32, state: state))
    }

    @Test func unknownIDOrQuestionMarkOrNoBacklogNeedsAFullResync() {
        var state = core(replid: id1, fed: 50)
        #expect(!ReplicationState.canContinue(replid: id2, offset: 10, state: state))
        #expect(!ReplicationState.canContinue(replid: "?", offset: -1, state: state))
        state.backlog = nil
        #expect(!ReplicationState.canContinue(replid: id1, offset: 10, state: state))
    }

    /// REPLICAOF NO ONE on a replica that had followed `id1` to offset 50: its old replicas
    /// asking for byte 51 with `id1` continue; asking beyond it does not.
    @Test func shiftedIDKeepsTheOldHistoryValidUpToTheNextByte() {
        let state = ReplicationState()
        state.adoptPrimary(replid: id1, offset: 0)
        state.feedVerbatim([UInt8](repeating: 1, count: 50))
        state.shiftReplicationID()
        let shifted = state.core.withLock { $0 }
        #expect(shifted.replid2 == id1)
        #expect(shifted.secondReplOffset == 51)
        #expect(shifted.replid != id1 && shifted.replid.count == 40)
        #expect(ReplicationState.canContinue(replid: id1, offset: 51, state: shifted))
        #expect(!ReplicationState.canContinue(replid: id1, offset: 52, state: shifted))
        #expect(ReplicationState.canContinue(replid: shifted.replid, offset: 51, state: shifted))
    }
}

@Suite struct ReplicationFeedTests {
    /// A registered replica gets the batch with a SELECT first (the stream's database is reset
    /// by a full sync), and no SELECT again while the database stays the same.
    @Test func fullSyncRegistersAndStreamStartsWithSelect() throws {
        let state = ReplicationState()
        let link = try makeLink(id: 1)
        defer { closeLink(link) }
        guard case .full(_, let offset) = state.attachFull(link) else {
            Issue.record("expected a full sync")
            return
        }
        #expect(offset == 0)
        var batch = PropagationBuffer()
        batch.append(database: 2, [Array("INCR".utf8), Array("k".utf8)])
        batch.append(database: 2, [Array("INCR".utf8), Array("k".utf8)])
        let end = state.append(batch)
        var expected: [UInt8] = []
        RESPRecord.append([Array("SELECT".utf8), Array("2".utf8)], to: &expected)
        RESPRecord.append([Array("INCR".utf8), Array("k".utf8)], to: &expected)
        RESPRecord.append([Array("INCR".utf8), Array("k".utf8)], to: &expected)
        #expect(end == Int64(expected.count))
        var taken: [UInt8] = []
        #expect(state.takePending(link, into: &taken))
        #expect(taken == expected)
        #expect(state.snapshot.backlogHistoryLength == expected.count)
        #expect(state.snapshot.backlogFirstByteOffset == 1)
    }

    /// A replica waiting out repl-diskless-sync-delay gets no stream bytes: the image taken
    /// after the delay holds those writes, so sending them too would apply them twice.
    @Test func aReplicaWaitingForItsSnapshotGetsNothingUntilTheImage() throws {
        let state = ReplicationState()
        let first = try makeLink(id: 3)
        let waiting = try makeLink(id: 4)
        defer { closeLink(first); closeLink(waiting) }
        _ = state.attachFull(first)
        state.registerWaiting(waiting)
        var batch = PropagationBuffer()
        batch.append(database: 0, [Array("INCR".utf8), Array("k".utf8)])
        let before = state.append(batch)
        guard case .full(_, let offset) = state.attachFull(waiting) else {
            Issue.record("expected a full sync")
            return
        }
        #expect(offset == before)
        var taken: [UInt8] = []
        #expect(state.takePending(waiting, into: &taken))
        #expect(taken.isEmpty)
        _ = state.append(batch)
        #expect(state.takePending(waiting, into: &taken))
        var expected: [UInt8] = []
        RESPRecord.append([Array("SELECT".utf8), Array("0".utf8)], to: &expected)
        RESPRecord.append([Array("INCR".utf8), Array("k".utf8)], to: &expected)
        #expect(taken == expected)
    }

    /// Our own clients' writes are not fed while we follow a primary; its bytes are, verbatim.
    @Test func aReplicaFeedsOnlyItsPrimarysBytes() throws {
        let state = ReplicationState()
        state.adoptPrimary(replid: String(repeating: "c", count: 40), offset: 1000)
        state.setRole(.replica(host: "127.0.0.1", port: 7000))
        var batch = PropagationBuffer()
        batch.append(database: 0, [Array("SET".utf8), Array("k".utf8), Array("v".utf8)])
        #expect(state.append(batch) == 1000)
        state.feedVerbatim(Array("*1\r\n$4\r\nPING\r\n".utf8))
        #expect(state.masterReplOffset == 1014)
        #expect(state.snapshot.backlogFirstByteOffset == 1001)
    }

    /// client-output-buffer-limit replica: past the hard limit the replica is dropped, its
    /// pending bytes freed, and it gets nothing more.
    @Test func hardOutputLimitClosesTheReplica() throws {
        let state = ReplicationState()
        var configuration = ServerConfiguration()
        try configuration.set("client-output-buffer-limit", ["replica", "100", "0", "0"])
        state.outputLimits.update(from: configuration)
        let link = try makeLink(id: 2)
        defer { closeLink(link) }
        _ = state.attachFull(link)
        var batch = PropagationBuffer()
        batch.append(database: 0, [Array("SET".utf8), Array("k".utf8), [UInt8](repeating: 120, count: 200)])
        _ = state.append(batch)
        let limitReached = link.outputLimitReached.load(ordering: .relaxed)
        #expect(limitReached)
        var taken: [UInt8] = []
        #expect(!state.takePending(link, into: &taken))
    }

    private func makeLink(id: Int64) throws -> ReplicaLink {
        let wake = try Posix.eventFD()
        return ReplicaLink(clientID: id, descriptor: -1, wakeDescriptor: wake,
                           logger: ServerLogger(path: "/dev/null", level: .warning),
                           announcedAddress: "127.0.0.1", listeningPort: 0, nowMilliseconds: 0)
    }

    private func closeLink(_ link: ReplicaLink) { Posix.close(link.wakeDescriptor) }
}

/// SplitMix64: a seeded generator so a failure reproduces.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
