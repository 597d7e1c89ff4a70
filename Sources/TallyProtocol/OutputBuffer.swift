// OutputBuffer: the reusable per-connection reply buffer, with RESP2/RESP3 encoders.

/// The RESP dialect a connection speaks; `HELLO 3` switches a connection to `.resp3`.
public enum RESPVersion: Int, Sendable {
    case resp2 = 2
    case resp3 = 3
}

/// A growable byte buffer that replies are encoded into and the network layer drains.
///
/// Names follow ByteBuffer: `write*` appends at `writerIndex`, the network layer consumes
/// from `readerIndex` and calls `discardReadBytes()` once it has flushed. Integers are
/// formatted in stack scratch space, so encoding a reply never allocates beyond the
/// buffer's own (retained) capacity.
public struct OutputBuffer {
    /// The encoded bytes; `storage[readerIndex..<storage.count]` is pending output.
    public private(set) var storage: [UInt8]
    /// Index of the first byte not yet handed to the kernel.
    public var readerIndex: Int
    /// The dialect used by the encoders for nulls, maps, doubles and verbatim strings.
    public var protocolVersion: RESPVersion
    /// Error replies written so far, counted in INFO errorstats or not. The engine compares it
    /// around a command to tell a failed call (Redis's `stat_total_error_replies` delta in call()).
    public private(set) var errorRepliesWritten: Int = 0
    /// Codes of the error replies written since the engine last took them for INFO errorstats
    /// (`takeErrorCodes`). Empty, and so never allocated, while no error is written: the cost of
    /// error statistics stays on the error path.
    public private(set) var untakenErrorCodes: [[UInt8]] = []
    /// `errorRepliesWritten` when the engine last looked (see CommandEngine.run).
    public var errorRepliesSeen: Int = 0

    /// Creates an empty buffer with `initialCapacity` bytes reserved.
    public init(initialCapacity: Int = 16 * 1024, protocolVersion: RESPVersion = .resp2) {
        storage = []
        // Reserving 0 still calls into the array's growth path (CommandEngine.run makes an
        // empty buffer per command).
        if initialCapacity > 0 { storage.reserveCapacity(initialCapacity) }
        readerIndex = 0
        self.protocolVersion = protocolVersion
    }

    /// Bytes written but not yet consumed.
    @inlinable public var readableBytes: Int { storage.count - readerIndex }

    /// Index where the next write lands; used to roll back a partially encoded reply.
    @inlinable public var writerIndex: Int { storage.count }

    /// Drops consumed bytes, keeping capacity so the next replies reuse the allocation. A small
    /// fully consumed prefix may stay (`readerIndex` then equals `writerIndex`, not 0): emptying
    /// the array is a generic call of ~85 instructions, once per request at `-P 1`, and up to an
    /// eighth of the capacity of sent replies costs no memory the buffer does not already hold.
    public mutating func discardReadBytes() {
        if readerIndex == storage.count {
            if readerIndex < storage.capacity / 8 { return }
            storage.removeAll(keepingCapacity: true)
        } else if readerIndex > 0 {
            storage.removeSubrange(0..<readerIndex)
        }
        readerIndex = 0
    }

    /// Discards everything after `index` (an earlier `writerIndex`).
    public mutating func truncate(to index: Int) {
        precondition(index >= readerIndex && index <= storage.count, "truncate outside written bytes")
        storage.removeSubrange(index..<storage.count)
    }

    /// Releases memory after a very large reply so one big response does not pin it forever.
    public mutating func shrinkIfOversized(limitBytes: Int) {
        if readableBytes == 0 && storage.capacity > limitBytes {
            storage = []
            storage.reserveCapacity(16 * 1024)
            readerIndex = 0
        }
    }

    // MARK: Raw writes

    /// Appends raw bytes.
    public mutating func writeBytes<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        storage.append(contentsOf: bytes)
    }

    /// Appends what `other` holds past its reader index, with the error replies written into it
    /// (a reply assembled in a scratch buffer keeps its errors counted).
    public mutating func writeBuffer(_ other: OutputBuffer) {
        storage.append(contentsOf: other.storage[other.readerIndex...])
        errorRepliesWritten += other.errorRepliesWritten
        untakenErrorCodes.append(contentsOf: other.untakenErrorCodes)
    }

    /// Appends raw bytes from a buffer pointer.
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes)
    }

    /// Appends a literal ASCII string (pre-built replies such as `+OK\r\n`).
    public mutating func writeStaticString(_ string: StaticString) {
        string.withUTF8Buffer { storage.append(contentsOf: $0) }
    }

    /// Appends `\r\n`.
    public mutating func writeCRLF() {
        // One append (one uniqueness and capacity check) instead of two.
        withUnsafeBytes(of: UInt16(0x0A0D).littleEndian) { storage.append(contentsOf: $0) }
    }

    /// Appends `prefix`, the decimal form of `value` and CRLF (`*3\r\n`, `:42\r\n`, `$5\r\n`) in
    /// one append: a reply header is written for every element of LRANGE or MGET, and each
    /// append to the array checks its uniqueness and capacity.
    @inline(__always)
    mutating func writeLine(_ prefix: UInt8, _ value: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.lineScratchBytes) { scratch in
            let digitsEnd = Self.lineScratchBytes - 2
            let length = formatDecimal(value, into: UnsafeMutableBufferPointer(rebasing: scratch[..<digitsEnd]))
            let start = digitsEnd - length - 1
            scratch[start] = prefix
            scratch[digitsEnd] = 13
            scratch[digitsEnd + 1] = 10
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[start...]))
        }
    }

    /// Prefix, up to 20 digits, CRLF.
    @inline(__always) static var lineScratchBytes: Int { 24 }
    /// Bulk strings up to this size are framed in one append (see `writeBulkString`).
    @inline(__always) static var composedBulkBytes: Int { 64 }

    /// Appends the decimal form of `value` without allocating.
    public mutating func writeDecimal(_ value: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
            let length = formatDecimal(value, into: scratch)
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[scratch.count - length..<scratch.count]))
        }
    }

    // MARK: RESP encoders

    /// `+text\r\n`. `text` must not contain CR or LF.
    public mutating func writeSimpleString<C: Collection>(_ text: C) where C.Element == UInt8 {
        storage.append(UInt8(ascii: "+"))
        storage.append(contentsOf: text)
        writeCRLF()
    }

    /// `+text\r\n` for a literal.
    public mutating func writeSimpleString(_ text: StaticString) {
        storage.append(UInt8(ascii: "+"))
        writeStaticString(text)
        writeCRLF()
    }

    /// `-message\r\n`; `message` includes the error code, e.g. `ERR syntax error`.
    /// Newlines inside the message are replaced by spaces, as Redis does. The error counts in
    /// INFO errorstats unless `countsInStatistics` is false (a script passing on the error of a
    /// command it called, which was counted when that command failed).
    public mutating func writeError<C: Collection>(_ message: C, countsInStatistics: Bool = true)
    where C.Element == UInt8 {
        let start = storage.count
        storage.append(UInt8(ascii: "-"))
        for byte in message { storage.append(byte == 13 || byte == 10 ? 32 : byte) }
        writeCRLF()
        noteError(at: start, countsInStatistics: countsInStatistics)
    }

    /// `-message\r\n` for a literal message (which must start with its error code).
    public mutating func writeError(_ message: StaticString) {
        let start = storage.count
        storage.append(UInt8(ascii: "-"))
        writeStaticString(message)
        writeCRLF()
        noteError(at: start, countsInStatistics: true)
    }

    /// Records the error reply written at `start` (its `-`).
    private mutating func noteError(at start: Int, countsInStatistics: Bool) {
        errorRepliesWritten += 1
        if countsInStatistics {
            untakenErrorCodes.append(Self.errorCode(storage[start..<(storage.count - 2)]))
        }
    }

    /// The code INFO errorstats files an error reply under (networking.c afterErrorReply): the
    /// text after `-` up to the first space, looked for in the reply's first 32 bytes; `ERR`
    /// when there is no space there.
    public static func errorCode(_ reply: ArraySlice<UInt8>) -> [UInt8] {
        let window = reply.prefix(32)
        guard window.first == UInt8(ascii: "-"), let space = window.firstIndex(of: 32) else {
            return Array("ERR".utf8)
        }
        return Array(reply[(reply.startIndex + 1)..<space])
    }

    /// Hands over the codes of the errors written since the last call (INFO errorstats).
    public mutating func takeErrorCodes() -> [[UInt8]] {
        let codes = untakenErrorCodes
        untakenErrorCodes = []
        return codes
    }

    /// `:n\r\n`.
    public mutating func writeInteger(_ value: Int64) {
        writeLine(UInt8(ascii: ":"), value)
    }

    /// `:n\r\n` for an `Int`.
    @inlinable public mutating func writeInteger(_ value: Int) { writeInteger(Int64(value)) }

    /// `$len\r\nbytes\r\n`.
    public mutating func writeBulkString<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        let written: Void? = bytes.withContiguousStorageIfAvailable { writeBulkString(UnsafeRawBufferPointer($0)) }
        if written != nil { return }
        writeLine(UInt8(ascii: "$"), Int64(bytes.count))
        storage.append(contentsOf: bytes)
        writeCRLF()
    }

    /// `$len\r\nbytes\r\n` from raw bytes: a short one (a list element, a counter's key) is framed
    /// on the stack and appended once, a longer one in three appends.
    public mutating func writeBulkString(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > Self.composedBulkBytes {
            writeLine(UInt8(ascii: "$"), Int64(bytes.count))
            storage.append(contentsOf: bytes)
            writeCRLF()
            return
        }
        let capacity = Self.lineScratchBytes + Self.composedBulkBytes + 2
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { scratch in
            scratch[0] = UInt8(ascii: "$")
            var position = 1
            if bytes.count < 10 {
                scratch[1] = UInt8(truncatingIfNeeded: bytes.count) &+ 48
                position = 2
            } else {
                scratch[1] = UInt8(truncatingIfNeeded: bytes.count / 10) &+ 48
                scratch[2] = UInt8(truncatingIfNeeded: bytes.count % 10) &+ 48
                position = 3
            }
            scratch[position] = 13
            scratch[position + 1] = 10
            position += 2
            if let base = bytes.baseAddress {
                UnsafeMutableRawPointer(scratch.baseAddress! + position).copyMemory(from: base, byteCount: bytes.count)
            }
            position += bytes.count
            scratch[position] = 13
            scratch[position + 1] = 10
            storage.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<(position + 2)]))
        }
    }

    /// A bulk string holding the decimal form of `value` (GET of an integer-encoded value).
    public mutating func writeBulkDecimal(_ value: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { scratch in
            let length = formatDecimal(value, into: scratch)
            writeBulkString(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: scratch[(scratch.count - length)...])))
        }
    }

    /// The null bulk reply: `$-1\r\n` in RESP2, `_\r\n` in RESP3.
    public mutating func writeNull() {
        if protocolVersion == .resp3 { writeStaticString("_\r\n") } else { writeStaticString("$-1\r\n") }
    }

    /// The null array reply (EXEC aborted by WATCH): `*-1\r\n` in RESP2, `_\r\n` in RESP3.
    public mutating func writeNullArray() {
        if protocolVersion == .resp3 { writeStaticString("_\r\n") } else { writeStaticString("*-1\r\n") }
    }

    /// `*count\r\n`.
    public mutating func writeArrayHeader(_ count: Int) {
        writeLine(UInt8(ascii: "*"), Int64(count))
    }

    /// `%pairs\r\n` in RESP3; `*2·pairs\r\n` in RESP2 (a flat key/value array).
    public mutating func writeMapHeader(_ pairs: Int) {
        if protocolVersion == .resp3 {
            writeLine(UInt8(ascii: "%"), Int64(pairs))
        } else {
            writeLine(UInt8(ascii: "*"), Int64(pairs * 2))
        }
    }

    /// `~count\r\n` in RESP3; `*count\r\n` in RESP2.
    public mutating func writeSetHeader(_ count: Int) {
        writeLine(UInt8(ascii: protocolVersion == .resp3 ? "~" : "*"), Int64(count))
    }

    /// RESP3 boolean `#t`/`#f`; RESP2 falls back to `:1`/`:0` as Redis does.
    public mutating func writeBoolean(_ value: Bool) {
        if protocolVersion == .resp3 {
            writeStaticString(value ? "#t\r\n" : "#f\r\n")
        } else {
            writeStaticString(value ? ":1\r\n" : ":0\r\n")
        }
    }

    /// RESP3 double `,text\r\n`; RESP2 sends the same text as a bulk string.
    /// `text` is the already formatted number (Redis formats doubles with `%.17g`).
    public mutating func writeDouble<C: Collection>(formatted text: C) where C.Element == UInt8 {
        if protocolVersion == .resp3 {
            storage.append(UInt8(ascii: ","))
            storage.append(contentsOf: text)
            writeCRLF()
        } else {
            writeBulkString(text)
        }
    }

    /// RESP3 verbatim string `=len\r\ntxt:...\r\n` (INFO, CLIENT LIST); RESP2 sends a bulk string.
    public mutating func writeVerbatim<C: Collection>(_ text: C, format: StaticString = "txt")
    where C.Element == UInt8 {
        if protocolVersion == .resp3 {
            storage.append(UInt8(ascii: "="))
            writeDecimal(Int64(text.count + 4))
            writeCRLF()
            writeStaticString(format)
            storage.append(UInt8(ascii: ":"))
            storage.append(contentsOf: text)
            writeCRLF()
        } else {
            writeBulkString(text)
        }
    }
}

/// Writes the decimal digits of `value` right-aligned at the end of `scratch` (≥ 20 bytes)
/// and returns how many bytes were used.
@inlinable
public func formatDecimal(_ value: Int64, into scratch: UnsafeMutableBufferPointer<UInt8>) -> Int {
    precondition(scratch.count >= 20, "decimal scratch too small")
    // Work on the magnitude as UInt64 so Int64.min does not overflow on negation.
    var magnitude = value < 0 ? UInt64(bitPattern: 0 &- value) : UInt64(value)
    var position = scratch.count
    repeat {
        position -= 1
        scratch[position] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 48
        magnitude /= 10
    } while magnitude != 0
    if value < 0 {
        position -= 1
        scratch[position] = UInt8(ascii: "-")
    }
    return scratch.count - position
}
