// StringLCS: LCS (longest common subsequence of two strings), with LEN, IDX, MINMATCHLEN, WITHMATCHLEN.
import TallyKeyspace
import TallyProtocol

extension StringCommands {
    static let lcsWrongType: StaticString = "ERR The specified keys must contain string values"
    static let lcsAmbiguous: StaticString = "ERR If you want both the length and indexes, please just use IDX."
    static let lcsTooLong: StaticString = "ERR String too long for LCS"
    static let lcsTableTooLarge: StaticString =
        "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"

    /// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], as t_string.c's `lcsCommand`:
    /// missing keys read as empty strings, options are checked after the key types, and the
    /// dynamic-programming table ((len1+1) x (len2+1) 32-bit cells) may not exceed
    /// `proto-max-bulk-len`. IDX reports the matching ranges from the end of the strings
    /// backwards, each as [[start1, end1], [start2, end2]] (+ length with WITHMATCHLEN).
    static func lcs(_ context: inout CommandContext) {
        context.lockShards(context.shardMask(keysFrom: 1, through: 2))
        let first = context.key(1)
        let second = context.key(2)
        let database = context.database
        let now = context.now
        let valueA = context.keyspace.shard(for: first).lookupRead(database, first, now: now)?.value
        let valueB = context.keyspace.shard(for: second).lookupRead(database, second, now: now)?.value
        if let valueA, !valueA.isString {
            context.output.writeError(lcsWrongType)
            return
        }
        if let valueB, !valueB.isString {
            context.output.writeError(lcsWrongType)
            return
        }
        var wantsLength = false
        var wantsIndexes = false
        var withMatchLength = false
        var minimumMatch: Int64 = 0
        var index = 3
        let count = context.arguments.count
        while index < count {
            let arguments = context.arguments
            if arguments.matches(index, "idx") {
                wantsIndexes = true
            } else if arguments.matches(index, "len") {
                wantsLength = true
            } else if arguments.matches(index, "withmatchlen") {
                withMatchLength = true
            } else if arguments.matches(index, "minmatchlen") && index + 1 < count {
                guard let value = context.integerArgument(index + 1) else { return }
                minimumMatch = max(value, 0)
                index += 1
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 1
        }
        if wantsLength && wantsIndexes {
            context.output.writeError(lcsAmbiguous)
            return
        }
        let a = valueA?.stringBytes ?? []
        let b = valueB?.stringBytes ?? []
        if a.count >= Int(UInt32.max) - 1 || b.count >= Int(UInt32.max) - 1 {
            context.output.writeError(lcsTooLong)
            return
        }
        let (cells, overflow) = (a.count + 1).multipliedReportingOverflow(by: b.count + 1)
        if overflow || cells > context.engine.configuration.maxStringBytes / 4 {
            context.output.writeError(lcsTableTooLarge)
            return
        }
        let table = lcsTable(a, b)
        let width = b.count + 1
        let length = Int(table[a.count * width + b.count])
        if wantsLength {
            context.output.writeInteger(length)
            return
        }
        var walk = LCSWalk(a: a, b: b, table: table, length: length, minimumMatch: minimumMatch,
                           withMatchLength: withMatchLength, collectRanges: wantsIndexes)
        walk.run()
        if wantsIndexes {
            context.output.writeMapHeader(2)
            context.output.writeBulkString("matches".utf8)
            context.output.writeArrayHeader(walk.rangeCount)
            context.output.writeBytes(walk.ranges.storage)
            context.output.writeBulkString("len".utf8)
            context.output.writeInteger(length)
        } else {
            context.output.writeBulkString(walk.result)
        }
    }

    /// LCS(i, j) = length of the LCS of a[..<i] and b[..<j], row-major with rows of b.count+1.
    static func lcsTable(_ a: [UInt8], _ b: [UInt8]) -> [UInt32] {
        let width = b.count + 1
        var table = [UInt32](repeating: 0, count: (a.count + 1) * width)
        table.withUnsafeMutableBufferPointer { cells in
            for i in stride(from: 1, through: a.count, by: 1) {
                let row = i * width
                let above = row - width
                for j in stride(from: 1, through: b.count, by: 1) {
                    if a[i - 1] == b[j - 1] {
                        cells[row + j] = cells[above + j - 1] + 1
                    } else {
                        cells[row + j] = max(cells[above + j], cells[row + j - 1])
                    }
                }
            }
        }
        return table
    }
}

/// The backward walk over the LCS table that rebuilds the subsequence and, for IDX, the
/// contiguous matching ranges (encoded as they are found, since their count comes first).
struct LCSWalk {
    let a: [UInt8]
    let b: [UInt8]
    let table: [UInt32]
    let length: Int
    let minimumMatch: Int64
    let withMatchLength: Bool
    let collectRanges: Bool
    var result: [UInt8] = []
    var ranges = OutputBuffer(initialCapacity: 0)
    var rangeCount = 0

    init(a: [UInt8], b: [UInt8], table: [UInt32], length: Int, minimumMatch: Int64, withMatchLength: Bool,
         collectRanges: Bool) {
        self.a = a
        self.b = b
        self.table = table
        self.length = length
        self.minimumMatch = minimumMatch
        self.withMatchLength = withMatchLength
        self.collectRanges = collectRanges
    }

    /// Walks from (len1, len2) to a border, as lcsCommand does: a range is emitted when the
    /// walk leaves it (a mismatch) or reaches the start of either string.
    mutating func run() {
        result = [UInt8](repeating: 0, count: length)
        let width = b.count + 1
        var i = a.count
        var j = b.count
        var next = length
        let unset = a.count
        var startA = unset
        var endA = 0
        var startB = 0
        var endB = 0
        while i > 0 && j > 0 {
            var emit = false
            if a[i - 1] == b[j - 1] {
                result[next - 1] = a[i - 1]
                if startA == unset {
                    startA = i - 1
                    endA = i - 1
                    startB = j - 1
                    endB = j - 1
                } else if startA == i && startB == j {
                    startA -= 1
                    startB -= 1
                } else {
                    emit = true
                }
                if startA == 0 || startB == 0 { emit = true }
                next -= 1
                i -= 1
                j -= 1
            } else {
                if table[(i - 1) * width + j] > table[i * width + j - 1] { i -= 1 } else { j -= 1 }
                if startA != unset { emit = true }
            }
            if emit {
                let matchLength = endA - startA + 1
                if collectRanges && (minimumMatch == 0 || Int64(matchLength) >= minimumMatch) {
                    ranges.writeArrayHeader(withMatchLength ? 3 : 2)
                    ranges.writeArrayHeader(2)
                    ranges.writeInteger(startA)
                    ranges.writeInteger(endA)
                    ranges.writeArrayHeader(2)
                    ranges.writeInteger(startB)
                    ranges.writeInteger(endB)
                    if withMatchLength { ranges.writeInteger(matchLength) }
                    rangeCount += 1
                }
                startA = unset
            }
        }
    }
}
