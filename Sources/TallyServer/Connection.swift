// Connection: one client's thread-owned state: socket, session, parser, reply buffer.
import TallyCommands
import TallyPlatform
import TallyProtocol

/// A client connection. Owned by exactly one I/O thread for its whole life.
final class Connection {
    let descriptor: Int32
    let session: ClientSession
    var parser: RequestParser
    var arguments = CommandArguments()
    var output: OutputBuffer
    let record: ClientRecord
    /// EPOLLOUT is registered: a short write left replies pending; reading is paused until drained.
    var waitingToWrite = false
    /// In this iteration's pending-write list already.
    var queuedForFlush = false
    /// When pending output first went over the soft `client-output-buffer-limit` (ms; 0 = not over).
    var outputSoftLimitSince: Int64 = 0
    /// Output generated in one batch beyond which the rest of the input waits for the flush
    /// (back-pressure for pipelines of large replies).
    static let outputHighWaterBytes = 1 << 20

    init(descriptor: Int32, session: ClientSession, parserLimits: RequestParserLimits, record: ClientRecord) {
        self.descriptor = descriptor
        self.session = session
        self.parser = RequestParser(limits: parserLimits)
        self.output = OutputBuffer()
        self.record = record
    }

    /// Publishes the fields CLIENT LIST shows to other threads.
    func publish() {
        let session = session
        let queued = parser.unparsedBytes
        let free = parser.freeBytes
        let pending = output.readableBytes
        let writing = waitingToWrite
        let subscribed = session.subscriptionCounts
        record.fields.withLock { fields in
            fields.name = session.name
            fields.lastInteractionMilliseconds = session.lastInteractionMilliseconds
            fields.database = session.database
            fields.inMulti = session.transaction.isActive ? session.transaction.queued.count : -1
            fields.queryBufferBytes = queued
            fields.queryBufferFreeBytes = free
            fields.noEvict = session.noEvict
            fields.tracking = session.tracking != nil
            fields.isMonitor = session.isMonitoring
            fields.isBlocked = session.blockedWaiter != nil
            fields.isDirtyCAS = session.transaction.watchToken?.isDirty ?? false
            fields.trackingBroken = session.mailbox?.isTrackingRedirectBroken ?? false
            fields.trackingBroadcast = session.tracking?.options.contains(.broadcast) ?? false
            fields.trackingRedirect = session.tracking?.redirect ?? 0
            fields.outputBufferBytes = pending
            fields.lastCommand = session.lastCommandName
            fields.protocolVersion = session.protocolVersion.rawValue
            fields.waitingToWrite = writing
            fields.channels = subscribed.channels
            fields.patterns = subscribed.patterns
            fields.shardChannels = subscribed.shardChannels
        }
    }
}
