// AOFMarks: Tally's integrity annotations in AOF files (CRC64 marks, start lines, #TS lines) and their verification.
//
// Format, version 1. Every line is an AOF annotation (`#...\r\n`): Redis 7.0's loader
// (aof.c loadSingleAppendOnlyFile) and redis-check-aof skip any line that starts with `#` where a
// record may start, so a marked directory stays loadable by redis-server 7.0.
//
//   #TALLY-AOF:1\r\n                      start line: the first bytes a Tally writer puts in an AOF
//                                         file it creates or opens for appending (once per writer
//                                         session). It opens a checked region.
//   #TALLY-CRC64:<16 hex> <length>\r\n    mark: CRC64 (Redis's crc64-jones, Storage/CRC64.swift) of
//                                         the <length> bytes right before the line, which are
//                                         exactly the bytes since the end of the previous mark or
//                                         start line. One per write(2) batch (group commit), one
//                                         before each #TS line, and in rewritten RESP base files
//                                         one per ~1 MB and one at the end.
//   #TS:<unix seconds>\r\n                Redis 7.0's timestamp annotation (aof-timestamp-enabled),
//                                         covered by the next mark like any other byte.
//
// Verification (AOFMarkVerifier): bytes before a file's first start line or mark are foreign
// (written by redis-server or an older Tally) and are loaded unchecked, as Redis would. After it,
// every byte must be covered by a good mark. A bad mark followed later by a good one is corruption
// in the middle: refuse, naming the file and the first unverified offset. A bad or missing final
// mark, a record cut short, or a tail of zero bytes or garbage with no mark after it is a torn
// tail: the file is usable up to the end of its last good mark.
import Glibc
import TallyProtocol

/// Spelling of Tally's AOF annotations (see the file header for the format).
public enum AOFMarks {
    /// `#TALLY-AOF:1\r\n`.
    public static let startLine: [UInt8] = Array("#TALLY-AOF:1\r\n".utf8)
    /// `#TALLY-CRC64:`.
    public static let markPrefix: [UInt8] = Array("#TALLY-CRC64:".utf8)
    /// Region size after which a rewritten RESP base gets a mark (at the next record boundary).
    public static var rewriteMarkBytes: Int { 1 << 20 }

    /// Bytes of the mark line for a region of `length` bytes.
    public static func markLineLength(regionLength length: Int) -> Int {
        markPrefix.count + 16 + 1 + decimalDigits(length) + 2
    }

    /// Appends the mark line for a region with checksum `crc` and `length` bytes.
    public static func appendMark(crc: UInt64, length: Int, to output: inout [UInt8]) {
        output.append(contentsOf: markPrefix)
        for shift in stride(from: 60, through: 0, by: -4) {
            let nibble = UInt8((crc >> UInt64(shift)) & 0xf)
            output.append(nibble < 10 ? 48 + nibble : 87 + nibble)
        }
        output.append(32)
        appendDecimal(length, to: &output)
        output.append(13)
        output.append(10)
    }

    /// Appends `#TS:<seconds>\r\n`.
    public static func appendTimestamp(_ seconds: Int64, to output: inout [UInt8]) {
        output.append(contentsOf: Array("#TS:".utf8))
        appendDecimal(Int(seconds), to: &output)
        output.append(13)
        output.append(10)
    }

    /// The line is a mark (starts with the mark prefix; it may still be malformed).
    public static func isMark(_ line: [UInt8]) -> Bool {
        line.count >= markPrefix.count && line[0..<markPrefix.count].elementsEqual(markPrefix)
    }

    /// The line is a start line (any version; an unknown version is still a region start).
    public static func isStartLine(_ line: [UInt8]) -> Bool {
        let prefix = startLine[0..<11]
        return line.count >= prefix.count && line[0..<prefix.count].elementsEqual(prefix)
    }

    /// (crc, length) of a well-formed mark line (with its `\r\n`), or nil.
    public static func parseMark(_ line: [UInt8]) -> (crc: UInt64, length: Int64)? {
        guard isMark(line), line.count >= markPrefix.count + 16 + 1 + 1 + 2,
            line[line.count - 2] == 13, line[line.count - 1] == 10
        else { return nil }
        var index = markPrefix.count
        var crc: UInt64 = 0
        for _ in 0..<16 {
            let byte = line[index]
            let nibble: UInt8
            switch byte {
            case 48...57: nibble = byte - 48
            case 97...102: nibble = byte - 87
            default: return nil
            }
            crc = crc << 4 | UInt64(nibble)
            index += 1
        }
        guard line[index] == 32 else { return nil }
        index += 1
        var length: Int64 = 0
        let digitsEnd = line.count - 2
        guard index < digitsEnd, digitsEnd - index <= 18 else { return nil }
        while index < digitsEnd {
            let byte = line[index]
            guard byte >= 48, byte <= 57 else { return nil }
            length = length * 10 + Int64(byte - 48)
            index += 1
        }
        return (crc, length)
    }

    /// The seconds of a `#TS:<seconds>\r\n` line, or nil when the line is not one. `valid` is
    /// false when it starts with `#TS:` but the number does not end at `\r` (redis-check-aof's
    /// "Invalid timestamp annotation").
    public static func parseTimestamp(_ line: [UInt8]) -> (seconds: Int64, valid: Bool)? {
        guard line.count >= 4, line[0] == 35, line[1] == 84, line[2] == 83, line[3] == 58 else { return nil }
        var index = 4
        var negative = false
        if index < line.count, line[index] == 45 {
            negative = true
            index += 1
        }
        var value: Int64 = 0
        var digits = 0
        while index < line.count, line[index] >= 48, line[index] <= 57, digits < 18 {
            value = value * 10 + Int64(line[index] - 48)
            index += 1
            digits += 1
        }
        let valid = index < line.count && line[index] == 13
        return (negative ? -value : value, valid)
    }

    private static func decimalDigits(_ value: Int) -> Int {
        var count = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            count += 1
        }
        return count
    }
}

/// What the mark check found in one file.
public enum AOFMarkCheck: Equatable, Sendable {
    /// The file has no Tally marks: it is loaded (and its end judged) as Redis would.
    case unmarked
    /// Every byte after the first start line is covered by a good mark.
    case verified
    /// Usable up to `validUpTo` (the end of the last good mark or start line); after it a torn
    /// tail: `reason` says which kind.
    case tornTail(validUpTo: Int64, reason: String)
    /// Corruption before a good mark (or in a non-tail position): `offset` is the first byte
    /// that could not be verified.
    case corrupt(offset: Int64, reason: String)
}

/// Verifies the marks of one AOF file without replaying it.
public struct AOFMarkVerifier<S: Storage> {
    /// The storage the file lives on.
    public let storage: S

    /// Creates a verifier.
    public init(storage: S) { self.storage = storage }

    /// Checks `path` from `start` (after an RDB preamble, or 0).
    public func check(path: String, startingAt start: Int64) throws(StorageError) -> AOFMarkCheck {
        switch try quickCheck(path: path, startingAt: start) {
        case .verified: return .verified
        case .unmarked: return .unmarked
        case .undecided: break
        }
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        if start > 0 { try skipForward(storage, file, count: start) }
        var reader = AOFRecordReader(storage: storage, file: file, startingAt: start)
        reader.tracksRegion = true
        var arguments = CommandArguments()
        var end = AOFScanEnd.complete
        var checked = false
        var lastGood = start
        // The first mark that failed: (first unverified byte, the mark's offset, why).
        var firstBad: (from: Int64, mark: Int64, why: String)?
        while true {
            let item = try reader.nextItem(into: &arguments, end: &end)
            switch item {
            case .record:
                continue
            case .end:
                break
            case .annotation(let lineStart, let line):
                let lineEnd = lineStart + Int64(line.count)
                if AOFMarks.isStartLine(line) {
                    if checked && reader.regionLength > 0 && firstBad == nil {
                        firstBad = (lastGood, lineStart, "bytes not covered by a mark before a start line")
                    }
                    checked = true
                    lastGood = lineEnd
                    reader.resetRegion()
                } else if AOFMarks.isMark(line) {
                    let why: String?
                    if let (crc, length) = AOFMarks.parseMark(line) {
                        if !checked {
                            // The first mark of a file written without a start line covers the
                            // file from its start (or preamble end).
                            checked = true
                        }
                        if length != reader.regionLength {
                            why = "mark at offset \(lineStart) covers \(length) bytes, "
                                + "but \(reader.regionLength) precede it"
                        } else if crc != reader.regionChecksum {
                            why = "CRC64 mismatch in bytes \(lineStart - length)..<\(lineStart) (mark at offset "
                                + "\(lineStart))"
                        } else {
                            why = nil
                        }
                    } else {
                        checked = true
                        why = "malformed mark at offset \(lineStart)"
                    }
                    if let why {
                        if firstBad == nil { firstBad = (lastGood, lineStart, why) }
                    } else if let bad = firstBad {
                        return .corrupt(
                            offset: bad.from, reason: bad.why + ", before the good mark at offset \(lineStart)")
                    } else {
                        lastGood = lineEnd
                    }
                    reader.resetRegion()
                } else {
                    reader.addToRegion(line)
                }
                continue
            }
            break
        }
        guard checked else {
            // Unmarked: judged as Redis would, except that a file that is nothing but zero bytes
            // (a first batch that came back as zeros) is a torn tail at its start.
            if case .formatError(let offset, _) = end, offset == start, try scanRest(path, from: offset).allZero {
                return .tornTail(validUpTo: start, reason: "zero-filled tail from offset \(offset)")
            }
            return .unmarked
        }
        var damage: String
        switch end {
        case .complete:
            let size = try storage.size(file)
            if firstBad == nil && reader.regionLength == 0 && reader.offset == size { return .verified }
            damage = firstBad.map { "bad final mark: " + $0.why } ?? "no mark after offset \(lastGood)"
        case .truncated:
            damage = "the file ends inside a record after offset \(lastGood)"
        case .formatError(let offset, _):
            damage = "bad record byte at offset \(offset)"
        }
        // Everything after `from` is unverified. It is a torn tail only if no mark after it
        // verifies on its own (the CRC of the <length> bytes before it): a damaged byte can hide
        // a mark line or make the parser lose its way, and must not pass later, good batches
        // off as a torn tail.
        let from = firstBad?.from ?? lastGood
        if case .formatError(let offset, _) = end, try scanRest(path, from: offset).allZero {
            damage = "zero-filled tail from offset \(offset)"
        }
        if let good = try scanRest(path, from: from).verifiedMark {
            return .corrupt(offset: from, reason: damage + ", before the good mark at offset \(good)")
        }
        return .tornTail(validUpTo: from, reason: damage)
    }

    // The fast path for a healthy Tally file: without parsing records, find the lines that start
    // with '#' (memchr), CRC everything else, and check that the file starts with a start line,
    // every `#TALLY-` line is a start line after a closed region or a mark that verifies, and the
    // file ends on a mark. A file with no `#TALLY-` line at all (written by redis-server) is
    // unmarked, unless it starts with a zero byte. Anything else (foreign bytes, damage, a value
    // that happens to hold a `\n#TALLY-` line) is undecided and the record-by-record check decides.
    // Loading a 1M-key AOF spent ~0.5 s in that record-by-record pass; this one is a CRC and a memchr.
    private enum QuickResult { case verified, unmarked, undecided }

    private func quickCheck(path: String, startingAt start: Int64) throws(StorageError) -> QuickResult {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        if start > 0 { try skipForward(storage, file, count: start) }
        let lineMax = AOFMarks.markPrefix.count + 16 + 1 + 19 + 2
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var filled = 0
        var position = 0
        var atEnd = false
        // The byte before buffer[0]; a newline at the start of the scan.
        var before: UInt8 = 10
        var region = CRC64()
        var regionLength = 0
        var sawStart = false
        var sawTallyLine = false
        var firstByte: UInt8?
        while true {
            if firstByte == nil && filled > 0 { firstByte = buffer[0] }
            if position == filled {
                if atEnd { break }
                if filled > 0 { before = buffer[filled - 1] }
                position = 0
                filled = try readInto(storage, file, &buffer, 0..<buffer.count)
                if filled == 0 { break }
                continue
            }
            let from = position
            let limit = filled
            let found: Int? = buffer.withUnsafeBytes { raw in
                guard let base = raw.baseAddress, let hit = memchr(base + from, 35, limit - from) else { return nil }
                return base.distance(to: UnsafeRawPointer(hit))
            }
            let upto = found ?? filled
            if upto > position {
                buffer.withUnsafeBytes { region.update(UnsafeRawBufferPointer(rebasing: $0[from..<upto])) }
                regionLength += upto - position
            }
            guard let hash = found else {
                position = filled
                continue
            }
            let atLineStart = (hash > 0 ? buffer[hash - 1] : before) == 10
            let lineLimit = Swift.min(filled, hash + lineMax)
            let newline = buffer[hash..<lineLimit].firstIndex(of: 10)
            if atLineStart && newline == nil && lineLimit == filled && !atEnd {
                // The line continues in the next read: keep it (and the byte before it).
                let keep = filled - hash
                before = hash > 0 ? buffer[hash - 1] : before
                buffer.withUnsafeMutableBytes { raw in
                    guard let base = raw.baseAddress else { return }
                    memmove(base, base + hash, keep)
                }
                let got = try readInto(storage, file, &buffer, keep..<buffer.count)
                if got == 0 { atEnd = true }
                filled = keep + got
                position = 0
                continue
            }
            let isTallyLine = atLineStart && filled - hash >= 7 && buffer[hash..<hash + 7].elementsEqual(
                AOFMarks.markPrefix[0..<7])
            guard isTallyLine else {
                // An ordinary byte (or a #TS line): part of the region.
                buffer.withUnsafeBytes { region.update(UnsafeRawBufferPointer(rebasing: $0[hash..<hash + 1])) }
                regionLength += 1
                position = hash + 1
                continue
            }
            sawTallyLine = true
            guard let newline else { return .undecided }
            let line = Array(buffer[hash...newline])
            if AOFMarks.isStartLine(line) {
                // Bytes before a file's first start line are foreign (redis-server wrote them).
                guard regionLength == 0 else { return .undecided }
                sawStart = true
            } else if let (crc, length) = AOFMarks.parseMark(line) {
                guard sawStart, length == Int64(regionLength), crc == region.value else { return .undecided }
            } else {
                return .undecided
            }
            region = CRC64()
            regionLength = 0
            position = newline + 1
        }
        if sawTallyLine { return sawStart && regionLength == 0 ? .verified : .undecided }
        return firstByte == 0 ? .undecided : .unmarked
    }

    // Whether everything from `offset` on is zero bytes, and the offset of the first
    // well-formed mark line there whose own length and CRC check out against the bytes before it.
    private func scanRest(_ path: String, from offset: Int64) throws(StorageError)
        -> (allZero: Bool, verifiedMark: Int64?)
    {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        try skipForward(storage, file, count: offset)
        let pattern = AOFMarks.markPrefix
        let lineMax = pattern.count + 16 + 1 + 19 + 2
        var allZero = true
        var window: [UInt8] = []
        var windowStart = offset
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var atEnd = false
        while !atEnd {
            let got = try readInto(storage, file, &chunk, 0..<chunk.count)
            atEnd = got == 0
            if allZero && chunk[0..<got].contains(where: { $0 != 0 }) { allZero = false }
            window.append(contentsOf: chunk[0..<got])
            var index = 0
            var keepFrom = Swift.max(0, window.count - pattern.count + 1)
            while let found = Self.find(pattern, in: window, from: index) {
                let lineLimit = Swift.min(window.count, found + lineMax)
                guard let newline = window[found..<lineLimit].firstIndex(of: 10) else {
                    if lineLimit == window.count {
                        if !atEnd { keepFrom = found }
                        break
                    }
                    index = found + 1
                    continue
                }
                let lineStart = windowStart + Int64(found)
                if let (crc, length) = AOFMarks.parseMark(Array(window[found...newline])), length <= lineStart,
                    try spanChecksum(path, from: lineStart - length, length: length) == crc
                {
                    return (false, lineStart)
                }
                index = newline + 1
                keepFrom = Swift.max(keepFrom, index)
            }
            keepFrom = Swift.min(keepFrom, window.count)
            window.removeFirst(keepFrom)
            windowStart += Int64(keepFrom)
        }
        return (allZero, nil)
    }

    // CRC64 of `length` bytes of `path` from `offset` (nil if the file is shorter).
    private func spanChecksum(_ path: String, from offset: Int64, length: Int64) throws(StorageError) -> UInt64? {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        try skipForward(storage, file, count: offset)
        var crc = CRC64()
        var remaining = length
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while remaining > 0 {
            let got = try readInto(storage, file, &chunk, 0..<Int(Swift.min(Int64(chunk.count), remaining)))
            if got == 0 { return nil }
            chunk.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            remaining -= Int64(got)
        }
        return crc.value
    }

    // Naive search; runs only on the rest of a damaged file.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, haystack.count >= needle.count else { return nil }
        var index = from
        while index + needle.count <= haystack.count {
            if haystack[index] == first && haystack[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }
}

/// Writes a rewritten RESP base with marks: a start line first (and a `#TS:` line when
/// `timestampSeconds` is set, as Redis starts a rewritten AOF with one), a mark before any write
/// that begins once ~`AOFMarks.rewriteMarkBytes` are unmarked, and a final mark from `finish()`.
/// Every `write` call must start at a record boundary (the rewrite writes whole records per key).
public struct MarkingSink<Base: ByteSink>: ByteSink {
    /// The sink below.
    public var base: Base
    private let timestampSeconds: Int64?
    private var region = CRC64()
    private var regionLength = 0
    private var started = false

    /// Wraps `base`.
    public init(base: Base, timestampSeconds: Int64? = nil) {
        self.base = base
        self.timestampSeconds = timestampSeconds
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        if !started { try start() }
        if regionLength >= AOFMarks.rewriteMarkBytes { try mark() }
        region.update(bytes)
        regionLength += bytes.count
        try base.write(bytes)
    }

    public mutating func flush() throws(StorageError) { try base.flush() }

    /// Closes the last region; an empty rewrite without timestamps stays an empty file.
    public mutating func finish() throws(StorageError) {
        if !started && timestampSeconds != nil { try start() }
        try mark()
    }

    private mutating func start() throws(StorageError) {
        started = true
        try base.write(AOFMarks.startLine)
        if let timestampSeconds {
            var line: [UInt8] = []
            AOFMarks.appendTimestamp(timestampSeconds, to: &line)
            line.withUnsafeBytes { region.update($0) }
            regionLength += line.count
            try base.write(line)
        }
    }

    private mutating func mark() throws(StorageError) {
        guard regionLength > 0 else { return }
        var line: [UInt8] = []
        AOFMarks.appendMark(crc: region.value, length: regionLength, to: &line)
        try base.write(line)
        region = CRC64()
        regionLength = 0
    }
}
