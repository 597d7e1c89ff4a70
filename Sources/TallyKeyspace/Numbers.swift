// Numbers: Redis's exact number parsing and formatting rules (string2ld, ld2string; string2ll is
// TallyProtocol's parseRedisInteger).
import Glibc
import TallyProtocol

/// The canonical decimal bytes of `value` (what GET returns for an integer-encoded value).
public func decimalBytes(_ value: Int64) -> [UInt8] {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
        let length = formatDecimal(value, into: scratch)
        return Array(scratch[(scratch.count - length)...])
    }
}

extension Value {
    /// A string value from bytes, integer-encoded when the bytes are a canonical integer.
    @inlinable
    public static func fromBytes(_ bytes: [UInt8]) -> Value {
        if let integer = parseRedisInteger(bytes) { return .integer(integer) }
        return .string(bytes)
    }

    /// A string value from a request slice, integer-encoded when canonical.
    @inlinable
    public static func fromSlice(_ bytes: ArraySlice<UInt8>) -> Value {
        if let integer = parseRedisInteger(bytes) { return .integer(integer) }
        return .string(Array(bytes))
    }

    /// The bytes of a string value (nil for a hash).
    public var stringBytes: [UInt8]? {
        switch self {
        case .integer(let integer): return decimalBytes(integer)
        case .string(let bytes): return bytes
        case .hash, .list, .set, .sortedSet, .stream: return nil
        }
    }
}

/// Redis's `MAX_LONG_DOUBLE_CHARS`: the longest float text accepted or produced.
public let maximumLongDoubleCharacters = 5 * 1024

/// Parses `bytes` like Redis's `string2ld` (strtold on the whole text): no leading space, no
/// trailing garbage or embedded NUL, no NaN, no overflow to ±HUGE_VAL or underflow to zero. "inf" is
/// accepted here; the caller rejects an infinite result.
public func parseLongDouble<C: Collection>(_ bytes: C) -> Float80? where C.Element == UInt8 {
    let length = bytes.count
    if length == 0 || length >= maximumLongDoubleCharacters { return nil }
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { buffer -> Float80? in
        guard let base = buffer.baseAddress else { return nil }
        var position = 0
        for byte in bytes {
            buffer[position] = CChar(bitPattern: byte)
            position += 1
        }
        buffer[length] = 0
        let first = bytes.first ?? 0
        if first == 32 || (first >= 9 && first <= 13) { return nil }
        var end: UnsafeMutablePointer<CChar>?
        errno = 0
        let value = strtold(base, &end)
        // Redis also checks that strtold consumed every byte: a NUL inside the text ("1\0",
        // or a value starting with NUL) stops strtold early and must be refused, not read as 0.
        guard let end, end == base + length else { return nil }
        if errno == EINVAL || value.isNaN { return nil }
        if errno == ERANGE && (value.isInfinite || value == 0) { return nil }
        return value
    }
}

/// Formats `value` like Redis's `ld2string(..., LD_STR_HUMAN)`: `%.17Lf`, then trailing zeros
/// after the point (and a bare point) removed, and "-0" printed as "0".
public func formatLongDouble(_ value: Float80) -> [UInt8] {
    if value.isInfinite { return Array((value > 0 ? "inf" : "-inf").utf8) }
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: maximumLongDoubleCharacters) { buffer in
        let written = withVaList([value]) { arguments in
            vsnprintf(buffer.baseAddress, maximumLongDoubleCharacters, "%.17Lf", arguments)
        }
        var length = Int(min(written, Int32(maximumLongDoubleCharacters - 1)))
        var hasPoint = false
        for index in 0..<length where buffer[index] == CChar(UInt8(ascii: ".")) { hasPoint = true }
        if hasPoint {
            while length > 0 && buffer[length - 1] == CChar(UInt8(ascii: "0")) { length -= 1 }
            if length > 0 && buffer[length - 1] == CChar(UInt8(ascii: ".")) { length -= 1 }
        }
        if length == 2 && buffer[0] == CChar(UInt8(ascii: "-")) && buffer[1] == CChar(UInt8(ascii: "0")) {
            return [UInt8(ascii: "0")]
        }
        return (0..<length).map { UInt8(bitPattern: buffer[$0]) }
    }
}
