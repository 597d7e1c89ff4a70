// ListCommands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM LTRIM LPOS LMOVE
// RPOPLPUSH LMPOP (t_list.c semantics: argument errors and lookups in Redis's order).
import TallyKeyspace
import TallyProtocol

/// The list family. Each handler parses what Redis parses before the lookup, looks the key up,
/// then parses the rest, so the same request gets the same error on both servers.
enum ListCommands {
    static var specs: [CommandSpec] {
        [
            command("lpush", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                push(&context, .head, onlyIfExists: false)
            },
            command("rpush", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                push(&context, .tail, onlyIfExists: false)
            },
            command("lpushx", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                push(&context, .head, onlyIfExists: true)
            },
            command("rpushx", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                push(&context, .tail, onlyIfExists: true)
            },
            command("lpop", -2, [.write, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                pop(&context, .head)
            },
            command("rpop", -2, [.write, .fast], keys: (1, 1, 1), "@write @list @fast") { context in
                pop(&context, .tail)
            },
            command("llen", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @list @fast", llen),
            command("lrange", 4, [.readonly], keys: (1, 1, 1), "@read @list @slow", lrange),
            command("lindex", 3, [.readonly], keys: (1, 1, 1), "@read @list @slow", lindex),
            command("lset", 4, [.write, .denyOOM], keys: (1, 1, 1), "@write @list @slow", lset),
            command("linsert", 5, [.write, .denyOOM], keys: (1, 1, 1), "@write @list @slow", linsert),
            command("lrem", 4, [.write], keys: (1, 1, 1), "@write @list @slow", lrem),
            command("ltrim", 4, [.write], keys: (1, 1, 1), "@write @list @slow", ltrim),
            command("lpos", -3, [.readonly], keys: (1, 1, 1), "@read @list @slow", lpos),
            command("lmove", 5, [.write, .denyOOM], keys: (1, 2, 1), "@write @list @slow") { context in
                guard let from = end(&context, 3), let to = end(&context, 4) else { return }
                move(&context, from: from, to: to)
            },
            command("rpoplpush", 3, [.write, .denyOOM], keys: (1, 2, 1), "@write @list @slow") { context in
                move(&context, from: .tail, to: .head)
            },
            command("lmpop", -4, [.write, .movableKeys], "@write @list @slow", lmpop),
            command("blpop", -3, [.write, .noScript, .blocking], keys: (1, -2, 1), "@write @list @slow @blocking") {
                context in
                blockingPop(&context, .head)
            },
            command("brpop", -3, [.write, .noScript, .blocking], keys: (1, -2, 1), "@write @list @slow @blocking") {
                context in
                blockingPop(&context, .tail)
            },
            command("blmove", 6, [.write, .denyOOM, .noScript, .blocking], keys: (1, 2, 1),
                    "@write @list @slow @blocking") { context in
                guard let from = end(&context, 3), let to = end(&context, 4) else { return }
                blockingMove(&context, from: from, to: to, timeoutIndex: 5, legacy: false)
            },
            command("brpoplpush", 4, [.write, .denyOOM, .noScript, .blocking], keys: (1, 2, 1),
                    "@write @list @slow @blocking") { context in
                blockingMove(&context, from: .tail, to: .head, timeoutIndex: 3, legacy: true)
            },
            command("blmpop", -5, [.write, .blocking, .movableKeys], "@write @list @slow @blocking") { context in
                lmpop(&context, blocking: true)
            },
        ]
    }

    /// LEFT or RIGHT as logged.
    static func endWord(_ end: ListEnd) -> [UInt8] { end == .head ? Words.left : Words.right }

    /// A blocking timeout in seconds (getTimeoutFromObjectOrReply, UNIT_SECONDS): an absolute
    /// Unix millisecond deadline, 0 for "forever", or nil after the error reply.
    static func timeoutArgument(_ context: inout CommandContext, _ index: Int) -> Int64? {
        guard let seconds = parseLongDouble(context.arguments[index]), !seconds.isNaN else {
            context.output.writeError(RedisError.timeoutNotFloat)
            return nil
        }
        let scaled = (seconds * 1000).rounded(.up)
        // C's (long long) conversion of an infinite or huge value yields LLONG_MIN on x86-64.
        let milliseconds = scaled.isFinite && scaled < 9.2e18 && scaled > -9.2e18 ? Int64(scaled) : Int64.min
        if milliseconds < 0 {
            context.output.writeError(RedisError.timeoutNegative)
            return nil
        }
        return milliseconds == 0 ? 0 : context.now &+ milliseconds
    }

    /// Parks the client on `keys` (the caller holds their shards); no reply until served.
    static func block(_ context: inout CommandContext, keys: [[UInt8]], _ operation: BlockedOperation,
                      deadline: Int64) {
        let session = context.session
        let waiter = BlockedWaiter(
            clientID: session.id, database: context.database, keys: keys, operation: operation,
            protocolVersion: session.protocolVersion, deadline: deadline, wake: session.wakeOwner ?? {})
        context.engine.blocking.register(waiter)
        session.blockedWaiter = waiter
    }

    /// True when the command may not block: inside MULTI/EXEC, or a session without an I/O
    /// thread to wake (the AOF replay), where Redis's CLIENT_DENY_BLOCKING applies.
    static func mayNotBlock(_ context: CommandContext) -> Bool {
        context.insideExec || context.session.wakeOwner == nil
    }

    /// BLPOP / BRPOP key [key ...] timeout.
    static func blockingPop(_ context: inout CommandContext, _ end: ListEnd) {
        let arguments = context.arguments
        let last = arguments.count - 2
        guard let deadline = timeoutArgument(&context, arguments.count - 1) else { return }
        context.lockShards(context.shardMask(keysFrom: 1, through: last))
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        swap(&output, &context.output)
        defer { swap(&output, &context.output) }
        for index in 1...last {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            do {
                let served: Void? = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    output.writeArrayHeader(2)
                    output.writeBulkString(arguments[index])
                    list.pop(end) { write($0, into: &output) }
                    changed = true
                }
                guard served != nil else { continue }
                context.addChanges(1)
                notifyPop(&context, end, key, shard)
                context.propagate([end == .head ? Words.lpop : Words.rpop, key.bytes])
                return
            } catch {
                output.writeKeyspaceError(error)
                return
            }
        }
        if mayNotBlock(context) {
            output.writeNullArray()
            return
        }
        block(&context, keys: (1...last).map { arguments.copy($0) }, .pop(end), deadline: deadline)
    }

    /// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout / BRPOPLPUSH source destination timeout.
    static func blockingMove(_ context: inout CommandContext, from: ListEnd, to: ListEnd, timeoutIndex: Int,
                             legacy: Bool) {
        guard let deadline = timeoutArgument(&context, timeoutIndex) else { return }
        let source = context.key(1)
        context.lockShards(context.shardMask(keysFrom: 1, through: 2))
        let exists: Bool
        do {
            exists = try context.keyspace.shard(for: source).holdsList(context.database, source, now: context.now)
        } catch {
            context.output.writeKeyspaceError(error)
            return
        }
        if exists {
            move(&context, from: from, to: to, locked: true)
            if context.changes > 0 {
                let arguments = context.arguments
                context.propagate(legacy ? [Words.rpoplpush, arguments.copy(1), arguments.copy(2)]
                    : [Words.lmove, arguments.copy(1), arguments.copy(2), endWord(from), endWord(to)])
            }
            return
        }
        if mayNotBlock(context) {
            context.output.writeNull()
            return
        }
        let operation = BlockedOperation.move(from: from, to: to, destination: context.arguments.copy(2),
                                              legacy: legacy)
        block(&context, keys: [context.arguments.copy(1)], operation, deadline: deadline)
    }

    // MARK: Helpers

    /// "lpop"/"rpop", then "del" if the pop emptied the list (t_list.c listPopRangeAndReplyWithKey).
    static func notifyPop(_ context: inout CommandContext, _ end: ListEnd, _ key: Key, _ shard: Shard) {
        context.notify(.list, end == .head ? "lpop" : "rpop", key)
        notifyDeletedIfGone(&context, key, shard)
    }

    /// "del" when an aggregate command removed the last element (the key is gone).
    static func notifyDeletedIfGone(_ context: inout CommandContext, _ key: Key, _ shard: Shard) {
        guard context.engine.keyspaceEvents.isEnabled(.generic) else { return }
        if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
    }

    /// LEFT or RIGHT at argument `index`, or nil after the syntax error.
    static func end(_ context: inout CommandContext, _ index: Int) -> ListEnd? {
        if context.arguments.matches(index, "left") { return .head }
        if context.arguments.matches(index, "right") { return .tail }
        context.output.writeError(RedisError.syntax)
        return nil
    }

    /// Argument `index` as getPositiveLongFromObjectOrReply parses it: `message` for any
    /// failure, by default "value is out of range, must be positive" (for a non-integer too).
    static func nonNegativeArgument(_ context: inout CommandContext, _ index: Int,
                                    message: StaticString? = nil) -> Int? {
        context.integerArgument(index, in: 0...Int64.max, message: message ?? RedisError.mustBePositive).map(Int.init)
    }

    /// Argument `index` as getRangeLongFromObjectOrReply(1, LONG_MAX, message).
    static func positiveArgument(_ context: inout CommandContext, _ index: Int, message: StaticString) -> Int? {
        context.integerArgument(index, in: 1...Int64.max, message: message).map(Int.init)
    }

    /// Writes one element as a bulk string. The bytes go through the raw-buffer writer:
    /// the generic `writeBulkString` is not specialized across modules, and its
    /// unspecialized append took ~10% of an LRANGE_100 profile.
    @inline(__always)
    static func write(_ element: ListElement, into output: inout OutputBuffer) {
        switch element {
        case .integer(let value): output.writeBulkDecimal(value)
        case .bytes(let bytes): bytes.withUnsafeBytes { output.writeBulkString($0) }
        }
    }

    /// Writes an element seen in place as a bulk string.
    static func write(_ element: ListElementView, into output: inout OutputBuffer) {
        switch element {
        case .integer(let value): output.writeBulkDecimal(value)
        case .bytes(let bytes): output.writeBulkString(bytes)
        }
    }

    /// Normalizes a Redis (start, end) range against `count`; nil when empty (addListRangeReply).
    static func range(start: Int64, end: Int64, count: Int) -> ClosedRange<Int>? {
        let length = Int64(count)
        var first = start < 0 ? length + start : start
        var last = end < 0 ? length + end : end
        if first < 0 { first = 0 }
        if first > last || first >= length { return nil }
        if last >= length { last = length - 1 }
        return Int(first)...Int(last)
    }

    /// Pops up to `count` elements from `end` of `list`, writing them as an array in pop order
    /// (listPopRangeAndReplyWithKey's element part); returns how many were popped.
    static func popRange(_ list: inout ListValue, _ end: ListEnd, count: Int, into output: inout OutputBuffer) -> Int {
        let popped = min(count, list.count)
        output.writeArrayHeader(popped)
        if popped == 0 { return 0 }
        let start = end == .head ? 0 : list.count - 1
        var left = popped
        list.visitViews(from: start, reverse: end == .tail) { _, element in
            write(element, into: &output)
            left -= 1
            return left > 0
        }
        list.remove(popped, from: end)
        return popped
    }

    // MARK: Handlers

    static func push(_ context: inout CommandContext, _ end: ListEnd, onlyIfExists: Bool) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let fill = context.engine.listFill
            let (database, now) = (context.database, context.now)
            // The elements are read in place: a closure reading them through a copy of the
            // arguments retained and released their storage every push.
            let pushed = context.arguments.withUnsafeArguments { arguments -> Result<Int?, KeyspaceError> in
                Result { () throws(KeyspaceError) in
                    try shard.withList(database, key, now: now, create: !onlyIfExists) { list, changed in
                        for index in 2..<arguments.count { list.push(arguments[index], at: end, fill: fill) }
                        changed = true
                        return list.count
                    }
                }
            }
            do throws(KeyspaceError) {
                guard let length = try pushed.get() else {
                    context.output.writeInteger(0)
                    return
                }
                context.output.writeInteger(length)
                context.addChanges(Int64(context.arguments.count - 2))
                context.notify(.list, end == .head ? "lpush" : "rpush", key)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func pop(_ context: inout CommandContext, _ end: ListEnd) {
        if context.arguments.count > 3 {
            writeArityError(context.spec.name, into: &context.output)
            return
        }
        var count: Int?
        if context.arguments.count == 3 {
            guard let parsed = nonNegativeArgument(&context, 2) else { return }
            count = parsed
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            // The reply buffer moves out of the context (the shard closure cannot capture it).
            var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
            swap(&output, &context.output)
            defer { swap(&output, &context.output) }
            do throws(KeyspaceError) {
                let popped = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    guard let count else {
                        list.pop(end) { write($0, into: &output) }
                        changed = true
                        return 1
                    }
                    if count == 0 {
                        output.writeArrayHeader(0)
                        return 0
                    }
                    changed = true
                    return popRange(&list, end, count: count, into: &output)
                }
                guard let popped else {
                    if count == nil { output.writeNull() } else { output.writeNullArray() }
                    return
                }
                if popped > 0 {
                    context.addChanges(Int64(popped))
                    notifyPop(&context, end, key, shard)
                }
            } catch {
                output.writeKeyspaceError(error)
            }
        }
    }

    static func llen(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                context.output.writeInteger(try shard.readList(context.database, key, now: context.now)?.count ?? 0)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func lrange(_ context: inout CommandContext) {
        guard let start = context.integerArgument(2), let end = context.integerArgument(3) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                guard let list = try shard.readList(context.database, key, now: context.now),
                      let range = range(start: start, end: end, count: list.count) else {
                    context.output.writeArrayHeader(0)
                    return
                }
                context.output.writeArrayHeader(range.count)
                // Written straight into context.output: a local copy of the buffer would make its
                // first write copy every pending byte (copy-on-write), once per LRANGE.
                list.visitViews(from: range.lowerBound) { index, element in
                    write(element, into: &context.output)
                    return index < range.upperBound
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func lindex(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                guard let list = try shard.readList(context.database, key, now: context.now) else {
                    context.output.writeNull()
                    return
                }
                guard let index = context.integerArgument(2) else { return }
                let position = index < 0 ? Int64(list.count) + index : index
                if let element = list.element(at: Int(clamping: position)) {
                    write(element, into: &context.output)
                } else {
                    context.output.writeNull()
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func lset(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            // The reply buffer moves out of the context (the shard closure cannot capture it).
            var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
            swap(&output, &context.output)
            defer { swap(&output, &context.output) }
            do throws(KeyspaceError) {
                let replaced = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    guard let index = parseRedisInteger(arguments[2]) else {
                        output.writeError(RedisError.notInteger)
                        return false
                    }
                    let position = index < 0 ? Int64(list.count) + index : index
                    guard list.replace(at: Int(clamping: position), with: arguments[3]) else {
                        output.writeError(RedisError.indexOutOfRange)
                        return false
                    }
                    changed = true
                    output.writeOK()
                    return true
                }
                guard let replaced else {
                    output.writeError(RedisError.noSuchKey)
                    return
                }
                if replaced {
                    context.addChanges(1)
                    context.notify(.list, "lset", key)
                }
            } catch {
                output.writeKeyspaceError(error)
            }
        }
    }

    static func linsert(_ context: inout CommandContext) {
        let after: Bool
        if context.arguments.matches(2, "after") {
            after = true
        } else if context.arguments.matches(2, "before") {
            after = false
        } else {
            context.output.writeError(RedisError.syntax)
            return
        }
        let fill = context.engine.listFill
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            do throws(KeyspaceError) {
                let length = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    guard list.insert(arguments[4], after: after, pivot: arguments[3], fill: fill) else { return -1 }
                    changed = true
                    return list.count
                } ?? 0
                context.output.writeInteger(length)
                if length > 0 {
                    context.addChanges(1)
                    context.notify(.list, "linsert", key)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func lrem(_ context: inout CommandContext) {
        guard let limit = context.integerArgument(2) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            do throws(KeyspaceError) {
                let removed = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    let removed = list.removeAll(equalTo: arguments[3], limit: Int(clamping: limit.magnitude),
                                                 fromTail: limit < 0)
                    if removed > 0 { changed = true }
                    return removed
                } ?? 0
                context.output.writeInteger(removed)
                if removed > 0 {
                    context.addChanges(Int64(removed))
                    context.notify(.list, "lrem", key)
                    notifyDeletedIfGone(&context, key, shard)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func ltrim(_ context: inout CommandContext) {
        guard let start = context.integerArgument(2), let end = context.integerArgument(3) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                let result = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    let total = list.count
                    let keep = range(start: start, end: end, count: total)
                    let left = keep?.lowerBound ?? total
                    let right = keep.map { total - $0.upperBound - 1 } ?? 0
                    list.remove(left, from: .head)
                    list.remove(right, from: .tail)
                    // Redis signals the key as modified even when nothing was trimmed.
                    changed = true
                    return left + right
                }
                context.output.writeOK()
                if let trimmed = result {
                    if trimmed > 0 { context.addChanges(Int64(trimmed)) }
                    context.notify(.list, "ltrim", key)
                    notifyDeletedIfGone(&context, key, shard)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func lpos(_ context: inout CommandContext) {
        var rank: Int64 = 1
        var count = -1
        var maxLength = 0
        var index = 3
        let arguments = context.arguments
        while index < arguments.count {
            let hasValue = index + 1 < arguments.count
            if hasValue && arguments.matches(index, "rank") {
                guard let parsed = context.integerArgument(index + 1) else { return }
                if parsed == 0 {
                    context.output.writeError(RedisError.rankZero)
                    return
                }
                rank = parsed
            } else if hasValue && arguments.matches(index, "count") {
                guard let parsed = nonNegativeArgument(&context, index + 1, message: RedisError.countNegative)
                else { return }
                count = parsed
            } else if hasValue && arguments.matches(index, "maxlen") {
                guard let parsed = nonNegativeArgument(&context, index + 1, message: RedisError.maxlenNegative)
                else { return }
                maxLength = parsed
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 2
        }
        let reverse = rank < 0
        // Redis negates the rank in a C long: LONG_MIN stays negative, so the first match counts
        // as reached and `matches - rank + 1` wraps negative, so COUNT never stops the scan.
        let wanted = rank == Int64.min ? 1 : Int(rank.magnitude)
        let countStops = rank != Int64.min
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                guard let list = try shard.readList(context.database, key, now: context.now) else {
                    if count != -1 { context.output.writeArrayHeader(0) } else { context.output.writeNull() }
                    return
                }
                var positions: [Int] = []
                var matches = 0
                var scanned = 0
                list.visit(from: reverse ? list.count - 1 : 0, reverse: reverse) { position, element in
                    if maxLength != 0 && scanned >= maxLength { return false }
                    scanned += 1
                    guard element.equals(arguments[2]) else { return true }
                    matches += 1
                    if matches < wanted { return true }
                    positions.append(position)
                    if count == -1 { return false }
                    return count == 0 || !countStops || matches - wanted + 1 < count
                }
                if count != -1 {
                    context.output.writeArrayHeader(positions.count)
                    for position in positions { context.output.writeInteger(position) }
                } else if let position = positions.first {
                    context.output.writeInteger(position)
                } else {
                    context.output.writeNull()
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    /// LMOVE / RPOPLPUSH: pops from argv[1]'s `from` end and pushes at argv[2]'s `to` end.
    static func move(_ context: inout CommandContext, from: ListEnd, to: ListEnd, locked: Bool = false) {
        let source = context.key(1)
        let destination = context.key(2)
        if !locked { context.lockShards(context.shardMask(keysFrom: 1, through: 2)) }
        let sourceShard = context.keyspace.shard(for: source)
        let destinationShard = context.keyspace.shard(for: destination)
        let database = context.database
        let now = context.now
        let fill = context.engine.listFill
        do {
            let moved: [UInt8]?
            if source == destination {
                moved = try sourceShard.withList(database, source, now: now, create: false) { list, changed in
                    guard let element = list.pop(from) else { return [UInt8]() }
                    list.push(element, at: to, fill: fill)
                    changed = true
                    return element
                }
            } else {
                // Redis checks the source first (missing: nil; wrong type: error), then the
                // destination's type, before anything moves.
                guard try sourceShard.holdsList(database, source, now: now) else {
                    context.output.writeNull()
                    return
                }
                if destinationShard.holdsNonList(database, destination, now: now) {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
                moved = try sourceShard.withList(database, source, now: now, create: false) { list, changed in
                    changed = true
                    return list.pop(from) ?? []
                }
                if let moved {
                    _ = try destinationShard.withList(database, destination, now: now, create: true) {
                        list, changed in
                        list.push(moved, at: to, fill: fill)
                        changed = true
                    }
                }
            }
            guard let moved else {
                context.output.writeNull()
                return
            }
            context.output.writeBulkString(moved)
            context.addChanges(1)
            // Redis notifies the push onto the destination first, then the pop (lmoveHandlePush).
            context.notify(.list, to == .head ? "lpush" : "rpush", destination)
            notifyPop(&context, from, source, sourceShard)
        } catch {
            context.output.writeKeyspaceError(error)
        }
    }

    /// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count] and BLMPOP timeout numkeys ...,
    /// logged as LPOP/RPOP key count.
    static func lmpop(_ context: inout CommandContext) { lmpop(&context, blocking: false) }

    static func lmpop(_ context: inout CommandContext, blocking: Bool) {
        let arguments = context.arguments
        let first = blocking ? 3 : 2
        guard let keyCount = positiveArgument(&context, first - 1, message: RedisError.numkeysNotPositive)
        else { return }
        guard keyCount < arguments.count - first else {
            context.output.writeError(RedisError.syntax)
            return
        }
        let whereIndex = first + keyCount
        guard let end = end(&context, whereIndex) else { return }
        var count = -1
        var index = whereIndex + 1
        while index < arguments.count {
            if count == -1 && index + 1 < arguments.count && arguments.matches(index, "count") {
                guard let parsed = positiveArgument(&context, index + 1, message: RedisError.countNotPositive)
                else { return }
                count = parsed
                index += 2
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
        }
        if count == -1 { count = 1 }
        var deadline: Int64 = 0
        if blocking {
            guard let parsed = timeoutArgument(&context, 1) else { return }
            deadline = parsed
        }
        context.lockShards(context.shardMask(keysFrom: first, through: whereIndex - 1))
        // The reply buffer moves out of the context (the shard closure cannot capture it).
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        swap(&output, &context.output)
        defer { swap(&output, &context.output) }
        for keyIndex in first..<whereIndex {
            let key = context.key(keyIndex)
            let shard = context.keyspace.shard(for: key)
            do {
                let popped = try shard.withList(context.database, key, now: context.now, create: false) {
                    list, changed in
                    output.writeArrayHeader(2)
                    output.writeBulkString(arguments[keyIndex])
                    changed = true
                    return popRange(&list, end, count: count, into: &output)
                }
                guard let popped else { continue }
                context.addChanges(Int64(popped))
                notifyPop(&context, end, key, shard)
                context.propagate([end == .head ? Words.lpop : Words.rpop, key.bytes, decimalBytes(Int64(popped))])
                return
            } catch {
                output.writeKeyspaceError(error)
                return
            }
        }
        if !blocking || mayNotBlock(context) {
            output.writeNullArray()
            return
        }
        block(&context, keys: (first..<whereIndex).map { arguments.copy($0) }, .popCount(end, count),
              deadline: deadline)
    }
}
