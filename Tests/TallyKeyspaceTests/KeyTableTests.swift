// KeyTableTests: the compact key table against a Dictionary model, under random operations.
@testable import TallyKeyspace
import Testing

@Suite struct KeyTableTests {
    /// What a stored value is, comparably (aggregates by kind: the table stores them opaquely).
    private enum Shape: Equatable {
        case integer(Int64)
        case string([UInt8])
        case aggregate(String)

        init(_ value: Value) {
            switch value {
            case .integer(let integer): self = .integer(integer)
            case .string(let bytes): self = .string(bytes)
            case .hash: self = .aggregate("hash")
            case .list: self = .aggregate("list")
            case .set: self = .aggregate("set")
            case .sortedSet: self = .aggregate("zset")
            case .stream: self = .aggregate("stream")
            }
        }
    }

    private struct Model: Equatable {
        var shape: Shape
        var expiry: Int64?
        var access: UInt32

        init(_ entry: Entry) {
            shape = Shape(entry.value)
            expiry = entry.expiresAtMilliseconds
            access = entry.access
        }
    }

    private static func check(_ table: KeyTable, _ model: [[UInt8]: Model], _ context: String) {
        #expect(table.count == model.count, "\(context)")
        var seen = 0
        for (key, entry) in table {
            seen += 1
            #expect(model[key.bytes] == Model(entry), "\(context) key \(key.bytes)")
        }
        #expect(seen == model.count, "\(context)")
        for (bytes, expected) in model {
            #expect(table[Key(bytes)].map(Model.init) == expected, "\(context) lookup \(bytes)")
        }
        #expect(table.expiringCount == model.values.filter { $0.expiry != nil }.count, "\(context)")
    }

    private static func randomValue(_ random: inout FastRandom) -> Value {
        switch random.below(10) {
        case 0: return .integer(Int64(bitPattern: random.next()))
        case 1, 2: return .integer(Int64(random.below(2000)) - 1000)
        case 3: return .integer(Int64(bitPattern: random.next()) >> (random.below(64)))
        case 4, 5, 6: return .string((0..<random.below(40)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        case 7: return .hash(HashValue())
        case 8: return .list(ListValue())
        default:
            switch random.below(3) {
            case 0: return .set(SetValue())
            case 1: return .sortedSet(SortedSetValue())
            default: return .stream(StreamValue())
            }
        }
    }

    @Test func payloadsFitTheCell() {
        #expect(MemoryLayout<HashValue>.size <= 8)
        #expect(MemoryLayout<ListValue>.size <= 8)
        #expect(MemoryLayout<SetValue>.size <= 8)
        #expect(MemoryLayout<SortedSetValue>.size <= 8)
        #expect(MemoryLayout<[UInt8]>.size == 8)
    }

    @Test func integersKeepEveryWidth() {
        var table = KeyTable()
        let values: [Int64] = [0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32769, Int64.max, Int64.min,
                               1 << 40, -(1 << 40), 1 << 55, (1 << 55) - 1]
        for length in [0, 1, 17, 18, 19, 20, 22, 23, 25, 26, 27, 40] {
            for value in values {
                let key = Key((0..<length).map { UInt8(truncatingIfNeeded: $0 &+ 65) })
                table.updateValue(Entry(value: .integer(value)), forKey: key)
                #expect(Shape(table[key]!.value) == .integer(value), "key length \(length) value \(value)")
                let slot = table.index(forKey: key)!
                table.setValue(.integer(value &+ 1), at: slot)
                #expect(Shape(table.value(at: table.index(forKey: key)!)) == .integer(value &+ 1))
            }
        }
    }

    @Test func randomOperationsMatchADictionary() {
        var random = FastRandom(seed: 0x5EED_1234)
        var table = KeyTable()
        var model: [[UInt8]: Model] = [:]
        var snapshots: [(KeyTable, [[UInt8]: Model])] = []
        // Few distinct keys so updates and removals hit; lengths on both sides of each form's limit.
        let keys: [[UInt8]] = (0..<3000).map { index in
            let length = [0, 3, 11, 15, 18, 19, 20, 22, 23, 26, 30, 44][index % 12]
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if length >= 4 { bytes.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(index)) { Array($0) }) }
            return bytes
        }
        for step in 0..<60_000 {
            let bytes = keys[random.below(step < 30_000 ? keys.count : 400)]
            let key = Key(bytes)
            switch random.below(12) {
            case 0, 1, 2, 3:
                let expiry: Int64? = random.below(4) == 0 ? Int64(random.below(1_000_000)) : nil
                let entry = Entry(value: Self.randomValue(&random), expiresAtMilliseconds: expiry,
                                  access: UInt32(truncatingIfNeeded: random.next()))
                let previous = table.updateValue(entry, forKey: key)
                #expect((previous != nil) == (model[bytes] != nil))
                #expect(previous?.expiresAtMilliseconds == model[bytes]?.expiry)
                switch model[bytes]?.shape {
                case .integer: #expect(previous?.estimatedBytes == 0)
                case .string(let old): #expect(previous?.estimatedBytes == MemoryEstimate.bytes(of: .string(old)))
                default: break
                }
                model[bytes] = Model(entry)
            case 4, 5:
                let removed = table.removeValue(forKey: key)
                #expect(removed.map(Model.init) == model.removeValue(forKey: bytes))
            case 6:
                guard let slot = table.index(forKey: key) else { #expect(model[bytes] == nil); break }
                let value = Self.randomValue(&random)
                table.setValue(value, at: slot)
                model[bytes]!.shape = Shape(value)
            case 7:
                guard let slot = table.index(forKey: key) else { break }
                let expiry: Int64? = random.below(2) == 0 ? nil : Int64(random.below(1_000_000))
                table.setExpiry(expiry, at: slot)
                model[bytes]!.expiry = expiry
            case 8:
                guard let slot = table.index(forKey: key) else { break }
                let stamp = UInt32(truncatingIfNeeded: random.next())
                table.setAccess(stamp, at: slot)
                model[bytes]!.access = stamp
            case 9:
                guard let slot = table.index(forKey: key) else { break }
                let taken = table.takeValue(at: slot)
                #expect(Shape(taken) == model[bytes]!.shape)
                #expect(Shape(table.value(at: slot)) == .integer(0))
                table.setValue(taken, at: slot)
            case 10:
                if random.below(50) == 0 { snapshots.append((table, model)) }
                if random.below(200) == 0 { table.shrinkIfSparse() }
            default:
                #expect(table[key].map(Model.init) == model[bytes])
            }
            if step % 5000 == 0 { Self.check(table, model, "step \(step)") }
        }
        Self.check(table, model, "end")
        // Copies taken along the way kept their contents through the later writes.
        for (index, (copy, expected)) in snapshots.enumerated() { Self.check(copy, expected, "snapshot \(index)") }
        // Deleting almost everything, then shrinking, keeps the rest.
        for bytes in Array(model.keys).dropFirst(10) {
            table.removeValue(forKey: Key(bytes))
            model[bytes] = nil
        }
        let before = table.capacity
        table.shrinkIfSparse()
        #expect(table.capacity < before)
        Self.check(table, model, "after shrinking")
    }

    @Test func loadStaysHighAsItGrows() {
        var table = KeyTable()
        for index in 0..<100_000 {
            table.updateValue(Entry(value: .integer(Int64(index))), forKey: Key(Array("counter:\(index)".utf8)))
            if index > 1000 {
                let load = Double(table.count) / Double(table.capacity)
                #expect(load >= 0.69 && load <= 0.875, "load \(load) at \(index)")
            }
        }
    }
}

extension KeyTableTests {
    /// The hash reads a key's tail by overlapping loads: it must equal a zero-padded reading.
    @Test func hashDependsOnlyOnTheKeyBytes() {
        for length in 0...40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            // The same bytes inside a larger buffer with different neighbours hash the same.
            let padded = [0xAA] + bytes + [0x55, 0x66]
            let direct = bytes.withUnsafeBytes { KeyTableStorage.hash($0) }
            let embedded = padded.withUnsafeBytes {
                KeyTableStorage.hash(UnsafeRawBufferPointer(rebasing: $0[1..<(1 + length)]))
            }
            #expect(direct == embedded, "length \(length)")
            #expect(KeyTableStorage.hash(of: Key(bytes)) == direct, "length \(length)")
            var table = KeyTable()
            table.updateValue(Entry(value: .integer(1)), forKey: Key(bytes))
            let slot = table.index(forKey: Key(bytes))!
            #expect(KeyTableStorage.hash(ofCell: table.storage.cell(slot)) == direct, "length \(length)")
            if length > 0 {
                var changed = bytes
                changed[length - 1] ^= 1
                #expect(changed.withUnsafeBytes { KeyTableStorage.hash($0) } != direct, "length \(length)")
            }
        }
    }
}
