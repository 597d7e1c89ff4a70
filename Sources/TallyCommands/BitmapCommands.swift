// BitmapCommands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO (bitops.c semantics).
import TallyKeyspace
import TallyProtocol

/// Bitmaps are strings read most-significant bit first: bit 0 is the top bit of byte 0.
/// Reads work on the stored bytes (an integer-encoded value is read as its decimal digits,
/// formatted on the stack); writes edit the stored array in place (`Shard.mutateString`).
enum BitmapCommands {
    static var specs: [CommandSpec] {
        [
            command("setbit", 4, [.write, .denyOOM], keys: (1, 1, 1), "@write @bitmap @slow", setBit),
            command("getbit", 3, [.readonly, .fast], keys: (1, 1, 1), "@read @bitmap @fast", getBit),
            command("bitcount", -2, [.readonly], keys: (1, 1, 1), "@read @bitmap @slow", bitCount),
            command("bitpos", -3, [.readonly], keys: (1, 1, 1), "@read @bitmap @slow", bitPosition),
            command("bitop", -4, [.write, .denyOOM], keys: (2, -1, 1), "@write @bitmap @slow", bitOperation),
            command("bitfield", -2, [.write, .denyOOM], keys: (1, 1, 1), "@write @bitmap @slow") { context in
                bitField(&context, readOnly: false)
            },
            command("bitfield_ro", -2, [.readonly, .fast], keys: (1, 1, 1), "@read @bitmap @fast") { context in
                bitField(&context, readOnly: true)
            },
        ]
    }

    static let bitOffsetError: StaticString = "ERR bit offset is not an integer or out of range"
    static let bitValueError: StaticString = "ERR bit is not an integer or out of range"
    static let bitArgumentError: StaticString = "ERR The bit argument must be 1 or 0."
    static let bitopNotError: StaticString = "ERR BITOP NOT must be called with a single source key."
    static let bitfieldTypeError: StaticString =
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is."
    static let overflowTypeError: StaticString = "ERR Invalid OVERFLOW type specified"
    static let readOnlyBitfieldError: StaticString = "ERR BITFIELD_RO only supports the GET subcommand"

    // MARK: Argument parsing

    /// A bit offset as Redis's `getBitOffsetFromArgument` reads it: `#N` means N * `width`
    /// when `width` is given (BITFIELD); negative offsets and offsets whose byte lies at or
    /// past `proto-max-bulk-len` are refused. The multiplication wraps as it does in C.
    static func bitOffset(_ context: inout CommandContext, _ index: Int, width: Int = 0) -> UInt64? {
        var text = context.arguments[index]
        let isScaled = width > 0 && text.first == UInt8(ascii: "#")
        if isScaled { text = text.dropFirst() }
        guard var offset = parseRedisInteger(text) else {
            context.output.writeError(bitOffsetError)
            return nil
        }
        if isScaled { offset = offset &* Int64(width) }
        if offset < 0 || (offset >> 3) >= Int64(context.engine.configuration.maxStringBytes) {
            context.output.writeError(bitOffsetError)
            return nil
        }
        return UInt64(offset)
    }

    /// The string value at argv[1] for a read: nil when missing (nothing written), or nil
    /// with `failed` after writing WRONGTYPE.
    static func readValue(_ context: inout CommandContext, _ shard: Shard,
                          _ key: Key) -> (value: Value?, failed: Bool) {
        let (value, ok) = StringCommands.readString(&context, shard, key, nullReply: false)
        return (value, !ok)
    }

    /// `readValue` for GETBIT and BITCOUNT, which answer 0 for a missing key: the value, or nil
    /// once the reply (0 or WRONGTYPE) is written.
    static func valueOrZeroReply(_ context: inout CommandContext, _ shard: Shard, _ key: Key) -> Value? {
        let (value, failed) = readValue(&context, shard, key)
        if failed { return nil }
        guard let value else {
            context.output.writeInteger(0)
            return nil
        }
        return value
    }

    // MARK: SETBIT / GETBIT

    /// SETBIT key offset 0|1: replies with the previous bit; grows the string with zeros.
    static func setBit(_ context: inout CommandContext) {
        guard let offset = bitOffset(&context, 2) else { return }
        guard let on = parseRedisInteger(context.arguments[3]), on & ~1 == 0 else {
            context.output.writeError(bitValueError)
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            let byteIndex = Int(offset >> 3)
            let mask = UInt8(1) << (7 - UInt8(offset & 7))
            do throws(KeyspaceError) {
                let (previous, changed) = try shard.mutateString(
                    context.database, key, now: context.now, minimumCount: byteIndex + 1
                ) { bytes -> (result: Bool, changed: Bool) in
                    let old = bytes[byteIndex]
                    let wasSet = old & mask != 0
                    if wasSet == (on == 1) { return (wasSet, false) }
                    bytes[byteIndex] = on == 1 ? old | mask : old & ~mask
                    return (wasSet, true)
                }
                if changed {
                    context.addChanges(1)
                    context.notify(.string, "setbit", key)
                }
                context.output.writeInteger(previous ? 1 : 0)
            } catch {
                context.output.writeKeyspaceError(error)
            }
        }
    }

    /// GETBIT key offset: 0 past the end of the string or for a missing key.
    static func getBit(_ context: inout CommandContext) {
        guard let offset = bitOffset(&context, 2) else { return }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let value = valueOrZeroReply(&context, shard, key) else { return }
            let byteIndex = Int(offset >> 3)
            let isSet = value.withStringBytes { bytes -> Bool in
                byteIndex < bytes.count && bytes[byteIndex] & (UInt8(0x80) >> UInt8(offset & 7)) != 0
            }
            context.output.writeInteger(isSet ? 1 : 0)
        }
    }

    // MARK: BITCOUNT / BITPOS

    /// A byte range of a string with optional bit masks for its first and last bytes, as
    /// BITCOUNT and BITPOS compute it: `firstMask`/`lastMask` have a 1 for each bit of the
    /// edge byte that lies *outside* a BIT range.
    struct ByteRange {
        var start: Int64
        var end: Int64
        var firstMask: UInt8 = 0
        var lastMask: UInt8 = 0
    }

    /// Normalizes `start`...`end` (negative = from the end) over `length` bytes, or bits when
    /// `inBits`, as bitops.c does: clamps to the string and converts a bit range to bytes plus
    /// edge masks. An empty result has start > end.
    static func normalizedRange(start: Int64, end: Int64, length: Int, inBits: Bool) -> ByteRange {
        let total = inBits ? Int64(length) << 3 : Int64(length)
        var range = ByteRange(start: start, end: end)
        if range.start < 0 { range.start = total + range.start }
        if range.end < 0 { range.end = total + range.end }
        if range.start < 0 { range.start = 0 }
        if range.end < 0 { range.end = 0 }
        if range.end >= total { range.end = total - 1 }
        if inBits && range.start <= range.end {
            range.firstMask = ~UInt8(truncatingIfNeeded: (1 << (8 - (range.start & 7))) - 1)
            range.lastMask = UInt8(truncatingIfNeeded: (1 << (7 - (range.end & 7))) - 1)
            range.start >>= 3
            range.end >>= 3
        }
        return range
    }

    /// BITCOUNT key [start end [BYTE|BIT]].
    static func bitCount(_ context: inout CommandContext) {
        let count = context.arguments.count
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let value = valueOrZeroReply(&context, shard, key) else { return }
            var start: Int64 = 0
            var end: Int64 = 0
            var inBits = false
            if count == 4 || count == 5 {
                guard let first = context.integerArgument(2), let last = context.integerArgument(3) else { return }
                if first < 0 && last < 0 && first > last {
                    context.output.writeInteger(0)
                    return
                }
                if count == 5 {
                    guard let unit = rangeUnit(context.arguments, 4) else {
                        context.output.writeError(RedisError.syntax)
                        return
                    }
                    inBits = unit
                }
                start = first
                end = last
            } else if count == 2 {
                start = 0
                end = -1
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            let total = value.withStringBytes { bytes -> Int64 in
                let range = normalizedRange(start: start, end: end, length: bytes.count, inBits: inBits)
                if range.start > range.end { return 0 }
                let lower = Int(range.start)
                let upper = Int(range.end)
                var bits = Int64(populationCount(UnsafeRawBufferPointer(rebasing: bytes[lower...upper])))
                bits -= Int64((bytes[lower] & range.firstMask).nonzeroBitCount)
                bits -= Int64((bytes[upper] & range.lastMask).nonzeroBitCount)
                return bits
            }
            context.output.writeInteger(total)
        }
    }

    /// BYTE → false, BIT → true, anything else nil.
    static func rangeUnit(_ arguments: CommandArguments, _ index: Int) -> Bool? {
        if arguments.matches(index, "bit") { return true }
        if arguments.matches(index, "byte") { return false }
        return nil
    }

    /// BITPOS key bit [start [end [BYTE|BIT]]]: the first bit set to `bit` in the range; -1
    /// when there is none, except that a search for 0 without an explicit end treats the
    /// string as followed by zeros (and a missing key as all zeros).
    static func bitPosition(_ context: inout CommandContext) {
        let count = context.arguments.count
        guard let bit = context.integerArgument(2) else { return }
        if bit != 0 && bit != 1 {
            context.output.writeError(bitArgumentError)
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                context.output.writeInteger(bit == 1 ? -1 : 0)
                return
            }
            let value = entry.value
            if !value.isString {
                context.output.writeError(RedisError.wrongType)
                return
            }
            var start: Int64 = 0
            var end: Int64 = -1
            var endGiven = false
            var inBits = false
            if count >= 4 && count <= 6 {
                guard let first = context.integerArgument(3) else { return }
                start = first
                if count == 6 {
                    guard let unit = rangeUnit(context.arguments, 5) else {
                        context.output.writeError(RedisError.syntax)
                        return
                    }
                    inBits = unit
                }
                if count >= 5 {
                    guard let last = context.integerArgument(4) else { return }
                    end = last
                    endGiven = true
                }
            } else if count != 3 {
                context.output.writeError(RedisError.syntax)
                return
            }
            let position = value.withStringBytes { bytes -> Int64 in
                var range: ByteRange
                if count == 3 {
                    range = ByteRange(start: 0, end: Int64(bytes.count) - 1)
                } else {
                    // Without an explicit end, Redis sets it to the last byte (or last bit + 7).
                    let last = endGiven ? end : (inBits ? (Int64(bytes.count) << 3) + 7 : Int64(bytes.count) - 1)
                    range = normalizedRange(start: start, end: last, length: bytes.count, inBits: inBits)
                }
                if range.start > range.end { return -1 }
                return searchBit(bytes, range, bit: bit == 1, endGiven: endGiven)
            }
            context.output.writeInteger(position)
        }
    }

    /// The search of BITPOS over a normalized, non-empty range: the masked first byte, the
    /// whole bytes, then the masked last byte, as bitops.c does them.
    static func searchBit(_ bytes: UnsafeRawBufferPointer, _ range: ByteRange, bit: Bool, endGiven: Bool) -> Int64 {
        var start = Int(range.start)
        var remaining = Int(range.end - range.start) + 1
        var position: Int64
        func masked(_ byte: UInt8, _ mask: UInt8) -> UInt8 { bit ? byte & ~mask : byte | mask }
        search: do {
            if range.firstMask != 0 {
                var byte = masked(bytes[start], range.firstMask)
                if range.lastMask != 0 && remaining == 1 { byte = masked(byte, range.lastMask) }
                position = firstBit(of: byte, bit: bit)
                if remaining == 1 || (position != -1 && position != 8) { break search }
                start += 1
                remaining -= 1
            }
            let whole = remaining - (range.lastMask != 0 ? 1 : 0)
            if whole > 0 {
                position = firstBit(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + whole)]), bit: bit)
                if remaining == whole || (position != -1 && position != Int64(whole) << 3) { break search }
                start += whole
                remaining -= whole
            }
            position = firstBit(of: masked(bytes[Int(range.end)], range.lastMask), bit: bit)
        }
        if endGiven && !bit && position == Int64(remaining) << 3 { return -1 }
        if position != -1 { position += Int64(start) << 3 }
        return position
    }

    /// The first bit equal to `bit` in one byte (MSB first): -1 if none for 1, 8 if none for 0.
    static func firstBit(of byte: UInt8, bit: Bool) -> Int64 {
        let probe = bit ? byte : ~byte
        if probe == 0 { return bit ? -1 : 8 }
        return Int64(probe.leadingZeroBitCount)
    }

    /// Redis's `redisBitpos`: the first bit equal to `bit` in `bytes`; when there is none,
    /// -1 when looking for 1 and the bit just past the end when looking for 0. Skips whole
    /// words of 0x00 (or 0xff) bytes eight at a time.
    static func firstBit(_ bytes: UnsafeRawBufferPointer, bit: Bool) -> Int64 {
        let skip: UInt64 = bit ? 0 : ~0
        var index = 0
        while index + 8 <= bytes.count && bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) == skip {
            index += 8
        }
        while index < bytes.count {
            let position = firstBit(of: bytes[index], bit: bit)
            if position >= 0 && position < 8 { return Int64(index) << 3 + position }
            index += 1
        }
        return bit ? -1 : Int64(bytes.count) << 3
    }

    /// Set bits in `bytes`, eight bytes at a time.
    static func populationCount(_ bytes: UnsafeRawBufferPointer) -> Int {
        var total = 0
        var index = 0
        while index + 8 <= bytes.count {
            total += bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self).nonzeroBitCount
            index += 8
        }
        while index < bytes.count {
            total += bytes[index].nonzeroBitCount
            index += 1
        }
        return total
    }

    // MARK: BITOP

    enum BitOperator { case and, or, xor, not }

    /// BITOP AND|OR|XOR|NOT destkey key [key ...]: stores the result (as long as the longest
    /// source, shorter ones read as zero-padded) without a TTL, or deletes the destination when
    /// every source is empty or missing; replies with the result's length.
    static func bitOperation(_ context: inout CommandContext) {
        let arguments = context.arguments
        let operation: BitOperator
        if arguments.matches(1, "and") {
            operation = .and
        } else if arguments.matches(1, "or") {
            operation = .or
        } else if arguments.matches(1, "xor") {
            operation = .xor
        } else if arguments.matches(1, "not") {
            operation = .not
        } else {
            context.output.writeError(RedisError.syntax)
            return
        }
        let count = arguments.count
        if operation == .not && count != 4 {
            context.output.writeError(bitopNotError)
            return
        }
        context.lockShards(context.shardMask(keysFrom: 2, through: count - 1))
        var sources: [[UInt8]] = []
        sources.reserveCapacity(count - 3)
        var longest = 0
        for index in 3..<count {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
                sources.append([])
                continue
            }
            guard let bytes = entry.value.stringBytes else {
                context.output.writeError(RedisError.wrongType)
                return
            }
            longest = max(longest, bytes.count)
            sources.append(bytes)
        }
        let destination = context.key(2)
        let shard = context.keyspace.shard(for: destination)
        if longest == 0 {
            if shard.lookup(context.database, destination, now: context.now) != nil {
                shard.remove(context.database, destination)
                context.addChanges(1)
                context.notify(.generic, "del", destination)
            }
            context.output.writeInteger(0)
            return
        }
        let result = combine(sources, operation, length: longest)
        shard.store(context.database, destination,
                    Entry(value: result.count <= 20 ? .fromBytes(result) : .string(result)))
        context.addChanges(1)
        context.notify(.string, "set", destination)
        context.output.writeInteger(longest)
    }

    /// The byte-wise combination of `sources`, each zero-padded to `length`.
    static func combine(_ sources: [[UInt8]], _ operation: BitOperator, length: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: length)
        let first = sources[0]
        for index in 0..<first.count { result[index] = first[index] }
        if operation == .not {
            for index in 0..<length { result[index] = ~result[index] }
            return result
        }
        for source in sources.dropFirst() {
            let shared = source.count
            switch operation {
            case .and:
                for index in 0..<shared { result[index] &= source[index] }
                for index in shared..<length { result[index] = 0 }
            case .or:
                for index in 0..<shared { result[index] |= source[index] }
            case .xor:
                for index in 0..<shared { result[index] ^= source[index] }
            case .not:
                break
            }
        }
        return result
    }

    // MARK: BITFIELD

    /// How INCRBY and SET handle a value that does not fit the field.
    enum OverflowMode { case wrap, saturate, fail }

    /// One parsed BITFIELD operation.
    struct FieldOperation {
        enum Kind { case get, set, incrementBy }
        var kind: Kind
        var offset: UInt64
        var width: Int
        var isSigned: Bool
        var argument: Int64
        var overflow: OverflowMode
    }

    /// A field type `i1`...`i64` or `u1`...`u63`, or nil after writing Redis's error.
    static func fieldType(_ context: inout CommandContext, _ index: Int) -> (isSigned: Bool, width: Int)? {
        let text = context.arguments[index]
        let isSigned: Bool
        switch text.first {
        case UInt8(ascii: "i"): isSigned = true
        case UInt8(ascii: "u"): isSigned = false
        default:
            context.output.writeError(bitfieldTypeError)
            return nil
        }
        guard let width = parseRedisInteger(text.dropFirst()), width >= 1, width <= (isSigned ? 64 : 63) else {
            context.output.writeError(bitfieldTypeError)
            return nil
        }
        return (isSigned, Int(width))
    }

    /// Parses every operation first (all errors come before any effect), then runs them in
    /// order on one lookup, as bitops.c's `bitfieldGeneric` does.
    static func parseFieldOperations(_ context: inout CommandContext) -> [FieldOperation]? {
        var operations: [FieldOperation] = []
        var overflow = OverflowMode.wrap
        var index = 2
        let count = context.arguments.count
        let arguments = context.arguments
        while index < count {
            let remaining = count - index - 1
            let kind: FieldOperation.Kind
            if arguments.matches(index, "get") && remaining >= 2 {
                kind = .get
            } else if arguments.matches(index, "set") && remaining >= 3 {
                kind = .set
            } else if arguments.matches(index, "incrby") && remaining >= 3 {
                kind = .incrementBy
            } else if arguments.matches(index, "overflow") && remaining >= 1 {
                if arguments.matches(index + 1, "wrap") {
                    overflow = .wrap
                } else if arguments.matches(index + 1, "sat") {
                    overflow = .saturate
                } else if arguments.matches(index + 1, "fail") {
                    overflow = .fail
                } else {
                    context.output.writeError(overflowTypeError)
                    return nil
                }
                index += 2
                continue
            } else {
                context.output.writeError(RedisError.syntax)
                return nil
            }
            guard let type = fieldType(&context, index + 1) else { return nil }
            guard let offset = bitOffset(&context, index + 2, width: type.width) else { return nil }
            var argument: Int64 = 0
            if kind != .get {
                guard let value = context.integerArgument(index + 3) else { return nil }
                argument = value
            }
            operations.append(FieldOperation(kind: kind, offset: offset, width: type.width, isSigned: type.isSigned,
                                             argument: argument, overflow: overflow))
            index += kind == .get ? 3 : 4
        }
        return operations
    }

    /// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
    /// [OVERFLOW WRAP|SAT|FAIL] ..., and BITFIELD_RO (GET only).
    static func bitField(_ context: inout CommandContext, readOnly: Bool) {
        guard let operations = parseFieldOperations(&context) else { return }
        var highestBit: UInt64 = 0
        var writes = false
        for operation in operations where operation.kind != .get {
            writes = true
            highestBit = max(highestBit, operation.offset + UInt64(operation.width) - 1)
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            if !writes {
                let (value, failed) = readValue(&context, shard, key)
                if failed { return }
                context.output.writeArrayHeader(operations.count)
                for operation in operations {
                    let field = value?.withStringBytes { readField($0, operation.offset, operation.width) } ?? 0
                    writeField(&context.output, field, operation)
                }
                return
            }
            if readOnly {
                context.output.writeError(readOnlyBitfieldError)
                return
            }
            // The replies are written while the bytes are out of the table, so the buffer moves
            // into the closure's reach (an empty buffer takes its place: no copy, no allocation).
            var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
            swap(&output, &context.output)
            defer { swap(&output, &context.output) }
            do throws(KeyspaceError) {
                let (fieldChanges, grew) = try shard.mutateString(
                    context.database, key, now: context.now, minimumCount: Int(highestBit >> 3) + 1
                ) { bytes -> (result: Int64, changed: Bool) in
                    output.writeArrayHeader(operations.count)
                    var changes: Int64 = 0
                    bytes.withUnsafeMutableBytes { buffer in
                        for operation in operations {
                            changes += apply(operation, buffer, &output)
                        }
                    }
                    return (changes, changes > 0)
                }
                // A string created or grown by operations that all failed (OVERFLOW FAIL) still
                // changed the dataset; Redis leaves its dirty counter alone there, but the AOF must
                // carry the new key, so it counts here.
                let changes = max(fieldChanges, grew ? 1 : 0)
                if changes > 0 {
                    context.addChanges(changes)
                    context.notify(.string, "setbit", context.arguments[1])
                }
            } catch {
                output.writeKeyspaceError(error)
            }
        }
    }

    /// Runs one operation on the (already large enough) string, writes its reply and returns 1
    /// when it changed the field.
    static func apply(_ operation: FieldOperation, _ buffer: UnsafeMutableRawBufferPointer,
                      _ output: inout OutputBuffer) -> Int64 {
        let bytes = UnsafeRawBufferPointer(buffer)
        let old = readField(bytes, operation.offset, operation.width)
        if operation.kind == .get {
            writeField(&output, old, operation)
            return 0
        }
        var new: UInt64
        var overflowed: Bool
        if operation.isSigned {
            let oldValue = signExtended(old, operation.width)
            let checked: (overflowed: Bool, limit: Int64)
            if operation.kind == .incrementBy {
                checked = signedOverflow(oldValue, operation.argument, operation.width, operation.overflow)
                new = UInt64(bitPattern: checked.overflowed ? checked.limit : oldValue &+ operation.argument)
            } else {
                checked = signedOverflow(operation.argument, 0, operation.width, operation.overflow)
                new = UInt64(bitPattern: checked.overflowed ? checked.limit : operation.argument)
            }
            overflowed = checked.overflowed
        } else {
            let checked: (overflowed: Bool, limit: UInt64)
            if operation.kind == .incrementBy {
                checked = unsignedOverflow(old, operation.argument, operation.width, operation.overflow)
                new = checked.overflowed ? checked.limit : old &+ UInt64(bitPattern: operation.argument)
            } else {
                let value = UInt64(bitPattern: operation.argument)
                checked = unsignedOverflow(value, 0, operation.width, operation.overflow)
                new = checked.overflowed ? checked.limit : value
            }
            overflowed = checked.overflowed
        }
        if overflowed && operation.overflow == .fail {
            output.writeNull()
            return 0
        }
        let stored = new & widthMask(operation.width)
        writeField(&output, operation.kind == .incrementBy ? stored : old, operation)
        writeField(buffer, operation.offset, operation.width, new)
        return stored != old ? 1 : 0
    }

    /// The low `width` bits set.
    @inline(__always) static func widthMask(_ width: Int) -> UInt64 { width == 64 ? ~0 : (1 << UInt64(width)) - 1 }

    /// Writes a field value as an integer reply (signed fields sign-extended).
    static func writeField(_ output: inout OutputBuffer, _ field: UInt64, _ operation: FieldOperation) {
        if operation.isSigned {
            output.writeInteger(signExtended(field, operation.width))
        } else {
            output.writeInteger(Int64(bitPattern: field))
        }
    }

    /// `field`'s low `width` bits as a two's complement number.
    static func signExtended(_ field: UInt64, _ width: Int) -> Int64 {
        if width < 64 && field & (1 << UInt64(width - 1)) != 0 { return Int64(bitPattern: field | ~widthMask(width)) }
        return Int64(bitPattern: field)
    }

    /// The `width` bits at bit `offset`, MSB first; bits past the end of `bytes` read as 0.
    static func readField(_ bytes: UnsafeRawBufferPointer, _ offset: UInt64, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        var position = offset
        for _ in 0..<width {
            let byteIndex = position >> 3
            var bit: UInt64 = 0
            if byteIndex < UInt64(bytes.count) {
                bit = UInt64(bytes[Int(byteIndex)] >> (7 - UInt8(position & 7))) & 1
            }
            value = value << 1 | bit
            position += 1
        }
        return value
    }

    /// Stores the low `width` bits of `value` at bit `offset`, MSB first (the string is
    /// already long enough).
    static func writeField(_ bytes: UnsafeMutableRawBufferPointer, _ offset: UInt64, _ width: Int, _ value: UInt64) {
        var position = offset
        for shift in stride(from: width - 1, through: 0, by: -1) {
            let byteIndex = Int(position >> 3)
            let mask = UInt8(0x80) >> UInt8(position & 7)
            if (value >> UInt64(shift)) & 1 != 0 {
                bytes[byteIndex] |= mask
            } else {
                bytes[byteIndex] &= ~mask
            }
            position += 1
        }
    }

    /// Redis's `checkUnsignedBitfieldOverflow`: whether `value + increment` leaves the
    /// unsigned `width`-bit range (a SET passes its value with increment 0; a negative value
    /// reads as a huge unsigned one, as in C), and the result under WRAP or SAT.
    static func unsignedOverflow(_ value: UInt64, _ increment: Int64, _ width: Int,
                                 _ mode: OverflowMode) -> (overflowed: Bool, limit: UInt64) {
        let maximum = widthMask(width)
        let maximumIncrement = Int64(bitPattern: maximum &- value)
        let minimumIncrement = Int64(bitPattern: 0 &- value)
        let wrapped = (value &+ UInt64(bitPattern: increment)) & maximum
        if value > maximum || (increment > 0 && increment > maximumIncrement) {
            return (true, mode == .saturate ? maximum : wrapped)
        }
        if increment < 0 && increment < minimumIncrement {
            return (true, mode == .saturate ? 0 : wrapped)
        }
        return (false, 0)
    }

    /// Redis's `checkSignedBitfieldOverflow`, with its wrapping intermediate arithmetic.
    static func signedOverflow(_ value: Int64, _ increment: Int64, _ width: Int,
                               _ mode: OverflowMode) -> (overflowed: Bool, limit: Int64) {
        let maximum: Int64 = width == 64 ? .max : (1 << Int64(width - 1)) - 1
        let minimum = -maximum - 1
        let maximumIncrement = Int64(bitPattern: UInt64(bitPattern: maximum) &- UInt64(bitPattern: value))
        let minimumIncrement = minimum &- value
        var sum = UInt64(bitPattern: value) &+ UInt64(bitPattern: increment)
        if width < 64 {
            let high = ~widthMask(width)
            sum = sum & (1 << UInt64(width - 1)) != 0 ? sum | high : sum & ~high
        }
        let wrapped = Int64(bitPattern: sum)
        if value > maximum || (width != 64 && increment > maximumIncrement)
            || (value >= 0 && increment > 0 && increment > maximumIncrement) {
            return (true, mode == .saturate ? maximum : wrapped)
        }
        if value < minimum || (width != 64 && increment < minimumIncrement)
            || (value < 0 && increment < 0 && increment < minimumIncrement) {
            return (true, mode == .saturate ? minimum : wrapped)
        }
        return (false, 0)
    }
}

extension Value {
    /// Calls `body` with a string value's bytes without copying them: the stored array, or an
    /// integer's decimal digits formatted on the stack. A hash reads as empty (callers check).
    func withStringBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .string(let bytes):
            return bytes.withUnsafeBytes(body)
        case .integer(let integer):
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
                let length = formatDecimal(integer, into: scratch)
                let digits = UnsafeMutableBufferPointer(rebasing: scratch[(scratch.count - length)...])
                return body(UnsafeRawBufferPointer(digits))
            }
        case .hash, .list, .set, .sortedSet, .stream:
            return body(UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }
}
