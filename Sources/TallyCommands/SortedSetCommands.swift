// SortedSetCommands: ZADD, ZRANGE and the rest of the sorted-set family (t_zset.c), with BZPOP* via Blocking.
import TallyKeyspace
import TallyProtocol

/// The sorted-set family. Scores are doubles replied with `%.17g` (addReplyDouble): a bulk
/// string in RESP2, a `,` double in RESP3.
enum SortedSetCommands {
    static let nanError: StaticString = "ERR resulting score is not a number (NaN)"
    static let notFloatRange: StaticString = "ERR min or max is not a float"
    static let notLexRange: StaticString = "ERR min or max not valid string range item"

    static var specs: [CommandSpec] {
        [
            command("zadd", -4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @sortedset @fast") { context in
                zadd(&context, increment: false)
            },
            command("zincrby", 4, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @sortedset @fast") { context in
                zadd(&context, increment: true)
            },
            command("zrem", -3, [.write, .fast], keys: (1, 1, 1), "@write @sortedset @fast", zrem),
            command("zcard", 2, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast") { context in
                read(&context, empty: { $0.output.writeInteger(0) }) { context, set in
                    context.output.writeInteger(set.count)
                }
            },
            command("zscore", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast") { context in
                read(&context, empty: { $0.output.writeNull() }) { context, set in
                    if let score = set.score(of: context.arguments[2]) {
                        writeScore(score, into: &context.output)
                    } else {
                        context.output.writeNull()
                    }
                }
            },
            command("zmscore", -3, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast", zmscore),
            command("zrank", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast") { context in
                zrank(&context, reverse: false)
            },
            command("zrevrank", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast") { context in
                zrank(&context, reverse: true)
            },
            command("zcount", 4, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast", zcount),
            command("zlexcount", 4, [.readonly, .fast], keys: (1, 1, 1), "@read @sortedset @fast", zlexcount),
            command("zrange", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .auto, direction: .auto)
            },
            command("zrangestore", -5, [.write, .denyOOM], keys: (1, 2, 1), "@write @sortedset @slow") { context in
                zrange(&context, first: 2, store: true, type: .auto, direction: .auto)
            },
            command("zrevrange", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .rank, direction: .reverse)
            },
            command("zrangebyscore", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .score, direction: .forward)
            },
            command("zrevrangebyscore", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .score, direction: .reverse)
            },
            command("zrangebylex", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .lex, direction: .forward)
            },
            command("zrevrangebylex", -4, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow") { context in
                zrange(&context, first: 1, store: false, type: .lex, direction: .reverse)
            },
            command("zremrangebyrank", 4, [.write], keys: (1, 1, 1), "@write @sortedset @slow") { context in
                zremrange(&context, type: .rank)
            },
            command("zremrangebyscore", 4, [.write], keys: (1, 1, 1), "@write @sortedset @slow") { context in
                zremrange(&context, type: .score)
            },
            command("zremrangebylex", 4, [.write], keys: (1, 1, 1), "@write @sortedset @slow") { context in
                zremrange(&context, type: .lex)
            },
            command("zpopmin", -2, [.write, .fast], keys: (1, 1, 1), "@write @sortedset @fast") { context in
                zpop(&context, max: false)
            },
            command("zpopmax", -2, [.write, .fast], keys: (1, 1, 1), "@write @sortedset @fast") { context in
                zpop(&context, max: true)
            },
            command("zmpop", -4, [.write, .movableKeys], "@write @sortedset @slow") { context in
                zmpop(&context, blocking: false)
            },
            command("bzpopmin", -3, [.write, .noScript, .blocking, .fast], keys: (1, -2, 1),
                    "@write @sortedset @fast @blocking") { context in
                bzpop(&context, max: false)
            },
            command("bzpopmax", -3, [.write, .noScript, .blocking, .fast], keys: (1, -2, 1),
                    "@write @sortedset @fast @blocking") { context in
                bzpop(&context, max: true)
            },
            command("bzmpop", -5, [.write, .blocking, .movableKeys], "@write @sortedset @slow @blocking") { context in
                zmpop(&context, blocking: true)
            },
            command("zrandmember", -2, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow", zrandmember),
            command("zunion", -3, [.readonly, .movableKeys], "@read @sortedset @slow") { context in
                combine(&context, .union, destination: false)
            },
            command("zinter", -3, [.readonly, .movableKeys], "@read @sortedset @slow") { context in
                combine(&context, .inter, destination: false)
            },
            command("zdiff", -3, [.readonly, .movableKeys], "@read @sortedset @slow") { context in
                combine(&context, .diff, destination: false)
            },
            command("zunionstore", -4, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1),
                    "@write @sortedset @slow") { context in
                combine(&context, .union, destination: true)
            },
            command("zinterstore", -4, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1),
                    "@write @sortedset @slow") { context in
                combine(&context, .inter, destination: true)
            },
            command("zdiffstore", -4, [.write, .denyOOM, .movableKeys], keys: (1, 1, 1),
                    "@write @sortedset @slow") { context in
                combine(&context, .diff, destination: true)
            },
            command("zintercard", -3, [.readonly, .movableKeys], "@read @sortedset @slow") { context in
                combine(&context, .inter, destination: false, cardinalityOnly: true)
            },
            command("zscan", -3, [.readonly], keys: (1, 1, 1), "@read @sortedset @slow", zscan),
        ]
    }

    // MARK: Helpers

    /// A score reply: `%.17g` text as a bulk string (RESP2) or a double (RESP3).
    static func writeScore(_ score: Double, into output: inout OutputBuffer) {
        // Integral scores below 1e15 print as their digits under %.17g: format them without
        // vsnprintf (negative zero prints as "-0", which the slow path handles).
        if score.magnitude < 1e15, score == score.rounded(.towardZero), !(score == 0 && score.sign == .minus) {
            if output.protocolVersion == .resp3 {
                output.writeStaticString(",")
                output.writeDecimal(Int64(score))
                output.writeCRLF()
            } else {
                output.writeBulkDecimal(Int64(score))
            }
            return
        }
        if score.isInfinite {
            if output.protocolVersion == .resp3 {
                output.writeStaticString(score > 0 ? ",inf\r\n" : ",-inf\r\n")
            } else {
                output.writeBulkString((score > 0 ? "inf" : "-inf").utf8)
            }
            return
        }
        output.writeDouble(formatted: formatScore(score))
    }

    /// Runs `body` on the sorted set at argv[1] for a read; `empty` replies for a missing key.
    static func read(_ context: inout CommandContext, empty: (inout CommandContext) -> Void,
                     _ body: (inout CommandContext, SortedSetValue) -> Void) {
        let key = context.key(1)
        let shard = context.lockShard(for: key)
        do {
            guard let set = try shard.readSortedSet(context.database, key, now: context.now) else {
                empty(&context)
                return
            }
            body(&context, set)
        } catch {
            context.output.writeKeyspaceError(error)
        }
    }

    // MARK: ZADD / ZINCRBY / ZREM

    /// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ... and ZINCRBY key increment member
    /// (t_zset.c zaddGenericCommand): options, then every score parsed before anything changes.
    static func zadd(_ context: inout CommandContext, increment: Bool) {
        let arguments = context.arguments
        var incr = increment
        var nx = false, xx = false, gt = false, lt = false, ch = false
        var scoreIndex = 2
        if !increment {
            while scoreIndex < arguments.count {
                if arguments.matches(scoreIndex, "nx") { nx = true
                } else if arguments.matches(scoreIndex, "xx") { xx = true
                } else if arguments.matches(scoreIndex, "ch") { ch = true
                } else if arguments.matches(scoreIndex, "incr") { incr = true
                } else if arguments.matches(scoreIndex, "gt") { gt = true
                } else if arguments.matches(scoreIndex, "lt") { lt = true
                } else { break }
                scoreIndex += 1
            }
        }
        let elements = arguments.count - scoreIndex
        if elements % 2 == 1 || elements == 0 {
            return context.output.writeError(RedisError.syntax)
        }
        if nx && xx {
            return context.output.writeError("ERR XX and NX options at the same time are not compatible")
        }
        if (gt && nx) || (lt && nx) || (gt && lt) {
            return context.output.writeError("ERR GT, LT, and/or NX options at the same time are not compatible")
        }
        if incr && elements > 2 {
            return context.output.writeError("ERR INCR option supports a single increment-element pair")
        }
        var scores: [Double] = []
        scores.reserveCapacity(elements / 2)
        var index = scoreIndex
        while index < arguments.count {
            guard let score = parseScore(arguments[index]) else {
                return context.output.writeError(RedisError.notFloat)
            }
            scores.append(score)
            index += 2
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let limits = context.engine.sortedSetLimits
            struct Outcome { var added = 0, updated = 0, processed = 0, score = 0.0, nan = false }
            do throws(KeyspaceError) {
                let outcome = try shard.withSortedSet(context.database, key, now: context.now, create: !xx) {
                    set, changed in
                    var outcome = Outcome()
                    for (pair, given) in scores.enumerated() {
                        let member = arguments[scoreIndex + 2 * pair + 1]
                        var score = given
                        if let location = set.locate(member) {
                            let current = location.score
                            if nx { continue }
                            if incr {
                                score += current
                                if score.isNaN {
                                    outcome.nan = true
                                    break
                                }
                            }
                            if (lt && score >= current) || (gt && score <= current) { continue }
                            outcome.processed += 1
                            outcome.score = score
                            if score != current {
                                set.update(at: location, member, to: score)
                                outcome.updated += 1
                                changed = true
                            }
                        } else if !xx {
                            set.insert(member, score: score, limits: limits)
                            outcome.added += 1
                            outcome.processed += 1
                            outcome.score = score
                            changed = true
                        }
                    }
                    return outcome
                } ?? Outcome()
                if outcome.added + outcome.updated > 0 {
                    context.addChanges(Int64(outcome.added + outcome.updated))
                    context.notify(.zset, incr ? "zincr" : "zadd", key)
                }
                if outcome.nan { return context.output.writeError(nanError) }
                if incr {
                    if outcome.processed > 0 {
                        writeScore(outcome.score, into: &context.output)
                    } else {
                        context.output.writeNull()
                    }
                } else {
                    context.output.writeInteger(ch ? outcome.added + outcome.updated : outcome.added)
                }
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    static func zrem(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let arguments = context.arguments
            do throws(KeyspaceError) {
                let removed = try shard.withSortedSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    var removed = 0
                    for index in 2..<arguments.count {
                        if set.remove(arguments[index]) != nil { removed += 1 }
                        if set.isEmpty { break }
                    }
                    if removed > 0 { changed = true }
                    return removed
                } ?? 0
                if removed > 0 {
                    context.addChanges(Int64(removed))
                    context.notify(.zset, "zrem", key)
                    if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                }
                context.output.writeInteger(removed)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    // MARK: Point reads

    static func zmscore(_ context: inout CommandContext) {
        let count = context.arguments.count - 2
        read(&context, empty: { context in
            context.output.writeArrayHeader(count)
            for _ in 0..<count { context.output.writeNull() }
        }) { context, set in
            context.output.writeArrayHeader(count)
            for index in 2..<context.arguments.count {
                if let score = set.score(of: context.arguments[index]) {
                    writeScore(score, into: &context.output)
                } else {
                    context.output.writeNull()
                }
            }
        }
    }

    static func zrank(_ context: inout CommandContext, reverse: Bool) {
        read(&context, empty: { $0.output.writeNull() }) { context, set in
            guard let found = set.rank(of: context.arguments[2]) else { return context.output.writeNull() }
            context.output.writeInteger(reverse ? set.count - 1 - found.rank : found.rank)
        }
    }

    static func parseScoreRange(_ context: inout CommandContext, _ minIndex: Int, _ maxIndex: Int) -> ScoreRange? {
        guard let min = ScoreBound(context.arguments[minIndex]), let max = ScoreBound(context.arguments[maxIndex])
        else {
            context.output.writeError(notFloatRange)
            return nil
        }
        return ScoreRange(min: min, max: max)
    }

    static func parseLexRange(_ context: inout CommandContext, _ minIndex: Int, _ maxIndex: Int) -> LexRange? {
        guard let min = LexBound(context.arguments[minIndex]), let max = LexBound(context.arguments[maxIndex]) else {
            context.output.writeError(notLexRange)
            return nil
        }
        return LexRange(min: min, max: max)
    }

    static func zcount(_ context: inout CommandContext) {
        guard let range = parseScoreRange(&context, 2, 3) else { return }
        read(&context, empty: { $0.output.writeInteger(0) }) { context, set in
            context.output.writeInteger(set.ranks(in: range).count)
        }
    }

    static func zlexcount(_ context: inout CommandContext) {
        guard let range = parseLexRange(&context, 2, 3) else { return }
        read(&context, empty: { $0.output.writeInteger(0) }) { context, set in
            context.output.writeInteger(set.lexCount(range))
        }
    }

    // MARK: ZRANGE family

    enum RangeType { case auto, rank, score, lex }
    enum Direction { case auto, forward, reverse }

    /// The ranks a range selects, in reply order (descending for REV).
    struct Selection {
        var ranks: Range<Int>
        var reverse: Bool
        var isEmpty: Bool { ranks.isEmpty }
    }

    /// Applies LIMIT offset count to the ranks of a score or lex range (negative offset: empty;
    /// negative count: no limit), walking from the low end or, reversed, the high end.
    static func limited(_ ranks: Range<Int>, offset: Int, limit: Int, reverse: Bool) -> Range<Int> {
        if offset < 0 || offset >= ranks.count { return ranks.lowerBound..<ranks.lowerBound }
        let available = ranks.count - offset
        let taken = limit < 0 ? available : min(limit, available)
        if reverse {
            let high = ranks.upperBound - offset
            return (high - taken)..<high
        }
        let low = ranks.lowerBound + offset
        return low..<(low + taken)
    }

    /// ZRANGE/ZRANGESTORE and the legacy Z[REV]RANGE[BYSCORE|BYLEX] (zrangeGenericCommand):
    /// `first` is the source key's index; the options follow min and max.
    static func zrange(_ context: inout CommandContext, first: Int, store: Bool, type: RangeType,
                       direction: Direction) {
        let arguments = context.arguments
        var type = type
        var direction = direction
        var withScores = false
        var offset = 0
        var limit = -1
        var index = first + 3
        while index < arguments.count {
            let left = arguments.count - index - 1
            if !store && arguments.matches(index, "withscores") {
                withScores = true
            } else if arguments.matches(index, "limit") && left >= 2 {
                guard let parsedOffset = context.integerArgument(index + 1),
                      let parsedLimit = context.integerArgument(index + 2) else { return }
                offset = Int(parsedOffset)
                limit = Int(parsedLimit)
                index += 2
            } else if direction == .auto && arguments.matches(index, "rev") {
                direction = .reverse
            } else if type == .auto && arguments.matches(index, "bylex") {
                type = .lex
            } else if type == .auto && arguments.matches(index, "byscore") {
                type = .score
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        if direction == .auto { direction = .forward }
        if type == .auto { type = .rank }
        if limit != -1 && type == .rank {
            return context.output.writeError(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        }
        if withScores && type == .lex {
            return context.output.writeError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
        }
        let reverse = direction == .reverse
        var minIndex = first + 1
        var maxIndex = first + 2
        if reverse && type != .rank { swap(&minIndex, &maxIndex) }
        var start: Int64 = 0, end: Int64 = 0
        var scoreRange: ScoreRange?
        var lexRange: LexRange?
        switch type {
        case .rank, .auto:
            guard let parsedStart = context.integerArgument(minIndex), let parsedEnd = context.integerArgument(maxIndex)
            else { return }
            start = parsedStart
            end = parsedEnd
        case .score:
            guard let range = parseScoreRange(&context, minIndex, maxIndex) else { return }
            scoreRange = range
        case .lex:
            guard let range = parseLexRange(&context, minIndex, maxIndex) else { return }
            lexRange = range
        }
        if store { context.lockShards(context.shardMask(keysFrom: 1, through: 2)) }
        let source = context.key(first)
        let shard = store ? context.keyspace.shard(for: source) : context.lockShard(for: source)
        let set: SortedSetValue?
        do {
            set = try shard.readSortedSet(context.database, source, now: context.now)
        } catch {
            return context.output.writeKeyspaceError(error)
        }
        var selection = Selection(ranks: 0..<0, reverse: reverse)
        if let set {
            switch type {
            case .rank, .auto:
                let length = Int64(set.count)
                var low = start < 0 ? length + start : start
                var high = end < 0 ? length + end : end
                if low < 0 { low = 0 }
                if !(low > high || low >= length) {
                    if high >= length { high = length - 1 }
                    // REV counts ranks from the top.
                    selection.ranks = reverse ? Int(length - 1 - high)..<Int(length - low) : Int(low)..<Int(high + 1)
                }
            case .score:
                selection.ranks = limited(set.ranks(in: scoreRange!), offset: offset, limit: limit, reverse: reverse)
            case .lex:
                selection.ranks = set.lexSelection(lexRange!, offset: offset, limit: limit, reverse: reverse)
            }
        }
        if store {
            storeRange(&context, set: set, selection: selection)
            return
        }
        writeRange(set, selection, withScores: withScores, into: &context.output)
    }

    /// Writes the elements of `selection` as a ZRANGE reply.
    static func writeRange(_ set: SortedSetValue?, _ selection: Selection, withScores: Bool,
                           into output: inout OutputBuffer) {
        guard let set, !selection.isEmpty else { return output.writeArrayHeader(0) }
        let pairs = withScores && output.protocolVersion == .resp3
        output.writeArrayHeader(withScores && !pairs ? selection.ranks.count * 2 : selection.ranks.count)
        var left = selection.ranks.count
        let from = selection.reverse ? selection.ranks.upperBound - 1 : selection.ranks.lowerBound
        set.visit(from: from, reverse: selection.reverse) { member, score in
            if pairs { output.writeArrayHeader(2) }
            output.writeBulkString(member)
            if withScores { writeScore(score, into: &output) }
            left -= 1
            return left > 0
        }
    }

    /// ZRANGESTORE's end: the selected elements replace the destination (argv[1]), or delete it
    /// when nothing was selected.
    static func storeRange(_ context: inout CommandContext, set: SortedSetValue?, selection: Selection) {
        var result = SortedSetValue()
        if let set, !selection.isEmpty {
            let limits = context.engine.sortedSetLimits
            if selection.ranks.count > limits.maxEntries { result.convertToIndexed() }
            var left = selection.ranks.count
            let from = selection.reverse ? selection.ranks.upperBound - 1 : selection.ranks.lowerBound
            set.visit(from: from, reverse: selection.reverse) { member, score in
                result.insert(member, score: score, limits: limits)
                left -= 1
                return left > 0
            }
        }
        storeResult(&context, result, destinationIndex: 1, event: "zrangestore")
    }

    /// Stores `result` at argv[`destinationIndex`] (setKey: the TTL goes), or deletes the key
    /// when the result is empty; replies with the result's size and fires `event` (or del).
    static func storeResult(_ context: inout CommandContext, _ result: SortedSetValue, destinationIndex: Int,
                            event: StaticString) {
        let destination = context.key(destinationIndex)
        let shard = context.keyspace.shard(for: destination)
        if result.isEmpty {
            if shard.lookup(context.database, destination, now: context.now) != nil {
                shard.remove(context.database, destination)
                context.addChanges(1)
                context.notify(.generic, "del", destination)
            }
            context.output.writeInteger(0)
            return
        }
        shard.store(context.database, destination, Entry(value: .sortedSet(result)))
        context.addChanges(1)
        context.output.writeInteger(result.count)
        context.notify(.zset, event, destination)
    }

    // MARK: ZREMRANGEBY*

    static func zremrange(_ context: inout CommandContext, type: RangeType) {
        var start: Int64 = 0, end: Int64 = 0
        var scoreRange: ScoreRange?
        var lexRange: LexRange?
        switch type {
        case .score:
            guard let range = parseScoreRange(&context, 2, 3) else { return }
            scoreRange = range
        case .lex:
            guard let range = parseLexRange(&context, 2, 3) else { return }
            lexRange = range
        default:
            guard let parsedStart = context.integerArgument(2),
                  let parsedEnd = context.integerArgument(3) else { return }
            start = parsedStart
            end = parsedEnd
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            do throws(KeyspaceError) {
                let removed = try shard.withSortedSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    let ranks: Range<Int>
                    switch type {
                    case .score: ranks = set.ranks(in: scoreRange!)
                    case .lex: ranks = set.lexDeletionRanks(lexRange!)
                    default:
                        let length = Int64(set.count)
                        var low = start < 0 ? length + start : start
                        var high = end < 0 ? length + end : end
                        if low < 0 { low = 0 }
                        if low > high || low >= length { return 0 }
                        if high >= length { high = length - 1 }
                        ranks = Int(low)..<Int(high + 1)
                    }
                    if ranks.isEmpty { return 0 }
                    changed = true
                    return set.removeRanks(ranks)
                } ?? 0
                if removed > 0 {
                    context.addChanges(Int64(removed))
                    let event: StaticString
                    switch type {
                    case .score: event = "zremrangebyscore"
                    case .lex: event = "zremrangebylex"
                    default: event = "zremrangebyrank"
                    }
                    context.notify(.zset, event, key)
                    if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                }
                context.output.writeInteger(removed)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    // MARK: Pops

    /// The shape of a pop reply (genericZpopCommand's emitkey / use_nested_array).
    enum PopShape {
        /// ZPOPMIN/ZPOPMAX: flat [m, s, ...], or nested pairs in RESP3 with a count.
        case plain(nested: Bool)
        /// BZPOPMIN/BZPOPMAX: [key, m, s].
        case keyed
        /// ZMPOP/BZMPOP: [key, [[m, s], ...]].
        case keyedNested
    }

    /// Pops up to `count` elements from the `max` or min end of `set`, writing the reply; returns
    /// how many were popped.
    static func pop(_ set: inout SortedSetValue, key: ArraySlice<UInt8>, max: Bool, count: Int, shape: PopShape,
                    into output: inout OutputBuffer) -> Int {
        let popped = min(count, set.count)
        switch shape {
        case .plain(let nested): output.writeArrayHeader(nested ? popped : popped * 2)
        case .keyed:
            output.writeArrayHeader(popped * 2 + 1)
            output.writeBulkString(key)
        case .keyedNested:
            output.writeArrayHeader(2)
            output.writeBulkString(key)
            output.writeArrayHeader(popped)
        }
        let nested: Bool
        switch shape {
        case .plain(let flag): nested = flag
        case .keyed: nested = false
        case .keyedNested: nested = true
        }
        for _ in 0..<popped {
            let (member, score) = set.remove(rank: max ? set.count - 1 : 0)
            if nested { output.writeArrayHeader(2) }
            output.writeBulkString(member)
            writeScore(score, into: &output)
        }
        return popped
    }

    /// ZPOPMIN/ZPOPMAX key [count].
    static func zpop(_ context: inout CommandContext, max: Bool) {
        if context.arguments.count > 3 { return context.output.writeError(RedisError.syntax) }
        var count = -1
        if context.arguments.count == 3 {
            guard let parsed = ListCommands.nonNegativeArgument(&context, 2) else { return }
            count = parsed
        }
        let nested = context.output.protocolVersion == .resp3 && count != -1
        let key = context.key(1)
        let keyBytes = context.arguments[1]
        context.withLockedShard(for: key) { shard, context in
            var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
            swap(&output, &context.output)
            defer { swap(&output, &context.output) }
            do throws(KeyspaceError) {
                let popped = try shard.withSortedSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    if count == 0 {
                        output.writeArrayHeader(0)
                        return 0
                    }
                    changed = true
                    return pop(&set, key: keyBytes, max: max, count: count == -1 ? 1 : count,
                               shape: .plain(nested: nested), into: &output)
                }
                guard let popped else { return output.writeArrayHeader(0) }
                if popped > 0 {
                    context.addChanges(Int64(popped))
                    context.notify(.zset, max ? "zpopmax" : "zpopmin", key)
                    if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                }
            } catch {
                output.writeKeyspaceError(error)
            }
        }
    }

    /// Pops from the first non-empty sorted set among argv[`keys`] (ZMPOP, BZMPOP, BZPOP*),
    /// logging the pop as ZPOPMIN/ZPOPMAX key [count]; false when every key was missing.
    static func popFirst(_ context: inout CommandContext, keys: Range<Int>, max: Bool, count: Int?,
                         shape: PopShape) -> Bool {
        let arguments = context.arguments
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        swap(&output, &context.output)
        defer { swap(&output, &context.output) }
        for keyIndex in keys {
            let key = context.key(keyIndex)
            let shard = context.keyspace.shard(for: key)
            do {
                let popped = try shard.withSortedSet(context.database, key, now: context.now, create: false) {
                    set, changed in
                    changed = true
                    return pop(&set, key: arguments[keyIndex], max: max, count: count ?? 1, shape: shape,
                               into: &output)
                }
                guard let popped else { continue }
                context.addChanges(Int64(popped))
                var record = [max ? Words.zpopmax : Words.zpopmin, key.bytes]
                if count != nil { record.append(decimalBytes(Int64(popped))) }
                context.propagate(record)
                context.notify(.zset, max ? "zpopmax" : "zpopmin", key)
                if !shard.contains(context.database, key, now: context.now) { context.notify(.generic, "del", key) }
                return true
            } catch {
                output.writeKeyspaceError(error)
                return true
            }
        }
        return false
    }

    /// ZMPOP numkeys key ... MIN|MAX [COUNT count] and BZMPOP timeout numkeys ... (zmpopGenericCommand).
    static func zmpop(_ context: inout CommandContext, blocking: Bool) {
        let arguments = context.arguments
        let numkeysIndex = blocking ? 2 : 1
        guard let keyCount = ListCommands.positiveArgument(&context, numkeysIndex,
                                                           message: RedisError.numkeysNotPositive) else { return }
        // Compared before adding, so a numkeys near Int64.max cannot overflow.
        guard keyCount < arguments.count - numkeysIndex - 1 else {
            return context.output.writeError(RedisError.syntax)
        }
        let whereIndex = numkeysIndex + keyCount + 1
        let max: Bool
        if arguments.matches(whereIndex, "min") {
            max = false
        } else if arguments.matches(whereIndex, "max") {
            max = true
        } else {
            return context.output.writeError(RedisError.syntax)
        }
        var count = -1
        var index = whereIndex + 1
        while index < arguments.count {
            if count == -1 && index + 1 < arguments.count && arguments.matches(index, "count") {
                guard let parsed = ListCommands.positiveArgument(&context, index + 1,
                                                                 message: RedisError.countNotPositive) else { return }
                count = parsed
                index += 2
            } else {
                return context.output.writeError(RedisError.syntax)
            }
        }
        if count == -1 { count = 1 }
        var deadline: Int64 = 0
        if blocking {
            guard let parsed = ListCommands.timeoutArgument(&context, 1) else { return }
            deadline = parsed
        }
        let keys = (numkeysIndex + 1)..<whereIndex
        context.lockShards(context.shardMask(keysFrom: keys.lowerBound, through: keys.upperBound - 1))
        if popFirst(&context, keys: keys, max: max, count: count, shape: .keyedNested) { return }
        if !blocking || ListCommands.mayNotBlock(context) { return context.output.writeNullArray() }
        ListCommands.block(&context, keys: keys.map { arguments.copy($0) },
                           .sortedSetPop(max: max, count: count), deadline: deadline)
    }

    /// BZPOPMIN/BZPOPMAX key [key ...] timeout.
    static func bzpop(_ context: inout CommandContext, max: Bool) {
        let arguments = context.arguments
        guard let deadline = ListCommands.timeoutArgument(&context, arguments.count - 1) else { return }
        let keys = 1..<(arguments.count - 1)
        context.lockShards(context.shardMask(keysFrom: keys.lowerBound, through: keys.upperBound - 1))
        if popFirst(&context, keys: keys, max: max, count: nil, shape: .keyed) { return }
        if ListCommands.mayNotBlock(context) { return context.output.writeNullArray() }
        ListCommands.block(&context, keys: keys.map { arguments.copy($0) },
                           .sortedSetPop(max: max, count: nil), deadline: deadline)
    }

    // MARK: ZRANDMEMBER / ZSCAN

    /// ZRANDMEMBER key [count [WITHSCORES]] (zrandmemberCommand), like HRANDFIELD.
    static func zrandmember(_ context: inout CommandContext) {
        let arguments = context.arguments
        guard arguments.count >= 3 else {
            return read(&context, empty: { $0.output.writeNull() }) { context, set in
                context.output.writeBulkString(set.element(at: Int.random(in: 0..<set.count)).member)
            }
        }
        guard let count = context.integerArgument(2, in: -Int64.max...Int64.max) else { return }
        if arguments.count > 4 || (arguments.count == 4 && !arguments.matches(3, "withscores")) {
            return context.output.writeError(RedisError.syntax)
        }
        let withScores = arguments.count == 4
        if withScores && (count < -(Int64.max / 2) || count > Int64.max / 2) {
            return context.output.writeError(RedisError.valueOutOfRange)
        }
        read(&context, empty: { $0.output.writeArrayHeader(0) }) { context, set in
            var picks: [Int]
            if count == 0 {
                picks = []
            } else if count < 0 || count == 1 {
                picks = (0..<Int(count.magnitude)).map { _ in Int.random(in: 0..<set.count) }
            } else if count >= set.count {
                picks = Array(0..<set.count)
            } else {
                picks = Array((0..<set.count).shuffled().prefix(Int(count)))
            }
            let pairs = withScores && context.output.protocolVersion == .resp3
            context.output.writeArrayHeader(withScores && !pairs ? picks.count * 2 : picks.count)
            for rank in picks {
                let (member, score) = set.element(at: rank)
                if pairs { context.output.writeArrayHeader(2) }
                context.output.writeBulkString(member)
                if withScores { writeScore(score, into: &context.output) }
            }
        }
    }

    /// ZSCAN key cursor [MATCH pattern] [COUNT count]: a compact set whole with cursor 0 (as
    /// Redis answers for listpack sets), an indexed one by cursor (`SortedSetValue.scan`).
    /// Scores are bulk strings in both protocols: the
    /// listpack's d2string text for a compact set, `%.17g` for an indexed one (db.c).
    static func zscan(_ context: inout CommandContext) {
        guard let cursor = KeyspaceCommands.parseCursor(context.arguments[2]) else {
            return context.output.writeError(RedisError.invalidCursor)
        }
        read(&context, empty: { context in
            context.output.writeStaticString("*2\r\n$1\r\n0\r\n*0\r\n")
        }) { context, set in
            guard let (pattern, count) = KeyspaceCommands.elementScanOptions(&context) else { return }
            var matched: [(ArraySlice<UInt8>, Double)] = []
            let next = set.scan(cursor: cursor, count: count) { member, score in
                if pattern.map({ globMatches($0, member) }) ?? true { matched.append((member, score)) }
            }
            context.output.writeArrayHeader(2)
            context.output.writeBulkString(Array(String(next).utf8))
            context.output.writeArrayHeader(matched.count * 2)
            for (member, score) in matched {
                context.output.writeBulkString(member)
                context.output.writeBulkString(set.isCompact ? scoreStorageText(score) : formatScore(score))
            }
        }
    }

    // MARK: ZUNION / ZINTER / ZDIFF (+STORE), ZINTERCARD

    enum SetOperation { case union, inter, diff }
    enum Aggregate { case sum, min, max }

    static func aggregate(_ target: inout Double, _ value: Double, _ mode: Aggregate) {
        switch mode {
        case .sum:
            target += value
            if target.isNaN { target = 0 }
        case .min: if value < target { target = value }
        case .max: if value > target { target = value }
        }
    }

    /// zunionInterDiffGenericCommand: numkeys and key types are checked before the options.
    static func combine(_ context: inout CommandContext, _ operation: SetOperation, destination: Bool,
                        cardinalityOnly: Bool = false) {
        let arguments = context.arguments
        let numkeysIndex = destination ? 2 : 1
        guard let setCount = context.integerArgument(numkeysIndex) else { return }
        if setCount < 1 {
            return context.output.writeError(
                Array("ERR at least 1 input key is needed for '\(context.spec.name)' command".utf8))
        }
        if setCount > Int64(arguments.count - numkeysIndex - 1) {
            return context.output.writeError(RedisError.syntax)
        }
        let keys = (numkeysIndex + 1)...(numkeysIndex + Int(setCount))
        var mask = context.shardMask(keysFrom: keys.lowerBound, through: keys.upperBound)
        if destination { mask.insert(context.keyspace.shardIndex(for: arguments[1])) }
        context.lockShards(mask)
        var sources: [SortedSetValue?] = []
        for index in keys {
            let key = context.key(index)
            do {
                let shard = context.keyspace.shard(for: key)
                sources.append(try shard.readSortedSetOperand(context.database, key, now: context.now))
            } catch {
                return context.output.writeKeyspaceError(error)
            }
        }
        var weights = [Double](repeating: 1, count: sources.count)
        var mode = Aggregate.sum
        var withScores = false
        var limit = 0
        var index = keys.upperBound + 1
        while index < arguments.count {
            let remaining = arguments.count - index
            if operation != .diff && !cardinalityOnly && remaining >= sources.count + 1
                && arguments.matches(index, "weights") {
                for position in 0..<sources.count {
                    guard let weight = parseScore(arguments[index + 1 + position]) else {
                        return context.output.writeError("ERR weight value is not a float")
                    }
                    weights[position] = weight
                }
                index += sources.count + 1
            } else if operation != .diff && !cardinalityOnly && remaining >= 2
                        && arguments.matches(index, "aggregate") {
                if arguments.matches(index + 1, "sum") {
                    mode = .sum
                } else if arguments.matches(index + 1, "min") {
                    mode = .min
                } else if arguments.matches(index + 1, "max") {
                    mode = .max
                } else {
                    return context.output.writeError(RedisError.syntax)
                }
                index += 2
            } else if !destination && !cardinalityOnly && arguments.matches(index, "withscores") {
                withScores = true
                index += 1
            } else if cardinalityOnly && remaining >= 2 && arguments.matches(index, "limit") {
                guard let parsed = context.integerArgument(index + 1, in: 0...Int64.max,
                                                           message: "ERR LIMIT can't be negative") else { return }
                limit = Int(parsed)
                index += 2
            } else {
                return context.output.writeError(RedisError.syntax)
            }
        }
        var order = Array(0..<sources.count)
        if operation != .diff {
            // Smallest input first (a stable sort, like glibc's merge-sorting qsort).
            order.sort { (sources[$0]?.count ?? 0) < (sources[$1]?.count ?? 0) }
        }
        var result = SortedSetValue()
        result.convertToIndexed()
        var cardinality = 0
        switch operation {
        case .inter:
            guard let smallest = sources[order[0]], !smallest.isEmpty else { break }
            let firstWeight = weights[order[0]]
            smallest.forEach { member, score in
                if limit > 0 && cardinality >= limit { return }
                var total = firstWeight * score
                if total.isNaN { total = 0 }
                for position in order.dropFirst() {
                    guard let other = sources[position]?.score(of: member) else { return }
                    aggregate(&total, other * weights[position], mode)
                }
                cardinality += 1
                if !cardinalityOnly { result.insertNewUnchecked(member, score: total) }
            }
        case .union:
            var totals: [Key: Double] = [:]
            var members: [Key: [UInt8]] = [:]
            var arrival: [Key] = []
            for position in order {
                guard let source = sources[position] else { continue }
                let weight = weights[position]
                source.forEach { member, score in
                    var value = weight * score
                    if value.isNaN { value = 0 }
                    let key = Key(member)
                    if var existing = totals[key] {
                        aggregate(&existing, value, mode)
                        totals[key] = existing
                    } else {
                        totals[key] = value
                        members[key] = Array(member)
                        arrival.append(key)
                    }
                }
            }
            for key in arrival { result.insertNewUnchecked(members[key]!, score: totals[key]!) }
        case .diff:
            guard let first = sources[0] else { break }
            first.forEach { member, score in
                for position in 1..<sources.count where sources[position]?.score(of: member) != nil { return }
                result.insertNewUnchecked(member, score: score)
            }
        }
        if cardinalityOnly { return context.output.writeInteger(cardinality) }
        if destination {
            result.compactIfSmall(limits: context.engine.sortedSetLimits)
            let event: StaticString
            switch operation {
            case .union: event = "zunionstore"
            case .inter: event = "zinterstore"
            case .diff: event = "zdiffstore"
            }
            storeResult(&context, result, destinationIndex: 1, event: event)
            return
        }
        writeRange(result, Selection(ranks: 0..<result.count, reverse: false), withScores: withScores,
                   into: &context.output)
    }
}

extension Words {
    static let zpopmin = Array("ZPOPMIN".utf8)
    static let zpopmax = Array("ZPOPMAX".utf8)
}
