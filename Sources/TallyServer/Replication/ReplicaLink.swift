// ReplicaLink: one attached replica, served by its own thread from SYNC/PSYNC to disconnection.
//
//   I/O thread                      replica thread (ReplicaStreamer)
//   ──────────                      ────────────────────────────────────────────────────────────
//   PSYNC ─► handsOffConnection     partial: +CONTINUE, backlog bytes from the offset
//   epoll remove, hand fd ────────► full:    [diskless delay] ─► all shards locked: image + offset
//                                            + registration ─► +FULLRESYNC ─► RDB ($len or $EOF:)
//                                   then:    take pending stream bytes ─► write(2) ─► repeat
//                                            read REPLCONF ACK ─► acked offset, WAIT clients
//
// Why a thread per replica rather than the I/O threads' output path: the RDB transfer and a slow
// replica's backlog of stream bytes would otherwise sit in an I/O thread's loop, which also serves
// clients; here a blocked write stalls nobody but this replica, and its queued bytes are bounded
// by `client-output-buffer-limit replica` (checked where the stream is fed). Replicas are few
// (Redis deployments have a handful), so a thread each costs little.
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyPlatform
import TallyProtocol

/// One replica connection after SYNC/PSYNC.
final class ReplicaLink: Sendable {
    /// The replica's client id (CLIENT LIST, CLIENT KILL ID).
    let clientID: Int64
    /// Its socket.
    let descriptor: Int32
    /// Wakes the replica's thread (new stream bytes, close requests).
    let wakeDescriptor: Int32
    /// The address INFO shows (`REPLCONF ip-address`, else the peer's IP).
    let announcedAddress: String
    /// `REPLCONF listening-port` (0 when not sent, as in Redis).
    let listeningPort: Int
    /// The highest offset the replica acknowledged (`REPLCONF ACK`; Redis's repl_ack_off).
    let ackedOffset = Atomic<Int64>(0)
    /// The replica's AOF fsynced offset (`REPLCONF ACK <off> FACK <aofoff>`; Redis 7.2 replicas).
    let fsyncedOffset = Atomic<Int64>(0)
    /// When the last ACK arrived (ms; Redis's repl_ack_time).
    let ackTimeMilliseconds: Atomic<Int64>
    /// Set when the replica passed `client-output-buffer-limit replica`.
    let outputLimitReached = Atomic<Bool>(false)
    /// Set by CLIENT KILL, a role change or the output limit: the thread closes the connection.
    let closeRequested = Atomic<Bool>(false)
    private let logger: ServerLogger

    init(clientID: Int64, descriptor: Int32, wakeDescriptor: Int32, logger: ServerLogger,
         announcedAddress: String, listeningPort: Int, nowMilliseconds: Int64) {
        self.clientID = clientID
        self.announcedAddress = announcedAddress
        self.listeningPort = listeningPort
        ackTimeMilliseconds = Atomic(nowMilliseconds)
        self.descriptor = descriptor
        self.wakeDescriptor = wakeDescriptor
        self.logger = logger
    }

    /// Wakes the thread.
    func wake() { Posix.signalEventFD(wakeDescriptor) }

    /// Asks the thread to close the connection.
    func requestClose() {
        closeRequested.store(true, ordering: .releasing)
        wake()
    }

    /// Logs through the server's logger.
    func log(_ level: LogLevel, _ message: String) { logger.log(level, message) }
}

extension ServerCore {
    /// Takes over a connection whose SYNC/PSYNC just ran (called on its I/O thread, which has
    /// already stopped watching the socket). `pendingOutput` holds replies not yet sent.
    func adoptReplica(descriptor: Int32, session: ClientSession, record: ClientRecord, pendingOutput: [UInt8],
                      engine: CommandEngine) {
        let handshake = replication.takeHandshake(clientID: session.id)
        let name = replicaName(handshake, session)
        let wakeDescriptor: Int32
        do {
            wakeDescriptor = try Posix.eventFD()
        } catch {
            log.log(.warning, "Can't serve replica \(name): \(error)")
            Posix.close(descriptor)
            clients.remove(session.id)
            clients.releaseSlot()
            return
        }
        let epoll: Epoll
        do {
            epoll = try ReplicaStreamer.eventLoop(socket: descriptor, wake: wakeDescriptor)
        } catch {
            Posix.close(wakeDescriptor)
            log.log(.warning, "Can't serve replica \(name): \(error)")
            Posix.close(descriptor)
            clients.remove(session.id)
            clients.releaseSlot()
            return
        }
        let link = ReplicaLink(
            clientID: session.id, descriptor: descriptor, wakeDescriptor: wakeDescriptor, logger: log,
            announcedAddress: handshake.ipAddress ?? hostPart(of: session.peerAddress),
            listeningPort: handshake.listeningPort, nowMilliseconds: nowMilliseconds())
        record.fields.withLock { fields in
            fields.isReplica = true
            fields.lastCommand = handshake.psync == nil ? "sync" : "psync"
            fields.queryBufferBytes = 0
            fields.outputBufferBytes = pendingOutput.count
        }
        // Built here, run there: the streamer is owned by the replica's thread from then on.
        let streamer = ReplicaStreamer(
            server: self, engine: engine, link: link, record: record, handshake: handshake, name: name,
            parserLimits: parserLimits, epoll: epoll)
        let box = UncheckedSendable(streamer)
        startThread { box.value.run(pendingOutput: pendingOutput) }
    }
}

/// Moves a value to the thread that will own it (nothing else touches it afterwards).
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The replica thread's state (owned by that thread only).
private final class ReplicaStreamer {
    let server: ServerCore
    let engine: CommandEngine
    let link: ReplicaLink
    let record: ClientRecord
    let handshake: ReplicaHandshake
    let name: String
    var replication: ReplicationState { server.replication }
    private let epoll: Epoll
    private var parser: RequestParser
    private var arguments = CommandArguments()
    private var readScratch: UnsafeMutableRawBufferPointer
    private var watchingWritable = false
    private var writableSeen = false
    /// Why the connection ends (logged once); nil while it lives.
    private var closeReason: String?
    private var lastPublishMilliseconds: Int64 = 0
    /// After an `$EOF:` transfer the stream waits for the replica's first REPLCONF ACK, as
    /// Redis's repl_start_cmd_stream_on_ack does (replication.c): a replica finds the mark only
    /// as the last bytes of a read, so stream bytes sent right behind it would hide it and the
    /// replica would wait for the end of the payload forever.
    private var awaitingFirstAck = false

    static let socketToken: UInt64 = 1
    static let wakeToken: UInt64 = 2
    /// Bytes read per read(2): ACKs are tiny, this is plenty.
    private static let readChunkBytes = 4096

    init(server: ServerCore, engine: CommandEngine, link: ReplicaLink, record: ClientRecord,
         handshake: ReplicaHandshake, name: String, parserLimits: RequestParserLimits, epoll: consuming Epoll) {
        self.epoll = epoll
        self.server = server
        self.engine = engine
        self.link = link
        self.record = record
        self.handshake = handshake
        self.name = name
        parser = RequestParser(limits: parserLimits)
        readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readChunkBytes, alignment: 16)
    }

    deinit { readScratch.deallocate() }

    /// The thread's epoll set: the replica's socket and its wake-up eventfd.
    static func eventLoop(socket: Int32, wake: Int32) throws(Errno) -> Epoll {
        let epoll = try Epoll(capacity: 4)
        try epoll.add(socket, events: .readable, token: socketToken)
        try epoll.add(wake, events: .readable, token: wakeToken)
        return epoll
    }

    func run(pendingOutput: [UInt8]) {
        if send(pendingOutput) && synchronize() { stream() }
        finish()
    }

    // MARK: Synchronization

    /// Partial resync when the backlog allows it, else a full one. Returns false if the
    /// connection must close.
    private func synchronize() -> Bool {
        if let psync = handshake.psync {
            if let decision = replication.attachPartial(link, replid: psync.replid, offset: psync.offset),
               case .partial(let replid, let backlog) = decision
            {
                server.stats.partialSyncsAccepted.add(1, ordering: .relaxed)
                let line = handshake.capaPSYNC2 ? "+CONTINUE \(replid)\r\n" : "+CONTINUE\r\n"
                guard send(Array(line.utf8)), send(backlog) else { return false }
                link.log(.notice, "Partial resynchronization request from \(name) accepted. Sending "
                    + "\(backlog.count) bytes of backlog starting from offset \(psync.offset).")
                replication.refreshGoodReplicas(nowMilliseconds: server.nowMilliseconds())
                return true
            }
            logRefusedPartialSync(replid: psync.replid, offset: psync.offset)
            if psync.replid != "?" { server.stats.partialSyncsRefused.add(1, ordering: .relaxed) }
        }
        server.stats.fullSyncs.add(1, ordering: .relaxed)
        return fullSync()
    }

    /// The log lines of masterTryPartialResynchronization's refusals.
    private func logRefusedPartialSync(replid: String, offset: Int64) {
        let state = replication.snapshot
        let id = replid.lowercased()
        if replid == "?" {
            link.log(.notice, "Full resync requested by replica \(name)")
        } else if id != state.replid && id != state.replid2 {
            link.log(.notice, "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for "
                + "'\(replid)', my replication IDs are '\(state.replid)' and '\(state.replid2)')")
        } else if id != state.replid && offset > state.secondReplOffset {
            link.log(.notice, "Partial resynchronization not accepted: Requested offset for second ID was "
                + "\(offset), but I can reply up to \(state.secondReplOffset)")
        } else {
            link.log(.notice, "Unable to partial resync with replica \(name) for lack of backlog (Replica request "
                + "was: \(offset)).")
        }
    }

    /// +FULLRESYNC and the RDB: disk-based (`$<len>`) or, with `repl-diskless-sync yes` and a
    /// replica that declared `capa eof`, the `$EOF:<mark>` form after `repl-diskless-sync-delay`.
    private func fullSync() -> Bool {
        let settings = replication.settings.withLock { $0 }
        let diskless = settings.disklessSync && handshake.capaEOF
        if diskless && settings.disklessDelaySeconds > 0 {
            replication.registerWaiting(link)
            // Redis waits for more replicas to share the transfer; meanwhile a newline a second
            // keeps the replica from timing out (replicationCron), which it reads as "wait".
            let deadline = server.nowMilliseconds() + Int64(settings.disklessDelaySeconds) * 1000
            var nextNewline = server.nowMilliseconds() + 1000
            while server.nowMilliseconds() < deadline {
                if settings.disklessMaxReplicas > 0 && replication.waitingReplicaCount >= settings.disklessMaxReplicas {
                    break
                }
                waitForEvents(timeoutMilliseconds: 100)
                if mustClose() { return false }
                if server.nowMilliseconds() >= nextNewline {
                    guard send([UInt8(ascii: "\n")]) else { return false }
                    nextNewline += 1000
                }
            }
        }
        let config = server.configuration.withLock { $0 }
        var options = RDBWriterOptions()
        options.compression = config.string("rdbcompression") == "yes"
        options.checksum = config.string("rdbchecksum") == "yes"
        options.creationTimeSeconds = server.nowMilliseconds() / 1000
        options.usedMemoryBytes = Int64(engine.keyspace.usedMemoryBytes)
        // The image and the replica's place in the stream are taken in one hold of every shard:
        // no write is half-applied, and each later write is queued for this replica, so it gets
        // every write after the image exactly once.
        let keyspace = engine.keyspace
        let locked = keyspace.lockExclusive()
        let image = keyspace.image(serializer: rdbShardSerializer(options: options))
        let decision = replication.attachFull(link)
        keyspace.unlockExclusive(locked)
        guard case .full(let replid, let offset) = decision else { return false }
        // Serialized at once, before anything can fail: the shards' pending images are released
        // as soon as possible (writers would otherwise serialize them first).
        let payload: [UInt8]
        do {
            payload = try writeSnapshot(image, to: MemorySink(), options: options).bytes
        } catch {
            link.log(.warning, "Failed producing the RDB for replica \(name): \(error)")
            return false
        }
        link.log(.notice, "Starting BGSAVE for SYNC with target: \(diskless ? "replicas sockets" : "disk")")
        if handshake.psync != nil {
            guard send(Array("+FULLRESYNC \(replid) \(offset)\r\n".utf8)) else { return false }
        }
        if diskless {
            let mark = Array(ReplicationState.randomID().utf8)
            guard send(Array("$EOF:".utf8) + mark + Array("\r\n".utf8)), send(payload), send(mark) else { return false }
        } else {
            guard send(Array("$\(payload.count)\r\n".utf8)), send(payload) else { return false }
        }
        awaitingFirstAck = diskless
        link.ackTimeMilliseconds.store(server.nowMilliseconds(), ordering: .relaxed)
        replication.setOnline(link)
        replication.refreshGoodReplicas(nowMilliseconds: server.nowMilliseconds())
        link.log(.notice, "Synchronization with replica \(name) succeeded")
        return true
    }

    // MARK: Streaming

    /// Sends the stream as it is fed, reads ACKs, and ends on close requests, errors, or a replica
    /// silent for `repl-timeout` (replicationCron: "Disconnecting timedout replica").
    private func stream() {
        var buffer: [UInt8] = []
        while !mustClose() {
            if awaitingFirstAck {
                waitForEvents(timeoutMilliseconds: 100)
                if awaitingFirstAck && timedOut() { return }
                continue
            }
            guard replication.takePending(link, into: &buffer) else {
                if link.outputLimitReached.load(ordering: .relaxed) {
                    link.log(.warning, "Client \(name) scheduled to be closed ASAP for overcoming of output buffer "
                        + "limits.")
                    closeReason = "output buffer limit"
                }
                return
            }
            if !buffer.isEmpty {
                guard send(buffer) else { return }
                publishFields()
                continue
            }
            waitForEvents(timeoutMilliseconds: 1000)
            if timedOut() { return }
            publishFields()
        }
    }

    /// True (with the connection marked to close) when the replica has been silent for
    /// `repl-timeout` (replicationCron's "Disconnecting timedout replica"). Old SYNC replicas
    /// (redis-cli --replica) send no ACKs: no timeout for them, as in Redis.
    private func timedOut() -> Bool {
        let now = server.nowMilliseconds()
        let timeout = Int64(replication.settings.withLock { $0.timeoutSeconds }) * 1000
        guard handshake.psync != nil && now - link.ackTimeMilliseconds.load(ordering: .relaxed) > timeout else {
            return false
        }
        link.log(.warning, "Disconnecting timedout replica (streaming sync): \(name)")
        closeReason = "timeout"
        return true
    }

    /// Refreshes what CLIENT LIST shows about the replica, at most once a second.
    private func publishFields() {
        let now = server.nowMilliseconds()
        guard now - lastPublishMilliseconds >= 1000 else { return }
        lastPublishMilliseconds = now
        let queued = replication.queuedBytes(link)
        record.fields.withLock { fields in
            fields.outputBufferBytes = queued
            fields.waitingToWrite = watchingWritable
        }
    }

    private func mustClose() -> Bool {
        closeReason != nil || link.closeRequested.load(ordering: .acquiring)
            || record.killRequested.load(ordering: .relaxed)
    }

    /// Writes all of `bytes`, waiting for the socket (and reading ACKs) when it is full.
    private func send(_ bytes: [UInt8]) -> Bool {
        var written = 0
        while written < bytes.count {
            if mustClose() { return false }
            let result: IOResult<Int>
            do {
                result = try bytes.withUnsafeBytes { raw throws(Errno) in
                    try Posix.write(link.descriptor, UnsafeRawBufferPointer(rebasing: raw[written...]))
                }
            } catch {
                closeReason = "write error: \(error)"
                return false
            }
            switch result {
            case .processed(let count):
                written += count
                server.stats.netReplOutputBytes.add(Int64(count), ordering: .relaxed)
            case .wouldBlock:
                writableSeen = false
                setWatchingWritable(true)
                while !writableSeen && !mustClose() { waitForEvents(timeoutMilliseconds: 100) }
            }
        }
        setWatchingWritable(false)
        return true
    }

    private func setWatchingWritable(_ watching: Bool) {
        guard watching != watchingWritable else { return }
        watchingWritable = watching
        try? epoll.modify(link.descriptor, events: watching ? [.readable, .writable] : .readable,
                          token: Self.socketToken)
    }

    /// One epoll wait: reads the replica's input, notes writability, drains wake-ups.
    private func waitForEvents(timeoutMilliseconds: Int32) {
        var readable = false
        _ = epoll.wait(timeoutMilliseconds: timeoutMilliseconds) { ready in
            if ready.token == Self.wakeToken {
                Posix.drainEventFD(link.wakeDescriptor)
            } else {
                if !ready.events.isDisjoint(with: [.readable, .error, .hangup]) { readable = true }
                if ready.events.contains(.writable) { writableSeen = true }
            }
        }
        if readable { readInput() }
    }

    /// Reads what the replica sent: REPLCONF ACK <offset> [FACK <aofoffset>] (anything else is
    /// ignored, as a replica sends nothing else once online).
    private func readInput() {
        while closeReason == nil {
            let result: IOResult<Int>
            do {
                result = try Posix.read(link.descriptor, into: readScratch)
            } catch {
                closeReason = "read error: \(error)"
                return
            }
            guard case .processed(let count) = result else { return }
            if count == 0 {
                closeReason = "closed by the replica"
                return
            }
            server.stats.netInputBytes.add(Int64(count), ordering: .relaxed)
            parser.append(UnsafeRawBufferPointer(rebasing: readScratch[0..<count]))
            parsing: while true {
                switch parser.next(into: &arguments, authenticated: true) {
                case .command: handleCommand()
                case .needMoreData: break parsing
                case .protocolError(let text):
                    closeReason = "protocol error: \(text)"
                    return
                }
            }
            if count < Self.readChunkBytes { return }
        }
    }

    private func handleCommand() {
        guard arguments.count >= 3, arguments.matches(0, "replconf"), arguments.matches(1, "ack"),
              let offset = parseRedisInteger(arguments[2])
        else { return }
        var fsynced: Int64?
        if arguments.count >= 5 && arguments.matches(3, "fack") { fsynced = parseRedisInteger(arguments[4]) }
        let now = server.nowMilliseconds()
        awaitingFirstAck = false
        replication.acknowledged(link, offset: offset, fsynced: fsynced, nowMilliseconds: now)
        record.fields.withLock { fields in
            fields.lastCommand = "replconf"
            fields.lastInteractionMilliseconds = now
        }
    }

    // MARK: Closing

    private func finish() {
        let now = server.nowMilliseconds()
        replication.detach(link, nowMilliseconds: now)
        Posix.close(link.descriptor)
        Posix.close(link.wakeDescriptor)
        server.clients.remove(link.clientID)
        server.clients.releaseSlot()
        replication.refreshGoodReplicas(nowMilliseconds: now)
        link.log(.notice, "Connection with replica \(name) lost.")
    }
}
