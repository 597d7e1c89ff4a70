// KeyspaceCommands: DEL, UNLINK, EXISTS, TYPE, RENAME, RENAMENX, MOVE, COPY, SWAPDB, KEYS, SCAN, RANDOMKEY,
// DBSIZE, FLUSHDB, FLUSHALL.
import TallyKeyspace
import TallyProtocol

/// The generic keyspace family.
enum KeyspaceCommands {
    static var specs: [CommandSpec] {
        [
            command("del", -2, [.write], keys: (1, -1, 1), "@keyspace @write @slow") { context in
                delete(&context, lazily: context.engine.lazyFreeUserDel)
            },
            command("unlink", -2, [.write, .fast], keys: (1, -1, 1), "@keyspace @write @fast") { context in
                delete(&context, lazily: true)
            },
            command("exists", -2, [.readonly, .fast], keys: (1, -1, 1), "@keyspace @read @fast") { context in
                exists(&context, touch: false)
            },
            command("touch", -2, [.readonly, .fast], keys: (1, -1, 1), "@keyspace @read @fast") { context in
                exists(&context, touch: true)
            },
            command("type", 2, [.readonly, .fast], keys: (1, 1, 1), "@keyspace @read @fast", type),
            command("rename", 3, [.write], keys: (1, 2, 1), "@keyspace @write @slow") { context in
                rename(&context, onlyIfAbsent: false)
            },
            command("renamenx", 3, [.write, .fast], keys: (1, 2, 1), "@keyspace @write @fast") { context in
                rename(&context, onlyIfAbsent: true)
            },
            command("move", 3, [.write, .fast], keys: (1, 1, 1), "@keyspace @write @fast", move),
            command("copy", -3, [.write, .denyOOM], keys: (1, 2, 1), "@keyspace @write @slow", copy),
            command("swapdb", 3, [.write, .fast], "@keyspace @write @fast @dangerous", swapDatabases),
            command("keys", 2, [.readonly], "@keyspace @read @slow @dangerous", keys),
            command("scan", -2, [.readonly], "@keyspace @read @slow", scan),
            command("randomkey", 1, [.readonly], "@keyspace @read @slow", randomKey),
            command("dbsize", 1, [.readonly, .fast], "@keyspace @read @fast") { context in
                context.lockAllShards()
                context.output.writeInteger(context.keyspace.shards.reduce(0) { $0 + $1.count(context.database) })
            },
            command("flushdb", -1, [.write], "@keyspace @write @slow @dangerous") { context in
                flush(&context, all: false)
            },
            command("flushall", -1, [.write], "@keyspace @write @slow @dangerous") { context in
                flush(&context, all: true)
            },
        ]
    }

    /// DEL and UNLINK: the keys are gone from the table at once either way; `lazily` (UNLINK,
    /// or DEL under lazyfree-lazy-user-del) releases a big value's memory in background.
    static func delete(_ context: inout CommandContext, lazily: Bool) {
        let count = context.arguments.count
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 1))
        var deleted: Int64 = 0
        for index in 1..<count {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            if shard.contains(context.database, key, now: context.now) {
                let removed = shard.remove(context.database, key)
                if lazily, let removed { context.keyspace.lazyFree.release(removed.value) }
                deleted += 1
                context.notify(.generic, "del", key)
            }
        }
        context.output.writeInteger(deleted)
        if deleted > 0 {
            context.addChanges(deleted)
        }
    }

    /// EXISTS and TOUCH: how many of the keys exist (a key named twice counts twice). TOUCH
    /// records an access (LRU clock or LFU counter); EXISTS does not (LOOKUP_NOTOUCH).
    static func exists(_ context: inout CommandContext, touch: Bool) {
        let count = context.arguments.count
        var found: Int64 = 0
        if count > 2 && context.readKeysOneLockAtATime(from: 1, through: count - 1, touch: touch, { _, entry in
            if entry != nil { found += 1 }
        }) {
            context.output.writeInteger(found)
            return
        }
        found = 0
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 1))
        for index in 1..<count {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            if shard.lookupRead(context.database, key, now: context.now, touch: touch) != nil {
                found += 1
            }
        }
        context.output.writeInteger(found)
    }

    static func type(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            switch shard.lookupRead(context.database, key, now: context.now, touch: false)?.value {
            case nil: context.output.writeStaticString("+none\r\n")
            case .hash: context.output.writeStaticString("+hash\r\n")
            case .list: context.output.writeStaticString("+list\r\n")
            case .set: context.output.writeStaticString("+set\r\n")
            case .sortedSet: context.output.writeStaticString("+zset\r\n")
            case .stream: context.output.writeStaticString("+stream\r\n")
            default: context.output.writeStaticString("+string\r\n")
            }
        }
    }

    static func rename(_ context: inout CommandContext, onlyIfAbsent: Bool) {
        let source = context.key(1)
        let target = context.key(2)
        context.lockShards(context.shardMask(keysFrom: 1, through: 2))
        let sourceShard = context.keyspace.shard(for: source)
        let targetShard = context.keyspace.shard(for: target)
        guard let entry = sourceShard.lookup(context.database, source, now: context.now) else {
            context.output.writeError(RedisError.noSuchKey)
            return
        }
        if source == target {
            if onlyIfAbsent { context.output.writeInteger(0) } else { context.output.writeOK() }
            return
        }
        if targetShard.contains(context.database, target, now: context.now) {
            if onlyIfAbsent {
                context.output.writeInteger(0)
                return
            }
            targetShard.remove(context.database, target)
        }
        targetShard.store(context.database, target, entry)
        sourceShard.remove(context.database, source)
        context.addChanges(1)
        context.notify(.generic, "rename_from", source)
        context.notify(.generic, "rename_to", target)
        if onlyIfAbsent { context.output.writeInteger(1) } else { context.output.writeOK() }
    }

    /// MOVE key db (db.c moveCommand): moves the key with its TTL to another database unless it
    /// exists there. A key's shard is the same in every database, so one lock covers both.
    static func move(_ context: inout CommandContext) {
        guard let target = context.databaseArgument(2) else { return }
        if target == context.database { return context.output.writeError(RedisError.sameObject) }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookup(context.database, key, now: context.now),
                  shard.lookup(target, key, now: context.now) == nil
            else { return context.output.writeInteger(0) }
            shard.store(target, key, entry)
            shard.remove(context.database, key)
            context.addChanges(1)
            context.notify(.generic, "move_from", key)
            context.notify(.generic, "move_to", key, database: target)
            context.output.writeInteger(1)
        }
    }

    /// COPY source destination [DB db] [REPLACE] (db.c copyCommand): copies the value and its
    /// TTL; values are copy-on-write, so the copy is independent of the original.
    static func copy(_ context: inout CommandContext) {
        var target = context.database
        var replace = false
        var index = 3
        while index < context.arguments.count {
            if context.arguments.matches(index, "replace") {
                replace = true
            } else if context.arguments.matches(index, "db") && index + 1 < context.arguments.count {
                guard let database = context.databaseArgument(index + 1) else { return }
                target = database
                index += 1
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        let source = context.key(1)
        let destination = context.key(2)
        if target == context.database && source == destination {
            return context.output.writeError(RedisError.sameObject)
        }
        context.lockShards(context.shardMask(keysFrom: 1, through: 2))
        let sourceShard = context.keyspace.shard(for: source)
        let destinationShard = context.keyspace.shard(for: destination)
        guard let entry = sourceShard.lookupRead(context.database, source, now: context.now) else {
            return context.output.writeInteger(0)
        }
        if destinationShard.lookup(target, destination, now: context.now) != nil {
            if !replace { return context.output.writeInteger(0) }
            destinationShard.remove(target, destination)
        }
        destinationShard.store(target, destination, entry)
        context.addChanges(1)
        context.notify(.generic, "copy_to", destination, database: target)
        context.output.writeInteger(1)
    }

    /// SWAPDB a b (db.c swapdbCommand): exchanges two databases' contents under every shard
    /// lock; clients stay on their database numbers and see the other data.
    static func swapDatabases(_ context: inout CommandContext) {
        guard let first = context.int32Argument(1, message: RedisError.invalidFirstDatabase),
              let second = context.int32Argument(2, message: RedisError.invalidSecondDatabase)
        else { return }
        let databases = 0..<context.keyspace.databaseCount
        guard databases.contains(first) && databases.contains(second) else {
            return context.output.writeError(RedisError.databaseOutOfRange)
        }
        context.lockAllShards()
        if first != second {
            for shard in context.keyspace.shards { shard.swapDatabases(first, second, now: context.now) }
        }
        context.addChanges(1)
        context.output.writeOK()
    }

    /// KEYS pattern: every live key of the database matching the glob (order unspecified).
    static func keys(_ context: inout CommandContext) {
        context.lockAllShards()
        let pattern = context.arguments[1]
        let matchAll = pattern.count == 1 && pattern.first == UInt8(ascii: "*")
        var matched: [Key] = []
        for shard in context.keyspace.shards {
            for (key, entry) in shard.tables[context.database] {
                if let expiry = entry.expiresAtMilliseconds, expiry <= context.now { continue }
                if matchAll || globMatches(pattern, key.bytes[...]) { matched.append(key) }
            }
        }
        context.output.writeArrayHeader(matched.count)
        for key in matched { context.output.writeBulkString(key.bytes) }
    }

    /// SCAN cursor [MATCH p] [COUNT n] [TYPE t].
    ///
    /// The cursor is the index of the next shard to visit (0 = start and end). Each call visits
    /// whole shards, under that shard's lock, until it has at least COUNT keys (COUNT is a
    /// hint, as in Redis). Visiting a shard in one go is what guarantees every key present for
    /// the whole scan is returned exactly once, whatever rehashing happens between calls.
    static func scan(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard let cursor = parseCursor(arguments[1]) else {
            context.output.writeError(RedisError.invalidCursor)
            return
        }
        var pattern: ArraySlice<UInt8>?
        var count: Int64 = 10
        var typeFilter: ArraySlice<UInt8>?
        var index = 2
        while index < arguments.count {
            let more = arguments.count - index - 1
            if arguments.matches(index, "count") && more >= 1 {
                guard let value = context.integerArgument(index + 1) else { return }
                if value < 1 {
                    context.output.writeError(RedisError.syntax)
                    return
                }
                count = value
            } else if arguments.matches(index, "match") && more >= 1 {
                pattern = arguments[index + 1]
            } else if arguments.matches(index, "type") && more >= 1 {
                typeFilter = arguments[index + 1]
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 2
        }
        // The TYPE filter as a kind: nil = no filter; an unknown type name matches nothing.
        var wantedKind: ValueKind?
        var typeMatchesNothing = false
        if let typeFilter {
            let wanted = String(decoding: typeFilter, as: UTF8.self).lowercased()
            if let kind = ValueKind(rawValue: wanted) { wantedKind = kind } else { typeMatchesNothing = true }
        }
        var matched: [Key] = []
        var shardIndex = cursor
        let shardCount = UInt64(context.keyspace.shards.count)
        while shardIndex < shardCount && Int64(matched.count) < count {
            let shard = context.keyspace.shards[Int(shardIndex)]
            let locked = !context.keyspace.isExclusivelyHeldByCurrentThread
            if locked { shard.lock() }
            for (key, entry) in shard.tables[context.database] {
                if let expiry = entry.expiresAtMilliseconds, expiry <= context.now { continue }
                if let pattern, !globMatches(pattern, key.bytes[...]) { continue }
                if typeMatchesNothing { continue }
                if let wantedKind, ValueKind(entry.value) != wantedKind { continue }
                matched.append(key)
            }
            if locked { shard.unlock() }
            shardIndex += 1
        }
        let next: UInt64 = shardIndex >= shardCount ? 0 : shardIndex
        context.output.writeArrayHeader(2)
        context.output.writeBulkString(decimalBytes(Int64(bitPattern: next)))
        context.output.writeArrayHeader(matched.count)
        for key in matched { context.output.writeBulkString(key.bytes) }
    }

    /// SSCAN/HSCAN/ZSCAN's options after the cursor, as db.c scanGenericCommand checks them
    /// (after the key's type): `MATCH` (nil for `*`, which matches everything) and `COUNT` (at
    /// least 1; 10 by default). Nil after writing the error.
    static func elementScanOptions(_ context: inout CommandContext) -> (pattern: ArraySlice<UInt8>?, count: Int)? {
        let arguments = context.arguments
        var pattern: ArraySlice<UInt8>?
        var count = 10
        var index = 3
        while index < arguments.count {
            if arguments.matches(index, "count") && index + 1 < arguments.count {
                guard let value = context.integerArgument(index + 1) else { return nil }
                if value < 1 {
                    context.output.writeError(RedisError.syntax)
                    return nil
                }
                count = Int(clamping: value)
            } else if arguments.matches(index, "match") && index + 1 < arguments.count {
                let candidate = arguments[index + 1]
                pattern = candidate.count == 1 && candidate.first == UInt8(ascii: "*") ? nil : candidate
            } else {
                context.output.writeError(RedisError.syntax)
                return nil
            }
            index += 2
        }
        return (pattern, count)
    }

    /// A SCAN cursor as Redis parses it: `strtoul` in base 10 on the C string (so it stops at
    /// a NUL byte), refused when it starts with a space, leaves other bytes, or overflows. A
    /// sign is allowed and `-n` wraps (`-1` is 2^64-1); an empty cursor reads as 0.
    static func parseCursor(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        var index = bytes.startIndex
        if index == bytes.endIndex || bytes[index] == 0 { return 0 }
        let first = bytes[index]
        if first == 32 || (first >= 9 && first <= 13) { return nil }
        var negative = false
        if first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
            negative = first == UInt8(ascii: "-")
            index += 1
        }
        var value: UInt64 = 0
        var digits = 0
        while index < bytes.endIndex, bytes[index] >= 48 && bytes[index] <= 57 {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] - 48))
            if overflow1 || overflow2 { return nil }
            value = sum
            digits += 1
            index += 1
        }
        // Without digits strtoul consumes nothing, so the sign itself is the leftover byte.
        if digits == 0 { return nil }
        if index < bytes.endIndex && bytes[index] != 0 { return nil }
        return negative ? 0 &- value : value
    }

    /// RANDOMKEY: a uniformly chosen live key, or null.
    static func randomKey(_ context: inout CommandContext) {
        context.lockAllShards()
        let shards = context.keyspace.shards
        for _ in 0..<100 {
            let total = shards.reduce(0) { $0 + $1.count(context.database) }
            if total == 0 { break }
            var pick = Int.random(in: 0..<total)
            for shard in shards {
                let table = shard.tables[context.database]
                if pick >= table.count {
                    pick -= table.count
                    continue
                }
                guard let key = table.key(atOffset: pick) else { break }
                if shard.lookup(context.database, key, now: context.now) != nil {
                    context.output.writeBulkString(key.bytes)
                    return
                }
                break
            }
        }
        context.output.writeNull()
    }

    /// FLUSHDB / FLUSHALL [ASYNC|SYNC]: always propagated, dirty += removed keys (+1 for ALL).
    static func flush(_ context: inout CommandContext, all: Bool) {
        let arguments = context.arguments
        if arguments.count > 2 || (arguments.count == 2 && !arguments.matches(1, "sync")
                                   && !arguments.matches(1, "async")) {
            context.output.writeError(RedisError.syntax)
            return
        }
        // ASYNC, or no flag under lazyfree-lazy-user-flush: the emptied tables are released in
        // background (db.c getFlushCommandFlags, lazyfree.c emptyDbAsync).
        let lazily = arguments.count == 2 ? arguments.matches(1, "async") : context.engine.lazyFreeUserFlush
        let releaser = lazily ? context.keyspace.lazyFree : nil
        context.lockAllShards()
        var removed = 0
        for shard in context.keyspace.shards {
            if all {
                for database in 0..<context.keyspace.databaseCount {
                    removed += shard.removeAll(database, releasingTo: releaser)
                }
            } else {
                removed += shard.removeAll(context.database, releasingTo: releaser)
            }
        }
        context.addChanges(Int64(removed) + (all ? 1 : 0))
        // Every tracking client drops its whole cache (db.c signalFlushedDb ->
        // trackingInvalidateKeysOnFlush), the flushing client after this reply.
        context.engine.tracking.invalidateAll(writer: context.session)
        context.output.writeOK()
        // Logged even when nothing was removed, as Redis's forceCommandPropagation does.
        context.forcePropagation()
    }
}

/// The type names TYPE and SCAN ... TYPE use.
enum ValueKind: String {
    case string, hash, list, set, zset, stream

    init(_ value: Value) {
        switch value {
        case .integer, .string: self = .string
        case .hash: self = .hash
        case .list: self = .list
        case .set: self = .set
        case .sortedSet: self = .zset
        case .stream: self = .stream
        }
    }
}
