// LZF: the liblzf compression format Redis uses for RDB strings, written from the format's description.

/// LZF compression and decompression (liblzf's format, as used by `rdbcompression`).
///
/// The stream is a sequence of chunks, each starting with a control byte:
///
///     000LLLLL                     literal run: L+1 bytes (1...32) follow verbatim
///     LLLooooo oooooooo            back-reference, L in 1...6: copy L+2 bytes from
///                                  `offset + 1` bytes behind the output end
///     111ooooo LLLLLLLL oooooooo   back-reference with length 7 + next byte (+2)
///
/// Offsets reach at most 8192 bytes back; matches are at most 264 bytes.
public enum LZF {
    /// Farthest back a reference can reach (13-bit offset + 1).
    static let maximumOffset = 1 << 13
    /// Longest match one reference encodes: (7 + 255) + 2.
    static let maximumMatch = 264
    /// Longest literal run.
    static let maximumLiteral = 32

    /// Compresses `input` exactly as liblzf 3.6 does in the configuration Redis builds it with
    /// (lzfP.h: HLOG 16, VERY_FAST, pointers into a fresh table), so that `DUMP` payloads and RDB
    /// strings equal redis-server's byte for byte. Returns nil where `lzf_compress` returns 0:
    /// the output would not fit in `limit` bytes (Redis then stores the string raw; its limit is
    /// the length minus 4, rdb.c rdbSaveLzfStringObject).
    ///
    /// The facts that make the output what it is: each 3-byte position is hashed into a 16-bit
    /// slot, `((h >> 8) - 5h) mod 2^16` of the 24-bit big-endian value; the slot remembers the last
    /// position that hashed to it; a candidate is used only if it lies 1...8192 bytes behind and
    /// is not the input's first byte, and its three bytes match; a match never runs into the
    /// last two input bytes (except that a long-match probe may read up to 19 bytes); after a
    /// match only its last two positions are hashed; a failed fit check ends the attempt.
    public static func compress(_ input: UnsafeRawBufferPointer, limit: Int) -> [UInt8]? {
        let count = input.count
        guard count > 0, limit > 0 else { return nil }
        // The table maps each 16-bit slot to the last position hashed there. liblzf keeps all
        // 65,536 slots; a short input touches at most `count` of them, so a small open-addressed
        // map of (slot, position) pairs gives the same answers without clearing 512 KB per call.
        var tableSize = 16
        while tableSize < 2 * count && tableSize < 1 << 16 { tableSize <<= 1 }
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: tableSize) { table in
            table.initialize(repeating: emptySlot)
            var slots = SlotTable(entries: table, mask: tableSize - 1)
            var output = [UInt8](repeating: 0, count: limit + 1)
            let length = output.withUnsafeMutableBufferPointer { out in
                compress(input, into: out.baseAddress!, limit: limit, slots: &slots)
            }
            guard let length else { return nil }
            output.removeLast(output.count - length)
            return output
        }
    }

    private static let emptySlot = UInt64.max

    /// Last position per hash slot, open-addressed by slot (identity when it has all 2^16 entries).
    private struct SlotTable {
        let entries: UnsafeMutableBufferPointer<UInt64>
        let mask: Int

        /// Records `position` for `slot` and returns the position recorded before (-1 if none).
        @inline(__always)
        mutating func exchange(_ slot: Int, _ position: Int) -> Int {
            var index = slot & mask
            while true {
                let entry = entries[index]
                if entry == LZF.emptySlot || Int(entry >> 32) == slot {
                    entries[index] = UInt64(slot) << 32 | UInt64(position)
                    return entry == LZF.emptySlot ? -1 : Int(entry & 0xFFFF_FFFF)
                }
                index = (index + 1) & mask
            }
        }
    }

    /// liblzf's hash slot of the three bytes whose big-endian value is in the low 24 bits of `h`.
    @inline(__always)
    private static func slot(_ h: UInt32) -> Int {
        Int(((h >> 8) &- h &* 5) & 0xFFFF)
    }

    /// The compression loop over `out` (`limit + 1` bytes); returns the length, or nil.
    private static func compress(_ input: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>,
                                 limit: Int, slots: inout SlotTable) -> Int? {
        let count = input.count
        var position = 0
        // `op` is where the next byte goes; the byte before the pending literal run is its
        // control byte, reserved when the run starts and patched (or dropped) when it ends.
        var op = 1
        var literals = 0
        var hash: UInt32 = count >= 2 ? UInt32(input[0]) << 8 | UInt32(input[1]) : 0
        while position < count - 2 {
            hash = hash << 8 | UInt32(input[position + 2])
            let candidate = slots.exchange(slot(hash), position)
            if candidate > 0, candidate < position, position - candidate - 1 < maximumOffset,
               input[candidate + 2] == input[position + 2], input[candidate] == input[position],
               input[candidate + 1] == input[position + 1] {
                let offset = position - candidate - 1
                let maximumLength = min(count - position - 2, maximumMatch)
                // lzf_compress's two fit checks: a conservative one, then the exact one.
                if op + 4 >= limit && op - (literals == 0 ? 1 : 0) + 4 >= limit { return nil }
                out[op - literals - 1] = UInt8(truncatingIfNeeded: literals - 1)
                if literals == 0 { op -= 1 }
                var length = 2
                extend: do {
                    // With room for more than 16 bytes, 16 are probed before the bound is checked.
                    if maximumLength > 16 {
                        for _ in 0..<16 {
                            length += 1
                            if input[candidate + length] != input[position + length] { break extend }
                        }
                    }
                    repeat { length += 1 } while length < maximumLength
                        && input[candidate + length] == input[position + length]
                }
                let encoded = length - 2
                if encoded < 7 {
                    out[op] = UInt8(truncatingIfNeeded: (offset >> 8) + (encoded << 5))
                    op += 1
                } else {
                    out[op] = UInt8(truncatingIfNeeded: (offset >> 8) + (7 << 5))
                    out[op + 1] = UInt8(truncatingIfNeeded: encoded - 7)
                    op += 2
                }
                out[op] = UInt8(truncatingIfNeeded: offset)
                op += 2  // the offset's low byte, then the next run's control byte
                literals = 0
                position += length
                if position >= count - 2 { break }
                // Hash the match's last two positions (VERY_FAST), then go on after it.
                position -= 2
                hash = UInt32(input[position]) << 8 | UInt32(input[position + 1])
                for _ in 0..<2 {
                    hash = hash << 8 | UInt32(input[position + 2])
                    _ = slots.exchange(slot(hash), position)
                    position += 1
                }
            } else {
                if op >= limit { return nil }
                out[op] = input[position]
                op += 1
                position += 1
                literals += 1
                if literals == maximumLiteral {
                    out[op - literals - 1] = UInt8(maximumLiteral - 1)
                    literals = 0
                    op += 1
                }
            }
        }
        if op + 3 > limit { return nil }
        while position < count {
            out[op] = input[position]
            op += 1
            position += 1
            literals += 1
            if literals == maximumLiteral {
                out[op - literals - 1] = UInt8(maximumLiteral - 1)
                literals = 0
                op += 1
            }
        }
        out[op - literals - 1] = UInt8(truncatingIfNeeded: literals - 1)
        if literals == 0 { op -= 1 }
        return op
    }

    /// Compresses an array; nil if it would not fit in `limit` bytes.
    public static func compress(_ input: [UInt8], limit: Int) -> [UInt8]? {
        input.withUnsafeBytes { compress($0, limit: limit) }
    }

    /// Failure to decompress: the data is not valid LZF for the stated length.
    public struct DecompressionError: Error, Sendable, Equatable {
        /// Offset in the compressed input where the problem was found.
        public let offset: Int
        /// What was wrong.
        public let reason: String
    }

    /// Decompresses `input`, which must expand to exactly `expectedLength` bytes.
    public static func decompress(_ input: UnsafeRawBufferPointer, expectedLength: Int)
        throws(DecompressionError) -> [UInt8]
    {
        var failure: DecompressionError?
        // Written in place into the final array; every chunk is bounds-checked against both
        // buffers before it is copied, so corrupt input fails instead of overrunning.
        let output = [UInt8](unsafeUninitializedCapacity: expectedLength) { buffer, initialized in
            var written = 0
            var position = 0
            func fail(_ offset: Int, _ reason: String) { failure = DecompressionError(offset: offset, reason: reason) }
            while position < input.count {
                let control = Int(input[position])
                let chunkStart = position
                position += 1
                if control < 32 {
                    let length = control + 1
                    guard position + length <= input.count else {
                        return fail(chunkStart, "literal run past end of input")
                    }
                    guard written + length <= expectedLength else {
                        return fail(chunkStart, "output longer than expected")
                    }
                    for index in 0..<length { buffer[written + index] = input[position + index] }
                    written += length
                    position += length
                } else {
                    var length = control >> 5
                    if length == 7 {
                        guard position < input.count else { return fail(chunkStart, "reference past end of input") }
                        length += Int(input[position])
                        position += 1
                    }
                    guard position < input.count else { return fail(chunkStart, "reference past end of input") }
                    let back = ((control & 0x1f) << 8) + Int(input[position]) + 1
                    position += 1
                    length += 2
                    guard back <= written else { return fail(chunkStart, "reference before start of output") }
                    guard written + length <= expectedLength else {
                        return fail(chunkStart, "output longer than expected")
                    }
                    // Forward, byte by byte: a reference may overlap the bytes it produces
                    // (run-length style), each copy reading what the previous one wrote.
                    var source = written - back
                    for _ in 0..<length {
                        buffer[written] = buffer[source]
                        written += 1
                        source += 1
                    }
                }
                initialized = written
            }
            initialized = written
            if written != expectedLength { fail(input.count, "output shorter than expected") }
        }
        if let failure { throw failure }
        return output
    }

    /// Decompresses an array.
    public static func decompress(_ input: [UInt8], expectedLength: Int) throws(DecompressionError) -> [UInt8] {
        let result: Result<[UInt8], DecompressionError> = input.withUnsafeBytes { raw in
            do throws(DecompressionError) {
                return .success(try decompress(raw, expectedLength: expectedLength))
            } catch { return .failure(error) }
        }
        return try result.get()
    }
}
