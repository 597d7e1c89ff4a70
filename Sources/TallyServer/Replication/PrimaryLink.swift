// PrimaryLink: a replica's connection to its primary: handshake, PSYNC, RDB transfer and load, then the stream.
//
// One thread per link (Redis does this work in replicationCron and the master client's read
// handler on its one thread). A thread of its own keeps the I/O threads' epoll loops untouched,
// lets the RDB load block it while clients are answered -LOADING, and runs the stream's commands
// in order on one session, as Redis's master client does:
//
//   REPLICAOF ─► ReplicaController ─► PrimaryLink thread
//                                       connect ─► PING ─► AUTH ─► REPLCONF ×2–3 ─► PSYNC
//                                         +FULLRESYNC: $len / $EOF:mark ─► temp-<time>.<pid>.rdb
//                                                      ─► rename to dbfilename ─► flush ─► load
//                                         +CONTINUE:   keep the dataset and offset
//                                       stream ─► ReplicationStreamApplier ─► engine (link session)
//                                       every second: REPLCONF ACK <offset>; repl-timeout: reconnect
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyPlatform
import TallyProtocol

/// The link's progress as ROLE and INFO name it (replication.c repl_state).
enum PrimaryLinkState: Sendable, Equatable {
    /// Waiting to connect (the next attempt comes within a second).
    case connect
    /// Connecting.
    case connecting
    /// PING, AUTH, REPLCONF and PSYNC exchanged.
    case handshake
    /// Receiving the RDB.
    case transfer
    /// Following the stream.
    case connected

    /// ROLE's word for it.
    var roleName: String {
        switch self {
        case .connect: "connect"
        case .connecting: "connecting"
        case .handshake: "handshake"
        case .transfer: "sync"
        case .connected: "connected"
        }
    }
}

/// What INFO replication and ROLE show about the link; the link thread publishes it.
struct PrimaryLinkStatus: Sendable {
    var state: PrimaryLinkState = .connect
    /// The primary's session exists (connected) or is cached for PSYNC: its offsets.
    var appliedOffset: Int64?
    var readOffset: Int64?
    /// Unix ms of the last byte from the primary while connected (`master_last_io_seconds_ago`).
    var lastIOMilliseconds: Int64?
    /// RDB transfer progress (`master_sync_*`): size -1 while unknown (EOF-marked transfer).
    var transferSize: Int64 = -1
    var transferRead: Int64 = 0
    var transferLastIOMilliseconds: Int64 = 0
    /// Unix ms when the link went down (0: never up since REPLICAOF).
    var downSinceMilliseconds: Int64 = 0
    /// The primary-link session's client id and address while connected (CLIENT LIST).
    var clientID: Int64 = 0
}

/// The replication state the link drives: ReplicationState, shared with the primary side.
protocol PrimaryLinkReplicationState: AnyObject, Sendable {
    /// Our replication ID (what PSYNC asks to continue).
    var currentReplicationID: String { get }
    /// `master_repl_offset`.
    var masterReplOffset: Int64 { get }
    /// Applied stream bytes, unchanged, to our backlog and sub-replicas.
    func feedVerbatim(_ bytes: UnsafeRawBufferPointer)
    /// After a full sync: our ID and offset become the primary's.
    func adoptPrimary(replid: String, offset: Int64)
    /// After +CONTINUE <new id>.
    func continueWithNewPrimaryID(_ newID: String)
    /// Closes our sub-replicas (they resync against our new history).
    func disconnectReplicas()
}

/// Settings a link reads when it (re)connects.
struct PrimaryLinkSettings: Sendable {
    var host: String
    var port: Int
    var masterAuth: String
    var masterUser: String
    var announceIP: String
    /// Our listening port as REPLCONF listening-port announces it (replica-announce-port or the
    /// bound port).
    var listeningPort: Int
    var timeoutSeconds: Int64
    var databaseFileName: String
}

/// One link to one primary (REPLICAOF host port); a new target makes a new link.
final class PrimaryLink: Sendable {
    let host: String
    let port: Int
    private let engine: CommandEngine
    private let replication: any PrimaryLinkReplicationState
    private let log: ServerLogger
    private let persistence: ServerPersistence
    private let clients: ClientRegistry
    private let stats: ServerStats
    private let settingsSource: @Sendable () -> PrimaryLinkSettings
    private let onStateChange: @Sendable (PrimaryLinkState) -> Void
    private let stopRequested = Atomic<Bool>(false)
    /// The connection's descriptor while it is open (-1 otherwise). Shut down only under this
    /// lock, and cleared under it before the descriptor is closed, so a stop or CLIENT KILL never
    /// shuts a descriptor number the kernel has since given to another connection.
    private let socket = Mutex<Int32>(-1)
    private let ackRequested = Atomic<Bool>(false)
    /// Held while a batch of the stream is applied (and during a load): stopping waits for it,
    /// so no command of the old primary applies after REPLICAOF returned, and snapshots take
    /// their image under it (`consistentPoint`).
    let applyLock = Mutex<Void>(())
    /// The stream offset the data holds every command up to, and the database the primary's
    /// stream had selected there (Redis's master reploff and db): kept across reconnections,
    /// stored in dump.rdb (repl-offset, repl-stream-db). Written under `applyLock`.
    let consistentPoint: Mutex<(offset: Int64, database: Int)?>
    let status: Mutex<PrimaryLinkStatus>
    /// True when our own replid/offset may be offered to this primary (PSYNC id offset+1):
    /// after a link was up, after REPLICAOF on a primary, or after a restart that found them in
    /// the RDB (replicationCacheMasterUsingMyself). Otherwise `PSYNC ? -1`.
    private let hasCachedPrimary: Atomic<Bool>

    init(host: String, port: Int, engine: CommandEngine, replication: any PrimaryLinkReplicationState,
         log: ServerLogger, persistence: ServerPersistence, clients: ClientRegistry, stats: ServerStats,
         canContinue: Bool,
         streamDatabase: Int = 0,
         settings: @escaping @Sendable () -> PrimaryLinkSettings,
         onStateChange: @escaping @Sendable (PrimaryLinkState) -> Void) {
        self.host = host
        self.port = port
        self.engine = engine
        self.replication = replication
        self.log = log
        self.persistence = persistence
        self.clients = clients
        self.stats = stats
        self.settingsSource = settings
        self.onStateChange = onStateChange
        hasCachedPrimary = Atomic(canContinue)
        var initial = PrimaryLinkStatus()
        if canContinue {
            let offset = replication.masterReplOffset
            initial.appliedOffset = offset
            initial.readOffset = offset
        }
        status = Mutex(initial)
        consistentPoint = Mutex(canContinue ? (replication.masterReplOffset, streamDatabase) : nil)
    }

    var isStopped: Bool { stopRequested.load(ordering: .acquiring) }

    /// Starts the link's thread.
    func start() {
        startThread { [self] in run() }
    }

    /// Ends the link: no further stream command applies once this returns (unless the calling
    /// thread holds the whole keyspace, when the link cannot be inside a command anyway).
    func stop(callerHoldsKeyspace: Bool) {
        stopRequested.store(true, ordering: .releasing)
        shutDownSocket()
        if !callerHoldsKeyspace { applyLock.withLock { _ in } }
    }

    /// CLIENT KILL of the primary-link client `clientID`: drops the connection and returns true
    /// (the link reconnects with PSYNC); false when `clientID` is not ours.
    func dropConnection(clientID: Int64) -> Bool {
        guard clientID != 0 && status.withLock({ $0.clientID }) == clientID else { return false }
        shutDownSocket()
        return true
    }

    private func shutDownSocket() {
        socket.withLock { fd in
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func setState(_ state: PrimaryLinkState) {
        status.withLock { $0.state = state }
        onStateChange(state)
    }

    // MARK: The thread

    private func run() {
        var lastAttempt: Int64 = 0
        while !isStopped {
            // One attempt a second at most, as replicationCron schedules connectWithMaster.
            let wait = 1000 - (wallMilliseconds() - lastAttempt)
            if wait > 0 {
                usleep(UInt32(min(wait, 100)) * 1000)
                continue
            }
            lastAttempt = wallMilliseconds()
            let settings = settingsSource()
            do {
                try session(settings)
            } catch .stopped {
                break
            } catch {
                describe(error, settings: settings)
            }
            if isStopped { break }
            let wasConnected = status.withLock { $0.state == .connected }
            status.withLock { state in
                // Down since the link was lost; a link never up reports -1 (repl_down_since 0).
                if state.state == .connected { state.downSinceMilliseconds = wallMilliseconds() }
                state.lastIOMilliseconds = nil
                state.clientID = 0
                state.transferSize = -1
                state.transferRead = 0
            }
            setState(.connect)
            if wasConnected {
                log.log(.notice, "Connection with master lost.")
                log.log(.notice, "Caching the disconnected master state.")
                hasCachedPrimary.store(true, ordering: .releasing)
            }
        }
    }

    private func describe(_ error: ReplicaLinkError, settings: PrimaryLinkSettings) {
        switch error {
        case .closed: log.log(.warning, "Connection with master \(host):\(port) closed")
        case .timedOut: log.log(.warning, "MASTER timeout: no data nor PING received...")
        case .io(let code): log.log(.warning, "Error condition on socket for SYNC: \(code)")
        case .refused(let text): log.log(.warning, text)
        case .stopped: break
        }
    }

    /// One connection: connect, handshake, sync, then follow the stream until it breaks.
    private func session(_ settings: PrimaryLinkSettings) throws(ReplicaLinkError) {
        setState(.connecting)
        log.log(.notice, "Connecting to MASTER \(host):\(port)")
        let fd: Int32
        do {
            fd = try Posix.connectTCP(host: host, port: port,
                                      timeoutMilliseconds: Int32(clamping: settings.timeoutSeconds * 1000))
        } catch {
            throw .refused("Unable to connect to MASTER: \(error)")
        }
        let stats = self.stats
        let connection = ReplicaConnection(descriptor: fd, isStopped: { [self] in isStopped }, received: { count in
            stats.netReplInputBytes.add(Int64(count), ordering: .relaxed)
        })
        socket.withLock { $0 = fd }
        defer {
            // Cleared before the connection (and its descriptor) is released.
            socket.withLock { $0 = -1 }
            withExtendedLifetime(connection) {}
        }
        // stop() may have run between the connect and the store: it could not shut this socket.
        if isStopped { shutDownSocket() }
        try? Posix.setNoDelay(fd)
        log.log(.notice, "MASTER <-> REPLICA sync started")
        setState(.handshake)
        try handshake(connection, settings)
        let (replid, offset) = cachedIdentity()
        try connection.sendCommand(["PSYNC", replid, offset])
        if replid == "?" {
            log.log(.notice, "Partial resynchronization not possible (no cached master)")
        } else {
            log.log(.notice, "Trying a partial resynchronization (request \(replid):\(offset)).")
        }
        var reply = ""
        repeat {
            // The primary may send newlines to keep the link alive before its answer.
            reply = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
        } while reply.isEmpty
        let startOffset: Int64
        if reply.hasPrefix("+FULLRESYNC") {
            let words = reply.split(separator: " ")
            guard words.count == 3, words[1].utf8.count == 40, let primaryOffset = Int64(words[2]) else {
                throw .refused("Master replied with wrong +FULLRESYNC syntax.")
            }
            log.log(.notice, "Full resync from master: \(words[1]):\(primaryOffset)")
            startOffset = try fullSync(connection, settings, replid: String(words[1]), offset: primaryOffset)
        } else if reply.hasPrefix("+CONTINUE") {
            log.log(.notice, "Successful partial resynchronization with master.")
            let words = reply.split(separator: " ")
            if words.count == 2 && words[1].utf8.count == 40 && String(words[1]) != replid {
                log.log(.warning, "Master replication ID changed to \(words[1])")
                replication.continueWithNewPrimaryID(String(words[1]))
                replication.disconnectReplicas()
            }
            log.log(.notice, "MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.")
            startOffset = replication.masterReplOffset
        } else if reply.hasPrefix("-NOMASTERLINK") || reply.hasPrefix("-LOADING") {
            throw .refused("Master is currently unable to PSYNC but should be in the future: \(reply)")
        } else {
            throw .refused("Unexpected reply to PSYNC from master: \(reply)")
        }
        try follow(connection, settings, from: startOffset)
    }

    /// PSYNC's arguments: our replid and offset+1 when we may continue, else `? -1`.
    private func cachedIdentity() -> (String, String) {
        guard hasCachedPrimary.load(ordering: .acquiring) else { return ("?", "-1") }
        return (replication.currentReplicationID, String(replication.masterReplOffset + 1))
    }

    /// PING, AUTH, REPLCONF listening-port / ip-address / capa, each answered before the next
    /// step as Redis's syncWithMaster sends them (its replies are read in order).
    private func handshake(_ connection: ReplicaConnection, _ settings: PrimaryLinkSettings)
        throws(ReplicaLinkError)
    {
        try connection.sendCommand(["PING"])
        let pong = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
        // Without AUTH the primary answers -NOAUTH (or -NOPERM): the handshake goes on.
        if pong.hasPrefix("-") && !pong.hasPrefix("-NOAUTH") && !pong.hasPrefix("-NOPERM")
            && !pong.hasPrefix("-ERR operation not permitted")
        {
            throw .refused("Error reply to PING from master: '\(pong)'")
        }
        log.log(.notice, "Master replied to PING, replication can continue...")
        if !settings.masterAuth.isEmpty {
            var words = ["AUTH"]
            if !settings.masterUser.isEmpty { words.append(settings.masterUser) }
            words.append(settings.masterAuth)
            try connection.sendCommand(words)
            let reply = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
            if reply.hasPrefix("-") { throw .refused("Unable to AUTH to MASTER: \(reply)") }
        }
        try connection.sendCommand(["REPLCONF", "listening-port", String(settings.listeningPort)])
        let portReply = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
        if portReply.hasPrefix("-") {
            log.log(.notice, "(Non critical) Master does not understand REPLCONF listening-port: \(portReply)")
        }
        if !settings.announceIP.isEmpty {
            try connection.sendCommand(["REPLCONF", "ip-address", settings.announceIP])
            let reply = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
            if reply.hasPrefix("-") {
                log.log(.notice, "(Non critical) Master does not understand REPLCONF ip-address: \(reply)")
            }
        }
        try connection.sendCommand(["REPLCONF", "capa", "eof", "capa", "psync2"])
        let capaReply = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
        if capaReply.hasPrefix("-") {
            log.log(.notice, "(Non critical) Master does not understand REPLCONF capa: \(capaReply)")
        }
    }

    // MARK: Full sync

    /// Receives the RDB into a temp file, renames it over dbfilename and loads it in place of
    /// the dataset (readSyncBulkPayload, disk-based load). Returns the stream's start offset.
    private func fullSync(_ connection: ReplicaConnection, _ settings: PrimaryLinkSettings, replid: String,
                          offset: Int64) throws(ReplicaLinkError) -> Int64
    {
        setState(.transfer)
        var header = ""
        repeat {
            // Newlines keep the link alive while the primary prepares the snapshot.
            header = try connection.readLine(timeoutSeconds: settings.timeoutSeconds)
            status.withLock { $0.transferLastIOMilliseconds = wallMilliseconds() }
        } while header.isEmpty
        if header.hasPrefix("-") { throw .refused("MASTER aborted replication with an error: \(header.dropFirst())") }
        guard header.hasPrefix("$") else {
            throw .refused("Bad protocol from MASTER, the first byte is not '$' (we received '\(header)'), "
                + "are you sure the host and port are right?")
        }
        var eofMark: [UInt8]?
        var size: Int64 = -1
        if header.hasPrefix("$EOF:") {
            let mark = Array(header.utf8.dropFirst(5))
            guard mark.count == 40 else { throw .refused("Bad EOF mark from MASTER: '\(header)'") }
            eofMark = mark
            log.log(.notice, "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk")
        } else {
            guard let length = Int64(header.dropFirst()), length >= 0 else {
                throw .refused("Bad bulk length from MASTER: '\(header)'")
            }
            size = length
            log.log(.notice, "MASTER <-> REPLICA sync: receiving \(length) bytes from master to disk")
        }
        status.withLock { state in
            state.transferSize = size
            state.transferRead = 0
        }
        let temporaryName = "temp-\(wallMilliseconds() / 1000).\(getpid()).rdb"
        let fd = open(temporaryName, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw .refused("Opening the temp file needed for MASTER <-> REPLICA synchronization: \(Errno.current)")
        }
        var keepFile = false
        defer {
            Posix.close(fd)
            if !keepFile { unlink(temporaryName) }
        }
        let written = try receivePayload(connection, settings, into: fd, size: size, eofMark: eofMark)
        if eofMark != nil && ftruncate(fd, off_t(written - 40)) != 0 {
            throw .refused("Error truncating the RDB file received from the master for SYNC: \(Errno.current)")
        }
        if fsync(fd) != 0 {
            throw .refused("Failed trying to sync the temp DB to disk in MASTER <-> REPLICA synchronization: "
                + "\(Errno.current)")
        }
        if rename(temporaryName, settings.databaseFileName) != 0 {
            throw .refused("Failed trying to rename the temp DB into \(settings.databaseFileName) in MASTER <-> "
                + "REPLICA synchronization: \(Errno.current)")
        }
        keepFile = true
        let directory = open(".", O_RDONLY | O_CLOEXEC)
        if directory >= 0 {
            _ = fsync(directory)
            Posix.close(directory)
        }
        try load(settings, replid: replid, offset: offset)
        return offset
    }

    /// Copies the payload to `fd`: `size` bytes, or up to the 40-byte EOF mark. Returns the
    /// bytes written (the mark included).
    private func receivePayload(_ connection: ReplicaConnection, _ settings: PrimaryLinkSettings, into fd: Int32,
                                size: Int64, eofMark: [UInt8]?) throws(ReplicaLinkError) -> Int64
    {
        var written: Int64 = 0
        /// The last bytes written (up to 39), so a mark split across reads is still found.
        var tail: [UInt8] = []
        var reachedMark = false
        while true {
            if reachedMark || (eofMark == nil && written == size) { return written }
            let limit = eofMark == nil ? Int(clamping: size - written) : 64 * 1024
            let count = try connection.readPayload(limit: limit) { chunk throws(ReplicaLinkError) -> Int in
                var taken = chunk.count
                if let eofMark, let end = Self.endOfMark(eofMark, tail: tail, chunk: chunk) {
                    // Whatever follows the mark is stream, not RDB.
                    taken = end
                    reachedMark = true
                }
                let ok = chunk.prefix(taken).withUnsafeBytes { raw in (try? Posix.writeAll(fd, raw)) != nil }
                if !ok {
                    throw .refused("Write error or short write writing to the DB dump file needed for MASTER "
                        + "<-> REPLICA synchronization: \(Errno.current)")
                }
                if eofMark != nil {
                    tail.append(contentsOf: chunk.prefix(taken).suffix(39))
                    if tail.count > 39 { tail.removeFirst(tail.count - 39) }
                }
                return taken
            }
            if count == 0 && !reachedMark {
                if wallMilliseconds() - connection.lastReceiveMilliseconds > settings.timeoutSeconds * 1000 {
                    throw .refused("Timeout receiving bulk data from MASTER... If the problem persists try to "
                        + "set the 'repl-timeout' parameter in redis.conf to a larger value.")
                }
                continue
            }
            written += Int64(count)
            status.withLock { state in
                state.transferRead = written
                state.transferLastIOMilliseconds = wallMilliseconds()
            }
        }
    }

    /// Where the 40-byte EOF mark ends within `chunk` (an index into it, one past the mark's
    /// last byte), looking across `tail` (the bytes before the chunk); nil when it is not there.
    static func endOfMark(_ mark: [UInt8], tail: [UInt8], chunk: ArraySlice<UInt8>) -> Int? {
        let window = tail + chunk
        guard window.count >= mark.count else { return nil }
        var start = 0
        while start + mark.count <= window.count {
            if window[start] == mark[0] && window[start..<(start + mark.count)].elementsEqual(mark) {
                return start + mark.count - tail.count
            }
            start += 1
        }
        return nil
    }

    /// Replaces the dataset with dbfilename's: flush, load (keys past their TTL are kept: the
    /// primary's DELs remove them), adopt the primary's ID and offset, and restart our AOF
    /// from the new data (restartAOFAfterSYNC).
    private func load(_ settings: PrimaryLinkSettings, replid: String, offset: Int64) throws(ReplicaLinkError) {
        engine.setLoading(true)
        defer { engine.setLoading(false) }
        try applyLock.withLock { _ throws(ReplicaLinkError) in
            if isStopped { throw .stopped }
            // Our sub-replicas follow a history that ends here: they resync with us
            // (replication.c replicationAttachToNewMaster: disconnectSlaves).
            replication.disconnectReplicas()
            hasCachedPrimary.store(false, ordering: .releasing)
            consistentPoint.withLock { $0 = nil }
            log.log(.notice, "MASTER <-> REPLICA sync: Flushing old data")
            let session = makeSession()
            var output = OutputBuffer(initialCapacity: 256)
            session.isReplayingLog = true
            engine.execute(CommandArguments([Array("FLUSHALL".utf8)]), session: session, output: &output)
            engine.execute(CommandArguments([Array("FUNCTION".utf8), Array("FLUSH".utf8)]), session: session,
                           output: &output)
            log.log(.notice, "MASTER <-> REPLICA sync: Loading DB in memory")
            let loading = persistence.loading
            loading.isLoading.store(true, ordering: .releasing)
            defer { loading.isLoading.store(false, ordering: .releasing) }
            do {
                _ = try loadSnapshotFile(
                    storage: persistence.storage, directory: ".", fileName: settings.databaseFileName,
                    into: engine.keyspace, nowMilliseconds: Int64.min, progress: loading,
                    sortedSetLimits: engine.sortedSetLimits)
            } catch {
                // The old data is gone: our history may no longer be offered for PSYNC.
                engine.keyspace.removeAll()
                hasCachedPrimary.store(false, ordering: .releasing)
                consistentPoint.withLock { $0 = nil }
                throw .refused("Failed trying to load the MASTER synchronization DB from disk: \(error)")
            }
            engine.resetChangesSinceLastSave(to: 0)
            replication.adoptPrimary(replid: replid, offset: offset)
            consistentPoint.withLock { $0 = (offset, 0) }
            hasCachedPrimary.store(true, ordering: .releasing)
        }
        if persistence.settings.appendOnly {
            // restartAOFAfterSYNC: the old AOF describes a dataset that is gone.
            _ = persistence.configurationChanged("appendonly", value: "no")
            if let refusal = persistence.configurationChanged("appendonly", value: "yes") {
                log.log(.warning, "Failed enabling the AOF after successful master synchronization! \(refusal)")
            }
        }
        log.log(.notice, "MASTER <-> REPLICA sync: Finished with success")
    }

    private func makeSession() -> ClientSession {
        let session = ClientSession(id: engine.makeClientID())
        session.isAuthenticated = true
        session.isReplicationPrimaryLink = true
        return session
    }

    // MARK: The stream

    /// Applies the stream from `offset` on, acknowledging every second, until the link breaks.
    private func follow(_ connection: ReplicaConnection, _ settings: PrimaryLinkSettings, from offset: Int64)
        throws(ReplicaLinkError)
    {
        let target = StreamTarget(link: self, engine: engine, replication: replication, connection: connection,
                                  session: makeSession())
        // A partial resync continues the stream in the database it had selected (the cached
        // master's db); a full one starts with the primary's SELECT.
        target.session.database = consistentPoint.withLock { $0?.database } ?? 0
        target.session.peerAddress = "\(host):\(port)"
        target.session.createdAtMilliseconds = wallMilliseconds()
        var applier = ReplicationStreamApplier(offset: offset)
        let leftover = connection.takeBuffered()
        if !leftover.isEmpty { applier.receive(contentsOf: leftover) }
        status.withLock { state in
            state.appliedOffset = offset
            state.readOffset = offset
            state.lastIOMilliseconds = wallMilliseconds()
            state.downSinceMilliseconds = 0
            state.clientID = target.session.id
        }
        // CLIENT LIST shows the link (flags=M) and CLIENT KILL TYPE master finds it.
        let record = ClientRecord(id: target.session.id, ownerThread: Int.max,
                                  fields: clientFields(target.session, connection))
        clients.add(record)
        defer { clients.remove(record.id) }
        setState(.connected)
        engine.keyspace.expiryGate.setCurrentThreadAppliesStream(true)
        defer { engine.keyspace.expiryGate.setCurrentThreadAppliesStream(false) }
        var fsyncTracker = FsyncedOffsetTracker()
        fsyncTracker.record(replicationOffset: offset, logOffset: 0)
        let initialFsynced = fsyncTracker.fsyncedOffset(persistence, atMost: offset)
        try connection.sendCommand(["REPLCONF", "ACK", String(offset), "FACK", String(initialFsynced)])
        var lastFsyncedSent = initialFsynced
        var lastAck = wallMilliseconds()
        while true {
            if case .protocolError(let text) = applyBatch(&applier, target) {
                throw .refused("Protocol error from MASTER: \(text)")
            }
            let read = try connection.readPayload(limit: Int.max) { chunk throws(ReplicaLinkError) -> Int in
                chunk.withUnsafeBytes { applier.receive($0) }
                return chunk.count
            }
            if read > 0, case .protocolError(let text) = applyBatch(&applier, target) {
                throw .refused("Protocol error from MASTER: \(text)")
            }
            // The AOF records of what was applied reach the kernel now (and the disk under
            // appendfsync always), as Redis's beforeSleep flushes them after each event-loop pass:
            // a replica is as durable as a primary, and FACK can move.
            engine.attachedLog?.waitUntilDurable(target.session.pendingLogOffset)
            let now = wallMilliseconds()
            status.withLock { state in
                state.appliedOffset = applier.appliedOffset
                state.readOffset = applier.receivedOffset
                state.lastIOMilliseconds = connection.lastReceiveMilliseconds
            }
            if read > 0 {
                let fields = clientFields(target.session, connection)
                record.fields.withLock { $0 = fields }
            }
            fsyncTracker.record(replicationOffset: applier.appliedOffset, logOffset: target.session.pendingLogOffset)
            if let pending = target.pendingAck {
                target.pendingAck = nil
                let fsynced = fsyncTracker.fsyncedOffset(persistence, atMost: pending)
                try connection.sendCommand(["REPLCONF", "ACK", String(pending), "FACK", String(fsynced)])
            }
            // Every second, and as soon as more of the stream is fsynced (WAITAOF waits on it).
            let fsynced = fsyncTracker.hasPending || now - lastAck >= 1000
                ? fsyncTracker.fsyncedOffset(persistence, atMost: applier.appliedOffset) : lastFsyncedSent
            if now - lastAck >= 1000 || fsynced > lastFsyncedSent
                || ackRequested.exchange(false, ordering: .acquiringAndReleasing)
            {
                lastAck = now
                lastFsyncedSent = fsynced
                try connection.sendCommand(
                    ["REPLCONF", "ACK", String(applier.appliedOffset), "FACK", String(fsynced)])
            }
            if now - connection.lastReceiveMilliseconds > settings.timeoutSeconds * 1000 { throw .timedOut }
        }
    }

    /// Applies what was received (at most one read's worth), holding `applyLock` and every
    /// shard for the batch, as Redis applies its master's stream on its one thread: an image
    /// taken under either (dump.rdb, a sub-replica's full sync) sees the data, the offset fed to
    /// our backlog and `consistentPoint` agree, so no command is in the image and after it.
    private func applyBatch(_ applier: inout ReplicationStreamApplier, _ target: StreamTarget)
        -> ReplicationStreamOutcome
    {
        applyLock.withLock { _ in
            let keyspace = engine.keyspace
            let locked = keyspace.lockExclusive()
            defer { keyspace.unlockExclusive(locked) }
            let outcome = applier.apply(to: target)
            consistentPoint.withLock { $0 = (applier.appliedOffset, target.session.database) }
            return outcome
        }
    }

    /// The primary-link client's CLIENT LIST line (Redis lists its master client as flags=M).
    private func clientFields(_ session: ClientSession, _ connection: ReplicaConnection) -> ClientFields {
        var fields = ClientFields(
            id: session.id, address: Posix.peerAddress(connection.descriptor),
            localAddress: Posix.localAddress(connection.descriptor), descriptor: connection.descriptor,
            name: nil, createdAtMilliseconds: session.createdAtMilliseconds,
            lastInteractionMilliseconds: connection.lastReceiveMilliseconds, database: session.database,
            inMulti: session.transaction.isActive ? session.transaction.queued.count : -1,
            queryBufferBytes: connection.bufferedBytes, outputBufferBytes: 0, lastCommand: session.lastCommandName,
            protocolVersion: 2, waitingToWrite: false)
        fields.isPrimaryLink = true
        return fields
    }

    /// The primary-link session as the applier sees it.
    private final class StreamTarget: ReplicationStreamTarget {
        let link: PrimaryLink
        let engine: CommandEngine
        let replication: any PrimaryLinkReplicationState
        let connection: ReplicaConnection
        let session: ClientSession
        var output = OutputBuffer(initialCapacity: 4096)
        /// An ACK GETACK asked for, sent after the batch (its offset is fixed when asked).
        var pendingAck: Int64?

        init(link: PrimaryLink, engine: CommandEngine, replication: any PrimaryLinkReplicationState,
             connection: ReplicaConnection, session: ClientSession) {
            self.link = link
            self.engine = engine
            self.replication = replication
            self.connection = connection
            self.session = session
        }

        func run(_ arguments: CommandArguments) -> ReplicationStreamStep {
            // A busy script holds the stream back (networking.c processInputBuffer stops reading
            // the master's commands while a script is busy) rather than answering -BUSY to it.
            if engine.scriptWatch.isRunning || link.isStopped { return .postponed }
            engine.execute(arguments, session: session, output: &output)
            output.readerIndex = output.writerIndex
            output.discardReadBytes()
            if session.isPostponed {
                // CLIENT PAUSE holds the primary's commands too (server.c processCommand
                // exempts only replicas of ours): it runs again once the pause ends.
                session.isPostponed = false
                return .postponed
            }
            return .applied
        }

        var isInTransaction: Bool { session.transaction.isActive }

        func feedApplied(_ bytes: ArraySlice<UInt8>) {
            bytes.withUnsafeBytes { replication.feedVerbatim($0) }
        }

        func acknowledge(offset: Int64) { pendingAck = offset }
    }
}

/// Which stream offset our AOF holds fsynced, for `REPLCONF ACK <offset> FACK <offset>` (Redis
/// 7.2's fsynced_reploff, which WAITAOF counts; a 7.0 primary ignores the extra pair). Batches
/// are remembered as (stream offset, AOF offset of their last record) until that record is
/// fsynced; the AOF is asked without forcing a write or an fsync.
struct FsyncedOffsetTracker {
    /// At most this many batches wait; past it the last one is extended, which only delays the
    /// FACK of the batch it absorbs (never reports an offset early).
    static let pendingBatchesMax = 256
    private var pending: [(replication: Int64, log: UInt64)] = []
    private var fsynced: Int64 = -1

    /// True while some applied batch is not known to be fsynced.
    var hasPending: Bool { !pending.isEmpty }

    /// Notes that the stream up to `replicationOffset` is applied and logged up to `logOffset`.
    mutating func record(replicationOffset: Int64, logOffset: UInt64) {
        if let last = pending.last, last.replication == replicationOffset { return }
        if let last = pending.last, last.log == logOffset || pending.count >= Self.pendingBatchesMax {
            pending[pending.count - 1] = (replicationOffset, max(last.log, logOffset))
            return
        }
        pending.append((replicationOffset, logOffset))
    }

    /// The highest applied stream offset, up to `atMost`, whose AOF records are fsynced; -1
    /// while the AOF is off (a replica without an AOF never counts for WAITAOF).
    mutating func fsyncedOffset(_ persistence: ServerPersistence, atMost: Int64) -> Int64 {
        var index = 0
        while index < pending.count {
            guard let done = persistence.isFsynced(pending[index].log) else {
                pending.removeAll()
                fsynced = -1
                return -1
            }
            if !done { break }
            fsynced = max(fsynced, pending[index].replication)
            index += 1
        }
        pending.removeFirst(index)
        if pending.isEmpty && persistence.isFsynced(0) == nil { fsynced = -1 }
        return min(fsynced, atMost)
    }
}
