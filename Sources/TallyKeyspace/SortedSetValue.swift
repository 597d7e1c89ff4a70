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

/// Up to `SortedSetChunk.capacity` members in order, packed: one score array, one array of
/// member end offsets and one byte buffer, so a member costs 12 bytes plus its bytes (no
/// per-member allocation, unlike a skiplist node plus an sds string in Redis).
@usableFromInline
struct SortedSetChunk: Sendable {
    /// Members per chunk in the indexed form before it splits in two.
    static let capacity = 128

    var scores: [Double] = []
    /// `ends[i]` is the end offset of member i in `bytes`; member i starts at `ends[i - 1]`.
    var ends: [UInt32] = []
    var bytes: [UInt8] = []

    var count: Int { scores.count }

    @inline(__always) func start(_ index: Int) -> Int { index == 0 ? 0 : Int(ends[index - 1]) }

    @inline(__always) func member(_ index: Int) -> ArraySlice<UInt8> {
        bytes[start(index)..<Int(ends[index])]
    }

    /// True if element `index` orders before (score, member), comparing the member bytes in
    /// place (no slice of `bytes` is made: this runs ~20 times per lookup in a large set).
    @inline(__always)
    func precedes(_ index: Int, _ score: Double, _ member: UnsafeRawBufferPointer) -> Bool {
        let own = scores[index]
        if own != score { return own < score }
        let start = index == 0 ? 0 : Int(ends[index - 1])
        let length = Int(ends[index]) - start
        let common = min(length, member.count)
        let order = bytes.withUnsafeBytes { stored -> Int32 in
            common == 0 ? 0 : memcmp(stored.baseAddress! + start, member.baseAddress!, common)
        }
        return order != 0 ? order < 0 : length < member.count
    }

    mutating func insert(_ member: ArraySlice<UInt8>, score: Double, at index: Int) {
        let offset = start(index)
        let length = member.count
        bytes.insert(contentsOf: member, at: offset)
        scores.insert(score, at: index)
        ends.insert(UInt32(offset + length), at: index)
        var position = index + 1
        while position < ends.count {
            ends[position] += UInt32(length)
            position += 1
        }
    }

    mutating func remove(at index: Int) {
        let offset = start(index)
        let length = Int(ends[index]) - offset
        bytes.removeSubrange(offset..<(offset + length))
        scores.remove(at: index)
        ends.remove(at: index)
        var position = index
        while position < ends.count {
            ends[position] -= UInt32(length)
            position += 1
        }
    }

    /// Moves the second half of this chunk into a new chunk and returns it.
    mutating func splitOffHalf() -> SortedSetChunk { split(at: count / 2) }

    /// Moves the elements from `half` on into a new chunk and returns it.
    mutating func split(at half: Int) -> SortedSetChunk {
        var upper = SortedSetChunk()
        let base = start(half)
        upper.scores = Array(scores[half...])
        upper.bytes = Array(bytes[base...])
        upper.ends = ends[half...].map { $0 - UInt32(base) }
        // Fresh exact-size buffers for the lower half too: truncating in place would keep the
        // grown capacity (up to 4x the live elements after the insert that overflowed).
        scores = Array(scores[..<half])
        ends = Array(ends[..<half])
        bytes = Array(bytes[..<base])
        return upper
    }

    /// Appends every member of `other`.
    mutating func append(contentsOf other: SortedSetChunk) {
        let base = UInt32(bytes.count)
        scores.append(contentsOf: other.scores)
        bytes.append(contentsOf: other.bytes)
        ends.append(contentsOf: other.ends.map { $0 + base })
    }
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
/// - Compact form (Redis's listpack encoding, OBJECT ENCODING `listpack`): one packed chunk and
///   no index; member lookups scan it, as Redis scans its listpack. Used while the set holds at
///   most `zset-max-listpack-entries` members of at most `zset-max-listpack-value` bytes.
/// - Indexed form (Redis's skiplist + dict, `skiplist`): packed chunks of at most 128 members,
///   a Fenwick tree of chunk sizes (rank ↔ position in O(log n)) and a member → score hash.
///   Finding a member's position is a hash probe for its score, then a binary search over the
///   chunks' last elements and inside the chunk: O(log n) plus a ≤128-element memmove to edit.
/// - Like Redis, a set converts to the indexed form once it outgrows the limits and never
///   converts back, except where Redis does (ZUNIONSTORE/ZRANGESTORE results, RDB loading).
public struct SortedSetValue: Sendable {
    @usableFromInline var chunks: [SortedSetChunk] = []
    /// member → score; nil in the compact form.
    @usableFromInline var index: MemberIndex?
    /// Fenwick tree over chunk sizes (1-based; `tree[0]` unused); empty in the compact form.
    var tree: [Int] = []
    /// Number of members.
    public private(set) var count = 0
    /// Sum of member lengths, kept up to date so the memory estimate is O(1).
    public private(set) var payloadBytes = 0
    /// The longest member ever held (Redis checks it when deciding to convert a result back).
    public private(set) var longestMember = 0

    /// Creates an empty compact sorted set.
    public init() {}

    /// Creates an empty set in the form Redis gives a new key whose first member is `firstMember`
    /// bytes long (t_zset.c zaddGenericCommand): indexed when listpacks are disabled or it is long.
    public init(firstMemberBytes: Int, limits: SortedSetLimits) {
        if limits.maxEntries == 0 || firstMemberBytes > limits.maxValueBytes { convertToIndexed() }
    }

    /// True when no member is held.
    @inlinable public var isEmpty: Bool { count == 0 }

    /// True in the compact form (OBJECT ENCODING `listpack`).
    @inlinable public var isCompact: Bool { index == nil }

    /// Number of chunks (for the memory estimate).
    public var chunkCount: Int { chunks.count }

    /// Slots of the member index (16 bytes each; 0 in the compact form).
    public var indexSlots: Int { index?.capacity ?? 0 }

    // MARK: Form

    /// Switches to the indexed form (Redis's zsetConvert to skiplist).
    public mutating func convertToIndexed() {
        guard index == nil else { return }
        var map = MemberIndex(capacityFor: count)
        var pieces: [SortedSetChunk] = []
        if let only = chunks.first {
            var piece = SortedSetChunk()
            for position in 0..<only.count {
                let member = only.member(position)
                map.insert(hash: MemberIndex.hash(member), score: only.scores[position])
                if piece.count == SortedSetChunk.capacity * 3 / 4 {
                    pieces.append(piece)
                    piece = SortedSetChunk()
                }
                piece.insert(member, score: only.scores[position], at: piece.count)
            }
            pieces.append(piece)
        }
        chunks = pieces
        index = map
        rebuildTree()
    }

    /// Switches to the compact form (the caller checked Redis's conditions).
    public mutating func convertToCompact() {
        guard index != nil else { return }
        var merged = SortedSetChunk()
        for chunk in chunks { merged.append(contentsOf: chunk) }
        for position in 0..<merged.count where merged.scores[position] == 0 { merged.scores[position] = 0 }
        chunks = count == 0 ? [] : [merged]
        index = nil
        tree = []
    }

    /// Converts a result set to the compact form when Redis would (zsetConvertToListpackIfNeeded).
    public mutating func compactIfSmall(limits: SortedSetLimits) {
        if !isCompact && count <= limits.maxEntries && longestMember <= limits.maxValueBytes {
            convertToCompact()
        }
    }

    // MARK: Fenwick tree over chunk sizes

    mutating func rebuildTree() {
        guard index != nil else { return }
        tree = [Int](repeating: 0, count: chunks.count + 1)
        for slot in 0..<chunks.count {
            var node = slot + 1
            tree[node] += chunks[slot].count
            let parent = node + (node & -node)
            if parent <= chunks.count { tree[parent] += tree[node] }
            node = parent
        }
    }

    mutating func treeAdd(_ slot: Int, _ delta: Int) {
        guard index != nil else { return }
        var node = slot + 1
        while node < tree.count {
            tree[node] += delta
            node += node & -node
        }
    }

    /// Members in chunks before `slot`.
    func membersBefore(_ slot: Int) -> Int {
        if index == nil { return 0 }
        var sum = 0
        var node = slot
        while node > 0 {
            sum += tree[node]
            node -= node & -node
        }
        return sum
    }

    /// The chunk holding rank `rank` (0..<count) and the position inside it.
    @usableFromInline func locate(rank: Int) -> (slot: Int, offset: Int) {
        if index == nil { return (0, rank) }
        var node = 0
        var remaining = rank
        var step = 1
        while step * 2 < tree.count { step *= 2 }
        while step > 0 {
            let next = node + step
            if next < tree.count && tree[next] <= remaining {
                node = next
                remaining -= tree[next]
            }
            step /= 2
        }
        return (node, remaining)
    }

    // MARK: Lookups

    /// The position of `member` in the compact form, by scanning.
    private func compactPosition(of member: ArraySlice<UInt8>) -> Int? {
        guard let chunk = chunks.first else { return nil }
        let length = member.count
        for position in 0..<chunk.count {
            let start = chunk.start(position)
            if Int(chunk.ends[position]) - start == length
                && chunk.bytes[start..<(start + length)].elementsEqual(member) {
                return position
            }
        }
        return nil
    }

    /// The score of `member`, if present.
    public func score(of member: ArraySlice<UInt8>) -> Double? {
        if let index {
            // A hash match is confirmed by finding (score, member) in the chunks.
            return index.find(hash: MemberIndex.hash(member)) { contains(score: $0, member: member) }
        }
        guard let position = compactPosition(of: member) else { return nil }
        return chunks[0].scores[position]
    }

    /// The first rank whose element satisfies `predicate` (false for a prefix, then true), or
    /// `count` when none does.
    public func firstRank(where predicate: (Double, ArraySlice<UInt8>) -> Bool) -> Int {
        if chunks.isEmpty { return 0 }
        // The first chunk whose last element satisfies the predicate.
        var low = 0
        var high = chunks.count
        while low < high {
            let middle = (low + high) / 2
            let chunk = chunks[middle]
            if predicate(chunk.scores[chunk.count - 1], chunk.member(chunk.count - 1)) {
                high = middle
            } else {
                low = middle + 1
            }
        }
        if low == chunks.count { return count }
        let chunk = chunks[low]
        var left = 0
        var right = chunk.count - 1
        while left < right {
            let middle = (left + right) / 2
            if predicate(chunk.scores[middle], chunk.member(middle)) {
                right = middle
            } else {
                left = middle + 1
            }
        }
        return membersBefore(low) + left
    }

    /// The chunk and position of the element (score, member), which must be present.
    private func position(score: Double, member: ArraySlice<UInt8>) -> (slot: Int, offset: Int) {
        lowerBound(score: score, member: member)
    }

    /// The chunk and position of the first element not before (score, member): binary search
    /// over the chunks' last elements, then inside the chunk. Past the end it is the last
    /// chunk's count (or (0, 0) with no chunk or one empty chunk).
    func lowerBound(score: Double, member: ArraySlice<UInt8>) -> (slot: Int, offset: Int) {
        if chunks.isEmpty || chunks[0].count == 0 { return (0, 0) }
        return member.withUnsafeBytes { target in
            chunks.withUnsafeBufferPointer { all -> (slot: Int, offset: Int) in
                var low = 0
                var high = all.count
                while low < high {
                    let middle = (low + high) / 2
                    if all[middle].precedes(all[middle].count - 1, score, target) {
                        low = middle + 1
                    } else {
                        high = middle
                    }
                }
                if low == all.count { return (all.count - 1, all[all.count - 1].count) }
                var left = 0
                var right = all[low].count - 1
                while left < right {
                    let middle = (left + right) / 2
                    if all[low].precedes(middle, score, target) {
                        left = middle + 1
                    } else {
                        right = middle
                    }
                }
                return (low, left)
            }
        }
    }

    /// The 0-based rank of `member` in ascending order, if present.
    public func rank(of member: ArraySlice<UInt8>) -> (rank: Int, score: Double)? {
        if index == nil {
            guard let position = compactPosition(of: member) else { return nil }
            return (position, chunks[0].scores[position])
        }
        guard let score = score(of: member) else { return nil }
        let (slot, offset) = lowerBound(score: score, member: member)
        return (membersBefore(slot) + offset, score)
    }

    /// The element at `rank` (0..<count).
    public func element(at rank: Int) -> (member: ArraySlice<UInt8>, score: Double) {
        let (slot, offset) = locate(rank: rank)
        return (chunks[slot].member(offset), chunks[slot].scores[offset])
    }

    /// Visits elements from `rank`, ascending (or descending when `reverse`); `body` returns
    /// false to stop.
    public func visit(from rank: Int, reverse: Bool = false,
                      _ body: (ArraySlice<UInt8>, Double) throws -> Bool) rethrows {
        if rank < 0 || rank >= count { return }
        var (slot, offset) = locate(rank: rank)
        while slot >= 0 && slot < chunks.count {
            let chunk = chunks[slot]
            if reverse {
                while offset >= 0 {
                    if try !body(chunk.member(offset), chunk.scores[offset]) { return }
                    offset -= 1
                }
                slot -= 1
                if slot >= 0 { offset = chunks[slot].count - 1 }
            } else {
                while offset < chunk.count {
                    if try !body(chunk.member(offset), chunk.scores[offset]) { return }
                    offset += 1
                }
                slot += 1
                offset = 0
            }
        }
    }

    /// Every element in order.
    public func forEach(_ body: (ArraySlice<UInt8>, Double) throws -> Void) rethrows {
        for chunk in chunks {
            for position in 0..<chunk.count { try body(chunk.member(position), chunk.scores[position]) }
        }
    }

    // MARK: Edits

    /// Inserts `member`, which must be absent, converting to the indexed form first when the
    /// compact form would outgrow `limits` (t_zset.c zsetAdd).
    public mutating func insert(_ member: ArraySlice<UInt8>, score: Double, limits: SortedSetLimits) {
        if index == nil && (count + 1 > limits.maxEntries || member.count > limits.maxValueBytes) {
            convertToIndexed()
        }
        insertNew(member, score: score)
    }

    /// Inserts an absent member without any form check.
    mutating func insertNew(_ member: ArraySlice<UInt8>, score given: Double, hash known: UInt64? = nil) {
        // A listpack stores the score as d2string text, and "-0" is read back as the integer 0.
        let score = index == nil && given == 0 ? 0 : given
        let length = member.count
        count += 1
        payloadBytes += length
        if length > longestMember { longestMember = length }
        if index != nil { index!.insert(hash: known ?? MemberIndex.hash(member), score: score) }
        if chunks.isEmpty {
            chunks.append(SortedSetChunk())
            rebuildTree()
        }
        // The first element not before the new one; past the end, the end of the last chunk.
        let (slot, left) = lowerBound(score: score, member: member)
        if index != nil && chunks[slot].bytes.count + length > Int(UInt32.max) {
            // Offsets are 32-bit: a member that would take a chunk past 4 GB gets a chunk of its
            // own between the two parts of the chunk it belongs in.
            let upper = chunks[slot].split(at: left)
            var single = SortedSetChunk()
            single.insert(member, score: score, at: 0)
            chunks.insert(contentsOf: upper.count > 0 ? [single, upper] : [single], at: slot + 1)
            if chunks[slot].count == 0 { chunks.remove(at: slot) }
            rebuildTree()
            return
        }
        chunks[slot].insert(member, score: score, at: left)
        treeAdd(slot, 1)
        if index != nil && chunks[slot].count > SortedSetChunk.capacity {
            let upper = chunks[slot].splitOffHalf()
            chunks.insert(upper, at: slot + 1)
            rebuildTree()
        }
    }

    /// Removes the element at chunk `slot`, position `offset`.
    private mutating func removeAt(slot: Int, offset: Int, hash known: UInt64? = nil) {
        let length = Int(chunks[slot].ends[offset]) - chunks[slot].start(offset)
        if index != nil {
            let hash = known ?? MemberIndex.hash(chunks[slot].member(offset))
            index!.remove(hash: hash, score: chunks[slot].scores[offset])
        }
        chunks[slot].remove(at: offset)
        count -= 1
        payloadBytes -= length
        treeAdd(slot, -1)
        if chunks[slot].count == 0 {
            chunks.remove(at: slot)
            rebuildTree()
        } else if index != nil && slot + 1 < chunks.count
                    && chunks[slot].count + chunks[slot + 1].count <= SortedSetChunk.capacity / 2
                    && chunks[slot].bytes.count + chunks[slot + 1].bytes.count <= Int(UInt32.max) {
            let next = chunks.remove(at: slot + 1)
            chunks[slot].append(contentsOf: next)
            rebuildTree()
        }
    }

    /// Removes `member`; returns its score, or nil when absent.
    @discardableResult
    public mutating func remove(_ member: ArraySlice<UInt8>) -> Double? {
        if index == nil {
            guard let position = compactPosition(of: member) else { return nil }
            let score = chunks[0].scores[position]
            removeAt(slot: 0, offset: position)
            return score
        }
        guard let score = score(of: member) else { return nil }
        let (slot, offset) = position(score: score, member: member)
        removeAt(slot: slot, offset: offset)
        return score
    }

    /// Removes the element at `rank` and returns it.
    @discardableResult
    public mutating func remove(rank: Int) -> (member: [UInt8], score: Double) {
        let (slot, offset) = locate(rank: rank)
        let element = (Array(chunks[slot].member(offset)), chunks[slot].scores[offset])
        removeAt(slot: slot, offset: offset)
        return element
    }

    /// Removes ranks `range` (within 0..<count); returns how many were removed.
    @discardableResult
    public mutating func removeRanks(_ range: Range<Int>) -> Int {
        var left = range.count
        while left > 0 {
            let (slot, offset) = locate(rank: range.lowerBound)
            if offset == 0 && chunks[slot].count <= left {
                // A whole chunk goes at once.
                let chunk = chunks[slot]
                if index != nil {
                    for position in 0..<chunk.count {
                        index!.remove(hash: MemberIndex.hash(chunk.member(position)), score: chunk.scores[position])
                    }
                }
                count -= chunk.count
                payloadBytes -= chunk.bytes.count
                left -= chunk.count
                chunks.remove(at: slot)
                rebuildTree()
            } else {
                removeAt(slot: slot, offset: offset)
                left -= 1
            }
        }
        return range.count
    }

    /// Changes the score of a present member.
    public mutating func update(_ member: ArraySlice<UInt8>, from old: Double, to new: Double) {
        if old == new { return }
        if index == nil {
            guard let position = compactPosition(of: member) else { return }
            removeAt(slot: 0, offset: position)
        } else {
            let (slot, offset) = position(score: old, member: member)
            // ZINCRBY by a little usually keeps the element between its neighbours: then only
            // the score changes, in the chunk and in the member index.
            if staysInPlace(slot: slot, offset: offset, score: new, member: member) {
                chunks[slot].scores[offset] = new
                index!.replace(hash: MemberIndex.hash(member), old: old, new: new)
                return
            }
            removeAt(slot: slot, offset: offset)
        }
        insertNew(member, score: new)
    }
}

/// Where a present member sits, as `SortedSetValue.locate` found it; valid for one `update(at:)`
/// with no other edit in between (ZADD's lookup-then-update does the search and hash once).
public struct SortedSetLocation: Sendable {
    /// The member's score.
    public let score: Double
    let slot: Int
    let offset: Int
    let hash: UInt64
}

extension SortedSetValue {
    /// The score and position of `member`, if present.
    public func locate(_ member: ArraySlice<UInt8>) -> SortedSetLocation? {
        guard let index else {
            guard let position = compactPosition(of: member) else { return nil }
            return SortedSetLocation(score: chunks[0].scores[position], slot: 0, offset: position, hash: 0)
        }
        if chunks.isEmpty { return nil }
        let hash = MemberIndex.hash(member)
        var position = (slot: 0, offset: 0)
        let found = index.find(hash: hash) { candidate in
            let (slot, offset) = lowerBound(score: candidate, member: member)
            guard offset < chunks[slot].count, chunks[slot].scores[offset] == candidate,
                  chunks[slot].member(offset).elementsEqual(member) else { return false }
            position = (slot, offset)
            return true
        }
        guard let score = found else { return nil }
        return SortedSetLocation(score: score, slot: position.slot, offset: position.offset, hash: hash)
    }

    /// Changes the score of the member `locate` just found at `location`.
    public mutating func update(at location: SortedSetLocation, _ member: ArraySlice<UInt8>, to new: Double) {
        if location.score == new { return }
        if index != nil
            && staysInPlace(slot: location.slot, offset: location.offset, score: new, member: member) {
            chunks[location.slot].scores[location.offset] = new
            index!.replace(hash: location.hash, old: location.score, new: new)
            return
        }
        removeAt(slot: location.slot, offset: location.offset, hash: index == nil ? nil : location.hash)
        insertNew(member, score: new, hash: index == nil ? nil : location.hash)
    }

    /// True if the element at (slot, offset) would keep its place with score `score`: after
    /// its predecessor and before its successor (across chunk ends too).
    private func staysInPlace(slot: Int, offset: Int, score: Double, member: ArraySlice<UInt8>) -> Bool {
        member.withUnsafeBytes { target in
            let chunk = chunks[slot]
            if offset > 0 {
                if !chunk.precedes(offset - 1, score, target) { return false }
            } else if slot > 0 {
                if !chunks[slot - 1].precedes(chunks[slot - 1].count - 1, score, target) { return false }
            }
            // The successor must not precede the element: compare (successor) < (score, member).
            if offset + 1 < chunk.count {
                return !chunk.precedes(offset + 1, score, target) && !sameElement(chunk, offset + 1, score, target)
            }
            if slot + 1 < chunks.count {
                return !chunks[slot + 1].precedes(0, score, target) && !sameElement(chunks[slot + 1], 0, score, target)
            }
            return true
        }
    }

    private func sameElement(_ chunk: SortedSetChunk, _ index: Int, _ score: Double,
                             _ member: UnsafeRawBufferPointer) -> Bool {
        chunk.scores[index] == score && chunk.member(index).elementsEqual(member)
    }

    /// True if the element (score, member) is present (binary search over the order).
    func contains(score: Double, member: ArraySlice<UInt8>) -> Bool {
        let (slot, offset) = lowerBound(score: score, member: member)
        if chunks.isEmpty || offset >= chunks[slot].count { return false }
        return chunks[slot].scores[offset] == score && chunks[slot].member(offset).elementsEqual(member)
    }
}

/// The indexed form's member → score map, without the members: an open-addressing table of
/// (64-bit member hash, score) pairs, 16 bytes a slot (a `[Key: Double]` slot is 32, and the
/// member bytes would be stored twice). A hash match is only a candidate: the caller confirms it
/// by finding (score, member) in the ordered chunks, so colliding members stay distinct.
/// Removal needs only (hash, score): two slots equal in both are interchangeable.
@usableFromInline
struct MemberIndex: Sendable {
    /// Slot hashes: 0 = empty, 1 = deleted; real hashes are >= 2.
    private var hashes: [UInt64]
    private var scores: [Double]
    /// Live entries.
    private(set) var count = 0
    /// Live plus deleted slots (what the load factor counts).
    private var used = 0

    init(capacityFor entries: Int) {
        var capacity = 8
        while capacity * 3 < max(entries, 1) * 4 { capacity *= 2 }
        hashes = [UInt64](repeating: 0, count: capacity)
        scores = [Double](repeating: 0, count: capacity)
    }

    /// Allocated slots (for the memory estimate).
    var capacity: Int { hashes.count }

    /// The member's hash: Swift's per-process seeded SipHash, moved off the two marker values.
    static func hash(_ member: ArraySlice<UInt8>) -> UInt64 {
        var hasher = Hasher()
        member.withUnsafeBytes { hasher.combine(bytes: $0) }
        let value = UInt64(bitPattern: Int64(hasher.finalize()))
        return value < 2 ? value + 2 : value
    }

    /// The score of the first slot with `hash` whose score `confirm` accepts.
    func find(hash: UInt64, confirm: (Double) -> Bool) -> Double? {
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash && confirm(scores[slot]) { return scores[slot] }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Adds an entry (the caller knows the member is absent).
    mutating func insert(hash: UInt64, score: Double) {
        if (used + 1) * 4 > hashes.count * 3 {
            // Double when live entries fill the table; only sweep deleted slots otherwise.
            rebuild(capacityFor: count * 2 >= hashes.count ? hashes.count * 3 / 2 : count * 2)
        }
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] > 1 { slot = (slot + 1) & mask }
        if hashes[slot] == 0 { used += 1 }
        hashes[slot] = hash
        scores[slot] = score
        count += 1
    }

    /// Removes the entry (hash, score), which must be present.
    mutating func remove(hash: UInt64, score: Double) {
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash && scores[slot] == score {
                hashes[slot] = 1
                count -= 1
                if hashes.count > 64 && count * 8 < hashes.count { rebuild(capacityFor: count * 2) }
                return
            }
            slot = (slot + 1) & mask
        }
    }

    /// Changes the score of the entry (hash, old), which must be present.
    mutating func replace(hash: UInt64, old: Double, new: Double) {
        let mask = hashes.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while hashes[slot] != 0 {
            if hashes[slot] == hash && scores[slot] == old {
                scores[slot] = new
                return
            }
            slot = (slot + 1) & mask
        }
    }

    /// Re-inserts every live entry into a table sized for `entries`.
    private mutating func rebuild(capacityFor entries: Int) {
        var fresh = MemberIndex(capacityFor: entries)
        for slot in 0..<hashes.count where hashes[slot] > 1 {
            let mask = fresh.hashes.count - 1
            var target = Int(truncatingIfNeeded: hashes[slot]) & mask
            while fresh.hashes[target] != 0 { target = (target + 1) & mask }
            fresh.hashes[target] = hashes[slot]
            fresh.scores[target] = scores[slot]
            fresh.count += 1
            fresh.used += 1
        }
        self = fresh
    }
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
        let low = firstRank { score, _ in range.aboveMin(score) }
        let high = firstRank { score, _ in !range.belowMax(score) }
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
        count == 0 || chunks[0].scores[0] == chunks[chunks.count - 1].scores[chunks[chunks.count - 1].count - 1]
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
    public var wrapped: Value { .sortedSet(self) }
    public static func unwrap(_ value: Value) -> SortedSetValue? {
        if case .sortedSet(let set) = value { return set }
        return nil
    }
}

extension SortedSetValue {
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
