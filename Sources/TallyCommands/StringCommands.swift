// StringCommands: GET, SET and its variants, MGET/MSET, APPEND, STRLEN, GETRANGE, SETRANGE (LCS: StringLCS).
import TallyKeyspace
import TallyProtocol

/// How an expire argument is expressed (SET/GETEX options, SETEX, PSETEX).
enum ExpireUnit {
    case seconds, milliseconds, unixSeconds, unixMilliseconds
}

extension CommandContext {
    /// Parses an expire argument into absolute Unix ms as Redis's `getExpireMillisecondsOrReply`
    /// does, writing the error and returning nil when it is not an integer, not positive, or
    /// overflows.
    mutating func expireArgument(_ index: Int, _ unit: ExpireUnit) -> Int64? {
        guard let value = integerArgument(index) else { return nil }
        let inSeconds = unit == .seconds || unit == .unixSeconds
        if value <= 0 || (inSeconds && value > Int64.max / 1000) {
            writeInvalidExpire()
            return nil
        }
        var milliseconds = inSeconds ? value * 1000 : value
        if unit == .seconds || unit == .milliseconds {
            if milliseconds > Int64.max - now {
                writeInvalidExpire()
                return nil
            }
            milliseconds += now
        }
        return milliseconds
    }
}

/// The string family.
enum StringCommands {
    static var specs: [CommandSpec] {
        [
            command("get", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @string @fast", get),
            command("set", -3, [.write, .denyOOM], keys: (1, 1, 1), "@write @string @slow", set),
            command("setnx", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast", setNX),
            command("setex", 4, [.write, .denyOOM], keys: (1, 1, 1), "@write @string @slow") { context in
                setWithExpire(&context, unit: .seconds)
            },
            command("psetex", 4, [.write, .denyOOM], keys: (1, 1, 1), "@write @string @slow") { context in
                setWithExpire(&context, unit: .milliseconds)
            },
            command("getset", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast", getSet),
            command("getdel", 2, [.write, .fast], keys: (1, 1, 1), "@write @string @fast", getDel),
            command("getex", -2, [.write, .fast], keys: (1, 1, 1), "@write @string @fast", getEx),
            command("mget", -2, [.readonly, .fast], keys: (1, -1, 1), "@read @string @fast", mget),
            command("mset", -3, [.write, .denyOOM], keys: (1, -1, 2), "@write @string @slow") { context in
                mset(&context, onlyIfNoneExist: false)
            },
            command("msetnx", -3, [.write, .denyOOM], keys: (1, -1, 2), "@write @string @slow") { context in
                mset(&context, onlyIfNoneExist: true)
            },
            command("append", 3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast", append),
            command("strlen", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @string @fast", strlen),
            command("getrange", 4, [.readonly], keys: (1, 1, 1), "@read @string @slow", getRange),
            command("substr", 4, [.readonly], keys: (1, 1, 1), "@read @string @slow", getRange),
            command("setrange", 4, [.write, .denyOOM], keys: (1, 1, 1), "@write @string @slow", setRange),
            command("lcs", -3, [.readonly], keys: (1, 2, 1), "@read @string @slow", lcs),
        ]
    }

    /// The string at argv[1] for a read (hit/miss counted), or nil after replying: null for a
    /// missing key (when `nullReply`), WRONGTYPE for a hash.
    static func readString(_ context: inout CommandContext, _ shard: Shard, _ key: Key,
                           nullReply: Bool = true) -> (value: Value?, ok: Bool) {
        guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
            if nullReply { context.output.writeNull() }
            return (nil, true)
        }
        if !entry.value.isString {
            context.output.writeError(RedisError.wrongType)
            return (nil, false)
        }
        return (entry.value, true)
    }

    static func get(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                context.output.writeNull()
                return
            }
            context.output.writeValue(entry.value)
        }
    }

    /// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL], following the option
    /// conflict rules of Redis's `parseExtendedStringArgumentsOrReply`.
    static func set(_ context: inout CommandContext) {
        var onlyIfAbsent = false
        var onlyIfPresent = false
        var returnOld = false
        var keepTTL = false
        var unit: ExpireUnit?
        var expireIndex = 0
        var index = 3
        let count = context.arguments.count
        while index < count {
            let hasNext = index + 1 < count
            let arguments = context.arguments
            if arguments.matches(index, "nx") && !onlyIfPresent {
                onlyIfAbsent = true
            } else if arguments.matches(index, "xx") && !onlyIfAbsent {
                onlyIfPresent = true
            } else if arguments.matches(index, "get") {
                returnOld = true
            } else if arguments.matches(index, "keepttl") && unit == nil {
                keepTTL = true
            } else if let option = expireOption(arguments, index), !keepTTL, unit == nil || unit == option, hasNext {
                unit = option
                expireIndex = index + 1
                index += 1
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 1
        }
        var expiry: Int64?
        if let unit {
            guard let milliseconds = context.expireArgument(expireIndex, unit) else { return }
            expiry = milliseconds
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            if returnOld {
                guard readString(&context, shard, key).ok else { return }
                if let old = shard.lookup(context.database, key, now: context.now) {
                    context.output.writeValue(old.value)
                }
            }
            let existing = shard.lookupPresence(context.database, key, now: context.now)
            if (onlyIfAbsent && existing != nil) || (onlyIfPresent && existing == nil) {
                if !returnOld { context.output.writeNull() }
                return
            }
            let newExpiry = expiry ?? (keepTTL ? existing?.expiresAtMilliseconds : nil)
            let value = Value.fromSlice(context.arguments[2])
            shard.store(context.database, key, Entry(value: value, expiresAtMilliseconds: newExpiry), now: context.now)
            context.addChanges(1)
            context.notify(.string, "set", key)
            if expiry != nil { context.notify(.generic, "expire", key) }
            if !returnOld { context.output.writeOK() }
            if let expiry, unit != .unixMilliseconds {
                context.propagate([Words.set, key.bytes, context.arguments.copy(2), Words.pxat, decimalBytes(expiry)])
            }
        }
    }

    /// EX/PX/EXAT/PXAT at `index`, if that is what it is.
    static func expireOption(_ arguments: CommandArguments, _ index: Int) -> ExpireUnit? {
        if arguments.matches(index, "ex") { return .seconds }
        if arguments.matches(index, "px") { return .milliseconds }
        if arguments.matches(index, "exat") { return .unixSeconds }
        if arguments.matches(index, "pxat") { return .unixMilliseconds }
        return nil
    }

    static func setNX(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            if shard.contains(context.database, key, now: context.now) {
                context.output.writeInteger(0)
                return
            }
            shard.store(context.database, key, Entry(value: .fromSlice(context.arguments[2])), now: context.now)
            context.addChanges(1)
            context.notify(.string, "set", key)
            context.output.writeInteger(1)
        }
    }

    /// SETEX key seconds value / PSETEX key ms value, propagated as SET key value PXAT ms.
    static func setWithExpire(_ context: inout CommandContext, unit: ExpireUnit) {
        guard let expiry = context.expireArgument(2, unit) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let value = Value.fromSlice(context.arguments[3])
            shard.store(context.database, key, Entry(value: value, expiresAtMilliseconds: expiry), now: context.now)
            context.addChanges(1)
            context.notify(.string, "set", key)
            context.notify(.generic, "expire", key)
            context.output.writeOK()
            context.propagate([Words.set, key.bytes, context.arguments.copy(3), Words.pxat, decimalBytes(expiry)])
        }
    }

    /// GETSET: replies with the old value, sets the new one and drops the TTL.
    static func getSet(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let (old, ok) = readString(&context, shard, key, nullReply: false)
            guard ok else { return }
            if let old { context.output.writeValue(old) } else { context.output.writeNull() }
            shard.store(context.database, key, Entry(value: .fromSlice(context.arguments[2])), now: context.now)
            context.addChanges(1)
            context.notify(.string, "set", key)
            context.propagate([Words.set, key.bytes, context.arguments.copy(2)])
        }
    }

    static func getDel(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let (old, ok) = readString(&context, shard, key)
            guard ok, let old else { return }
            context.output.writeValue(old)
            shard.remove(context.database, key)
            context.addChanges(1)
            context.notify(.generic, "del", key)
            context.propagate([Words.del, key.bytes])
        }
    }

    /// GETEX key [EX|PX|EXAT|PXAT t | PERSIST]: a past absolute time deletes the key (logged
    /// as DEL), a relative one is logged as PEXPIREAT, PERSIST as PERSIST when it removed a TTL.
    static func getEx(_ context: inout CommandContext) {
        var persist = false
        var unit: ExpireUnit?
        var expireIndex = 0
        var index = 2
        let count = context.arguments.count
        while index < count {
            let hasNext = index + 1 < count
            let arguments = context.arguments
            if arguments.matches(index, "persist") && unit == nil {
                persist = true
            } else if let option = expireOption(arguments, index), !persist, unit == nil || unit == option, hasNext {
                unit = option
                expireIndex = index + 1
                index += 1
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 1
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let (value, ok) = readString(&context, shard, key)
            guard ok, let value else { return }
            // Like Redis, the expire value is only checked once the key is known to be a string:
            // a missing key answers nil even for `EX abc`.
            var expiry: Int64?
            if let unit {
                guard let milliseconds = context.expireArgument(expireIndex, unit) else { return }
                expiry = milliseconds
            }
            context.output.writeValue(value)
            if let expiry {
                if (unit == .unixSeconds || unit == .unixMilliseconds) && expiry <= context.now {
                    shard.remove(context.database, key)
                    context.addChanges(1)
                    context.notify(.generic, "del", key)
                    context.propagate([Words.del, key.bytes])
                } else {
                    shard.setExpiry(context.database, key, expiry)
                    context.addChanges(1)
                    context.notify(.generic, "expire", key)
                    context.propagate([Words.pexpireAt, key.bytes, decimalBytes(expiry)])
                }
            } else if persist {
                if shard.lookup(context.database, key, now: context.now)?.expiresAtMilliseconds != nil {
                    shard.setExpiry(context.database, key, nil)
                    context.addChanges(1)
                    context.notify(.generic, "persist", key)
                    context.propagate([Words.persist, key.bytes])
                }
            }
        }
    }

    static func mget(_ context: inout CommandContext) {
        let count = context.arguments.count
        if count > 2 {
            let start = context.output.writerIndex
            context.output.writeArrayHeader(count - 1)
            let last = count - 1
            let consistent = context.readKeysOneLockAtATime(from: 1, through: last, touch: true) { context, entry in
                if let entry, entry.value.isString {
                    context.output.writeValue(entry.value)
                } else {
                    context.output.writeNull()
                }
            }
            if consistent { return }
            context.output.truncate(to: start)
        }
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 1))
        context.output.writeArrayHeader(count - 1)
        for index in 1..<count {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            if let entry = shard.lookupRead(context.database, key, now: context.now), entry.value.isString {
                context.output.writeValue(entry.value)
            } else {
                context.output.writeNull()
            }
        }
    }

    static func mset(_ context: inout CommandContext, onlyIfNoneExist: Bool) {
        let count = context.arguments.count
        if count % 2 == 0 {
            writeArityError(context.spec.name, into: &context.output)
            return
        }
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 2, step: 2))
        if onlyIfNoneExist {
            var index = 1
            while index < count {
                let key = context.key(index)
                if context.keyspace.shard(for: key).contains(context.database, key, now: context.now) {
                    context.output.writeInteger(0)
                    return
                }
                index += 2
            }
        }
        var index = 1
        while index < count {
            let key = context.key(index)
            context.keyspace.shard(for: key).store(
                context.database, key, Entry(value: .fromSlice(context.arguments[index + 1])))
            context.notify(.string, "set", key)
            index += 2
        }
        context.addChanges(Int64((count - 1) / 2))
        if onlyIfNoneExist { context.output.writeInteger(1) } else { context.output.writeOK() }
    }

    /// APPEND edits the stored bytes in place (`Shard.mutateString`): copying the value out
    /// and storing it back made each APPEND cost the whole string, so a growing log string was
    /// quadratic (1,400 appends/s at 1.6 MB where redis-server does 600,000).
    static func append(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let suffix = context.arguments[2]
            let limit = context.engine.configuration.maxStringBytes
            do throws(KeyspaceError) {
                // t_string.c appendCommand: a new key takes the argument as it is; an existing one is
                // checked against proto-max-bulk-len first.
                let (length, _) = try shard.mutateString(context.database, key, now: context.now, minimumCount: 0) {
                    bytes, existed -> (result: Int?, changed: Bool) in
                    if existed && bytes.count + suffix.count > limit { return (nil, false) }
                    bytes.append(contentsOf: suffix)
                    return (bytes.count, true)
                }
                guard let length else { return context.output.writeError(RedisError.tooLarge) }
                context.addChanges(1)
                context.notify(.string, "append", key)
                context.output.writeInteger(length)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func strlen(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let (value, ok) = readString(&context, shard, key, nullReply: false)
            guard ok else { return }
            context.output.writeInteger(value?.stringLength ?? 0)
        }
    }

    /// GETRANGE key start end with Redis's index clamping (negative = from the end).
    static func getRange(_ context: inout CommandContext) {
        guard var start = context.integerArgument(2), var end = context.integerArgument(3) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let (value, ok) = readString(&context, shard, key, nullReply: false)
            guard ok else { return }
            guard let value, let bytes = value.stringBytes else {
                context.output.writeStaticString("$0\r\n\r\n")
                return
            }
            let length = Int64(bytes.count)
            if start < 0 && end < 0 && start > end {
                context.output.writeStaticString("$0\r\n\r\n")
                return
            }
            if start < 0 { start = length + start }
            if end < 0 { end = length + end }
            if start < 0 { start = 0 }
            if end < 0 { end = 0 }
            if end >= length { end = length - 1 }
            if start > end || length == 0 {
                context.output.writeStaticString("$0\r\n\r\n")
            } else {
                context.output.writeBulkString(bytes[Int(start)...Int(end)])
            }
        }
    }

    /// SETRANGE key offset value: zero-pads as needed; an empty value changes nothing.
    /// SETRANGE, in place like APPEND (t_string.c setrangeCommand's checks in its order: type,
    /// then an empty patch answers the length, then the size limit).
    static func setRange(_ context: inout CommandContext) {
        guard let offset = context.integerArgument(2) else { return }
        if offset < 0 {
            context.output.writeError("ERR offset is out of range")
            return
        }
        let patch = context.arguments[3]
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let currentLength: Int
            do {
                // Scoped: a held entry would share the bytes and make the edit below copy them.
                let value = shard.lookup(context.database, key, now: context.now)?.value
                if let value, !value.isString {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
                currentLength = value?.stringLength ?? 0
            }
            if patch.isEmpty {
                context.output.writeInteger(currentLength)
                return
            }
            let (needed, overflow) = offset.addingReportingOverflow(Int64(patch.count))
            if overflow || needed > Int64(context.engine.configuration.maxStringBytes) {
                context.output.writeError(RedisError.tooLarge)
                return
            }
            let end = Int(needed)
            do throws(KeyspaceError) {
                let (length, _) = try shard.mutateString(context.database, key, now: context.now, minimumCount: end) {
                    bytes -> (result: Int, changed: Bool) in
                    bytes.replaceSubrange(Int(offset)..<end, with: patch)
                    return (bytes.count, true)
                }
                context.addChanges(1)
                context.notify(.string, "setrange", key)
                context.output.writeInteger(length)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }
}

extension Value {
    /// True for string values (integer-encoded included).
    var isString: Bool {
        switch self {
        case .integer, .string: return true
        case .hash, .list, .set, .sortedSet, .stream: return false
        }
    }

    /// Length in bytes of a string value (0 for a hash).
    var stringLength: Int {
        switch self {
        case .integer(let value):
            var digits = value < 0 ? 2 : 1
            var magnitude = value.magnitude
            while magnitude >= 10 {
                magnitude /= 10
                digits += 1
            }
            return digits
        case .string(let bytes): return bytes.count
        case .hash, .list, .set, .sortedSet, .stream: return 0
        }
    }
}
