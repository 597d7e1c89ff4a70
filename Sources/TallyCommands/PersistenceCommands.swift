// PersistenceCommands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF and WAITAOF, with Redis 7.0.15's replies.
import Glibc
import Synchronization
import TallyKeyspace
import TallyProtocol

/// The engine is the dataset persistence saves and loads (PersistenceContract.swift).
extension CommandEngine: PersistedDataset {}

/// The persistence command rows; each calls `PersistenceControl`, which the server wires to
/// the persistence engine, so this layer never sees storage, files or threads.
public enum PersistenceCommands {
    /// The rows, bound to `control`.
    public static func specs(control: any PersistenceControl) -> [CommandSpec] {
        [
            CommandSpec(name: "save", arity: 1, flags: [.admin, .noScript, .noAsyncLoading, .noMulti],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                // Redis refuses SAVE only while an RDB child runs (a rewrite may go on).
                switch control.save() {
                case .saved: context.output.writeSimpleString("OK")
                case .failed: context.output.writeError("ERR")
                case .backgroundSaveInProgress: context.output.writeError(RedisError.backgroundSaveInProgress)
                }
            },
            CommandSpec(name: "bgsave", arity: -1, flags: [.admin, .noScript, .noAsyncLoading],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                bgsave(&context, control: control)
            },
            CommandSpec(name: "lastsave", arity: 1, flags: [.fast, .loading, .stale],
                        categories: ["@admin", "@fast", "@dangerous"]) { context in
                context.output.writeInteger(control.lastSaveSeconds)
            },
            CommandSpec(name: "bgrewriteaof", arity: 1, flags: [.admin, .noScript, .noAsyncLoading],
                        categories: ["@admin", "@slow", "@dangerous"]) { context in
                switch control.startRewrite() {
                case .started:
                    context.output.writeSimpleString("Background append only file rewriting started")
                case .scheduled:
                    context.output.writeSimpleString("Background append only file rewriting scheduled")
                case .alreadyInProgress:
                    context.output.writeError("ERR Background append only file rewriting already in progress")
                case .failed:
                    context.output.writeError(
                        """
                        ERR Can't execute an AOF background rewriting. \
                        Please check the server logs for more information.
                        """)
                }
            },
            // WAITAOF numlocal numreplicas timeout (Redis 7.2): replies [local_fsynced, 0]; there
            // are no replicas.
            CommandSpec(name: "waitaof", arity: 4, flags: [.noScript],
                        categories: ["@slow", "@connection"]) { context in
                waitAOF(&context, control: control)
            },
        ]
    }

    static func bgsave(_ context: inout CommandContext, control: any PersistenceControl) {
        var schedule = false
        if context.arguments.count == 2 && context.arguments.matches(1, "schedule") {
            schedule = true
        } else if context.arguments.count != 1 {
            context.output.writeError(RedisError.syntax)
            return
        }
        // Inside EXEC Redis defers the fork: the save runs from the next cron tick.
        switch control.startBackgroundSave(schedule: schedule, deferred: context.insideExec) {
        case .started: context.output.writeSimpleString("Background saving started")
        case .scheduled: context.output.writeSimpleString("Background saving scheduled")
        case .alreadyInProgress: context.output.writeError(RedisError.backgroundSaveInProgress)
        case .otherJobActive:
            context.output.writeError(
                """
                ERR Another child process is active (AOF?): can't BGSAVE right now. \
                Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.
                """)
        }
    }

    // Redis's waitaofCommand (7.2): the integers go through getLongLongFromObjectOrReply (string2ll).
    // Replies [local fsynced, replicas whose AOF fsynced this client's last write]. Unless it runs
    // inside EXEC (Redis answers at once there), the client parks and a helper thread waits for
    // the fsync and the replicas' FACKs, so no I/O thread blocks; the timeout reply counts what
    // was reached by then (blocked.c replyToBlockedClientTimedOut).
    static func waitAOF(_ context: inout CommandContext, control: any PersistenceControl) {
        let arguments = context.arguments
        guard let local = parseRedisInteger(arguments[1]), let replicas = parseRedisInteger(arguments[2]),
            let timeout = parseRedisInteger(arguments[3])
        else {
            context.output.writeError(RedisError.notInteger)
            return
        }
        if timeout < 0 {
            context.output.writeError("ERR timeout is negative")
            return
        }
        // Offset 0 is covered by any log, so this only asks whether there is one (no fsync, no wait).
        let appendOnly = control.waitFsynced(0, timeoutMilliseconds: 1) != nil
        if local > 0 && !appendOnly {
            context.output.writeError("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
            return
        }
        let offset = context.session.pendingLogOffset
        let replicaOffset = context.session.replicationOffset
        let feed = context.engine.attachedReplicationFeed
        let countReplicas: @Sendable () -> Int = { feed?.fsyncedReplicaCount(atLeast: replicaOffset) ?? 0 }
        let localWait = local > 0 ? timeout : 1
        guard !context.insideExec, let wake = context.session.wakeOwner,
              let start = context.engine.threadStarter.withLock({ $0 })
        else {
            let fsynced = appendOnly && (control.waitFsynced(offset, timeoutMilliseconds: localWait) ?? false)
            context.output.writeBytes(waitAOFReply(fsynced, countReplicas()))
            return
        }
        let localFsynced = WaitProgress()
        let waiter = BlockedWaiter(
            clientID: context.session.id, protocolVersion: context.session.protocolVersion,
            deadline: timeout == 0 ? 0 : context.now + timeout, wake: wake,
            timeoutReply: { waitAOFReply(localFsynced.reached.load(ordering: .acquiring), countReplicas()) })
        let registry = context.engine.blocking
        registry.registerExternal(waiter)
        context.session.blockedWaiter = waiter
        if replicas > 0 { feed?.requestAcknowledgements() }
        start {
            if appendOnly {
                let fsynced = control.waitFsynced(offset, timeoutMilliseconds: localWait) ?? false
                localFsynced.reached.store(fsynced, ordering: .releasing)
            }
            // Replicas report FACK once a second or on GETACK: polled every millisecond until the
            // goal is met or the client is answered otherwise (timeout, CLIENT UNBLOCK, close).
            while !waiter.isClaimed {
                let count = countReplicas()
                let localDone = local == 0 || localFsynced.reached.load(ordering: .acquiring)
                if localDone && count >= replicas {
                    if waiter.claim() {
                        registry.removeExternal(waiter)
                        let fsynced = localFsynced.reached.load(ordering: .acquiring)
                        waiter.publish(waitAOFReply(fsynced, count), logOffset: 0)
                    }
                    return
                }
                usleep(1000)
            }
        }
    }

    static func waitAOFReply(_ localFsynced: Bool, _ replicas: Int) -> [UInt8] {
        Array("*2\r\n:\(localFsynced ? 1 : 0)\r\n:\(replicas)\r\n".utf8)
    }
}

/// What a background wait reached so far (read by the timeout reply on the client's thread).
final class WaitProgress: Sendable {
    let reached = Atomic<Bool>(false)
}
