// ReplicaController: REPLICAOF/SLAVEOF, ROLE, the replica's INFO fields and what the replica-* options enforce.
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol

extension ReplicationState: PrimaryLinkReplicationState {
    var currentReplicationID: String { snapshot.replid }
}

/// Owns the link to the primary, if any. One per server (ServerCore.replica).
final class ReplicaController: Sendable {
    private let current = Mutex<PrimaryLink?>(nil)
    private let engineBox = Mutex<CommandEngine?>(nil)

    init() {}

    /// The live link (nil on a primary).
    var link: PrimaryLink? { current.withLock { $0 } }

    func install(engine: CommandEngine) { engineBox.withLock { $0 = engine } }
    var engine: CommandEngine? { engineBox.withLock { $0 } }
}

/// blocked.c disconnectAllBlockedClients's error.
private let unblockedByReplicaOf: StaticString =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"

/// What dump.rdb stores of a replica's position (rdb.c rdbPopulateSaveInfo with a master or a
/// cached master): our replication ID, the offset the data holds every command up to, and the
/// stream's database there. A primary stores none here.
struct ReplicaSnapshotSource: SnapshotReplicationSource {
    let controller: ReplicaController
    let replication: ReplicationState

    func atConsistentPoint<T>(_ body: (ReplicationSaveInfo?) -> T) -> T {
        guard let link = controller.link else { return body(nil) }
        func info() -> ReplicationSaveInfo? {
            link.consistentPoint.withLock { $0 }.map {
                ReplicationSaveInfo(replicationID: replication.currentReplicationID, offset: $0.offset,
                                    streamDatabase: $0.database)
            }
        }
        // A stopped link applies nothing more (shutdown stops it before freezing the keyspace).
        if link.isStopped { return body(info()) }
        return link.applyLock.withLock { _ in body(info()) }
    }
}

extension ServerCore {
    /// REPLICAOF and SLAVEOF rows (ROLE is in ReplicationCommands, from the shared state this
    /// file keeps current: `primaryLinkUp`, `primaryLinkStateName`).
    func replicaCommandSpecs() -> [CommandSpec] {
        let flags: CommandFlags = [.admin, .noScript, .stale, .noAsyncLoading]
        return [
            CommandSpec(name: "replicaof", arity: 3, flags: flags, categories: ["@admin", "@slow", "@dangerous"],
                        handler: { [self] context in replicaOfCommand(&context) }),
            CommandSpec(name: "slaveof", arity: 3, flags: flags, categories: ["@admin", "@slow", "@dangerous"],
                        handler: { [self] context in replicaOfCommand(&context) }),
        ]
    }

    /// After start-up loading: follows `replicaof` from the configuration, offering the replid and
    /// offset the loaded RDB carried for PSYNC (server.c loadDataFromDisk with masterhost set).
    func startReplicaFromConfiguration(engine: CommandEngine) {
        replica.install(engine: engine)
        persistence.installReplicationSource(ReplicaSnapshotSource(controller: replica, replication: replication))
        let target = configuration.withLock { $0.string("replicaof") }
        let words = target.split(separator: " ")
        guard words.count == 2, let port = Int(words[1]) else {
            applyReplicaRole()
            return
        }
        let loaded = persistence.loadedReplicationInfo
        if let loaded {
            replication.adoptPrimary(replid: loaded.replicationID, offset: loaded.offset)
        }
        follow(host: String(words[0]), port: port, canContinue: loaded != nil,
               streamDatabase: loaded?.streamDatabase ?? 0)
    }

    /// SHUTDOWN: the link stops applying before the keyspace freezes, so the final save holds a
    /// consistent replica position; `resumeReplicaAfterFailedShutdown` restarts it.
    func stopReplicaForShutdown() {
        replica.link?.stop(callerHoldsKeyspace: false)
    }

    /// The shutdown was refused (persistence failed): follow the same primary again, offering
    /// the history the stopped link reached.
    func resumeReplicaAfterFailedShutdown() {
        guard let link = replica.link, link.isStopped else { return }
        let point = link.consistentPoint.withLock { $0 }
        follow(host: link.host, port: link.port, canContinue: point != nil, streamDatabase: point?.database ?? 0)
    }

    /// REPLICAOF host port | NO ONE (replication.c replicaofCommand).
    private func replicaOfCommand(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "no") && arguments.matches(2, "one") {
            if replica.link != nil {
                promote(callerHoldsKeyspace: context.engine.keyspace.isExclusivelyHeldByCurrentThread)
                log.log(.notice, "MASTER MODE enabled (user request from 'id=\(context.session.id)')")
            }
            context.output.writeSimpleString("OK")
            return
        }
        guard let port = parseRedisInteger(arguments[2]), port >= 0 && port <= 65535 else {
            context.output.writeError("ERR Invalid master port")
            return
        }
        let host = String(decoding: arguments[1], as: UTF8.self)
        if let link = replica.link, link.host.lowercased() == host.lowercased() && link.port == Int(port) {
            log.log(.notice, "REPLICAOF would result into synchronization with the master we are already "
                + "connected with. No operation performed.")
            context.output.writeSimpleString("OK Already connected to specified master")
            return
        }
        let holdsKeyspace = context.engine.keyspace.isExclusivelyHeldByCurrentThread
        let previous = replica.link
        previous?.stop(callerHoldsKeyspace: holdsKeyspace)
        // A primary (or a replica whose link was up) offers its own history for PSYNC: "using my
        // own master parameters to synthesize a cached master" (replicationCacheMasterUsingMyself).
        let previousPoint = previous?.consistentPoint.withLock { $0 }
        let canContinue = previous == nil || previousPoint != nil
        if previous == nil {
            log.log(.notice, "Before turning into a replica, using my own master parameters to synthesize a "
                + "cached master: I may be able to synchronize with the new master with just a partial transfer.")
        }
        follow(host: host, port: Int(port), canContinue: canContinue, streamDatabase: previousPoint?.database ?? 0)
        log.log(.notice, "REPLICAOF \(host):\(port) enabled (user request from 'id=\(context.session.id)')")
        context.output.writeSimpleString("OK")
    }

    /// Clients parked in blocking commands get -UNBLOCKED: their keys now belong to the primary's
    /// history (blocked.c disconnectAllBlockedClients, from replicationSetMaster). Redis also
    /// closes them after the reply; here they stay connected.
    private func unblockClientsForReplicaOf(_ engine: CommandEngine) {
        for record in clients.all() {
            guard let waiter = engine.blocking.waiter(clientID: record.id), engine.blocking.cancel(waiter) else {
                continue
            }
            var reply = OutputBuffer(initialCapacity: 128, protocolVersion: waiter.protocolVersion)
            reply.writeError(unblockedByReplicaOf)
            waiter.publish(Array(reply.storage), logOffset: 0)
        }
    }

    /// Starts following `host:port` (the caller stopped any previous link).
    private func follow(host: String, port: Int, canContinue: Bool, streamDatabase: Int = 0) {
        guard let engine = replica.engine else { return }
        unblockClientsForReplicaOf(engine)
        configuration.withLock { try? $0.set("replicaof", [host, String(port)]) }
        replication.setRole(.replica(host: host, port: port))
        let link = PrimaryLink(
            host: host, port: port, engine: engine, replication: replication, log: log, persistence: persistence,
            clients: clients, stats: stats, canContinue: canContinue, streamDatabase: streamDatabase,
            settings: { [self] in primaryLinkSettings(host: host, port: port) },
            onStateChange: { [self] state in
                replication.primaryLinkStateName.withLock { $0 = state.roleName }
                replication.primaryLinkUp.store(state == .connected, ordering: .releasing)
                applyReplicaRole()
            })
        replica.setLink(link)
        applyReplicaRole()
        link.start()
    }

    /// REPLICAOF NO ONE: the link ends, a new history starts (shiftReplicationID), sub-replicas
    /// reconnect to PSYNC against it, and writes are accepted (replicationUnsetMaster).
    func promote(callerHoldsKeyspace: Bool) {
        guard let link = replica.link else { return }
        link.stop(callerHoldsKeyspace: callerHoldsKeyspace)
        replica.setLink(nil)
        configuration.withLock { try? $0.set("replicaof", []) }
        replication.setRole(.primary)
        replication.primaryLinkUp.store(false, ordering: .releasing)
        replication.primaryLinkStateName.withLock { $0 = "connect" }
        replication.shiftReplicationID()
        replication.disconnectReplicas()
        applyReplicaRole()
    }

    /// The link's connection settings, read at each (re)connection so CONFIG SET applies.
    private func primaryLinkSettings(host: String, port: Int) -> PrimaryLinkSettings {
        let configuration = configuration.withLock { $0 }
        let announcedPort = Int(configuration.integer("replica-announce-port"))
        return PrimaryLinkSettings(
            host: host, port: port, masterAuth: configuration.string("masterauth"),
            masterUser: configuration.string("masteruser"), announceIP: configuration.string("replica-announce-ip"),
            listeningPort: announcedPort != 0 ? announcedPort : boundPort.load(ordering: .relaxed),
            timeoutSeconds: max(1, configuration.integer("repl-timeout")),
            databaseFileName: configuration.string("dbfilename"))
    }

    /// Recomputes what dispatch enforces from the role, the link's state and the options
    /// (REPLICAOF, a link state change, CONFIG SET of a replica-* option).
    func applyReplicaRole() {
        guard let engine = replica.engine else { return }
        guard let link = replica.link else {
            log.setReplica(false)
            engine.setReplicaRole([])
            return
        }
        log.setReplica(true)
        let configuration = configuration.withLock { $0 }
        var role: ReplicaRole = [.replica]
        if configuration.bool("replica-read-only") { role.insert(.readOnly) }
        if configuration.bool("replica-ignore-maxmemory") { role.insert(.ignoresMaxmemory) }
        if !configuration.bool("replica-serve-stale-data") && link.status.withLock({ $0.state }) != .connected {
            role.insert(.deniesStaleData)
        }
        engine.setReplicaRole(role)
    }

    /// INFO replication's replica block, master_host ... replica_announced (server.c
    /// genRedisInfoString), from the link's published status.
    func writePrimaryLinkInfo(host: String, port: Int, _ field: (String, String) -> Void) {
        let status = replica.link?.status.withLock { $0 } ?? PrimaryLinkStatus()
        let configuration = configuration.withLock { $0 }
        let nowSeconds = wallMilliseconds() / 1000
        field("master_host", host)
        field("master_port", String(port))
        field("master_link_status", status.state == .connected ? "up" : "down")
        let lastIO = status.state == .connected ? status.lastIOMilliseconds.map { nowSeconds - $0 / 1000 } : nil
        field("master_last_io_seconds_ago", String(lastIO ?? -1))
        field("master_sync_in_progress", status.state == .transfer ? "1" : "0")
        // Redis starts both at 1 when there is neither a master client nor a cached one.
        field("slave_read_repl_offset", String(status.readOffset ?? 1))
        field("slave_repl_offset", String(status.appliedOffset ?? 1))
        if status.state == .transfer {
            let size = status.transferSize
            let percent = size > 0 ? Double(status.transferRead) / Double(size) * 100 : 0
            field("master_sync_total_bytes", String(size))
            field("master_sync_read_bytes", String(status.transferRead))
            field("master_sync_left_bytes", String(size - status.transferRead))
            field("master_sync_perc", fixed2(percent))
            field("master_sync_last_io_seconds_ago", String(nowSeconds - status.transferLastIOMilliseconds / 1000))
        }
        if status.state != .connected {
            let since = status.downSinceMilliseconds
            field("master_link_down_since_seconds", String(since != 0 ? nowSeconds - since / 1000 : -1))
        }
        field("slave_priority", String(configuration.integer("replica-priority")))
        field("slave_read_only", configuration.bool("replica-read-only") ? "1" : "0")
        field("replica_announced", configuration.bool("replica-announced") ? "1" : "0")
    }
}

extension ReplicaController {
    func setLink(_ link: PrimaryLink?) { current.withLock { $0 = link } }
}
