// IncrementWithExpiry: INCREX (Redis 8.8), the one command beyond Redis 7.0 that Tally adds; logged as SET.
import TallyKeyspace
import TallyProtocol

/// INCREX key [BYINT n | BYFLOAT x] [LBOUND lo] [UBOUND hi] [SATURATE]
///            [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST] [ENX]
///
/// Semantics from Redis 8.8's command reference: the increment (1 by default) applies to the
/// integer (or, with BYFLOAT, long double) value; a result outside [LBOUND, UBOUND] (default
/// the type's limits, an integer overflow included) is skipped, replying [current, 0] and
/// leaving the key and its TTL alone, unless SATURATE clamps it to the bound. The reply is
/// [new value, applied increment]: integers, or bulk strings (RESP2) / doubles (RESP3) with
/// BYFLOAT. No expiration option keeps the TTL; PERSIST removes it; ENX sets the given one
/// only when the key has none.
///
/// The AOF gets `SET key value` (+ `PXAT ms` or `KEEPTTL`), which Redis 7.0 replays, so an AOF
/// written by Tally stays loadable by redis-server 7.0. Error texts for the cases Redis's
/// reference does not spell out follow Redis's usual ones (syntax error for conflicting or
/// incomplete options, the integer/float parse errors, the invalid expire time error).
enum IncrementWithExpiry {
    static var specs: [CommandSpec] {
        [command("increx", -2, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @string @fast", increx)]
    }

    static let boundsOrder: StaticString = "ERR LBOUND must be less than or equal to UBOUND"

    /// What the options asked for, before the key is read.
    struct Options {
        var isFloat = false
        var integerIncrement: Int64 = 1
        var floatIncrement: Float80 = 1
        var lowerIndex: Int?
        var upperIndex: Int?
        var saturate = false
        var unit: ExpireUnit?
        var expireIndex = 0
        var persist = false
        var onlyIfNoTTL = false
        var incrementIndex: Int?
    }

    /// Parses the options (any order, each at most once in its group), or nil after replying.
    static func parseOptions(_ context: inout CommandContext) -> Options? {
        var options = Options()
        let arguments = context.arguments
        let count = arguments.count
        var index = 2
        while index < count {
            let hasValue = index + 1 < count
            if (arguments.matches(index, "byint") || arguments.matches(index, "byfloat")) && hasValue
                && options.incrementIndex == nil {
                options.isFloat = arguments.matches(index, "byfloat")
                options.incrementIndex = index + 1
                index += 2
            } else if arguments.matches(index, "lbound") && hasValue && options.lowerIndex == nil {
                options.lowerIndex = index + 1
                index += 2
            } else if arguments.matches(index, "ubound") && hasValue && options.upperIndex == nil {
                options.upperIndex = index + 1
                index += 2
            } else if arguments.matches(index, "saturate") {
                options.saturate = true
                index += 1
            } else if arguments.matches(index, "persist") && options.unit == nil && !options.onlyIfNoTTL {
                options.persist = true
                index += 1
            } else if arguments.matches(index, "enx") && !options.persist {
                options.onlyIfNoTTL = true
                index += 1
            } else if let unit = StringCommands.expireOption(arguments, index), hasValue, options.unit == nil,
                      !options.persist {
                options.unit = unit
                options.expireIndex = index + 1
                index += 2
            } else {
                context.output.writeError(RedisError.syntax)
                return nil
            }
        }
        if options.onlyIfNoTTL && options.unit == nil {
            context.output.writeError(RedisError.syntax)
            return nil
        }
        if let incrementIndex = options.incrementIndex {
            if options.isFloat {
                guard let value = parseLongDouble(arguments[incrementIndex]), value.isFinite else {
                    context.output.writeError(RedisError.notFloat)
                    return nil
                }
                options.floatIncrement = value
            } else {
                guard let value = context.integerArgument(incrementIndex) else { return nil }
                options.integerIncrement = value
            }
        }
        return options
    }

    /// A BYFLOAT bound (`fallback` when not given), or nil after replying.
    static func floatBound(_ context: inout CommandContext, _ index: Int?, fallback: Float80) -> Float80? {
        guard let index else { return fallback }
        guard let bound = parseLongDouble(context.arguments[index]), !bound.isNaN else {
            context.output.writeError(RedisError.notFloat)
            return nil
        }
        return bound
    }

    static func increx(_ context: inout CommandContext) {
        guard let options = parseOptions(&context) else { return }
        var lowerInteger = Int64.min
        var upperInteger = Int64.max
        var lowerFloat = -Float80.greatestFiniteMagnitude
        var upperFloat = Float80.greatestFiniteMagnitude
        if options.isFloat {
            guard let lower = floatBound(&context, options.lowerIndex, fallback: lowerFloat),
                  let upper = floatBound(&context, options.upperIndex, fallback: upperFloat) else { return }
            lowerFloat = lower
            upperFloat = upper
            if lowerFloat > upperFloat {
                context.output.writeError(boundsOrder)
                return
            }
        } else {
            if let index = options.lowerIndex {
                guard let value = context.integerArgument(index) else { return }
                lowerInteger = value
            }
            if let index = options.upperIndex {
                guard let value = context.integerArgument(index) else { return }
                upperInteger = value
            }
            if lowerInteger > upperInteger {
                context.output.writeError(boundsOrder)
                return
            }
        }
        var expiry: Int64?
        if let unit = options.unit {
            guard let milliseconds = context.expireArgument(options.expireIndex, unit) else { return }
            expiry = milliseconds
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let entry = shard.lookup(context.database, key, now: context.now)
            if let entry, !entry.value.isString {
                context.output.writeError(RedisError.wrongType)
                return
            }
            // The TTL after the increment: the given one (unless ENX and the key has one), none
            // with PERSIST, else the current one.
            let currentExpiry = entry?.expiresAtMilliseconds
            var newExpiry = currentExpiry
            if options.persist {
                newExpiry = nil
            } else if let expiry, !(options.onlyIfNoTTL && currentExpiry != nil) {
                newExpiry = expiry
            }
            let stored: [UInt8]
            if options.isFloat {
                guard let result = floatStep(&context, entry?.value, options, lowerFloat, upperFloat) else { return }
                if result.skipped { return }
                stored = result.text
            } else {
                guard let result = integerStep(&context, entry?.value, options, lowerInteger, upperInteger) else {
                    return
                }
                if result.skipped { return }
                stored = decimalBytes(result.value)
            }
            shard.store(context.database, key, Entry(value: .fromBytes(stored), expiresAtMilliseconds: newExpiry))
            context.addChanges(1)
            context.notify(.string, options.isFloat ? "incrbyfloat" : "incrby", key)
            if newExpiry != currentExpiry {
                context.notify(.generic, newExpiry == nil ? "persist" : "expire", key)
            }
            var record: [[UInt8]] = [Words.set, key.bytes, stored]
            if let newExpiry { record += [Words.pxat, decimalBytes(newExpiry)] }
            context.propagate(record)
        }
    }

    /// The integer path: replies and returns the new value, or `skipped` after replying
    /// [current, 0], or nil after an error.
    static func integerStep(_ context: inout CommandContext, _ value: Value?, _ options: Options,
                            _ lower: Int64, _ upper: Int64) -> (value: Int64, skipped: Bool)? {
        var current: Int64 = 0
        switch value {
        case .integer(let integer): current = integer
        case .string(let bytes):
            guard let parsed = parseRedisInteger(bytes) else {
                context.output.writeError(RedisError.notInteger)
                return nil
            }
            current = parsed
        case .hash, .list, .set, .sortedSet, .stream, nil: break
        }
        let increment = options.integerIncrement
        let (sum, overflow) = current.addingReportingOverflow(increment)
        var result = sum
        let above = overflow ? increment > 0 : sum > upper
        let below = overflow ? increment < 0 : sum < lower
        if above || below {
            if !options.saturate {
                context.output.writeArrayHeader(2)
                context.output.writeInteger(current)
                context.output.writeInteger(0)
                return (current, true)
            }
            result = above ? upper : lower
        }
        let (delta, deltaOverflow) = result.subtractingReportingOverflow(current)
        if deltaOverflow {
            context.output.writeError(RedisError.overflow)
            return nil
        }
        context.output.writeArrayHeader(2)
        context.output.writeInteger(result)
        context.output.writeInteger(delta)
        return (result, false)
    }

    /// The BYFLOAT path (long double, formatted as INCRBYFLOAT formats): returns the new
    /// value's text, or `skipped` after replying [current, 0], or nil after an error.
    static func floatStep(_ context: inout CommandContext, _ value: Value?, _ options: Options,
                          _ lower: Float80, _ upper: Float80) -> (text: [UInt8], delta: Float80, skipped: Bool)? {
        var current: Float80 = 0
        switch value {
        case .integer(let integer): current = Float80(integer)
        case .string(let bytes):
            guard let parsed = parseLongDouble(bytes[...]) else {
                context.output.writeError(RedisError.notFloat)
                return nil
            }
            current = parsed
        case .hash, .list, .set, .sortedSet, .stream, nil: break
        }
        let sum = current + options.floatIncrement
        if sum.isNaN {
            context.output.writeError(RedisError.nanOrInfinity)
            return nil
        }
        var result = sum
        if sum > upper || sum < lower {
            if !options.saturate {
                context.output.writeArrayHeader(2)
                context.output.writeDouble(formatted: formatLongDouble(current))
                context.output.writeDouble(formatted: formatLongDouble(0))
                return ([], 0, true)
            }
            result = sum > upper ? upper : lower
        }
        let delta = result - current
        if !result.isFinite || !delta.isFinite {
            context.output.writeError(RedisError.nanOrInfinity)
            return nil
        }
        let text = formatLongDouble(result)
        context.output.writeArrayHeader(2)
        context.output.writeDouble(formatted: text)
        context.output.writeDouble(formatted: formatLongDouble(delta))
        return (text, delta, false)
    }
}
