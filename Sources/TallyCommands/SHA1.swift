// SHA1: the digest that names scripts (EVALSHA, SCRIPT LOAD/EXISTS, redis.sha1hex), as FIPS 180-4.

/// SHA-1 of `bytes` as 40 lowercase hexadecimal digits (Redis's `sha1hex`).
///
/// Scripts are hashed once when first seen, so this favours plain code over speed: one pass over
/// 64-byte blocks with the padding built in a small tail buffer, no Foundation.
public func sha1Hex<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
    var state: (UInt32, UInt32, UInt32, UInt32, UInt32) =
        (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
    var block = [UInt8]()
    block.reserveCapacity(64)
    var words = [UInt32](repeating: 0, count: 80)
    func compress(_ block: [UInt8]) {
        for index in 0..<16 {
            words[index] = UInt32(block[index * 4]) << 24 | UInt32(block[index * 4 + 1]) << 16
                | UInt32(block[index * 4 + 2]) << 8 | UInt32(block[index * 4 + 3])
        }
        for index in 16..<80 {
            let mixed = words[index - 3] ^ words[index - 8] ^ words[index - 14] ^ words[index - 16]
            words[index] = mixed << 1 | mixed >> 31
        }
        var (a, b, c, d, e) = state
        for index in 0..<80 {
            let f: UInt32
            let k: UInt32
            switch index {
            case 0..<20: f = (b & c) | (~b & d); k = 0x5A82_7999
            case 20..<40: f = b ^ c ^ d; k = 0x6ED9_EBA1
            case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1B_BCDC
            default: f = b ^ c ^ d; k = 0xCA62_C1D6
            }
            let temporary = (a << 5 | a >> 27) &+ f &+ e &+ k &+ words[index]
            e = d
            d = c
            c = b << 30 | b >> 2
            b = a
            a = temporary
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e)
    }
    var length: UInt64 = 0
    for byte in bytes {
        block.append(byte)
        length += 1
        if block.count == 64 {
            compress(block)
            block.removeAll(keepingCapacity: true)
        }
    }
    block.append(0x80)
    if block.count > 56 {
        while block.count < 64 { block.append(0) }
        compress(block)
        block.removeAll(keepingCapacity: true)
    }
    while block.count < 56 { block.append(0) }
    let bits = length &* 8
    for shift in stride(from: 56, through: 0, by: -8) { block.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    compress(block)
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var hex = [UInt8]()
    hex.reserveCapacity(40)
    for word in [state.0, state.1, state.2, state.3, state.4] {
        for shift in stride(from: 28, through: 0, by: -4) {
            hex.append(digits[Int((word >> UInt32(shift)) & 0xF)])
        }
    }
    return hex
}
