// StreamCommands: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XREAD XREADGROUP XGROUP XACK XPENDING XCLAIM XAUTOCLAIM
// XINFO XSETID (t_stream.c semantics: parsing, lookups and errors in Redis 7.0's order, its propagation).
import TallyKeyspace
import TallyProtocol

/// The stream family. Handlers parse what Redis parses before the lookup, look the key up,
/// then parse the rest, so a request gets the same reply (or error) from both servers.
enum StreamCommands {
    static var specs: [CommandSpec] {
        [
            command("xadd", -5, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @stream @fast", xadd),
            command("xlen", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @stream @fast", xlen),
            command("xrange", -4, [.readonly], keys: (1, 1, 1), "@read @stream @slow") { context in
                xrange(&context, reverse: false)
            },
            command("xrevrange", -4, [.readonly], keys: (1, 1, 1), "@read @stream @slow") { context in
                xrange(&context, reverse: true)
            },
            command("xdel", -3, [.write, .fast], keys: (1, 1, 1), "@write @stream @fast", xdel),
            command("xtrim", -4, [.write], keys: (1, 1, 1), "@write @stream @slow", xtrim),
            command("xread", -4, [.readonly, .blocking, .movableKeys], "@read @stream @slow @blocking") { context in
                xread(&context, group: false)
            },
            command("xreadgroup", -7, [.write, .blocking, .movableKeys], "@write @stream @slow @blocking") {
                context in
                xread(&context, group: true)
            },
            command("xack", -4, [.write, .fast], keys: (1, 1, 1), "@write @stream @fast", xack),
            command("xpending", -3, [.readonly], keys: (1, 1, 1), "@read @stream @slow", xpending),
            command("xclaim", -6, [.write, .fast], keys: (1, 1, 1), "@write @stream @fast", xclaim),
            command("xautoclaim", -6, [.write, .fast], keys: (1, 1, 1), "@write @stream @fast", xautoclaim),
            command("xsetid", -3, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @stream @fast", xsetid),
            CommandSpec(
                name: "xgroup", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    subcommand("xgroup|createconsumer", 5, [.write, .denyOOM], key: 2),
                    subcommand("xgroup|help", 2, [.loading, .stale], key: 0),
                    subcommand("xgroup|create", -5, [.write, .denyOOM], key: 2),
                    subcommand("xgroup|delconsumer", 5, [.write], key: 2),
                    subcommand("xgroup|destroy", 4, [.write], key: 2),
                    subcommand("xgroup|setid", -5, [.write], key: 2),
                ],
                handler: xgroup),
            CommandSpec(
                name: "xinfo", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    subcommand("xinfo|stream", -3, [.readonly], key: 2),
                    subcommand("xinfo|help", 2, [.loading, .stale], key: 0),
                    subcommand("xinfo|groups", 3, [.readonly], key: 2),
                    subcommand("xinfo|consumers", 4, [.readonly], key: 2),
                ],
                handler: xinfo),
        ]
    }

    private static func subcommand(_ name: String, _ arity: Int, _ flags: CommandFlags, key: Int) -> CommandSpec {
        var categories = ["@stream", "@slow"]
        if flags.contains(.write) { categories.insert("@write", at: 0) }
        if flags.contains(.readonly) { categories.insert("@read", at: 0) }
        return CommandSpec(name: name, arity: arity, flags: flags, firstKey: key, lastKey: key, step: key > 0 ? 1 : 0,
                           categories: categories) { _ in }
    }

    // MARK: Errors

    static let invalidID: StaticString = "ERR Invalid stream ID specified as stream command argument"
    static let idTooSmall: StaticString =
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    static let idZero: StaticString = "ERR The ID specified in XADD must be greater than 0-0"
    static let exhausted: StaticString =
        "ERR The stream has exhausted the last possible ID, unable to add more items"
    static let tooLarge: StaticString = "ERR Elements are too large to be stored"
    static let invalidStart: StaticString = "ERR invalid start ID for the interval"
    static let invalidEnd: StaticString = "ERR invalid end ID for the interval"
    static let maxlenAndMinid: StaticString =
        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
    static let groupNeedsKey: StaticString = """
        ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the \
        MKSTREAM option to create an empty stream automatically.
        """

    /// `-NOGROUP ...` built from parts (addReplyErrorFormat with %s arguments).
    static func noGroupError(_ parts: [[UInt8]], into output: inout OutputBuffer) {
        var message: [UInt8] = []
        // Each part is a %s argument: a C string, cut at its first NUL.
        for part in parts { message.append(contentsOf: part.prefix { $0 != 0 }) }
        output.writeError(message.map { $0 == 10 || $0 == 13 ? 32 : $0 })
    }

    /// addReplySubcommandSyntaxError.
    static func subcommandSyntaxError(_ context: inout CommandContext) {
        var message = Array("ERR unknown subcommand or wrong number of arguments for '".utf8)
        message.append(contentsOf: context.arguments[1].prefix(128))
        message.append(contentsOf: "'. Try ".utf8)
        message.append(contentsOf: context.arguments[0].map { $0 >= 97 && $0 <= 122 ? $0 - 32 : $0 })
        message.append(contentsOf: " HELP.".utf8)
        context.output.writeError(message)
    }

    // MARK: Ids

    /// strtoull's acceptance after string2ll failed: spaces, a sign, digits, nothing after.
    static func parseUnsigned(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        if let value = parseRedisInteger(bytes) { return value < 0 ? nil : UInt64(value) }
        var index = bytes.startIndex
        while index < bytes.endIndex, [32, 9, 10, 11, 12, 13].contains(bytes[index]) { index += 1 }
        var negative = false
        if index < bytes.endIndex, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < bytes.endIndex else { return nil }
        var value: UInt64 = 0
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte >= 48 && byte <= 57 else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - 48))
            if overflow1 || overflow2 { return nil }
            value = sum
            index += 1
        }
        return negative ? 0 &- value : value
    }

    /// streamGenericParseIDOrReply without the reply: nil for an invalid id. `seqGiven` is
    /// false for `ms-*` (accepted only when `allowSequenceStar`).
    static func parseID(_ raw: ArraySlice<UInt8>, strict: Bool, missingSequence: UInt64,
                        allowSequenceStar: Bool = false) -> (id: StreamID, seqGiven: Bool)? {
        guard raw.count <= 127 else { return nil }
        // A C string: bytes after a NUL are not seen.
        let bytes = raw.firstIndex(of: 0).map { raw[raw.startIndex..<$0] } ?? raw
        if bytes.count == 1 && (bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+")) {
            if strict { return nil }
            return bytes.first == UInt8(ascii: "-") ? (.zero, true) : (.max, true)
        }
        let dash = bytes.firstIndex(of: UInt8(ascii: "-"))
        guard let ms = parseUnsigned(bytes[bytes.startIndex..<(dash ?? bytes.endIndex)]) else { return nil }
        guard let dash else { return (StreamID(ms, missingSequence), true) }
        let tail = bytes[(dash + 1)...]
        if allowSequenceStar && tail.count == 1 && tail.first == UInt8(ascii: "*") { return (StreamID(ms, 0), false) }
        guard let seq = parseUnsigned(tail) else { return nil }
        return (StreamID(ms, seq), true)
    }

    /// Argument `index` as a strict id, or nil after the error reply.
    static func strictID(_ context: inout CommandContext, _ index: Int) -> StreamID? {
        guard let parsed = parseID(context.arguments[index], strict: true, missingSequence: 0) else {
            context.output.writeError(invalidID)
            return nil
        }
        return parsed.id
    }

    /// An interval bound (streamParseIntervalIDOrReply + the exclusive adjustment), or nil
    /// after the error reply.
    static func intervalID(_ context: inout CommandContext, _ index: Int, start: Bool) -> StreamID? {
        let raw = context.arguments[index]
        let exclusive = raw.count > 1 && raw.first == UInt8(ascii: "(")
        let missing: UInt64 = start ? 0 : UInt64.max
        let parsed = exclusive ? parseID(raw.dropFirst(), strict: true, missingSequence: missing)
            : parseID(raw, strict: false, missingSequence: missing)
        guard let id = parsed?.id else {
            context.output.writeError(invalidID)
            return nil
        }
        if !exclusive { return id }
        if start {
            guard let next = id.successor else {
                context.output.writeError(invalidStart)
                return nil
            }
            return next
        }
        guard let previous = id.predecessor else {
            context.output.writeError(invalidEnd)
            return nil
        }
        return previous
    }

    // MARK: Replies

    static func writeID(_ id: StreamID, into output: inout OutputBuffer) { output.writeBulkString(id.bytes) }

    /// One entry: [id, [field, value, ...]].
    static func writeEntry(_ id: StreamID, _ fields: [ListElement], into output: inout OutputBuffer) {
        output.writeArrayHeader(2)
        writeID(id, into: &output)
        output.writeArrayHeader(fields.count)
        for element in fields { ListCommands.write(element, into: &output) }
    }

    /// Entries in `start...end` (count 0 = all) as an array.
    static func writeRange(_ stream: StreamValue, _ start: StreamID, _ end: StreamID, count: Int, reverse: Bool,
                           into output: inout OutputBuffer) {
        var entries: [(StreamID, [ListElement])] = []
        stream.forEach(from: start, through: end, reverse: reverse) { id, fields in
            entries.append((id, fields))
            return count == 0 || entries.count < count
        }
        output.writeArrayHeader(entries.count)
        for (id, fields) in entries { writeEntry(id, fields, into: &output) }
    }

    /// The stream at `key` for a read; nil when absent. Writes WRONGTYPE and returns .failure.
    static func readStream(_ context: inout CommandContext, _ key: Key) -> StreamValue?? {
        let shard = context.lockShard(for: key)
        guard let entry = shard.lookupRead(context.database, key, now: context.now) else { return .some(nil) }
        guard case .stream(let stream) = entry.value else {
            context.output.writeError(RedisError.wrongType)
            return nil
        }
        return .some(stream)
    }

    // MARK: XADD / XTRIM

    struct TrimArguments {
        var strategy: StreamTrimStrategy?
        var approximate = false
        var limit: Int64 = 0
        var strategyArgumentIndex = 0
        var id: StreamID?
        var seqGiven = true
        var noCreate = false
    }

    /// streamParseAddOrTrimArgsOrReply: the options, and for XADD the id position; nil after
    /// the error reply.
    static func parseAddOrTrim(_ context: inout CommandContext, xadd: Bool) -> (TrimArguments, Int)? {
        let arguments = context.arguments
        var parsed = TrimArguments()
        var limitGiven = false
        var index = 2
        while index < arguments.count {
            let more = arguments.count - 1 - index
            let option = arguments[index]
            if xadd && option.count == 1 && option.first == UInt8(ascii: "*") {
                break
            } else if arguments.matches(index, "maxlen") && more > 0 {
                if parsed.strategy != nil {
                    context.output.writeError(maxlenAndMinid)
                    return nil
                }
                parsed.approximate = false
                let next = arguments[index + 1]
                if more >= 2 && next.count == 1 && next.first == UInt8(ascii: "~") {
                    parsed.approximate = true
                    index += 1
                } else if more >= 2 && next.count == 1 && next.first == UInt8(ascii: "=") {
                    index += 1
                }
                guard let maxLength = context.integerArgument(index + 1) else { return nil }
                if maxLength < 0 {
                    context.output.writeError("ERR The MAXLEN argument must be >= 0.")
                    return nil
                }
                index += 1
                parsed.strategy = .maxLength(maxLength)
                parsed.strategyArgumentIndex = index
            } else if arguments.matches(index, "minid") && more > 0 {
                if parsed.strategy != nil {
                    context.output.writeError(maxlenAndMinid)
                    return nil
                }
                parsed.approximate = false
                let next = arguments[index + 1]
                if more >= 2 && next.count == 1 && next.first == UInt8(ascii: "~") {
                    parsed.approximate = true
                    index += 1
                } else if more >= 2 && next.count == 1 && next.first == UInt8(ascii: "=") {
                    index += 1
                }
                guard let minimum = strictID(&context, index + 1) else { return nil }
                index += 1
                parsed.strategy = .minimumID(minimum)
                parsed.strategyArgumentIndex = index
            } else if arguments.matches(index, "limit") && more > 0 {
                guard let limit = context.integerArgument(index + 1) else { return nil }
                if limit < 0 {
                    context.output.writeError("ERR The LIMIT argument must be >= 0.")
                    return nil
                }
                parsed.limit = limit
                limitGiven = true
                index += 1
            } else if xadd && arguments.matches(index, "nomkstream") {
                parsed.noCreate = true
            } else if xadd {
                guard let id = parseID(option, strict: true, missingSequence: 0, allowSequenceStar: true) else {
                    context.output.writeError(invalidID)
                    return nil
                }
                parsed.id = id.id
                parsed.seqGiven = id.seqGiven
                break
            } else {
                context.output.writeError(RedisError.syntax)
                return nil
            }
            index += 1
        }
        if parsed.limit != 0 && parsed.strategy == nil {
            context.output.writeError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
            return nil
        }
        if !xadd && parsed.strategy == nil {
            context.output.writeError("ERR syntax error, XTRIM must be called with a trimming strategy")
            return nil
        }
        if limitGiven {
            if !parsed.approximate {
                context.output.writeError("ERR syntax error, LIMIT cannot be used without the special ~ option")
                return nil
            }
        } else if parsed.approximate {
            parsed.limit = Int64(100 * StreamValue.nodeMaxEntries)
            if parsed.limit <= 0 { parsed.limit = 10000 }
            if parsed.limit > 1_000_000 { parsed.limit = 1_000_000 }
        } else {
            parsed.limit = 0
        }
        return (parsed, index)
    }

    /// Replaces `~ count` with `= exact` in `command` after an approximate trim
    /// (streamRewriteApproxSpecifier / streamRewriteTrimArgument).
    static func rewriteTrim(_ command: inout [[UInt8]], _ parsed: TrimArguments, _ stream: StreamValue) {
        guard parsed.approximate, let strategy = parsed.strategy else { return }
        command[parsed.strategyArgumentIndex - 1] = [UInt8(ascii: "=")]
        switch strategy {
        case .maxLength: command[parsed.strategyArgumentIndex] = decimalBytes(stream.length)
        case .minimumID: command[parsed.strategyArgumentIndex] = (stream.firstLiveID ?? .zero).bytes
        }
    }

    static func xadd(_ context: inout CommandContext) {
        guard let (parsed, idIndex) = parseAddOrTrim(&context, xadd: true) else { return }
        let arguments = context.arguments
        let fieldIndex = idIndex + 1
        if arguments.count - fieldIndex < 2 || (arguments.count - fieldIndex) % 2 == 1 {
            writeArityError("xadd", into: &context.output)
            return
        }
        if let id = parsed.id, parsed.seqGiven, id == .zero {
            context.output.writeError(idZero)
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let now = context.now
            let logs = context.insideExec || context.engine.isLogAttached
            var command: [[UInt8]] = []
            var failure: StaticString?
            var added: StreamID?
            var trimmed = false
            do throws(KeyspaceError) {
                let found = try shard.updateStream(context.database, key, now: now, create: !parsed.noCreate) {
                    stream, changed in
                    if stream.lastID == .max {
                        failure = exhausted
                        return
                    }
                    var id: StreamID
                    if let given = parsed.id {
                        if parsed.seqGiven {
                            id = given
                        } else if stream.lastID.ms == given.ms {
                            guard let next = stream.lastID.successor, next.ms == given.ms else {
                                failure = idTooSmall
                                return
                            }
                            id = next
                        } else {
                            id = given
                        }
                    } else {
                        let clock = UInt64(max(now, 0))
                        id = clock > stream.lastID.ms ? StreamID(clock, 0) : (stream.lastID.successor ?? .max)
                    }
                    if id <= stream.lastID {
                        failure = idTooSmall
                        return
                    }
                    var pairs: [ArraySlice<UInt8>] = []
                    pairs.reserveCapacity(arguments.count - fieldIndex)
                    var total = 0
                    for index in fieldIndex..<arguments.count {
                        pairs.append(arguments[index])
                        total += arguments[index].count
                    }
                    if total > 1 << 30 {
                        failure = tooLarge
                        return
                    }
                    stream.append(id: id, pairs: pairs)
                    changed = true
                    added = id
                    // The record is only built when something will log it.
                    if logs { command = (0..<arguments.count).map { arguments.copy($0) } }
                    if let strategy = parsed.strategy {
                        trimmed = stream.trim(strategy, approximate: parsed.approximate, limit: parsed.limit) > 0
                        if logs { rewriteTrim(&command, parsed, stream) }
                    }
                    if logs && (parsed.id == nil || !parsed.seqGiven) { command[idIndex] = id.bytes }
                }
                if !found {
                    context.output.writeNull()
                    return
                }
            } catch {
                context.output.writeKeyspaceError(error)
                return
            }
            if let failure {
                context.output.writeError(failure)
                return
            }
            guard let added else { return }
            writeID(added, into: &context.output)
            context.addChanges(1)
            if logs { context.propagate(command) } else { context.preventPropagation() }
            context.notify(.stream, "xadd", key)
            if trimmed { context.notify(.stream, "xtrim", key) }
        }
    }

    static func xtrim(_ context: inout CommandContext) {
        guard let (parsed, _) = parseAddOrTrim(&context, xadd: false), let strategy = parsed.strategy else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            var command: [[UInt8]] = []
            do throws(KeyspaceError) {
                let removed = try shard.withStream(context.database, key, now: context.now, create: false) {
                    stream, changed -> Int64 in
                    let removed = stream.trim(strategy, approximate: parsed.approximate, limit: parsed.limit)
                    if removed > 0 {
                        changed = true
                        command = (0..<arguments.count).map { arguments.copy($0) }
                        rewriteTrim(&command, parsed, stream)
                    }
                    return removed
                } ?? 0
                context.output.writeInteger(removed)
                if removed > 0 {
                    context.addChanges(removed)
                    context.propagate(command)
                    context.notify(.stream, "xtrim", key)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    // MARK: XLEN XRANGE XDEL XSETID

    static func xlen(_ context: inout CommandContext) {
        guard let stream = readStream(&context, context.key(1)) else { return }
        context.output.writeInteger(stream?.length ?? 0)
    }

    static func xrange(_ context: inout CommandContext, reverse: Bool) {
        let arguments = context.arguments
        guard let start = intervalID(&context, reverse ? 3 : 2, start: true),
              let end = intervalID(&context, reverse ? 2 : 3, start: false) else { return }
        var count: Int64 = -1
        var index = 4
        while index < arguments.count {
            if arguments.matches(index, "count") && index + 1 < arguments.count {
                guard let value = context.integerArgument(index + 1) else { return }
                count = max(value, 0)
                index += 2
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
        }
        guard let found = readStream(&context, context.key(1)) else { return }
        guard let stream = found else {
            context.output.writeArrayHeader(0)
            return
        }
        if count == 0 {
            context.output.writeNullArray()
            return
        }
        writeRange(stream, start, end, count: count < 0 ? 0 : Int(clamping: count), reverse: reverse,
                   into: &context.output)
    }

    static func xdel(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            // Scoped: a held copy of the value would make the edit below copy the stream.
            do {
                guard let entry = shard.lookup(context.database, key, now: context.now) else {
                    context.output.writeInteger(0)
                    return
                }
                guard case .stream = entry.value else {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
            }
            var ids: [StreamID] = []
            for index in 2..<context.arguments.count {
                guard let id = strictID(&context, index) else { return }
                ids.append(id)
            }
            do throws(KeyspaceError) {
                let deleted = try shard.withStream(context.database, key, now: context.now, create: false) {
                    stream, changed in
                    var deleted = 0
                    var firstEntry = false
                    for id in ids where stream.delete(id) {
                        if id == stream.firstID { firstEntry = true }
                        if id > stream.maxDeletedID { stream.maxDeletedID = id }
                        deleted += 1
                    }
                    if deleted > 0 {
                        changed = true
                        if stream.length == 0 {
                            stream.firstID = .zero
                        } else if firstEntry {
                            stream.firstID = stream.firstLiveID ?? .zero
                        }
                    }
                    return deleted
                } ?? 0
                context.output.writeInteger(deleted)
                if deleted > 0 {
                    context.addChanges(Int64(deleted))
                    context.notify(.stream, "xdel", key)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func xsetid(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard let id = strictID(&context, 2) else { return }
        var entriesAdded: Int64 = -1
        var maxDeleted = StreamID.zero
        var index = 3
        while index < arguments.count {
            let more = arguments.count - 1 - index
            if arguments.matches(index, "entriesadded") && more > 0 {
                guard let value = context.integerArgument(index + 1) else { return }
                if value < 0 {
                    context.output.writeError("ERR entries_added must be positive")
                    return
                }
                entriesAdded = value
                index += 2
            } else if arguments.matches(index, "maxdeletedid") && more > 0 {
                guard let value = strictID(&context, index + 1) else { return }
                if id < value {
                    context.output.writeError(
                        "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
                    return
                }
                maxDeleted = value
                index += 2
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            var failure: StaticString?
            do throws(KeyspaceError) {
                let found: Void? = try shard.withStream(context.database, key, now: context.now, create: false) {
                    stream, changed in
                    if stream.length > 0 {
                        if let last = stream.lastLiveID, id < last {
                            failure = "ERR The ID specified in XSETID is smaller than the target stream top item"
                            return
                        }
                        if entriesAdded != -1 && stream.length > entriesAdded {
                            failure =
                                "ERR The entries_added specified in XSETID is smaller than the target stream length"
                            return
                        }
                    }
                    stream.lastID = id
                    if entriesAdded != -1 { stream.entriesAdded = entriesAdded }
                    if maxDeleted != .zero { stream.maxDeletedID = maxDeleted }
                    changed = true
                }
                if found == nil {
                    context.output.writeError(RedisError.noSuchKey)
                    return
                }
            } catch {
                context.output.writeKeyspaceError(error)
                return
            }
            if let failure {
                context.output.writeError(failure)
                return
            }
            context.output.writeOK()
            context.addChanges(1)
            context.notify(.stream, "xsetid", key)
        }
    }

    // MARK: XREAD / XREADGROUP

    /// The XCLAIM that replays one delivery (streamPropagateXCLAIM).
    static func claimRecord(key: [UInt8], group: StreamGroup, id: [UInt8], entry: StreamPendingEntry) -> [[UInt8]] {
        [Array("XCLAIM".utf8), key, group.name, entry.consumer, [UInt8(ascii: "0")], id, Array("TIME".utf8),
         decimalBytes(entry.deliveryTime), Array("RETRYCOUNT".utf8), decimalBytes(entry.deliveryCount),
         Array("FORCE".utf8), Array("JUSTID".utf8), Array("LASTID".utf8), group.lastID.bytes]
    }

    /// The XGROUP SETID that replays a group's position (streamPropagateGroupID).
    static func setIDRecord(key: [UInt8], group: StreamGroup) -> [[UInt8]] {
        [Array("XGROUP".utf8), Array("SETID".utf8), key, group.name, group.lastID.bytes, Array("ENTRIESREAD".utf8),
         decimalBytes(group.entriesRead)]
    }

    /// One stream's part of an XREADGROUP: new entries (`history` false) or the consumer's
    /// pending entries after `after`; updates the group and returns the records to log.
    static func serveGroup(_ stream: inout StreamValue, groupIndex: Int, consumer: [UInt8], after: StreamID,
                           count: Int, noAck: Bool, history: Bool, now: Int64, key: [UInt8],
                           into output: inout OutputBuffer) -> [[[UInt8]]] {
        var records: [[[UInt8]]] = []
        if history {
            let group = stream.groups[groupIndex]
            let (consumerIndex, _) = group.consumerIndex(consumer)
            let held = group.consumers[consumerIndex].pending
            var start = sortedSearch(held, after).index
            var served: [StreamID] = []
            while start < held.count && (count == 0 || served.count < count) {
                served.append(held[start])
                start += 1
            }
            output.writeArrayHeader(served.count)
            for id in served {
                if let fields = stream.entry(id) {
                    writeEntry(id, fields, into: &output)
                    let (pending, found) = stream.groups[groupIndex].pendingIndex(id)
                    if found {
                        let current = stream.groups[groupIndex].pendingEntries[pending]
                        stream.groups[groupIndex].redeliver(at: pending, time: now, count: current.deliveryCount + 1)
                    }
                } else {
                    output.writeArrayHeader(2)
                    writeID(id, into: &output)
                    output.writeNullArray()
                }
            }
            return records
        }
        var entries: [(StreamID, [ListElement])] = []
        stream.forEach(from: after, through: .max) { id, fields in
            entries.append((id, fields))
            return count == 0 || entries.count < count
        }
        output.writeArrayHeader(entries.count)
        var advanced = false
        for (id, fields) in entries {
            if id > stream.groups[groupIndex].lastID {
                let group = stream.groups[groupIndex]
                if group.entriesRead != -1 && !stream.rangeHasTombstones(id, nil) {
                    stream.groups[groupIndex].entriesRead += 1
                } else if stream.entriesAdded != 0 {
                    stream.groups[groupIndex].entriesRead = stream.estimateDistance(to: id)
                }
                stream.groups[groupIndex].lastID = id
                if noAck { advanced = true }
            }
            writeEntry(id, fields, into: &output)
            if !noAck {
                stream.groups[groupIndex].assign(id, to: consumer, deliveryTime: now, deliveryCount: 1)
                let group = stream.groups[groupIndex]
                if let entry = group.pending(id) {
                    records.append(claimRecord(key: key, group: group, id: id.bytes, entry: entry))
                }
            }
        }
        if advanced { records.append(setIDRecord(key: key, group: stream.groups[groupIndex])) }
        return records
    }

    static func xread(_ context: inout CommandContext, group isGroupRead: Bool) {
        let arguments = context.arguments
        var timeout: Int64 = -1
        var count: Int64 = 0
        var streamsIndex = 0
        var streamCount = 0
        var noAck = false
        var groupName: [UInt8]?
        var consumerName: [UInt8] = []
        var index = 1
        while index < arguments.count {
            let more = arguments.count - index - 1
            if arguments.matches(index, "block") && more > 0 {
                if context.session.isScriptCall {
                    // A script may not wait (t_stream.c): refused, naming the command as called.
                    context.output.writeError(
                        Array("ERR ".utf8) + arguments.copy(0)
                            + Array(" command is not allowed with BLOCK option from scripts".utf8))
                    return
                }
                index += 1
                guard let value = parseRedisInteger(arguments[index]) else {
                    context.output.writeError("ERR timeout is not an integer or out of range")
                    return
                }
                if value < 0 {
                    context.output.writeError(RedisError.timeoutNegative)
                    return
                }
                timeout = value
            } else if arguments.matches(index, "count") && more > 0 {
                index += 1
                guard let value = context.integerArgument(index) else { return }
                count = max(value, 0)
            } else if arguments.matches(index, "streams") && more > 0 {
                streamsIndex = index + 1
                streamCount = arguments.count - streamsIndex
                if streamCount % 2 != 0 {
                    context.output.writeError("""
                        ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.
                        """)
                    return
                }
                streamCount /= 2
                break
            } else if arguments.matches(index, "group") && more >= 2 {
                if !isGroupRead {
                    context.output.writeError(
                        "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")
                    return
                }
                groupName = arguments.copy(index + 1)
                consumerName = arguments.copy(index + 2)
                index += 2
            } else if arguments.matches(index, "noack") {
                if !isGroupRead {
                    context.output.writeError(
                        "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.")
                    return
                }
                noAck = true
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 1
        }
        if streamsIndex == 0 {
            context.output.writeError(RedisError.syntax)
            return
        }
        if isGroupRead && groupName == nil {
            context.output.writeError("ERR Missing GROUP option for XREADGROUP")
            return
        }
        context.lockShards(context.shardMask(keysFrom: streamsIndex, through: streamsIndex + streamCount - 1))
        defer { if isGroupRead { context.preventPropagation() } }
        // Validation pass (types, groups, ids), as Redis's first loop.
        var ids: [StreamID] = []
        for position in 0..<streamCount {
            let keyBytes = arguments[streamsIndex + position]
            let key = Key(keyBytes)
            let shard = context.keyspace.shard(for: key)
            var stream: StreamValue?
            if let entry = shard.lookupRead(context.database, key, now: context.now) {
                guard case .stream(let value) = entry.value else {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
                stream = value
            }
            if let groupName {
                guard let stream, stream.groupIndex(groupName).found else {
                    noGroupError([Array("NOGROUP No such key '".utf8), Array(keyBytes),
                                  Array("' or consumer group '".utf8), groupName,
                                  Array("' in XREADGROUP with GROUP option".utf8)], into: &context.output)
                    return
                }
            }
            let idBytes = arguments[streamsIndex + streamCount + position]
            if idBytes.elementsEqual("$".utf8) {
                if isGroupRead {
                    context.output.writeError("""
                        ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of \
                        this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would \
                        just return an empty result set.
                        """)
                    return
                }
                ids.append(stream?.lastID ?? .zero)
                continue
            }
            if idBytes.elementsEqual(">".utf8) {
                if !isGroupRead {
                    context.output.writeError("""
                        ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> \
                        <consumer> option.
                        """)
                    return
                }
                ids.append(.max)
                continue
            }
            guard let id = strictID(&context, streamsIndex + streamCount + position) else { return }
            ids.append(id)
        }
        // Serving pass.
        var replies = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        var served = 0
        var records: [[[UInt8]]] = []
        var changes: Int64 = 0
        var consumerCreatedIn: [Key] = []
        let now = context.now
        for position in 0..<streamCount {
            let keyBytes = arguments.copy(streamsIndex + position)
            let key = Key(keyBytes)
            let shard = context.keyspace.shard(for: key)
            let after = ids[position]
            do {
                let found: Void? = try shard.withStream(context.database, key, now: now, create: false) {
                    stream, changed in
                    var from = after
                    var history = false
                    var groupIndex = 0
                    if let groupName {
                        groupIndex = stream.groupIndex(groupName).index
                        if after != .max {
                            history = true
                        } else {
                            guard stream.length > 0, let last = stream.lastLiveID,
                                  last > stream.groups[groupIndex].lastID else { return }
                            from = stream.groups[groupIndex].lastID
                        }
                    } else {
                        guard stream.length > 0, let last = stream.lastLiveID, last > after else { return }
                    }
                    served += 1
                    let start = from.successor ?? from
                    if replies.protocolVersion != .resp3 { replies.writeArrayHeader(2) }
                    replies.writeBulkString(keyBytes)
                    guard let groupName else {
                        writeRange(stream, start, .max, count: Int(clamping: count), reverse: false, into: &replies)
                        return
                    }
                    let (consumerIndex, created) = stream.groups[groupIndex].ensureConsumer(consumerName, now: now)
                    if !created { stream.groups[groupIndex].touchConsumer(consumerIndex, now: now) }
                    if created { consumerCreatedIn.append(key) }
                    if created && noAck {
                        records.append([Array("XGROUP".utf8), Array("CREATECONSUMER".utf8), keyBytes, groupName,
                                        consumerName])
                    }
                    records += serveGroup(&stream, groupIndex: groupIndex, consumer: consumerName, after: start,
                                          count: Int(clamping: count), noAck: noAck, history: history, now: now,
                                          key: keyBytes, into: &replies)
                    changed = true
                    changes += 1
                }
                // xreadCommand looks every key up again to serve it: a missing one misses twice.
                if found == nil { _ = shard.lookupRead(context.database, key, now: now) }
            } catch {
                context.output.writeKeyspaceError(error)
                return
            }
        }
        if served > 0 {
            if context.output.protocolVersion == .resp3 {
                context.output.writeMapHeader(served)
            } else {
                context.output.writeArrayHeader(served)
            }
            context.output.writeBytes(replies.storage)
            if changes > 0 { context.addChanges(changes) }
            for record in records { context.propagate(record) }
            for key in consumerCreatedIn { context.notify(.stream, "xgroup-createconsumer", key) }
            return
        }
        if timeout != -1 && !ListCommands.mayNotBlock(context) {
            let deadline = timeout == 0 ? 0 : context.now &+ timeout
            let operation = BlockedOperation.streamRead(
                ids: ids, count: count == 0 ? 1000 : Int(clamping: count), group: groupName, consumer: consumerName,
                noAck: noAck)
            ListCommands.block(&context, keys: (0..<streamCount).map { arguments.copy(streamsIndex + $0) }, operation,
                               deadline: deadline)
            return
        }
        context.output.writeNullArray()
    }

    // MARK: XGROUP

    static func xgroup(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "help") {
            context.writeHelp("XGROUP", [
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ])
            return
        }
        let isCreate = arguments.matches(1, "create")
        let isSetID = arguments.matches(1, "setid")
        var makeStream = false
        var entriesRead: Int64 = -1
        var index = 5
        while index < arguments.count {
            if isCreate && arguments.matches(index, "mkstream") {
                makeStream = true
                index += 1
            } else if (isCreate || isSetID) && arguments.matches(index, "entriesread") && index + 1 < arguments.count {
                guard let value = context.integerArgument(index + 1) else { return }
                if value < 0 && value != -1 {
                    context.output.writeError("ERR value for ENTRIESREAD must be positive or -1")
                    return
                }
                entriesRead = value
                index += 2
            } else {
                subcommandSyntaxError(&context)
                return
            }
        }
        let key = context.key(2)
        let keyBytes = arguments.copy(2)
        let groupName = arguments.copy(3)
        context.withLockedShard(for: key) { shard, context in
            var stream: StreamValue?
            if let entry = shard.lookup(context.database, key, now: context.now) {
                guard case .stream(let value) = entry.value else {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
                stream = value
            }
            var groupFound = false
            if !makeStream {
                guard let stream else {
                    context.output.writeError(groupNeedsKey)
                    return
                }
                groupFound = stream.groupIndex(groupName).found
                let needsGroup = isSetID || arguments.matches(1, "createconsumer")
                    || arguments.matches(1, "delconsumer")
                if !groupFound && needsGroup {
                    noGroupError([Array("NOGROUP No such consumer group '".utf8), groupName,
                                  Array("' for key name '".utf8), keyBytes, [UInt8(ascii: "'")]], into: &context.output)
                    return
                }
            }
            let now = context.now
            do throws(KeyspaceError) {
                if isCreate && arguments.count >= 5 && arguments.count <= 8 {
                    var id: StreamID
                    if arguments[4].elementsEqual("$".utf8) {
                        id = stream?.lastID ?? .zero
                    } else {
                        guard let parsed = strictID(&context, 4) else { return }
                        id = parsed
                    }
                    let created = try shard.withStream(context.database, key, now: now, create: true) {
                        stream, changed in
                        let (position, found) = stream.groupIndex(groupName)
                        if found { return false }
                        stream.groups.insert(StreamGroup(name: groupName, lastID: id, entriesRead: entriesRead),
                                             at: position)
                        changed = true
                        return true
                    } ?? false
                    if created {
                        context.output.writeOK()
                        context.addChanges(1)
                        context.notify(.stream, "xgroup-create", key)
                    } else {
                        context.output.writeError("BUSYGROUP Consumer Group name already exists")
                    }
                } else if isSetID && (arguments.count == 5 || arguments.count == 7) {
                    var id: StreamID
                    if arguments[4].elementsEqual("$".utf8) {
                        id = stream?.lastID ?? .zero
                    } else {
                        guard let parsed = parseID(arguments[4], strict: false, missingSequence: 0) else {
                            context.output.writeError(invalidID)
                            return
                        }
                        id = parsed.id
                    }
                    _ = try shard.withStream(context.database, key, now: now, create: false) { stream, changed in
                        let (position, _) = stream.groupIndex(groupName)
                        stream.groups[position].lastID = id
                        stream.groups[position].entriesRead = entriesRead
                        changed = true
                    }
                    context.output.writeOK()
                    context.addChanges(1)
                    context.notify(.stream, "xgroup-setid", key)
                } else if arguments.matches(1, "destroy") && arguments.count == 4 {
                    guard groupFound else {
                        context.output.writeInteger(0)
                        return
                    }
                    _ = try shard.withStream(context.database, key, now: now, create: false) { stream, changed in
                        stream.groups.remove(at: stream.groupIndex(groupName).index)
                        changed = true
                    }
                    context.output.writeInteger(1)
                    context.addChanges(1)
                    context.notify(.stream, "xgroup-destroy", key)
                } else if arguments.matches(1, "createconsumer") && arguments.count == 5 {
                    let consumer = arguments.copy(4)
                    let created = try shard.withStream(context.database, key, now: now, create: false) {
                        stream, changed in
                        let position = stream.groupIndex(groupName).index
                        let created = stream.groups[position].ensureConsumer(consumer, now: now).created
                        if created { changed = true }
                        return created
                    } ?? false
                    context.output.writeInteger(created ? 1 : 0)
                    if created {
                        context.addChanges(1)
                        context.notify(.stream, "xgroup-createconsumer", key)
                    }
                } else if arguments.matches(1, "delconsumer") && arguments.count == 5 {
                    let consumer = arguments.copy(4)
                    let removed = try shard.withStream(context.database, key, now: now, create: false) {
                        stream, changed -> Int? in
                        let position = stream.groupIndex(groupName).index
                        let (consumerIndex, found) = stream.groups[position].consumerIndex(consumer)
                        guard found else { return nil }
                        changed = true
                        return stream.groups[position].removeConsumer(consumerIndex)
                    } ?? nil
                    context.output.writeInteger(removed ?? 0)
                    if removed != nil {
                        context.addChanges(1)
                        context.notify(.stream, "xgroup-delconsumer", key)
                    }
                } else {
                    subcommandSyntaxError(&context)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    // MARK: XACK XPENDING

    static func xack(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let groupName = context.arguments.copy(2)
            // Scoped: a held copy of the stream would make the acknowledgement below copy it.
            do {
                guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                    context.output.writeInteger(0)
                    return
                }
                guard case .stream(let stream) = entry.value else {
                    context.output.writeError(RedisError.wrongType)
                    return
                }
                guard stream.groupIndex(groupName).found else {
                    context.output.writeInteger(0)
                    return
                }
            }
            var ids: [StreamID] = []
            for index in 3..<context.arguments.count {
                guard let id = strictID(&context, index) else { return }
                ids.append(id)
            }
            do throws(KeyspaceError) {
                let acknowledged = try shard.withStream(context.database, key, now: context.now, create: false) {
                    stream, changed in
                    let position = stream.groupIndex(groupName).index
                    var acknowledged = 0
                    for id in ids where stream.groups[position].acknowledge(id) { acknowledged += 1 }
                    if acknowledged > 0 { changed = true }
                    return acknowledged
                } ?? 0
                context.output.writeInteger(acknowledged)
                if acknowledged > 0 { context.addChanges(Int64(acknowledged)) }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func xpending(_ context: inout CommandContext) {
        let arguments = context.arguments
        let summary = arguments.count == 3
        if arguments.count != 3 && (arguments.count < 6 || arguments.count > 9) {
            context.output.writeError(RedisError.syntax)
            return
        }
        var start = StreamID.zero
        var end = StreamID.max
        var count: Int64 = 0
        var minimumIdle: Int64 = 0
        var consumerName: [UInt8]?
        if arguments.count >= 6 {
            var startIndex = 3
            if arguments.matches(3, "idle") {
                guard let value = context.integerArgument(4) else { return }
                minimumIdle = value
                if arguments.count < 8 {
                    context.output.writeError(RedisError.syntax)
                    return
                }
                startIndex += 2
            }
            guard let value = context.integerArgument(startIndex + 2) else { return }
            count = max(value, 0)
            guard let first = intervalID(&context, startIndex, start: true),
                  let last = intervalID(&context, startIndex + 1, start: false) else { return }
            start = first
            end = last
            if startIndex + 3 < arguments.count { consumerName = arguments.copy(startIndex + 3) }
        }
        let key = context.key(1)
        let groupName = arguments.copy(2)
        guard let found = readStream(&context, key) else { return }
        guard let stream = found, stream.groupIndex(groupName).found else {
            noGroupError([Array("NOGROUP No such key '".utf8), arguments.copy(1), Array("' or consumer group '".utf8),
                          groupName, [UInt8(ascii: "'")]], into: &context.output)
            return
        }
        let group = stream.groups[stream.groupIndex(groupName).index]
        if summary {
            context.output.writeArrayHeader(4)
            context.output.writeInteger(group.pendingIDs.count)
            guard let first = group.pendingIDs.first, let last = group.pendingIDs.last else {
                context.output.writeNull()
                context.output.writeNull()
                context.output.writeNullArray()
                return
            }
            writeID(first, into: &context.output)
            writeID(last, into: &context.output)
            let holders = group.consumers.filter { !$0.pending.isEmpty }
            context.output.writeArrayHeader(holders.count)
            for consumer in holders {
                context.output.writeArrayHeader(2)
                context.output.writeBulkString(consumer.name)
                context.output.writeBulkString(decimalBytes(Int64(consumer.pending.count)))
            }
            return
        }
        var ids = group.pendingIDs
        if let consumerName {
            let (consumerIndex, exists) = group.consumerIndex(consumerName)
            guard exists else {
                context.output.writeArrayHeader(0)
                return
            }
            ids = group.consumers[consumerIndex].pending
        }
        let now = context.now
        var rows: [(StreamID, StreamPendingEntry)] = []
        var position = sortedSearch(ids, start).index
        while count > 0 && position < ids.count && ids[position] <= end {
            let id = ids[position]
            position += 1
            guard let entry = group.pending(id) else { continue }
            if minimumIdle != 0 && now - entry.deliveryTime < minimumIdle { continue }
            rows.append((id, entry))
            count -= 1
        }
        context.output.writeArrayHeader(rows.count)
        for (id, entry) in rows {
            context.output.writeArrayHeader(4)
            writeID(id, into: &context.output)
            context.output.writeBulkString(entry.consumer)
            context.output.writeInteger(max(now - entry.deliveryTime, 0))
            context.output.writeInteger(entry.deliveryCount)
        }
    }

    // MARK: XCLAIM XAUTOCLAIM

    static func xclaim(_ context: inout CommandContext) {
        let arguments = context.arguments
        let key = context.key(1)
        let keyBytes = arguments.copy(1)
        let groupName = arguments.copy(2)
        guard let found = readStream(&context, key) else { return }
        guard let stream = found, stream.groupIndex(groupName).found else {
            noGroupError([Array("NOGROUP No such key '".utf8), keyBytes, Array("' or consumer group '".utf8),
                          groupName, [UInt8(ascii: "'")]], into: &context.output)
            return
        }
        guard var minimumIdle = context.integerArgument(4, in: Int64.min...Int64.max,
                                                        message: "ERR Invalid min-idle-time argument for XCLAIM")
        else { return }
        if minimumIdle < 0 { minimumIdle = 0 }
        var ids: [(StreamID, Int)] = []
        var index = 5
        while index < arguments.count, let parsed = parseID(arguments[index], strict: true, missingSequence: 0) {
            ids.append((parsed.id, index))
            index += 1
        }
        let now = context.now
        var retryCount: Int64 = -1
        var deliveryTime: Int64 = -1
        var force = false
        var justID = false
        var lastID = StreamID.zero
        while index < arguments.count {
            let more = arguments.count - 1 - index
            if arguments.matches(index, "force") {
                force = true
            } else if arguments.matches(index, "justid") {
                justID = true
            } else if arguments.matches(index, "idle") && more > 0 {
                index += 1
                guard let value = context.integerArgument(index, in: Int64.min...Int64.max,
                                                          message: "ERR Invalid IDLE option argument for XCLAIM")
                else { return }
                deliveryTime = now &- value
            } else if arguments.matches(index, "time") && more > 0 {
                index += 1
                guard let value = context.integerArgument(index, in: Int64.min...Int64.max,
                                                          message: "ERR Invalid TIME option argument for XCLAIM")
                else { return }
                deliveryTime = value
            } else if arguments.matches(index, "retrycount") && more > 0 {
                index += 1
                guard let value = context.integerArgument(
                    index, in: Int64.min...Int64.max, message: "ERR Invalid RETRYCOUNT option argument for XCLAIM")
                else { return }
                retryCount = value
            } else if arguments.matches(index, "lastid") && more > 0 {
                index += 1
                guard let value = strictID(&context, index) else { return }
                lastID = value
            } else {
                var message = Array("ERR Unrecognized XCLAIM option '".utf8)
                message.append(contentsOf: arguments[index].prefix { $0 != 0 })
                message.append(UInt8(ascii: "'"))
                context.output.writeError(message)
                return
            }
            index += 1
        }
        if deliveryTime != -1 {
            if deliveryTime < 0 || deliveryTime > now { deliveryTime = now }
        } else {
            deliveryTime = now
        }
        let consumerName = arguments.copy(3)
        var records: [[[UInt8]]] = []
        var changes: Int64 = 0
        let shard = context.keyspace.shard(for: key)
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        var consumerCreated = false
        _ = try? shard.withStream(context.database, key, now: now, create: false) { stream, changed in
                let groupIndex = stream.groupIndex(groupName).index
                var propagateLastID = false
                if lastID > stream.groups[groupIndex].lastID {
                    stream.groups[groupIndex].lastID = lastID
                    propagateLastID = true
                    changed = true
                }
                var consumerReady = false
                var replies = OutputBuffer(initialCapacity: 0, protocolVersion: output.protocolVersion)
                var claimed = 0
                for (id, argumentIndex) in ids {
                    var (pendingIndex, pendingFound) = stream.groups[groupIndex].pendingIndex(id)
                    guard let fields = stream.entry(id) else {
                        if pendingFound {
                            let group = stream.groups[groupIndex]
                            records.append(claimRecord(key: keyBytes, group: group, id: arguments.copy(argumentIndex),
                                                       entry: group.pendingEntries[pendingIndex]))
                            propagateLastID = false
                            changes += 1
                            stream.groups[groupIndex].acknowledge(id)
                            changed = true
                        }
                        continue
                    }
                    var previousCount: Int64 = 1
                    var isForced = false
                    if force && !pendingFound {
                        isForced = true
                        pendingFound = true
                    } else if pendingFound {
                        let entry = stream.groups[groupIndex].pendingEntries[pendingIndex]
                        previousCount = entry.deliveryCount
                        if minimumIdle != 0 && now - entry.deliveryTime < minimumIdle { continue }
                    }
                    guard pendingFound else { continue }
                    if !consumerReady {
                        let (consumerIndex, created) = stream.groups[groupIndex].ensureConsumer(consumerName, now: now)
                        if !created { stream.groups[groupIndex].touchConsumer(consumerIndex, now: now) }
                        consumerCreated = created
                        consumerReady = true
                    }
                    var newCount = previousCount
                    if retryCount >= 0 { newCount = retryCount } else if !justID { newCount += 1 }
                    stream.groups[groupIndex].assign(id, to: consumerName, deliveryTime: deliveryTime,
                                                     deliveryCount: newCount)
                    _ = isForced
                    pendingIndex = stream.groups[groupIndex].pendingIndex(id).index
                    if justID { writeID(id, into: &replies) } else { writeEntry(id, fields, into: &replies) }
                    claimed += 1
                    let group = stream.groups[groupIndex]
                    records.append(claimRecord(key: keyBytes, group: group, id: arguments.copy(argumentIndex),
                                               entry: group.pendingEntries[pendingIndex]))
                    propagateLastID = false
                    changes += 1
                    changed = true
                }
                if propagateLastID {
                    records.append(setIDRecord(key: keyBytes, group: stream.groups[groupIndex]))
                    changes += 1
                }
                output.writeArrayHeader(claimed)
                output.writeBytes(replies.storage)
        }
        context.output.writeBytes(output.storage)
        if changes > 0 { context.addChanges(changes) }
        for record in records { context.propagate(record) }
        context.preventPropagation()
        if consumerCreated { context.notify(.stream, "xgroup-createconsumer", key) }
    }

    static func xautoclaim(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard var minimumIdle = context.integerArgument(4, in: Int64.min...Int64.max,
                                                        message: "ERR Invalid min-idle-time argument for XAUTOCLAIM")
        else { return }
        if minimumIdle < 0 { minimumIdle = 0 }
        guard let start = intervalID(&context, 5, start: true) else { return }
        var count = 100
        var justID = false
        var index = 6
        while index < arguments.count {
            let more = arguments.count - 1 - index
            if arguments.matches(index, "count") && more > 0 {
                guard let value = context.integerArgument(index + 1, in: 1...(Int64.max / 16),
                                                          message: "ERR COUNT must be > 0") else { return }
                count = Int(value)
                index += 1
            } else if arguments.matches(index, "justid") {
                justID = true
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 1
        }
        let key = context.key(1)
        let keyBytes = arguments.copy(1)
        let groupName = arguments.copy(2)
        guard let found = readStream(&context, key) else { return }
        guard let stream = found, stream.groupIndex(groupName).found else {
            noGroupError([Array("NOGROUP No such key '".utf8), keyBytes, Array("' or consumer group '".utf8),
                          groupName, [UInt8(ascii: "'")]], into: &context.output)
            return
        }
        _ = stream
        let consumerName = arguments.copy(3)
        let now = context.now
        var records: [[[UInt8]]] = []
        var changes: Int64 = 0
        let shard = context.keyspace.shard(for: key)
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        var consumerCreated = false
        _ = try? shard.withStream(context.database, key, now: now, create: false) { stream, changed in
                let groupIndex = stream.groupIndex(groupName).index
                var attempts = count * 10
                var left = count
                var position = stream.groups[groupIndex].pendingIndex(start).index
                var replies = OutputBuffer(initialCapacity: 0, protocolVersion: output.protocolVersion)
                var claimed = 0
                var deleted: [StreamID] = []
                var consumerReady = false
                while attempts > 0 && left > 0 && position < stream.groups[groupIndex].pendingIDs.count {
                    attempts -= 1
                    let id = stream.groups[groupIndex].pendingIDs[position]
                    let entry = stream.groups[groupIndex].pendingEntries[position]
                    guard let fields = stream.entry(id) else {
                        records.append(claimRecord(key: keyBytes, group: stream.groups[groupIndex], id: id.bytes,
                                                   entry: entry))
                        changes += 1
                        stream.groups[groupIndex].acknowledge(id)
                        changed = true
                        deleted.append(id)
                        left -= 1
                        continue
                    }
                    position += 1
                    if minimumIdle != 0 && now - entry.deliveryTime < minimumIdle { continue }
                    if !consumerReady {
                        let (consumerIndex, created) = stream.groups[groupIndex].ensureConsumer(consumerName, now: now)
                        if !created { stream.groups[groupIndex].touchConsumer(consumerIndex, now: now) }
                        consumerCreated = created
                        consumerReady = true
                    }
                    let deliveries = justID ? entry.deliveryCount : entry.deliveryCount + 1
                    stream.groups[groupIndex].assign(id, to: consumerName, deliveryTime: now, deliveryCount: deliveries)
                    if justID { writeID(id, into: &replies) } else { writeEntry(id, fields, into: &replies) }
                    claimed += 1
                    left -= 1
                    let group = stream.groups[groupIndex]
                    if let current = group.pending(id) {
                        records.append(claimRecord(key: keyBytes, group: group, id: id.bytes, entry: current))
                    }
                    changes += 1
                    changed = true
                }
                let pending = stream.groups[groupIndex].pendingIDs
                output.writeArrayHeader(3)
                writeID(position < pending.count ? pending[position] : .zero, into: &output)
                output.writeArrayHeader(claimed)
                output.writeBytes(replies.storage)
                output.writeArrayHeader(deleted.count)
                for id in deleted { writeID(id, into: &output) }
        }
        context.output.writeBytes(output.storage)
        if changes > 0 { context.addChanges(changes) }
        for record in records { context.propagate(record) }
        context.preventPropagation()
        if consumerCreated { context.notify(.stream, "xgroup-createconsumer", key) }
    }

    // MARK: XINFO

    static func xinfo(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "help") {
            context.writeHelp("XINFO", [
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ])
            return
        }
        let key = context.key(2)
        guard let found = readStream(&context, key) else { return }
        guard let stream = found else {
            context.output.writeError(RedisError.noSuchKey)
            return
        }
        let now = context.now
        if arguments.matches(1, "consumers") {
            let groupName = arguments.copy(3)
            let (groupIndex, exists) = stream.groupIndex(groupName)
            guard exists else {
                noGroupError([Array("NOGROUP No such consumer group '".utf8), groupName,
                              Array("' for key name '".utf8), arguments.copy(2), [UInt8(ascii: "'")]],
                             into: &context.output)
                return
            }
            let group = stream.groups[groupIndex]
            context.output.writeArrayHeader(group.consumers.count)
            for consumer in group.consumers {
                context.output.writeMapHeader(3)
                context.output.writeBulkString("name".utf8)
                context.output.writeBulkString(consumer.name)
                context.output.writeBulkString("pending".utf8)
                context.output.writeInteger(consumer.pending.count)
                context.output.writeBulkString("idle".utf8)
                context.output.writeInteger(max(now - consumer.seenTime, 0))
            }
        } else if arguments.matches(1, "groups") {
            context.output.writeArrayHeader(stream.groups.count)
            for group in stream.groups {
                context.output.writeMapHeader(6)
                context.output.writeBulkString("name".utf8)
                context.output.writeBulkString(group.name)
                context.output.writeBulkString("consumers".utf8)
                context.output.writeInteger(group.consumers.count)
                context.output.writeBulkString("pending".utf8)
                context.output.writeInteger(group.pendingIDs.count)
                context.output.writeBulkString("last-delivered-id".utf8)
                writeID(group.lastID, into: &context.output)
                writeGroupCounters(stream, group, into: &context.output)
            }
        } else {
            xinfoStream(&context, stream)
        }
    }

    /// entries-read and lag of a group.
    static func writeGroupCounters(_ stream: StreamValue, _ group: StreamGroup, into output: inout OutputBuffer) {
        output.writeBulkString("entries-read".utf8)
        if group.entriesRead != -1 { output.writeInteger(group.entriesRead) } else { output.writeNull() }
        output.writeBulkString("lag".utf8)
        if let lag = stream.lag(of: group) { output.writeInteger(lag) } else { output.writeNull() }
    }

    static func xinfoStream(_ context: inout CommandContext, _ stream: StreamValue) {
        let arguments = context.arguments
        let options = arguments.count - 3
        var full = false
        var count: Int64 = 10
        if options > 0 {
            if options != 1 && options != 3 || !arguments.matches(3, "full") {
                subcommandSyntaxError(&context)
                return
            }
            full = true
            if options == 3 {
                if !arguments.matches(4, "count") {
                    subcommandSyntaxError(&context)
                    return
                }
                guard let value = context.integerArgument(5) else { return }
                count = value < 0 ? 10 : value
            }
        }
        // Moved out of the context, not copied (a copy would duplicate pending replies on write).
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        swap(&output, &context.output)
        defer { swap(&output, &context.output) }
        output.writeMapHeader(full ? 9 : 10)
        output.writeBulkString("length".utf8)
        output.writeInteger(stream.length)
        output.writeBulkString("radix-tree-keys".utf8)
        output.writeInteger(stream.nodes.count)
        output.writeBulkString("radix-tree-nodes".utf8)
        output.writeInteger(stream.radixTreeNodeCount)
        output.writeBulkString("last-generated-id".utf8)
        writeID(stream.lastID, into: &output)
        output.writeBulkString("max-deleted-entry-id".utf8)
        writeID(stream.maxDeletedID, into: &output)
        output.writeBulkString("entries-added".utf8)
        output.writeInteger(stream.entriesAdded)
        output.writeBulkString("recorded-first-entry-id".utf8)
        writeID(stream.firstID, into: &output)
        if !full {
            output.writeBulkString("groups".utf8)
            output.writeInteger(stream.groups.count)
            for (name, reverse) in [("first-entry", false), ("last-entry", true)] {
                output.writeBulkString(name.utf8)
                var written = false
                stream.forEach(from: .zero, through: .max, reverse: reverse) { id, fields in
                    writeEntry(id, fields, into: &output)
                    written = true
                    return false
                }
                if !written { output.writeNull() }
            }
            return
        }
        let limit = Int(clamping: count)
        output.writeBulkString("entries".utf8)
        writeRange(stream, .zero, .max, count: limit, reverse: false, into: &output)
        output.writeBulkString("groups".utf8)
        output.writeArrayHeader(stream.groups.count)
        for group in stream.groups {
            output.writeMapHeader(7)
            output.writeBulkString("name".utf8)
            output.writeBulkString(group.name)
            output.writeBulkString("last-delivered-id".utf8)
            writeID(group.lastID, into: &output)
            writeGroupCounters(stream, group, into: &output)
            output.writeBulkString("pel-count".utf8)
            output.writeInteger(group.pendingIDs.count)
            output.writeBulkString("pending".utf8)
            let shown = limit == 0 ? group.pendingIDs.count : min(limit, group.pendingIDs.count)
            output.writeArrayHeader(shown)
            for position in 0..<shown {
                let entry = group.pendingEntries[position]
                output.writeArrayHeader(4)
                writeID(group.pendingIDs[position], into: &output)
                output.writeBulkString(entry.consumer)
                output.writeInteger(entry.deliveryTime)
                output.writeInteger(entry.deliveryCount)
            }
            output.writeBulkString("consumers".utf8)
            output.writeArrayHeader(group.consumers.count)
            for consumer in group.consumers {
                output.writeMapHeader(4)
                output.writeBulkString("name".utf8)
                output.writeBulkString(consumer.name)
                output.writeBulkString("seen-time".utf8)
                output.writeInteger(consumer.seenTime)
                output.writeBulkString("pel-count".utf8)
                output.writeInteger(consumer.pending.count)
                output.writeBulkString("pending".utf8)
                let held = limit == 0 ? consumer.pending.count : min(limit, consumer.pending.count)
                output.writeArrayHeader(held)
                for id in consumer.pending.prefix(held) {
                    let entry = group.pending(id)
                    output.writeArrayHeader(3)
                    writeID(id, into: &output)
                    output.writeInteger(entry?.deliveryTime ?? 0)
                    output.writeInteger(entry?.deliveryCount ?? 0)
                }
            }
        }
    }

    // MARK: Blocking

    /// True when a parked XREAD/XREADGROUP on `key` can be served (blocked.c
    /// serveClientsBlockedOnStreamKey): the stream's last id passed the waiter's, or its group
    /// is gone (served with an error).
    static func isReady(_ stream: StreamValue, _ waiter: BlockedWaiter, key: Key) -> Bool {
        guard case .streamRead(let ids, _, let group, _, _) = waiter.operation,
              let position = waiter.keys.firstIndex(where: { Key($0) == key }) else { return false }
        if let group {
            let (index, found) = stream.groupIndex(group)
            guard found else { return true }
            return stream.hasEntry(after: stream.groups[index].lastID)
        }
        // Redis checks last_id when XADD signals the key; Tally polls after every command, so it
        // asks for a live entry past the id instead (an XDEL'd tail must not wake the reader).
        return stream.hasEntry(after: ids[position])
    }

    /// Serves one parked XREAD/XREADGROUP from the stream at `key`: the reply, the records to
    /// log (XCLAIM/XGROUP as for a direct XREADGROUP) and the changes made.
    static func serveBlocked(_ waiter: BlockedWaiter, key: Key, shard: Shard, now: Int64,
                             events: KeyspaceNotifier)
        -> (reply: [UInt8], records: [[[UInt8]]], changes: Int64)
    {
        var output = OutputBuffer(initialCapacity: 64, protocolVersion: waiter.protocolVersion)
        guard case .streamRead(let ids, let count, let groupName, let consumer, let noAck) = waiter.operation,
              let position = waiter.keys.firstIndex(where: { Key($0) == key }) else { return ([], [], 0) }
        let keyBytes = key.bytes
        var records: [[[UInt8]]] = []
        var changes: Int64 = 0
        guard case .stream? = shard.lookup(waiter.database, key, now: now)?.value else {
            // blocked.c unblockDeletedStreamReadgroupClients.
            output.writeError("UNBLOCKED the stream key no longer exists")
            return (Array(output.storage), [], 0)
        }
        _ = try? shard.withStream(waiter.database, key, now: now, create: false) { stream, changed in
            var after = ids[position]
            var groupIndex = 0
            if let groupName {
                let (index, found) = stream.groupIndex(groupName)
                guard found else {
                    output.writeError("NOGROUP the consumer group this client was blocked on no longer exists")
                    return
                }
                groupIndex = index
                after = stream.groups[index].lastID
            }
            let start = after.successor ?? after
            if output.protocolVersion == .resp3 {
                output.writeMapHeader(1)
            } else {
                output.writeArrayHeader(1)
                output.writeArrayHeader(2)
            }
            output.writeBulkString(keyBytes)
            guard let groupName else {
                writeRange(stream, start, .max, count: count, reverse: false, into: &output)
                return
            }
            let (consumerIndex, created) = stream.groups[groupIndex].ensureConsumer(consumer, now: now)
            if !created { stream.groups[groupIndex].touchConsumer(consumerIndex, now: now) }
            if created {
                events.fire(.stream, "xgroup-createconsumer", key: keyBytes, database: waiter.database)
            }
            if created && noAck {
                records.append([Array("XGROUP".utf8), Array("CREATECONSUMER".utf8), keyBytes, groupName, consumer])
            }
            records += serveGroup(&stream, groupIndex: groupIndex, consumer: consumer, after: start, count: count,
                                  noAck: noAck, history: false, now: now, key: keyBytes, into: &output)
            changed = true
            changes += 1
        }
        return (Array(output.storage), records, changes)
    }
}
