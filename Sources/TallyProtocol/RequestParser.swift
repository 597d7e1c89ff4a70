// RequestParser: incremental RESP multibulk + inline request parser with Redis 7.0's limits and errors.
//
// Input bytes are appended to one buffer; `next(into:)` parses from `position` and keeps the
// pending multibulk count and bulk length between calls, so a command split across reads is
// resumed where it stopped. Consumed bytes are compacted away only when the buffer drains or
// when they dominate it, so steady-state parsing neither allocates nor re-scans.
import Glibc

/// The outcome of asking the parser for the next command.
public enum ParseResult: Equatable, Sendable {
    /// A full command (at least one argument) was stored into the arguments.
    case command
    /// The buffer holds no further complete command.
    case needMoreData
    /// The client sent malformed input; reply `-ERR <text>` and close the connection.
    case protocolError(String)
}

/// Parser limits, mirroring redis.conf and networking.c constants.
public struct RequestParserLimits: Sendable {
    /// `proto-max-bulk-len`: the largest bulk argument accepted (default 512 MB).
    public var maxBulkLength: Int
    /// Largest multibulk count (Redis 7.0 accepts up to INT_MAX).
    public var maxMultibulkLength: Int
    /// `PROTO_INLINE_MAX_SIZE`: longest inline line or count line without a newline (64 KB).
    public var maxInlineLength: Int
    /// Unauthenticated clients may send at most this many arguments (Redis: 10).
    public var unauthenticatedMaxArguments: Int
    /// Unauthenticated clients may send bulks of at most this size (Redis: 16384).
    public var unauthenticatedMaxBulkLength: Int

    /// Redis 7.0 defaults.
    public init(
        maxBulkLength: Int = 512 * 1024 * 1024, maxMultibulkLength: Int = Int(Int32.max),
        maxInlineLength: Int = 64 * 1024, unauthenticatedMaxArguments: Int = 10,
        unauthenticatedMaxBulkLength: Int = 16384
    ) {
        self.maxBulkLength = maxBulkLength
        self.maxMultibulkLength = maxMultibulkLength
        self.maxInlineLength = maxInlineLength
        self.unauthenticatedMaxArguments = unauthenticatedMaxArguments
        self.unauthenticatedMaxBulkLength = unauthenticatedMaxBulkLength
    }
}

/// Incremental request parser for one connection.
public struct RequestParser {
    private enum State {
        /// Between commands: the next byte decides multibulk ('*') or inline.
        case idle
        /// Inside a multibulk request: `remaining` arguments left; `bulkLength` is -1 until
        /// the `$len` line of the next argument has been read.
        case multibulk(remaining: Int, bulkLength: Int)
    }

    /// Received bytes; `buffer[position...]` is not parsed yet.
    public private(set) var buffer: [UInt8]
    /// First unparsed byte.
    public private(set) var position: Int = 0
    /// Where the newline search resumes for the line currently being waited on, so a long
    /// line arriving in pieces is not re-scanned from its start.
    private var scanFrom: Int = 0
    private var state: State = .idle
    /// Limits enforced before allocating.
    public var limits: RequestParserLimits
    /// A parsed prefix below this may stay in front of the next read (see `compactIfUseful`).
    static let keptParsedBytes = 2 * 1024
    /// Compaction threshold: consumed prefix larger than this is removed even mid-stream.
    private static let compactThresholdBytes = 64 * 1024
    /// Capacity reserved for a connection's input, like Redis's PROTO_IOBUF_LEN read size.
    public static let readBufferBytes = 16 * 1024
    /// A buffer above this may shrink towards its recent peak (Redis's PROTO_RESIZE_THRESHOLD).
    static let resizeThresholdBytes = 32 * 1024
    /// Free space below this is never worth a reallocation.
    static let resizeWasteMinimumBytes = 4 * 1024
    /// The most bytes buffered at once since the last `resizeQueryBuffer` (at least one read's
    /// worth), so a buffer that grew for one large request can shrink back afterwards.
    private var peakBytes: Int = 0
    /// At most this many argument slots are reserved up front, whatever count the client claims.
    public static let reservedArgumentsMax = 1024

    /// Creates a parser.
    public init(limits: RequestParserLimits = RequestParserLimits()) {
        self.limits = limits
        buffer = []
        buffer.reserveCapacity(Self.readBufferBytes)
    }

    /// Bytes received but not parsed yet (the query buffer length Redis reports as `qbuf`).
    public var unparsedBytes: Int { buffer.count - position }

    /// Room for more input without reallocating (`qbuf-free`): parsed bytes are reused.
    public var freeBytes: Int { buffer.capacity - unparsedBytes }

    /// Appends received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        prepareAppend(incoming: bytes.count)
        buffer.append(contentsOf: bytes)
        peakBytes = max(peakBytes, buffer.count - position + Self.readBufferBytes)
    }

    /// Appends received bytes from any collection (tests).
    public mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        prepareAppend(incoming: bytes.count)
        buffer.append(contentsOf: bytes)
        peakBytes = max(peakBytes, buffer.count - position + Self.readBufferBytes)
    }

    private mutating func prepareAppend(incoming: Int) {
        compactIfUseful(incoming: incoming)
        // A buffer freed while its client was idle gets a whole read's worth back at once.
        if buffer.capacity == 0 { buffer.reserveCapacity(Self.readBufferBytes) }
    }

    /// Gives back what the query buffer no longer needs, as Redis's clientsCronResizeQueryBuffer
    /// does (networking is per client there, per I/O thread here): an idle client's buffer is
    /// freed entirely, and a buffer over 32 KB shrinks to its recent peak (never below the bulk
    /// argument being received) once it wastes more than 4 KB. Called about ten times a second.
    public mutating func resizeQueryBuffer(idle: Bool) {
        if position > 0 {
            buffer.removeSubrange(0..<position)
            scanFrom -= position
            position = 0
        }
        var pendingBulkBytes = 0
        if case .multibulk(_, let length) = state, length > 0 { pendingBulkBytes = length + 2 }
        if buffer.capacity - buffer.count > Self.resizeWasteMinimumBytes {
            if idle {
                buffer = buffer.isEmpty ? [] : Array(buffer)
            } else if buffer.capacity > Self.resizeThresholdBytes && buffer.capacity / 2 > peakBytes {
                let target = max(buffer.count, peakBytes, pendingBulkBytes)
                var resized: [UInt8] = []
                resized.reserveCapacity(target)
                resized.append(contentsOf: buffer)
                buffer = resized
            }
        }
        peakBytes = max(buffer.count, pendingBulkBytes)
    }

    private mutating func compactIfUseful(incoming: Int) {
        if position == 0 { return }
        if position == buffer.count {
            // Everything is parsed. Emptying the array is a generic call of ~85 instructions,
            // once per request at `-P 1`: a small parsed prefix stays while the next read still
            // fits behind it without growing the buffer.
            if position < Self.keptParsedBytes && buffer.count + incoming <= buffer.capacity { return }
            buffer.removeAll(keepingCapacity: true)
        } else if position >= Self.compactThresholdBytes || position * 2 >= buffer.count {
            buffer.removeSubrange(0..<position)
        } else {
            return
        }
        scanFrom -= position
        position = 0
    }

    /// Parses the next complete command into `arguments` (cleared first when a new command starts).
    /// `authenticated` is false for clients that still need AUTH, which get tighter limits.
    public mutating func next(into arguments: inout CommandArguments, authenticated: Bool = true) -> ParseResult {
        while true {
            switch state {
            case .idle:
                guard position < buffer.count else { return .needMoreData }
                arguments.removeAll()
                if buffer[position] == UInt8(ascii: "*") {
                    if parseWholeMultibulk(into: &arguments, authenticated: authenticated) { return .command }
                    switch parseMultibulkCount(into: &arguments, authenticated: authenticated) {
                    case .needMoreData: return .needMoreData
                    case .protocolError(let text): return .protocolError(text)
                    case .command: continue  // state changed (or an empty *0 / *-1 was skipped)
                    }
                } else {
                    switch parseInline(into: &arguments) {
                    case .needMoreData: return .needMoreData
                    case .protocolError(let text): return .protocolError(text)
                    case .command:
                        if arguments.count > 0 { return .command }
                        continue  // empty line: skipped like Redis
                    }
                }
            case .multibulk(let remaining, let bulkLength):
                if remaining == 0 {
                    state = .idle
                    return .command
                }
                if bulkLength < 0 {
                    guard let line = findLine() else {
                        if buffer.count - position > limits.maxInlineLength {
                            return .protocolError("Protocol error: too big bulk count string")
                        }
                        return .needMoreData
                    }
                    if buffer[position] != UInt8(ascii: "$") {
                        // Redis turns CR/LF inside error text into spaces; a raw one would
                        // break the reply's framing (found by the parser fuzzer).
                        let byte = buffer[position]
                        let got = byte == 13 || byte == 10 ? " " : Character(Unicode.Scalar(byte))
                        return .protocolError("Protocol error: expected '$', got '\(got)'")
                    }
                    guard let length = parseInteger(position + 1, line), length >= 0,
                        length <= limits.maxBulkLength
                    else {
                        return .protocolError("Protocol error: invalid bulk length")
                    }
                    if !authenticated && length > limits.unauthenticatedMaxBulkLength {
                        return .protocolError("Protocol error: unauthenticated bulk length")
                    }
                    position = line + 2
                    scanFrom = position
                    state = .multibulk(remaining: remaining, bulkLength: length)
                    continue
                }
                // Like Redis, the two bytes after the payload are skipped without being checked.
                guard buffer.count - position >= bulkLength + 2 else {
                    // Grow once for a large argument instead of doubling repeatedly as it arrives.
                    if bulkLength >= 32 * 1024 { arguments.reserveAdditional(bytes: bulkLength) }
                    return .needMoreData
                }
                buffer.withUnsafeBytes { raw in
                    arguments.append(UnsafeRawBufferPointer(rebasing: raw[position..<position + bulkLength]))
                }
                position += bulkLength + 2
                scanFrom = position
                state = .multibulk(remaining: remaining - 1, bulkLength: -1)
            }
        }
    }

    /// Finds the `\r` ending the line that starts at `position`, requiring one more byte after it
    /// (Redis's rule). Returns its index, or nil and remembers where to resume.
    private mutating func findLine() -> Int? {
        let start = max(scanFrom, position)
        let found: Int? = buffer.withUnsafeBytes { raw -> Int? in
            guard start < raw.count else { return nil }
            guard let base = raw.baseAddress else { return nil }
            guard let hit = memchrBytes(base + start, 13, raw.count - start) else { return nil }
            return start + hit
        }
        guard let carriage = found else {
            scanFrom = buffer.count
            return nil
        }
        if carriage + 1 >= buffer.count {
            scanFrom = carriage
            return nil
        }
        return carriage
    }

    /// The fast path for a multibulk request that arrived whole (the common case, pipelined or
    /// not): its count, every `$len` line and every argument already buffered, lengths plain
    /// decimals of at most nine digits within the limits. One pass over raw memory finds the
    /// arguments and one append copies them (the framing between them rides along unused).
    /// Anything else (a request split across reads, a count of 0 or less, a malformed line)
    /// returns false with nothing consumed, and the incremental path parses it and answers
    /// Redis's errors.
    private mutating func parseWholeMultibulk(into arguments: inout CommandArguments, authenticated: Bool) -> Bool {
        let maxCount = authenticated ? Self.reservedArgumentsMax
            : min(Self.reservedArgumentsMax, limits.unauthenticatedMaxArguments)
        let maxLength = authenticated ? limits.maxBulkLength
            : min(limits.maxBulkLength, limits.unauthenticatedMaxBulkLength)
        let next: Int? = buffer.withUnsafeBytes { raw -> Int? in
            var cursor = position + 1
            guard let count = Self.decimalLine(raw, &cursor), count > 0, count <= maxCount else { return nil }
            return withUnsafeTemporaryAllocation(of: Int.self, capacity: count * 2) { offsets -> Int? in
                let spanStart = cursor
                for index in 0..<count {
                    guard cursor < raw.count, raw[cursor] == UInt8(ascii: "$") else { return nil }
                    cursor += 1
                    guard let length = Self.decimalLine(raw, &cursor), length <= maxLength,
                          raw.count - cursor >= length + 2 else { return nil }
                    offsets[2 * index] = cursor - spanStart
                    offsets[2 * index + 1] = cursor - spanStart + length
                    cursor += length + 2
                }
                let span = UnsafeRawBufferPointer(rebasing: raw[spanStart..<(spanStart + offsets[2 * count - 1])])
                arguments.appendArguments(from: span, offsets: UnsafeBufferPointer(offsets))
                return cursor
            }
        }
        guard let next else { return false }
        position = next
        scanFrom = next
        return true
    }

    /// A `<digits>\r` line at `cursor` (one more byte required after the `\r`, as Redis's
    /// line search does), cursor moved past both: 1 to 9 digits, no sign, no leading zero.
    @inline(__always)
    private static func decimalLine(_ raw: UnsafeRawBufferPointer, _ cursor: inout Int) -> Int? {
        var value = 0
        var digits = 0
        var index = cursor
        while index < raw.count {
            let byte = raw[index]
            if byte == 13 { break }
            let digit = byte &- 48
            if digit > 9 || digits == 9 || (digits == 1 && value == 0) { return nil }
            value = value &* 10 &+ Int(digit)
            digits += 1
            index += 1
        }
        guard digits > 0, index + 1 < raw.count else { return nil }
        cursor = index + 2
        return value
    }

    private mutating func parseMultibulkCount(into arguments: inout CommandArguments, authenticated: Bool)
        -> ParseResult
    {
        guard let line = findLine() else {
            if buffer.count - position > limits.maxInlineLength {
                return .protocolError("Protocol error: too big mbulk count string")
            }
            return .needMoreData
        }
        guard let count = parseInteger(position + 1, line), count <= limits.maxMultibulkLength else {
            return .protocolError("Protocol error: invalid multibulk length")
        }
        if !authenticated && count > limits.unauthenticatedMaxArguments {
            return .protocolError("Protocol error: unauthenticated multibulk length")
        }
        position = line + 2
        scanFrom = position
        if count > 0 {
            state = .multibulk(remaining: count, bulkLength: -1)
            arguments.reserveAdditional(bytes: 0, arguments: min(count, Self.reservedArgumentsMax))
        }
        return .command
    }

    private mutating func parseInline(into arguments: inout CommandArguments) -> ParseResult {
        let start = max(scanFrom, position)
        let newline: Int? = buffer.withUnsafeBytes { raw -> Int? in
            guard start < raw.count, let base = raw.baseAddress else { return nil }
            return memchrBytes(base + start, 10, raw.count - start).map { start + $0 }
        }
        guard let newline else {
            scanFrom = buffer.count
            if buffer.count - position > limits.maxInlineLength {
                return .protocolError("Protocol error: too big inline request")
            }
            return .needMoreData
        }
        var end = newline
        if end > position && buffer[end - 1] == 13 { end -= 1 }
        guard splitInlineArguments(buffer[position..<end], into: &arguments) else {
            return .protocolError("Protocol error: unbalanced quotes in request")
        }
        position = newline + 1
        scanFrom = position
        return .command
    }

    /// Strict decimal parse of `buffer[from..<to]` with Redis's string2ll rules: optional '-',
    /// no '+', no leading zeros, no spaces, must fit in Int64.
    private func parseInteger(_ from: Int, _ to: Int) -> Int? {
        parseRedisInteger(buffer[from..<to]).map { Int($0) }
    }
}

/// Index of the first `byte` in `count` bytes at `base` (libc memchr is vectorized).
@inline(__always)
func memchrBytes(_ base: UnsafeRawPointer, _ byte: UInt8, _ count: Int) -> Int? {
    guard let hit = memchr(base, Int32(byte), count) else { return nil }
    return base.distance(to: UnsafeRawPointer(hit))
}
