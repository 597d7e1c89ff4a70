// KeyStorageTests: inline (≤ 22 bytes) and array keys behave as plain byte strings.
import TallyKeyspace
import Testing

@Suite struct KeyStorageTests {
    /// Keys of every length around the inline limit, binary bytes included.
    private static let samples: [[UInt8]] = (0...30).map { length in
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ length) }
    } + [[0], [0, 0], [255], Array("counter:000000012345".utf8)]

    @Test func bytesRoundTripAndCount() {
        for bytes in Self.samples {
            let key = Key(bytes)
            #expect(key.bytes == bytes)
            #expect(key.count == bytes.count)
            #expect(key.withUnsafeBytes { Array($0) } == bytes)
            #expect(Key(bytes[...]) == key)
            #expect(bytes.withUnsafeBytes { Key($0) } == key)
            var renamed = Key([1, 2, 3])
            renamed.bytes = bytes
            #expect(renamed == key)
        }
    }

    @Test func equalityIsByteEquality() {
        for left in Self.samples {
            for right in Self.samples {
                #expect((Key(left) == Key(right)) == (left == right), "\(left) vs \(right)")
            }
        }
        // A slice from the middle of a larger buffer equals the same bytes on their own.
        let buffer = Array("xxcounter:000000012345yy".utf8)
        #expect(Key(buffer[2..<22]) == Key(Array("counter:000000012345".utf8)))
    }

    @Test func dictionaryFindsEveryLengthAndShardsAgree() {
        let keyspace = Keyspace(databases: 1, shards: 16)
        var table: [Key: Int] = [:]
        var counter = 0
        for length in 0...40 {
            for variant in 0..<50 {
                var bytes = Array(repeating: UInt8(ascii: "k"), count: length)
                if length > 0 { bytes[length - 1] = UInt8(truncatingIfNeeded: variant) }
                if length > 1 { bytes[0] = UInt8(truncatingIfNeeded: variant / 7) }
                if table[Key(bytes)] == nil {
                    table[Key(bytes)] = counter
                    counter += 1
                }
                #expect(keyspace.shardIndex(for: Key(bytes)) == keyspace.shardIndex(for: bytes))
            }
        }
        #expect(table.count == counter)
        for (key, value) in table {
            #expect(table[Key(key.bytes[...])] == value)
        }
    }
}
