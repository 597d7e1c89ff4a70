// IndexedSortedSet: a large sorted set (Redis's skiplist encoding): chunks, a Fenwick tree, a member index.
import Glibc

/// Up to `SortedSetChunk.capacity` members in order, packed: one score array, one array of
/// member end offsets and one byte buffer, so a member costs 12 bytes plus its bytes (no
/// per-member allocation, unlike a skiplist node plus an sds string in Redis).
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

extension [SortedSetChunk] {
    /// True if element `index` of chunk `slot` orders before (score, member). Reads through
    /// the array's own accessors: copying the chunk out retained and released its three arrays
    /// around each of the ~20 comparisons of a lookup (a sixth of a ZINCRBY's instructions when
    /// scores tie); now only a tie's `withUnsafeBytes` retains the byte buffer.
    @inline(__always)
    func element(_ slot: Int, _ index: Int, precedes score: Double, _ member: UnsafeRawBufferPointer) -> Bool {
        let own = self[slot].scores[index]
        if own != score { return own < score }
        let start = index == 0 ? 0 : Int(self[slot].ends[index - 1])
        let length = Int(self[slot].ends[index]) - start
        let common = Swift.min(length, member.count)
        let order = common == 0 ? 0 : self[slot].bytes.withUnsafeBytes { stored -> Int32 in
            memcmp(stored.baseAddress! + start, member.baseAddress!, common)
        }
        return order != 0 ? order < 0 : length < member.count
    }
}

/// The indexed form of a sorted set (Redis's skiplist + dict, OBJECT ENCODING `skiplist`):
/// packed chunks of at most 128 members, a Fenwick tree of chunk sizes (rank <-> position in
/// O(log n)) and a member -> score hash. Finding a member's position is a hash probe for its
/// score, then a binary search over the chunks' last elements and inside the chunk: O(log n)
/// plus a <=128-element memmove to edit. `SortedSetValue` holds it boxed once a set outgrows
/// the packed form (see `PackedSortedSet`).
struct IndexedSortedSet: Sendable {
    var chunks: [SortedSetChunk] = []
    /// member -> score.
    var index = MemberIndex(capacityFor: 0)
    /// Fenwick tree over chunk sizes (1-based; `tree[0]` unused).
    var tree: [Int] = [0]
    /// Number of members.
    private(set) var count = 0
    /// Sum of member lengths, kept up to date so the memory estimate is O(1).
    private(set) var payloadBytes = 0
    /// The longest member ever held (Redis checks it when deciding to convert a result back).
    private(set) var longestMember = 0

    /// Creates an empty indexed set.
    init() {}

    /// An indexed set of `elements`, which come in order (score, then member bytes) and
    /// distinct: chunks filled to three quarters so inserts do not split them at once.
    init(ordered elements: (_ add: (ArraySlice<UInt8>, Double) -> Void) -> Void, expected: Int) {
        index = MemberIndex(capacityFor: expected)
        var piece = SortedSetChunk()
        elements { member, score in
            index.insert(hash: MemberIndex.hash(member), score: score)
            if piece.count == SortedSetChunk.capacity * 3 / 4 {
                chunks.append(piece)
                piece = SortedSetChunk()
            }
            piece.insert(member, score: score, at: piece.count)
            count += 1
            payloadBytes += member.count
            longestMember = Swift.max(longestMember, member.count)
        }
        if piece.count > 0 { chunks.append(piece) }
        rebuildTree()
    }

    /// Heap bytes for the memory estimate (see `SortedSetValue.heapBytes`).
    var heapBytes: Int {
        let header = MemoryEstimate.bufferHeaderBytes
        return 2 * header + payloadBytes + count * 12 + index.capacity * 16 + chunks.count * (3 * header + 24)
    }

    // MARK: Fenwick tree over chunk sizes

    mutating func rebuildTree() {
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
        var node = slot + 1
        while node < tree.count {
            tree[node] += delta
            node += node & -node
        }
    }

    /// Members in chunks before `slot`.
    func membersBefore(_ slot: Int) -> Int {
        var sum = 0
        var node = slot
        while node > 0 {
            sum += tree[node]
            node -= node & -node
        }
        return sum
    }

    /// The chunk holding rank `rank` (0..<count) and the position inside it.
    func locate(rank: Int) -> (slot: Int, offset: Int) {
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

    /// The score of `member`, if present.
    func score(of member: ArraySlice<UInt8>) -> Double? {
        // A hash match is confirmed by finding (score, member) in the chunks.
        index.find(hash: MemberIndex.hash(member)) { contains(score: $0, member: member) }
    }

    /// `firstRank(where:)` on scores alone: no member is sliced for a predicate that ignores it.
    func firstRank(whereScore predicate: (Double) -> Bool) -> Int {
        firstRank(holding: { slot, index in predicate(chunks[slot].scores[index]) })
    }

    /// The first rank whose element satisfies `predicate` (false for a prefix, then true), or
    /// `count` when none does.
    func firstRank(where predicate: (Double, ArraySlice<UInt8>) -> Bool) -> Int {
        firstRank(holding: { slot, index in predicate(chunks[slot].scores[index], chunks[slot].member(index)) })
    }

    /// Binary search over the chunks' last elements, then inside the chunk, for the first element
    /// (chunk `slot`, position `index`) that `holds`. It reads through the chunk array's accessors:
    /// copying a chunk out to look at it cost three retains and releases per step (most of a
    /// ZCOUNT's instructions).
    private func firstRank(holding holds: (_ slot: Int, _ index: Int) -> Bool) -> Int {
        if chunks.isEmpty { return 0 }
        var low = 0
        var high = chunks.count
        while low < high {
            let middle = (low + high) / 2
            if holds(middle, chunks[middle].count - 1) {
                high = middle
            } else {
                low = middle + 1
            }
        }
        if low == chunks.count { return count }
        var left = 0
        var right = chunks[low].count - 1
        while left < right {
            let middle = (left + right) / 2
            if holds(low, middle) {
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
            var low = 0
            var high = chunks.count
            while low < high {
                let middle = (low + high) / 2
                if chunks.element(middle, chunks[middle].count - 1, precedes: score, target) {
                    low = middle + 1
                } else {
                    high = middle
                }
            }
            if low == chunks.count { return (chunks.count - 1, chunks[chunks.count - 1].count) }
            var left = 0
            var right = chunks[low].count - 1
            while left < right {
                let middle = (left + right) / 2
                if chunks.element(low, middle, precedes: score, target) {
                    left = middle + 1
                } else {
                    right = middle
                }
            }
            return (low, left)
        }
    }

    /// The 0-based rank of `member` in ascending order, if present.
    func rank(of member: ArraySlice<UInt8>) -> (rank: Int, score: Double)? {
        guard let score = score(of: member) else { return nil }
        let (slot, offset) = lowerBound(score: score, member: member)
        return (membersBefore(slot) + offset, score)
    }

    /// The element at `rank` (0..<count).
    func element(at rank: Int) -> (member: ArraySlice<UInt8>, score: Double) {
        let (slot, offset) = locate(rank: rank)
        return (chunks[slot].member(offset), chunks[slot].scores[offset])
    }

    /// Visits elements from `rank`, ascending (or descending when `reverse`); `body` returns
    /// false to stop.
    func visit(from rank: Int, reverse: Bool = false,
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
    func forEach(_ body: (ArraySlice<UInt8>, Double) throws -> Void) rethrows {
        for chunk in chunks {
            for position in 0..<chunk.count { try body(chunk.member(position), chunk.scores[position]) }
        }
    }

    // MARK: Edits

    /// Inserts an absent member without any form check.
    mutating func insertNew(_ member: ArraySlice<UInt8>, score: Double, hash known: UInt64? = nil) {
        let length = member.count
        count += 1
        payloadBytes += length
        if length > longestMember { longestMember = length }
        index.insert(hash: known ?? MemberIndex.hash(member), score: score)
        if chunks.isEmpty {
            chunks.append(SortedSetChunk())
            rebuildTree()
        }
        // The first element not before the new one; past the end, the end of the last chunk.
        let (slot, left) = lowerBound(score: score, member: member)
        if chunks[slot].bytes.count + length > Int(UInt32.max) {
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
        if chunks[slot].count > SortedSetChunk.capacity {
            let upper = chunks[slot].splitOffHalf()
            chunks.insert(upper, at: slot + 1)
            rebuildTree()
        }
    }

    /// Removes the element at chunk `slot`, position `offset`.
    mutating func removeAt(slot: Int, offset: Int, hash known: UInt64? = nil) {
        let length = Int(chunks[slot].ends[offset]) - chunks[slot].start(offset)
        let hash = known ?? MemberIndex.hash(chunks[slot].member(offset))
        index.remove(hash: hash, score: chunks[slot].scores[offset])
        chunks[slot].remove(at: offset)
        count -= 1
        payloadBytes -= length
        treeAdd(slot, -1)
        if chunks[slot].count == 0 {
            chunks.remove(at: slot)
            rebuildTree()
        } else if slot + 1 < chunks.count
                    && chunks[slot].count + chunks[slot + 1].count <= SortedSetChunk.capacity / 2
                    && chunks[slot].bytes.count + chunks[slot + 1].bytes.count <= Int(UInt32.max) {
            let next = chunks.remove(at: slot + 1)
            chunks[slot].append(contentsOf: next)
            rebuildTree()
        }
    }

    /// Removes `member`; returns its score, or nil when absent.
    @discardableResult
    mutating func remove(_ member: ArraySlice<UInt8>) -> Double? {
        guard let score = score(of: member) else { return nil }
        let (slot, offset) = position(score: score, member: member)
        removeAt(slot: slot, offset: offset)
        return score
    }

    /// Removes the element at `rank` and returns it.
    @discardableResult
    mutating func remove(rank: Int) -> (member: [UInt8], score: Double) {
        let (slot, offset) = locate(rank: rank)
        let element = (Array(chunks[slot].member(offset)), chunks[slot].scores[offset])
        removeAt(slot: slot, offset: offset)
        return element
    }

    /// Removes ranks `range` (within 0..<count); returns how many were removed.
    @discardableResult
    mutating func removeRanks(_ range: Range<Int>) -> Int {
        var left = range.count
        while left > 0 {
            let (slot, offset) = locate(rank: range.lowerBound)
            if offset == 0 && chunks[slot].count <= left {
                // A whole chunk goes at once.
                let chunk = chunks[slot]
                for position in 0..<chunk.count {
                    index.remove(hash: MemberIndex.hash(chunk.member(position)), score: chunk.scores[position])
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
    mutating func update(_ member: ArraySlice<UInt8>, from old: Double, to new: Double) {
        if old == new { return }
        let (slot, offset) = position(score: old, member: member)
        // ZINCRBY by a little usually keeps the element between its neighbours: then only
        // the score changes, in the chunk and in the member index.
        if staysInPlace(slot: slot, offset: offset, score: new, member: member) {
            chunks[slot].scores[offset] = new
            index.replace(hash: MemberIndex.hash(member), old: old, new: new)
            return
        }
        removeAt(slot: slot, offset: offset)
        insertNew(member, score: new)
    }
}


extension IndexedSortedSet {
    /// The score and position of `member`, if present.
    func locate(_ member: ArraySlice<UInt8>) -> SortedSetLocation? {
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
    mutating func update(at location: SortedSetLocation, _ member: ArraySlice<UInt8>, to new: Double) {
        if location.score == new { return }
        if staysInPlace(slot: location.slot, offset: location.offset, score: new, member: member) {
            chunks[location.slot].scores[location.offset] = new
            index.replace(hash: location.hash, old: location.score, new: new)
            return
        }
        removeAt(slot: location.slot, offset: location.offset, hash: location.hash)
        insertNew(member, score: new, hash: location.hash)
    }

    /// True if the element at (slot, offset) would keep its place with score `score`: after
    /// its predecessor and before its successor (across chunk ends too).
    private func staysInPlace(slot: Int, offset: Int, score: Double, member: ArraySlice<UInt8>) -> Bool {
        member.withUnsafeBytes { target in
            if offset > 0 {
                if !chunks.element(slot, offset - 1, precedes: score, target) { return false }
            } else if slot > 0 {
                if !chunks.element(slot - 1, chunks[slot - 1].count - 1, precedes: score, target) { return false }
            }
            // The successor must not precede the element: compare (successor) < (score, member).
            if offset + 1 < chunks[slot].count {
                return !chunks.element(slot, offset + 1, precedes: score, target)
                    && !sameElement(chunks[slot], offset + 1, score, target)
            }
            if slot + 1 < chunks.count {
                return !chunks.element(slot + 1, 0, precedes: score, target)
                    && !sameElement(chunks[slot + 1], 0, score, target)
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

    /// The member's hash: the keyspace's per-process keyed hash (as sets use; a third of
    /// SipHash's cost for a short member), moved off the two marker values.
    static func hash(_ member: ArraySlice<UInt8>) -> UInt64 {
        let value = member.withUnsafeBytes { KeyTableStorage.hash($0) }
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
