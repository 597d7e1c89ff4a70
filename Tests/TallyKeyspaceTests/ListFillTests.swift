// ListFillTests: list-max-listpack-size splits pushed lists into the nodes redis-server makes.
import TallyKeyspace
import Testing

@Suite struct ListFillTests {
    /// Elements per chunk of a list built by RPUSH under `fill`.
    static func chunkCounts(fill: Int, _ elements: [[UInt8]]) -> [Int] {
        var list = ListValue()
        for element in elements { list.push(element, at: .tail, fill: ListFill(fill)) }
        var counts: [Int] = []
        list.forEachChunk { _, count in counts.append(count) }
        return counts
    }

    static func repeated(_ text: String, _ times: Int) -> [UInt8] {
        Array(String(repeating: text, count: times).utf8)
    }

    static func numbers(_ range: Range<Int>) -> [[UInt8]] { range.map { Array(String($0).utf8) } }

    /// Node sizes read from redis-server 7.0.15's DUMP of the same RPUSHes under the same
    /// `list-max-listpack-size` (rdbcompression no, QUICKLIST_2 node headers decoded).
    @Test(arguments: [
        (5, numbers(0..<12), [5, 5, 2]),
        (0, [[97], [98], [99]], [1, 1, 1]),
        (1, [[97], [98], [99]], [1, 1, 1]),
        (-1, Array(repeating: repeated("x", 100), count: 100), [39, 39, 22]),
        (-2, Array(repeating: repeated("x", 100), count: 200), [79, 79, 42]),
        // Integers: the estimate counts the decimal text (up to 4 bytes here), not the 2 to 4
        // bytes the listpack stores.
        (-2, numbers(0..<5000), [2768, 2232]),
        (-3, Array(repeating: repeated("x", 1000), count: 60), [16, 16, 16, 12]),
        (-5, Array(repeating: repeated("y", 10), count: 20000), [5460, 5460, 5460, 3620]),
        // Below -5 clamps to -5, above 32767 to 32767 (then the 8 KB safety limit decides).
        (-9, Array(repeating: repeated("y", 10), count: 20000), [5460, 5460, 5460, 3620]),
        (100, Array(repeating: repeated("z", 100), count: 300), [79, 79, 79, 63]),
        (40000, Array(repeating: [97], count: 5000), [2726, 2274]),
        // An element over the limit sits alone; nothing joins it.
        (-2, [repeated("big", 4000), [97], [98], repeated("big", 3000)], [1, 2, 1]),
        (-1, [repeated("q", 4100), [97]], [1, 1]),
    ] as [(Int, [[UInt8]], [Int])])
    func rpushSplitsLikeRedis(fill: Int, elements: [[UInt8]], expected: [Int]) {
        #expect(Self.chunkCounts(fill: fill, elements) == expected)
    }

    @Test func headPushesFillTheHeadChunk() {
        var list = ListValue()
        for value in 0..<12 { list.push(Array(String(value).utf8), at: .head, fill: ListFill(5)) }
        var counts: [Int] = []
        list.forEachChunk { _, count in counts.append(count) }
        #expect(counts == [2, 5, 5])
        #expect(list.element(at: 0)?.materialized == Array("11".utf8))
    }

    @Test func fillIsClampedAsQuicklistSetFill() {
        #expect(ListFill(-100).value == -5)
        #expect(ListFill(1 << 20).value == 32767)
        #expect(ListFill.standard.value == -2)
    }

    /// One step of an edit scenario.
    enum Step {
        case rpush(String)
        case insert(String, after: Bool, pivot: String)
        case set(Int, String)
        case remove(String)
    }

    /// Chunk sizes and contents after `steps` under `fill` 4; the expected layouts were read from
    /// redis-server 7.0.15's DUMP after the same commands (LINSERT, LSET, LREM).
    @Test(arguments: [
        ([.rpush("abcd"), .insert("X", after: true, pivot: "b")], [2, 3]),
        ([.rpush("abcd"), .insert("X", after: true, pivot: "d")], [4, 1]),
        ([.rpush("abcd"), .insert("X", after: false, pivot: "a")], [1, 4]),
        ([.rpush("abcdefghi"), .insert("X", after: true, pivot: "d")], [4, 1, 4, 1]),
        ([.rpush("abcdefghi"), .insert("X", after: false, pivot: "e")], [4, 1, 4, 1]),
        ([.rpush("abcdefgh"), .insert("X", after: false, pivot: "e")], [4, 1, 4]),
        // The previous chunk has room: the element goes at its tail.
        ([.rpush("abcdef"), .insert("X", after: false, pivot: "e")], [4, 3]),
        // Splits, then merges around the split (_quicklistMergeNodes).
        ([.rpush("abcdefghij"), .remove("e"), .remove("f"), .insert("X", after: false, pivot: "c")], [3, 2, 4]),
        ([.rpush("abcdefghij"), .remove("e"), .remove("f"), .insert("X", after: true, pivot: "b")], [2, 3, 2, 2]),
        ([.rpush("abcdefghij"), .remove("a"), .remove("b"), .insert("X", after: true, pivot: "f")], [4, 3, 2]),
        // LSET and LREM edit a chunk in place, whatever its size afterwards.
        ([.rpush("abcdefghi"), .set(1, String(repeating: "x", count: 9000))], [4, 4, 1]),
        ([.rpush("abcdefghi"), .remove("f")], [4, 3, 1]),
    ] as [([Step], [Int])])
    func editsLayChunksOutLikeRedis(steps: [Step], expected: [Int]) {
        let fill = ListFill(4)
        var list = ListValue()
        var model: [[UInt8]] = []
        for step in steps {
            switch step {
            case .rpush(let letters):
                for letter in letters {
                    list.push(Array(String(letter).utf8), at: .tail, fill: fill)
                    model.append(Array(String(letter).utf8))
                }
            case .insert(let element, let after, let pivot):
                let inserted = list.insert(Array(element.utf8), after: after, pivot: Array(pivot.utf8), fill: fill)
                #expect(inserted)
                let position = model.firstIndex(of: Array(pivot.utf8))!
                model.insert(Array(element.utf8), at: after ? position + 1 : position)
            case .set(let index, let element):
                let replaced = list.replace(at: index, with: Array(element.utf8))
                #expect(replaced)
                model[index] = Array(element.utf8)
            case .remove(let element):
                let removed = list.removeAll(equalTo: Array(element.utf8), limit: 0, fromTail: false)
                #expect(removed == 1)
                model.removeAll { $0 == Array(element.utf8) }
            }
        }
        var counts: [Int] = []
        list.forEachChunk { _, count in counts.append(count) }
        #expect(counts == expected)
        var elements: [[UInt8]] = []
        list.visit(from: 0) { _, element in
            elements.append(element.materialized)
            return true
        }
        #expect(elements == model)
        #expect(list.count == model.count)
    }

    /// Random pushes, pops, inserts (splits and merges), sets and removals under small fills
    /// keep the elements an array model has, in its order.
    @Test(arguments: [3, 1, -1])
    func randomEditsUnderSmallFillsMatchAnArray(fill value: Int) {
        let fill = ListFill(value)
        var random = FastRandom(seed: UInt64(100 + value))
        var list = ListValue()
        var model: [[UInt8]] = []
        for _ in 0..<3000 {
            let element = Array("e\(random.below(50))".utf8) + Array(repeating: 120, count: random.below(3) * 700)
            switch random.below(6) {
            case 0:
                list.push(element, at: .tail, fill: fill)
                model.append(element)
            case 1:
                list.push(element, at: .head, fill: fill)
                model.insert(element, at: 0)
            case 2:
                let expected = model.isEmpty ? nil : model.removeFirst()
                #expect(list.pop(.head) == expected)
            case 3:
                if let pivot = model.isEmpty ? nil : model[random.below(model.count)] {
                    let after = random.below(2) == 0
                    let inserted = list.insert(element, after: after, pivot: pivot, fill: fill)
                    #expect(inserted)
                    let position = model.firstIndex(of: pivot)!
                    model.insert(element, at: after ? position + 1 : position)
                }
            case 4:
                if !model.isEmpty {
                    let index = random.below(model.count)
                    let replaced = list.replace(at: index, with: element)
                    #expect(replaced)
                    model[index] = element
                }
            default:
                let fromTail = random.below(2) == 0
                let removed = list.removeAll(equalTo: element, limit: 1, fromTail: fromTail)
                let match = fromTail ? model.lastIndex(of: element) : model.firstIndex(of: element)
                #expect(removed == (match == nil ? 0 : 1))
                if let match { model.remove(at: match) }
            }
        }
        var elements: [[UInt8]] = []
        list.visit(from: 0) { _, element in
            elements.append(element.materialized)
            return true
        }
        #expect(elements == model)
        #expect(list.count == model.count)
    }
}
