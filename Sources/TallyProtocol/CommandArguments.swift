// CommandArguments: one parsed request (argv), stored flat so parsing does not allocate per argument.

/// The arguments of one request, argv[0] being the command name.
///
/// All argument bytes live in one reusable array; each argument is a range of it. The parser
/// clears and refills the same value for every command, so steady-state parsing allocates nothing.
public struct CommandArguments {
    /// All argument bytes (back to back, or with a request's framing between them).
    public private(set) var bytes: [UInt8]
    /// Where each argument lives in `bytes`.
    public private(set) var ranges: [Range<Int>]

    /// Creates an empty argument list.
    public init() {
        self.init(reservingCapacity: true)
    }

    /// Creates an empty argument list, with room for a typical command or with none (a
    /// placeholder that allocates nothing).
    public init(reservingCapacity: Bool) {
        bytes = []
        ranges = []
        if reservingCapacity {
            bytes.reserveCapacity(256)
            ranges.reserveCapacity(16)
        }
    }

    /// Creates arguments from byte arrays (tests, AOF loading, internal commands).
    public init(_ arguments: [[UInt8]]) {
        self.init()
        for argument in arguments { append(argument) }
    }

    /// Number of arguments including the command name.
    @inlinable public var count: Int { ranges.count }

    /// Argument `index` as a slice of the shared storage (no copy).
    @inlinable public subscript(index: Int) -> ArraySlice<UInt8> { bytes[ranges[index]] }

    /// Calls `body` with argument `index`'s bytes in place: unlike the subscript's slice, no
    /// retain and release of the storage (the command-name lookup of every request).
    @inlinable public func withUnsafeBytes<R>(of index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[ranges[index]])) }
    }

    /// A copy of argument `index`, for storing it in the keyspace.
    @inlinable public func copy(_ index: Int) -> [UInt8] { Array(bytes[ranges[index]]) }

    /// Removes all arguments, keeping capacity unless one big request grew it: a 100,000-member
    /// SADD must not keep megabytes per connection once it has run (Redis frees a command's argv
    /// after it, networking.c freeClientArgv).
    public mutating func removeAll() {
        if bytes.capacity > Self.retainedBytes || ranges.capacity > Self.retainedArguments {
            self = CommandArguments()
            return
        }
        bytes.removeAll(keepingCapacity: true)
        ranges.removeAll(keepingCapacity: true)
    }

    /// Capacity kept between requests: ordinary commands never reallocate.
    static let retainedBytes = 64 * 1024
    static let retainedArguments = 1024

    /// Reserves room for `byteCount` more argument bytes and `argumentCount` more arguments.
    /// The request parser calls it with client-claimed sizes already capped by its limits.
    public mutating func reserveAdditional(bytes byteCount: Int, arguments argumentCount: Int = 0) {
        if bytes.capacity - bytes.count < byteCount { bytes.reserveCapacity(bytes.count + byteCount) }
        if ranges.capacity - ranges.count < argumentCount { ranges.reserveCapacity(ranges.count + argumentCount) }
    }

    /// Appends one argument.
    public mutating func append<C: Collection>(_ argument: C) where C.Element == UInt8 {
        let start = bytes.count
        bytes.append(contentsOf: argument)
        ranges.append(start..<bytes.count)
    }

    /// Appends one argument from raw memory.
    public mutating func append(_ argument: UnsafeRawBufferPointer) {
        let start = bytes.count
        bytes.append(contentsOf: argument)
        ranges.append(start..<bytes.count)
    }

    /// Appends the arguments of one request from `span`, a stretch of the read buffer that
    /// holds them with RESP framing in between: the stretch is copied with one append, and
    /// `offsets` holds each argument's start and end relative to it. The framing bytes stay in
    /// `bytes`, unused (`ranges` skip them).
    mutating func appendArguments(from span: UnsafeRawBufferPointer, offsets: UnsafeBufferPointer<Int>) {
        let base = bytes.count
        bytes.append(contentsOf: span)
        var index = 0
        while index < offsets.count {
            ranges.append((base + offsets[index])..<(base + offsets[index + 1]))
            index += 2
        }
    }

    /// True if argument `index` equals `literal` ignoring ASCII case (option names, subcommands).
    public func matches(_ index: Int, _ literal: StaticString) -> Bool {
        let range = ranges[index]
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { expected in
            var position = range.lowerBound
            for byte in expected {
                let actual = bytes[position]
                let folded = actual >= 65 && actual <= 90 ? actual | 0x20 : actual
                let wanted = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                if folded != wanted { return false }
                position += 1
            }
            return true
        }
    }

    /// Encodes these arguments as a RESP multibulk array (the AOF record form).
    public func encodeRESP(into output: inout [UInt8]) {
        RESPRecord.appendHeader(count: count, to: &output)
        for range in ranges { RESPRecord.appendBulk(bytes[range], to: &output) }
    }
}

/// The one encoder of RESP command records (`*N` then `$len` bulks): AOF appends, SELECT
/// records, rewrite bases and propagated commands all go through it, so a record that
/// redis-check-aof accepts is written in one place (Redis: catAppendOnlyGenericCommand).
public enum RESPRecord {
    /// Appends `*<count>\r\n`.
    @inline(__always)
    public static func appendHeader(count: Int, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "*"))
        appendDecimal(count, to: &output)
        output.append(13); output.append(10)
    }

    /// Appends `$<length>\r\n<bytes>\r\n`.
    @inline(__always)
    public static func appendBulk<C: Collection>(_ bytes: C, to output: inout [UInt8]) where C.Element == UInt8 {
        output.append(UInt8(ascii: "$"))
        appendDecimal(bytes.count, to: &output)
        output.append(13); output.append(10)
        output.append(contentsOf: bytes)
        output.append(13); output.append(10)
    }

    /// Appends a whole record given as separate arguments.
    public static func append(_ arguments: [[UInt8]], to output: inout [UInt8]) {
        appendHeader(count: arguments.count, to: &output)
        for argument in arguments { appendBulk(argument, to: &output) }
    }

    /// Appends `SELECT <database>` (emitted by the AOF when the database changes).
    public static func appendSelect(_ database: Int, to output: inout [UInt8]) {
        appendHeader(count: 2, to: &output)
        appendBulk("SELECT".utf8, to: &output)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
            let length = formatDecimal(Int64(database), into: scratch)
            appendBulk(UnsafeBufferPointer(rebasing: scratch[scratch.count - length..<scratch.count]), to: &output)
        }
    }
}

/// Appends the decimal form of `value` to `output` without allocating a String.
public func appendDecimal(_ value: Int, to output: inout [UInt8]) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
        let length = formatDecimal(Int64(value), into: scratch)
        output.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[scratch.count - length..<scratch.count]))
    }
}
