// CounterCommands: INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT.
import TallyKeyspace
import TallyProtocol

/// The counter family; INCR/DECR/INCRBY/DECRBY share `incrementDecrement`.
enum CounterCommands {
    static var specs: [CommandSpec] {
        [
            command("incr", 2, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast") { context in
                incrementDecrement(&context, delta: 1)
            },
            command("decr", 2, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast") { context in
                incrementDecrement(&context, delta: -1)
            },
            command("incrby", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast") { context in
                guard let delta = context.integerArgument(2) else { return }
                incrementDecrement(&context, delta: delta)
            },
            command("decrby", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast") { context in
                guard let delta = context.integerArgument(2) else { return }
                if delta == Int64.min {
                    context.output.writeError(RedisError.decrementOverflow)
                    return
                }
                incrementDecrement(&context, delta: -delta)
            },
            command("incrbyfloat", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast",
                    incrementByFloat),
        ]
    }

    /// Adds `delta` to the integer at argv[1], keeping its TTL; replies with the new value.
    static func incrementDecrement(_ context: inout CommandContext, delta: Int64) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                let result = try shard.incrementBy(context.database, key, delta: delta, now: context.now)
                context.output.writeInteger(result)
                context.addChanges(1)
                context.notify(.string, "incrby", key)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    /// INCRBYFLOAT: long double arithmetic, formatted like `%.17Lg`; propagated as
    /// `SET key <result> KEEPTTL` so replay does not depend on float formatting.
    static func incrementByFloat(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            var current: Float80 = 0
            var expiry: Int64?
            if let entry = shard.lookup(context.database, key, now: context.now) {
                expiry = entry.expiresAtMilliseconds
                switch entry.value {
                case .integer(let value): current = Float80(value)
                case .string(let bytes):
                    guard let value = parseLongDouble(bytes[...]) else {
                        context.output.writeError(RedisError.notFloat)
                        return
                    }
                    current = value
                case .hash, .list, .set, .sortedSet, .stream:
                    context.output.writeError(RedisError.wrongType)
                    return
                }
            }
            // Redis checks the key's type and stored value before it parses the increment.
            guard let increment = parseLongDouble(context.arguments[2]) else {
                context.output.writeError(RedisError.notFloat)
                return
            }
            let result = current + increment
            if result.isNaN || result.isInfinite {
                context.output.writeError(RedisError.nanOrInfinity)
                return
            }
            let formatted = formatLongDouble(result)
            shard.store(context.database, key, Entry(value: .fromBytes(formatted), expiresAtMilliseconds: expiry))
            context.output.writeBulkString(formatted)
            context.addChanges(1)
            context.notify(.string, "incrbyfloat", key)
            context.propagate([Words.set, key.bytes, formatted, Words.keepTTL])
        }
    }
}
