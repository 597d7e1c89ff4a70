// RDBTests: LZF, listpack, RDB writer/reader round trips, byte layouts, corruption and truncation handling.
import Testing
import TallyKeyspace
import TallyPersistence
import TallyTestSupport

/// Writes `databases` (database → entries) into an in-memory RDB.
func makeRDB(_ databases: [Int: [(Key, Entry)]], options: RDBWriterOptions = RDBWriterOptions()) throws -> [UInt8] {
    var writer = RDBWriter(sink: MemorySink(), options: options)
    try writer.writeHeader()
    for database in databases.keys.sorted() {
        let entries = databases[database] ?? []
        try writer.beginDatabase(database, keyCount: entries.count,
                                 expiringKeyCount: entries.filter { $0.1.expiresAtMilliseconds != nil }.count)
        for (key, entry) in entries { try writer.writeEntry(key: key, entry: entry) }
    }
    return try writer.finish().bytes
}

/// Loads an in-memory RDB into database → key → entry.
func readRDB(
    _ bytes: [UInt8], options: RDBLoadOptions = RDBLoadOptions()
) throws -> ([Int: [Key: Entry]], RDBLoadResult) {
    var reader = RDBReader(source: MemorySource(bytes), name: "test.rdb", chunkBytes: 64)
    var loaded: [Int: [Key: Entry]] = [:]
    let result = try reader.load(options: options) { database, key, entry in
        loaded[database, default: [:]][key] = entry
    }
    return (loaded, result)
}

func key(_ text: String) -> Key { Key(Array(text.utf8)) }
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A hash's fields and values in order, as [field, value, field, value...].
func pairs(_ hash: HashValue) -> [[UInt8]] {
    var result: [[UInt8]] = []
    hash.forEach { field, value in
        result.append(Array(field))
        result.append(Array(value))
    }
    return result
}

func hash(_ pairs: [([UInt8], [UInt8])]) -> HashValue {
    var value = HashValue()
    for (field, fieldValue) in pairs { value.set(field: field, value: fieldValue) }
    return value
}

/// Value equality by content (Value itself is not Equatable).
func sameValue(_ lhs: Value, _ rhs: Value) -> Bool {
    switch (lhs, rhs) {
    case (.hash(let a), .hash(let b)): return pairs(a) == pairs(b) && a.isListpack == b.isListpack
    case (.hash, _), (_, .hash): return false
    case (.list, _), (_, .list): return listElements(lhs) != nil && listElements(lhs) == listElements(rhs)
    default: return lhs.stringBytes == rhs.stringBytes
    }
}

/// The elements of a list value, or nil for another kind of value.
func listElements(_ value: Value?) -> [[UInt8]]? {
    guard case .list(let list)? = value else { return nil }
    var elements: [[UInt8]] = []
    list.visit(from: 0) { _, element in
        elements.append(element.materialized)
        return true
    }
    return elements
}

@Suite struct LZFTests {
    @Test func roundTripsRandomAndRepetitiveData() throws {
        var generator = SplitMix64(seed: 42)
        for size in Array(0...300) + [1000, 8191, 8192, 8193, 70_000] {
            for pattern in 0..<3 {
                let input: [UInt8] = (0..<size).map { index in
                    switch pattern {
                    case 0: return UInt8(truncatingIfNeeded: generator.next())
                    case 1: return UInt8(index % 7)
                    default: return index % 100 < 50 ? 65 : UInt8(truncatingIfNeeded: generator.next() % 4)
                    }
                }
                guard let compressed = LZF.compress(input, limit: size + size / 16 + 64) else {
                    #expect(size == 0)
                    continue
                }
                let restored = try LZF.decompress(compressed, expectedLength: size)
                #expect(restored == input, "size \(size) pattern \(pattern)")
            }
        }
    }

    @Test func compressesRepetitionAndRespectsLimit() throws {
        let input = [UInt8](repeating: 97, count: 10_000)
        let compressed = try #require(LZF.compress(input, limit: 9_996))
        #expect(compressed.count < 200)
        var generator = SplitMix64(seed: 1)
        let noise = (0..<100).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        #expect(LZF.compress(noise, limit: 96) == nil)
    }

    /// Payloads that redis-server 7.0.15 wrote for `SET k <input>` + `DUMP k` (the LZF part of the
    /// 0xC3 string encoding): liblzf's choices, which Tally's DUMP must reproduce byte for byte.
    @Test(arguments: [
        (bytes("abcabcabcabcabcabcabcabcabcabcabcabcabca"), "0361626361e01902016361"),
        (bytes("counter:user:1234-event-counter:user:1234-eventxx{}"),
         "09636f756e7465723a757320040b313233342d6576656e742d63e00d170378787b7d"),
        ([UInt8](repeating: 97, count: 300), "016161e0ff00e01700016161"),
        (Array(repeating: Array(repeating: bytes("0123456789abcdef"), count: 20).joined() + bytes("Z"), count: 4)
            .flatMap { $0 },
         "103031323334353637383961626364656630e0ff0fe11e0f005ae1ff30e11f30e1072fe1ff40e1ff40e20921e20731e0460f01665a"),
    ])
    func compressesAsRedisDoes(input: [UInt8], expected: String) throws {
        let compressed = try #require(LZF.compress(input, limit: input.count - 4))
        let digits = Array("0123456789abcdef")
        #expect(String(compressed.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }) == expected)
    }

    @Test func decodesHandBuiltStream() throws {
        // Literal "abc", then a reference of length 6 at distance 3 -> "abcabcabc".
        let stream: [UInt8] = [0x02, 97, 98, 99, 0x80, 0x02]
        #expect(try LZF.decompress(stream, expectedLength: 9) == bytes("abcabcabc"))
        // Extended length: 7 + 3 + 2 = 12 copies of "a" after one literal.
        let run = try LZF.decompress([0x00, 97, 0xE0, 0x03, 0x00], expectedLength: 13)
        #expect(run == [UInt8](repeating: 97, count: 13))
    }

    @Test func rejectsInvalidStreams() {
        #expect(throws: LZF.DecompressionError.self) { try LZF.decompress([0x05, 1, 2], expectedLength: 6) }
        #expect(throws: LZF.DecompressionError.self) { try LZF.decompress([0x00, 1, 0x20, 0x05], expectedLength: 4) }
        #expect(throws: LZF.DecompressionError.self) { try LZF.decompress([0x01, 1, 2], expectedLength: 5) }
        #expect(throws: LZF.DecompressionError.self) { try LZF.decompress([0x01, 1, 2], expectedLength: 1) }
    }
}

@Suite struct ListpackTests {
    @Test func encodesEveryWidthAndDecodesBack() throws {
        let elements: [[UInt8]] = [
            "0", "127", "128", "-1", "4095", "-4096", "4096", "32767", "-32768", "32768", "8388607", "-8388608",
            "8388608", "2147483647", "-2147483648", "2147483648", "9223372036854775807", "-9223372036854775808",
            "007", "+1", "-0", "", "x", String(repeating: "s", count: 63), String(repeating: "m", count: 64),
            String(repeating: "l", count: 5000),
        ].map(bytes)
        let blob = Listpack.encode(elements)
        #expect(try Listpack.decode(blob) == elements)
        // Spot-check layouts: header, 7-bit uint "0" with backlen 1, end byte.
        #expect(Array(blob[4..<6]) == [UInt8(elements.count), 0])
        #expect(Array(blob[6..<8]) == [0x00, 0x01])
        #expect(blob.last == 0xFF)
        #expect(Listpack.encode([bytes("-1")])[6..<9] == [0xDF, 0xFF, 0x02])
    }

    @Test func rejectsDamagedBlobs() {
        let blob = Listpack.encode([bytes("field"), bytes("value")])
        for index in 0..<blob.count {
            var damaged = blob
            damaged[index] ^= 0x40
            // Every single damage is caught or decodes to different content, never crashes.
            if let decoded = try? Listpack.decode(damaged) { #expect(decoded != [bytes("field"), bytes("value")]) }
        }
        #expect(throws: Listpack.FormatError.self) { try Listpack.decode(Array(blob.dropLast())) }
    }
}

@Suite struct RDBRoundTripTests {
    static let now: Int64 = 1_790_000_000_000

    static var sampleEntries: [(Key, Entry)] {
        var generator = SplitMix64(seed: 9)
        let noise = (0..<300).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        var bigHash = HashValue()
        for index in 0..<600 { bigHash.set(field: bytes("f\(index)"), value: bytes("\(index * 3)")) }
        let integers: [Int64] = [0, -5, 127, -128, 128, 32767, -32768, 40000, 2_147_483_647, -2_147_483_648,
                                 17_179_869_184, .max, .min]
        var entries: [(Key, Entry)] = integers.map { (key("int\($0)"), Entry(value: .integer($0))) }
        entries += [
            (key("007"), Entry(value: .string(bytes("1")))),
            (key("123"), Entry(value: .string(bytes("x")))),
            (key("lead"), Entry(value: .string(bytes("007")))),
            (key("plus"), Entry(value: .string(bytes("+1")))),
            (key("negzero"), Entry(value: .string(bytes("-0")))),
            (key("digits12"), Entry(value: .string(bytes("123456789012")))),
            (key("empty"), Entry(value: .string([]))),
            (Key([0, 255, 13, 10]), Entry(value: .string([1, 2, 3]))),
            (key("long"), Entry(value: .string(bytes(String(repeating: "abcdefghij", count: 100)))))
            ,
            (key("noise"), Entry(value: .string(noise))),
            (key("ttl"), Entry(value: .integer(42), expiresAtMilliseconds: now + 60_000)),
            (key("small"), Entry(value: .hash(hash([(bytes("a"), bytes("1")), (bytes("b"), bytes("-70000")),
                                                   (bytes("c"), bytes(String(repeating: "z", count: 64)))])))),
            (key("wide"), Entry(value: .hash(hash([(bytes("a"), bytes(String(repeating: "w", count: 65)))])))),
            (key("big"), Entry(value: .hash(bigHash), expiresAtMilliseconds: now + 1)),
        ]
        return entries
    }

    @Test func everyEncodingRoundTrips() throws {
        for compression in [true, false] {
            for checksum in [true, false] {
                var options = RDBWriterOptions()
                options.compression = compression
                options.checksum = checksum
                let entries = Self.sampleEntries
                let file = try makeRDB([0: entries, 3: [(key("other"), Entry(value: .integer(7)))]], options: options)
                let (loaded, result) = try readRDB(file)
                #expect(result.keysLoaded == entries.count + 1)
                #expect(result.checksumVerified == checksum)
                #expect(result.version == 10)
                #expect(result.auxValue("redis-ver") == bytes("7.0.15"))
                #expect(result.auxValue("redis-bits") == bytes("64"))
                #expect(!result.isAOFBase)
                #expect(result.endOffset == Int64(file.count))
                for (key, entry) in entries {
                    let got = try #require(loaded[0]?[key])
                    #expect(sameValue(got.value, entry.value), "key \(key.bytes)")
                    #expect(got.expiresAtMilliseconds == entry.expiresAtMilliseconds)
                }
                #expect(loaded[3]?[key("other")].map { sameValue($0.value, .integer(7)) } == true)
            }
        }
    }

    @Test func integerLikeStringsComeBackAsIntegers() throws {
        let file = try makeRDB([0: [(key("a"), Entry(value: .string(bytes("12"))))]])
        let (loaded, _) = try readRDB(file)
        guard case .integer(12)? = loaded[0]?[key("a")]?.value else {
            Issue.record("expected integer encoding")
            return
        }
    }

    /// The exact bytes Redis 7.0.15 writes for these keys (NOTES.md section 2).
    @Test func entryBytesMatchRedis() throws {
        var writer = RDBWriter(sink: MemorySink())
        try writer.writeEntry(key: key("neg"), entry: Entry(value: .integer(-5)))
        try writer.writeEntry(key: key("big"), entry: Entry(value: .integer(17_179_869_184)))
        try writer.writeEntry(key: key("007"), entry: Entry(value: .integer(1)))
        try writer.writeEntry(key: key("123"), entry: Entry(value: .string(bytes("x"))))
        try writer.writeEntry(key: key("counter"), entry: Entry(value: .integer(42)))
        let written = try writer.finish().bytes
        let expected: [UInt8] = [0x00, 0x03] + bytes("neg") + [0xC0, 0xFB]
            + [0x00, 0x03] + bytes("big") + [0x0B] + bytes("17179869184")
            + [0x00, 0x03] + bytes("007") + [0xC0, 0x01]
            + [0x00, 0xC0, 0x7B, 0x01] + bytes("x")
            + [0x00, 0x07] + bytes("counter") + [0xC0, 0x2A] + [0xFF]
        #expect(Array(written.prefix(expected.count)) == expected)
    }

    /// The minimal file from NOTES.md that redis-server 7.0.15 accepts, checksum included.
    @Test func readsHandBuiltRedisFile() throws {
        var file = bytes("REDIS0010") + [0xFA, 0x09] + bytes("redis-ver") + [0x05] + bytes("7.0.0")
        file += [0xFE, 0x00, 0xFB, 0x02, 0x00, 0x00, 0x07] + bytes("counter") + [0xC0, 0x2A]
        file += [0x00, 0x02] + bytes("c2") + [0xC2, 0x90, 0xEE, 0xFE, 0xFF, 0xFF]
        file += [0x17, 0x85, 0xF1, 0xFF, 0x1D, 0xFD, 0x18, 0x17]
        let (loaded, result) = try readRDB(file)
        #expect(result.checksumVerified)
        #expect(loaded[0]?[key("counter")].map { sameValue($0.value, .integer(42)) } == true)
        #expect(loaded[0]?[key("c2")].map { sameValue($0.value, .integer(-70000)) } == true)
    }

    @Test func headerLayoutAndAofBaseFlag() throws {
        var options = RDBWriterOptions()
        options.aofBase = true
        options.creationTimeSeconds = 1_790_000_000
        let file = try makeRDB([:], options: options)
        let header = bytes("REDIS0010") + [0xFA, 0x09] + bytes("redis-ver") + [0x06] + bytes("7.0.15")
            + [0xFA, 0x0A] + bytes("redis-bits") + [0xC0, 0x40]
        #expect(Array(file.prefix(header.count)) == header)
        let (_, result) = try readRDB(file)
        #expect(result.isAOFBase)
        #expect(result.auxValue("ctime") == bytes("1790000000"))
    }

    @Test func dropsExpiredKeysOnlyWhenAsked() throws {
        let file = try makeRDB([0: [
            (key("old"), Entry(value: .integer(1), expiresAtMilliseconds: Self.now - 1)),
            (key("edge"), Entry(value: .integer(2), expiresAtMilliseconds: Self.now)),
            (key("new"), Entry(value: .integer(3), expiresAtMilliseconds: Self.now + 1)),
        ]])
        let (dropped, droppedResult) = try readRDB(file, options: RDBLoadOptions(dropExpiredBefore: Self.now))
        #expect(droppedResult.expiredKeysDropped == 1)
        #expect(Set(dropped[0]?.keys.map { $0.bytes } ?? []) == [bytes("edge"), bytes("new")])
        let (kept, keptResult) = try readRDB(file)
        #expect(keptResult.expiredKeysDropped == 0)
        #expect(kept[0]?.count == 3)
    }

    @Test func everyTruncationFailsWithItsOffset() throws {
        let file = try makeRDB([0: Array(Self.sampleEntries.prefix(20))])
        for length in 0..<file.count {
            let error = #expect(throws: RDBError.self) { _ = try readRDB(Array(file.prefix(length))) }
            #expect(error?.kind == .truncated || (length < 9 && error?.kind == .badMagic), "length \(length)")
            #expect(error?.offset == Int64(length) || error?.kind == .badMagic, "length \(length)")
            #expect(error?.description.contains("test.rdb") == true)
        }
    }

    @Test func everyCorruptedByteIsDetected() throws {
        let file = try makeRDB([0: Array(Self.sampleEntries.prefix(26))])
        var generator = SplitMix64(seed: 5)
        for index in 0..<file.count {
            var damaged = file
            damaged[index] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            #expect(throws: RDBError.self, "byte \(index)") { _ = try readRDB(damaged) }
        }
    }

    @Test func zeroTrailerSkipsTheCheck() throws {
        var options = RDBWriterOptions()
        options.checksum = false
        var file = try makeRDB([0: [(key("k"), Entry(value: .string(bytes("v"))))]], options: options)
        #expect(file.suffix(8) == [0, 0, 0, 0, 0, 0, 0, 0])
        let (_, result) = try readRDB(file)
        #expect(!result.checksumVerified)
        // A wrong non-zero trailer is refused unless verification is off.
        file[file.count - 1] = 1
        let error = #expect(throws: RDBError.self) { _ = try readRDB(file) }
        #expect(error?.kind == .badChecksum)
        #expect(error?.offset == Int64(file.count - 8))
        _ = try readRDB(file, options: RDBLoadOptions(verifyChecksum: false))
    }

    @Test func reportsUnsupportedTypesAndBadVersions() throws {
        var options = RDBWriterOptions()
        options.checksum = false
        var file = try makeRDB([:], options: options)
        file.removeLast(9)
        // Type 7 is a module value (RDB_TYPE_MODULE_2), which Tally cannot load.
        let moduleStart = file.count
        file += [0x07, 0x03] + bytes("mod") + [0x00]
        let error = #expect(throws: RDBError.self) { _ = try readRDB(file) }
        #expect(error?.kind == .unsupportedType)
        #expect(error?.description == "test.rdb: unsupported type 7 for key \"mod\" at offset \(moduleStart)")

        var future = try makeRDB([:])
        future[8] = UInt8(ascii: "1")
        let versionError = #expect(throws: RDBError.self) { _ = try readRDB(future) }
        #expect(versionError?.kind == .badVersion)

        var unknown = try makeRDB([:], options: options)
        unknown.removeLast(9)
        unknown += [0xF0]
        let opcodeError = #expect(throws: RDBError.self) { _ = try readRDB(unknown) }
        #expect(opcodeError?.kind == .unknownOpcode)
    }

    @Test func leavesTheBytesAfterTheRDBForAnAOFTail() throws {
        let file = try makeRDB([0: [(key("k"), Entry(value: .integer(1)))]])
        let tail = bytes("*1\r\n$4\r\nPING\r\n")
        var reader = RDBReader(source: MemorySource(file + tail), name: "base.aof", chunkBytes: 4096)
        let result = try reader.load { _, _, _ in }
        #expect(result.endOffset == Int64(file.count))
        #expect(Array(reader.leftoverBytes) == tail)
    }
}
