// SHA1: the digest that names scripts (EVALSHA, SCRIPT LOAD/EXISTS, redis.sha1hex), as FIPS 180-4.

/// SHA-1 of `bytes` as 40 lowercase hexadecimal digits (Redis's `sha1hex`).
///
/// EVAL hashes its script on every call (as Redis's evalGenericCommand does), so this runs on the
/// command path: blocks are read straight from contiguous storage and the message schedule is a
/// 16-word ring on the stack (callgrind: about 1,100 instructions a block; the first version, with
/// arrays and an 80-word schedule, took 4,300).
public func sha1Hex<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
    if let digest = bytes.withContiguousStorageIfAvailable({ SHA1.hex(UnsafeRawBufferPointer($0)) }) {
        return digest
    }
    let copy = Array(bytes)
    return copy.withUnsafeBytes { SHA1.hex($0) }
}

enum SHA1 {
    typealias State = (UInt32, UInt32, UInt32, UInt32, UInt32)

    static func hex(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var state: State = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        let whole = message.count / 64
        for index in 0..<whole {
            compress(&state, UnsafeRawBufferPointer(rebasing: message[(index * 64)..<(index * 64 + 64)]))
        }
        // The tail, the 0x80 marker and the bit length: one block, or two if the tail is 56+ bytes.
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
            let remaining = message.count - whole * 64
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            if remaining > 0 {
                tail.copyMemory(from: UnsafeRawBufferPointer(rebasing: message[(whole * 64)...]))
            }
            tail[remaining] = 0x80
            let blocks = remaining >= 56 ? 2 : 1
            let bits = UInt64(message.count) &* 8
            for shift in 0..<8 {
                tail[blocks * 64 - 1 - shift] = UInt8(truncatingIfNeeded: bits >> UInt64(shift * 8))
            }
            for block in 0..<blocks {
                compress(&state, UnsafeRawBufferPointer(rebasing: tail[(block * 64)..<(block * 64 + 64)]))
            }
        }
        let digits: StaticString = "0123456789abcdef"
        return [UInt8](unsafeUninitializedCapacity: 40) { hex, count in
            func put(_ word: UInt32, at start: Int) {
                for nibble in 0..<8 {
                    hex[start + nibble] = digits.utf8Start[Int((word >> UInt32(28 - nibble * 4)) & 0xF)]
                }
            }
            put(state.0, at: 0)
            put(state.1, at: 8)
            put(state.2, at: 16)
            put(state.3, at: 24)
            put(state.4, at: 32)
            count = 40
        }
    }

    @inline(__always)
    private static func rotate(_ value: UInt32, _ count: UInt32) -> UInt32 { value << count | value >> (32 - count) }

    /// One 64-byte block into `state`.
    private static func compress(_ state: inout State, _ block: UnsafeRawBufferPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 16) { schedule in
            for index in 0..<16 {
                schedule[index] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
            }
            var (a, b, c, d, e) = state
            for index in 0..<80 {
                let word: UInt32
                if index < 16 {
                    word = schedule[index]
                } else {
                    // W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), kept in a ring of 16.
                    let mixed = schedule[(index - 3) & 15] ^ schedule[(index - 8) & 15]
                        ^ schedule[(index - 14) & 15] ^ schedule[index & 15]
                    word = rotate(mixed, 1)
                    schedule[index & 15] = word
                }
                let f: UInt32
                let k: UInt32
                if index < 20 {
                    f = (b & c) | (~b & d); k = 0x5A82_7999
                } else if index < 40 {
                    f = b ^ c ^ d; k = 0x6ED9_EBA1
                } else if index < 60 {
                    f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
                } else {
                    f = b ^ c ^ d; k = 0xCA62_C1D6
                }
                let next = rotate(a, 5) &+ f &+ e &+ k &+ word
                e = d
                d = c
                c = rotate(b, 30)
                b = a
                a = next
            }
            state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
        }
    }
}
