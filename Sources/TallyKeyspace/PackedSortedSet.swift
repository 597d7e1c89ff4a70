// PackedSortedSet: a small sorted set in one byte buffer, as Redis keeps one in a single listpack.
import Glibc

/// A sorted set within `zset-max-listpack-entries` / `zset-max-listpack-value` (OBJECT ENCODING
/// `listpack`): one `[UInt8]`, one heap allocation, holding every member and score in
/// (score, member bytes) order. Lookups by member scan it, as t_zset.c's zzlFind scans a
/// listpack; inserts and deletes move the tail, as zzlInsertAt and zzlDelete do.
///
/// Layout (little endian):
///
///     [count: UInt32] [record] [record] ...       (an empty set is an empty array)
///     record = [member length: LEB128] [member bytes] [score tag] [score payload]
///
///     score tag 0x00...0xEF  the integer score equal to the tag; no payload
///     score tag 0xF1...0xF8  an integer score in (tag - 0xF0) bytes, two's complement
///     score tag 0xFF         any other score: its 8-byte IEEE-754 bit pattern
///
/// Integral scores take 1 to 9 bytes, as a listpack stores d2string's integer text as an
/// integer entry (a millisecond timestamp takes 7 here, a small counter 1); -0 is stored as
/// the integer 0, which is what Redis reads back from a listpack ("-0" parses as integer 0).
/// The buffer grows to the exact size a change needs (listpack reallocs exactly too), so a set
/// holds no doubling slack; the allocator's own rounding is what `capacity` reports.
struct PackedSortedSet: Sendable {
    var bytes: [UInt8] = []

    /// An empty set (no allocation).
    init() {}

    /// Bytes before the first record.
    static let headerBytes = 4
    /// Largest tag that is itself the (integer) score.
    static let smallIntegerTagMax: UInt8 = 0xEF
    /// Tag base of an integer in 1...8 bytes.
    static let integerTagBase: UInt8 = 0xF0
    /// Tag of a raw double.
    static let doubleTag: UInt8 = 0xFF

    /// Number of members.
    var count: Int {
        if bytes.isEmpty { return 0 }
        return bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
    }

    /// Allocated bytes of the buffer (0 for an empty set, which holds no allocation).
    var capacity: Int { bytes.isEmpty ? 0 : bytes.capacity }

    // MARK: Record coding

    /// One decoded record: where its member lies, its score and where the next record starts.
    struct Record {
        var start: Int
        var memberStart: Int
        var memberEnd: Int
        var score: Double
        var end: Int
    }

    @inline(__always)
    static func decode(_ buffer: UnsafeRawBufferPointer, at start: Int) -> Record {
        var position = start
        var length = 0
        var shift = 0
        while true {
            let byte = buffer[position]
            position += 1
            length |= Int(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        let memberStart = position
        position += length
        let tag = buffer[position]
        position += 1
        let score: Double
        if tag <= smallIntegerTagMax {
            score = Double(tag)
        } else if tag == doubleTag {
            score = Double(bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: position,
                                                                                  as: UInt64.self)))
            position += 8
        } else {
            let width = Int(tag &- integerTagBase)
            var raw: UInt64 = 0
            for byte in 0..<width { raw |= UInt64(buffer[position + byte]) << (8 * byte) }
            let unused = UInt64(64 - 8 * width)
            score = Double(Int64(bitPattern: raw << unused) >> Int64(unused))
            position += width
        }
        return Record(start: start, memberStart: memberStart, memberEnd: memberStart + length,
                      score: score, end: position)
    }

    /// Where the record at `start` ends, without decoding its score: a lookup by member
    /// skips every record it does not match, so only the tag is read.
    @inline(__always)
    static func end(ofRecordAt start: Int, in buffer: UnsafeRawBufferPointer) -> (memberStart: Int, memberEnd: Int,
                                                                             end: Int) {
        var position = start
        var length = 0
        var shift = 0
        while true {
            let byte = buffer[position]
            position += 1
            length |= Int(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        let tagAt = position + length
        let tag = buffer[tagAt]
        let width = tag <= smallIntegerTagMax ? 1 : (tag == doubleTag ? 9 : 1 + Int(tag &- integerTagBase))
        return (position, tagAt, tagAt + width)
    }

    /// The integer a score is stored as, if it is integral and fits an Int64 (-0 gives 0).
    @inline(__always)
    static func integral(_ score: Double) -> Int64? { Int64(exactly: score) }

    /// Bytes a score takes, tag included.
    @inline(__always)
    static func scoreSize(_ score: Double) -> Int {
        guard let value = integral(score) else { return 9 }
        if value >= 0 && value <= Int64(smallIntegerTagMax) { return 1 }
        return 1 + integerWidth(value)
    }

    /// Fewest bytes that hold `value` in two's complement.
    @inline(__always)
    static func integerWidth(_ value: Int64) -> Int {
        var width = 1
        while width < 8 {
            let unused = Int64(64 - 8 * width)
            if (value << unused) >> unused == value { break }
            width += 1
        }
        return width
    }

    @inline(__always)
    static func lengthSize(_ length: Int) -> Int {
        var size = 1
        var rest = length >> 7
        while rest > 0 {
            size += 1
            rest >>= 7
        }
        return size
    }

    /// Bytes the record of (member, score) takes.
    @inline(__always)
    static func recordSize(memberBytes: Int, score: Double) -> Int {
        lengthSize(memberBytes) + memberBytes + scoreSize(score)
    }

    /// Writes the record of (member, score) at `start`, which has room for it.
    static func encode(_ member: UnsafeRawBufferPointer, score: Double,
                       into buffer: UnsafeMutableRawBufferPointer, at start: Int) {
        var position = start
        var length = member.count
        while length >= 0x80 {
            buffer[position] = UInt8(truncatingIfNeeded: length) | 0x80
            position += 1
            length >>= 7
        }
        buffer[position] = UInt8(length)
        position += 1
        if member.count > 0 {
            (buffer.baseAddress! + position).copyMemory(from: member.baseAddress!, byteCount: member.count)
        }
        position += member.count
        if let value = integral(score) {
            if value >= 0 && value <= Int64(smallIntegerTagMax) {
                buffer[position] = UInt8(value)
                return
            }
            let width = integerWidth(value)
            buffer[position] = integerTagBase + UInt8(width)
            let raw = UInt64(bitPattern: value)
            for byte in 0..<width { buffer[position + 1 + byte] = UInt8(truncatingIfNeeded: raw >> (8 * byte)) }
        } else {
            buffer[position] = doubleTag
            buffer.storeBytes(of: score.bitPattern.littleEndian, toByteOffset: position + 1, as: UInt64.self)
        }
    }

    /// True if the record orders before (score, member): score first, then memcmp with the
    /// shorter member first on a tie (t_zset.c zzlCompareElements / sdscmp).
    @inline(__always)
    static func precedes(_ record: Record, in buffer: UnsafeRawBufferPointer,
                         _ score: Double, _ member: UnsafeRawBufferPointer) -> Bool {
        if record.score != score { return record.score < score }
        let length = record.memberEnd - record.memberStart
        let common = Swift.min(length, member.count)
        let order = common == 0 ? 0 : memcmp(buffer.baseAddress! + record.memberStart, member.baseAddress!, common)
        return order != 0 ? order < 0 : length < member.count
    }

    /// True if the record's member is `member`. Compares 8 bytes at a time in line: members
    /// are short and a lookup tries every record, so a call to memcmp per record cost more
    /// than the comparison (a third of an RDB load's time in perf).
    @inline(__always)
    static func memberEquals(_ memberStart: Int, _ memberEnd: Int, in buffer: UnsafeRawBufferPointer,
                             _ member: UnsafeRawBufferPointer) -> Bool {
        let length = memberEnd - memberStart
        if length != member.count { return false }
        if length == 0 { return true }
        let stored = buffer.baseAddress! + memberStart
        let wanted = member.baseAddress!
        var position = 0
        while position + 8 <= length {
            if stored.loadUnaligned(fromByteOffset: position, as: UInt64.self)
                != wanted.loadUnaligned(fromByteOffset: position, as: UInt64.self) { return false }
            position += 8
        }
        while position < length {
            if stored.load(fromByteOffset: position, as: UInt8.self)
                != wanted.load(fromByteOffset: position, as: UInt8.self) { return false }
            position += 1
        }
        return true
    }

    // MARK: Reads

    /// The record of `member` and its rank, if present (zzlFind).
    func find(_ member: ArraySlice<UInt8>) -> (record: Record, rank: Int)? {
        if bytes.isEmpty { return nil }
        return member.withUnsafeBytes { target in
            bytes.withUnsafeBytes { buffer -> (record: Record, rank: Int)? in
                var position = PackedSortedSet.headerBytes
                var rank = 0
                while position < buffer.count {
                    let (memberStart, memberEnd, end) = PackedSortedSet.end(ofRecordAt: position, in: buffer)
                    if PackedSortedSet.memberEquals(memberStart, memberEnd, in: buffer, target) {
                        return (PackedSortedSet.decode(buffer, at: position), rank)
                    }
                    position = end
                    rank += 1
                }
                return nil
            }
        }
    }

    /// The record at `rank` (0..<count).
    func record(at rank: Int) -> Record {
        bytes.withUnsafeBytes { buffer in
            var position = PackedSortedSet.headerBytes
            var left = rank
            while left > 0 {
                position = PackedSortedSet.end(ofRecordAt: position, in: buffer).end
                left -= 1
            }
            return PackedSortedSet.decode(buffer, at: position)
        }
    }

    /// The byte offset where rank `rank` starts (the end of the buffer for `count`).
    func offset(ofRank rank: Int) -> Int {
        if rank == 0 { return PackedSortedSet.headerBytes }
        return record(at: rank - 1).end
    }

    /// Calls `body` with each record from the one at byte offset `start` (and the buffer it
    /// lies in); it returns false to stop.
    @inline(__always)
    func walk(from start: Int, _ body: (Record, UnsafeRawBufferPointer) throws -> Bool) rethrows {
        try bytes.withUnsafeBytes { buffer in
            var position = start
            while position < buffer.count {
                let record = PackedSortedSet.decode(buffer, at: position)
                if try !body(record, buffer) { return }
                position = record.end
            }
        }
    }

    /// The member bytes of `record`.
    @inline(__always)
    func member(_ record: Record) -> ArraySlice<UInt8> { bytes[record.memberStart..<record.memberEnd] }

    /// Sum of member lengths and the longest member.
    func memberLengths() -> (total: Int, longest: Int) {
        var total = 0
        var longest = 0
        walk(from: PackedSortedSet.headerBytes) { record, _ in
            let length = record.memberEnd - record.memberStart
            total += length
            longest = Swift.max(longest, length)
            return true
        }
        return (total, longest)
    }

    // MARK: Edits

    /// Replaces bytes `range` with `inserted` bytes written by `fill` and adds `delta` to the
    /// count. A buffer that must grow is reallocated at exactly the new size (not doubled).
    private mutating func splice(_ range: Range<Int>, inserting inserted: Int, countDelta: Int,
                                 _ fill: (UnsafeMutableRawBufferPointer, Int) -> Void) {
        if bytes.isEmpty {
            precondition(range.isEmpty && countDelta > 0, "splice into an empty set must insert")
            bytes.reserveCapacity(PackedSortedSet.headerBytes + inserted)
            bytes.append(contentsOf: repeatElement(0, count: PackedSortedSet.headerBytes))
        }
        let oldSize = bytes.count
        let newSize = oldSize - range.count + inserted
        let newCount = count + countDelta
        if newCount == 0 {
            bytes = []
            return
        }
        if newSize > bytes.capacity {
            var grown: [UInt8] = []
            grown.reserveCapacity(newSize)
            grown.append(contentsOf: bytes[..<range.lowerBound])
            grown.append(contentsOf: repeatElement(0, count: inserted))
            grown.append(contentsOf: bytes[range.upperBound...])
            bytes = grown
        } else {
            if newSize > oldSize { bytes.append(contentsOf: repeatElement(0, count: newSize - oldSize)) }
            bytes.withUnsafeMutableBytes { buffer in
                let tail = oldSize - range.upperBound
                if tail > 0 && inserted != range.count {
                    memmove(buffer.baseAddress! + range.lowerBound + inserted,
                            buffer.baseAddress! + range.upperBound, tail)
                }
            }
            if newSize < oldSize { bytes.removeLast(oldSize - newSize) }
            // A set that shrank far below its allocation gives the rest back, as lpDelete's
            // realloc does (rate limiters trim most of a window at once).
            if bytes.capacity > 2 * newSize && bytes.capacity - newSize > 64 {
                var shrunk: [UInt8] = []
                shrunk.reserveCapacity(newSize)
                shrunk.append(contentsOf: bytes)
                bytes = shrunk
            }
        }
        bytes.withUnsafeMutableBytes { buffer in
            buffer.storeBytes(of: UInt32(newCount).littleEndian, as: UInt32.self)
            fill(buffer, range.lowerBound)
        }
    }

    /// Inserts (member, score); the member must be absent. Returns its rank.
    @discardableResult
    mutating func insert(_ member: ArraySlice<UInt8>, score: Double) -> Int {
        // The first record the new one precedes: a scan, as zzlInsert's.
        var position = PackedSortedSet.headerBytes
        var rank = 0
        if !bytes.isEmpty {
            member.withUnsafeBytes { target in
                walk(from: PackedSortedSet.headerBytes) { record, buffer in
                    if !PackedSortedSet.precedes(record, in: buffer, score, target) { return false }
                    position = record.end
                    rank += 1
                    return true
                }
            }
        }
        let size = PackedSortedSet.recordSize(memberBytes: member.count, score: score)
        member.withUnsafeBytes { target in
            splice(position..<position, inserting: size, countDelta: 1) { buffer, start in
                PackedSortedSet.encode(target, score: score, into: buffer, at: start)
            }
        }
        return rank
    }

    /// Removes the record spanning byte offsets `range`.
    mutating func removeRecord(_ range: Range<Int>) {
        splice(range, inserting: 0, countDelta: -1) { _, _ in }
    }

    /// Removes ranks `ranks` (within 0..<count).
    mutating func removeRanks(_ ranks: Range<Int>) {
        if ranks.isEmpty { return }
        let start = offset(ofRank: ranks.lowerBound)
        var end = start
        var left = ranks.count
        walk(from: start) { record, _ in
            end = record.end
            left -= 1
            return left > 0
        }
        splice(start..<end, inserting: 0, countDelta: -ranks.count) { _, _ in }
    }

    /// Gives `member`, whose record spans byte offsets `record`, the score `new`: rewritten in
    /// place when it keeps its position and size (a ZINCRBY by a little), else deleted and
    /// inserted again, as zsetAdd does for a listpack.
    mutating func update(recordAt record: Range<Int>, _ member: ArraySlice<UInt8>, to new: Double) {
        let size = PackedSortedSet.recordSize(memberBytes: member.count, score: new)
        if size == record.count && staysInPlace(record, member, score: new) {
            member.withUnsafeBytes { target in
                bytes.withUnsafeMutableBytes { buffer in
                    PackedSortedSet.encode(target, score: new, into: buffer, at: record.lowerBound)
                }
            }
            return
        }
        removeRecord(record)
        insert(member, score: new)
    }

    /// True if the record at `record` would keep its place with score `score`: its predecessor
    /// precedes (score, member) and (score, member) precedes its successor.
    private func staysInPlace(_ record: Range<Int>, _ member: ArraySlice<UInt8>, score: Double) -> Bool {
        member.withUnsafeBytes { target in
            bytes.withUnsafeBytes { buffer in
                var position = PackedSortedSet.headerBytes
                while position < record.lowerBound {
                    let end = PackedSortedSet.end(ofRecordAt: position, in: buffer).end
                    if end == record.lowerBound {
                        let previous = PackedSortedSet.decode(buffer, at: position)
                        if !PackedSortedSet.precedes(previous, in: buffer, score, target) { return false }
                        break
                    }
                    position = end
                }
                if record.upperBound < buffer.count {
                    let next = PackedSortedSet.decode(buffer, at: record.upperBound)
                    // next must not precede (score, member); members differ, so no tie.
                    if PackedSortedSet.precedes(next, in: buffer, score, target) { return false }
                }
                return true
            }
        }
    }

    /// A packed set of `elements`, which come in order and distinct (a conversion back from
    /// the indexed form): the buffer is sized once.
    init(ordered elements: (_ add: (ArraySlice<UInt8>, Double) -> Void) -> Void, count: Int, size: Int) {
        if count == 0 { return }
        var buffer = [UInt8](repeating: 0, count: PackedSortedSet.headerBytes + size)
        buffer.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(count).littleEndian, as: UInt32.self)
            var position = PackedSortedSet.headerBytes
            elements { member, score in
                member.withUnsafeBytes { target in
                    PackedSortedSet.encode(target, score: score, into: raw, at: position)
                }
                position += PackedSortedSet.recordSize(memberBytes: member.count, score: score)
            }
            precondition(position == raw.count, "packed size mismatch")
        }
        bytes = buffer
    }
}
