// HashValueTests: the packed (listpack) hash and its conversion to the hashtable form, against a model.
import TallyKeyspace
import Testing

@Suite struct HashValueTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// The hash's pairs in order, copied out.
    static func pairs(_ hash: HashValue) -> [([UInt8], [UInt8])] {
        var out: [([UInt8], [UInt8])] = []
        hash.forEach { out.append((Array($0), Array($1))) }
        return out
    }

    /// Checks a mutating call's result (#expect cannot hold a mutating call).
    static func expect(_ got: Bool, _ expected: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got == expected, sourceLocation: sourceLocation)
    }

    static func expectMatches(_ hash: HashValue, _ model: [([UInt8], [UInt8])],
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let got = pairs(hash)
        #expect(got.map(\.0) == model.map(\.0), sourceLocation: sourceLocation)
        #expect(got.map(\.1) == model.map(\.1), sourceLocation: sourceLocation)
        #expect(hash.count == model.count, sourceLocation: sourceLocation)
        #expect(hash.entries.map { Array($0.field) } == model.map(\.0), sourceLocation: sourceLocation)
        for (field, value) in model {
            #expect(hash.value(for: field).map(Array.init) == value, sourceLocation: sourceLocation)
        }
        if !model.isEmpty {
            let picked = hash.randomEntry()
            #expect(model.contains { $0.0 == Array(picked.field) && $0.1 == Array(picked.value) },
                    sourceLocation: sourceLocation)
        }
    }

    @Test func insertUpdateDeleteKeepInsertionOrder() {
        var hash = HashValue()
        #expect(hash.isEmpty && hash.isListpack && hash.heapBytes == 0)
        Self.expect(hash.set(field: Self.bytes("a"), value: Self.bytes("1")), true)
        Self.expect(hash.set(field: Self.bytes("b"), value: Self.bytes("2")), true)
        Self.expect(hash.set(field: Self.bytes("c"), value: Self.bytes("3")), true)
        // Updates keep the position, whether the value grows, shrinks or keeps its length.
        Self.expect(hash.set(field: Self.bytes("b"), value: Self.bytes("two-longer")), false)
        Self.expect(hash.set(field: Self.bytes("a"), value: Self.bytes("")), false)
        Self.expect(hash.set(field: Self.bytes("c"), value: Self.bytes("9")), false)
        Self.expectMatches(hash, [(Self.bytes("a"), []), (Self.bytes("b"), Self.bytes("two-longer")),
                                  (Self.bytes("c"), Self.bytes("9"))])
        Self.expect(hash.remove(field: Self.bytes("b")), true)
        Self.expect(hash.remove(field: Self.bytes("b")), false)
        Self.expect(hash.remove(field: Self.bytes("zz")), false)
        #expect(hash.value(for: Self.bytes("b")) == nil)
        Self.expect(hash.set(field: Self.bytes("b"), value: Self.bytes("again")), true)
        Self.expectMatches(hash, [(Self.bytes("a"), []), (Self.bytes("c"), Self.bytes("9")),
                                  (Self.bytes("b"), Self.bytes("again"))])
        #expect(hash.isListpack)
        for field in ["a", "c", "b"] { Self.expect(hash.remove(field: Self.bytes(field)), true) }
        #expect(hash.isEmpty && hash.heapBytes == 0)
    }

    @Test func binaryAndEmptyFieldsAndValues() {
        var hash = HashValue()
        let binary: [UInt8] = [0, 255, 13, 10, 0, 0x80, 0x7F]
        let prefix: [UInt8] = [0, 255]
        Self.expect(hash.set(field: [UInt8](), value: binary), true)
        Self.expect(hash.set(field: binary, value: [UInt8]()), true)
        Self.expect(hash.set(field: prefix, value: prefix), true)
        // Fields that share a prefix, differ in the last byte or only in length stay apart.
        Self.expect(hash.set(field: [0, 255, 13, 10, 0, 0x80, 0x7E], value: [1]), true)
        Self.expect(hash.set(field: Array(repeating: 7, count: 16), value: [2]), true)
        Self.expect(hash.set(field: Array(repeating: 7, count: 17), value: [3]), true)
        #expect(hash.value(for: [UInt8]()).map(Array.init) == binary)
        #expect(hash.value(for: binary).map(Array.init) == [])
        #expect(hash.value(for: [0]) == nil)
        #expect(hash.value(for: Array(repeating: 7, count: 16)).map(Array.init) == [2])
        #expect(hash.value(for: Array(repeating: 7, count: 17)).map(Array.init) == [3])
        #expect(hash.count == 6 && hash.isListpack)
        Self.expect(hash.remove(field: [UInt8]()), true)
        #expect(hash.value(for: [UInt8]()) == nil)
        #expect(hash.count == 5)
    }

    @Test func convertsWhenAFieldOrValueIsOneByteTooLong() {
        let limits = HashLimits(maxEntries: 512, maxValueBytes: 64)
        for (fieldLength, valueLength, listpack) in [(64, 64, true), (65, 1, false), (1, 65, false)] {
            var hash = HashValue()
            hash.set(field: Self.bytes("first"), value: Self.bytes("1"), limits: limits)
            hash.set(field: Array(repeating: 120, count: fieldLength), value: Array(repeating: 121, count: valueLength),
                     limits: limits)
            #expect(hash.isListpack == listpack)
            Self.expectMatches(hash, [(Self.bytes("first"), Self.bytes("1")),
                                      (Array(repeating: 120, count: fieldLength),
                                       Array(repeating: 121, count: valueLength))])
        }
        // Updating an existing field to a too-long value converts too (hashTypeSet checks the value).
        var hash = HashValue()
        hash.set(field: Self.bytes("f"), value: Self.bytes("v"), limits: limits)
        hash.set(field: Self.bytes("f"), value: Array(repeating: 1, count: 65), limits: limits)
        #expect(!hash.isListpack)
        Self.expectMatches(hash, [(Self.bytes("f"), Array(repeating: 1, count: 65))])
    }

    @Test func convertsWhenTheFieldsOutnumberTheLimit() {
        let limits = HashLimits(maxEntries: 4, maxValueBytes: 64)
        var hash = HashValue()
        var model: [([UInt8], [UInt8])] = []
        for index in 0..<4 {
            hash.set(field: Self.bytes("f\(index)"), value: Self.bytes("v\(index)"), limits: limits)
            model.append((Self.bytes("f\(index)"), Self.bytes("v\(index)")))
        }
        #expect(hash.isListpack)
        // Updating at the limit adds no field: still a listpack.
        hash.set(field: Self.bytes("f0"), value: Self.bytes("new"), limits: limits)
        model[0].1 = Self.bytes("new")
        #expect(hash.isListpack)
        hash.set(field: Self.bytes("f4"), value: Self.bytes("v4"), limits: limits)
        model.append((Self.bytes("f4"), Self.bytes("v4")))
        #expect(!hash.isListpack)
        Self.expectMatches(hash, model)
        // Never back, even when it shrinks under the limits.
        for index in 1...4 { Self.expect(hash.remove(field: Self.bytes("f\(index)")), true) }
        #expect(!hash.isListpack)
        Self.expectMatches(hash, [(Self.bytes("f0"), Self.bytes("new"))])
    }

    @Test func longLengthsUseMultiByteVarints() {
        // Limits raised (CONFIG SET hash-max-listpack-value) so long strings stay packed: 127,
        // 128 and 16384 bytes straddle the one-, two- and three-byte length forms.
        let limits = HashLimits(maxEntries: 512, maxValueBytes: 1 << 20)
        var hash = HashValue()
        var model: [([UInt8], [UInt8])] = []
        for (index, length) in [127, 128, 16_383, 16_384, 0, 1].enumerated() {
            let field = Array(repeating: UInt8(65 + index), count: length)
            let value = Array(repeating: UInt8(97 + index), count: length + 1)
            Self.expect(hash.set(field: field, value: value, limits: limits), true)
            model.append((field, value))
        }
        // Resize values across the varint boundaries in the middle of the buffer.
        hash.set(field: model[0].0, value: Array(repeating: 1, count: 128), limits: limits)
        model[0].1 = Array(repeating: 1, count: 128)
        hash.set(field: model[3].0, value: Array(repeating: 2, count: 5), limits: limits)
        model[3].1 = Array(repeating: 2, count: 5)
        #expect(hash.isListpack)
        Self.expectMatches(hash, model)
        Self.expect(hash.remove(field: model[1].0), true)
        model.remove(at: 1)
        Self.expectMatches(hash, model)
    }

    @Test func randomOperationsMatchAModelInBothForms() {
        var random = FastRandom(seed: 0x4841_5348)
        for round in 0..<40 {
            let limits = HashLimits(maxEntries: 1 + random.below(40), maxValueBytes: 1 + random.below(70))
            var hash = HashValue()
            var model: [([UInt8], [UInt8])] = []
            var outgrew = false
            for _ in 0..<200 {
                let field = Self.bytes("f\(random.below(50))")
                switch random.below(4) {
                case 0:
                    let removed = model.firstIndex { $0.0 == field }
                    let changed = hash.remove(field: field)
                    #expect(changed == (removed != nil))
                    if let removed { model.remove(at: removed) }
                default:
                    let value = Array(repeating: UInt8(48 + random.below(10)), count: random.below(80))
                    let existing = model.firstIndex { $0.0 == field }
                    let changed = hash.set(field: field, value: value, limits: limits)
                    #expect(changed == (existing != nil ? false : true))
                    if let existing { model[existing].1 = value } else { model.append((field, value)) }
                    if value.count > limits.maxValueBytes || field.count > limits.maxValueBytes
                        || model.count > limits.maxEntries { outgrew = true }
                }
                #expect(hash.isListpack == !outgrew, "round \(round)")
            }
            Self.expectMatches(hash, model)
            var visited: [[UInt8]] = []
            var cursor: UInt64 = 0
            repeat {
                cursor = hash.scan(cursor: cursor, count: 10) { field, _ in visited.append(Array(field)) }
            } while cursor != 0
            #expect(Set(visited) == Set(model.map(\.0)))
        }
    }

    /// Removing fields from a large hashtable hash keeps the others in order and is not
    /// quadratic: 60,000 fields, every other one removed from the front, then half the rest.
    @Test func removalsFromALargeTableKeepOrder() {
        var hash = HashValue()
        let fields = (0..<60_000).map { Self.bytes("field:\($0)") }
        for field in fields { hash.set(field: field, value: field) }
        #expect(!hash.isListpack)
        var model = fields
        for position in stride(from: 0, to: fields.count, by: 2) {
            Self.expect(hash.remove(field: fields[position]), true)
        }
        model = model.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        for field in model.prefix(model.count / 2) { Self.expect(hash.remove(field: field), true) }
        model.removeFirst(model.count / 2)
        Self.expect(hash.remove(field: fields[0]), false)
        hash.set(field: Self.bytes("new"), value: Self.bytes("v"))
        model.append(Self.bytes("new"))
        #expect(Self.pairs(hash).map(\.0) == model)
        #expect(hash.count == model.count)
        #expect(hash.value(for: Self.bytes("new")).map(Array.init) == Self.bytes("v"))
    }

    @Test func copiesDoNotShareEdits() {
        for limits in [HashLimits.standard, HashLimits(maxEntries: 1, maxValueBytes: 64)] {
            var original = HashValue()
            original.set(field: Self.bytes("a"), value: Self.bytes("1"), limits: limits)
            original.set(field: Self.bytes("b"), value: Self.bytes("2"), limits: limits)
            var copy = original
            copy.set(field: Self.bytes("a"), value: Self.bytes("changed"), limits: limits)
            copy.remove(field: Self.bytes("b"))
            Self.expectMatches(original, [(Self.bytes("a"), Self.bytes("1")), (Self.bytes("b"), Self.bytes("2"))])
            Self.expectMatches(copy, [(Self.bytes("a"), Self.bytes("changed"))])
        }
    }

    /// A hash is one word, so `Value.hash` needs no box and an entry stays 24 bytes.
    @Test func aHashIsOneWord() {
        #expect(MemoryLayout<HashValue>.size == 8)
        #expect(MemoryLayout<Value>.size == 9)
        #expect(MemoryLayout<Entry>.size == 24)
    }

    @Test func memoryEstimateFollowsTheBuffer() {
        var hash = HashValue()
        hash.reserveCapacity(pairs: 10, payloadBytes: 10 * (2 + 8))
        for index in 0..<10 { hash.set(field: Self.bytes("f\(index)"), value: Self.bytes("value-\(index)")) }
        // One buffer: the header, 10 pairs of 1-byte lengths and bytes, little slack.
        let packed = 4 + 10 * (1 + 2 + 1 + 7)
        #expect(hash.heapBytes >= MemoryEstimate.bufferHeaderBytes + packed)
        #expect(hash.heapBytes <= MemoryEstimate.bufferHeaderBytes + packed + packed / 4 + 16)
        #expect(MemoryEstimate.bytes(of: .hash(hash)) == hash.heapBytes)
        var table = hash
        table.convertToHashtable()
        #expect(table.heapBytes > hash.heapBytes)
    }
}
