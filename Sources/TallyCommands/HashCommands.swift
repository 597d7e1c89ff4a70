// HashCommands: HSET, HMSET, HSETNX, HGET, HMGET, HDEL, HLEN, HEXISTS, HSTRLEN, HGETALL, HKEYS, HVALS, HINCRBY(FLOAT).
import TallyKeyspace
import TallyProtocol

/// The hash family. Hashes keep insertion order so HGETALL matches Redis's listpack order.
enum HashCommands {
    static var specs: [CommandSpec] {
        [
            command("hset", -4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hash @fast") { context in
                hset(&context, legacy: false)
            },
            command("hmset", -4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hash @fast") { context in
                hset(&context, legacy: true)
            },
            command("hsetnx", 4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hash @fast", hsetnx),
            command("hget", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @hash @fast", hget),
            command("hmget", -3, [.readonly, .fast], keys: (1, 1, 1), "@read @hash @fast", hmget),
            command("hdel", -3, [.write, .fast], keys: (1, 1, 1), "@write @hash @fast", hdel),
            command("hlen", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @hash @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, hash in
                    context.output.writeInteger(hash.count)
                }
            },
            command("hexists", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @hash @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, hash in
                    context.output.writeInteger(hash.value(for: context.arguments[2]) == nil ? 0 : 1)
                }
            },
            command("hstrlen", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @hash @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, hash in
                    context.output.writeInteger(hash.value(for: context.arguments[2])?.count ?? 0)
                }
            },
            command("hgetall", 2, [.readonly], keys: (1, 1, 1), "@read @hash @slow") { context in
                read(&context, empty: { $0.output.writeMapHeader(0) }) { context, hash in
                    context.output.writeMapHeader(hash.count)
                    hash.forEach { field, value in
                        context.output.writeBulkString(field)
                        context.output.writeBulkString(value)
                    }
                }
            },
            command("hkeys", 2, [.readonly], keys: (1, 1, 1), "@read @hash @slow") { context in
                read(&context, empty: { $0.output.writeArrayHeader(0) }) { context, hash in
                    context.output.writeArrayHeader(hash.count)
                    hash.forEach { field, _ in context.output.writeBulkString(field) }
                }
            },
            command("hvals", 2, [.readonly], keys: (1, 1, 1), "@read @hash @slow") { context in
                read(&context, empty: { $0.output.writeArrayHeader(0) }) { context, hash in
                    context.output.writeArrayHeader(hash.count)
                    hash.forEach { _, value in context.output.writeBulkString(value) }
                }
            },
            command("hrandfield", -2, [.readonly], keys: (1, 1, 1), "@read @hash @slow", hrandfield),
            command("hscan", -3, [.readonly], keys: (1, 1, 1), "@read @hash @slow", hscan),
            command("hincrby", 4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hash @fast", hincrby),
            command("hincrbyfloat", 4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hash @fast",
                    hincrbyfloat),
        ]
    }

    /// Runs `body` on the hash at argv[1] for a read; `empty` replies for a missing key.
    static func read(_ context: inout CommandContext, empty: (inout CommandContext) -> Void,
                     _ body: (inout CommandContext, HashValue) -> Void) {
        let key = context.key(1)
        let shard = context.lockShard(for: key)
        guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
            empty(&context)
            return
        }
        guard case .hash(let hash) = entry.value else {
            context.output.writeError(RedisError.wrongType)
            return
        }
        body(&context, hash)
    }

    /// HRANDFIELD key [count [WITHVALUES]] (t_hash.c hrandfieldCommand): one random field, or
    /// `count` distinct fields (the whole hash when count >= its size), or |count| fields with
    /// repetition when count is negative. With values, RESP2 gets a flat array and RESP3 pairs.
    static func hrandfield(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard arguments.count >= 3 else {
            return read(&context, empty: { $0.output.writeNull() }) { context, hash in
                context.output.writeBulkString(hash.randomEntry().field)
            }
        }
        guard let count = context.integerArgument(2, in: -Int64.max...Int64.max) else { return }
        if arguments.count > 4 || (arguments.count == 4 && !arguments.matches(3, "withvalues")) {
            return context.output.writeError(RedisError.syntax)
        }
        let withValues = arguments.count == 4
        if withValues && (count < -(Int64.max / 2) || count > Int64.max / 2) {
            return context.output.writeError(RedisError.valueOutOfRange)
        }
        read(&context, empty: { $0.output.writeArrayHeader(0) }) { context, hash in
            let entries = hash.entries
            var picks: [Int]
            if count == 0 {
                picks = []
            } else if count < 0 || count == 1 {
                picks = (0..<Int(count.magnitude)).map { _ in Int.random(in: 0..<hash.count) }
            } else if count >= hash.count {
                picks = Array(0..<hash.count)
            } else {
                picks = Array((0..<hash.count).shuffled().prefix(Int(count)))
            }
            let pairs = withValues && context.output.protocolVersion == .resp3
            context.output.writeArrayHeader(withValues && !pairs ? picks.count * 2 : picks.count)
            for index in picks {
                if pairs { context.output.writeArrayHeader(2) }
                context.output.writeBulkString(entries[index].field)
                if withValues { context.output.writeBulkString(entries[index].value) }
            }
        }
    }

    /// HSCAN key cursor [MATCH pattern] [COUNT count]: a listpack-encoded hash (see
    /// `HashValue.isListpack`) whole with cursor 0, as Redis answers one; a hashtable one by
    /// cursor (`HashValue.scan`), every field present for the whole scan coming out at least
    /// once whatever writes happen around it. Options are checked after the
    /// key, as db.c scanGenericCommand does (a missing key answers an empty scan regardless).
    static func hscan(_ context: inout CommandContext) {
        guard let cursor = KeyspaceCommands.parseCursor(context.arguments[2]) else {
            return context.output.writeError(RedisError.invalidCursor)
        }
        read(&context, empty: { context in
            context.output.writeStaticString("*2\r\n$1\r\n0\r\n*0\r\n")
        }) { context, hash in
            guard let (pattern, count) = KeyspaceCommands.elementScanOptions(&context) else { return }
            var matched: [(field: ArraySlice<UInt8>, value: ArraySlice<UInt8>)] = []
            let next = hash.scan(cursor: cursor, count: count) { field, value in
                if pattern.map({ globMatches($0, field) }) ?? true { matched.append((field, value)) }
            }
            context.output.writeArrayHeader(2)
            context.output.writeBulkString(Array(String(next).utf8))
            context.output.writeArrayHeader(matched.count * 2)
            for (field, value) in matched {
                context.output.writeBulkString(field)
                context.output.writeBulkString(value)
            }
        }
    }

    static func hget(_ context: inout CommandContext) {
        read(&context, empty: { $0.output.writeNull() }) { context, hash in
            if let value = hash.value(for: context.arguments[2]) {
                context.output.writeBulkString(value)
            } else {
                context.output.writeNull()
            }
        }
    }

    static func hmget(_ context: inout CommandContext) {
        let count = context.arguments.count
        read(&context, empty: { context in
            context.output.writeArrayHeader(count - 2)
            for _ in 2..<count { context.output.writeNull() }
        }) { context, hash in
            context.output.writeArrayHeader(count - 2)
            for index in 2..<count {
                if let value = hash.value(for: context.arguments[index]) {
                    context.output.writeBulkString(value)
                } else {
                    context.output.writeNull()
                }
            }
        }
    }

    static func hset(_ context: inout CommandContext, legacy: Bool) {
        let count = context.arguments.count
        if count % 2 == 1 {
            writeArityError(context.spec.name, into: &context.output)
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            let limits = context.engine.hashLimits
            do throws(KeyspaceError) {
                let created = try shard.withHash(context.database, key, now: context.now, create: true) {
                    hash, changed in
                    if hash.isEmpty {
                        // A new key: size the packed buffer once for every pair (repeated fields
                        // only over-reserve).
                        var payload = 0
                        for index in 2..<count { payload += arguments[index].count }
                        hash.reserveCapacity(pairs: (count - 2) / 2, payloadBytes: payload)
                    }
                    var created = 0
                    var index = 2
                    while index < count {
                        if hash.set(field: arguments[index], value: arguments[index + 1], limits: limits) {
                            created += 1
                        }
                        index += 2
                    }
                    changed = true
                    return created
                } ?? 0
                if legacy { context.output.writeOK() } else { context.output.writeInteger(created) }
                context.addChanges(Int64((count - 2) / 2))
                context.notify(.hash, "hset", key)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func hsetnx(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            let limits = context.engine.hashLimits
            do throws(KeyspaceError) {
                let created = try shard.withHash(context.database, key, now: context.now, create: true) {
                    hash, changed in
                    if hash.value(for: arguments[2]) != nil { return false }
                    hash.set(field: arguments[2], value: arguments[3], limits: limits)
                    changed = true
                    return true
                } ?? false
                context.output.writeInteger(created ? 1 : 0)
                if created {
                    context.addChanges(1)
                    context.notify(.hash, "hset", key)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func hdel(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            do throws(KeyspaceError) {
                let deleted = try shard.withHash(context.database, key, now: context.now, create: false) {
                    hash, changed in
                    var deleted = 0
                    for index in 2..<arguments.count where hash.remove(field: arguments[index]) {
                        deleted += 1
                        changed = true
                    }
                    return deleted
                } ?? 0
                context.output.writeInteger(deleted)
                if deleted > 0 {
                    context.addChanges(Int64(deleted))
                    context.notify(.hash, "hdel", key)
                    if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func hincrby(_ context: inout CommandContext) {
        guard let delta = context.integerArgument(3) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            var failure: StaticString?
            let limits = context.engine.hashLimits
            do throws(KeyspaceError) {
                let result = try shard.withHash(context.database, key, now: context.now, create: true) {
                    (hash: inout HashValue, changed: inout Bool) throws(KeyspaceError) -> Int64 in
                    var current: Int64 = 0
                    if let existing = hash.value(for: arguments[2]) {
                        guard let parsed = parseRedisInteger(existing) else {
                            failure = RedisError.hashNotInteger
                            return Int64(0)
                        }
                        current = parsed
                    }
                    let (sum, overflow) = current.addingReportingOverflow(delta)
                    if overflow {
                        failure = RedisError.overflow
                        return Int64(0)
                    }
                    hash.set(field: arguments[2], value: decimalBytes(sum), limits: limits)
                    changed = true
                    return sum
                } ?? 0
                if let failure {
                    context.output.writeError(failure)
                    return
                }
                context.output.writeInteger(result)
                context.addChanges(1)
                context.notify(.hash, "hincrby", key)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    /// HINCRBYFLOAT, logged as `HSET key field <result>` so replay is exact.
    static func hincrbyfloat(_ context: inout CommandContext) {
        guard let increment = parseLongDouble(context.arguments[3]) else {
            context.output.writeError(RedisError.notFloat)
            return
        }
        if increment.isNaN || increment.isInfinite {
            context.output.writeError("ERR value is NaN or Infinity")
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            var failure: StaticString?
            let limits = context.engine.hashLimits
            do throws(KeyspaceError) {
                let result = try shard.withHash(context.database, key, now: context.now, create: true) {
                    (hash: inout HashValue, changed: inout Bool) throws(KeyspaceError) -> [UInt8] in
                    var current: Float80 = 0
                    if let existing = hash.value(for: arguments[2]) {
                        guard let parsed = parseLongDouble(existing) else {
                            failure = RedisError.hashNotFloat
                            return [UInt8]()
                        }
                        current = parsed
                    }
                    let sum = current + increment
                    if sum.isNaN || sum.isInfinite {
                        failure = RedisError.nanOrInfinity
                        return [UInt8]()
                    }
                    let formatted = formatLongDouble(sum)
                    hash.set(field: arguments[2], value: formatted, limits: limits)
                    changed = true
                    return formatted
                } ?? []
                if let failure {
                    context.output.writeError(failure)
                    return
                }
                context.output.writeBulkString(result)
                context.addChanges(1)
                context.notify(.hash, "hincrbyfloat", key)
                context.propagate([Words.hset, key.bytes, context.arguments.copy(2), result])
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }
}
