// HyperLogLog: Redis's HLL string format (HYLL header, sparse and dense registers), hash and estimator.
import Glibc

/// The representation Redis 7.0 stores in a string value, so values move between Tally and
/// redis-server in both directions (RDB, AOF, GET/SET) and PFCOUNT gives the same numbers.
///
/// ```
/// +------+-----+-----+------------+-------------------------------------------+
/// | HYLL | enc | 000 | card (8 B) |  registers: dense (12288 B) or sparse ops |
/// +------+-----+-----+------------+-------------------------------------------+
///   0..3    4   5..7    8..15      16...
/// ```
/// `enc` is 0 (dense) or 1 (sparse). `card` is the cached cardinality, little endian; its top
/// bit set means "stale". Dense: 16384 registers of 6 bits, register n at bit 6n, least
/// significant bits first. Sparse opcodes: `00xxxxxx` = xxxxxx+1 zero registers,
/// `01xxxxxx yyyyyyyy` = (x<<8|y)+1 zero registers, `1vvvvvxx` = xx+1 registers of value
/// vvvvv+1. A sparse value becomes dense once it would pass `hll-sparse-max-bytes` or hold a
/// register above 32. The estimator is Ertl's ("New cardinality estimation algorithms for
/// HyperLogLog sketches", 2017), with its sigma and tau series evaluated as Redis does.
enum HyperLogLog {
    static let headerBytes = 16
    static let precision = 14
    static let registerCount = 1 << precision
    /// Hash bits left after the register index; a pattern is at most q + 1 long.
    static let q = 64 - precision
    static let denseBytes = headerBytes + (registerCount * 6 + 7) / 8
    static let sparseValueMax = 32
    static let sparseValueRunMax = 4
    static let zeroRunMax = 64
    static let extendedZeroRunMax = 16384
    static let murmurSeed: UInt32 = 0xadc8_3b19
    /// Byte holding the stale flag (top bit of the cached cardinality).
    static let cacheFlagIndex = 15

    // MARK: Validation and creation

    /// Redis's `isHLLObjectOrReply` checks: long enough for the header, `HYLL`, a known
    /// encoding, and exactly the dense size when dense. (Sparse opcodes are checked as they
    /// are read: a malformed run is INVALIDOBJ then.)
    static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.count < headerBytes { return false }
        if bytes[0] != UInt8(ascii: "H") || bytes[1] != UInt8(ascii: "Y") || bytes[2] != UInt8(ascii: "L")
            || bytes[3] != UInt8(ascii: "L") { return false }
        if bytes[4] > 1 { return false }
        return bytes[4] == 1 || bytes.count == denseBytes
    }

    /// An empty sparse HLL: the header (cache valid, 0) and one XZERO run over every register.
    static func makeEmpty() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerBytes + 2)
        bytes[0] = UInt8(ascii: "H")
        bytes[1] = UInt8(ascii: "Y")
        bytes[2] = UInt8(ascii: "L")
        bytes[3] = UInt8(ascii: "L")
        bytes[4] = 1
        setExtendedZero(&bytes, headerBytes, registerCount)
        return bytes
    }

    static func isDense(_ bytes: UnsafeRawBufferPointer) -> Bool { bytes[4] == 0 }

    /// The cached cardinality, or nil when it is marked stale.
    static func cachedCardinality(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        if bytes[cacheFlagIndex] & 0x80 != 0 { return nil }
        var value: UInt64 = 0
        for index in stride(from: 15, through: 8, by: -1) { value = value << 8 | UInt64(bytes[index]) }
        return value
    }

    static func storeCardinality(_ bytes: inout [UInt8], _ value: UInt64) {
        for index in 0..<8 { bytes[8 + index] = UInt8(truncatingIfNeeded: value >> UInt64(8 * index)) }
    }

    static func invalidateCache(_ bytes: inout [UInt8]) { bytes[cacheFlagIndex] |= 0x80 }

    // MARK: Hashing

    /// MurmurHash2, 64-bit version (MurmurHash64A), reading blocks little endian as Redis does.
    static func murmurHash64A(_ key: UnsafeRawBufferPointer, seed: UInt32) -> UInt64 {
        let m: UInt64 = 0xc6a4_a793_5bd1_e995
        let r: UInt64 = 47
        let length = key.count
        var h = UInt64(seed) ^ (UInt64(length) &* m)
        let blockEnd = length - (length & 7)
        var offset = 0
        while offset < blockEnd {
            var k = UInt64(littleEndian: key.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            k = k &* m
            k ^= k >> r
            k = k &* m
            h ^= k
            h = h &* m
            offset += 8
        }
        let tail = length & 7
        if tail > 0 {
            for index in stride(from: tail - 1, through: 0, by: -1) {
                h ^= UInt64(key[blockEnd + index]) << UInt64(8 * index)
            }
            h = h &* m
        }
        h ^= h >> r
        h = h &* m
        h ^= h >> r
        return h
    }

    /// The register an element lands in and the length of its hash's "000...1" pattern
    /// (1...q+1): Redis's `hllPatLen`.
    static func patternLength(_ element: UnsafeRawBufferPointer) -> (register: Int, count: UInt8) {
        var hash = murmurHash64A(element, seed: murmurSeed)
        let register = Int(hash & UInt64(registerCount - 1))
        hash >>= UInt64(precision)
        hash |= 1 << UInt64(q)
        return (register, UInt8(hash.trailingZeroBitCount + 1))
    }

    // MARK: Dense registers

    /// Register `index` of a dense value. The last register's second byte lies past the
    /// string (Redis reads the terminating NUL there): it reads as 0.
    @inline(__always)
    static func denseRegister(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt8 {
        let bit = index * 6
        let byte = headerBytes + (bit >> 3)
        let shift = bit & 7
        let low = UInt16(bytes[byte]) >> UInt16(shift)
        let high = byte + 1 < bytes.count ? UInt16(bytes[byte + 1]) << UInt16(8 - shift) : 0
        return UInt8(truncatingIfNeeded: (low | high) & 63)
    }

    /// Sets register `index` of a dense array with one uniqueness check for both of its bytes
    /// (each subscript store checks).
    static func setDenseRegister(_ bytes: inout [UInt8], _ index: Int, _ value: UInt8) {
        bytes.withUnsafeMutableBytes { setDenseRegister($0, index, value) }
    }

    @inline(__always)
    static func setDenseRegister(_ bytes: UnsafeMutableRawBufferPointer, _ index: Int, _ value: UInt8) {
        let bit = index * 6
        let byte = headerBytes + (bit >> 3)
        let shift = bit & 7
        let wide = UInt16(value) << UInt16(shift)
        bytes[byte] = bytes[byte] & ~UInt8(truncatingIfNeeded: 63 << shift) | UInt8(truncatingIfNeeded: wide)
        if shift > 2 {
            bytes[byte + 1] = bytes[byte + 1] & ~UInt8(truncatingIfNeeded: 63 >> (8 - shift))
                | UInt8(truncatingIfNeeded: wide >> 8)
        }
    }

    /// Raises register `index` to `count` if it is lower; true when it changed.
    static func denseSet(_ bytes: inout [UInt8], _ index: Int, _ count: UInt8) -> Bool {
        let old = bytes.withUnsafeBytes { denseRegister($0, index) }
        if count <= old { return false }
        setDenseRegister(&bytes, index, count)
        return true
    }

    // MARK: Sparse opcodes

    @inline(__always) static func isZero(_ op: UInt8) -> Bool { op & 0xc0 == 0 }
    @inline(__always) static func isExtendedZero(_ op: UInt8) -> Bool { op & 0xc0 == 0x40 }
    @inline(__always) static func isValue(_ op: UInt8) -> Bool { op & 0x80 != 0 }
    @inline(__always) static func zeroLength(_ op: UInt8) -> Int { Int(op & 0x3f) + 1 }
    @inline(__always) static func valueOf(_ op: UInt8) -> Int { Int((op >> 2) & 0x1f) + 1 }
    @inline(__always) static func valueLength(_ op: UInt8) -> Int { Int(op & 0x3) + 1 }
    @inline(__always) static func valueOpcode(_ value: Int, _ length: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (value - 1) << 2 | (length - 1)) | 0x80
    }

    /// XZERO's run length; its second byte past the end reads as 0, as Redis's NUL does.
    @inline(__always)
    static func extendedZeroLength(_ bytes: UnsafeRawBufferPointer, _ position: Int) -> Int {
        let low = position + 1 < bytes.count ? Int(bytes[position + 1]) : 0
        return (Int(bytes[position] & 0x3f) << 8 | low) + 1
    }

    static func setExtendedZero(_ bytes: inout [UInt8], _ position: Int, _ length: Int) {
        bytes[position] = UInt8(truncatingIfNeeded: (length - 1) >> 8) | 0x40
        bytes[position + 1] = UInt8(truncatingIfNeeded: length - 1)
    }

    /// Calls `body(firstRegister, runLength, value)` for each opcode of a sparse value until it
    /// returns false; returns the number of registers covered, or nil when a value run would
    /// pass the last register (Redis stops there and reports corruption).
    static func forEachRun(_ bytes: UnsafeRawBufferPointer, _ body: (Int, Int, Int) -> Void) -> Int? {
        var position = headerBytes
        var register = 0
        while position < bytes.count {
            let op = bytes[position]
            if isZero(op) {
                let length = zeroLength(op)
                body(register, length, 0)
                register += length
                position += 1
            } else if isExtendedZero(op) {
                let length = extendedZeroLength(bytes, position)
                body(register, length, 0)
                register += length
                position += 2
            } else {
                let length = valueLength(op)
                if register + length > registerCount { return nil }
                body(register, length, valueOf(op))
                register += length
                position += 1
            }
        }
        return register
    }

    /// Rewrites a sparse value as dense (header kept, encoding 0); false, leaving it as it
    /// was, when the opcodes do not cover exactly 16384 registers.
    static func sparseToDense(_ bytes: inout [UInt8]) -> Bool {
        if bytes[4] == 0 { return true }
        var dense = [UInt8](repeating: 0, count: denseBytes)
        for index in 0..<headerBytes { dense[index] = bytes[index] }
        dense[4] = 0
        let covered = bytes.withUnsafeBytes { sparse in
            forEachRun(sparse) { first, length, value in
                if value == 0 { return }
                for register in first..<(first + length) { setDenseRegister(&dense, register, UInt8(value)) }
            }
        }
        if covered != registerCount { return false }
        bytes = dense
        return true
    }

    /// Raises register `index` of a sparse value to `count` (Redis's `hllSparseSet`): splits
    /// the run holding it into at most five opcodes, merges equal neighbouring value runs,
    /// and turns the value dense when a register would pass 32 or the string would grow past
    /// `sparseMaxBytes`. Returns 1 when changed, 0 when not, -1 for a corrupt value.
    static func sparseSet(_ bytes: inout [UInt8], _ index: Int, _ count: UInt8, sparseMaxBytes: Int) -> Int {
        if Int(count) > sparseValueMax { return promote(&bytes, index, count) }
        var position = headerBytes
        var first = 0
        var previous: Int?
        var span = 0
        var opLength = 1
        while position < bytes.count {
            let op = bytes[position]
            opLength = 1
            if isZero(op) {
                span = zeroLength(op)
            } else if isValue(op) {
                span = valueLength(op)
            } else {
                span = bytes.withUnsafeBytes { extendedZeroLength($0, position) }
                opLength = 2
            }
            if index <= first + span - 1 { break }
            previous = position
            position += opLength
            first += span
        }
        if span == 0 || position >= bytes.count { return -1 }
        let op = bytes[position]
        let runLength = isZero(op) ? zeroLength(op) : (isValue(op) ? valueLength(op) : span)
        if isValue(op) {
            if valueOf(op) >= Int(count) { return 0 }
            if runLength == 1 {
                bytes[position] = valueOpcode(Int(count), 1)
                mergeValueRuns(&bytes, from: previous ?? headerBytes)
                return 1
            }
        }
        if isZero(op) && runLength == 1 {
            bytes[position] = valueOpcode(Int(count), 1)
            mergeValueRuns(&bytes, from: previous ?? headerBytes)
            return 1
        }
        // The replacement: [run before] value [run after], packed into a word (≤ 5 bytes).
        var sequence: UInt64 = 0
        var sequenceLength = 0
        func emit(_ byte: UInt8) {
            sequence |= UInt64(byte) << UInt64(8 * sequenceLength)
            sequenceLength += 1
        }
        func emitZeros(_ length: Int) {
            if length > zeroRunMax {
                emit(UInt8(truncatingIfNeeded: (length - 1) >> 8) | 0x40)
                emit(UInt8(truncatingIfNeeded: length - 1))
            } else {
                emit(UInt8(truncatingIfNeeded: length - 1))
            }
        }
        let last = first + span - 1
        if !isValue(op) {
            if index != first { emitZeros(index - first) }
            emit(valueOpcode(Int(count), 1))
            if index != last { emitZeros(last - index) }
        } else {
            let current = valueOf(op)
            if index != first { emit(valueOpcode(current, index - first)) }
            emit(valueOpcode(Int(count), 1))
            if index != last { emit(valueOpcode(current, last - index)) }
        }
        let delta = sequenceLength - opLength
        if delta > 0 && bytes.count + delta > sparseMaxBytes { return promote(&bytes, index, count) }
        if delta > 0 {
            bytes.insert(contentsOf: repeatElement(0, count: delta), at: position + opLength)
        } else if delta < 0 {
            bytes.removeSubrange((position + sequenceLength)..<(position + opLength))
        }
        for offset in 0..<sequenceLength {
            bytes[position + offset] = UInt8(truncatingIfNeeded: sequence >> UInt64(8 * offset))
        }
        mergeValueRuns(&bytes, from: previous ?? headerBytes)
        return 1
    }

    /// Joins adjacent value runs of equal value (up to 4 registers) among the five opcodes
    /// from `start`, and marks the cached cardinality stale.
    static func mergeValueRuns(_ bytes: inout [UInt8], from start: Int) {
        var position = start
        var scans = 5
        while position < bytes.count && scans > 0 {
            scans -= 1
            let op = bytes[position]
            if isExtendedZero(op) {
                position += 2
                continue
            }
            if isZero(op) {
                position += 1
                continue
            }
            if position + 1 < bytes.count && isValue(bytes[position + 1]) {
                let next = bytes[position + 1]
                let length = valueLength(op) + valueLength(next)
                if valueOf(op) == valueOf(next) && length <= sparseValueRunMax {
                    bytes[position + 1] = valueOpcode(valueOf(op), length)
                    bytes.remove(at: position)
                    continue
                }
            }
            position += 1
        }
        invalidateCache(&bytes)
    }

    /// Converts to dense and sets the register there (-1 when the sparse value is corrupt).
    static func promote(_ bytes: inout [UInt8], _ index: Int, _ count: UInt8) -> Int {
        if !sparseToDense(&bytes) { return -1 }
        return denseSet(&bytes, index, count) ? 1 : 0
    }

    /// Adds one element (Redis's `hllAdd`): 1 when a register changed, 0 when not, -1 when
    /// the value is corrupt.
    static func add(_ bytes: inout [UInt8], _ element: UnsafeRawBufferPointer, sparseMaxBytes: Int) -> Int {
        let (register, count) = patternLength(element)
        if bytes[4] == 0 { return denseSet(&bytes, register, count) ? 1 : 0 }
        return sparseSet(&bytes, register, count, sparseMaxBytes: sparseMaxBytes)
    }

    // MARK: Merging and counting

    /// Raises each of `maximum`'s 16384 registers to this value's (Redis's `hllMerge`);
    /// false when a sparse value is corrupt.
    static func merge(_ bytes: UnsafeRawBufferPointer, into maximum: UnsafeMutableBufferPointer<UInt8>) -> Bool {
        if isDense(bytes) {
            for register in 0..<registerCount {
                let value = denseRegister(bytes, register)
                if value > maximum[register] { maximum[register] = value }
            }
            return true
        }
        let covered = forEachRun(bytes) { first, length, value in
            if value == 0 { return }
            for register in first..<(first + length) where UInt8(value) > maximum[register] {
                maximum[register] = UInt8(value)
            }
        }
        return covered == registerCount
    }

    /// The cardinality estimate of a valid value, or nil when a sparse value does not cover
    /// exactly 16384 registers.
    static func count(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 64) { histogram -> UInt64? in
            histogram.initialize(repeating: 0)
            if isDense(bytes) {
                for register in 0..<registerCount { histogram[Int(denseRegister(bytes, register))] += 1 }
            } else {
                let covered = forEachRun(bytes) { _, length, value in histogram[value] += length }
                // Redis counts what it could read before deciding (a value run past the end
                // stops the walk), then reports the value as corrupt.
                if covered != registerCount { return nil }
            }
            return estimate(UnsafeBufferPointer(histogram))
        }
    }

    /// The estimate over raw registers (one byte each), as PFCOUNT of several keys uses.
    static func count(registers: UnsafeBufferPointer<UInt8>) -> UInt64 {
        withUnsafeTemporaryAllocation(of: Int.self, capacity: 64) { histogram -> UInt64 in
            histogram.initialize(repeating: 0)
            for value in registers { histogram[Int(value)] += 1 }
            return estimate(UnsafeBufferPointer(histogram))
        }
    }

    /// Ertl's improved raw estimator over a histogram of register values, in the same
    /// floating-point order as Redis's `hllCount` so the rounded result is identical.
    static func estimate(_ histogram: UnsafeBufferPointer<Int>) -> UInt64 {
        let m = Double(registerCount)
        var z = m * tau((m - Double(histogram[q + 1])) / m)
        for index in stride(from: q, through: 1, by: -1) {
            z += Double(histogram[index])
            z *= 0.5
        }
        z += m * sigma(Double(histogram[0]) / m)
        let alphaInfinity = 0.721347520444481703680
        return UInt64((alphaInfinity * m * m / z).rounded(.toNearestOrAwayFromZero))
    }

    static func sigma(_ value: Double) -> Double {
        if value == 1 { return .infinity }
        var x = value
        var y = 1.0
        var z = x
        var previous: Double
        repeat {
            x *= x
            previous = z
            z += x * y
            y += y
        } while previous != z
        return z
    }

    static func tau(_ value: Double) -> Double {
        if value == 0 || value == 1 { return 0 }
        var x = value
        var y = 1.0
        var z = 1 - x
        var previous: Double
        repeat {
            x = sqrt(x)
            previous = z
            y *= 0.5
            z -= pow(1 - x, 2) * y
        } while previous != z
        return z / 3
    }
}
