// ExpireCommands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.
import TallyKeyspace
import TallyProtocol

/// The expiry family. Every TTL set is logged as an absolute PEXPIREAT, so replaying the log
/// later does not extend it.
enum ExpireCommands {
    static var specs: [CommandSpec] {
        [
            command("expire", -3, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast") { context in
                setExpire(&context, relative: true, seconds: true)
            },
            command("pexpire", -3, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast") { context in
                setExpire(&context, relative: true, seconds: false)
            },
            command("expireat", -3, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast") { context in
                setExpire(&context, relative: false, seconds: true)
            },
            command("pexpireat", -3, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast") { context in
                setExpire(&context, relative: false, seconds: false)
            },
            command("ttl", 2, [.readonly, .fast], keys: (1, 1, 1), "@keyspace @read @fast") { context in
                timeToLive(&context, absolute: false, seconds: true)
            },
            command("pttl", 2, [.readonly, .fast], keys: (1, 1, 1), "@keyspace @read @fast") { context in
                timeToLive(&context, absolute: false, seconds: false)
            },
            command("expiretime", 2, [.readonly, .fast], keys: (1, 1, 1), "@keyspace @read @fast") { context in
                timeToLive(&context, absolute: true, seconds: true)
            },
            command("pexpiretime", 2, [.readonly, .fast], keys: (1, 1, 1), "@keyspace @read @fast") { context in
                timeToLive(&context, absolute: true, seconds: false)
            },
            command("persist", 2, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast", persist),
        ]
    }

    /// Redis's `expireGenericCommand`: parse, NX/XX/GT/LT, overflow checks, then set the TTL, or
    /// delete the key when the time is already past (logged as DEL).
    static func setExpire(_ context: inout CommandContext, relative: Bool, seconds: Bool) {
        var nx = false, xx = false, gt = false, lt = false
        for index in 3..<context.arguments.count {
            let arguments = context.arguments
            if arguments.matches(index, "nx") {
                nx = true
            } else if arguments.matches(index, "xx") {
                xx = true
            } else if arguments.matches(index, "gt") {
                gt = true
            } else if arguments.matches(index, "lt") {
                lt = true
            } else {
                var message: [UInt8] = Array("ERR Unsupported option ".utf8)
                message.append(contentsOf: arguments[index].prefix { $0 != 0 })
                context.output.writeError(message)
                return
            }
        }
        if nx && (xx || gt || lt) {
            context.output.writeError("ERR NX and XX, GT or LT options at the same time are not compatible")
            return
        }
        if gt && lt {
            context.output.writeError("ERR GT and LT options at the same time are not compatible")
            return
        }
        // Redis validates the options (and their combination) before the time argument.
        guard var when = context.integerArgument(2) else { return }
        if seconds {
            if when > Int64.max / 1000 || when < Int64.min / 1000 {
                context.writeInvalidExpire()
                return
            }
            when *= 1000
        }
        let base = relative ? context.now : 0
        if when > Int64.max - base {
            context.writeInvalidExpire()
            return
        }
        when += base
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookup(context.database, key, now: context.now) else {
                context.output.writeInteger(0)
                return
            }
            let current = entry.expiresAtMilliseconds
            if (nx && current != nil) || (xx && current == nil)
                || (gt && (current == nil || when <= current!)) || (lt && current != nil && when >= current!) {
                context.output.writeInteger(0)
                return
            }
            context.addChanges(1)
            if when <= context.now {
                shard.remove(context.database, key)
                context.notify(.generic, "del", key)
                context.output.writeInteger(1)
                context.propagate([Words.del, key.bytes])
                return
            }
            shard.setExpiry(context.database, key, when)
            context.notify(.generic, "expire", key)
            context.output.writeInteger(1)
            guard context.recordsPropagation else { return context.propagate([]) }
            var rewritten: [[UInt8]] = [Words.pexpireAt, key.bytes, decimalBytes(when)]
            for index in 3..<context.arguments.count { rewritten.append(context.arguments.copy(index)) }
            context.propagate(rewritten)
        }
    }

    /// TTL/PTTL (remaining, rounded like Redis) and EXPIRETIME/PEXPIRETIME (absolute);
    /// -2 for a missing key, -1 for a key without TTL.
    static func timeToLive(_ context: inout CommandContext, absolute: Bool, seconds: Bool) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookupRead(context.database, key, now: context.now, touch: false) else {
                context.output.writeInteger(-2)
                return
            }
            guard let expiry = entry.expiresAtMilliseconds else {
                context.output.writeInteger(-1)
                return
            }
            var value = absolute ? expiry : max(expiry - context.now, 0)
            if seconds { value = (value + 500) / 1000 }
            context.output.writeInteger(value)
        }
    }

    static func persist(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookup(context.database, key, now: context.now),
                  entry.expiresAtMilliseconds != nil else {
                context.output.writeInteger(0)
                return
            }
            shard.setExpiry(context.database, key, nil)
            context.addChanges(1)
            context.notify(.generic, "persist", key)
            context.output.writeInteger(1)
        }
    }
}
