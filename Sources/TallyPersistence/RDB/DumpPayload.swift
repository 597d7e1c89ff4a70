// DumpPayload: DUMP/RESTORE payloads from the RDB value encoder and decoder (cluster.c createDumpPayload).
import TallyKeyspace

/// The RDB-backed `DumpPayloadCodec` the server gives the DUMP and RESTORE rows.
public struct RDBDumpPayloadCodec: DumpPayloadCodec {
    /// Version (2 bytes) and CRC64 (8 bytes) after the value.
    static let footerBytes = 10

    /// The encoder's options (`rdbcompression`, listpack limits), as for dump.rdb.
    public let options: RDBWriterOptions

    /// A codec writing values as `options` says.
    public init(options: RDBWriterOptions = RDBWriterOptions()) { self.options = options }

    public func payload(of value: Value) -> [UInt8] {
        var bytes: [UInt8] = []
        RDBWriter<MemorySink>.appendValue(value, key: nil, options: options, into: &bytes)
        Listpack.appendLittleEndian(UInt64(RDBFormat.version), bytes: 2, to: &bytes)
        Listpack.appendLittleEndian(CRC64.checksum(bytes), bytes: 8, to: &bytes)
        return bytes
    }

    /// Opcode 245 and the code per library, then the same footer as a value's payload.
    public func functionsPayload(_ codes: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for code in codes {
            bytes.append(RDBFormat.Opcode.function2)
            RDBWriter<MemorySink>.encodeString(code, options: options, into: &bytes)
        }
        Listpack.appendLittleEndian(UInt64(RDBFormat.version), bytes: 2, to: &bytes)
        Listpack.appendLittleEndian(CRC64.checksum(bytes), bytes: 8, to: &bytes)
        return bytes
    }

    /// functionRestoreCommand's reading: the footer checks, then function records up to it.
    public func functionCodes(fromPayload payload: [UInt8]) -> FunctionPayloadDecoding {
        guard Self.footerIsValid(payload) else { return .wrongVersionOrChecksum }
        let end = payload.count - Self.footerBytes
        var reader = RDBReader(source: MemorySource(Array(payload[..<end])), name: "FUNCTION RESTORE payload")
        switch reader.readFunctionRecords(end: Int64(end)) {
        case .success(let codes): return .codes(codes)
        case .failure(let error): return .failure(error.message)
        }
    }

    /// verifyDumpPayload: at least a footer, a version Tally reads, and a matching CRC64.
    static func footerIsValid(_ payload: [UInt8]) -> Bool {
        guard payload.count >= footerBytes else { return false }
        let footer = payload.count - footerBytes
        let version = Int(payload[footer]) | Int(payload[footer + 1]) << 8
        guard version <= RDBFormat.version else { return false }
        var stored: UInt64 = 0
        for index in 0..<8 { stored |= UInt64(payload[footer + 2 + index]) << (8 * index) }
        return CRC64.checksum(payload[..<(footer + 2)]) == stored
    }

    /// verifyDumpPayload's checks (a version newer than Tally's, a checksum that differs),
    /// then the value through the file reader. Bytes between the value and the footer are
    /// ignored, as Redis ignores them.
    public func value(fromPayload payload: [UInt8]) -> DumpPayloadDecoding {
        guard payload.count >= Self.footerBytes else { return .wrongVersionOrChecksum }
        let footer = payload.count - Self.footerBytes
        let version = Int(payload[footer]) | Int(payload[footer + 1]) << 8
        guard version <= RDBFormat.version else { return .wrongVersionOrChecksum }
        var stored: UInt64 = 0
        for index in 0..<8 { stored |= UInt64(payload[footer + 2 + index]) << (8 * index) }
        guard CRC64.checksum(payload[..<(footer + 2)]) == stored else { return .wrongVersionOrChecksum }
        // The whole value is in memory: a reader chunk of its size, not the file reader's 1 MB,
        // which it zero-filled per RESTORE (~0.3 s in a debug build, so a MIGRATE to Tally with
        // Redis's usual 1 s timeout could time out on a few keys).
        var reader = RDBReader(source: MemorySource(Array(payload[..<footer])), name: "DUMP payload",
                               chunkBytes: max(64, footer))
        do {
            return .value(try reader.readDumpedValue())
        } catch {
            return .badFormat
        }
    }
}

/// The server's codec: the engine's current `rdbcompression` (CONFIG SET applies to DUMP too,
/// as in Redis, where both go through rdbSaveObject).
extension PersistenceEngine: DumpPayloadCodec {
    public func payload(of value: Value) -> [UInt8] { dumpCodec.payload(of: value) }

    public func value(fromPayload payload: [UInt8]) -> DumpPayloadDecoding {
        dumpCodec.value(fromPayload: payload)
    }

    public func functionsPayload(_ codes: [[UInt8]]) -> [UInt8] { dumpCodec.functionsPayload(codes) }

    public func functionCodes(fromPayload payload: [UInt8]) -> FunctionPayloadDecoding {
        dumpCodec.functionCodes(fromPayload: payload)
    }

    private var dumpCodec: RDBDumpPayloadCodec {
        RDBDumpPayloadCodec(options: settings.rdbOptions(nowMilliseconds: 0, usedMemoryBytes: 0, aofBase: false))
    }
}
