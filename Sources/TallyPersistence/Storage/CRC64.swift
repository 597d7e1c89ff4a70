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
    // because every byte of every snapshot passes through here.
    @usableFromInline static let tables: [[UInt64]] = {
        let reflected: UInt64 = 0x95ac_9329_ac4b_c9b5
        var first = [UInt64](repeating: 0, count: 256)
        for index in 0..<256 {
            var crc = UInt64(index)
            for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ reflected : crc >> 1 }
            first[index] = crc
        }
        var tables = [first]
        for level in 1..<8 {
            var next = [UInt64](repeating: 0, count: 256)
            for index in 0..<256 {
                let previous = tables[level - 1][index]
                next[index] = (previous >> 8) ^ first[Int(previous & 0xff)]
            }
            tables.append(next)
        }
        return tables
    }()

    /// Folds `bytes` into the checksum.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = value
        var index = 0
        let count = bytes.count
        CRC64.tables.withUnsafeBufferPointer { tables in
            let t0 = tables[0], t1 = tables[1], t2 = tables[2], t3 = tables[3]
            let t4 = tables[4], t5 = tables[5], t6 = tables[6], t7 = tables[7]
            while count - index >= 8 {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)) ^ crc
                crc = t7[Int(word & 0xff)] ^ t6[Int((word >> 8) & 0xff)]
                    ^ t5[Int((word >> 16) & 0xff)] ^ t4[Int((word >> 24) & 0xff)]
                    ^ t3[Int((word >> 32) & 0xff)] ^ t2[Int((word >> 40) & 0xff)]
                    ^ t1[Int((word >> 48) & 0xff)] ^ t0[Int(word >> 56)]
                index += 8
            }
            while index < count {
                crc = t0[Int((crc ^ UInt64(bytes[index])) & 0xff)] ^ (crc >> 8)
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
