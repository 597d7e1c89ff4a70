// RDBReader: streams an RDB file (versions 1-10) into (database, key, entry) callbacks, verifying its CRC64.
import TallyKeyspace

/// Something bytes can be read from in chunks: a storage file or memory.
public protocol ByteSource {
    /// Reads up to `buffer.count` bytes; 0 means end of data.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int
}

/// Reads an open `Storage` file from its current position.
public struct StorageSource<S: Storage>: ByteSource {
    /// The backend.
    public let storage: S
    /// The file.
    public let file: StorageFile

    /// Wraps an open file.
    public init(storage: S, file: StorageFile) {
        self.storage = storage
        self.file = file
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        try storage.read(file, into: buffer)
    }
}

/// Reads from an in-memory byte array.
public struct MemorySource: ByteSource {
    /// The bytes.
    public let bytes: [UInt8]
    /// Next position to read.
    public private(set) var position = 0

    /// Wraps `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        let count = min(buffer.count, bytes.count - position)
        if count > 0 {
            bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[position..<(position + count)]))
            }
        }
        position += count
        return count
    }
}

/// How to load an RDB file.
public struct RDBLoadOptions: Sendable {
    /// Keys whose expiry is before this Unix-ms time are dropped (loading dump.rdb); nil keeps
    /// every key (an AOF base, where later commands may still refer to them).
    public var dropExpiredBefore: Int64?
    /// `zset-max-listpack-entries`/`-value`: the form loaded sorted sets take (rdb.c converts
    /// after loading, as described at `readSortedSet`).
    public var sortedSetLimits = SortedSetLimits.standard
    /// Number of databases the server has; a higher SELECTDB is an error, as in Redis.
    public var databaseCount: Int = 16
    /// Verify the CRC64 trailer (`rdbchecksum`); a zero trailer is never checked.
    public var verifyChecksum: Bool = true
    /// `set-max-intset-entries`: larger all-integer sets load as hash tables, as in Redis.
    public var setMaxIntsetEntries: Int = SetValue.defaultMaxIntsetEntries
    /// `list-max-listpack-size`: the fill under which elements of older list encodings (types
    /// 1 and 14) are pushed; QUICKLIST_2 listpack nodes are kept as written, as rdb.c keeps them.
    public var listFill = ListFill.standard
    /// `hash-max-listpack-entries`/`-value`: which loaded hashes are hashtables (rdb.c's rules,
    /// see `readHashPairs` and `makeHash`).
    public var hashLimits = HashLimits.standard
    /// Called with each RESIZEDB hint (database, key count) before that database's keys, so
    /// the keyspace can size its tables once instead of growing them key by key (rdb.c
    /// rdbLoadRio expands the db's dict on it).
    public var onDatabaseSize: (@Sendable (_ database: Int, _ keys: Int) -> Void)?

    /// Default options: keep expired keys, 16 databases, verify the checksum.
    public init(dropExpiredBefore: Int64? = nil, databaseCount: Int = 16, verifyChecksum: Bool = true) {
        self.dropExpiredBefore = dropExpiredBefore
        self.databaseCount = databaseCount
        self.verifyChecksum = verifyChecksum
    }
}

/// What a load found.
public struct RDBLoadResult: Sendable {
    /// The file's RDB version.
    public var version = 0
    /// Keys passed to the callback.
    public var keysLoaded = 0
    /// Keys dropped because they had already expired.
    public var expiredKeysDropped = 0
    /// Empty hashes skipped (Redis skips them too).
    public var emptyKeysSkipped = 0
    /// Aux fields in file order.
    public var aux: [(key: [UInt8], value: [UInt8])] = []
    /// Function libraries' code (opcodes 245 and 246), for the caller to create.
    public var functionCodes: [[UInt8]] = []
    /// Offset just past the checksum trailer (where an AOF tail would start).
    public var endOffset: Int64 = 0
    /// True when the file has the trailer checksum verified (false if zero or not checked).
    public var checksumVerified = false

    /// The `aof-base` aux field as a flag.
    public var isAOFBase: Bool {
        aux.contains { $0.key == Array("aof-base".utf8) && $0.value == Array("1".utf8) }
    }

    /// The value of aux field `name`, if present.
    public func auxValue(_ name: String) -> [UInt8]? {
        aux.last { $0.key == Array(name.utf8) }?.value
    }
}

/// Reads an RDB stream with a large buffer, calling back once per key.
///
/// Bytes read past the end of the RDB (the command tail of an AOF with an RDB preamble) are
/// left in `leftoverBytes`, and `RDBLoadResult.endOffset` says where the RDB ended.
public struct RDBReader<Source: ByteSource> {
    private var source: Source
    private let name: String
    private var buffer: [UInt8]
    private var position = 0          // next unread byte in buffer
    private var checksummed = 0       // buffer[..<checksummed] is folded into crc
    private var bufferStartOffset: Int64 = 0
    private var crc = CRC64()
    private var atEnd = false
    private let chunkBytes: Int

    /// Wraps `source`; `name` is used in error messages.
    public init(source: Source, name: String, chunkBytes: Int = 1 << 20) {
        precondition(chunkBytes >= 64, "chunk too small")
        self.source = source
        self.name = name
        self.chunkBytes = chunkBytes
        self.buffer = []
    }

    /// Bytes that were read from the source beyond the end of the RDB.
    public var leftoverBytes: ArraySlice<UInt8> { buffer[position...] }

    /// The source, to continue reading after the RDB (after consuming `leftoverBytes`).
    public var remainingSource: Source { source }

    private var offset: Int64 { bufferStartOffset + Int64(position) }

    private func fail(_ kind: RDBError.Kind, _ message: String, at where_: Int64? = nil) -> RDBError {
        RDBError(kind, file: name, offset: where_ ?? offset, message)
    }

    /// Makes at least `count` unread bytes available, or throws `truncated`.
    @inline(__always)
    private mutating func ensure(_ count: Int) throws(RDBError) {
        // Fast path inlined into every read: the bytes are nearly always buffered already.
        if buffer.count - position >= count { return }
        try refill(count)
    }

    private mutating func refill(_ count: Int) throws(RDBError) {
        while buffer.count - position < count {
            if atEnd { throw fail(.truncated, "unexpected end of file", at: bufferStartOffset + Int64(buffer.count)) }
            // Fold consumed bytes into the CRC, then drop them before reading more.
            foldChecksum()
            if position > 0 {
                buffer.removeSubrange(0..<position)
                bufferStartOffset += Int64(position)
                checksummed -= position
                position = 0
            }
            let want = max(chunkBytes, count - buffer.count)
            let oldCount = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: want))
            let got: Int
            do {
                got = try buffer.withUnsafeMutableBytes { (raw) throws(StorageError) in
                    try source.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[oldCount...]))
                }
            } catch {
                buffer.removeSubrange(oldCount...)
                throw fail(.io, "read failed: \(error)")
            }
            buffer.removeSubrange((oldCount + got)...)
            if got == 0 { atEnd = true }
        }
    }

    private mutating func foldChecksum() {
        if checksummed < position {
            let range = checksummed..<position
            buffer.withUnsafeBytes { crc.update(UnsafeRawBufferPointer(rebasing: $0[range])) }
            checksummed = position
        }
    }

    @inline(__always)
    private mutating func readByte() throws(RDBError) -> UInt8 {
        try ensure(1)
        let byte = buffer[position]
        position += 1
        return byte
    }

    private mutating func readBytes(_ count: Int) throws(RDBError) -> [UInt8] {
        // Read in bounded steps so a corrupt huge length fails as truncation, not as a huge allocation.
        var result: [UInt8] = []
        result.reserveCapacity(min(count, chunkBytes))
        while result.count < count {
            let step = min(count - result.count, chunkBytes)
            try ensure(step)
            result.append(contentsOf: buffer[position..<(position + step)])
            position += step
        }
        return result
    }

    private mutating func readLittleEndian(_ width: Int) throws(RDBError) -> UInt64 {
        try ensure(width)
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(buffer[position + index]) << (8 * UInt64(index)) }
        position += width
        return value
    }

    /// A length, or a special string encoding number when `encoded` is true.
    private mutating func readLength() throws(RDBError) -> (value: UInt64, encoded: Bool) {
        let start = offset
        let first = try readByte()
        switch first >> 6 {
        case 0: return (UInt64(first & 0x3f), false)
        case 1: return ((UInt64(first & 0x3f) << 8) | UInt64(try readByte()), false)
        case 3: return (UInt64(first & 0x3f), true)
        default:
            let width: Int
            if first == 0x80 { width = 4 } else if first == 0x81 { width = 8 } else {
                throw fail(.corrupt, "unknown length encoding 0x\(String(first, radix: 16))", at: start)
            }
            var value: UInt64 = 0
            for _ in 0..<width { value = (value << 8) | UInt64(try readByte()) }
            return (value, false)
        }
    }

    private mutating func readPlainLength(_ what: String) throws(RDBError) -> Int {
        let start = offset
        let (value, encoded) = try readLength()
        guard !encoded, value <= UInt64(Int.max) else { throw fail(.corrupt, "invalid \(what) length", at: start) }
        return Int(value)
    }

    /// A string in any encoding (raw, int8/16/32, LZF).
    private mutating func readString() throws(RDBError) -> [UInt8] {
        let start = offset
        let (value, encoded) = try readLength()
        return try readStringBody(value, encoded: encoded, start: start)
    }

    /// A string key: short plain keys go straight from the read buffer into an inline `Key`,
    /// without the intermediate array `readString` allocates.
    private mutating func readKey() throws(RDBError) -> Key {
        let start = offset
        let (value, encoded) = try readLength()
        if !encoded && value <= UInt64(Key.inlineCapacity) {
            let count = Int(value)
            try ensure(count)
            let from = position
            let key = buffer.withUnsafeBytes { Key(UnsafeRawBufferPointer(rebasing: $0[from..<(from + count)])) }
            position += count
            return key
        }
        return Key(try readStringBody(value, encoded: encoded, start: start))
    }

    /// A string value: integer-encoded strings become `.integer` directly instead of being
    /// printed as decimal bytes and parsed back (they are always canonical, so the result is
    /// what `Value.fromBytes` of those bytes gives).
    private mutating func readStringValue() throws(RDBError) -> Value {
        let start = offset
        let (value, encoded) = try readLength()
        if encoded {
            switch UInt8(truncatingIfNeeded: value) {
            case RDBFormat.StringEncoding.int8:
                return .integer(Int64(Int8(bitPattern: try readByte())))
            case RDBFormat.StringEncoding.int16:
                return .integer(Int64(Int16(truncatingIfNeeded: try readLittleEndian(2))))
            case RDBFormat.StringEncoding.int32:
                return .integer(Int64(Int32(truncatingIfNeeded: try readLittleEndian(4))))
            default:
                break
            }
        }
        return Value.fromBytes(try readStringBody(value, encoded: encoded, start: start))
    }

    private mutating func readStringBody(_ value: UInt64, encoded: Bool, start: Int64) throws(RDBError) -> [UInt8] {
        if !encoded {
            guard value <= UInt64(Int.max) else { throw fail(.corrupt, "invalid string length", at: start) }
            return try readBytes(Int(value))
        }
        switch UInt8(value) {
        case RDBFormat.StringEncoding.int8:
            return decimalBytes(Int64(Int8(bitPattern: try readByte())))
        case RDBFormat.StringEncoding.int16:
            return decimalBytes(Int64(Int16(truncatingIfNeeded: try readLittleEndian(2))))
        case RDBFormat.StringEncoding.int32:
            return decimalBytes(Int64(Int32(truncatingIfNeeded: try readLittleEndian(4))))
        case RDBFormat.StringEncoding.lzf:
            let compressedLength = try readPlainLength("compressed")
            let length = try readPlainLength("uncompressed")
            let compressed = try readBytes(compressedLength)
            do {
                return try LZF.decompress(compressed, expectedLength: length)
            } catch {
                throw fail(.corrupt, "invalid LZF data (\(error.reason))", at: start)
            }
        default:
            throw fail(.corrupt, "unknown string encoding \(value)", at: start)
        }
    }

    /// Reads the whole file, calling `body` for each live key, and verifies the trailer.
    public mutating func load(
        options: RDBLoadOptions = RDBLoadOptions(),
        _ body: (_ database: Int, _ key: Key, _ entry: Entry) throws -> Void
    ) throws -> RDBLoadResult {
        var result = RDBLoadResult()
        let magic = try readBytes(9)
        guard magic.starts(with: Array("REDIS".utf8)) else { throw fail(.badMagic, "wrong signature", at: 0) }
        var version = 0
        for digit in magic[5...] {
            guard digit >= 48 && digit <= 57 else { throw fail(.badVersion, "bad RDB version", at: 5) }
            version = version * 10 + Int(digit - 48)
        }
        guard (1...RDBFormat.version).contains(version) else {
            throw fail(.badVersion, "can't handle RDB format version \(version)", at: 5)
        }
        result.version = version
        var database = 0
        var expiry: Int64?
        while true {
            let opcodeOffset = offset
            let type = try readByte()
            switch type {
            case RDBFormat.Opcode.expireTime:
                expiry = Int64(Int32(truncatingIfNeeded: try readLittleEndian(4))) * 1000
                continue
            case RDBFormat.Opcode.expireTimeMilliseconds:
                expiry = Int64(bitPattern: try readLittleEndian(8))
                continue
            case RDBFormat.Opcode.idle:
                _ = try readLength()
                continue
            case RDBFormat.Opcode.frequency:
                _ = try readByte()
                continue
            case RDBFormat.Opcode.selectDatabase:
                let selected = try readPlainLength("database")
                guard selected < options.databaseCount else {
                    throw fail(.corrupt, "database \(selected) out of range (server has \(options.databaseCount))",
                               at: opcodeOffset)
                }
                database = selected
                continue
            case RDBFormat.Opcode.resizeDatabase:
                let size = try readPlainLength("database size")
                _ = try readPlainLength("expires size")
                options.onDatabaseSize?(database, size)
                continue
            case RDBFormat.Opcode.aux:
                let key = try readString()
                let value = try readString()
                result.aux.append((key, value))
                continue
            case RDBFormat.Opcode.moduleAux:
                throw fail(.unsupportedType, "unsupported module aux data", at: opcodeOffset)
            case RDBFormat.Opcode.function, RDBFormat.Opcode.function2:
                result.functionCodes.append(try readFunctionRecord(type: type))
                continue
            case RDBFormat.Opcode.endOfFile:
                try finishTrailer(version: version, options: options, result: &result)
                return result
            case 0...RDBFormat.ValueType.highestKnown:
                break
            default:
                throw fail(.unknownOpcode, "unknown opcode \(type)", at: opcodeOffset)
            }
            if type == RDBFormat.ValueType.string {
                // The common case (counters, strings), without intermediate arrays.
                let key = try readKey()
                let value = try readStringValue()
                let entryExpiry = expiry
                expiry = nil
                if let now = options.dropExpiredBefore, let when = entryExpiry, when < now {
                    result.expiredKeysDropped += 1
                    continue
                }
                try body(database, key, Entry(value: value, expiresAtMilliseconds: entryExpiry))
                result.keysLoaded += 1
                continue
            }
            let key = try readString()
            let value = try readValue(type: type, key: key, options: options, at: opcodeOffset)
            let entryExpiry = expiry
            expiry = nil
            if value.isEmptyAggregate {
                result.emptyKeysSkipped += 1
                continue
            }
            if case .set(let set) = value, set.isEmpty {
                result.emptyKeysSkipped += 1
                continue
            }
            if case .sortedSet(let set) = value, set.isEmpty {
                result.emptyKeysSkipped += 1
                continue
            }
            if let now = options.dropExpiredBefore, let when = entryExpiry, when < now {
                result.expiredKeysDropped += 1
                continue
            }
            try body(database, Key(key), Entry(value: value, expiresAtMilliseconds: entryExpiry))
            result.keysLoaded += 1
        }
    }

    /// Reads the value of a key of `type` (the key, already read, names it in errors).
    private mutating func readValue(type: UInt8, key: [UInt8], options: RDBLoadOptions,
                                    at opcodeOffset: Int64) throws(RDBError) -> Value {
        let value: Value
        switch type {
        case RDBFormat.ValueType.string:
            value = Value.fromBytes(try readString())
        case RDBFormat.ValueType.hash:
            value = .hash(try readHashPairs(key: key, limits: options.hashLimits))
        case RDBFormat.ValueType.hashZiplist, RDBFormat.ValueType.hashListpack:
            let blobOffset = offset
            let blob = try readString()
            let elements: [[UInt8]]
            do {
                elements = type == RDBFormat.ValueType.hashListpack
                    ? try Listpack.decode(blob) : try Ziplist.decode(blob)
            } catch {
                throw fail(.corrupt, "invalid \(type == 16 ? "listpack" : "ziplist") for key "
                    + "\(printableKey(key)) (\(error.reason) at blob byte \(error.offset))", at: blobOffset)
            }
            value = .hash(try makeHash(elements, key: key, at: blobOffset, limits: options.hashLimits,
                                       checkLengths: type == RDBFormat.ValueType.hashZiplist))
        case RDBFormat.ValueType.list, RDBFormat.ValueType.listQuicklist, RDBFormat.ValueType.listQuicklist2:
            value = .list(try readList(type: type, key: key, fill: options.listFill))
        case RDBFormat.ValueType.set:
            value = .set(try readSetMembers(key: key, maxIntsetEntries: options.setMaxIntsetEntries))
        case RDBFormat.ValueType.setIntset:
            let blobOffset = offset
            guard let set = SetValue(intsetBlob: try readString(), maxIntsetEntries: options.setMaxIntsetEntries)
            else { throw fail(.corrupt, "invalid intset for key \(printableKey(key))", at: blobOffset) }
            value = .set(set)
        case RDBFormat.ValueType.sortedSet, RDBFormat.ValueType.sortedSet2:
            value = .sortedSet(try readSortedSet(binary: type == RDBFormat.ValueType.sortedSet2, key: key,
                                                  limits: options.sortedSetLimits))
        case RDBFormat.ValueType.sortedSetZiplist, RDBFormat.ValueType.sortedSetListpack:
            let blobOffset = offset
            let blob = try readString()
            let elements: [[UInt8]]
            do {
                elements = type == RDBFormat.ValueType.sortedSetListpack
                    ? try Listpack.decode(blob) : try Ziplist.decode(blob)
            } catch {
                throw fail(.corrupt, "invalid \(type == 17 ? "listpack" : "ziplist") for key "
                    + "\(printableKey(key)) (\(error.reason) at blob byte \(error.offset))", at: blobOffset)
            }
            value = .sortedSet(try makeSortedSet(elements, key: key, at: blobOffset,
                                                 limits: options.sortedSetLimits))
        case RDBFormat.ValueType.streamListpacks2, RDBFormat.ValueType.streamListpacks:
            value = .stream(try readStream(version2: type == RDBFormat.ValueType.streamListpacks2, key: key))
        default:
            throw fail(.unsupportedType, "unsupported type \(type) for key \(printableKey(key))",
                       at: opcodeOffset)
        }
        return value
    }

    /// Reads a DUMP payload's body, `type value` (cluster.c restoreCommand; the caller has
    /// checked and removed the version and checksum footer). Empty aggregates are refused, as
    /// Redis refuses them (RDB_LOAD_ERR_EMPTY_KEY).
    public mutating func readDumpedValue() throws(RDBError) -> Value {
        let type = try readByte()
        guard type <= RDBFormat.ValueType.highestKnown else {
            throw fail(.unknownOpcode, "unknown value type \(type)", at: 0)
        }
        let value = try readValue(type: type, key: [], options: RDBLoadOptions(), at: 0)
        if value.isEmptyAggregate { throw fail(.corrupt, "empty value", at: 0) }
        return value
    }

    /// Reads FUNCTION RESTORE's records up to `end` (the payload without its footer): each an
    /// opcode 245 (FUNCTION2: the library's code) or 246 (7.0 RC FUNCTION: name, engine,
    /// optional description and body, turned into code as rdbFunctionLoad does). Returns the
    /// codes, or Redis's error text for a record that is not a function.
    public mutating func readFunctionRecords(end: Int64) -> Result<[[UInt8]], FunctionRecordError> {
        var codes: [[UInt8]] = []
        while offset < end {
            guard let type = try? readByte() else { return .failure(FunctionRecordError("can not read data type")) }
            guard type == RDBFormat.Opcode.function || type == RDBFormat.Opcode.function2 else {
                return .failure(FunctionRecordError("given type is not a function"))
            }
            do {
                codes.append(try readFunctionRecord(type: type))
            } catch {
                return .failure(FunctionRecordError("failed loading the given functions payload"))
            }
        }
        return .success(codes)
    }

    /// One function record's library code, after its opcode.
    mutating func readFunctionRecord(type: UInt8) throws(RDBError) -> [UInt8] {
        if type == RDBFormat.Opcode.function2 { return try readString() }
        let name = try readString()
        let engine = try readString()
        if try readPlainLength("library description indicator") != 0 { _ = try readString() }
        let body = try readString()
        return Array("#!".utf8) + engine + Array(" name=".utf8) + name + [10] + body
    }

    /// A type 2 set: a count, then members. Like rdb.c, it loads as an intset while the
    /// members are integers and the count fits `set-max-intset-entries`.
    private mutating func readSetMembers(key: [UInt8], maxIntsetEntries: Int) throws(RDBError) -> SetValue {
        let start = offset
        let count = try readPlainLength("set")
        var set = SetValue()
        for _ in 0..<count {
            guard set.insert(try readString(), maxIntsetEntries: maxIntsetEntries) else {
                throw fail(.corrupt, "duplicate set member in key \(printableKey(key))", at: start)
            }
        }
        return set
    }

    /// A HASH (type 4): a hashtable from the start when it has more fields than `limits` allow,
    /// else a listpack until a field or value is too long (rdb.c rdbLoadObject).
    private mutating func readHashPairs(key: [UInt8], limits: HashLimits) throws(RDBError) -> HashValue {
        let start = offset
        let count = try readPlainLength("hash")
        var hash = HashValue()
        if count > limits.maxEntries { hash.convertToHashtable() }
        for _ in 0..<count {
            let field = try readString()
            let value = try readString()
            guard hash.set(field: field, value: value, limits: limits) else {
                throw fail(.corrupt, "duplicate hash field in key \(printableKey(key))", at: start)
            }
        }
        return hash
    }

    /// A stream (types 15 and 19, rdb.c rdbLoadObject): see `RDBWriter.appendStream`.
    private mutating func readStream(version2: Bool, key: [UInt8]) throws(RDBError) -> StreamValue {
        var stream = StreamValue()
        let start = offset
        let nodeCount = try readPlainLength("stream nodes")
        var previous: StreamID?
        for _ in 0..<nodeCount {
            let nodeOffset = offset
            guard let master = StreamID(bigEndian: try readString()) else {
                throw fail(.corrupt, "stream node key is not 16 bytes for key \(printableKey(key))", at: nodeOffset)
            }
            let blob = try readString()
            let elements: [[UInt8]]
            do {
                elements = try Listpack.decode(blob)
            } catch {
                throw fail(.corrupt, "invalid stream listpack for key \(printableKey(key))", at: nodeOffset)
            }
            guard blob.count >= 7,
                  let node = StreamNode(master: master, listpackEntries: Array(blob[6..<(blob.count - 1)]),
                                        count: elements.count),
                  previous.map({ $0 < master }) ?? true else {
                throw fail(.corrupt, "invalid stream node for key \(printableKey(key))", at: nodeOffset)
            }
            previous = master
            stream.loadNode(node)
        }
        func readID() throws(RDBError) -> StreamID {
            let ms = try readLength().value
            return StreamID(ms, try readLength().value)
        }
        stream.length = Int64(bitPattern: try readLength().value)
        stream.lastID = try readID()
        if version2 {
            stream.firstID = try readID()
            stream.maxDeletedID = try readID()
            stream.entriesAdded = Int64(bitPattern: try readLength().value)
        } else {
            stream.entriesAdded = stream.length
            stream.firstID = stream.firstLiveID ?? .zero
        }
        if stream.length > 0 && stream.nodes.isEmpty {
            throw fail(.corrupt, "stream with entries but no nodes for key \(printableKey(key))", at: start)
        }
        let groupCount = try readPlainLength("stream groups")
        for _ in 0..<groupCount {
            let name = try readString()
            let lastID = try readID()
            var entriesRead: Int64 = -1
            if version2 {
                entriesRead = Int64(bitPattern: try readLength().value)
            } else {
                let estimate = stream.estimateDistance(to: lastID)
                entriesRead = estimate
            }
            var group = StreamGroup(name: name, lastID: lastID, entriesRead: entriesRead)
            let pendingCount = try readPlainLength("stream PEL")
            for _ in 0..<pendingCount {
                guard let id = StreamID(bigEndian: try readBytes(16)) else { break }
                let time = Int64(bitPattern: try readLittleEndian(8))
                let count = Int64(bitPattern: try readLength().value)
                group.loadPending(id, StreamPendingEntry(consumer: [], deliveryTime: time, deliveryCount: count))
            }
            let consumerCount = try readPlainLength("stream consumers")
            for _ in 0..<consumerCount {
                var consumer = StreamConsumer(name: try readString(), seenTime: 0)
                consumer.seenTime = Int64(bitPattern: try readLittleEndian(8))
                let held = try readPlainLength("stream consumer PEL")
                for _ in 0..<held {
                    guard let id = StreamID(bigEndian: try readBytes(16)) else { break }
                    consumer.pending.append(id)
                }
                group.loadConsumer(consumer)
            }
            group.bindLoadedConsumers()
            stream.groups.append(group)
        }
        return stream
    }

    /// A list in any encoding Redis 7.0 loads: type 1 (length + elements), 14 (length +
    /// ziplists) or 18 (length + container/blob nodes, listpacks or plain elements).
    private mutating func readList(type: UInt8, key: [UInt8], fill: ListFill) throws(RDBError) -> ListValue {
        let count = try readPlainLength("list")
        var list = ListValue()
        for _ in 0..<count {
            if type == RDBFormat.ValueType.list {
                list.push(try readString(), at: .tail, fill: fill)
                continue
            }
            var container = RDBFormat.ListContainer.packed
            if type == RDBFormat.ValueType.listQuicklist2 {
                let containerOffset = offset
                container = UInt64(try readPlainLength("list node container"))
                guard container == RDBFormat.ListContainer.plain || container == RDBFormat.ListContainer.packed else {
                    throw fail(.corrupt, "unknown list node container \(container) for key \(printableKey(key))",
                               at: containerOffset)
                }
            }
            let blobOffset = offset
            let blob = try readString()
            if container == RDBFormat.ListContainer.plain {
                list.push(blob, at: .tail, fill: fill)
                continue
            }
            if type == RDBFormat.ValueType.listQuicklist2 {
                // A listpack node is kept as it was saved, as rdb.c keeps it: its entries are
                // validated in place and adopted as one chunk, with no per-element work.
                let entries: Int
                do {
                    entries = try Listpack.validatedCount(blob)
                } catch {
                    throw fail(.corrupt, "invalid listpack for key \(printableKey(key)) (\(error.reason) at blob "
                        + "byte \(error.offset))", at: blobOffset)
                }
                guard entries > 0 else {
                    throw fail(.corrupt, "empty list node for key \(printableKey(key))", at: blobOffset)
                }
                // A node of more entries than a chunk counts (none Redis writes: 64 KB at most)
                // is split by pushing its elements.
                if entries < 65536 {
                    list.appendChunk(entries: blob[6..<(blob.count - 1)], count: entries)
                    continue
                }
            }
            let elements: [[UInt8]]
            do {
                elements = type == RDBFormat.ValueType.listQuicklist2
                    ? try Listpack.decode(blob) : try Ziplist.decode(blob)
            } catch {
                throw fail(.corrupt, "invalid \(type == 18 ? "listpack" : "ziplist") for key "
                    + "\(printableKey(key)) (\(error.reason) at blob byte \(error.offset))", at: blobOffset)
            }
            // Redis refuses an empty node (rdb.c: "Empty listpack/ziplist inside quicklist").
            guard !elements.isEmpty else {
                throw fail(.corrupt, "empty list node for key \(printableKey(key))", at: blobOffset)
            }
            for element in elements { list.push(element, at: .tail, fill: fill) }
        }
        return list
    }

    /// ZSET (3: scores as length-prefixed text) or ZSET_2 (5: binary doubles): loaded indexed,
    /// then compacted when it fits the limits (rdb.c rdbLoadObject).
    private mutating func readSortedSet(binary: Bool, key: [UInt8], limits: SortedSetLimits)
    throws(RDBError) -> SortedSetValue {
        let start = offset
        let count = try readPlainLength("zset")
        var set = SortedSetValue()
        set.convertToIndexed()
        for _ in 0..<count {
            let member = try readString()
            let score: Double
            if binary {
                score = Double(bitPattern: try readLittleEndian(8))
            } else {
                let length = try readByte()
                switch length {
                case 253: score = .nan
                case 254: score = .infinity
                case 255: score = -.infinity
                default:
                    let text = try readBytes(Int(length))
                    guard let parsed = ScoreBound(text).map({ $0.value }), text.first != UInt8(ascii: "(") else {
                        throw fail(.corrupt, "invalid zset score for key \(printableKey(key))", at: start)
                    }
                    score = parsed
                }
            }
            guard !score.isNaN else { throw fail(.corrupt, "zset score is NaN in key \(printableKey(key))", at: start) }
            guard set.score(of: member) == nil else {
                throw fail(.corrupt, "duplicate zset member in key \(printableKey(key))", at: start)
            }
            set.insert(member, score: score, limits: limits)
        }
        set.compactIfSmall(limits: limits)
        return set
    }

    /// A ZSET_LISTPACK or ZSET_ZIPLIST blob: member, score pairs in order; converted to the
    /// indexed form only when longer than `zset-max-listpack-entries`, as rdb.c does.
    private func makeSortedSet(_ elements: [[UInt8]], key: [UInt8], at blobOffset: Int64, limits: SortedSetLimits)
    throws(RDBError) -> SortedSetValue {
        guard elements.count % 2 == 0 else {
            throw fail(.corrupt, "odd zset listpack for key \(printableKey(key))", at: blobOffset)
        }
        let packed = elements.count / 2 <= limits.maxEntries
        var set = SortedSetValue()
        if !packed { set.convertToIndexed() }
        // The packed form is built at once from the pairs; a Set finds duplicate members in
        // O(n), where asking the packed set would scan it per member.
        var members: [[UInt8]] = []
        var scores: [Double] = []
        var seen = Set<[UInt8]>(minimumCapacity: packed ? elements.count / 2 : 0)
        if packed {
            members.reserveCapacity(elements.count / 2)
            scores.reserveCapacity(elements.count / 2)
        }
        var position = 0
        while position < elements.count {
            let member = elements[position]
            guard let score = ScoreBound(elements[position + 1]).map({ $0.value }),
                  elements[position + 1].first != UInt8(ascii: "(") else {
                throw fail(.corrupt, "invalid zset score for key \(printableKey(key))", at: blobOffset)
            }
            let duplicate = packed ? !seen.insert(member).inserted : set.score(of: member) != nil
            guard !duplicate else {
                throw fail(.corrupt, "duplicate zset member in key \(printableKey(key))", at: blobOffset)
            }
            if packed {
                members.append(member)
                scores.append(score)
            } else {
                set.insertNewUnchecked(member, score: score)
            }
            position += 2
        }
        return packed ? SortedSetValue(packing: members, scores: scores) : set
    }

    /// A HASH_LISTPACK (16) or HASH_ZIPLIST (13) blob: rdb.c converts a listpack to a hashtable
    /// only when it has more fields than `limits` allow, a ziplist also when an element is longer.
    private func makeHash(_ elements: [[UInt8]], key: [UInt8], at blobOffset: Int64, limits: HashLimits,
                          checkLengths: Bool) throws(RDBError) -> HashValue {
        guard elements.count % 2 == 0 else {
            throw fail(.corrupt, "odd number of hash elements for key \(printableKey(key))", at: blobOffset)
        }
        var hash = HashValue()
        // Converted first when it will be anyway: filling a packed hash past its limits would
        // scan it once per pair.
        if elements.count / 2 > limits.maxEntries {
            hash.convertToHashtable()
        } else {
            hash.reserveCapacity(pairs: elements.count / 2, payloadBytes: elements.reduce(0) { $0 + $1.count })
        }
        var index = 0
        let unlimited = HashLimits(maxEntries: Int.max, maxValueBytes: checkLengths ? limits.maxValueBytes : Int.max)
        while index < elements.count {
            guard hash.set(field: elements[index], value: elements[index + 1], limits: unlimited) else {
                throw fail(.corrupt, "duplicate hash field in key \(printableKey(key))", at: blobOffset)
            }
            index += 2
        }
        return hash
    }

    private mutating func finishTrailer(
        version: Int, options: RDBLoadOptions, result: inout RDBLoadResult
    ) throws(RDBError) {
        foldChecksum()
        let computed = crc.value
        if version >= 5 {
            let trailerOffset = offset
            let stored = try readLittleEndian(8)
            if stored != 0 && options.verifyChecksum {
                guard stored == computed else {
                    throw fail(.badChecksum, "RDB CRC error (stored \(String(stored, radix: 16)), "
                        + "computed \(String(computed, radix: 16)))", at: trailerOffset)
                }
                result.checksumVerified = true
            }
        }
        result.endOffset = offset
    }
}

/// Loads an RDB file from `storage` at `path`.
public func loadRDBFile<S: Storage>(
    _ storage: S, path: String, options: RDBLoadOptions = RDBLoadOptions(),
    _ body: (_ database: Int, _ key: Key, _ entry: Entry) throws -> Void
) throws -> RDBLoadResult {
    let file = try storage.openForReading(path)
    defer { storage.close(file) }
    var reader = RDBReader(source: StorageSource(storage: storage, file: file), name: path)
    return try reader.load(options: options, body)
}
