// CommandArguments: one parsed request (argv), stored flat so parsing does not allocate per argument.

/// The arguments of one request, argv[0] being the command name.
///
/// All argument bytes live in one reusable array; each argument is a range of it. The parser
/// clears and refills the same value for every command, so steady-state parsing allocates nothing.
/// Both arrays only ever grow: the arguments in use are counted apart (`byteCount`, `count`), so
/// clearing is two stores rather than `Array.removeAll(keepingCapacity:)`, whose generic
/// replaceSubrange cost about 170 instructions a request (a pipelined LPUSH is about 5,000).
public struct CommandArguments {
    /// Argument bytes (back to back, or with a request's framing between them); the first
    /// `byteCount` are in use, the rest is room kept from earlier requests.
    @usableFromInline private(set) var storage: [UInt8]
    /// Bytes of `storage` in use.
    public private(set) var byteCount: Int
    /// Where each argument lives in `storage`; the first `count` are in use.
    @usableFromInline private(set) var bounds: [Range<Int>]
    /// Number of arguments including the command name.
    public private(set) var count: Int

    /// Creates an empty argument list.
    public init() {
        self.init(reservingCapacity: true)
    }

    /// Creates an empty argument list, with room for a typical command or with none (a
    /// placeholder that allocates nothing).
    public init(reservingCapacity: Bool) {
        storage = []
        bounds = []
        byteCount = 0
        count = 0
        if reservingCapacity {
            storage.reserveCapacity(256)
            bounds.reserveCapacity(16)
        }
    }

    /// Creates arguments from byte arrays (tests, AOF loading, internal commands).
    public init(_ arguments: [[UInt8]]) {
        self.init()
        for argument in arguments { append(argument) }
    }

    /// Argument `index` as a slice of the shared storage (no copy).
    @inlinable public subscript(index: Int) -> ArraySlice<UInt8> {
        precondition(index < count, "argument index out of range")
        return storage[bounds[index]]
    }

    /// Calls `body` with argument `index`'s bytes in place: unlike the subscript's slice, no
    /// retain and release of the storage (the command-name lookup of every request).
    @inlinable public func withUnsafeBytes<R>(of index: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        precondition(index < count, "argument index out of range")
        return storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[bounds[index]])) }
    }

    /// Calls `body` with every argument's bytes in place, valid only inside `body`: a handler
    /// whose own closure reads the arguments (PFADD inside the shard's edit of the value) then
    /// captures no copy of this value, whose two arrays a copy retains and releases.
    @inlinable public func withUnsafeArguments<R>(_ body: (UnsafeArguments) -> R) -> R {
        storage.withUnsafeBytes { raw in
            bounds.withUnsafeBufferPointer { ranges in
                body(UnsafeArguments(raw: raw, ranges: UnsafeBufferPointer(rebasing: ranges[..<count])))
            }
        }
    }

    /// A copy of argument `index`, for storing it in the keyspace.
    @inlinable public func copy(_ index: Int) -> [UInt8] { Array(self[index]) }

    /// Removes all arguments, keeping capacity unless one big request grew it: a 100,000-member
    /// SADD must not keep megabytes per connection once it has run (Redis frees a command's argv
    /// after it, networking.c freeClientArgv).
    public mutating func removeAll() {
        if storage.capacity > Self.retainedBytes || bounds.capacity > Self.retainedArguments {
            self = CommandArguments()
            return
        }
        byteCount = 0
        count = 0
    }

    /// Capacity kept between requests: ordinary commands never reallocate.
    static let retainedBytes = 64 * 1024
    static let retainedArguments = 1024

    /// Reserves room for `byteCount` more argument bytes and `argumentCount` more arguments.
    /// The request parser calls it with client-claimed sizes already capped by its limits.
    public mutating func reserveAdditional(bytes additionalBytes: Int, arguments argumentCount: Int = 0) {
        if storage.capacity - byteCount < additionalBytes { storage.reserveCapacity(byteCount + additionalBytes) }
        if bounds.capacity - count < argumentCount { bounds.reserveCapacity(count + argumentCount) }
    }

    /// Appends one argument.
    public mutating func append<C: Collection>(_ argument: C) where C.Element == UInt8 {
        let start = byteCount
        let length = argument.count
        makeRoom(for: length)
        storage.withUnsafeMutableBufferPointer { whole in
            var position = start
            for byte in argument {
                whole[position] = byte
                position += 1
            }
        }
        byteCount = start + length
        appendBounds(start..<byteCount)
    }

    /// Appends one argument from raw memory.
    public mutating func append(_ argument: UnsafeRawBufferPointer) {
        let start = byteCount
        copyIn(argument)
        appendBounds(start..<byteCount)
    }

    /// Appends the arguments of one request from `span`, a stretch of the read buffer that
    /// holds them with RESP framing in between: the stretch is copied with one memcpy, and
    /// `offsets` holds each argument's start and end relative to it. The framing bytes stay in
    /// the storage, unused (the bounds skip them).
    mutating func appendArguments(from span: UnsafeRawBufferPointer, offsets: UnsafeBufferPointer<Int>) {
        let base = byteCount
        copyIn(span)
        var index = 0
        while index < offsets.count {
            appendBounds((base + offsets[index])..<(base + offsets[index + 1]))
            index += 2
        }
    }

    /// Copies `source` after the bytes in use.
    @inline(__always)
    private mutating func copyIn(_ source: UnsafeRawBufferPointer) {
        let start = byteCount
        makeRoom(for: source.count)
        if source.count > 0 {
            storage.withUnsafeMutableBytes { whole in
                UnsafeMutableRawBufferPointer(rebasing: whole[start..<start + source.count]).copyMemory(from: source)
            }
        }
        byteCount = start + source.count
    }

    /// Makes `storage` at least `byteCount + additional` long (its spare length is reused, so
    /// this grows it only past the longest request so far).
    @inline(__always)
    private mutating func makeRoom(for additional: Int) {
        let needed = byteCount + additional
        if storage.count < needed {
            if storage.capacity < needed { storage.reserveCapacity(Swift.max(needed, 2 * storage.capacity)) }
            storage.append(contentsOf: repeatElement(0, count: needed - storage.count))
        }
    }

    @inline(__always)
    private mutating func appendBounds(_ range: Range<Int>) {
        if count < bounds.count {
            bounds[count] = range
        } else {
            bounds.append(range)
        }
        count += 1
    }

    /// True if argument `index` equals `literal` ignoring ASCII case (option names, subcommands).
    public func matches(_ index: Int, _ literal: StaticString) -> Bool {
        precondition(index < count, "argument index out of range")
        let range = bounds[index]
        guard range.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { expected in
            var position = range.lowerBound
            for byte in expected {
                let actual = storage[position]
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
        for index in 0..<count { RESPRecord.appendBulk(storage[bounds[index]], to: &output) }
    }
}

/// The arguments of a request as raw memory, lent by `CommandArguments.withUnsafeArguments`.
public struct UnsafeArguments {
    @usableFromInline let raw: UnsafeRawBufferPointer
    @usableFromInline let ranges: UnsafeBufferPointer<Range<Int>>

    @inlinable init(raw: UnsafeRawBufferPointer, ranges: UnsafeBufferPointer<Range<Int>>) {
        self.raw = raw
        self.ranges = ranges
    }

    /// Number of arguments including the command name.
    @inlinable public var count: Int { ranges.count }

    /// Argument `index`'s bytes.
    @inlinable public subscript(index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: raw[ranges[index]])
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
