// SortedSetValueTests: the packed (listpack-sized) sorted set against a sorted-array model, and its conversions.
import TallyKeyspace
import Testing

@Suite struct SortedSetValueTests {
    typealias Element = (member: [UInt8], score: Double)

    /// Scores that exercise every stored width: 1-byte small integers, 2...8-byte integers
    /// (negative, millisecond timestamps, Int64's ends), raw doubles, both zeros and infinities.
    static func score(_ random: inout FastRandom) -> Double {
        switch random.below(12) {
        case 0: return Double(random.below(240))
        case 1: return Double(random.below(10)) - 5
        case 2: return Double(1_764_000_000_000 + random.below(100_000))
        case 3: return Double(Int64.max)  // 2^63: not an Int64, stored as a double
        case 4: return -9_223_372_036_854_775_808
        case 5: return Double(random.below(1000)) / 7
        case 6: return random.below(2) == 0 ? .infinity : -.infinity
        case 7: return random.below(2) == 0 ? 0 : -0.0
        case 8: return Double(random.below(70_000)) - 35_000
        case 9: return 1e300 * (random.below(2) == 0 ? 1 : -1)
        case 10: return Double(1 << 40) + 0.5
        default: return Double(random.below(4))
        }
    }

    /// Members with binary bytes, NULs, shared prefixes, the empty member and lengths that need
    /// a 2-byte length prefix.
    static func member(_ random: inout FastRandom) -> [UInt8] {
        switch random.below(6) {
        case 0: return Array("m\(random.below(40))".utf8)
        case 1: return (0..<random.below(4)).map { _ in UInt8(random.below(3)) }
        case 2: return Array(repeating: UInt8(97), count: random.below(6))
        case 3: return (0..<(120 + random.below(150))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 4: return [0xFF, UInt8(random.below(256))]
        default: return Array("member:\(random.below(200))".utf8)
        }
    }

    static func precedes(_ a: Element, _ b: Element) -> Bool {
        if a.score != b.score { return a.score < b.score }
        return a.member.lexicographicallyPrecedes(b.member)
    }

    static func contents(_ set: SortedSetValue) -> [Element] {
        var out: [Element] = []
        set.forEach { member, score in out.append((Array(member), score)) }
        return out
    }

    /// Checks `set` against `model` through every read path; scores by bit pattern (so -0 is
    /// told from 0).
    static func check(_ set: SortedSetValue, _ model: [Element], _ random: inout FastRandom,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(set.count == model.count, sourceLocation: sourceLocation)
        let seen = contents(set)
        #expect(seen.map(\.member) == model.map(\.member), sourceLocation: sourceLocation)
        #expect(seen.map(\.score.bitPattern) == model.map(\.score.bitPattern), sourceLocation: sourceLocation)
        if model.isEmpty { return }
        let rank = random.below(model.count)
        #expect(set.element(at: rank).member.elementsEqual(model[rank].member), sourceLocation: sourceLocation)
        #expect(set.rank(of: model[rank].member)?.rank == rank, sourceLocation: sourceLocation)
        #expect(set.score(of: model[rank].member)?.bitPattern == model[rank].score.bitPattern,
                sourceLocation: sourceLocation)
        var backward: [[UInt8]] = []
        set.visit(from: rank, reverse: true) { member, _ in
            backward.append(Array(member))
            return true
        }
        #expect(backward == model[...rank].reversed().map(\.member), sourceLocation: sourceLocation)
        var forward: [[UInt8]] = []
        set.visit(from: rank) { member, _ in
            forward.append(Array(member))
            return forward.count < 3
        }
        #expect(forward == model[rank...].prefix(3).map(\.member), sourceLocation: sourceLocation)
        let pivot = model[random.below(model.count)].score
        #expect(set.firstRank { score, _ in score >= pivot } == model.firstIndex { $0.score >= pivot },
                sourceLocation: sourceLocation)
    }

    /// Random inserts, removals, score changes and rank deletions on a set that stays packed
    /// (limits above anything the run reaches), against a sorted array. The packed form reads
    /// -0 back as 0, as a listpack does.
    @Test func packedSetMatchesASortedArray() {
        var random = FastRandom(seed: 7)
        let limits = SortedSetLimits(maxEntries: 10_000, maxValueBytes: 10_000)
        var set = SortedSetValue()
        var model: [Element] = []
        func normalized(_ score: Double) -> Double { score == 0 ? 0 : score }
        for step in 0..<4000 {
            let member = Self.member(&random)
            let existing = model.firstIndex { $0.member == member }
            switch random.below(8) {
            case 0, 1, 2:
                let score = Self.score(&random)
                if let existing {
                    // ZADD/ZINCRBY's lookup-then-update, or the plain update.
                    if random.below(2) == 0, let location = set.locate(member[...]) {
                        #expect(location.score.bitPattern == model[existing].score.bitPattern)
                        set.update(at: location, member[...], to: score)
                    } else {
                        set.update(member[...], from: model[existing].score, to: score)
                    }
                    if model[existing].score != score { model[existing].score = normalized(score) }
                    model.sort(by: Self.precedes)
                } else {
                    set.insert(member, score: score, limits: limits)
                    model.append((member, normalized(score)))
                    model.sort(by: Self.precedes)
                }
            case 3:
                // A small ZINCRBY-like nudge, which usually keeps the record where it is.
                if let existing {
                    let new = model[existing].score + 1
                    if !new.isNaN {
                        set.update(member[...], from: model[existing].score, to: new)
                        model[existing].score = new
                        model.sort(by: Self.precedes)
                    }
                }
            case 4:
                #expect(set.remove(member)?.bitPattern == existing.map { model[$0].score.bitPattern })
                if let existing { model.remove(at: existing) }
            case 5:
                if !model.isEmpty {
                    let rank = random.below(model.count)
                    let removed = set.remove(rank: rank)
                    #expect(removed.member == model[rank].member)
                    model.remove(at: rank)
                }
            case 6:
                if !model.isEmpty {
                    let low = random.below(model.count)
                    let high = Swift.min(model.count, low + random.below(4))
                    #expect(set.removeRanks(low..<high) == high - low)
                    model.removeSubrange(low..<high)
                }
            default:
                break
            }
            #expect(set.isCompact, "step \(step)")
            Self.check(set, model, &random)
            if step % 500 == 0 {
                // A copy is unaffected by later edits (copy-on-write of the one buffer).
                let copy = set
                let copied = Self.contents(copy)
                set.insert(Array("copy-probe-\(step)".utf8), score: 1, limits: limits)
                set.remove(Array("copy-probe-\(step)".utf8))
                #expect(Self.contents(copy).map(\.member) == copied.map(\.member))
            }
        }
    }

    @Test func equalScoresOrderByMemberBytesShorterFirst() {
        var set = SortedSetValue()
        let members: [[UInt8]] = [[0x62], [0x61, 0x61], [], [0x61], [0x00], [0x61, 0x00], [0xFF]]
        for member in members { set.insert(member, score: 3, limits: .standard) }
        #expect(Self.contents(set).map(\.member) == [[], [0x00], [0x61], [0x61, 0x00], [0x61, 0x61], [0x62], [0xFF]])
        set.insert([0x7A], score: -.infinity, limits: .standard)
        set.insert([0x7A, 0x7A], score: .infinity, limits: .standard)
        #expect(set.element(at: 0).member.elementsEqual([0x7A]))
        #expect(set.element(at: 8).score == .infinity)
        #expect(set.isCompact)
    }

    /// A listpack keeps a score as d2string text, and "-0" reads back as the integer 0; the
    /// indexed form keeps -0 (t_zset.c, where a skiplist node holds the double).
    @Test func negativeZeroIsZeroOnlyWhilePacked() {
        var packed = SortedSetValue()
        packed.insert([0x61], score: -0.0, limits: .standard)
        #expect(packed.score(of: [0x61])?.sign == .plus)
        var indexed = SortedSetValue(firstMemberBytes: 1, limits: SortedSetLimits(maxEntries: 0))
        indexed.insert([0x61], score: -0.0, limits: .standard)
        #expect(!indexed.isCompact)
        #expect(indexed.score(of: [0x61])?.sign == .minus)
        indexed.convertToCompact()
        #expect(indexed.isCompact)
        #expect(indexed.score(of: [0x61])?.sign == .plus)
    }

    /// t_zset.c zsetAdd converts before the insert that would pass either limit, and never
    /// converts back on removal.
    @Test func conversionAtEachLimitEdge() {
        let limits = SortedSetLimits(maxEntries: 4, maxValueBytes: 8)
        var set = SortedSetValue()
        for index in 0..<4 { set.insert(Array("m\(index)".utf8), score: Double(index), limits: limits) }
        #expect(set.isCompact)
        set.insert(Array("m4".utf8), score: 4, limits: limits)
        #expect(!set.isCompact)
        #expect(Self.contents(set).map(\.member) == (0..<5).map { Array("m\($0)".utf8) })
        set.remove(Array("m4".utf8))
        set.remove(Array("m3".utf8))
        #expect(!set.isCompact)

        var long = SortedSetValue()
        long.insert(Array(repeating: 0x78, count: 8), score: 1, limits: limits)
        #expect(long.isCompact)
        long.insert(Array(repeating: 0x79, count: 9), score: 2, limits: limits)
        #expect(!long.isCompact)
        #expect(long.score(of: Array(repeating: 0x78, count: 8)) == 1)

        #expect(!SortedSetValue(firstMemberBytes: 9, limits: limits).isCompact)
        #expect(SortedSetValue(firstMemberBytes: 8, limits: limits).isCompact)
        #expect(!SortedSetValue(firstMemberBytes: 1, limits: SortedSetLimits(maxEntries: 0)).isCompact)

        // Redis's default edges: 128 members stay packed, the 129th converts.
        var standard = SortedSetValue()
        for index in 0..<128 { standard.insert(Array("k\(index)".utf8), score: 1, limits: .standard) }
        #expect(standard.isCompact)
        standard.insert(Array("k128".utf8), score: 1, limits: .standard)
        #expect(!standard.isCompact)
        standard.compactIfSmall(limits: .standard)
        #expect(!standard.isCompact)
        standard.remove(Array("k128".utf8))
        standard.compactIfSmall(limits: .standard)
        #expect(standard.isCompact)
        #expect(standard.count == 128)
    }

    /// Random edits under small limits: the set converts once, at the right step, and reads
    /// stay right in both forms.
    @Test func conversionKeepsContentsUnderRandomEdits() {
        var random = FastRandom(seed: 99)
        let limits = SortedSetLimits(maxEntries: 24, maxValueBytes: 30)
        for _ in 0..<40 {
            var set = SortedSetValue()
            var model: [Element] = []
            var converted = false
            for _ in 0..<60 {
                let member = Array(Self.member(&random).prefix(40))
                let score = Self.score(&random)
                if let existing = model.firstIndex(where: { $0.member == member }) {
                    set.remove(member)
                    model.remove(at: existing)
                    continue
                }
                let mustConvert = model.count + 1 > limits.maxEntries || member.count > limits.maxValueBytes
                set.insert(member, score: score, limits: limits)
                model.append((member, converted || mustConvert ? score : (score == 0 ? 0 : score)))
                model.sort(by: Self.precedes)
                if mustConvert { converted = true }
                #expect(set.isCompact == !converted)
                Self.check(set, model, &random)
            }
        }
    }

    /// A leaderboard's shape: thousands of members over many chunks, few distinct scores (so
    /// nearly every comparison is a tie decided by member bytes, shared prefixes and all),
    /// edited by ZINCRBY's locate-then-update, inserts and removals, against a sorted array.
    @Test func indexedSetWithTiedScoresMatchesASortedArray() {
        var random = FastRandom(seed: 2026)
        var set = SortedSetValue()
        set.convertToIndexed()
        func name(_ number: Int) -> [UInt8] {
            switch number % 4 {
            case 0: return Array("element:\(String(repeating: "0", count: 6))\(number)".utf8)
            case 1: return Array("element:\(number)".utf8)
            case 2: return Array("e".utf8) + Array(repeating: UInt8(number % 3), count: number % 7)
            default: return Array("element:\(number)\u{0}x".utf8)
            }
        }
        var scores: [[UInt8]: Double] = [:]
        func sorted() -> [Element] { scores.map { ($0.key, $0.value) }.sorted(by: Self.precedes) }
        for step in 0..<5000 {
            let member = name(random.below(2500))
            if let old = scores[member], random.below(8) == 0 {
                #expect(set.remove(member) == old)
                scores[member] = nil
            } else if let old = scores[member] {
                let location = set.locate(member[...])
                #expect(location?.score == old)
                let new = old + Double(random.below(2))
                if let location { set.update(at: location, member[...], to: new) }
                scores[member] = new
            } else {
                let score = Double(random.below(3))
                set.insert(member, score: score, limits: SortedSetLimits())
                scores[member] = score
            }
            if step % 1000 == 999 { Self.check(set, sorted(), &random) }
        }
        let model = sorted()
        #expect(!set.isCompact)
        #expect(model.count > 1000)
        Self.check(set, model, &random)
        for _ in 0..<300 {
            let rank = random.below(model.count)
            #expect(set.rank(of: model[rank].member)?.rank == rank)
        }
    }

    /// RDB loading builds a packed set from its pairs at once: any order in, sorted out,
    /// -0 read back as 0, and the same set as inserting one at a time.
    @Test func packingPairsMatchesInsertingThem() {
        var random = FastRandom(seed: 5)
        for size in [0, 1, 2, 17, 128, 300] {
            var members: [[UInt8]] = []
            var scores: [Double] = []
            var oneByOne = SortedSetValue()
            let limits = SortedSetLimits(maxEntries: 1000, maxValueBytes: 1000)
            while members.count < size {
                let member = Self.member(&random)
                if members.contains(member) { continue }
                let score = Self.score(&random)
                members.append(member)
                scores.append(score)
                oneByOne.insert(member, score: score, limits: limits)
            }
            let packed = SortedSetValue(packing: members, scores: scores)
            #expect(packed.isCompact)
            #expect(packed.count == size)
            let expected = Self.contents(oneByOne)
            let seen = Self.contents(packed)
            #expect(seen.map(\.member) == expected.map(\.member))
            #expect(seen.map(\.score.bitPattern) == expected.map(\.score.bitPattern))
            #expect(!seen.contains { $0.score == 0 && $0.score.sign == .minus })
        }
    }

    /// The packed form is one word in a value and one small allocation.
    @Test func packedFormIsOneWordAndOneSmallBuffer() {
        #expect(MemoryLayout<SortedSetValue>.size == 8)
        #expect(MemoryLayout<Value>.size == 9)
        var set = SortedSetValue()
        #expect(set.packedCapacityBytes == 0)
        set.insert(Array("m:1".utf8), score: 1, limits: .standard)
        // 4-byte count + length + 3 bytes + 1-byte score = 9 bytes, in a malloc'd block.
        #expect(set.packedCapacityBytes >= 9 && set.packedCapacityBytes <= 24)
        for index in 2...10 { set.insert(Array("m:\(index)".utf8), score: Double(index), limits: .standard) }
        #expect(set.packedCapacityBytes <= 4 + 10 * 6 + 16)
        let estimate = MemoryEstimate.bytes(of: .sortedSet(set))
        #expect(estimate == MemoryEstimate.bufferHeaderBytes + set.packedCapacityBytes)
    }
}
