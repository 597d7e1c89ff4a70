// AOFManifest: the multi-part AOF manifest (Redis 7.0 format): file names, encoding, strict parsing.

/// The role of one file listed in the manifest.
public enum AOFFileType: UInt8, Sendable {
    /// The snapshot written by the last rewrite (at most one, always listed first).
    case base = 98  // "b"
    /// A former base or incr file, superseded by a rewrite and waiting to be deleted.
    case history = 104  // "h"
    /// Commands appended since the base, in sequence order.
    case incr = 105  // "i"
}

/// One `file <name> seq <n> type <t>` line.
public struct AOFFileInfo: Equatable, Sendable {
    /// File name inside the AOF directory (never a path).
    public var name: String
    /// Sequence number (base and incr sequences are independent).
    public var sequence: Int64
    /// The file's role.
    public var type: AOFFileType

    /// Creates a manifest entry.
    public init(name: String, sequence: Int64, type: AOFFileType) {
        self.name = name
        self.sequence = sequence
        self.type = type
    }
}

/// Why a manifest was rejected; `description` names the file and line as Redis's log does.
public struct AOFManifestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Redis's wording of the problem ("Invalid AOF manifest file format"...).
    public var reason: String
    /// The manifest path.
    public var path: String
    /// 1-based line number, 0 when the problem is not tied to a line (empty manifest).
    public var line: Int

    /// Creates an error.
    public init(reason: String, path: String, line: Int) {
        self.reason = reason
        self.path = path
        self.line = line
    }

    public var description: String {
        line > 0 ? "\(path): line \(line): \(reason)" : "\(path): \(reason)"
    }
}

/// The list of AOF files: one base, history files, then incr files in order.
public struct AOFManifest: Equatable, Sendable {
    /// Redis's limit on a manifest line (MANIFEST_MAX_LINE).
    public static let lineLengthMax = 1024

    /// The base file, if any.
    public var base: AOFFileInfo?
    /// Superseded files, still listed until deleted.
    public var history: [AOFFileInfo]
    /// Incr files, strictly increasing sequence.
    public var incrs: [AOFFileInfo]
    /// The highest base sequence handed out so far.
    public var currentBaseSequence: Int64
    /// The highest incr sequence handed out so far.
    public var currentIncrSequence: Int64

    /// Creates a manifest.
    public init(base: AOFFileInfo? = nil, history: [AOFFileInfo] = [], incrs: [AOFFileInfo] = []) {
        self.base = base
        self.history = history
        self.incrs = incrs
        currentBaseSequence = base?.sequence ?? 0
        currentIncrSequence = incrs.last?.sequence ?? 0
    }

    /// The files to load, in load order: base (if any), then incr files.
    public var loadOrder: [AOFFileInfo] {
        (base.map { [$0] } ?? []) + incrs
    }

    /// The manifest's bytes: base, history, incr lines, names quoted when they need it.
    public func encoded() -> [UInt8] {
        var output: [UInt8] = []
        for info in (base.map { [$0] } ?? []) + history + incrs {
            output.append(contentsOf: "file ".utf8)
            output.append(contentsOf: AOFManifest.quotedIfNeeded(info.name))
            output.append(contentsOf: " seq \(info.sequence) type ".utf8)
            output.append(info.type.rawValue)
            output.append(10)
        }
        return output
    }

    // sds's `sdsneedsrepr`: a name with spaces, quotes, backslashes or control bytes is written
    // in double quotes with C escapes, so the line still splits into six words.
    static func quotedIfNeeded(_ name: String) -> [UInt8] {
        let bytes = Array(name.utf8)
        let needsQuotes = bytes.isEmpty || bytes.contains { byte in
            byte == 92 || byte == 34 || byte == 39 || byte <= 32 || byte >= 127
        }
        guard needsQuotes else { return bytes }
        var output: [UInt8] = [34]
        let hex = Array("0123456789abcdef".utf8)
        for byte in bytes {
            switch byte {
            case 92: output += [92, 92]
            case 34: output += [92, 34]
            case 10: output += [92, 110]
            case 13: output += [92, 114]
            case 9: output += [92, 116]
            case 7: output += [92, 97]
            case 8: output += [92, 98]
            case 33..<127, 32: output.append(byte)
            default: output += [92, 120, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        output.append(34)
        return output
    }

    /// Parses manifest bytes with every rejection Redis's `aofLoadManifestFromFile` makes.
    ///
    /// Rejected: an empty manifest, a line over 1024 bytes, a blank line, fewer than six words or
    /// an odd number of words, a missing file/seq/type, a path instead of a name, an unknown
    /// type, a second base, and incr sequences that do not increase. Lines starting with `#` are
    /// comments. Unknown key/value pairs are ignored, for forward compatibility.
    public static func parse(_ bytes: [UInt8], path: String) throws(AOFManifestError) -> AOFManifest {
        var manifest = AOFManifest()
        var lineNumber = 0
        var position = 0
        var maximumIncrSequence: Int64 = 0
        if bytes.isEmpty { throw AOFManifestError(reason: "Found an empty AOF manifest", path: path, line: 0) }
        while position < bytes.count {
            lineNumber += 1
            let newline = bytes[position...].firstIndex(of: 10)
            let end = newline ?? bytes.count
            // fgets reads at most 1024 bytes: a line (newline included) longer than that, or a last
            // line without its newline, has no newline in the window and Redis calls it too long.
            let isComment = bytes[position] == 35
            if !isComment, newline == nil || end - position + 1 > lineLengthMax {
                throw AOFManifestError(
                    reason: "The AOF manifest file contains too long line", path: path, line: lineNumber)
            }
            let line = bytes[position..<end]
            position = end + 1
            if line.first == 35 { continue }
            let words = try splitArguments(line, path: path, line: lineNumber)
            if words.isEmpty || words.count < 6 || words.count % 2 != 0 {
                throw AOFManifestError(reason: "Invalid AOF manifest file format", path: path, line: lineNumber)
            }
            var name: String?
            var sequence: Int64 = 0
            var typeByte: UInt8 = 0
            var index = 0
            while index < words.count {
                let key = String(decoding: words[index], as: UTF8.self).lowercased()
                let value = words[index + 1]
                switch key {
                case "file":
                    if value.contains(47) {
                        throw AOFManifestError(
                            reason: "File can't be a path, just a filename", path: path, line: lineNumber)
                    }
                    name = String(decoding: value, as: UTF8.self)
                case "seq": sequence = parseLeadingInteger(value)
                case "type": typeByte = value.first ?? 0
                default: break
                }
                index += 2
            }
            guard let name, !name.isEmpty, sequence != 0, typeByte != 0 else {
                throw AOFManifestError(reason: "Invalid AOF manifest file format", path: path, line: lineNumber)
            }
            switch AOFFileType(rawValue: typeByte) {
            case .base:
                if manifest.base != nil {
                    throw AOFManifestError(
                        reason: "Found duplicate base file information", path: path, line: lineNumber)
                }
                manifest.base = AOFFileInfo(name: name, sequence: sequence, type: .base)
                manifest.currentBaseSequence = sequence
            case .history:
                manifest.history.append(AOFFileInfo(name: name, sequence: sequence, type: .history))
            case .incr:
                if sequence <= maximumIncrSequence {
                    throw AOFManifestError(
                        reason: "Found a non-monotonic sequence number", path: path, line: lineNumber)
                }
                manifest.incrs.append(AOFFileInfo(name: name, sequence: sequence, type: .incr))
                manifest.currentIncrSequence = sequence
                maximumIncrSequence = sequence
            case nil:
                throw AOFManifestError(reason: "Unknown AOF file type", path: path, line: lineNumber)
            }
        }
        return manifest
    }

    // atoll: optional sign and leading digits; anything else stops the number (0 if none).
    private static func parseLeadingInteger(_ bytes: [UInt8]) -> Int64 {
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == 45 || bytes[index] == 43 {
            negative = bytes[index] == 45
            index += 1
        }
        var value: Int64 = 0
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            let (product, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = product.addingReportingOverflow(Int64(bytes[index] - 48))
            if overflow1 || overflow2 { return negative ? Int64.min : Int64.max }
            value = sum
            index += 1
        }
        return negative ? -value : value
    }

    // sdssplitargs: words separated by blanks; "double" quotes take C escapes, 'single' quotes
    // only \'; a closing quote must be followed by a blank. Unbalanced quotes reject the line.
    private static func splitArguments(_ line: ArraySlice<UInt8>, path: String, line number: Int)
        throws(AOFManifestError) -> [[UInt8]]
    {
        let invalid = AOFManifestError(reason: "Invalid AOF manifest file format", path: path, line: number)
        func isSpace(_ byte: UInt8) -> Bool {
            byte == 32 || byte == 9 || byte == 13 || byte == 10 || byte == 11 || byte == 12
        }
        func hexValue(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 48...57: return byte - 48
            case 97...102: return byte - 87
            case 65...70: return byte - 55
            default: return nil
            }
        }
        var words: [[UInt8]] = []
        var index = line.startIndex
        while true {
            while index < line.endIndex, isSpace(line[index]) { index += 1 }
            if index == line.endIndex { return words }
            var word: [UInt8] = []
            var inDouble = false
            var inSingle = false
            var done = false
            while !done {
                if inDouble {
                    guard index < line.endIndex else { throw invalid }
                    let byte = line[index]
                    if byte == 92, index + 3 < line.endIndex, line[index + 1] == 120,
                        let high = hexValue(line[index + 2]), let low = hexValue(line[index + 3])
                    {
                        word.append(high << 4 | low)
                        index += 3
                    } else if byte == 92, index + 1 < line.endIndex {
                        index += 1
                        switch line[index] {
                        case 110: word.append(10)
                        case 114: word.append(13)
                        case 116: word.append(9)
                        case 98: word.append(8)
                        case 97: word.append(7)
                        default: word.append(line[index])
                        }
                    } else if byte == 34 {
                        if index + 1 < line.endIndex, !isSpace(line[index + 1]) { throw invalid }
                        done = true
                    } else {
                        word.append(byte)
                    }
                } else if inSingle {
                    guard index < line.endIndex else { throw invalid }
                    let byte = line[index]
                    if byte == 92, index + 1 < line.endIndex, line[index + 1] == 39 {
                        index += 1
                        word.append(39)
                    } else if byte == 39 {
                        if index + 1 < line.endIndex, !isSpace(line[index + 1]) { throw invalid }
                        done = true
                    } else {
                        word.append(byte)
                    }
                } else {
                    if index == line.endIndex { done = true; continue }
                    let byte = line[index]
                    switch byte {
                    case 32, 9, 13, 10, 11, 12: done = true
                    case 34: inDouble = true
                    case 39: inSingle = true
                    default: word.append(byte)
                    }
                }
                if index < line.endIndex { index += 1 }
            }
            words.append(word)
        }
    }
}

/// File naming for one AOF directory, derived from `appendfilename` as Redis 7.0 does.
public struct AOFNaming: Sendable, Equatable {
    /// `appendfilename` (default "appendonly.aof").
    public var baseName: String

    /// Creates naming rules for `appendfilename`.
    public init(appendFileName: String = "appendonly.aof") { baseName = appendFileName }

    /// `appendonly.aof.manifest`.
    public var manifestName: String { baseName + ".manifest" }

    /// `appendonly.aof.<seq>.base.rdb` or `.base.aof`.
    public func baseFileName(sequence: Int64, rdbPreamble: Bool) -> String {
        "\(baseName).\(sequence).base." + (rdbPreamble ? "rdb" : "aof")
    }

    /// `appendonly.aof.<seq>.incr.aof`.
    public func incrFileName(sequence: Int64) -> String { "\(baseName).\(sequence).incr.aof" }
}
