// PersistenceCommands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF and WAITAOF, with Redis 7.0.15's replies.
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

    // Redis's waitaofCommand: the integers go through getLongLongFromObjectOrReply (string2ll).
    static func waitAOF(_ context: inout CommandContext, control: any PersistenceControl) {
        let arguments = context.arguments
        guard let local = parseRedisInteger(arguments[1]), parseRedisInteger(arguments[2]) != nil,
            let timeout = parseRedisInteger(arguments[3])
        else {
            context.output.writeError(RedisError.notInteger)
            return
        }
        if timeout < 0 {
            context.output.writeError("ERR timeout is negative")
            return
        }
        var fsynced = false
        if local > 0 {
            guard let result = control.waitFsynced(context.session.pendingLogOffset, timeoutMilliseconds: timeout)
            else {
                context.output.writeError("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
                return
            }
            fsynced = result
        } else if let result = control.waitFsynced(context.session.pendingLogOffset, timeoutMilliseconds: 1) {
            fsynced = result
        }
        context.output.writeArrayHeader(2)
        context.output.writeInteger(fsynced ? 1 : 0)
        context.output.writeInteger(0)
    }
}
