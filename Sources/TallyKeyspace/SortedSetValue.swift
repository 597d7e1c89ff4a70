// SortedSetValue: Redis sorted sets, ordered by (score, member bytes), in a listpack-like or an indexed form.
import Glibc
import TallyProtocol

/// The limits that decide a sorted set's form (`zset-max-listpack-entries` 128 and
/// `zset-max-listpack-value` 64 by default); CONFIG SET changes them for values created or
/// converted afterwards, as in Redis.
public struct SortedSetLimits: Sendable, Equatable {
    /// Most members a compact (listpack) sorted set holds.
    public var maxEntries: Int
    /// Longest member a compact sorted set holds.
    public var maxValueBytes: Int

    /// Creates limits.
    public init(maxEntries: Int = 128, maxValueBytes: Int = 64) {
        self.maxEntries = maxEntries
        self.maxValueBytes = maxValueBytes
    }

    /// Redis's defaults.
    public static let standard = SortedSetLimits()
}

/// True if (score, member) orders before (otherScore, other): score first, then member bytes as
/// memcmp with the shorter first on a tie (Redis's sdscmp).
@inlinable
public func sortedSetPrecedes<A: Collection, B: Collection>(_ score: Double, _ member: A,
                                                           _ otherScore: Double, _ other: B) -> Bool
where A.Element == UInt8, B.Element == UInt8 {
    if score != otherScore { return score < otherScore }
    return member.lexicographicallyPrecedes(other)
}

/// A sorted set: members with double scores, kept ordered by (score, member).
///
/// - Packed form (Redis's listpack encoding, OBJECT ENCODING `listpack`): one byte buffer
///   (see `PackedSortedSet`); member lookups scan it, as Redis scans its listpack. Used while
///   the set holds at most `zset-max-listpack-entries` members of at most
///   `zset-max-listpack-value` bytes.
/// - Indexed form (Redis's skiplist + dict, `skiplist`): an `IndexedSortedSet` in a box shared
///   copy-on-write.
/// - Like Redis, a set converts to the indexed form once it outgrows the limits and never
///   converts back, except where Redis does (ZUNIONSTORE/ZRANGESTORE results, RDB loading).
///
/// One word either way, so `Value` holds it without a box of its own: a 1-member set is one
/// allocation (header, count and one record), where a box, a chunk array and three growable
/// arrays cost ~425 bytes of RSS.
public struct SortedSetValue: Sendable {
    enum Storage: Sendable {
        /// The listpack-sized form, held directly.
        case packed(PackedSortedSet)
        /// The large form, shared copy-on-write.
        case indexed(IndexedSortedSetBox)
    }

    var storage: Storage = .packed(PackedSortedSet())

    /// Creates an empty packed sorted set.
    public init() {}

    /// Creates an empty set in the form Redis gives a new key whose first member is `firstMember`
    /// bytes long (t_zset.c zaddGenericCommand): indexed when listpacks are disabled or it is long.
    public init(firstMemberBytes: Int, limits: SortedSetLimits) {
        if limits.maxEntries == 0 || firstMemberBytes > limits.maxValueBytes {
            storage = .indexed(IndexedSortedSetBox(IndexedSortedSet()))
        }
    }

    /// Number of members.
    public var count: Int {
        switch storage {
        case .packed(let packed): return packed.count
        case .indexed(let box): return box.set.count
        }
    }

    /// True when no member is held.
    public var isEmpty: Bool { count == 0 }

    /// True in the packed form (OBJECT ENCODING `listpack`).
    public var isCompact: Bool {
        if case .packed = storage { return true }
        return false
    }

    /// Sum of member lengths (O(1) in the indexed form, a scan in the packed one).
    public var payloadBytes: Int {
        switch storage {
        case .packed(let packed): return packed.memberLengths().total
        case .indexed(let box): return box.set.payloadBytes
        }
    }

    /// The longest member held (the indexed form: ever held), which Redis checks when deciding
    /// to convert a result back.
    public var longestMember: Int {
        switch storage {
        case .packed(let packed): return packed.memberLengths().longest
        case .indexed(let box): return box.set.longestMember
        }
    }

    /// Allocated bytes of the packed form's buffer (0 when empty or indexed), for the memory
    /// estimate: what the allocator gave, not what the records use.
    public var packedCapacityBytes: Int {
        if case .packed(let packed) = storage { return packed.capacity }
        return 0
    }

    /// Heap bytes for the memory estimate. Packed: its one buffer as allocated. Indexed: the
    /// box and chunk array; per chunk three buffers; per member a score and an end offset; the
    /// member index's 16-byte slots. Read inside the indexed set, once: reading its fields one by
    /// one through the box copied the whole set (four retains and releases) for each.
    public var heapBytes: Int {
        switch storage {
        case .packed(let packed):
            return packed.count == 0 ? 0 : MemoryEstimate.bufferHeaderBytes + packedCapacityBytes
        case .indexed(let box):
            return box.set.heapBytes
        }
    }

    // MARK: Access to the forms

    /// Runs `body` on the packed form, which this value then holds alone (so edits are in place).
    @inline(__always)
    private mutating func withPacked<R>(_ body: (inout PackedSortedSet) -> R) -> R {
        guard case .packed(var packed) = storage else { preconditionFailure("sorted set is indexed") }
        storage = .packed(PackedSortedSet())
        let result = body(&packed)
        storage = .packed(packed)
        return result
    }

    /// Runs `body` on the indexed form, copying it first when another value shares the box.
    @inline(__always)
    private mutating func withIndexed<R>(_ body: (inout IndexedSortedSet) -> R) -> R {
        guard case .indexed(var box) = storage else { preconditionFailure("sorted set is packed") }
        storage = .packed(PackedSortedSet())
        if !isKnownUniquelyReferenced(&box) { box = IndexedSortedSetBox(box.set) }
        let result = body(&box.set)
        storage = .indexed(box)
        return result
    }

    // MARK: Form

    /// Switches to the indexed form (Redis's zsetConvert to skiplist).
    public mutating func convertToIndexed() {
        guard case .packed(let packed) = storage else { return }
        let set = IndexedSortedSet(ordered: { add in
            packed.walk(from: PackedSortedSet.headerBytes) { record, _ in
                add(packed.member(record), record.score)
                return true
            }
        }, expected: packed.count)
        storage = .indexed(IndexedSortedSetBox(set))
    }

    /// Switches to the packed form (the caller checked Redis's conditions).
    public mutating func convertToCompact() {
        guard case .indexed(let box) = storage else { return }
        var size = 0
        box.set.forEach { member, score in
            size += PackedSortedSet.recordSize(memberBytes: member.count, score: score)
        }
        storage = .packed(PackedSortedSet(ordered: { add in box.set.forEach(add) }, count: box.set.count, size: size))
    }

    /// Converts a result set to the packed form when Redis would (zsetConvertToListpackIfNeeded).
    public mutating func compactIfSmall(limits: SortedSetLimits) {
        if !isCompact && count <= limits.maxEntries && longestMember <= limits.maxValueBytes {
            convertToCompact()
        }
    }

    // MARK: Lookups

    /// The score of `member`, if present.
    public func score(of member: ArraySlice<UInt8>) -> Double? {
        switch storage {
        case .packed(let packed): return packed.find(member)?.record.score
        case .indexed(let box): return box.read { $0.score(of: member) }
        }
    }

    /// `firstRank(where:)` for a predicate on the score alone (score ranges): the indexed form
    /// then reads scores in place, without making a slice of each member it passes.
    public func firstRank(whereScore predicate: (Double) -> Bool) -> Int {
        switch storage {
        case .packed: return firstRank { score, _ in predicate(score) }
        case .indexed(let box): return box.read { $0.firstRank(whereScore: predicate) }
        }
    }

    /// The first rank whose element satisfies `predicate` (false for a prefix, then true), or
    /// `count` when none does.
    public func firstRank(where predicate: (Double, ArraySlice<UInt8>) -> Bool) -> Int {
        switch storage {
        case .packed(let packed):
            // A scan, as the listpack range functions (zzlFirstInRange...) walk.
            var rank = 0
            packed.walk(from: PackedSortedSet.headerBytes) { record, _ in
                if predicate(record.score, packed.member(record)) { return false }
                rank += 1
                return true
            }
            return rank
        case .indexed(let box): return box.read { $0.firstRank(where: predicate) }
        }
    }

    /// The 0-based rank of `member` in ascending order, if present.
    public func rank(of member: ArraySlice<UInt8>) -> (rank: Int, score: Double)? {
        switch storage {
        case .packed(let packed):
            guard let found = packed.find(member) else { return nil }
            return (found.rank, found.record.score)
        case .indexed(let box): return box.read { $0.rank(of: member) }
        }
    }

    /// The element at `rank` (0..<count).
    public func element(at rank: Int) -> (member: ArraySlice<UInt8>, score: Double) {
        switch storage {
        case .packed(let packed):
            precondition(rank >= 0 && rank < packed.count, "rank out of range")
            let record = packed.record(at: rank)
            return (packed.member(record), record.score)
        case .indexed(let box): return box.read { $0.element(at: rank) }
        }
    }

    /// Visits elements from `rank`, ascending (or descending when `reverse`); `body` returns
    /// false to stop.
    public func visit(from rank: Int, reverse: Bool = false,
                      _ body: (ArraySlice<UInt8>, Double) throws -> Bool) rethrows {
        switch storage {
        case .packed(let packed):
            if rank < 0 || rank >= packed.count { return }
            if !reverse {
                try packed.walk(from: packed.offset(ofRank: rank)) { record, _ in
                    try body(packed.member(record), record.score)
                }
                return
            }
            // Records link forward only: note where ranks 0...rank start (on the stack for a
            // listpack-sized set), then go back.
            try withUnsafeTemporaryAllocation(of: Int32.self, capacity: rank + 1) { starts in
                var slot = 0
                packed.walk(from: PackedSortedSet.headerBytes) { record, _ in
                    starts[slot] = Int32(truncatingIfNeeded: record.start)
                    slot += 1
                    return slot <= rank
                }
                try packed.bytes.withUnsafeBytes { buffer in
                    var slot = rank
                    while slot >= 0 {
                        let record = PackedSortedSet.decode(buffer, at: Int(UInt32(bitPattern: starts[slot])))
                        if try !body(packed.member(record), record.score) { return }
                        slot -= 1
                    }
                }
            }
        case .indexed(let box): try box.set.visit(from: rank, reverse: reverse, body)
        }
    }

    /// Every element in order.
    public func forEach(_ body: (ArraySlice<UInt8>, Double) throws -> Void) rethrows {
        switch storage {
        case .packed(let packed):
            try packed.walk(from: PackedSortedSet.headerBytes) { record, _ in
                try body(packed.member(record), record.score)
                return true
            }
        case .indexed(let box): try box.set.forEach(body)
        }
    }

    // MARK: Edits

    /// Inserts `member`, which must be absent, converting to the indexed form first when the
    /// packed form would outgrow `limits` (t_zset.c zsetAdd).
    public mutating func insert(_ member: ArraySlice<UInt8>, score: Double, limits: SortedSetLimits) {
        if isCompact && (count + 1 > limits.maxEntries || member.count > limits.maxValueBytes) {
            convertToIndexed()
        }
        insertNew(member, score: score)
    }

    /// Inserts an absent member without any form check.
    mutating func insertNew(_ member: ArraySlice<UInt8>, score: Double) {
        if isCompact {
            withPacked { _ = $0.insert(member, score: score) }
        } else {
            withIndexed { $0.insertNew(member, score: score) }
        }
    }

    /// Removes `member`; returns its score, or nil when absent.
    @discardableResult
    public mutating func remove(_ member: ArraySlice<UInt8>) -> Double? {
        if isCompact {
            return withPacked { packed -> Double? in
                guard let found = packed.find(member) else { return nil }
                packed.removeRecord(found.record.start..<found.record.end)
                return found.record.score
            }
        }
        return withIndexed { $0.remove(member) }
    }

    /// Removes the element at `rank` and returns it.
    @discardableResult
    public mutating func remove(rank: Int) -> (member: [UInt8], score: Double) {
        if isCompact {
            return withPacked { packed in
                let record = packed.record(at: rank)
                let element = (Array(packed.member(record)), record.score)
                packed.removeRecord(record.start..<record.end)
                return element
            }
        }
        return withIndexed { $0.remove(rank: rank) }
    }

    /// Removes ranks `range` (within 0..<count); returns how many were removed.
    @discardableResult
    public mutating func removeRanks(_ range: Range<Int>) -> Int {
        if isCompact {
            withPacked { $0.removeRanks(range) }
            return range.count
        }
        return withIndexed { $0.removeRanks(range) }
    }

    /// Changes the score of a present member.
    public mutating func update(_ member: ArraySlice<UInt8>, from old: Double, to new: Double) {
        if old == new { return }
        if isCompact {
            withPacked { packed in
                guard let found = packed.find(member) else { return }
                packed.update(recordAt: found.record.start..<found.record.end, member, to: new)
            }
        } else {
            withIndexed { $0.update(member, from: old, to: new) }
        }
    }

    /// The score and position of `member`, if present.
    public func locate(_ member: ArraySlice<UInt8>) -> SortedSetLocation? {
        switch storage {
        case .packed(let packed):
            guard let found = packed.find(member) else { return nil }
            return SortedSetLocation(score: found.record.score, slot: found.record.start,
                                     offset: found.record.end, hash: 0)
        case .indexed(let box): return box.read { $0.locate(member) }
        }
    }

    /// Changes the score of the member `locate` just found at `location`.
    public mutating func update(at location: SortedSetLocation, _ member: ArraySlice<UInt8>, to new: Double) {
        if location.score == new { return }
        if isCompact {
            withPacked { $0.update(recordAt: location.slot..<location.offset, member, to: new) }
        } else {
            withIndexed { $0.update(at: location, member, to: new) }
        }
    }
}

/// Where a present member sits, as `SortedSetValue.locate` found it; valid for one `update(at:)`
/// with no other edit in between (ZADD's lookup-then-update does the search and hash once).
public struct SortedSetLocation: Sendable {
    /// The member's score.
    public let score: Double
    /// Indexed: the chunk. Packed: the byte offset where the member's record starts.
    let slot: Int
    /// Indexed: the position in the chunk. Packed: the byte offset where the record ends.
    let offset: Int
    /// Indexed: the member's hash (0 when packed).
    let hash: UInt64
}

/// The box that lets `SortedSetValue` hold the indexed form in one word.
final class IndexedSortedSetBox: @unchecked Sendable {
    // Sendable: a box is only mutated through `SortedSetValue.withIndexed`, after
    // isKnownUniquelyReferenced; a shared box is copied first, like an Array's buffer.
    var set: IndexedSortedSet

    init(_ set: IndexedSortedSet) { self.set = set }

    /// Runs a read of the set in place. A method called as `box.set.locate(...)` (or on a
    /// borrowed `pointee`) copied the set out of the box first (an outlined copy: four retains,
    /// then four releases), a tenth of a ZINCRBY's instructions; on an inout access to the
    /// field nothing is copied. `body` must not change the set: the box may be shared.
    @inline(__always)
    func read<R>(_ body: (inout IndexedSortedSet) -> R) -> R { body(&set) }
}

// MARK: Score text (util.c d2string, addReplyDouble's %.17g, strtod parsing)

/// `%.17g` of `value`, with `inf`/`-inf` spelled as Redis's addReplyDouble does.
public func formatScore(_ value: Double) -> [UInt8] {
    if value.isInfinite { return Array((value > 0 ? "inf" : "-inf").utf8) }
    if value.isNaN { return Array("nan".utf8) }
    if value.magnitude < 1e15, value == value.rounded(.towardZero), !(value == 0 && value.sign == .minus) {
        return decimalBytes(Int64(value))
    }
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
        let written = withVaList([value]) { vsnprintf(buffer.baseAddress, 64, "%.17g", $0) }
        return (0..<Int(min(written, 63))).map { UInt8(bitPattern: buffer[$0]) }
    }
}

/// Redis's d2string: integral values inside ±2^62 as integers, `-0` for negative zero, else
/// `%.17g` (what listpacks, RDB ZSET_LISTPACK and AOF records store; it parses back exactly).
public func scoreStorageText(_ value: Double) -> [UInt8] {
    if value.isNaN { return Array("nan".utf8) }
    if value.isInfinite { return Array((value > 0 ? "inf" : "-inf").utf8) }
    if value == 0 { return value.sign == .minus ? Array("-0".utf8) : [UInt8(ascii: "0")] }
    let limit = Double(Int64.max / 2)
    if value >= -limit && value <= limit, let integral = Int64(exactly: value) {
        return decimalBytes(integral)
    }
    return formatScore(value)
}

/// strtod over `bytes` as a C string: stops at the first NUL (as Redis's C code does); returns
/// the value and whether the whole text up to that NUL was consumed, and the errno ERANGE flag.
private func cStrtod<C: Collection>(_ bytes: C) -> (value: Double, consumedAll: Bool, rangeError: Bool)
where C.Element == UInt8 {
    let length = bytes.count
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: length + 1) { buffer in
        var position = 0
        for byte in bytes {
            buffer[position] = CChar(bitPattern: byte)
            position += 1
        }
        buffer[length] = 0
        var end: UnsafeMutablePointer<CChar>?
        errno = 0
        let value = strtod(buffer.baseAddress!, &end)
        let consumed = end.map { $0.pointee == 0 } ?? false
        return (value, consumed, errno == ERANGE)
    }
}

/// A score argument as Redis's getDoubleFromObject reads it: the whole text (no leading space,
/// no embedded NUL), not NaN, no overflow/underflow; "inf", "-inf" and hex are accepted.
public func parseScore<C: Collection>(_ bytes: C) -> Double? where C.Element == UInt8 {
    guard let first = bytes.first else { return nil }
    if first == 32 || (first >= 9 && first <= 13) { return nil }
    if bytes.contains(0) { return nil }
    let (value, consumedAll, rangeError) = cStrtod(bytes)
    if !consumedAll || value.isNaN { return nil }
    if rangeError && (value.isInfinite || value == 0) { return nil }
    return value
}

/// One end of a score range: `(x` excludes x; parsed with strtod like zslParseRange (leading
/// spaces allowed, text after a NUL ignored, an empty text reads as 0).
public struct ScoreBound: Sendable {
    /// The bound.
    public var value: Double
    /// True for `(x`.
    public var exclusive: Bool

    /// Parses `bytes`; nil when not a float (or NaN).
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        var text = ArraySlice(bytes)
        exclusive = text.first == UInt8(ascii: "(")
        if exclusive { text = text.dropFirst() }
        let (parsed, consumedAll, _) = cStrtod(text)
        if !consumedAll || parsed.isNaN { return nil }
        value = parsed
    }
}

/// A score range `min..max` (zrangespec).
public struct ScoreRange: Sendable {
    /// The lower end.
    public var min: ScoreBound
    /// The upper end.
    public var max: ScoreBound

    /// Creates a range.
    public init(min: ScoreBound, max: ScoreBound) {
        self.min = min
        self.max = max
    }

    /// True if `score` is at or above the lower end.
    @inlinable public func aboveMin(_ score: Double) -> Bool {
        min.exclusive ? score > min.value : score >= min.value
    }

    /// True if `score` is at or below the upper end.
    @inlinable public func belowMax(_ score: Double) -> Bool {
        max.exclusive ? score < max.value : score <= max.value
    }

    /// True when no score can be inside.
    public var isEmpty: Bool {
        min.value > max.value || (min.value == max.value && (min.exclusive || max.exclusive))
    }
}

/// One end of a lex range: `-`, `+`, `[x` or `(x` (zslParseLexRangeItem).
public enum LexBound: Sendable {
    /// `-`: below every member.
    case minimum
    /// `+`: above every member.
    case maximum
    /// `[x` (inclusive) or `(x` (exclusive).
    case value([UInt8], exclusive: Bool)

    /// Parses `bytes`; nil when not a valid range item.
    public init?<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard let first = bytes.first else { return nil }
        switch first {
        case UInt8(ascii: "+"):
            // C compares the next byte with NUL, so "+\0..." is still "+".
            if bytes.count > 1 && bytes.dropFirst().first != 0 { return nil }
            self = .maximum
        case UInt8(ascii: "-"):
            if bytes.count > 1 && bytes.dropFirst().first != 0 { return nil }
            self = .minimum
        case UInt8(ascii: "("): self = .value(Array(bytes.dropFirst()), exclusive: true)
        case UInt8(ascii: "["): self = .value(Array(bytes.dropFirst()), exclusive: false)
        default: return nil
        }
    }
}

/// A lex range (zlexrangespec).
public struct LexRange: Sendable {
    /// The lower end.
    public var min: LexBound
    /// The upper end.
    public var max: LexBound

    /// Creates a range.
    public init(min: LexBound, max: LexBound) {
        self.min = min
        self.max = max
    }

    /// True if `member` is at or above the lower end.
    public func aboveMin(_ member: ArraySlice<UInt8>) -> Bool {
        switch min {
        case .minimum: return true
        case .maximum: return false
        case .value(let bound, let exclusive):
            return exclusive ? bound.lexicographicallyPrecedes(member) : !member.lexicographicallyPrecedes(bound)
        }
    }

    /// True if `member` is at or below the upper end.
    public func belowMax(_ member: ArraySlice<UInt8>) -> Bool {
        switch max {
        case .minimum: return false
        case .maximum: return true
        case .value(let bound, let exclusive):
            return exclusive ? member.lexicographicallyPrecedes(bound) : !bound.lexicographicallyPrecedes(member)
        }
    }

    /// True when no member can be inside (zslIsInLexRange's first checks).
    public var isEmpty: Bool {
        switch (min, max) {
        case (.maximum, _), (_, .minimum): return true
        case (.minimum, _), (_, .maximum): return false
        case (.value(let low, let lowEx), .value(let high, let highEx)):
            if high.lexicographicallyPrecedes(low) { return true }
            if low == high && (lowEx || highEx) { return true }
            return false
        }
    }
}

extension SortedSetValue {
    /// The ranks inside a score range, as a half-open rank interval.
    public func ranks(in range: ScoreRange) -> Range<Int> {
        if range.isEmpty { return 0..<0 }
        let low = firstRank(whereScore: { range.aboveMin($0) })
        let high = firstRank(whereScore: { !range.belowMax($0) })
        return low..<max(low, high)
    }

    // MARK: Lex walks
    //
    // Lex ranges assume that every score is equal. With mixed scores Redis answers whatever its
    // walk over the score order finds, so these follow t_zset.c's walks step by step: the
    // listpack's (zzlFirstInLexRange, zzlLastInLexRange, zzlDeleteRangeByLex) for the compact
    // form, and the skiplist's for the indexed form as it walks when every node has one level
    // (zslLastInLexRange walks from the head, zslDeleteRangeByLex skips the range checks). A real
    // skiplist's taller nodes can skip elements, so for mixed scores a large Redis set's answer
    // varies from run to run; with equal scores every walk agrees and a binary search stands in.

    /// True when every score is equal: the members are then in lex order and each walk's
    /// predicate changes at most once, so a binary search finds where.
    private var hasUniformScores: Bool {
        count == 0 || element(at: 0).score == element(at: count - 1).score
    }

    /// The first rank at or after `rank` whose member fails `predicate` (`count` if none).
    /// With uniform scores `predicate` must hold for a prefix of the ranks.
    private func lexScanForward(from rank: Int, while predicate: (ArraySlice<UInt8>) -> Bool) -> Int {
        if rank >= count { return count }
        if hasUniformScores { return Swift.max(rank, firstRank { _, member in !predicate(member) }) }
        var position = rank
        visit(from: rank) { member, _ in
            if !predicate(member) { return false }
            position += 1
            return true
        }
        return position
    }

    /// The last rank at or before `rank` whose member fails `predicate` (-1 if none). With
    /// uniform scores `predicate` must hold for a suffix of the ranks.
    private func lexScanBackward(from rank: Int, while predicate: (ArraySlice<UInt8>) -> Bool) -> Int {
        if rank < 0 { return -1 }
        if hasUniformScores { return Swift.min(rank, firstRank { _, member in predicate(member) } - 1) }
        var position = rank
        visit(from: rank, reverse: true) { member, _ in
            if !predicate(member) { return false }
            position -= 1
            return true
        }
        return position
    }

    /// zzlIsInLexRange / zslIsInLexRange: the range is not empty, the last member reaches the
    /// minimum and the first member the maximum.
    private func lexRangeReachable(_ range: LexRange) -> Bool {
        if range.isEmpty || count == 0 { return false }
        return range.aboveMin(element(at: count - 1).member) && range.belowMax(element(at: 0).member)
    }

    /// The rank where a forward lex walk starts (zzlFirstInLexRange, zslFirstInLexRange).
    public func firstInLexRange(_ range: LexRange) -> Int? {
        guard lexRangeReachable(range) else { return nil }
        let first = lexScanForward(from: 0) { !range.aboveMin($0) }
        if first == count || !range.belowMax(element(at: first).member) { return nil }
        return first
    }

    /// The rank where a reverse lex walk starts: from the tail for the compact form
    /// (zzlLastInLexRange), from the head for the indexed form (zslLastInLexRange).
    public func lastInLexRange(_ range: LexRange) -> Int? {
        guard lexRangeReachable(range) else { return nil }
        let last: Int
        if isCompact {
            last = lexScanBackward(from: count - 1) { !range.belowMax($0) }
        } else {
            last = lexScanForward(from: 1) { range.belowMax($0) } - 1
        }
        if last < 0 || !range.aboveMin(element(at: last).member) { return nil }
        return last
    }

    /// The ranks ZRANGEBYLEX / ZREVRANGEBYLEX emit (genericZrangebylexCommand): from the walk's
    /// start, `offset` elements skipped unchecked, then elements while they stay below the
    /// maximum (forward) or above the minimum (reverse), at most `limit` (negative: no limit).
    public func lexSelection(_ range: LexRange, offset: Int, limit: Int, reverse: Bool) -> Range<Int> {
        guard let start = reverse ? lastInLexRange(range) : firstInLexRange(range), offset >= 0, limit != 0 else {
            return 0..<0
        }
        if reverse {
            let from = start - offset
            if from < 0 { return 0..<0 }
            var low = lexScanBackward(from: from) { range.aboveMin($0) } + 1
            if limit > 0 { low = Swift.max(low, from - limit + 1) }
            return low..<(from + 1)
        }
        let from = start + offset
        if from >= count { return 0..<0 }
        var high = lexScanForward(from: from) { range.belowMax($0) }
        if limit > 0 { high = Swift.min(high, from + limit) }
        return from..<high
    }

    /// ZLEXCOUNT's answer: the compact form counts from the first element while below the
    /// maximum; the indexed form subtracts the ranks of its first and last walks, which can be
    /// negative when mixed scores make them cross.
    public func lexCount(_ range: LexRange) -> Int {
        guard let first = firstInLexRange(range) else { return 0 }
        if isCompact { return lexScanForward(from: first) { range.belowMax($0) } - first }
        guard let last = lastInLexRange(range) else { return count - first }
        return last - first + 1
    }

    /// The ranks ZREMRANGEBYLEX deletes: from the first walk's start while below the maximum;
    /// the indexed form's walk (zslDeleteRangeByLex) skips zslIsInLexRange's checks.
    public func lexDeletionRanks(_ range: LexRange) -> Range<Int> {
        let first: Int
        if isCompact {
            guard let start = firstInLexRange(range) else { return 0..<0 }
            first = start
        } else {
            first = lexScanForward(from: 0) { !range.aboveMin($0) }
        }
        return first..<lexScanForward(from: first) { range.belowMax($0) }
    }
}

extension SortedSetValue {
    /// One ZSCAN step from `cursor`: a compact set answers every element and cursor 0 (as Redis
    /// does for a listpack); an indexed set is scanned as a dict of `2^k >= count` buckets,
    /// a member's bucket being the low bits of its hash, visited in reverse-binary cursor order
    /// (dict.c dictScan) until `count` elements came out, so every member present for a whole
    /// scan comes out at least once whatever the set's size does between calls. Each step hashes
    /// every member, so past `virtualScanSmallCount` members a step takes at least a 32nd of them
    /// (see `virtualDictScan`).
    /// Returns the next cursor (0: done).
    public func scan(cursor: UInt64, count wanted: Int,
                     _ body: (ArraySlice<UInt8>, Double) -> Void) -> UInt64 {
        if isCompact || count == 0 {
            forEach(body)
            return 0
        }
        var hashes: [UInt64] = []
        hashes.reserveCapacity(count)
        forEach { member, _ in hashes.append(MemberIndex.hash(member)) }
        let (ranks, next) = virtualDictScan(cursor: cursor, hashes: hashes, count: wanted)
        for rank in ranks {
            let element = element(at: rank)
            body(element.member, element.score)
        }
        return next
    }
}

/// Up to this many elements a virtual scan step returns about COUNT elements, as Redis's dict
/// scan does; a step hashes every element, so a full scan of n elements costs n/COUNT steps of
/// O(n): about 0.1 ms a step here at 4096. Larger collections take at least a 32nd of their
/// elements a step (at most ~33 steps a scan) so a scan stays O(n log n) in all.
let virtualScanSmallCount = 4096

/// One dictScan step over a dict of `2^k >= hashes.count` buckets (at least 4) that holds
/// element `i` in bucket `hashes[i] & mask`, for collections without buckets of their own:
/// buckets are visited in reverse-binary cursor order, whole, until at least `count` elements
/// (and, past `virtualScanSmallCount` elements, at least a 32nd of them) came out. Returns
/// those elements' indices, ascending, and the next cursor (0: done).
func virtualDictScan(cursor: UInt64, hashes: [UInt64], count wanted: Int) -> (indices: [Int], next: UInt64) {
    var size = 4
    while size < hashes.count { size *= 2 }
    let mask = UInt64(size - 1)
    // Positions in the reversed-bit space: a bucket's elements share one position, and the
    // cursor's buckets come in increasing position order.
    let start = reversedBits(cursor & mask)
    var positions: [(position: UInt64, index: Int)] = []
    for (index, hash) in hashes.enumerated() {
        let position = reversedBits(hash & mask)
        if position >= start { positions.append((position, index)) }
    }
    positions.sort { $0.position < $1.position }
    let floor = hashes.count > virtualScanSmallCount ? hashes.count / 32 : 0
    let target = Swift.max(wanted, floor, 1)
    var taken = 0
    while taken < positions.count
        && (taken < target || positions[taken].position == positions[taken - 1].position) {
        taken += 1
    }
    var indices = positions.prefix(taken).map(\.index)
    indices.sort()
    return (indices, taken == positions.count ? 0 : reversedBits(positions[taken].position))
}

extension SortedSetValue: AggregateValue {
    public consuming func intoValue() -> Value { .sortedSet(self) }
    public static func take(from value: inout Value) -> SortedSetValue? {
        guard case .sortedSet = value else { return nil }
        guard case .sortedSet(let set) = consume value else { preconditionFailure("checked above") }
        value = .integer(0)
        return set
    }
}

extension SortedSetValue {
    /// A packed set of `members[i]` scored `scores[i]`: distinct members in any order, sorted
    /// once into one exact-size buffer. RDB loading of a ZSET_LISTPACK uses it (rdb.c keeps
    /// the listpack it read, whatever its members' lengths): inserting one at a time scans
    /// the records for each, O(n^2) for a 128-member set.
    public init(packing members: [[UInt8]], scores: [Double]) {
        precondition(members.count == scores.count, "one score per member")
        var order = Array(members.indices)
        order.sort { sortedSetPrecedes(scores[$0], members[$0], scores[$1], members[$1]) }
        var size = 0
        for index in order {
            size += PackedSortedSet.recordSize(memberBytes: members[index].count, score: scores[index])
        }
        storage = .packed(PackedSortedSet(ordered: { add in
            for index in order { add(members[index][...], scores[index]) }
        }, count: members.count, size: size))
    }

    /// Inserts an absent member without converting forms (RDB loading keeps a loaded listpack
    /// compact whatever its members' lengths, as Redis does).
    public mutating func insertNewUnchecked(_ member: ArraySlice<UInt8>, score: Double) {
        insertNew(member, score: score)
    }
}

extension SortedSetValue {
    // Array forms of the member entry points (RDB loading, tests); the slice forms above are
    // concrete so they are specialized here rather than run through generic witnesses.

    /// The score of `member`, if present.
    public func score(of member: [UInt8]) -> Double? { score(of: member[...]) }
    /// The rank and score of `member`, if present.
    public func rank(of member: [UInt8]) -> (rank: Int, score: Double)? { rank(of: member[...]) }
    /// Inserts an absent `member` (see the slice form).
    public mutating func insert(_ member: [UInt8], score: Double, limits: SortedSetLimits) {
        insert(member[...], score: score, limits: limits)
    }
    /// Removes `member`; returns its score, or nil when absent.
    @discardableResult
    public mutating func remove(_ member: [UInt8]) -> Double? { remove(member[...]) }
    /// Inserts an absent member without converting forms.
    public mutating func insertNewUnchecked(_ member: [UInt8], score: Double) {
        insertNewUnchecked(member[...], score: score)
    }
}

extension Shard {
    /// Applies `body` to the sorted set at `key` (see `withAggregate`).
    @inlinable
    public func withSortedSet<R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout SortedSetValue, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var result: R?
        try updateSortedSet(database, key, now: now, create: create) {
            (value: inout SortedSetValue, changed: inout Bool) throws(KeyspaceError) in
            result = try body(&value, &changed)
        }
        return result
    }

    /// `withSortedSet`'s body, specialized here (see `withAggregate`).
    @usableFromInline
    func updateSortedSet(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout SortedSetValue, inout Bool) throws(KeyspaceError) -> Void
    ) throws(KeyspaceError) {
        _ = try withAggregate(database, key, now: now, create: create, body)
    }

    /// The sorted set at `key` for a read (hit or miss counted); nil when absent, WRONGTYPE for
    /// another kind of value.
    public func readSortedSet(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError) -> SortedSetValue? {
        guard let entry = lookupRead(database, key, now: now) else { return nil }
        guard case .sortedSet(let set) = entry.value else { throw .wrongType }
        return set
    }

    /// An input of ZUNION/ZINTER/ZDIFF and their STORE forms: a sorted set, or a plain set read
    /// as its members each scored 1, as t_zset.c's zuiInitIterator accepts both; nil when absent.
    public func readSortedSetOperand(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError)
        -> SortedSetValue?
    {
        guard let entry = lookupRead(database, key, now: now) else { return nil }
        switch entry.value {
        case .sortedSet(let set): return set
        case .set(let members):
            var set = SortedSetValue()
            let limits = SortedSetLimits()
            members.forEach { member in set.insert(Array(member)[...], score: 1, limits: limits) }
            return set
        default: throw .wrongType
        }
    }

    /// The sorted set at `key` without counting a hit (write paths); nil when absent.
    public func peekSortedSet(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError) -> SortedSetValue? {
        guard let entry = lookup(database, key, now: now) else { return nil }
        guard case .sortedSet(let set) = entry.value else { throw .wrongType }
        return set
    }
}
