// ReplicationStreamApplier: a replica's parser and offset accounting for the primary's command stream.
//
// Redis keeps two offsets for its master client (networking.c commandProcessed): what was read
// (`read_reploff`) and what was applied (`reploff` = read_reploff - unparsed bytes). The applied
// offset moves only between commands outside MULTI, so a link that breaks inside a transaction
// resumes (PSYNC) at the MULTI, and only applied bytes are passed on to sub-replicas and the
// backlog (replicationFeedStreamFromMasterStream), byte for byte.
//
//   socket ─► receive(bytes) ─► parser ─► run(argv) on the primary-link session (replies dropped)
//                  │                            │ outside MULTI: applied offset = end of command
//                  └─► raw bytes ──(applied prefix)──► target.feedApplied ─► backlog, sub-replicas

/// What running one command of the primary's stream did.
public enum ReplicationStreamStep: Equatable, Sendable {
    /// The command ran (its reply, if any, is dropped).
    case applied
    /// It could not run now (CLIENT PAUSE, a busy script): it runs again on the next `apply`.
    case postponed
}

/// Where a replica's stream goes: the engine, the replication backlog and the primary's socket.
public protocol ReplicationStreamTarget: AnyObject {
    /// Runs one command on the primary-link session.
    func run(_ arguments: CommandArguments) -> ReplicationStreamStep
    /// True while the primary-link session is inside MULTI (its offset waits for EXEC).
    var isInTransaction: Bool { get }
    /// Bytes now applied, in stream order: fed verbatim to this server's backlog and sub-replicas.
    func feedApplied(_ bytes: ArraySlice<UInt8>)
    /// REPLCONF GETACK: send `REPLCONF ACK <offset>` now.
    func acknowledge(offset: Int64)
}

/// What `apply` stopped on.
public enum ReplicationStreamOutcome: Equatable, Sendable {
    /// Every complete command was applied; the rest waits for more bytes.
    case drained
    /// A command was postponed: call `apply` again later, before or after more bytes arrive.
    case postponed
    /// The primary sent bytes that are not RESP: Redis drops the link and reconnects.
    case protocolError(String)
}

/// Parses the primary's stream, runs each command on the target and keeps the offsets.
public struct ReplicationStreamApplier {
    /// The primary's commands are trusted: no bulk or inline limit applies to them
    /// (networking.c skips proto-max-bulk-len for CLIENT_MASTER).
    public static let limits = RequestParserLimits(maxBulkLength: Int(Int32.max) * 2, maxInlineLength: 1 << 30)

    private var parser = RequestParser(limits: ReplicationStreamApplier.limits)
    private var arguments = CommandArguments()
    /// Received bytes from `rawBaseOffset` on: the applied part not fed yet, then the rest.
    private var raw: [UInt8] = []
    private var rawBaseOffset: Int64
    /// The offset after the last byte received (Redis's read_reploff).
    public private(set) var receivedOffset: Int64
    /// The offset after the last command applied outside a transaction (Redis's reploff).
    public private(set) var appliedOffset: Int64
    /// A parsed command that was postponed, with the stream offset at its end.
    private var postponed: (arguments: CommandArguments, endOffset: Int64)?

    /// An applier whose next byte is stream offset `offset + 1` (the PSYNC/FULLRESYNC offset).
    public init(offset: Int64) {
        rawBaseOffset = offset
        receivedOffset = offset
        appliedOffset = offset
    }

    /// Bytes received and not yet applied (a partial command, a postponed one, an open MULTI).
    public var pendingBytes: Int64 { receivedOffset - appliedOffset }

    /// Takes bytes read from the primary.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) {
        parser.append(bytes)
        raw.append(contentsOf: bytes)
        receivedOffset += Int64(bytes.count)
    }

    /// Takes bytes (tests, and what the RDB transfer read past its end).
    public mutating func receive<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        parser.append(contentsOf: bytes)
        raw.append(contentsOf: bytes)
        receivedOffset += Int64(bytes.count)
    }

    /// Runs every complete command received so far, in order, then feeds what was applied.
    public mutating func apply<T: ReplicationStreamTarget>(to target: T) -> ReplicationStreamOutcome {
        defer { feed(target) }
        if let (held, endOffset) = postponed {
            if target.run(held) == .postponed { return .postponed }
            postponed = nil
            commit(at: endOffset, target)
        }
        while true {
            switch parser.next(into: &arguments) {
            case .needMoreData:
                return .drained
            case .protocolError(let text):
                return .protocolError(text)
            case .command:
                let endOffset = receivedOffset - Int64(parser.unparsedBytes)
                if arguments.count >= 2 && isCommand("replconf") && arguments.matches(1, "getack") {
                    // Answered with the offset before this command, as Redis's replconfCommand
                    // does (its reploff moves after the call); the bytes still count.
                    target.acknowledge(offset: appliedOffset)
                } else if target.run(arguments) == .postponed {
                    postponed = (arguments, endOffset)
                    return .postponed
                }
                commit(at: endOffset, target)
            }
        }
    }

    /// After a command ending at `endOffset`: outside MULTI, everything up to it is applied.
    private mutating func commit<T: ReplicationStreamTarget>(at endOffset: Int64, _ target: T) {
        if !target.isInTransaction { appliedOffset = endOffset }
    }

    /// Feeds the applied bytes not fed yet and releases them.
    private mutating func feed<T: ReplicationStreamTarget>(_ target: T) {
        let appliedCount = Int(appliedOffset - rawBaseOffset)
        guard appliedCount > 0 else { return }
        target.feedApplied(raw[0..<appliedCount])
        rawBaseOffset = appliedOffset
        if appliedCount == raw.count {
            raw.removeAll(keepingCapacity: raw.capacity <= 1 << 20)
        } else {
            raw.removeSubrange(0..<appliedCount)
        }
    }

    private func isCommand(_ name: StaticString) -> Bool { arguments.matches(0, name) }
}
