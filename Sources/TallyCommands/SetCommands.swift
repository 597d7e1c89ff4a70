// SetCommands: SADD SREM SCARD SIS/SMISMEMBER SMEMBERS SRANDMEMBER SPOP SMOVE, SINTER/SUNION/SDIFF (STORE), SSCAN.
import TallyKeyspace
import TallyProtocol

/// The set family (t_set.c). Replies iterate a set in its own order: ascending integers for an
/// intset (as Redis), table order otherwise (hash-dependent in Redis too).
enum SetCommands {
    static var specs: [CommandSpec] {
        [
            command("sadd", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @set @fast", sadd),
            command("srem", -3, [.write, .fast], keys: (1, 1, 1), "@write @set @fast", srem),
            command("scard", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @set @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, set in
                    context.output.writeInteger(set.count)
                }
            },
            command("sismember", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @set @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, set in
                    context.output.writeInteger(set.contains(context.arguments[2]) ? 1 : 0)
                }
            },
            command("smismember", -3, [.readonly, .fast], keys: (1, 1, 1), "@read @set @fast", smismember),
            command("smembers", 2, [.readonly], keys: (1, 1, 1), "@read @set @slow") { context in
                combine(&context, .intersection, keys: 1..<2, store: nil)
            },
            command("srandmember", -2, [.readonly], keys: (1, 1, 1), "@read @set @slow", srandmember),
            command("spop", -2, [.write, .fast], keys: (1, 1, 1), "@write @set @fast", spop),
            command("smove", 4, [.write, .fast], keys: (1, 2, 1), "@write @set @fast", smove),
            command("sinter", -2, [.readonly], keys: (1, -1, 1), "@read @set @slow") { context in
                combine(&context, .intersection, keys: 1..<context.arguments.count, store: nil)
            },
            command("sintercard", -3, [.readonly, .movableKeys], "@read @set @slow", sintercard),
            command("sinterstore", -3, [.write, .denyOOM], keys: (1, -1, 1), "@write @set @slow") { context in
                combine(&context, .intersection, keys: 2..<context.arguments.count, store: 1)
            },
            command("sunion", -2, [.readonly], keys: (1, -1, 1), "@read @set @slow") { context in
                combine(&context, .union, keys: 1..<context.arguments.count, store: nil)
            },
            command("sunionstore", -3, [.write, .denyOOM], keys: (1, -1, 1), "@write @set @slow") { context in
                combine(&context, .union, keys: 2..<context.arguments.count, store: 1)
            },
            command("sdiff", -2, [.readonly], keys: (1, -1, 1), "@read @set @slow") { context in
                combine(&context, .difference, keys: 1..<context.arguments.count, store: nil)
            },
            command("sdiffstore", -3, [.write, .denyOOM], keys: (1, -1, 1), "@write @set @slow") { context in
                combine(&context, .difference, keys: 2..<context.arguments.count, store: 1)
            },
            command("sscan", -3, [.readonly], keys: (1, 1, 1), "@read @set @slow", sscan),
        ]
    }

    static let srem: [UInt8] = Array("SREM".utf8)

    /// Runs `body` on the set at argv[1] for a read; `empty` replies for a missing key.
    static func read(_ context: inout CommandContext, empty: (inout CommandContext) -> Void,
                     _ body: (inout CommandContext, SetValue) -> Void) {
        let key = context.key(1)
        let shard = context.lockShard(for: key)
        guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
            empty(&context)
            return
        }
        guard case .set(let set) = entry.value else {
            context.output.writeError(RedisError.wrongType)
            return
        }
        body(&context, set)
    }

    /// Writes every member of `set` (in its order) after a header of `header` kind.
    static func writeMembers(_ set: SetValue, asSet: Bool, into output: inout OutputBuffer) {
        if asSet { output.writeSetHeader(set.count) } else { output.writeArrayHeader(set.count) }
        if set.isIntset {
            for value in set.integers { output.writeBulkDecimal(value) }
        } else {
            set.forEach { output.writeBulkString($0) }
        }
    }

    static func sadd(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            let limit = context.engine.setMaxIntsetEntries
            do throws(KeyspaceError) {
                let added = try shard.withSet(context.database, key, now: context.now, create: true) { set, changed in
                    var added = 0
                    for index in 2..<arguments.count where set.insert(arguments[index], maxIntsetEntries: limit) {
                        added += 1
                    }
                    changed = added > 0
                    return added
                } ?? 0
                context.output.writeInteger(added)
                if added > 0 {
                    context.addChanges(Int64(added))
                    context.notify(.set, "sadd", key)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func srem(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            do throws(KeyspaceError) {
                let removed = try shard.withSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    var removed = 0
                    for index in 2..<arguments.count where set.remove(arguments[index]) {
                        removed += 1
                        if set.isEmpty { break }
                    }
                    changed = removed > 0
                    return removed
                } ?? 0
                context.output.writeInteger(removed)
                if removed > 0 {
                    context.addChanges(Int64(removed))
                    context.notify(.set, "srem", key)
                    if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func smismember(_ context: inout CommandContext) {
        let count = context.arguments.count
        read(&context, empty: { context in
            context.output.writeArrayHeader(count - 2)
            for _ in 2..<count { context.output.writeInteger(0) }
        }) { context, set in
            context.output.writeArrayHeader(count - 2)
            for index in 2..<count { context.output.writeInteger(set.contains(context.arguments[index]) ? 1 : 0) }
        }
    }

    /// SRANDMEMBER key [count] (t_set.c srandmemberWithCountCommand): a negative count allows
    /// repetitions; a count at least the size returns the whole set; otherwise distinct members.
    static func srandmember(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.count > 3 { return context.output.writeError(RedisError.syntax) }
        guard arguments.count == 3 else {
            return read(&context, empty: { $0.output.writeNull() }) { context, set in
                context.output.writeBulkString(set.randomMember())
            }
        }
        guard let count = context.integerArgument(2, in: -Int64.max...Int64.max) else { return }
        read(&context, empty: { $0.output.writeArrayHeader(0) }) { context, set in
            if count == 0 { return context.output.writeArrayHeader(0) }
            var generator = SystemRandomNumberGenerator()
            if count < 0 || count == 1 {
                let total = Int(count.magnitude)
                context.output.writeArrayHeader(total)
                for _ in 0..<total { context.output.writeBulkString(set.randomMember(using: &generator)) }
                return
            }
            if count >= set.count { return writeMembers(set, asSet: false, into: &context.output) }
            let members = set.members
            var picks = Array(0..<members.count)
            // A partial Fisher-Yates shuffle: the first `count` slots are a uniform sample.
            for index in 0..<Int(count) {
                picks.swapAt(index, Int.random(in: index..<picks.count, using: &generator))
            }
            context.output.writeArrayHeader(Int(count))
            for index in picks.prefix(Int(count)) { context.output.writeBulkString(members[index]) }
        }
    }

    /// What SPOP with a count took: the whole set (replied in a fresh set's order), or members.
    typealias PopResult = (popped: SetValue?, members: [[UInt8]])

    /// SPOP key [count]. Logged as Redis 7.0 logs it (t_set.c spopWithCountCommand): one
    /// member as `SREM key member`; a count covering the set as `DEL key`; otherwise one
    /// `SREM key member` per popped member, so AOF replay removes exactly the same members.
    static func spop(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.count > 3 { return context.output.writeError(RedisError.syntax) }
        let key = context.key(1)
        if arguments.count == 2 {
            let shard = context.lockShard(for: key)
            do {
                let popped = try shard.withSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    let member = set.randomMember()
                    set.remove(member)
                    changed = true
                    return member
                }
                guard let popped else { return context.output.writeNull() }
                context.output.writeBulkString(popped)
                context.addChanges(1)
                context.propagate([srem, key.bytes, popped])
                context.notify(.set, "spop", key)
                if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
            } catch {
                context.output.writeKeyspaceError(error)
            }
            return
        }
        guard let count = context.integerArgument(2, in: 0...Int64.max, message: RedisError.mustBePositive) else {
            return
        }
        let shard = context.lockShard(for: key)
        let limit = context.engine.setMaxIntsetEntries
        do {
            let result = try shard.withSet(context.database, key, now: context.now, create: false) {
                (set: inout SetValue, changed: inout Bool) throws(KeyspaceError) -> PopResult in
                if count == 0 { return (nil, []) }
                changed = true
                if count >= set.count {
                    // The whole set, replied as SUNION of it would (a fresh set's order).
                    var copy = SetValue()
                    set.forEach { copy.insert($0, maxIntsetEntries: limit) }
                    set = SetValue()
                    return (copy, [])
                }
                let remaining = set.count - Int(count)
                var popped: [[UInt8]] = []
                if remaining * 5 > Int(count) {
                    popped.reserveCapacity(Int(count))
                    for _ in 0..<count {
                        let member = set.randomMember()
                        set.remove(member)
                        popped.append(member)
                    }
                } else {
                    // Few members stay: move those to a new set (its encoding chosen afresh, as
                    // Redis's setTypeCreate does) and return the rest in the old set's order.
                    var kept = SetValue()
                    for _ in 0..<remaining {
                        let member = set.randomMember()
                        set.remove(member)
                        kept.insert(member, maxIntsetEntries: limit)
                    }
                    popped = set.members
                    set = kept
                }
                return (nil, popped)
            }
            guard let result else { return context.output.writeSetHeader(0) }
            if count == 0 { return context.output.writeSetHeader(0) }
            if let whole = result.popped {
                writeMembers(whole, asSet: true, into: &context.output)
                context.addChanges(Int64(whole.count))
                context.propagate([Words.del, key.bytes])
                context.notify(.set, "spop", key)
                context.notify(.generic, "del", key)
                return
            }
            context.output.writeSetHeader(result.members.count)
            for member in result.members { context.output.writeBulkString(member) }
            context.addChanges(Int64(result.members.count))
            let keyBytes = key.bytes
            for member in result.members { context.propagate([srem, keyBytes, member]) }
            context.notify(.set, "spop", key)
        } catch {
            context.output.writeKeyspaceError(error)
        }
    }

    /// SMOVE source destination member (t_set.c smoveCommand).
    static func smove(_ context: inout CommandContext) {
        let source = context.key(1)
        let destination = context.key(2)
        context.lockShards(context.shardMask(keysFrom: 1, through: 2))
        let sourceShard = context.keyspace.shard(for: source)
        let destinationShard = context.keyspace.shard(for: destination)
        let database = context.database
        let now = context.now
        let member = context.arguments[3]
        // The checks look at copies of the values; they end with this scope, before the edits
        // below, or the source set would be shared when edited and copied whole (an SMOVE out
        // of a 100k-member set cost a copy of it).
        do {
            guard let sourceEntry = sourceShard.lookup(database, source, now: now) else {
                return context.output.writeInteger(0)
            }
            guard case .set(let sourceSet) = sourceEntry.value else {
                return context.output.writeError(RedisError.wrongType)
            }
            if let target = destinationShard.lookup(database, destination, now: now) {
                guard case .set = target.value else { return context.output.writeError(RedisError.wrongType) }
            }
            if source == destination {
                return context.output.writeInteger(sourceSet.contains(member) ? 1 : 0)
            }
        }
        let limit = context.engine.setMaxIntsetEntries
        do {
            let removed = try sourceShard.withSet(database, source, now: now, create: false) { set, changed in
                changed = set.remove(member)
                return changed
            } ?? false
            guard removed else { return context.output.writeInteger(0) }
            context.addChanges(1)
            context.notify(.set, "srem", source)
            if !sourceShard.contains(database, source, now: now) { context.notify(.generic, "del", source) }
            let added = try destinationShard.withSet(database, destination, now: now, create: true) {
                set, changed in
                changed = set.insert(member, maxIntsetEntries: limit)
                return changed
            } ?? false
            if added {
                context.addChanges(1)
                context.notify(.set, "sadd", destination)
            }
            context.output.writeInteger(1)
        } catch {
            context.output.writeKeyspaceError(error)
        }
    }

    /// What `combine` computes.
    enum Operation {
        case intersection, union, difference
    }

    /// The sets at the key arguments in `keys` (nil for a missing key), or nil after replying
    /// WRONGTYPE: every key is checked before anything is computed, as t_set.c does. The
    /// caller holds the keys' shards.
    static func loadSets(_ context: inout CommandContext, keys: Range<Int>) -> [SetValue?]? {
        var sets: [SetValue?] = []
        sets.reserveCapacity(keys.count)
        for index in keys {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                sets.append(nil)
                continue
            }
            guard case .set(let set) = entry.value else {
                context.output.writeError(RedisError.wrongType)
                return nil
            }
            sets.append(set)
        }
        return sets
    }

    /// The intersection of `sets` (none missing): the smallest set's members, in its order,
    /// that every other set holds; stops after `limit` members when given.
    static func intersect(_ sets: [SetValue], limit: Int? = nil, _ body: (UnsafeRawBufferPointer) -> Void) {
        // A stable sort by size: glibc's qsort (a merge sort here) keeps equal sizes in order.
        let ordered = sets.enumerated().sorted { ($0.element.count, $0.offset) < ($1.element.count, $1.offset) }
            .map(\.element)
        var found = 0
        ordered[0].forEach { member in
            if let limit, found >= limit { return }
            for other in ordered.dropFirst() where !other.contains(member) { return }
            found += 1
            body(member)
        }
    }

    /// SINTER/SUNION/SDIFF and their STORE forms (sinterGenericCommand, sunionDiffGenericCommand).
    /// The result is built as Redis builds it (a new set that starts as an intset), so a
    /// stored result has Redis's encoding and a reply has its order. `store` is the index of
    /// the destination key argument.
    static func combine(_ context: inout CommandContext, _ operation: Operation, keys: Range<Int>, store: Int?) {
        let lastKey = context.arguments.count - 1
        context.lockShards(context.shardMask(keysFrom: store ?? keys.lowerBound, through: lastKey))
        guard let sets = loadSets(&context, keys: keys) else { return }
        let limit = context.engine.setMaxIntsetEntries
        var result = SetValue()
        switch operation {
        case .intersection:
            if sets.contains(where: { $0 == nil }) { break }
            let present = sets.compactMap { $0 }
            if store == nil {
                // Streamed in the smallest set's order, as Redis replies.
                var members: [[UInt8]] = []
                intersect(present) { members.append(Array($0)) }
                context.output.writeSetHeader(members.count)
                for member in members { context.output.writeBulkString(member) }
                return
            }
            intersect(present) { result.insert($0, maxIntsetEntries: limit) }
        case .union:
            for set in sets { set?.forEach { result.insert($0, maxIntsetEntries: limit) } }
        case .difference:
            guard let first = sets[0] else { break }
            // The same key given again as a later set: the difference is empty.
            let firstKey = context.arguments[keys.lowerBound]
            if keys.dropFirst().contains(where: { context.arguments[$0].elementsEqual(firstKey) }) { break }
            let others = sets.dropFirst().compactMap { $0 }
            // Redis picks one of two algorithms by estimated work; they give the same members,
            // but the second fills the result with the whole first set before removing, so
            // its encoding can differ (a hash table once the first set outgrew the intset).
            let firstWork = first.count * (others.count + 1) / 2
            let secondWork = first.count + others.reduce(0) { $0 + $1.count }
            if firstWork <= secondWork {
                first.forEach { member in
                    for other in others where other.contains(member) { return }
                    result.insert(member, maxIntsetEntries: limit)
                }
            } else {
                first.forEach { result.insert($0, maxIntsetEntries: limit) }
                for other in others where !result.isEmpty {
                    other.forEach { result.remove($0) }
                }
            }
        }
        guard let store else {
            return writeMembers(result, asSet: true, into: &context.output)
        }
        let destination = context.key(store)
        let shard = context.keyspace.shard(for: destination)
        if result.isEmpty {
            context.output.writeInteger(0)
            if shard.lookup(context.database, destination, now: context.now) != nil {
                shard.remove(context.database, destination)
                context.addChanges(1)
                context.notify(.generic, "del", destination)
            }
            return
        }
        context.output.writeInteger(result.count)
        shard.store(context.database, destination, Entry(value: .set(result)))
        context.addChanges(1)
        let event: StaticString
        switch operation {
        case .intersection: event = "sinterstore"
        case .union: event = "sunionstore"
        case .difference: event = "sdiffstore"
        }
        context.notify(.set, event, destination)
    }

    /// SINTERCARD numkeys key [key ...] [LIMIT limit].
    static func sintercard(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard let keyCount = context.integerArgument(1, in: 1...Int64.max, message: RedisError.numkeysNotPositive)
        else { return }
        guard keyCount <= arguments.count - 2 else {
            return context.output.writeError("ERR Number of keys can't be greater than number of args")
        }
        let keys = 2..<(2 + Int(keyCount))
        var limit = 0
        var index = keys.upperBound
        while index < arguments.count {
            if arguments.matches(index, "limit") && index + 1 < arguments.count {
                guard let value = context.integerArgument(index + 1, in: 0...Int64.max,
                                                          message: "ERR LIMIT can't be negative") else { return }
                limit = Int(value)
                index += 2
            } else {
                return context.output.writeError(RedisError.syntax)
            }
        }
        context.lockShards(context.shardMask(keysFrom: keys.lowerBound, through: keys.upperBound - 1))
        guard let sets = loadSets(&context, keys: keys) else { return }
        if sets.contains(where: { $0 == nil }) { return context.output.writeInteger(0) }
        var found = 0
        intersect(sets.compactMap { $0 }, limit: limit == 0 ? nil : limit) { _ in found += 1 }
        context.output.writeInteger(found)
    }

    /// SSCAN key cursor [MATCH pattern] [COUNT count]: an intset whole with cursor 0, a table
    /// by cursor and COUNT (`SetValue.scan`, dictScan's guarantees). Options are checked after
    /// the key, as db.c scanGenericCommand does.
    static func sscan(_ context: inout CommandContext) {
        guard let cursor = KeyspaceCommands.parseCursor(context.arguments[2]) else {
            return context.output.writeError(RedisError.invalidCursor)
        }
        read(&context, empty: { context in
            context.output.writeStaticString("*2\r\n$1\r\n0\r\n*0\r\n")
        }) { context, set in
            guard let (pattern, count) = KeyspaceCommands.elementScanOptions(&context) else { return }
            var matched: [[UInt8]] = []
            let next = set.scan(cursor: cursor, count: count) { member in
                if let pattern, !globMatches(pattern, member) { return }
                matched.append(Array(member))
            }
            context.output.writeArrayHeader(2)
            context.output.writeBulkString(Array(String(next).utf8))
            context.output.writeArrayHeader(matched.count)
            for member in matched { context.output.writeBulkString(member) }
        }
    }
}
