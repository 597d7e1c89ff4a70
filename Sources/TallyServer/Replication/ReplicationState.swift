// ReplicationState: this server's replication identity, offsets, backlog and attached replicas.
//
//   I/O threads (writes, shard locks held)        replica threads (one per replica, ReplicaLink)
//   ─────────────────────────────────────         ──────────────────────────────────────────────
//   CommandEngine.flushPropagation                 take pending bytes ─► write(2) to the replica
//     └─► append(batch) ─┐                         read REPLCONF ACK ─► ackedOffset, wake WAITers
//   feedVerbatim (R2) ───┼─► [mutex] SELECT if db changed, backlog.append, each replica's pending
//   cron PING ───────────┘        (eventfd wake when the replica thread sleeps)
//
// One mutex orders the stream: every byte gets its offset under it, so the backlog, the offsets
// and what each replica receives agree. Redis does all of this on its one thread
// (replication.c replicationFeedSlaves, feedReplicationBuffer); here it is the only lock a
// write takes beyond its shard's, and only while a backlog exists.
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPlatform
import TallyProtocol

/// Who this server follows.
public enum ReplicationRole: Sendable, Equatable {
    /// A primary (Redis's `master`): no `replicaof`.
    case primary
    /// Following `host:port` (REPLICAOF, `replicaof`).
    case replica(host: String, port: Int)
}

/// Where a replica is in its synchronization (Redis's SLAVE_STATE_*, as INFO names them).
enum ReplicaSyncState: Sendable {
    /// Waiting for the diskless sync delay before the snapshot starts (`wait_bgsave`).
    case waitingForSnapshot
    /// Receiving the RDB (`send_bulk`).
    case sendingSnapshot
    /// Following the stream (`online`).
    case online

    var infoName: String {
        switch self {
        case .waitingForSnapshot: "wait_bgsave"
        case .sendingSnapshot: "send_bulk"
        case .online: "online"
        }
    }
}

/// The primary-side options (replication.c, config.c 7.0 defaults).
struct PrimarySettings: Sendable {
    /// `repl-diskless-sync`: send the RDB as it is produced, in the `$EOF:<mark>` form.
    var disklessSync = true
    /// `repl-diskless-sync-delay`: seconds to wait for more replicas before a diskless transfer.
    var disklessDelaySeconds = 5
    /// `repl-diskless-sync-max-replicas`: start at once when this many wait (0 = no limit).
    var disklessMaxReplicas = 0
    /// `repl-ping-replica-period`.
    var pingPeriodSeconds = 10
    /// `repl-timeout`.
    var timeoutSeconds = 60
    /// `min-replicas-to-write` and `min-replicas-max-lag`.
    var minReplicasToWrite = 0
    var minReplicasMaxLagSeconds = 10
}

/// One attached replica's share of the stream, guarded by the state's mutex.
struct ReplicaSlot {
    let link: ReplicaLink
    /// Stream bytes not yet taken by the replica's thread (Redis's output buffer of the replica).
    var pending: [UInt8] = []
    /// Bytes the thread took and is still writing (counted against the output limit too).
    var inFlightBytes = 0
    /// The replica's thread sleeps: the next byte fed must signal its eventfd.
    var wakeArmed = true
    /// Over the soft output limit since (ms; 0 = not over).
    var softLimitSince: Int64 = 0
    /// Too far behind (`client-output-buffer-limit replica`) or killed: its thread closes it.
    var mustClose = false
    var state: ReplicaSyncState
}

/// The stream's state behind a pthread mutex. Why not `Synchronization.Mutex`: every write of
/// every I/O thread and the replica threads take this lock, and on a busy 2-core box Mutex's
/// spinning slow path took 18% of the CPU profile of `-P 16` INCR with one replica (cpu-clock
/// samples, perf); the AOF's PosixLock and the shards' ShardLock sleep in the kernel instead.
final class LockedCore: @unchecked Sendable {
    private let lock = PosixLock()
    private var value: ReplicationState.Core

    init(_ value: ReplicationState.Core) { self.value = value }

    /// Runs `body` with the state, holding the lock.
    func withLock<Result>(_ body: (inout ReplicationState.Core) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// The replication state of one server. Thread-safe.
public final class ReplicationState: ReplicationFeed, Sendable {
    struct Core {
        var role: ReplicationRole = .primary
        /// Our replication ID (`master_replid`), 40 hex characters, random at start.
        var replid: String
        /// The previous ID (`master_replid2`): PSYNC with it is accepted up to `secondReplOffset`.
        var replid2: String = ReplicationState.zeroID
        /// Redis's `second_replid_offset`, -1 while there is no previous ID.
        var secondReplOffset: Int64 = -1
        /// Redis's `master_repl_offset`: number of the last stream byte.
        var masterReplOffset: Int64 = 0
        /// Created when the first replica attaches (or on a replica, once synced); nil otherwise.
        var backlog: ReplicationBacklog?
        /// `repl-backlog-size`.
        var backlogCapacity: Int = 1024 * 1024
        /// `repl-backlog-ttl` in seconds: with no replica for that long a primary frees its backlog.
        var backlogTTLSeconds: Int64 = 3600
        /// When the last replica left (ms; 0 while some are attached or the backlog never existed).
        var noReplicasSinceMilliseconds: Int64 = 0
        /// The database the stream last SELECTed (Redis's `slaveseldb`), -1 to force SELECT.
        var streamDatabase: Int = -1
        var replicas: [ReplicaSlot] = []
        /// Some replica thread sleeps while bytes wait for it (see `wakeReplicasIfDue`).
        var wakeDue = false
    }

    static let zeroID = String(repeating: "0", count: 40)

    /// `Core.wakeDue`, readable without the mutex (the I/O threads' per-iteration check).
    private let wakeDue = Atomic<Bool>(false)

    let core: LockedCore
    /// The engine whose writes feed the stream (set once at start-up by `install(engine:)`).
    private let engineBox = Mutex<CommandEngine?>(nil)
    /// `client-output-buffer-limit` for the replica class (Redis names it `slave`).
    let outputLimits = OutputBufferLimits(className: "slave")

    /// Primary-side settings other than the backlog's.
    let settings = Mutex(PrimarySettings())

    /// REPLCONF options by client id, until SYNC/PSYNC hands the connection over.
    private let handshakes = Mutex<[Int64: ReplicaHandshake]>([:])
    /// True while a replica's link to its primary is up (set by the replica side; SYNC from a
    /// sub-replica is refused with -NOMASTERLINK otherwise).
    let primaryLinkUp = Atomic<Bool>(false)
    /// The link state ROLE reports on a replica (`connect`, `connecting`, `sync`, `connected`).
    let primaryLinkStateName = Mutex<String>("connect")
    /// Clients parked in WAIT, with the offset they wait for and how many replicas.
    private let waits = Mutex<[(waiter: BlockedWaiter, offset: Int64, replicas: Int64)]>([])
    private let hasWaits = Atomic<Bool>(false)
    private let blockingRegistry = Mutex<BlockingRegistry?>(nil)
    /// The stream offset just past the last GETACK fed: a WAIT with no write since then is
    /// covered by the ACK that GETACK asks for, so no second one is fed.
    private let offsetAfterLastGetAck = Atomic<Int64>(-1)

    /// A fresh primary state with a random replication ID.
    public init() {
        core = LockedCore(Core(replid: ReplicationState.randomID()))
    }

    /// Connects the state to the engine (Server.run, once the engine exists).
    func install(engine: CommandEngine) {
        engineBox.withLock { $0 = engine }
        // min-replicas-to-write from the configuration holds from the first command on.
        refreshGoodReplicas(nowMilliseconds: SystemClock().nowMilliseconds())
    }

    var engine: CommandEngine? { engineBox.withLock { $0 } }

    /// 40 random hex characters (replication.c changeReplicationId uses getRandomHexChars).
    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        let text = (0..<40).map { _ in digits[Int.random(in: 0..<16, using: &generator)] }
        return String(decoding: text, as: UTF8.self)
    }

    // MARK: Reading

    /// A consistent copy of the identity and offsets (INFO, ROLE, PSYNC decisions).
    struct Snapshot {
        var role: ReplicationRole
        var replid: String
        var replid2: String
        var secondReplOffset: Int64
        var masterReplOffset: Int64
        var backlogActive: Bool
        var backlogCapacity: Int
        var backlogFirstByteOffset: Int64
        var backlogHistoryLength: Int
    }

    var snapshot: Snapshot {
        core.withLock { core in
            Snapshot(
                role: core.role, replid: core.replid, replid2: core.replid2, secondReplOffset: core.secondReplOffset,
                masterReplOffset: core.masterReplOffset, backlogActive: core.backlog != nil,
                backlogCapacity: core.backlogCapacity, backlogFirstByteOffset: core.backlog?.firstByteOffset ?? 0,
                backlogHistoryLength: core.backlog?.historyLength ?? 0)
        }
    }

    /// The current role.
    public var role: ReplicationRole { core.withLock { $0.role } }

    /// `master_repl_offset`.
    public var masterReplOffset: Int64 { core.withLock { $0.masterReplOffset } }

    /// The attached replicas' links (INFO, ROLE, WAIT).
    var replicaLinks: [ReplicaLink] { core.withLock { $0.replicas.map(\.link) } }

    // MARK: Feeding the stream

    /// ReplicationFeed: a batch of our own clients' writes. A replica does not feed its clients'
    /// writes (replica-read-only no) to its sub-replicas: they get its primary's stream verbatim
    /// (replication.c replicationFeedSlaves returns when `masterhost` is set).
    public func append(_ batch: borrowing PropagationBuffer) -> Int64 {
        let bytes = batch.bytes
        let records = batch.records
        return core.withLock { core -> Int64 in
            guard core.role == .primary, core.backlog != nil else { return core.masterReplOffset }
            bytes.withUnsafeBytes { all in
                for record in records {
                    if record.database != core.streamDatabase {
                        Self.feedSelect(record.database, into: &core, limits: outputLimits)
                    }
                    Self.feed(UnsafeRawBufferPointer(rebasing: all[record.range]), into: &core, limits: outputLimits)
                }
            }
            if core.wakeDue && !wakeDue.load(ordering: .relaxed) { wakeDue.store(true, ordering: .releasing) }
            return core.masterReplOffset
        }
    }

    /// Appends bytes received from our own primary to the backlog and our sub-replicas unchanged,
    /// so a promoted replica's offsets and backlog match its old primary's and PSYNC continues
    /// after failover (replication.c replicationFeedStreamFromMasterStream). Creates the backlog
    /// if there is none (a replica keeps one to serve PSYNC once promoted).
    public func feedVerbatim(_ bytes: UnsafeRawBufferPointer) {
        core.withLock { core in
            if core.backlog == nil {
                core.backlog = ReplicationBacklog(capacity: core.backlogCapacity, nextOffset: core.masterReplOffset + 1)
            }
            Self.feed(bytes, into: &core, limits: outputLimits)
            if core.wakeDue { wakeDue.store(true, ordering: .releasing) }
        }
        wakeReplicasIfDue()
    }

    /// `feedVerbatim` for an array.
    public func feedVerbatim(_ bytes: [UInt8]) { bytes.withUnsafeBytes { feedVerbatim($0) } }

    /// The encoded `SELECT database` (replicationFeedSlaves' selectcmd), fed and remembered.
    private static func feedSelect(_ database: Int, into core: inout Core, limits: OutputBufferLimits) {
        var select: [UInt8] = []
        RESPRecord.append([Array("SELECT".utf8), Array(String(database).utf8)], to: &select)
        select.withUnsafeBytes { feed($0, into: &core, limits: limits) }
        core.streamDatabase = database
    }

    /// Appends stream bytes to the backlog and to every replica's pending output (the caller
    /// holds the mutex). A replica whose output passes `client-output-buffer-limit replica` is
    /// marked for closing (networking.c checkClientOutputBufferLimits) and gets nothing more.
    static func feed(_ bytes: UnsafeRawBufferPointer, into core: inout Core, limits: OutputBufferLimits) {
        core.backlog?.append(bytes)
        core.masterReplOffset += Int64(bytes.count)
        // A replica still waiting for its snapshot gets nothing: the image it will receive holds
        // these writes already, and its stream starts at the image's offset (attachFull).
        for index in core.replicas.indices
        where !core.replicas[index].mustClose && core.replicas[index].state != .waitingForSnapshot {
            core.replicas[index].pending.append(contentsOf: bytes)
            let queued = core.replicas[index].pending.count + core.replicas[index].inFlightBytes
            let hard = limits.hardBytes.load(ordering: .relaxed)
            let soft = limits.softBytes.load(ordering: .relaxed)
            // The clock is read only when a limit is near: under it, feeding costs no syscall.
            let overSoft = (soft > 0 && queued >= soft) || core.replicas[index].softLimitSince != 0
            if (hard > 0 && queued >= hard) || overSoft {
                let now = SystemClock().nowMilliseconds()
                if limits.exceeded(pendingBytes: queued, nowMilliseconds: now,
                                   softSince: &core.replicas[index].softLimitSince)
                {
                    core.replicas[index].mustClose = true
                    core.replicas[index].pending = []
                    core.replicas[index].link.outputLimitReached.store(true, ordering: .relaxed)
                    core.replicas[index].link.wake()
                    continue
                }
            }
            if core.replicas[index].wakeArmed { core.wakeDue = true }
        }
    }

    /// Wakes the replica threads that sleep while bytes wait for them. Writers only flag the
    /// wake-up (`Core.wakeDue`); the I/O threads call this once per event-loop iteration, as
    /// Redis writes to replicas once per loop (beforeSleep), so a pipeline of N writes costs one
    /// eventfd write and one replica wake-up instead of N (`-P 16` INCR with a replica ran at
    /// about half the rate of no replica with a wake per write). One atomic load when idle.
    public func wakeReplicasIfDue() {
        guard wakeDue.load(ordering: .acquiring) else { return }
        core.withLock { core in
            wakeDue.store(false, ordering: .releasing)
            guard core.wakeDue else { return }
            core.wakeDue = false
            for index in core.replicas.indices
            where core.replicas[index].wakeArmed && !core.replicas[index].pending.isEmpty {
                core.replicas[index].wakeArmed = false
                core.replicas[index].link.wake()
            }
        }
    }

    /// Feeds `PING` as replicationCron does every `repl-ping-replica-period` seconds while
    /// replicas are attached, so they see the primary alive (and offsets move, as in Redis). It
    /// keeps the stream's database (no SELECT).
    func feedPing() {
        core.withLock { core in
            guard core.role == .primary, core.backlog != nil, !core.replicas.isEmpty else { return }
            var ping: [UInt8] = []
            RESPRecord.append([Array("PING".utf8)], to: &ping)
            ping.withUnsafeBytes { Self.feed($0, into: &core, limits: outputLimits) }
            if core.wakeDue { wakeDue.store(true, ordering: .releasing) }
        }
        wakeReplicasIfDue()
    }

    /// Feeds `REPLCONF GETACK *` so replicas report their offsets now (WAIT, replication.c
    /// replicationRequestAckFromSlaves, sent from beforeSleep).
    func feedGetAck() {
        core.withLock { core in
            guard core.role == .primary, core.backlog != nil, !core.replicas.isEmpty else { return }
            var getack: [UInt8] = []
            RESPRecord.append([Array("REPLCONF".utf8), Array("GETACK".utf8), Array("*".utf8)], to: &getack)
            getack.withUnsafeBytes { Self.feed($0, into: &core, limits: outputLimits) }
            if core.wakeDue { wakeDue.store(true, ordering: .releasing) }
        }
        wakeReplicasIfDue()
    }

    // MARK: Handshake, ACKs and WAIT

    /// The REPLCONF options a client sent so far.
    func handshake(clientID id: Int64) -> ReplicaHandshake { handshakes.withLock { $0[id] } ?? ReplicaHandshake() }

    func storeHandshake(_ handshake: ReplicaHandshake, clientID id: Int64) {
        handshakes.withLock { $0[id] = handshake }
    }

    /// Takes the handshake for the replica's thread (and forgets it).
    func takeHandshake(clientID id: Int64) -> ReplicaHandshake {
        handshakes.withLock { $0.removeValue(forKey: id) } ?? ReplicaHandshake()
    }

    /// A client closed: forgets its REPLCONF options, if any.
    func forgetHandshake(clientID id: Int64) {
        handshakes.withLock { if !$0.isEmpty { $0[id] = nil } }
    }

    /// Online replicas that acknowledged `offset` (replication.c replicationCountAcksByOffset).
    func acknowledgedReplicaCount(atLeast offset: Int64) -> Int {
        core.withLock { core in
            core.replicas.reduce(0) { count, slot in
                count + (slot.state == .online && slot.link.ackedOffset.load(ordering: .relaxed) >= offset ? 1 : 0)
            }
        }
    }

    /// Online replicas whose AOF fsynced `offset` (WAITAOF; Redis 7.2 replicationCountAOFAcksByOffset).
    public func fsyncedReplicaCount(atLeast offset: Int64) -> Int {
        core.withLock { core in
            core.replicas.reduce(0) { count, slot in
                count + (slot.state == .online && slot.link.fsyncedOffset.load(ordering: .relaxed) >= offset ? 1 : 0)
            }
        }
    }

    /// Parks a WAIT client until `replicas` replicas acknowledged `offset` (or it times out).
    func park(_ waiter: BlockedWaiter, offset: Int64, replicas: Int64, registry: BlockingRegistry) {
        blockingRegistry.withLock { if $0 == nil { $0 = registry } }
        waits.withLock { $0.append((waiter, offset, replicas)) }
        hasWaits.store(true, ordering: .releasing)
        requestAcknowledgements()
        // An ACK may have arrived between the caller's count and the parking.
        serveWaits()
    }

    /// Answers the WAIT clients whose replicas have acknowledged enough (after each ACK).
    func serveWaits() {
        guard hasWaits.load(ordering: .acquiring) else { return }
        let parked = waits.withLock { waits in
            waits.removeAll { $0.waiter.isClaimed }
            hasWaits.store(!waits.isEmpty, ordering: .releasing)
            return waits
        }
        guard let registry = blockingRegistry.withLock({ $0 }) else { return }
        for entry in parked {
            let count = acknowledgedReplicaCount(atLeast: entry.offset)
            guard count >= entry.replicas, entry.waiter.claim() else { continue }
            registry.removeExternal(entry.waiter)
            entry.waiter.publish(ServerCore.integerReply(count), logOffset: 0)
        }
    }

    /// Feeds `REPLCONF GETACK *` unless one was fed after the last write.
    public func requestAcknowledgements() {
        let current = masterReplOffset
        if offsetAfterLastGetAck.load(ordering: .acquiring) == current { return }
        feedGetAck()
        offsetAfterLastGetAck.store(masterReplOffset, ordering: .releasing)
    }

    /// A replica acknowledged `offset` (and its AOF fsynced `fsynced`, when sent).
    func acknowledged(_ link: ReplicaLink, offset: Int64, fsynced: Int64?, nowMilliseconds now: Int64) {
        if offset > link.ackedOffset.load(ordering: .relaxed) { link.ackedOffset.store(offset, ordering: .relaxed) }
        if let fsynced, fsynced > link.fsyncedOffset.load(ordering: .relaxed) {
            link.fsyncedOffset.store(fsynced, ordering: .relaxed)
        }
        link.ackTimeMilliseconds.store(now, ordering: .relaxed)
        serveWaits()
        if minReplicaSettings.toWrite > 0 { refreshGoodReplicas(nowMilliseconds: now) }
    }

    // MARK: Role changes (used by the replica side)

    /// After a full sync from a primary: our ID and offset become its, the previous history is
    /// forgotten, and a fresh backlog starts at the next byte (replication.c readSyncBulkPayload:
    /// replid and master_repl_offset copied, clearReplicationId2, createReplicationBacklog).
    public func adoptPrimary(replid: String, offset: Int64) {
        core.withLock { core in
            core.replid = replid
            core.replid2 = Self.zeroID
            core.secondReplOffset = -1
            core.masterReplOffset = offset
            core.backlog = ReplicationBacklog(capacity: core.backlogCapacity, nextOffset: offset + 1)
            core.streamDatabase = -1
        }
        engine?.attachReplicationFeed(self)
    }

    /// After a partial resync to a primary whose ID changed (+CONTINUE <new id>): the old ID
    /// becomes replid2, valid up to our offset (replication.c slaveTryPartialResynchronization).
    public func continueWithNewPrimaryID(_ newID: String) {
        core.withLock { core in
            guard newID != core.replid else { return }
            core.replid2 = core.replid
            core.secondReplOffset = core.masterReplOffset + 1
            core.replid = newID
        }
    }

    /// REPLICAOF NO ONE / failover: a new history starts here. replid2 keeps the old ID, valid up
    /// to the next byte, so replicas of our old primary continue with PSYNC (replication.c
    /// shiftReplicationId); the stream re-SELECTs (replicationUnsetMaster sets slaveseldb = -1).
    public func shiftReplicationID() {
        core.withLock { core in
            core.replid2 = core.replid
            core.secondReplOffset = core.masterReplOffset + 1
            core.replid = Self.randomID()
            core.streamDatabase = -1
        }
    }

    /// Sets the role; feeding of our own writes follows it (only a primary feeds them).
    public func setRole(_ role: ReplicationRole) {
        core.withLock { $0.role = role }
    }

    /// Closes every attached replica (replication.c disconnectSlaves, on a role change), so they
    /// reconnect and PSYNC against the new history.
    public func disconnectReplicas() {
        core.withLock { core in
            for index in core.replicas.indices {
                core.replicas[index].mustClose = true
                core.replicas[index].link.wake()
            }
        }
    }

    // MARK: Attaching and detaching replicas (ReplicaLink)

    /// What PSYNC gets.
    enum SyncDecision {
        /// `+CONTINUE`: the backlog bytes from the requested offset follow.
        case partial(replid: String, backlog: [UInt8])
        /// `+FULLRESYNC replid offset`: the snapshot taken at this instant, then the stream.
        case full(replid: String, offset: Int64)
    }

    /// Redis's masterTryPartialResynchronization decision: partial when `replid` is our ID, or our
    /// previous ID and `offset` is at most `second_repl_offset`, and the backlog still holds
    /// `offset`. Pure, for tests.
    static func canContinue(replid: String, offset: Int64, state: Core) -> Bool {
        let matches = replid.lowercased() == state.replid
            || (replid.lowercased() == state.replid2 && offset <= state.secondReplOffset)
        guard matches, let backlog = state.backlog else { return false }
        return backlog.canServe(from: offset)
    }

    /// Tries a partial resync for `link`; on success the replica is attached online with the
    /// backlog bytes from `offset` (nothing fed in between is lost: all under the mutex).
    func attachPartial(_ link: ReplicaLink, replid: String, offset: Int64) -> SyncDecision? {
        core.withLock { core -> SyncDecision? in
            guard Self.canContinue(replid: replid, offset: offset, state: core), let backlog = core.backlog
            else { return nil }
            core.replicas.append(ReplicaSlot(link: link, state: .online))
            core.noReplicasSinceMilliseconds = 0
            return .partial(replid: core.replid, backlog: backlog.bytes(from: offset))
        }
    }

    /// Registers `link` for a full sync. Must be called while the caller holds every shard
    /// (`Keyspace.lockExclusive`) and takes the keyspace image in the same hold: the returned
    /// offset is then exactly the stream position of the image, and every later write is queued
    /// for this replica. The backlog is created on first use with a new ID, as syncCommand does
    /// ("Replication backlog created, my new replication IDs are ...").
    func attachFull(_ link: ReplicaLink) -> SyncDecision {
        var created = false
        let decision = core.withLock { core -> SyncDecision in
            if core.backlog == nil {
                if core.role == .primary {
                    core.replid = Self.randomID()
                    core.replid2 = Self.zeroID
                    core.secondReplOffset = -1
                }
                core.backlog = ReplicationBacklog(capacity: core.backlogCapacity, nextOffset: core.masterReplOffset + 1)
                created = true
            }
            // The replica's stream starts after the image with a SELECT (replication.c
            // replicationSetupSlaveForFullResync sets slaveseldb = -1).
            core.streamDatabase = -1
            if let index = core.replicas.firstIndex(where: { $0.link === link }) {
                core.replicas[index].state = .sendingSnapshot
                core.replicas[index].pending.removeAll()
            } else {
                core.replicas.append(ReplicaSlot(link: link, state: .sendingSnapshot))
            }
            core.noReplicasSinceMilliseconds = 0
            return .full(replid: core.replid, offset: core.masterReplOffset)
        }
        if created {
            engine?.attachReplicationFeed(self)
            let snapshot = snapshot
            link.log(.notice, "Replication backlog created, my new replication IDs are '\(snapshot.replid)' "
                + "and '\(snapshot.replid2)'")
        }
        return decision
    }

    /// Lists a replica that waits for the diskless delay (INFO shows it as wait_bgsave).
    func registerWaiting(_ link: ReplicaLink) {
        core.withLock { core in
            core.replicas.append(ReplicaSlot(link: link, state: .waitingForSnapshot))
            core.noReplicasSinceMilliseconds = 0
        }
    }

    /// Replicas waiting for a snapshot (repl-diskless-sync-max-replicas).
    var waitingReplicaCount: Int {
        core.withLock { $0.replicas.reduce(0) { $0 + ($1.state == .waitingForSnapshot ? 1 : 0) } }
    }

    /// Marks the replica online (after its snapshot was sent).
    func setOnline(_ link: ReplicaLink) {
        core.withLock { core in
            guard let index = core.replicas.firstIndex(where: { $0.link === link }) else { return }
            core.replicas[index].state = .online
        }
    }

    /// The replica's thread takes what is pending (swapping buffers, so no copy), which also says
    /// it finished writing what it took before; returns false when it must close.
    func takePending(_ link: ReplicaLink, into buffer: inout [UInt8]) -> Bool {
        core.withLock { core -> Bool in
            guard let index = core.replicas.firstIndex(where: { $0.link === link }) else { return false }
            if core.replicas[index].mustClose { return false }
            buffer.removeAll(keepingCapacity: true)
            swap(&buffer, &core.replicas[index].pending)
            core.replicas[index].inFlightBytes = buffer.count
            if buffer.isEmpty { core.replicas[index].wakeArmed = true }
            return true
        }
    }

    /// Bytes queued for `link` (CLIENT LIST omem, INFO).
    func queuedBytes(_ link: ReplicaLink) -> Int {
        core.withLock { core in
            guard let slot = core.replicas.first(where: { $0.link === link }) else { return 0 }
            return slot.pending.count + slot.inFlightBytes
        }
    }

    /// The sync state INFO shows for `link`.
    func syncState(_ link: ReplicaLink) -> ReplicaSyncState? {
        core.withLock { core in core.replicas.first(where: { $0.link === link })?.state }
    }

    /// Forgets a closed replica.
    func detach(_ link: ReplicaLink, nowMilliseconds: Int64) {
        core.withLock { core in
            core.replicas.removeAll { $0.link === link }
            if core.replicas.isEmpty && core.backlog != nil { core.noReplicasSinceMilliseconds = nowMilliseconds }
        }
    }

    /// Requests the close of the replica with client id `id` (CLIENT KILL); true if found.
    func kill(clientID id: Int64) -> Bool {
        core.withLock { core -> Bool in
            guard let index = core.replicas.firstIndex(where: { $0.link.clientID == id }) else { return false }
            core.replicas[index].mustClose = true
            core.replicas[index].link.wake()
            return true
        }
    }

    // MARK: Settings and cron

    /// Applies the primary-side options and re-evaluates `min-replicas-to-write`.
    func applyPrimarySettings(_ new: PrimarySettings) {
        settings.withLock { $0 = new }
        refreshGoodReplicas(nowMilliseconds: SystemClock().nowMilliseconds())
    }

    /// `min-replicas-to-write` and `min-replicas-max-lag`.
    var minReplicaSettings: (toWrite: Int, maxLagSeconds: Int) {
        settings.withLock { ($0.minReplicasToWrite, $0.minReplicasMaxLagSeconds) }
    }

    /// Online replicas whose last ACK is at most `min-replicas-max-lag` seconds old
    /// (replication.c refreshGoodSlavesCount).
    func goodReplicaCount(nowMilliseconds now: Int64) -> Int {
        let maxLag = Int64(minReplicaSettings.maxLagSeconds)
        return core.withLock { core in
            core.replicas.reduce(0) { count, slot in
                let lag = (now - slot.link.ackTimeMilliseconds.load(ordering: .relaxed)) / 1000
                return count + (slot.state == .online && lag <= maxLag ? 1 : 0)
            }
        }
    }

    /// Recomputes whether writes are refused with -NOREPLICAS (replication.c checkGoodReplicasStatus:
    /// never on a replica, nor when either setting is 0).
    func refreshGoodReplicas(nowMilliseconds now: Int64) {
        guard let engine else { return }
        let (toWrite, maxLag) = minReplicaSettings
        let lacking = role == .primary && toWrite > 0 && maxLag > 0 && goodReplicaCount(nowMilliseconds: now) < toWrite
        engine.setLacksGoodReplicas(lacking)
    }

    /// Applies `repl-backlog-size` and `repl-backlog-ttl` (CONFIG SET and start-up).
    func applySettings(backlogBytes: Int, backlogTTLSeconds: Int64) {
        core.withLock { core in
            core.backlogCapacity = max(1, backlogBytes)
            core.backlogTTLSeconds = backlogTTLSeconds
            core.backlog?.resize(capacity: core.backlogCapacity)
        }
    }

    /// When the cron last fed PING.
    private let lastPingMilliseconds = Atomic<Int64>(0)

    /// Once a second (replicationCron): PINGs the replicas every `repl-ping-replica-period`,
    /// refreshes the good-replica count, and frees the backlog of a primary that has had no replica
    /// for `repl-backlog-ttl` seconds (0 = never), with a new ID since the history is gone.
    func cron(nowMilliseconds now: Int64) {
        wakeReplicasIfDue()
        let period = Int64(settings.withLock { $0.pingPeriodSeconds }) * 1000
        if now - lastPingMilliseconds.load(ordering: .relaxed) >= period {
            lastPingMilliseconds.store(now, ordering: .relaxed)
            feedPing()
        }
        refreshGoodReplicas(nowMilliseconds: now)
        var freed = false
        core.withLock { core in
            guard core.role == .primary, core.backlog != nil, core.replicas.isEmpty, core.backlogTTLSeconds > 0,
                  core.noReplicasSinceMilliseconds > 0,
                  now - core.noReplicasSinceMilliseconds >= core.backlogTTLSeconds * 1000
            else { return }
            core.backlog = nil
            core.replid2 = Self.zeroID
            core.secondReplOffset = -1
            core.replid = Self.randomID()
            core.noReplicasSinceMilliseconds = 0
            freed = true
        }
        if freed { engine?.attachReplicationFeed(nil) }
    }
}
