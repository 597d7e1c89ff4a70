// DumpCommands: DUMP and RESTORE (cluster.c dumpCommand, restoreCommand), over the RDB value encoding.
import TallyKeyspace
import TallyProtocol

/// DUMP key and RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]. The payload
/// is an RDB value with a version and CRC64 footer; `DumpPayloadCodec` (implemented by the RDB
/// code in TallyPersistence, which the server wires in) makes and reads it, so a value dumped
/// here restores in redis-server and the other way round.
public enum DumpCommands {
    /// The rows, bound to `codec`.
    public static func specs(codec: any DumpPayloadCodec) -> [CommandSpec] {
        [
            command("dump", 2, [.readonly], keys: (1, 1, 1), "@keyspace @read @slow") { context in
                let key = context.key(1)
                let shard = context.lockShard(for: key)
                guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                    return context.output.writeNull()
                }
                context.output.writeBulkString(codec.payload(of: entry.value))
            },
            command("restore", -4, [.write, .denyOOM], keys: (1, 1, 1), "@keyspace @write @slow @dangerous") {
                context in restore(&context, codec: codec)
            },
        ]
    }

    /// RESTORE, checking in restoreCommand's order: options, BUSYKEY, the TTL, the footer, the
    /// value. A relative TTL is logged as an absolute one with ABSTTL, so replaying the AOF
    /// later does not extend the key's life; an already-expired TTL stores nothing (and logs a
    /// DEL if REPLACE removed an old value).
    static func restore(_ context: inout CommandContext, codec: any DumpPayloadCodec) {
        var replace = false
        var absoluteTTL = false
        var idleSeconds: Int64?
        var frequency: Int64?
        var index = 4
        while index < context.arguments.count {
            let hasValue = index + 1 < context.arguments.count
            if context.arguments.matches(index, "replace") {
                replace = true
            } else if context.arguments.matches(index, "absttl") {
                absoluteTTL = true
            } else if context.arguments.matches(index, "idletime") && hasValue && frequency == nil {
                guard let idle = context.integerArgument(index + 1) else { return }
                if idle < 0 { return context.output.writeError("ERR Invalid IDLETIME value, must be >= 0") }
                idleSeconds = idle
                index += 1
            } else if context.arguments.matches(index, "freq") && hasValue && idleSeconds == nil {
                guard let given = context.integerArgument(index + 1) else { return }
                if given < 0 || given > 255 {
                    return context.output.writeError("ERR Invalid FREQ value, must be >= 0 and <= 255")
                }
                frequency = given
                index += 1
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let exists = shard.lookup(context.database, key, now: context.now) != nil
            if exists && !replace { return context.output.writeError(RedisError.busyKey) }
            guard var ttl = context.integerArgument(2) else { return }
            if ttl < 0 { return context.output.writeError("ERR Invalid TTL value, must be >= 0") }
            let value: Value
            switch codec.value(fromPayload: Array(context.arguments[3])) {
            case .value(let decoded): value = decoded
            case .wrongVersionOrChecksum:
                return context.output.writeError("ERR DUMP payload version or checksum are wrong")
            case .badFormat: return context.output.writeError("ERR Bad data format")
            }
            if exists { _ = shard.remove(context.database, key) }
            if ttl != 0 && !absoluteTTL { ttl = ttl &+ context.now }
            if ttl != 0 && ttl <= context.now && !context.session.isReplayingLog {
                if exists {
                    context.addChanges(1)
                    context.propagate([Array("DEL".utf8), Array(context.arguments[1])])
                }
                return context.output.writeOK()
            }
            shard.store(context.database, key, Entry(value: value, expiresAtMilliseconds: ttl == 0 ? nil : ttl))
            shard.setRestoredAccess(context.database, key, idleSeconds: idleSeconds, frequency: frequency,
                                    now: context.now)
            context.addChanges(1)
            if ttl != 0 && !absoluteTTL {
                var logged = (0..<context.arguments.count).map { Array(context.arguments[$0]) }
                logged[2] = Array(String(ttl).utf8)
                logged.append(Array("ABSTTL".utf8))
                context.propagate(logged)
            }
            context.output.writeOK()
        }
    }
}
