// ListValueTests: the chunked listpack list against a plain array model, across chunk boundaries.
import TallyKeyspace
import Testing

@Suite struct ListValueTests {
    /// Elements that exercise every listpack encoding: small and large integers, short,
    /// medium (2-byte length) and long (4-byte length, bigger than a chunk) strings.
    static func element(_ random: inout FastRandom) -> [UInt8] {
        switch random.below(8) {
        case 0: return Array(String(random.below(128)).utf8)
        case 1: return Array(String(Int64(bitPattern: random.next())).utf8)
        case 2: return Array(String(random.below(100_000) - 50_000).utf8)
        case 3: return Array(repeating: UInt8(97 + random.below(3)), count: random.below(60))
        case 4: return Array(repeating: 98, count: 64 + random.below(600))
        case 5: return Array(repeating: 99, count: random.below(5) == 0 ? 9000 : 4100)
        case 6: return Array("007".utf8)
        default: return Array("v\(random.below(20))".utf8)
        }
    }

    static func contents(_ list: ListValue) -> [[UInt8]] {
        var out: [[UInt8]] = []
        list.visit(from: 0) { _, element in
            out.append(element.materialized)
            return true
        }
        return out
    }

    @Test func randomOperationsMatchAnArray() {
        var random = FastRandom(seed: 42)
        var list = ListValue()
        var model: [[UInt8]] = []
        for step in 0..<6000 {
            switch random.below(10) {
            case 0, 1, 2:
                let element = Self.element(&random)
                if random.below(2) == 0 {
                    list.push(element, at: .head)
                    model.insert(element, at: 0)
                } else {
                    list.push(element, at: .tail)
                    model.append(element)
                }
            case 3:
                let expected = model.isEmpty ? nil : model.removeFirst()
                #expect(list.pop(.head) == expected)
            case 4:
                let expected = model.popLast()
                #expect(list.pop(.tail) == expected)
            case 5:
                if !model.isEmpty {
                    let index = random.below(model.count)
                    let element = Self.element(&random)
                    let replaced = list.replace(at: index, with: element)
                    #expect(replaced)
                    model[index] = element
                }
            case 6:
                let pivot = model.isEmpty ? [1] : model[random.below(model.count)]
                let element = Self.element(&random)
                let after = random.below(2) == 0
                let inserted = list.insert(element, after: after, pivot: pivot)
                if let position = model.firstIndex(of: pivot) {
                    #expect(inserted)
                    model.insert(element, at: after ? position + 1 : position)
                } else {
                    #expect(!inserted)
                }
            case 7:
                let target = Self.element(&random)
                let limit = random.below(3)
                let fromTail = random.below(2) == 0
                var expected = 0
                if fromTail {
                    var index = model.count - 1
                    while index >= 0 && (limit == 0 || expected < limit) {
                        if model[index] == target { model.remove(at: index); expected += 1 }
                        index -= 1
                    }
                } else {
                    var index = 0
                    while index < model.count && (limit == 0 || expected < limit) {
                        if model[index] == target { model.remove(at: index); expected += 1 } else { index += 1 }
                    }
                }
                let removed = list.removeAll(equalTo: target, limit: limit, fromTail: fromTail)
                #expect(removed == expected)
            case 8:
                let n = random.below(4)
                let end: ListEnd = random.below(2) == 0 ? .head : .tail
                list.remove(n, from: end)
                let removed = min(n, model.count)
                if end == .head { model.removeFirst(removed) } else { model.removeLast(removed) }
            default:
                if !model.isEmpty {
                    let index = random.below(model.count)
                    #expect(list.element(at: index)?.materialized == model[index])
                    var reversed: [[UInt8]] = []
                    list.visit(from: index, reverse: true) { _, element in
                        reversed.append(element.materialized)
                        return true
                    }
                    #expect(reversed == Array(model[0...index].reversed()))
                    // Forward from the index, numbered, stopping after a few (LRANGE's walk).
                    var forward: [[UInt8]] = []
                    var numbers: [Int] = []
                    list.visit(from: index) { number, element in
                        forward.append(element.materialized)
                        numbers.append(number)
                        return forward.count < 5
                    }
                    #expect(forward == Array(model[index...].prefix(5)))
                    #expect(numbers == Array(index..<(index + forward.count)))
                }
            }
            #expect(list.count == model.count, "step \(step)")
            if step % 500 == 0 { #expect(Self.contents(list) == model, "step \(step)") }
        }
        #expect(Self.contents(list) == model)
        #expect(list.chunkCount > 1)
    }

    @Test func headPushesAndTailPopsKeepChunksBounded() {
        var list = ListValue()
        for value in 0..<100_000 { list.push(Array(String(value).utf8), at: .head) }
        #expect(list.count == 100_000)
        #expect(list.element(at: 0)?.materialized == Array("99999".utf8))
        #expect(list.element(at: 99_999)?.materialized == Array("0".utf8))
        var chunksOK = true
        list.forEachChunk { entries, _ in if entries.count > ListValue.chunkBytesLimit { chunksOK = false } }
        #expect(chunksOK)
        var popsOK = true
        for value in 0..<100_000 where list.pop(.tail) != Array(String(value).utf8) { popsOK = false }
        #expect(popsOK)
        #expect(list.isEmpty && list.chunkCount == 0)
    }

    @Test func aListChangesFormAndCopiesStayIndependent() {
        let element = { (value: Int) in Array("element-\(value)".utf8) }
        var small = ListValue((0..<3).map(element))
        var copy = small
        copy.push(element(3), at: .tail)
        #expect(small.isCompact && copy.isCompact)
        #expect(Self.contents(small) == (0..<3).map(element))
        #expect(copy.count == 4)

        // 1000 entries of 12 bytes pass one chunk's 8185 bytes: the list becomes chunked.
        for value in 3..<1000 { small.push(element(value), at: .tail) }
        #expect(!small.isCompact && small.chunkCount == 2)
        var shared = small
        _ = shared.pop(.head)
        #expect(small.count == 1000 && shared.count == 999)
        #expect(small.element(at: 0)?.materialized == element(0))
        #expect(Self.contents(small) == (0..<1000).map(element))

        // Shrinking to one chunk of at most half the limit makes it compact again.
        small.remove(700, from: .tail)
        #expect(small.isCompact && small.count == 300)
        #expect(Self.contents(small) == (0..<300).map(element))
        #expect(!shared.isCompact && shared.count == 999)
        #expect(copy.count == 4)

        // An edit that splits the only chunk makes a compact list chunked.
        var edited = ListValue((0..<600).map(element))
        #expect(edited.isCompact)
        let inserted = edited.insert(Array(repeating: 120, count: 2000), after: true, pivot: element(599))
        #expect(inserted)
        #expect(!edited.isCompact && edited.count == 601)
        let removed = edited.removeAll(equalTo: Array(repeating: 120, count: 2000), limit: 0, fromTail: false)
        #expect(removed == 1)
        #expect(Self.contents(edited) == (0..<600).map(element))
    }
}
