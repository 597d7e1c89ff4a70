// IOThread: one epoll event loop per thread; each owns its connections from accept to close.
//
//   acceptor (thread 0)                    I/O thread k
//   ───────────────────                    ───────────────────────────────────────────────
//   listener readable ─► accept4 ─► inbox[k].append(fd) ─► eventfd[k] ─► adopt fd, epoll add
//                                                          readable ─► read ─► parse ─► execute
//                                                          end of iteration:
//                                                            log.waitUntilDurable(max offset)
//                                                            write replies (EPOLLOUT if short)
//
// Nothing about a connection is touched by another thread except its `ClientRecord` and its
// pub/sub mailbox: a publisher on any thread appends to the mailbox and, for the first message
// since the last drain, queues it on `mailReady` and signals the eventfd; this loop then moves
// the messages into the connection's output (see PubSub.swift).
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPlatform
import TallyProtocol

/// One event loop. Created on the starting thread, then run on its own pthread.
final class IOThread: @unchecked Sendable {
    // @unchecked: everything mutable below is touched only by the loop's own thread, except
    // `inbox` (a Mutex) and `wakeDescriptor` (an eventfd, written from any thread).
    let index: Int
    private let server: ServerCore
    /// The server's output limits for normal and pubsub clients, unretained (the server holds
    /// them for its lifetime): the check after every command retained and released them.
    private let outputLimits: Unmanaged<OutputBufferLimits>
    private let pubsubOutputLimits: Unmanaged<OutputBufferLimits>
    private let engine: CommandEngine
    private let epoll: Epoll
    let wakeDescriptor: Int32
    private let inbox = Mutex<[Int32]>([])
    /// Mailboxes of this loop's subscribers with messages waiting (filled by publishers).
    private let mailReady = Mutex<[PubSubMailbox]>([])
    private var connections = ConnectionsByDescriptor()
    private var pendingFlush: [Connection] = []
    /// Connections parked in a blocking pop: checked every iteration for a published reply
    /// (a push on any thread wakes this loop) or a passed deadline.
    private var parked: [Connection] = []
    /// The context this loop's last command ran in, reused by the next (see
    /// `CommandEngine.execute(_:session:output:reusing:)`); it holds that command's session
    /// until then, or until the client closes or leaves this loop.
    private var spareContext: CommandContext?
    /// Connections whose current command CLIENT PAUSE holds back, in the order they were held.
    private var postponed: [Connection] = []
    /// Connections whose replies acknowledge writes the AOF failed to write; retried each
    /// iteration (every 10 ms at most) and released once the log reports them durable.
    private var heldForDurability: [Connection] = []
    /// The highest log offset this loop has seen durable (see `flushPending`).
    private var knownDurableOffset: UInt64 = 0
    private var listeners: [Int32] = []
    private var nextAcceptTarget = 0
    private var readScratch: UnsafeMutableRawBufferPointer
    private var lastTimeoutCheckMilliseconds: Int64 = 0
    private var lastQueryBufferResizeMilliseconds: Int64 = 0
    /// Bytes read per read(2): Redis's PROTO_IOBUF_LEN is 16 KB; larger helps big pipelines.
    static let readChunkBytes = 64 * 1024
    /// Tokens above this mark listeners and the wake-up eventfd rather than client sockets.
    private static let listenerTokenBase: UInt64 = 1 << 40
    private static let wakeToken: UInt64 = 1 << 41

    init(index: Int, server: ServerCore, engine: CommandEngine) throws(Errno) {
        self.index = index
        self.server = server
        outputLimits = Unmanaged.passUnretained(server.outputLimits)
        pubsubOutputLimits = Unmanaged.passUnretained(server.pubsubOutputLimits)
        self.engine = engine
        epoll = try Epoll(capacity: 1024)
        wakeDescriptor = try Posix.eventFD()
        try epoll.add(wakeDescriptor, events: .readable, token: Self.wakeToken)
        readScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readChunkBytes, alignment: 16)
    }

    deinit { readScratch.deallocate() }

    /// Makes this loop accept on `descriptor` (done before the thread starts).
    func addListener(_ descriptor: Int32) throws(Errno) {
        try epoll.add(descriptor, events: .readable, token: Self.listenerTokenBase | UInt64(listeners.count))
        listeners.append(descriptor)
    }

    /// Listener sockets to stop watching and to start watching, queued by CONFIG SET port/bind
    /// from any thread and swapped in by this loop.
    private let listenerChanges = Mutex<[(removing: [Int32], adding: [Int32])]>([])

    /// Replaces listener sockets: this loop closes `old` and accepts on `new` from its next pass.
    func replaceListeners(removing old: [Int32], adding new: [Int32]) {
        listenerChanges.withLock { $0.append((old, new)) }
        Posix.signalEventFD(wakeDescriptor)
    }

    private func applyListenerChanges() {
        let changes = listenerChanges.withLock { changes in
            let taken = changes
            changes.removeAll()
            return taken
        }
        for change in changes {
            for descriptor in change.removing {
                guard let slot = listeners.firstIndex(of: descriptor) else { continue }
                epoll.remove(descriptor)
                Posix.close(descriptor)
                // The slot stays (epoll tokens are slot numbers), marked unused.
                listeners[slot] = -1
            }
            for descriptor in change.adding {
                do { try addListener(descriptor) } catch {
                    server.log.log(.warning, "Failed watching a listener: \(error)")
                    Posix.close(descriptor)
                }
            }
        }
    }

    /// Hands an accepted socket to this loop (called from the acceptor thread).
    func adopt(_ descriptor: Int32) {
        inbox.withLock { $0.append(descriptor) }
        Posix.signalEventFD(wakeDescriptor)
    }

    /// Queues `mailbox` for delivery (called by a publisher on any thread).
    func mailArrived(_ mailbox: PubSubMailbox) {
        let wasEmpty = mailReady.withLock { ready -> Bool in
            ready.append(mailbox)
            return ready.count == 1
        }
        if wasEmpty { Posix.signalEventFD(wakeDescriptor) }
    }

    /// Moves published messages into their subscribers' output; a subscriber whose mailbox
    /// overflowed or whose output passed the pubsub class limit is closed, as Redis does.
    private func deliverMail() {
        let ready = mailReady.withLock { ready -> [PubSubMailbox] in
            let taken = ready
            ready.removeAll(keepingCapacity: true)
            return taken
        }
        for mailbox in ready {
            guard let connection = connections[mailbox.descriptor], connection.session.id == mailbox.clientID
            else { continue }
            let (bytes, overflowed) = mailbox.takeMessages()
            if overflowed {
                logOutputLimitClose(connection)
                close(connection)
                continue
            }
            if bytes.isEmpty { continue }
            connection.output.writeBytes(bytes)
            if outputLimitExceeded(connection) { continue }
            enqueueFlush(connection)
        }
    }

    /// Wakes the loop (a served blocking pop is waiting for it).
    func wake() { Posix.signalEventFD(wakeDescriptor) }

    /// Set by CLIENT KILL: the next wake-up scans this loop's connections for kill requests
    /// (only then: pub/sub deliveries wake the loop far more often, and the scan is O(clients)).
    private let killCheckPending = Atomic<Bool>(false)

    /// Wakes the loop so it notices kill requests.
    func requestKillCheck() {
        killCheckPending.store(true, ordering: .releasing)
        Posix.signalEventFD(wakeDescriptor)
    }

    /// The loop body; never returns (the process exits through the shutdown path).
    func run() {
        while true {
            // Connections with held-back input are resumed next iteration without sleeping.
            var timeout: Int32 = pendingFlush.isEmpty ? (heldForDurability.isEmpty ? 100 : 10) : 0
            // Blocking timeouts are checked each iteration: wake at least every 5 ms meanwhile.
            if !parked.isEmpty || !postponed.isEmpty { timeout = min(timeout, 5) }
            epoll.wait(timeoutMilliseconds: timeout) { ready in
                if ready.token == Self.wakeToken {
                    Posix.drainEventFD(wakeDescriptor)
                    applyListenerChanges()
                    adoptInbox()
                    deliverMail()
                    if killCheckPending.exchange(false, ordering: .acquiring) { processKillRequests() }
                } else if ready.token >= Self.listenerTokenBase {
                    let listener = listeners[Int(ready.token - Self.listenerTokenBase)]
                    if listener >= 0 { acceptAll(listener) }
                } else if let connection = connections[Int32(truncatingIfNeeded: ready.token)] {
                    handle(connection, events: ready.events)
                }
            }
            serviceParked()
            servicePostponed()
            // BCAST invalidations collected during this iteration (server.c beforeSleep's
            // trackingBroadcastInvalidationMessages); a relaxed load when there are none.
            engine.tracking.broadcastPending()
            flushPending()
            closeIdleClients()
            resizeQueryBuffers()
        }
    }

    // MARK: Accepting

    private func acceptAll(_ listener: Int32) {
        while true {
            let accepted: IOResult<Int32>
            do {
                accepted = try Posix.accept(listener)
            } catch {
                if error != .connectionAborted {
                    server.log.log(.warning, "Accepting client connection: \(error)")
                }
                if error == .tooManyOpenFiles { return }
                continue
            }
            guard case .processed(let descriptor) = accepted else { return }
            server.stats.connectionsReceived.add(1, ordering: .relaxed)
            guard server.clients.reserveSlot(limit: server.maxClients) else {
                // Same as Redis: best-effort error, then close; the client never counts as connected.
                let message: StaticString = "-ERR max number of clients reached\r\n"
                let reply = UnsafeRawBufferPointer(start: message.utf8Start, count: message.utf8CodeUnitCount)
                _ = try? Posix.write(descriptor, reply)
                Posix.close(descriptor)
                server.stats.rejectedConnections.add(1, ordering: .relaxed)
                continue
            }
            let threads = server.threads
            let target = threads[nextAcceptTarget % threads.count]
            nextAcceptTarget &+= 1
            if target === self { register(descriptor) } else { target.adopt(descriptor) }
        }
    }

    private func adoptInbox() {
        let adopted = inbox.withLock { queue -> [Int32] in
            let taken = queue
            queue.removeAll(keepingCapacity: true)
            return taken
        }
        for descriptor in adopted { register(descriptor) }
    }

    private func register(_ descriptor: Int32) {
        // Unix sockets reject TCP options; failures there are expected and harmless.
        try? Posix.setNoDelay(descriptor)
        let keepAlive = server.tcpKeepAliveSeconds
        if keepAlive > 0 { try? Posix.setKeepAlive(descriptor, idleSeconds: Int32(keepAlive)) }
        let peerAddress = Posix.peerAddress(descriptor)
        let protectedMode = server.configuration.withLock { $0.string("protected-mode") == "yes" }
        if ClientLimits.protectedModeRefuses(
            protectedMode: protectedMode, passwordSet: engine.requiresAuthentication, peerAddress: peerAddress)
        {
            // Best effort, like Redis: one write of the refusal, then close.
            let message = ClientLimits.protectedModeRefusal
            let bytes = UnsafeRawBufferPointer(start: message.utf8Start, count: message.utf8CodeUnitCount)
            _ = try? Posix.write(descriptor, bytes)
            Posix.close(descriptor)
            server.clients.releaseSlot()
            server.stats.rejectedConnections.add(1, ordering: .relaxed)
            return
        }
        let now = engine.clock.nowMilliseconds()
        let session = ClientSession(id: engine.makeClientID())
        session.isAuthenticated = !engine.requiresAuthentication
        session.wakeOwner = { [unowned self] in self.wake() }
        session.announceMail = { [unowned self] mailbox in self.mailArrived(mailbox) }
        session.descriptor = descriptor
        // Every client has a mailbox from the start: any of them may be the REDIRECT target of
        // a tracking client, found by id through its record.
        let mailbox = session.makeMailbox()
        session.peerAddress = peerAddress
        session.localAddress = Posix.localAddress(descriptor)
        session.createdAtMilliseconds = now
        session.lastInteractionMilliseconds = now
        let record = ClientRecord(
            id: session.id, ownerThread: index,
            fields: ClientFields(
                id: session.id, address: session.peerAddress, localAddress: session.localAddress,
                descriptor: descriptor, name: nil, createdAtMilliseconds: now, lastInteractionMilliseconds: now,
                database: 0, inMulti: -1, queryBufferBytes: 0, outputBufferBytes: 0, lastCommand: "NULL",
                protocolVersion: 2, waitingToWrite: false),
            mailbox: mailbox)
        let connection = Connection(
            descriptor: descriptor, session: session, parserLimits: server.parserLimits, record: record)
        session.busyEventPump = { [unowned self, unowned connection] in self.serviceWhileBusy(except: connection) }
        do {
            try epoll.add(descriptor, events: .readable, token: UInt64(UInt32(bitPattern: descriptor)))
        } catch {
            Posix.close(descriptor)
            server.clients.releaseSlot()
            return
        }
        connections[descriptor] = connection
        server.clients.add(record)
        server.log.log(.verbose, "Accepted \(session.peerAddress)")
    }

    // MARK: Reading and executing

    private func handle(_ connection: Connection, events: EpollEvents) {
        if events.contains(.writable) || (connection.waitingToWrite && !events.isDisjoint(with: [.error, .hangup])) {
            if !write(connection) { return }
            if !connection.waitingToWrite {
                // Drained: resume commands that were held back while the output was full.
                execute(connection)
                if connection.output.readableBytes > 0 { enqueueFlush(connection) }
            }
        }
        guard !connection.waitingToWrite, !connection.session.closeAfterReply else { return }
        if !events.isDisjoint(with: [.readable, .error, .hangup]) {
            read(connection)
        }
    }

    private func read(_ connection: Connection) {
        let result: IOResult<Int>
        do {
            result = try Posix.read(connection.descriptor, into: readScratch)
        } catch {
            close(connection)
            return
        }
        guard case .processed(let count) = result else { return }
        if count == 0 {
            close(connection)
            return
        }
        server.stats.readsProcessed.add(1, ordering: .relaxed)
        server.stats.netInputBytes.add(Int64(count), ordering: .relaxed)
        connection.parser.append(UnsafeRawBufferPointer(rebasing: readScratch[0..<count]))
        // The arguments already parsed out of a request still in progress count too: otherwise
        // `*2147483647` followed by endless tiny bulks grows argv without bound while the
        // unparsed buffer stays small (ranges cost 16 bytes per argument).
        let pendingArguments = connection.arguments.byteCount + connection.arguments.count * 16
        if connection.parser.unparsedBytes + pendingArguments > server.queryBufferLimit {
            let queued = connection.parser.unparsedBytes
            server.log.log(.warning, "Closing client that reached max query buffer length (qbuf=\(queued))")
            close(connection)
            return
        }
        connection.session.lastInteractionMilliseconds = engine.clock.nowMilliseconds()
        // Messages already posted for this client (a tracking invalidation for a write whose
        // reply has been sent) go before the replies of what it sends now, whatever order
        // epoll reported the wake-up and the socket in.
        if let mailbox = connection.session.mailbox, mailbox.hasMessages { deliverMail() }
        execute(connection)
        if connection.output.readableBytes > 0 || connection.session.closeAfterReply { enqueueFlush(connection) }
    }

    /// Runs every complete command in the connection's input, stopping early when the reply
    /// buffer passes the high-water mark (the rest runs once the replies are flushed).
    private func execute(_ connection: Connection) {
        let session = connection.session
        // The loop parses into, and runs from, the connection's arguments moved into a local
        // (and moved back on return, where a postponed command is found again): passing the
        // class property by value retained and released both of its arrays for every command.
        var arguments = CommandArguments(reservingCapacity: false)
        swap(&arguments, &connection.arguments)
        defer { swap(&arguments, &connection.arguments) }
        while !session.closeAfterReply && session.blockedWaiter == nil && !session.isPostponed
            && connection.output.readableBytes < Connection.outputHighWaterBytes
        {
            let authenticated = session.isAuthenticated || !engine.requiresAuthentication
            switch connection.parser.next(into: &arguments, authenticated: authenticated) {
            case .command:
                engine.execute(&arguments, session: session, output: &connection.output, reusing: &spareContext)
                if session.handsOffConnection {
                    handOffToReplication(connection)
                    return
                }
                if outputLimitExceeded(connection) { return }
                // Blocked: the rest of its input waits until the waiter is served or times out.
                if session.blockedWaiter != nil { parked.append(connection) }
                // Paused: the command and the rest of the input wait for the pause to end.
                if session.isPostponed {
                    postponed.append(connection)
                    engine.clientPause.postponedClients.add(1, ordering: .relaxed)
                }
            case .needMoreData:
                connection.publish()
                return
            case .protocolError(let text):
                connection.output.writeError(Array(("ERR " + text).utf8))
                engine.countErrors(in: &connection.output)
                server.log.log(
                    .verbose, "Protocol error (\(text)) from client: id=\(session.id) addr=\(session.peerAddress)")
                session.closeAfterReply = true
            }
        }
        connection.publish()
    }

    /// Closes the client (dropping its pending replies, as Redis does) when its output is over
    /// `client-output-buffer-limit`; returns true if it was closed.
    private func outputLimitExceeded(_ connection: Connection) -> Bool {
        // Clients with subscriptions are Redis's pubsub class (getClientType).
        let limits = connection.session.subscriptionTotal > 0 ? pubsubOutputLimits : outputLimits
        return limits._withUnsafeGuaranteedRef { outputLimitExceeded(connection, $0) }
    }

    private func outputLimitExceeded(_ connection: Connection, _ limits: OutputBufferLimits) -> Bool {
        if limits.isUnlimited { return false }
        let now = engine.clock.nowMilliseconds()
        let pending = connection.output.readableBytes
        guard limits.exceeded(
            pendingBytes: pending, nowMilliseconds: now, softSince: &connection.outputSoftLimitSince)
        else { return false }
        logOutputLimitClose(connection)
        close(connection)
        return true
    }

    private func logOutputLimitClose(_ connection: Connection) {
        server.log.log(
            .warning,
            "Client id=\(connection.session.id) addr=\(connection.session.peerAddress) scheduled to be closed ASAP "
                + "for overcoming of output buffer limits.")
    }

    /// Delivers served and timed-out blocking pops to their parked connections and resumes
    /// their input (blocked.c unblockClient, then processing the pending query buffer).
    private func serviceParked() {
        if parked.isEmpty { return }
        let now = engine.clock.nowMilliseconds()
        var index = 0
        while index < parked.count {
            let connection = parked[index]
            guard let waiter = connection.session.blockedWaiter else {
                parked.remove(at: index)
                continue
            }
            if let served = waiter.takeReply() {
                connection.output.writeBytes(served.reply)
                engine.blockedReplyDelivered(served.reply, session: connection.session)
                connection.session.pendingLogOffset = max(connection.session.pendingLogOffset, served.logOffset)
            } else if waiter.deadline != 0 && now >= waiter.deadline && engine.blocking.cancel(waiter) {
                waiter.writeTimeoutReply(into: &connection.output)
            } else {
                index += 1
                continue
            }
            connection.session.blockedWaiter = nil
            engine.blockedCommandEnded(connection.session)
            parked.remove(at: index)
            execute(connection)
            enqueueFlush(connection)
        }
    }

    /// Runs the commands CLIENT PAUSE held back once the pause no longer holds them, oldest
    /// first; a connection still held keeps its place (blocked.c unblockPostponedClients).
    private func servicePostponed() {
        if postponed.isEmpty { return }
        var index = 0
        while index < postponed.count {
            let connection = postponed[index]
            let session = connection.session
            session.isPostponed = false
            engine.execute(connection.arguments, session: session, output: &connection.output)
            if session.isPostponed {
                index += 1
                continue
            }
            postponed.remove(at: index)
            engine.clientPause.postponedClients.subtract(1, ordering: .relaxed)
            if session.blockedWaiter != nil {
                parked.append(connection)
            } else {
                execute(connection)
            }
            enqueueFlush(connection)
        }
    }

    // MARK: Writing

    private func enqueueFlush(_ connection: Connection) {
        if connection.queuedForFlush { return }
        connection.queuedForFlush = true
        pendingFlush.append(connection)
    }

    /// Redis's processEventsWhileBlocked, for a script on this thread past busy-reply-threshold
    /// (called from the Lua hook): one non-blocking pass over this loop's events, so its other
    /// clients get -BUSY or run an allow-busy command (SCRIPT KILL, FUNCTION STATS), new
    /// connections are accepted, and replies go out. The script's own connection is left alone
    /// (protectClient): its input waits until the script returns.
    func serviceWhileBusy(except running: Connection) {
        epoll.waitNested(timeoutMilliseconds: 0) { ready in
            if ready.token == Self.wakeToken {
                Posix.drainEventFD(wakeDescriptor)
                applyListenerChanges()
                adoptInbox()
                deliverMail()
                // CLIENT KILL is handled once the script returns (it could name the script's client).
                if killCheckPending.load(ordering: .acquiring) { Posix.signalEventFD(wakeDescriptor) }
            } else if ready.token >= Self.listenerTokenBase {
                let listener = listeners[Int(ready.token - Self.listenerTokenBase)]
                if listener >= 0 { acceptAll(listener) }
            } else if let connection = connections[Int32(truncatingIfNeeded: ready.token)], connection !== running {
                handle(connection, events: ready.events)
            }
        }
        flushPending(except: running)
    }

    /// Group commit, then replies: one durability wait covers every connection served in this
    /// iteration, and no reply leaves before the writes it acknowledges are in the AOF.
    /// `running`, a busy script's connection, stays queued (its reply is not written yet).
    private func flushPending(except running: Connection? = nil) {
        // The writes of this iteration go to the replicas with one wake-up of their threads.
        server.replication.wakeReplicasIfDue()
        if !heldForDurability.isEmpty {
            // Still flagged queuedForFlush, so nothing else enqueued them meanwhile.
            pendingFlush.append(contentsOf: heldForDurability)
            heldForDurability.removeAll(keepingCapacity: true)
        }
        if pendingFlush.isEmpty { return }
        var highest: UInt64 = 0
        for connection in pendingFlush { highest = max(highest, connection.session.replyLogOffset) }
        // Offsets only grow and coverage only advances, so an offset this loop already saw
        // covered needs no call at all: reads after the last write cost one comparison.
        if highest > knownDurableOffset, let log = engine.attachedLog {
            log.waitUntilDurable(highest)
            if log.isDurable(highest) {
                knownDurableOffset = highest
            } else {
                holdUndurable(log)
            }
        }
        var batch = pendingFlush
        pendingFlush.removeAll(keepingCapacity: true)
        if let running, let position = batch.firstIndex(where: { $0 === running }) {
            pendingFlush.append(batch.remove(at: position))
        }
        for connection in batch {
            connection.queuedForFlush = false
            guard connections[connection.descriptor] === connection else { continue }
            guard write(connection), !connection.waitingToWrite else { continue }
            if connection.parser.unparsedBytes > 0 && !connection.session.closeAfterReply {
                // Execution stopped at the output high-water mark; the input is already here,
                // so no readable event will come: resume now and flush next iteration.
                execute(connection)
                if connection.output.readableBytes > 0 { enqueueFlush(connection) }
            }
        }
    }

    /// The AOF could not write (disk full, EIO): replies that acknowledge unwritten records stay
    /// unsent until a later iteration's flush succeeds; the others go out now.
    private func holdUndurable(_ log: any AppendLog) {
        var ready: [Connection] = []
        for connection in pendingFlush {
            let offset = connection.session.replyLogOffset
            if offset > 0 && !log.isDurable(offset) {
                heldForDurability.append(connection)
            } else {
                ready.append(connection)
            }
        }
        pendingFlush = ready
    }

    /// Writes pending output. Returns false if the connection was closed.
    @discardableResult
    private func write(_ connection: Connection) -> Bool {
        while connection.output.readableBytes > 0 {
            let result: IOResult<Int>
            do {
                result = try connection.output.storage.withUnsafeBytes { raw throws(Errno) in
                    let pending = UnsafeRawBufferPointer(rebasing: raw[connection.output.readerIndex...])
                    return try Posix.write(connection.descriptor, pending)
                }
            } catch {
                close(connection)
                return false
            }
            switch result {
            case .processed(let written):
                connection.output.readerIndex += written
                server.stats.netOutputBytes.add(Int64(written), ordering: .relaxed)
            case .wouldBlock:
                setWaitingToWrite(connection, true)
                return true
            }
        }
        server.stats.writesProcessed.add(1, ordering: .relaxed)
        connection.output.discardReadBytes()
        connection.output.shrinkIfOversized(limitBytes: 1 << 20)
        if connection.session.closeAfterReply {
            close(connection)
            return false
        }
        setWaitingToWrite(connection, false)
        return true
    }

    private func setWaitingToWrite(_ connection: Connection, _ waiting: Bool) {
        guard connection.waitingToWrite != waiting else { return }
        connection.waitingToWrite = waiting
        // While replies are stuck we stop reading too: a client that does not read cannot make
        // the server buffer unbounded output, and other clients are unaffected.
        let events: EpollEvents = waiting ? .writable : .readable
        let token = UInt64(UInt32(bitPattern: connection.descriptor))
        try? epoll.modify(connection.descriptor, events: events, token: token)
    }

    /// SYNC/PSYNC ran: the connection leaves this loop for its replica thread (ReplicaLink.swift),
    /// with the replies not yet sent. Its slot and CLIENT LIST record go along; its WATCH and
    /// subscriptions are released here, since a replica uses neither.
    private func handOffToReplication(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.descriptor) != nil else { return }
        if spareContext?.session === connection.session { spareContext = nil }
        epoll.remove(connection.descriptor)
        let pending = Array(connection.output.storage[connection.output.readerIndex...])
        connection.output = OutputBuffer()
        engine.sessionClosed(connection.session)
        server.adoptReplica(descriptor: connection.descriptor, session: connection.session, record: connection.record,
                            pendingOutput: pending, engine: engine)
    }

    // MARK: Closing

    private func close(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.descriptor) != nil else { return }
        if spareContext?.session === connection.session { spareContext = nil }
        if connection.session.blockedWaiter != nil { parked.removeAll { $0 === connection } }
        if connection.session.isPostponed {
            postponed.removeAll { $0 === connection }
            engine.clientPause.postponedClients.subtract(1, ordering: .relaxed)
        }
        epoll.remove(connection.descriptor)
        Posix.close(connection.descriptor)
        // Drops the session's WATCH registrations; without this every watched key of a client
        // that disconnects mid-transaction stays in the shard's watcher table forever.
        engine.sessionClosed(connection.session)
        server.replication.forgetHandshake(clientID: connection.session.id)
        server.clients.remove(connection.session.id)
        server.clients.releaseSlot()
        let session = connection.session
        server.log.log(.verbose, "Client closed connection id=\(session.id) addr=\(session.peerAddress)")
    }

    private func processKillRequests() {
        for connection in Array(connections.values) where connection.record.killRequested.load(ordering: .relaxed) {
            if connection.output.readableBytes > 0 {
                // Let the reply of the command that killed its own client go out first (Redis
                // sets CLOSE_AFTER_REPLY in that case).
                connection.session.closeAfterReply = true
                enqueueFlush(connection)
            } else {
                close(connection)
            }
        }
    }

    /// Every 100 ms, gives unused query-buffer memory back (`RequestParser.resizeQueryBuffer`):
    /// a connection idle for over 2 s holds no input buffer at all, so thousands of idle
    /// clients cost no input memory, and one large request does not pin its buffer forever.
    private func resizeQueryBuffers() {
        let now = engine.clock.nowMilliseconds()
        guard now - lastQueryBufferResizeMilliseconds >= Self.queryBufferResizeIntervalMilliseconds else { return }
        lastQueryBufferResizeMilliseconds = now
        for connection in connections.values {
            let idle = now - connection.session.lastInteractionMilliseconds > Self.idleQueryBufferMilliseconds
            connection.parser.resizeQueryBuffer(idle: idle)
            connection.publish()
        }
    }

    /// How often `resizeQueryBuffers` runs (Redis's clientsCron runs at `hz`, 10 by default).
    static let queryBufferResizeIntervalMilliseconds: Int64 = 100
    /// Idle time after which a client's query buffer is freed (Redis: more than 2 s).
    static let idleQueryBufferMilliseconds: Int64 = 2000

    private func closeIdleClients() {
        let now = engine.clock.nowMilliseconds()
        guard now - lastTimeoutCheckMilliseconds >= 1000 else { return }
        lastTimeoutCheckMilliseconds = now
        let timeoutSeconds = server.idleTimeoutSeconds
        guard timeoutSeconds > 0 else { return }
        for connection in Array(connections.values)
        where now - connection.session.lastInteractionMilliseconds > Int64(timeoutSeconds) * 1000
            && connection.session.blockedWaiter == nil
        {
            // Clients in MULTI are not special in Redis either; a blocked client only gets its
            // blocking timeout (clientsCronHandleTimeout).
            server.log.log(.verbose, "Closing idle client")
            close(connection)
        }
    }
}

/// A loop's connections by descriptor: an array indexed by the descriptor (the kernel hands out
/// the lowest free number, so they stay small and dense). A Dictionary hashed the descriptor
/// on every lookup, two per request (callgrind: ~300 of ~7,000 instructions a pipelined SET).
struct ConnectionsByDescriptor {
    private var slots: [Connection?] = []

    /// The connection on `descriptor`, if this loop has one.
    subscript(descriptor: Int32) -> Connection? {
        get {
            let index = Int(descriptor)
            return index >= 0 && index < slots.count ? slots[index] : nil
        }
        set {
            let index = Int(descriptor)
            precondition(index >= 0, "negative descriptor")
            if index >= slots.count {
                guard newValue != nil else { return }
                slots.append(contentsOf: repeatElement(nil, count: index + 1 - slots.count))
            }
            slots[index] = newValue
        }
    }

    /// Removes and returns the connection on `descriptor`.
    mutating func removeValue(forKey descriptor: Int32) -> Connection? {
        guard let connection = self[descriptor] else { return nil }
        self[descriptor] = nil
        return connection
    }

    /// Every connection, in descriptor order.
    var values: [Connection] { slots.compactMap { $0 } }
}
