// AOFRecordReader: streams RESP command records out of one AOF file in large chunks.
import Glibc
import TallyProtocol

/// How a scan of one file ended.
public enum AOFScanEnd: Equatable, Sendable {
    /// Every byte belonged to a complete record (or an annotation).
    case complete
    /// The file ends inside a record; records before `validUpTo` are complete.
    case truncated(validUpTo: Int64)
    /// A byte that cannot start or continue a record was found at `offset`.
    case formatError(offset: Int64, validUpTo: Int64)
}

/// One step of `AOFRecordReader.nextItem`.
public enum AOFReadItem: Equatable, Sendable {
    /// A record is in the arguments.
    case record
    /// An annotation line (with its newline) starting at file offset `start`.
    case annotation(start: Int64, line: [UInt8])
    /// No more items; `end` says how the scan ended.
    case end
}

/// Reads records (`*N\r\n$len\r\narg\r\n...`) one by one, reusing a single `CommandArguments`.
///
/// The rules follow Redis's `loadSingleAppendOnlyFile`: lines starting with `#` are annotations
/// and skipped; a record must start with `*` and have N ≥ 1; each argument must start with `$`;
/// running out of bytes anywhere inside a record is a truncation (the crash case), while a
/// wrong byte is a format error (corruption). The CRLF after an argument is not inspected,
/// exactly as Redis discards those two bytes unread.
public struct AOFRecordReader<S: Storage> {
    /// Bytes requested per read(2).
    public static var chunkBytes: Int { 1 << 20 }

    private let storage: S
    private let file: StorageFile
    private var buffer: [UInt8]
    /// Valid bytes are `buffer[start..<end]`; the rest is spare room for the next read.
    private var start = 0
    private var end = 0
    /// File offset of `buffer[0]`.
    private var bufferFileOffset: Int64
    private var reachedEnd = false

    /// The file offset just past the last complete record returned.
    public private(set) var offset: Int64

    /// When set, `nextItem` folds every record into `regionChecksum`/`regionLength` (the mark
    /// verifier); annotations are left to the caller (`addToRegion`, `resetRegion`).
    public var tracksRegion = false
    private var region = CRC64()
    /// Bytes counted into the current region.
    public private(set) var regionLength: Int64 = 0
    /// CRC64 of the current region.
    public var regionChecksum: UInt64 { region.value }

    /// Starts a new, empty region (after a mark or start line).
    public mutating func resetRegion() {
        region = CRC64()
        regionLength = 0
    }

    /// Counts `bytes` (an annotation that is not a mark) into the current region.
    public mutating func addToRegion(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { region.update($0) }
        regionLength += Int64(bytes.count)
    }

    /// Like `next`, but also returns annotation lines instead of skipping them.
    public mutating func nextItem(into arguments: inout CommandArguments, end: inout AOFScanEnd)
        throws(StorageError) -> AOFReadItem
    {
        while true {
            let step = parse(into: &arguments)
            switch step {
            case .record(let recordEnd):
                if tracksRegion {
                    let from = start
                    buffer.withUnsafeBytes { raw in
                        region.update(UnsafeRawBufferPointer(rebasing: raw[from..<recordEnd]))
                    }
                    regionLength += Int64(recordEnd - from)
                }
                start = recordEnd
                offset = bufferFileOffset + Int64(recordEnd)
                return .record
            case .skip(let skipEnd):
                let line = Array(buffer[start..<skipEnd])
                let lineStart = bufferFileOffset + Int64(start)
                start = skipEnd
                offset = bufferFileOffset + Int64(skipEnd)
                return .annotation(start: lineStart, line: line)
            case .formatError(let position):
                end = .formatError(offset: bufferFileOffset + Int64(position), validUpTo: offset)
                return .end
            case .needMore:
                if reachedEnd {
                    if start == self.end || buffer[start] == 35 {
                        end = .complete
                    } else {
                        end = .truncated(validUpTo: offset)
                    }
                    return .end
                }
                try fill()
            }
        }
    }

    /// Starts reading `file` at `offset` (after an RDB preamble, or 0); the file position must
    /// already be there.
    public init(storage: S, file: StorageFile, startingAt offset: Int64 = 0) {
        self.storage = storage
        self.file = file
        self.offset = offset
        bufferFileOffset = offset
        buffer = [UInt8](repeating: 0, count: Self.chunkBytes)
    }

    /// Reads the next record into `arguments`. Returns false at a clean end of file; `end`
    /// then says how the scan ended. Throws on an I/O error.
    public mutating func next(into arguments: inout CommandArguments, end: inout AOFScanEnd)
        throws(StorageError) -> Bool
    {
        while true {
            let step = parse(into: &arguments)
            switch step {
            case .record(let recordEnd):
                start = recordEnd
                offset = bufferFileOffset + Int64(recordEnd)
                return true
            case .skip(let skipEnd):
                start = skipEnd
                offset = bufferFileOffset + Int64(skipEnd)
            case .formatError(let position):
                end = .formatError(offset: bufferFileOffset + Int64(position), validUpTo: offset)
                return false
            case .needMore:
                if reachedEnd {
                    // An annotation may end the file without its newline, as fgets allows.
                    if start == self.end || buffer[start] == 35 {
                        end = .complete
                    } else {
                        end = .truncated(validUpTo: offset)
                    }
                    return false
                }
                try fill()
            }
        }
    }

    // Moves the unconsumed tail to the front (growing the buffer only for a record larger than
    // it) and reads another chunk after it.
    private mutating func fill() throws(StorageError) {
        if start > 0 {
            let live = end - start
            buffer.withUnsafeMutableBytes { raw in
                guard let base = raw.baseAddress else { return }
                memmove(base, base + start, live)
            }
            bufferFileOffset += Int64(start)
            end = live
            start = 0
        }
        if end == buffer.count {
            buffer.append(contentsOf: [UInt8](repeating: 0, count: Swift.max(Self.chunkBytes, buffer.count)))
        }
        let readCount = try readInto(storage, file, &buffer, end..<buffer.count)
        end += readCount
        if readCount == 0 { reachedEnd = true }
    }

    // Parses one record (or annotation) starting at `start` without consuming it. The work is
    // done by non-generic code over the raw bytes: inside this generic type (instantiated from
    // another module, so unspecialized) every `Step` and slice operation went through runtime
    // generic metadata, which cost more than the parse itself.
    private func parse(into arguments: inout CommandArguments) -> AOFParseStep {
        let from = start
        let limit = end
        return buffer.withUnsafeBytes { raw in
            AOFParseStep.parse(UnsafeRawBufferPointer(rebasing: raw[0..<limit]), from: from, into: &arguments)
        }
    }
}

enum AOFParseStep {
    case record(end: Int)
    case skip(end: Int)
    case needMore
    case formatError(at: Int)

    // `bytes` holds the valid bytes; parsing starts at `from`.
    static func parse(_ bytes: UnsafeRawBufferPointer, from: Int, into arguments: inout CommandArguments)
        -> AOFParseStep
    {
        let count = bytes.count
        var position = from
        guard position < count else { return .needMore }
        if bytes[position] == 35 {
            guard let newline = findNewline(bytes, from: position) else { return .needMore }
            return .skip(end: newline + 1)
        }
        guard bytes[position] == 42 else { return .formatError(at: position) }
        guard let headerEnd = findNewline(bytes, from: position) else { return .needMore }
        guard let argumentCount = leadingInteger(bytes, position + 1, headerEnd), argumentCount >= 1 else {
            return .formatError(at: position)
        }
        position = headerEnd + 1
        arguments.removeAll()
        for _ in 0..<argumentCount {
            guard position < count else { return .needMore }
            guard bytes[position] == 36 else { return .formatError(at: position) }
            guard let lengthEnd = findNewline(bytes, from: position) else { return .needMore }
            guard let length = leadingInteger(bytes, position + 1, lengthEnd), length >= 0 else {
                return .formatError(at: position)
            }
            let dataStart = lengthEnd + 1
            guard length <= count - dataStart - 2 else { return .needMore }
            arguments.append(UnsafeRawBufferPointer(rebasing: bytes[dataStart..<dataStart + length]))
            position = dataStart + length + 2
        }
        return .record(end: position)
    }

    private static func findNewline(_ bytes: UnsafeRawBufferPointer, from position: Int) -> Int? {
        let limit = bytes.count
        guard position < limit, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + position, 10, limit - position) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    // atoi/strtol over the header line: optional sign, digits, then only "\r" before the newline.
    private static func leadingInteger(_ bytes: UnsafeRawBufferPointer, _ from: Int, _ newline: Int) -> Int? {
        var index = from
        var negative = false
        if index < newline, bytes[index] == 45 {
            negative = true
            index += 1
        }
        var value = 0
        var digits = 0
        while index < newline, bytes[index] >= 48, bytes[index] <= 57 {
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(Int(bytes[index] - 48))
            if overflow1 || overflow2 { return nil }
            value = sum
            digits += 1
            index += 1
        }
        guard digits > 0 else { return nil }
        return negative ? -value : value
    }
}

/// Reads from `file` into `buffer[range]`, returning the count or the error as a value (the
/// buffer closures cannot throw a typed error).
func readResult<S: Storage>(
    _ storage: S, _ file: StorageFile, _ buffer: inout [UInt8], _ range: Range<Int>
) -> Result<Int, StorageError> {
    buffer.withUnsafeMutableBytes { raw in
        do throws(StorageError) {
            return .success(try storage.read(file, into: UnsafeMutableRawBufferPointer(rebasing: raw[range])))
        } catch {
            return .failure(error)
        }
    }
}

/// Reads from `file` into `buffer[range]`; returns the byte count (0 at end of file).
func readInto<S: Storage>(
    _ storage: S, _ file: StorageFile, _ buffer: inout [UInt8], _ range: Range<Int>
) throws(StorageError) -> Int {
    try readResult(storage, file, &buffer, range).get()
}

/// Reads and drops the next `count` bytes of `file` (fewer at end of file): files are read
/// forward only.
func skipForward<S: Storage>(_ storage: S, _ file: StorageFile, count: Int64) throws(StorageError) {
    var remaining = count
    var scratch = [UInt8](repeating: 0, count: 1 << 16)
    while remaining > 0 {
        let want = Int(Swift.min(Int64(scratch.count), remaining))
        let got = try readInto(storage, file, &scratch, 0..<want)
        if got == 0 { return }
        remaining -= Int64(got)
    }
}
