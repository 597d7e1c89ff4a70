// TransactionCommands: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
import TallyKeyspace
import TallyProtocol

/// The transaction family. EXEC holds every shard for its whole run, so no other thread's
/// command can interleave with the queued ones, and logs them as one MULTI ... EXEC batch.
enum TransactionCommands {
    static let controlFlags: CommandFlags = [.noScript, .loading, .stale, .fast, .allowBusy, .transactionControl]

    static var specs: [CommandSpec] {
        [
            command("multi", 1, controlFlags, "@fast @transaction", multi),
            command("exec", 1, [.noScript, .loading, .stale, .skipSlowlog, .transactionControl],
                    "@slow @transaction", exec),
            command("discard", 1, controlFlags, "@fast @transaction") { context in
                guard context.session.transaction.isActive else {
                    context.output.writeError(RedisError.discardWithoutMulti)
                    return
                }
                discardTransaction(context.session, context.engine)
                context.output.writeOK()
            },
            command("watch", -2, controlFlags, keys: (1, -1, 1), "@fast @transaction", watch),
            command("unwatch", 1, [.noScript, .loading, .stale, .fast, .allowBusy], "@fast @transaction") { context in
                unwatchAll(context.session, context.engine)
                context.output.writeOK()
            },
        ]
    }

    static func multi(_ context: inout CommandContext) {
        if context.session.transaction.isActive {
            context.output.writeError(RedisError.nestedMulti)
            return
        }
        context.session.transaction.isActive = true
        context.session.transaction.isPoisoned = false
        context.session.transaction.clearQueue()
        context.output.writeOK()
    }

    /// Forgets the queue and every watched key.
    static func discardTransaction(_ session: ClientSession, _ engine: CommandEngine) {
        session.transaction.isActive = false
        session.transaction.isPoisoned = false
        session.transaction.clearQueue()
        unwatchAll(session, engine)
    }

    /// Unregisters the session's watch token from every watched key's shard.
    static func unwatchAll(_ session: ClientSession, _ engine: CommandEngine) {
        guard let token = session.transaction.watchToken else { return }
        for watched in session.transaction.watched {
            let key = Key(watched.key)
            let shard = engine.keyspace.shard(for: key)
            let locked = !engine.keyspace.isExclusivelyHeldByCurrentThread
            if locked { shard.lock() }
            shard.removeWatcher(watched.database, key, token)
            if locked { shard.unlock() }
        }
        session.transaction.watched.removeAll()
        session.transaction.watchToken = nil
    }

    static func watch(_ context: inout CommandContext) {
        if context.session.transaction.isActive {
            context.output.writeError(RedisError.watchInsideMulti)
            return
        }
        let token = context.session.transaction.watchToken ?? WatchToken()
        context.session.transaction.watchToken = token
        for index in 1..<context.arguments.count {
            let key = context.key(index)
            let database = context.database
            let already = context.session.transaction.watched.contains {
                $0.database == database && $0.key == key.bytes
            }
            if already { continue }
            let shard = context.keyspace.shard(for: key)
            // Dispatch may already hold every shard (clients are blocked: see Blocking.swift).
            let locked = !context.keyspace.isExclusivelyHeldByCurrentThread
            if locked { shard.lock() }
            let live: UInt64 = shard.addWatcher(database, key, token, now: context.now) ? 1 : 0
            if locked { shard.unlock() }
            context.session.transaction.watched.append((database, key.bytes, live))
        }
        context.output.writeOK()
    }

    /// EXEC: EXECABORT if queuing failed, a null array if a watched key changed or expired,
    /// else every queued command's reply, run atomically.
    static func exec(_ context: inout CommandContext) {
        let session = context.session
        let engine = context.engine
        guard session.transaction.isActive else {
            context.output.writeError(RedisError.execWithoutMulti)
            return
        }
        if session.transaction.isPoisoned {
            discardTransaction(session, engine)
            context.output.writeError(RedisError.execAbort)
            return
        }
        let locked = engine.keyspace.lockExclusive()
        defer { engine.keyspace.unlockExclusive(locked) }
        if watchedKeysChanged(session, engine, now: context.now) {
            discardTransaction(session, engine)
            context.output.writeNullArray()
            return
        }
        let queued = session.transaction.queued
        session.transaction.isActive = false
        session.transaction.clearQueue()
        unwatchAll(session, engine)
        context.output.writeArrayHeader(queued.count)
        for var arguments in queued {
            guard let row = engine.table.lookup(arguments[0]) else {
                writeUnknownCommandError(arguments, into: &context.output)
                continue
            }
            engine.run(row: row, &arguments, session: session, output: &context.output, insideExec: true)
            // HELLO inside EXEC changes the dialect of the replies that follow.
            context.output.protocolVersion = session.protocolVersion
        }
        if !session.propagation.isEmpty {
            session.propagation.append(database: session.database, [Words.exec])
            engine.flushPropagation(session)
        }
    }

    /// True if any watched key was written since WATCH, or has expired since.
    static func watchedKeysChanged(_ session: ClientSession, _ engine: CommandEngine, now: Int64) -> Bool {
        if session.transaction.watchToken?.isDirty == true { return true }
        for watched in session.transaction.watched where watched.version == 1 {
            let key = Key(watched.key)
            if !engine.keyspace.shard(for: key).peekLive(watched.database, key, now: now) { return true }
        }
        return false
    }
}
