// ReplicationCommands: REPLCONF, SYNC, PSYNC, WAIT and ROLE as command-table rows (replication.c).
import TallyCommands
import TallyKeyspace
import TallyProtocol

/// What a replica said about itself before SYNC/PSYNC (Redis keeps these in its client struct).
struct ReplicaHandshake: Sendable {
    /// `REPLCONF listening-port`.
    var listeningPort = 0
    /// `REPLCONF ip-address` (Redis's slave_addr).
    var ipAddress: String?
    /// `REPLCONF capa eof`: can read the diskless `$EOF:<mark>` form.
    var capaEOF = false
    /// `REPLCONF capa psync2`: understands `+CONTINUE <replid>`.
    var capaPSYNC2 = false
    /// PSYNC's replid and offset; nil for the old SYNC (no +FULLRESYNC line, no ACKs expected).
    var psync: (replid: String, offset: Int64)?
}

extension ServerCore {
    /// The replication rows of the command table (flags and arity from Redis 7.0's commands/*.json).
    func replicationCommandSpecs() -> [CommandSpec] {
        [
            CommandSpec(
                name: "replconf", arity: -1, flags: [.admin, .noScript, .loading, .stale, .allowBusy],
                categories: ["@admin", "@slow", "@dangerous"],
                handler: { [self] context in replconf(&context) }),
            CommandSpec(
                name: "psync", arity: -3, flags: [.noAsyncLoading, .admin, .noMulti, .noScript],
                categories: ["@admin", "@slow", "@dangerous"],
                handler: { [self] context in synchronize(&context, psync: true) }),
            CommandSpec(
                name: "sync", arity: 1, flags: [.noAsyncLoading, .admin, .noMulti, .noScript],
                categories: ["@admin", "@slow", "@dangerous"],
                handler: { [self] context in synchronize(&context, psync: false) }),
            CommandSpec(
                name: "wait", arity: 3, flags: [.noScript], categories: ["@slow", "@connection"],
                handler: { [self] context in wait(&context) }),
            CommandSpec(
                name: "role", arity: 1, flags: [.noScript, .loading, .stale, .fast],
                categories: ["@admin", "@fast", "@dangerous"],
                handler: { [self] context in role(&context) }),
        ]
    }

    // MARK: REPLCONF

    /// replication.c replconfCommand: options in pairs, each applied in turn; ACK from a client
    /// that is not a replica and GETACK get no reply at all, as in Redis.
    private func replconf(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard arguments.count % 2 == 1 else {
            context.output.writeError(RedisError.syntax)
            return
        }
        var handshake = replication.handshake(clientID: context.session.id)
        var index = 1
        while index < arguments.count {
            let value = arguments[index + 1]
            if arguments.matches(index, "listening-port") {
                guard let port = parseRedisInteger(value) else {
                    context.output.writeError(RedisError.notInteger)
                    return
                }
                handshake.listeningPort = Int(port)
            } else if arguments.matches(index, "ip-address") {
                // NET_HOST_STR_LEN is 256 with the terminating zero.
                guard value.count < 256 else {
                    context.output.writeError(Array(
                        "ERR REPLCONF ip-address provided by replica instance is too long: \(value.count) bytes".utf8))
                    return
                }
                handshake.ipAddress = String(decoding: value, as: UTF8.self)
            } else if arguments.matches(index, "capa") {
                if arguments.matches(index + 1, "eof") { handshake.capaEOF = true }
                if arguments.matches(index + 1, "psync2") { handshake.capaPSYNC2 = true }
            } else if arguments.matches(index, "ack") || arguments.matches(index, "getack") {
                // ACKs reach the replica's own thread; a client that is not a replica gets nothing.
                // GETACK is answered by a replica's link to its primary.
                return
            } else if arguments.matches(index, "rdb-only") {
                guard let flag = parseRedisInteger(value), flag == 0 || flag == 1 else {
                    context.output.writeError(RedisError.notInteger)
                    return
                }
            } else if arguments.matches(index, "rdb-filter-only") {
                for word in value.split(separator: UInt8(ascii: " ")) where !word.isEmpty {
                    guard String(decoding: word, as: UTF8.self).lowercased() == "functions" else {
                        context.output.writeError(Array(
                            "ERR Unsupported rdb-filter-only option: \(String(decoding: word, as: UTF8.self))".utf8))
                        return
                    }
                }
            } else {
                context.output.writeError(Array(
                    "ERR Unrecognized REPLCONF option: \(String(decoding: arguments[index], as: UTF8.self))".utf8))
                return
            }
            index += 2
        }
        replication.storeHandshake(handshake, clientID: context.session.id)
        context.output.writeSimpleString("OK")
    }

    // MARK: SYNC / PSYNC

    /// replication.c syncCommand's checks; the sync itself runs on the replica's own thread once
    /// the I/O thread hands the connection over (`ClientSession.handsOffConnection`).
    private func synchronize(_ context: inout CommandContext, psync: Bool) {
        if case .replica = replication.role, !replication.primaryLinkUp.load(ordering: .relaxed) {
            context.output.writeError("NOMASTERLINK Can't SYNC while not connected with my master")
            return
        }
        // Replies not yet sent would end up in the middle of the RDB transfer.
        if context.output.readableBytes > 0 {
            context.output.writeError("ERR SYNC and PSYNC are invalid with pending output")
            return
        }
        var handshake = replication.handshake(clientID: context.session.id)
        if psync {
            guard let offset = parseRedisInteger(context.arguments[2]) else {
                log.log(.warning, "Replica \(replicaName(handshake, context.session)) asks for synchronization "
                    + "but with a wrong offset")
                context.output.writeError(RedisError.notInteger)
                return
            }
            handshake.psync = (String(decoding: context.arguments[1], as: UTF8.self), offset)
        }
        log.log(.notice, "Replica \(replicaName(handshake, context.session)) asks for synchronization")
        replication.storeHandshake(handshake, clientID: context.session.id)
        context.session.handsOffConnection = true
    }

    /// replicationGetSlaveName: `ip:listening-port`, the announced address first.
    func replicaName(_ handshake: ReplicaHandshake, _ session: ClientSession) -> String {
        let ip = handshake.ipAddress ?? hostPart(of: session.peerAddress)
        return "\(ip):\(handshake.listeningPort)"
    }

    // MARK: WAIT

    /// replication.c waitCommand: replies at once when enough replicas acknowledged this client's
    /// last write (or inside MULTI), else parks the client (no I/O thread waits) and asks the
    /// replicas for an ACK now (REPLCONF GETACK *, which Redis sends from beforeSleep).
    private func wait(_ context: inout CommandContext) {
        if replication.role != .primary {
            context.output.writeError(
                """
                ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a \
                replica is configured to be writable (which is not the default) writes to replicas are just \
                local and are not propagated.
                """)
            return
        }
        guard let wanted = parseRedisInteger(context.arguments[1]) else {
            context.output.writeError(RedisError.notInteger)
            return
        }
        guard let timeout = parseRedisInteger(context.arguments[2]) else {
            context.output.writeError("ERR timeout is not an integer or out of range")
            return
        }
        if timeout < 0 {
            context.output.writeError("ERR timeout is negative")
            return
        }
        let target = context.session.replicationOffset
        let acknowledged = replication.acknowledgedReplicaCount(atLeast: target)
        if acknowledged >= wanted || context.insideExec || context.session.transaction.isActive {
            context.output.writeInteger(acknowledged)
            return
        }
        guard let wake = context.session.wakeOwner else {
            context.output.writeInteger(acknowledged)
            return
        }
        let replication = replication
        let waiter = BlockedWaiter(
            clientID: context.session.id, protocolVersion: context.session.protocolVersion,
            deadline: timeout == 0 ? 0 : context.now + timeout, wake: wake,
            timeoutReply: { Self.integerReply(replication.acknowledgedReplicaCount(atLeast: target)) })
        context.engine.blocking.registerExternal(waiter)
        context.session.blockedWaiter = waiter
        replication.park(waiter, offset: target, replicas: wanted, registry: context.engine.blocking)
    }

    static func integerReply(_ value: Int) -> [UInt8] { Array(":\(value)\r\n".utf8) }

    // MARK: ROLE

    /// replication.c roleCommand: a primary lists its online replicas as [ip, port, acked offset].
    private func role(_ context: inout CommandContext) {
        let state = replication.snapshot
        switch state.role {
        case .primary:
            context.output.writeArrayHeader(3)
            context.output.writeBulkString("master".utf8)
            context.output.writeInteger(state.masterReplOffset)
            let online = replication.replicaLinks.filter { replication.syncState($0) == .online }
            context.output.writeArrayHeader(online.count)
            for link in online {
                context.output.writeArrayHeader(3)
                context.output.writeBulkString(link.announcedAddress.utf8)
                context.output.writeBulkString(String(link.listeningPort).utf8)
                context.output.writeBulkString(String(link.ackedOffset.load(ordering: .relaxed)).utf8)
            }
        case .replica(let host, let port):
            context.output.writeArrayHeader(5)
            context.output.writeBulkString("slave".utf8)
            context.output.writeBulkString(host.utf8)
            context.output.writeInteger(port)
            context.output.writeBulkString(replication.primaryLinkStateName.withLock { $0 }.utf8)
            let linkUp = replication.primaryLinkUp.load(ordering: .relaxed)
            context.output.writeInteger(linkUp ? state.masterReplOffset : -1)
        }
    }
}

/// The host of "host:port" (the last colon separates the port, so IPv6 addresses keep theirs).
func hostPart(of address: String) -> String {
    guard let colon = address.lastIndex(of: ":") else { return address }
    return String(address[..<colon])
}
