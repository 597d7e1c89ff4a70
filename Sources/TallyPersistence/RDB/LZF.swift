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
    private static let hashBits = 14

    /// Compresses `input`; returns nil if the result would exceed `limit` bytes (Redis keeps the
    /// string raw then). Greedy matching with a 3-byte hash table, like liblzf.
    public static func compress(_ input: UnsafeRawBufferPointer, limit: Int) -> [UInt8]? {
        let count = input.count
        guard count > 0, limit > 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, count) + 1)
        var table = [Int32](repeating: -1, count: 1 << hashBits)
        var literalStart = 0
        var literalLength = 0
        output.append(0)  // control byte of the first literal run, patched when the run closes
        var position = 0

        func hash(_ at: Int) -> Int {
            let value = (UInt32(input[at]) << 16) | (UInt32(input[at + 1]) << 8) | UInt32(input[at + 2])
            return Int(((value &* 2_654_435_761) >> UInt32(32 - hashBits)) & UInt32((1 << hashBits) - 1))
        }

        while position + 2 < count {
            let slot = hash(position)
            let candidate = Int(table[slot])
            table[slot] = Int32(position)
            if candidate >= 0, position - candidate <= maximumOffset,
               input[candidate] == input[position], input[candidate + 1] == input[position + 1],
               input[candidate + 2] == input[position + 2] {
                var length = 3
                let longest = min(maximumMatch, count - position)
                while length < longest && input[candidate + length] == input[position + length] { length += 1 }
                // Close the pending literal run (or drop its unused control byte).
                if literalLength == 0 { output.removeLast() } else { output[literalStart] = UInt8(literalLength - 1) }
                let offset = position - candidate - 1
                let encoded = length - 2
                if encoded < 7 {
                    output.append(UInt8(encoded << 5) | UInt8(offset >> 8))
                } else {
                    output.append(UInt8(7 << 5) | UInt8(offset >> 8))
                    output.append(UInt8(encoded - 7))
                }
                output.append(UInt8(offset & 0xff))
                // Index a couple of positions inside the match so later repeats are found.
                let end = position + length
                var inner = position + 1
                while inner < end && inner + 2 < count && inner < position + 3 {
                    table[hash(inner)] = Int32(inner)
                    inner += 1
                }
                position = end
                literalStart = output.count
                literalLength = 0
                output.append(0)
            } else {
                output.append(input[position])
                literalLength += 1
                position += 1
                if literalLength == maximumLiteral {
                    output[literalStart] = UInt8(maximumLiteral - 1)
                    literalStart = output.count
                    literalLength = 0
                    output.append(0)
                }
            }
            if output.count > limit + 1 { return nil }
        }
        while position < count {
            output.append(input[position])
            literalLength += 1
            position += 1
            if literalLength == maximumLiteral && position < count {
                output[literalStart] = UInt8(maximumLiteral - 1)
                literalStart = output.count
                literalLength = 0
                output.append(0)
            }
        }
        if literalLength == 0 { output.removeLast() } else { output[literalStart] = UInt8(literalLength - 1) }
        return output.count <= limit ? output : nil
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
        var output: [UInt8] = []
        output.reserveCapacity(expectedLength)
        var position = 0
        while position < input.count {
            let control = Int(input[position])
            let chunkStart = position
            position += 1
            if control < 32 {
                let length = control + 1
                guard position + length <= input.count else {
                    throw DecompressionError(offset: chunkStart, reason: "literal run past end of input")
                }
                guard output.count + length <= expectedLength else {
                    throw DecompressionError(offset: chunkStart, reason: "output longer than expected")
                }
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[position..<(position + length)]))
                position += length
            } else {
                var length = control >> 5
                if length == 7 {
                    guard position < input.count else {
                        throw DecompressionError(offset: chunkStart, reason: "reference past end of input")
                    }
                    length += Int(input[position])
                    position += 1
                }
                guard position < input.count else {
                    throw DecompressionError(offset: chunkStart, reason: "reference past end of input")
                }
                let back = ((control & 0x1f) << 8) + Int(input[position]) + 1
                position += 1
                length += 2
                guard back <= output.count else {
                    throw DecompressionError(offset: chunkStart, reason: "reference before start of output")
                }
                guard output.count + length <= expectedLength else {
                    throw DecompressionError(offset: chunkStart, reason: "output longer than expected")
                }
                // Byte by byte: a reference may overlap the bytes it produces (run-length style).
                var source = output.count - back
                for _ in 0..<length {
                    output.append(output[source])
                    source += 1
                }
            }
        }
        guard output.count == expectedLength else {
            throw DecompressionError(offset: input.count, reason: "output shorter than expected")
        }
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
