// CRC64: Redis's RDB checksum (Jones polynomial, reflected, init 0, no final xor), table-driven.

/// The CRC-64 variant Redis uses for RDB trailers: reflected polynomial 0xad93d23594c935a9,
/// initial value 0, no final xor. `CRC64.checksum(Array("123456789".utf8)) == 0xe9c6d914c4b8d9ca`.
public struct CRC64: Sendable {
    /// The running checksum value.
    public private(set) var value: UInt64

    /// Starts a checksum at `seed` (Redis always starts at 0).
    public init(seed: UInt64 = 0) { value = seed }

    // Byte-at-a-time table for the reflected polynomial (bit-reversal of 0xad93d23594c935a9).
    // Eight tables (slicing-by-8) let the update loop consume a whole word per step, which matters
    // because every byte of every snapshot and every checksummed AOF record passes through here.
    // They are one flat array of 8 x 256 entries (table k at k * 256), read through a pointer: as
    // eight nested arrays, each lookup paid a bounds check.
    @usableFromInline static let tables: [UInt64] = {
        let reflected: UInt64 = 0x95ac_9329_ac4b_c9b5
        var tables = [UInt64](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt64(index)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ reflected : crc >> 1 }
            tables[index] = crc
        }
        for level in 1..<8 {
            for index in 0..<256 {
                let previous = tables[(level - 1) * 256 + index]
                tables[level * 256 + index] = (previous >> 8) ^ tables[Int(previous & 0xff)]
            }
        }
        return tables
    }()

    /// Folds `bytes` into the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = value
        var index = 0
        let count = bytes.count
        CRC64.tables.withUnsafeBufferPointer { tables in
            let t = tables.baseAddress!
            while count - index >= 8 {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) ^ crc
                crc = t[7 * 256 + Int(word & 0xff)] ^ t[6 * 256 + Int((word >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xff)] ^ t[4 * 256 + Int((word >> 24) & 0xff)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xff)] ^ t[2 * 256 + Int((word >> 40) & 0xff)]
                    ^ t[256 + Int((word >> 48) & 0xff)] ^ t[Int(word >> 56)]
                index += 8
            }
            while index < count {
                crc = t[Int((crc ^ UInt64(bytes[index])) & 0xff)] ^ (crc >> 8)
                index += 1
            }
        }
        value = crc
    }

    /// The checksum of `bytes` from seed 0.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var crc = CRC64()
        let contiguous = Array(bytes)
        contiguous.withUnsafeBytes { crc.update($0) }
        return crc.value
    }
}
