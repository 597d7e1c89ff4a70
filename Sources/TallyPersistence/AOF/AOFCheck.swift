// AOFCheck: the logic behind tally-check-aof (find the first bad offset, optionally cut the last file).
import TallyProtocol

/// The verdict for one checked file, in redis-check-aof's terms.
public struct AOFCheckResult: Equatable, Sendable {
    /// The file name as reported.
    public var file: String
    /// Its size in bytes.
    public var size: Int64
    /// End of the last complete record.
    public var validUpTo: Int64
    /// Line number of `validUpTo` (1-based, as redis-check-aof's `ok_up_to_line`).
    public var validUpToLine: Int
    /// Set when Tally's integrity marks show damage before a good mark: the first byte that
    /// could not be verified. Such a file must not be "fixed" by truncation.
    public var corruptOffset: Int64?
    /// True if every byte is part of a complete record (and verified, when marked).
    public var isValid: Bool { validUpTo == size && corruptOffset == nil }
}

/// Where `--truncate-to-timestamp` would cut one file.
public enum AOFTimestampCut: Equatable, Sendable {
    /// No `#TS:` line after the target second.
    case none
    /// Cut at `offset`, the start of the first `#TS:` line later than the target.
    case at(offset: Int64)
    /// That line comes before any record of the file.
    case nothingBefore
    /// A `#TS:` line whose number does not end at `\r`.
    case invalidAnnotation
}

/// Checks AOF files without replaying them.
public struct AOFChecker<S: Storage> {
    /// Where the files are.
    public let storage: S
    /// Checks RDB bases; nil means an RDB base is only skipped past, not verified.
    public var rdbReader: AOFRDBPreambleReader<S>?
    /// Receives each report line (the executable prints them).
    public var output: (String) -> Void

    /// Creates a checker.
    public init(storage: S, rdbReader: AOFRDBPreambleReader<S>? = nil, output: @escaping (String) -> Void) {
        self.storage = storage
        self.rdbReader = rdbReader
        self.output = output
    }

    /// Scans one file (RDB preamble first when it starts with "REDIS") and reports where its
    /// last complete record ends. An RDB base that fails its check is valid up to 0.
    public func check(path: String, displayName: String) throws(StorageError) -> AOFCheckResult {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        let size = try storage.size(file)
        var skip: Int64 = 0
        var rdbFailed = false
        var head = [UInt8](repeating: 0, count: 5)
        let headCount = try readInto(storage, file, &head, 0..<5)
        if headCount == 5, head == Array("REDIS".utf8) {
            if let rdbReader {
                do {
                    skip = try rdbReader(storage, path)
                    output("RDB preamble is OK, proceeding with AOF tail...")
                } catch {
                    output("RDB preamble of AOF file is not sane, aborting: \(error)")
                    rdbFailed = true
                }
            } else {
                output("RDB preamble found but no RDB checker is available; only the AOF tail is checked")
                rdbFailed = true
            }
        }
        if rdbFailed {
            return AOFCheckResult(file: displayName, size: size, validUpTo: 0, validUpToLine: 1)
        }
        let scanFile = try storage.openForReading(path)
        defer { storage.close(scanFile) }
        var reader = AOFRecordReader(storage: storage, file: scanFile, startingAt: 0)
        var arguments = CommandArguments()
        var end = AOFScanEnd.complete
        // The RDB part is re-read as if it were skipped bytes: the record reader starts after it.
        if skip > 0 {
            try skipForward(storage, scanFile, count: skip)
            reader = AOFRecordReader(storage: storage, file: scanFile, startingAt: skip)
        }
        var multiStart: Int64?
        var lastEnd = skip
        while try reader.next(into: &arguments, end: &end) {
            if arguments.matches(0, "multi") {
                multiStart = lastEnd
            } else if arguments.matches(0, "exec") {
                multiStart = nil
            }
            lastEnd = reader.offset
        }
        var validUpTo: Int64
        var corruptOffset: Int64?
        switch end {
        case .complete:
            validUpTo = size
            if let multiStart {
                output("Reached EOF before reading EXEC for MULTI")
                validUpTo = multiStart
            }
        case .truncated(let valid):
            output("0x\(String(valid, radix: 16)): Expected a complete record, the file ends inside one")
            validUpTo = multiStart ?? valid
        case .formatError(let offset, let valid):
            output("AOF \(displayName) format error at offset \(offset)")
            validUpTo = multiStart ?? valid
        }
        switch try AOFMarkVerifier(storage: storage).check(path: path, startingAt: skip) {
        case .unmarked, .verified:
            break
        case .corrupt(let offset, let reason):
            output("AOF \(displayName) integrity marks: corruption at offset \(offset): \(reason)")
            corruptOffset = offset
            validUpTo = Swift.min(validUpTo, offset)
        case .tornTail(let valid, let reason):
            output("AOF \(displayName) has a torn tail after offset \(valid): \(reason)")
            validUpTo = Swift.min(validUpTo, valid)
        }
        let line = try countLines(path, upTo: validUpTo) + 1
        var result = AOFCheckResult(file: displayName, size: size, validUpTo: validUpTo, validUpToLine: line)
        result.corruptOffset = corruptOffset
        output(
            "AOF analyzed: filename=\(displayName), size=\(size), ok_up_to=\(validUpTo), "
                + "ok_up_to_line=\(line), diff=\(size - validUpTo)")
        return result
    }

    /// Finds the first `#TS:` line later than `seconds` in `path` (redis-check-aof
    /// --truncate-to-timestamp). An RDB preamble of `rdbBytes` bytes is skipped.
    public func timestampCut(path: String, rdbBytes: Int64, after seconds: Int64) throws(StorageError)
        -> AOFTimestampCut
    {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        var remaining = rdbBytes
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while remaining > 0 {
            let got = try readInto(storage, file, &scratch, 0..<Int(Swift.min(Int64(scratch.count), remaining)))
            if got == 0 { break }
            remaining -= Int64(got)
        }
        var reader = AOFRecordReader(storage: storage, file: file, startingAt: rdbBytes)
        var arguments = CommandArguments()
        var end = AOFScanEnd.complete
        var sawData = rdbBytes > 0
        while true {
            switch try reader.nextItem(into: &arguments, end: &end) {
            case .end:
                return .none
            case .record:
                sawData = true
            case .annotation(let start, let line):
                guard let (stamp, valid) = AOFMarks.parseTimestamp(line) else { continue }
                guard valid else { return .invalidAnnotation }
                if stamp <= seconds { continue }
                return sawData ? .at(offset: start) : .nothingBefore
            }
        }
    }

    /// The byte count of the RDB preamble of `path` (0 when it has none or no reader is set).
    public func rdbPreambleBytes(path: String) throws -> Int64 {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        var head = [UInt8](repeating: 0, count: 5)
        let headCount = try readInto(storage, file, &head, 0..<5)
        guard headCount == 5, head == Array("REDIS".utf8), let rdbReader else { return 0 }
        return try rdbReader(storage, path)
    }

    /// Cuts `path` to `length` bytes and makes that durable.
    public func truncate(path: String, to length: Int64) throws(StorageError) {
        let file = try storage.openForAppend(path)
        defer { storage.close(file) }
        try storage.truncate(file, to: length)
        try storage.fsync(file)
    }

    private func countLines(_ path: String, upTo limit: Int64) throws(StorageError) -> Int {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        var remaining = limit
        var lines = 0
        while remaining > 0 {
            let want = Int(Swift.min(Int64(scratch.count), remaining))
            let got = try readInto(storage, file, &scratch, 0..<want)
            if got == 0 { break }
            for byte in scratch[0..<got] where byte == 10 { lines += 1 }
            remaining -= Int64(got)
        }
        return lines
    }
}
