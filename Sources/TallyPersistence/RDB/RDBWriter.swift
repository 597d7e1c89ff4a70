// RDBWriter: streams keys and values in RDB version 10 format, with Redis 7.0's string and hash encodings.
import TallyKeyspace
import TallyProtocol

/// Settings that change the bytes an RDB writer produces.
public struct RDBWriterOptions: Sendable {
    /// `rdbcompression`: LZF-compress strings longer than 20 bytes when that saves space.
    public var compression: Bool = true
    /// `rdbchecksum`: write the CRC64 trailer (8 zero bytes when off).
    public var checksum: Bool = true
    /// Value of the `aof-base` aux field: true for the RDB preamble/base of an AOF.
    public var aofBase: Bool = false
    /// `ctime` aux field (Unix seconds).
    public var creationTimeSeconds: Int64 = 0
    /// `used-mem` aux field (bytes).
    public var usedMemoryBytes: Int64 = 0
    /// `repl-stream-db`, `repl-id` and `repl-offset` aux fields (nil: none, as for an AOF base).
    public var replication: ReplicationSaveInfo?

    /// Default options (Redis defaults).
    public init() {}
}

/// The replication position a snapshot stores so a restarted replica can PSYNC (rdb.c
/// rdbPopulateSaveInfo): our replication ID, the offset the data corresponds to, and the
/// database the primary's stream had selected there.
public struct ReplicationSaveInfo: Sendable, Equatable {
    /// `repl-id`.
    public var replicationID: String
    /// `repl-offset`: the last stream byte whose effect the snapshot holds.
    public var offset: Int64
    /// `repl-stream-db`.
    public var streamDatabase: Int

    /// Creates the info.
    public init(replicationID: String, offset: Int64, streamDatabase: Int) {
        self.replicationID = replicationID
        self.offset = offset
        self.streamDatabase = streamDatabase
    }

    /// The info in a loaded RDB's aux fields, if all three are there and valid (rdb.c rdbLoad
    /// sets repl_id_is_set, repl_offset and repl_stream_db from them).
    public init?(aux: [(key: [UInt8], value: [UInt8])]) {
        func value(_ name: String) -> String? {
            aux.last { $0.key == Array(name.utf8) }.map { String(decoding: $0.value, as: UTF8.self) }
        }
        guard let id = value("repl-id"), id.utf8.count == 40, let offset = value("repl-offset").flatMap({ Int64($0) }),
              offset >= 0, let database = value("repl-stream-db").flatMap({ Int($0) }), database >= 0
        else { return nil }
        self.init(replicationID: id, offset: offset, streamDatabase: database)
    }
}

/// Where snapshots get the replication position from (the server's replication state).
public protocol SnapshotReplicationSource: Sendable {
    /// Runs `body` where no replicated command is half applied, passing the position the data
    /// corresponds to (nil when there is none to store); the snapshot is taken inside `body`.
    func atConsistentPoint<T>(_ body: (ReplicationSaveInfo?) -> T) -> T
}

/// Writes an RDB file: `writeHeader()`, then per database `beginDatabase` and `writeEntry`, then
/// `finish()`. Every byte goes through a CRC64 so the trailer matches what Redis computes.
public struct RDBWriter<Sink: ByteSink> {
    private var sink: ChecksummingSink<Sink>
    /// The options in force.
    public let options: RDBWriterOptions
    /// Keys written so far.
    public private(set) var keysWritten = 0
    private var scratch: [UInt8] = []

    /// Wraps `sink`; nothing is written until `writeHeader()`.
    public init(sink: Sink, options: RDBWriterOptions = RDBWriterOptions()) {
        self.sink = ChecksummingSink(sink, enabled: options.checksum)
        self.options = options
        scratch.reserveCapacity(256)
    }

    /// Writes the magic `REDIS0010` and the aux fields Redis 7.0 writes.
    public mutating func writeHeader() throws(StorageError) {
        try sink.write(Array("REDIS0010".utf8))
        try writeAux("redis-ver", Array(RDBFormat.compatibleRedisVersion.utf8))
        try writeAux("redis-bits", Array("64".utf8))
        try writeAux("ctime", decimalBytes(options.creationTimeSeconds))
        try writeAux("used-mem", decimalBytes(options.usedMemoryBytes))
        if let replication = options.replication {
            // rdb.c rdbSaveInfoAuxFields: after used-mem, before aof-base.
            try writeAux("repl-stream-db", decimalBytes(Int64(replication.streamDatabase)))
            try writeAux("repl-id", Array(replication.replicationID.utf8))
            try writeAux("repl-offset", decimalBytes(replication.offset))
        }
        try writeAux("aof-base", Array((options.aofBase ? "1" : "0").utf8))
    }

    /// Writes one aux field (`FA key value`).
    public mutating func writeAux(_ key: String, _ value: [UInt8]) throws(StorageError) {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(RDBFormat.Opcode.aux)
        encodeString(Array(key.utf8), into: &scratch)
        encodeString(value, into: &scratch)
        try sink.write(scratch)
    }

    /// Starts a database section: `FE db`, `FB keys expires`. Call only for non-empty databases.
    /// One function library (opcode 245 FUNCTION2 and its code), written after the aux fields
    /// and before the databases, as rdbSaveFunctions does.
    public mutating func writeFunction(_ code: [UInt8]) throws(StorageError) {
        var bytes: [UInt8] = [RDBFormat.Opcode.function2]
        encodeString(code, into: &bytes)
        try writeEncoded(bytes, keys: 0)
    }

    public mutating func beginDatabase(_ database: Int, keyCount: Int, expiringKeyCount: Int) throws(StorageError) {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(RDBFormat.Opcode.selectDatabase)
        RDBWriter.encodeLength(UInt64(database), into: &scratch)
        scratch.append(RDBFormat.Opcode.resizeDatabase)
        RDBWriter.encodeLength(UInt64(keyCount), into: &scratch)
        RDBWriter.encodeLength(UInt64(expiringKeyCount), into: &scratch)
        try sink.write(scratch)
    }

    /// Writes one key: `[FC ms] type key value`.
    public mutating func writeEntry(key: Key, entry: Entry) throws(StorageError) {
        scratch.removeAll(keepingCapacity: true)
        RDBWriter.appendEntry(key: key, entry: entry, options: options, into: &scratch)
        try sink.write(scratch)
        if scratch.capacity > 1 << 20 { scratch = [] }
        keysWritten += 1
    }

    /// Writes bytes already in RDB form (a section header or entries), counting `keys`.
    public mutating func writeEncoded(_ bytes: [UInt8], keys: Int) throws(StorageError) {
        try sink.write(bytes)
        keysWritten += keys
    }

    /// `FE db`, then `FB keys expires` when `sizes` are given: the start of one shard's part of
    /// `database`. Several sections for the same database load fine in redis-server and
    /// redis-check-rdb; the sizes, when present, are the whole database's.
    static func appendSectionHeader(database: Int, sizes: (keys: Int, expiring: Int)?, into output: inout [UInt8]) {
        output.append(RDBFormat.Opcode.selectDatabase)
        encodeLength(UInt64(database), into: &output)
        guard let sizes else { return }
        output.append(RDBFormat.Opcode.resizeDatabase)
        encodeLength(UInt64(sizes.keys), into: &output)
        encodeLength(UInt64(sizes.expiring), into: &output)
    }

    /// Appends one key's encoding: `[FC ms] type key value`.
    static func appendEntry(key: Key, entry: Entry, options: RDBWriterOptions, into scratch: inout [UInt8]) {
        if entry.expiresAtMilliseconds == nil, case .integer(let value) = entry.value {
            // Counters dominate: write the key from its storage without building an array
            // (a key of 12-20 bytes can be neither int-encoded nor LZF-compressed).
            let plain = key.withUnsafeBytes { raw -> Bool in
                guard raw.count > 11 && raw.count <= 20 else { return false }
                scratch.append(RDBFormat.ValueType.string)
                encodeLength(UInt64(raw.count), into: &scratch)
                scratch.append(contentsOf: raw)
                return true
            }
            if plain {
                encodeInteger(value, into: &scratch)
                return
            }
        }
        if let expiry = entry.expiresAtMilliseconds {
            scratch.append(RDBFormat.Opcode.expireTimeMilliseconds)
            Listpack.appendLittleEndian(UInt64(bitPattern: expiry), bytes: 8, to: &scratch)
        }
        appendValue(entry.value, key: key, options: options, into: &scratch)
    }

    /// Appends `type [key] value`. A file entry has the key between the type byte and the value;
    /// a DUMP payload (cluster.c createDumpPayload) is the same bytes without it (`key` nil).
    static func appendValue(_ value: Value, key: Key?, options: RDBWriterOptions, into scratch: inout [UInt8]) {
        switch value {
        case .integer(let value):
            scratch.append(RDBFormat.ValueType.string)
            appendKey(key, options: options, into: &scratch)
            encodeInteger(value, into: &scratch)
        case .string(let bytes):
            scratch.append(RDBFormat.ValueType.string)
            appendKey(key, options: options, into: &scratch)
            encodeString(bytes, options: options, into: &scratch)
        case .hash(let hash):
            // The hash's own encoding, as rdbSaveObjectType writes the object's.
            if hash.isListpack {
                scratch.append(RDBFormat.ValueType.hashListpack)
                appendKey(key, options: options, into: &scratch)
                var elements: [[UInt8]] = []
                elements.reserveCapacity(hash.count * 2)
                hash.forEach { field, value in
                    elements.append(Array(field))
                    elements.append(Array(value))
                }
                encodeString(Listpack.encode(elements), options: options, into: &scratch)
            } else {
                scratch.append(RDBFormat.ValueType.hash)
                appendKey(key, options: options, into: &scratch)
                encodeLength(UInt64(hash.count), into: &scratch)
                hash.forEach { field, value in
                    encodeString(Array(field), options: options, into: &scratch)
                    encodeString(Array(value), options: options, into: &scratch)
                }
            }
        case .list(let list):
            // QUICKLIST_2: the node count, then per node its container and blob. Each chunk
            // already holds listpack entries, so a node is the chunk with header and terminator.
            scratch.append(RDBFormat.ValueType.listQuicklist2)
            appendKey(key, options: options, into: &scratch)
            encodeLength(UInt64(list.chunkCount), into: &scratch)
            list.forEachChunk { entries, count in
                encodeLength(RDBFormat.ListContainer.packed, into: &scratch)
                encodeString(Listpack.wrap(entries: entries, count: count), options: options, into: &scratch)
            }
        case .set(let set):
            // Redis 7.0 (rdbSaveObject): an intset is its raw blob (type 11); a hash table set
            // is type 2, the member count, then each member as a string.
            if let blob = set.intsetBlob {
                scratch.append(RDBFormat.ValueType.setIntset)
                appendKey(key, options: options, into: &scratch)
                encodeString(blob, options: options, into: &scratch)
            } else {
                scratch.append(RDBFormat.ValueType.set)
                appendKey(key, options: options, into: &scratch)
                encodeLength(UInt64(set.count), into: &scratch)
                set.forEach { member in encodeString(Array(member), options: options, into: &scratch) }
            }
        case .sortedSet(let set):
            if set.isCompact {
                // ZSET_LISTPACK: member, score pairs in order; scores as d2string text, which the
                // listpack stores as an integer entry when it is one (as zzlInsertAt does).
                scratch.append(RDBFormat.ValueType.sortedSetListpack)
                appendKey(key, options: options, into: &scratch)
                var elements: [[UInt8]] = []
                elements.reserveCapacity(set.count * 2)
                set.forEach { member, score in
                    elements.append(Array(member))
                    elements.append(scoreStorageText(score))
                }
                encodeString(Listpack.encode(elements), options: options, into: &scratch)
            } else {
                // ZSET_2: highest score first (rdbSaveObject walks the skiplist from its tail),
                // each score as a little-endian binary double.
                scratch.append(RDBFormat.ValueType.sortedSet2)
                appendKey(key, options: options, into: &scratch)
                encodeLength(UInt64(set.count), into: &scratch)
                set.visit(from: set.count - 1, reverse: true) { member, score in
                    encodeString(Array(member), options: options, into: &scratch)
                    Listpack.appendLittleEndian(score.bitPattern, bytes: 8, to: &scratch)
                    return true
                }
            }
        case .stream(let stream):
            scratch.append(RDBFormat.ValueType.streamListpacks2)
            appendKey(key, options: options, into: &scratch)
            appendStream(stream, options: options, into: &scratch)
        }
    }

    /// The key of a file entry; nothing for a DUMP payload.
    private static func appendKey(_ key: Key?, options: RDBWriterOptions, into scratch: inout [UInt8]) {
        if let key { encodeString(key.bytes, options: options, into: &scratch) }
    }

    /// Writes `FF` and the checksum trailer, flushes, and returns the sink.
    public mutating func finish() throws(StorageError) -> Sink {
        try sink.write(byte: RDBFormat.Opcode.endOfFile)
        var trailer: [UInt8] = []
        Listpack.appendLittleEndian(options.checksum ? sink.checksum : 0, bytes: 8, to: &trailer)
        try sink.write(trailer)
        try sink.flush()
        return sink.base
    }

    // MARK: Encodings

    /// Length encoding: 6 bits, 14 bits big-endian, or 0x80/0x81 + 32/64-bit big-endian.
    static func encodeLength(_ length: UInt64, into output: inout [UInt8]) {
        if length < 64 {
            output.append(UInt8(length))
        } else if length < 16384 {
            output.append(0x40 | UInt8(length >> 8))
            output.append(UInt8(length & 0xff))
        } else if length <= UInt64(UInt32.max) {
            output.append(0x80)
            for shift in stride(from: 24, through: 0, by: -8) {
                output.append(UInt8(truncatingIfNeeded: length >> UInt64(shift)))
            }
        } else {
            output.append(0x81)
            for shift in stride(from: 56, through: 0, by: -8) {
                output.append(UInt8(truncatingIfNeeded: length >> UInt64(shift)))
            }
        }
    }

    /// `C0`/`C1`/`C2` + little-endian int when `value` fits 32 bits, else nil.
    static func encodeIntegerSpecial(_ value: Int64, into output: inout [UInt8]) -> Bool {
        if value >= -128 && value <= 127 {
            output.append(0xC0)
            output.append(UInt8(bitPattern: Int8(value)))
        } else if value >= -32768 && value <= 32767 {
            output.append(0xC1)
            Listpack.appendLittleEndian(UInt64(bitPattern: value), bytes: 2, to: &output)
        } else if value >= Int64(Int32.min) && value <= Int64(Int32.max) {
            output.append(0xC2)
            Listpack.appendLittleEndian(UInt64(bitPattern: value), bytes: 4, to: &output)
        } else {
            return false
        }
        return true
    }

    /// An integer value as Redis's rdbSaveLongLongAsStringObject writes it: the int encoding when
    /// it fits 32 bits, else its decimal digits as a plain length-prefixed string.
    static func encodeInteger(_ value: Int64, into output: inout [UInt8]) {
        if encodeIntegerSpecial(value, into: &output) { return }
        let digits = decimalBytes(value)
        encodeLength(UInt64(digits.count), into: &output)
        output.append(contentsOf: digits)
    }

    /// A string as Redis's rdbSaveRawString writes it: the int encoding for canonical integers of
    /// at most 11 characters, LZF for longer-than-20-byte strings when it saves at least 4 bytes,
    /// otherwise length + bytes.
    func encodeString(_ bytes: [UInt8], into output: inout [UInt8]) {
        RDBWriter.encodeString(bytes, options: options, into: &output)
    }

    /// `encodeString` with explicit options (serializers running outside a writer).
    static func encodeString(_ bytes: [UInt8], options: RDBWriterOptions, into output: inout [UInt8]) {
        if bytes.count <= 11, let value = parseRedisInteger(bytes),
           RDBWriter.encodeIntegerSpecial(value, into: &output) {
            return
        }
        if options.compression && bytes.count > 20, let compressed = LZF.compress(bytes, limit: bytes.count - 4) {
            output.append(0xC3)
            RDBWriter.encodeLength(UInt64(compressed.count), into: &output)
            RDBWriter.encodeLength(UInt64(bytes.count), into: &output)
            output.append(contentsOf: compressed)
            return
        }
        RDBWriter.encodeLength(UInt64(bytes.count), into: &output)
        output.append(contentsOf: bytes)
    }
}
