// ReplicationInfo: INFO replication in Redis 7.0's field order (server.c genRedisInfoString), and
// the replication settings read from the configuration.
import TallyCommands
import TallyKeyspace

extension ServerCore {
    /// The `# Replication` fields: role, the replica-side block when following a primary, the
    /// attached replicas, then the IDs, offsets and backlog.
    func writeReplicationInfo(_ field: (String, String) -> Void) {
        let state = replication.snapshot
        switch state.role {
        case .primary:
            field("role", "master")
        case .replica(let host, let port):
            field("role", "slave")
            writeReplicaSideInfo(host: host, port: port, field)
        }
        let links = replication.replicaLinks
        field("connected_slaves", String(links.count))
        let settings = replication.minReplicaSettings
        if settings.toWrite > 0 && settings.maxLagSeconds > 0 {
            field("min_slaves_good_slaves", String(replication.goodReplicaCount(nowMilliseconds: nowMilliseconds())))
        }
        let now = nowMilliseconds()
        var index = 0
        for link in links {
            // Replicas in no reportable state are skipped, as replstateToString's "" is.
            guard let syncState = replication.syncState(link) else { continue }
            let acked = link.ackTimeMilliseconds.load(ordering: .relaxed)
            let lag = syncState == .online ? max(0, (now - acked) / 1000) : 0
            field("slave\(index)", "ip=\(link.announcedAddress),port=\(link.listeningPort),state=\(syncState.infoName),"
                + "offset=\(link.ackedOffset.load(ordering: .relaxed)),lag=\(lag)")
            index += 1
        }
        field("master_failover_state", "no-failover")
        field("master_replid", state.replid)
        field("master_replid2", state.replid2)
        field("master_repl_offset", String(state.masterReplOffset))
        field("second_repl_offset", String(state.secondReplOffset))
        field("repl_backlog_active", state.backlogActive ? "1" : "0")
        field("repl_backlog_size", String(state.backlogCapacity))
        field("repl_backlog_first_byte_offset", String(state.backlogActive ? state.backlogFirstByteOffset : 0))
        field("repl_backlog_histlen", String(state.backlogHistoryLength))
    }

    /// The fields a replica adds after `role:slave` (master_host ... replica_announced). The link
    /// to the primary reports here; with no link they read as Redis's for a link that is down.
    func writeReplicaSideInfo(host: String, port: Int, _ field: (String, String) -> Void) {
        writePrimaryLinkInfo(host: host, port: port, field)
    }

    /// Applies the primary-side replication options (start-up and CONFIG SET).
    func applyReplicationSettings(from configuration: ServerConfiguration) {
        replication.applySettings(
            backlogBytes: Int(clamping: configuration.integer("repl-backlog-size")),
            backlogTTLSeconds: configuration.integer("repl-backlog-ttl"))
        replication.outputLimits.update(from: configuration)
        replication.applyPrimarySettings(
            PrimarySettings(
                disklessSync: configuration.string("repl-diskless-sync") == "yes",
                disklessDelaySeconds: Int(clamping: configuration.integer("repl-diskless-sync-delay")),
                disklessMaxReplicas: Int(clamping: configuration.integer("repl-diskless-sync-max-replicas")),
                pingPeriodSeconds: Int(clamping: configuration.integer("repl-ping-replica-period")),
                timeoutSeconds: Int(clamping: configuration.integer("repl-timeout")),
                minReplicasToWrite: Int(clamping: configuration.integer("min-replicas-to-write")),
                minReplicasMaxLagSeconds: Int(clamping: configuration.integer("min-replicas-max-lag"))))
    }

    func nowMilliseconds() -> Int64 { SystemClock().nowMilliseconds() }
}
