// Listpack and ziplist: the compact blobs Redis stores small hashes as (RDB types 16 and 13).
import TallyKeyspace
import TallyProtocol

/// Encodes and decodes Redis listpacks (the 7.0 small-hash encoding, RDB type 16).
///
/// Layout: `<total bytes u32 LE> <count u16 LE> <entry>... <0xFF>`; each entry is an encoding
/// byte (with inline small ints or string lengths), the data, and a "backlen": the entry's
/// encoded size written so it can be parsed right to left (7 bits per byte, high bit = more).
public enum Listpack {
    /// Appends one element; canonical integers (string2ll) use the integer encodings as Redis does.
    static func appendElement(_ element: [UInt8], to blob: inout [UInt8]) {
        ListpackEntry.append(element, to: &blob)
    }

    static func appendLittleEndian(_ value: UInt64, bytes: Int, to blob: inout [UInt8]) {
        for index in 0..<bytes { blob.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
    }

    /// The backlen: leftmost byte holds the most significant 7 bits; every byte but the
    /// leftmost has its high bit set, so a reader walking backwards knows when to stop.
    static func appendBacklen(_ length: Int, to blob: inout [UInt8]) {
        var groups: [UInt8] = []
        var remaining = length
        repeat {
            groups.append(UInt8(remaining & 127))
            remaining >>= 7
        } while remaining > 0
        for index in stride(from: groups.count - 1, through: 0, by: -1) {
            blob.append(index == groups.count - 1 ? groups[index] : groups[index] | 128)
        }
    }

    /// A listpack holding `elements` in order.
    public static func encode(_ elements: [[UInt8]]) -> [UInt8] {
        var blob: [UInt8] = [0, 0, 0, 0, 0, 0]
        for element in elements { appendElement(element, to: &blob) }
        blob.append(0xFF)
        let total = UInt32(blob.count)
        for index in 0..<4 { blob[index] = UInt8(truncatingIfNeeded: total >> (8 * UInt32(index))) }
        // Counts of 65535 and more are stored as 65535 ("unknown": readers walk the entries).
        let count = UInt16(min(elements.count, 65535))
        blob[4] = UInt8(count & 0xff)
        blob[5] = UInt8(count >> 8)
        return blob
    }

    /// A listpack blob around already encoded `entries` (header, entries, terminator).
    public static func wrap<C: Collection>(entries: C, count: Int) -> [UInt8] where C.Element == UInt8 {
        var blob: [UInt8] = []
        blob.reserveCapacity(entries.count + 7)
        appendLittleEndian(UInt64(entries.count + 7), bytes: 4, to: &blob)
        appendLittleEndian(UInt64(min(count, 65535)), bytes: 2, to: &blob)
        blob.append(contentsOf: entries)
        blob.append(0xFF)
        return blob
    }

    /// A structural problem in a blob, at a byte offset inside it.
    public struct FormatError: Error, Sendable, Equatable {
        /// Offset inside the blob.
        public let offset: Int
        /// What was wrong.
        public let reason: String
    }

    /// One entry of a listpack, as `walk` reports it.
    enum Item {
        /// An integer encoding.
        case integer(Int64)
        /// A string encoding: where its bytes are in the blob.
        case bytes(Range<Int>)
    }

    /// The elements of a listpack, validating sizes, backlens and the terminator.
    public static func decode(_ blob: [UInt8]) throws(FormatError) -> [[UInt8]] {
        var elements: [[UInt8]] = []
        try walk(blob) { item in
            switch item {
            case .integer(let value): elements.append(decimalBytes(value))
            case .bytes(let range): elements.append(Array(blob[range]))
            }
        }
        return elements
    }

    /// Validates a listpack as `decode` does without building its elements; returns how many
    /// it holds (RDB loading adopts a valid node's entries as they are, as rdb.c does).
    public static func validatedCount(_ blob: [UInt8]) throws(FormatError) -> Int {
        try walk(blob) { _ in }
    }

    /// Visits each entry of `blob` in order, checking every size, backlen, the terminator and
    /// the declared count; returns the number of entries.
    @discardableResult
    static func walk(_ blob: [UInt8], _ visit: (Item) -> Void) throws(FormatError) -> Int {
        guard blob.count >= 7 else { throw FormatError(offset: 0, reason: "listpack shorter than its header") }
        let total = Int(readLittleEndian(blob, 0, 4))
        guard total == blob.count else { throw FormatError(offset: 0, reason: "listpack size header mismatch") }
        let declared = Int(readLittleEndian(blob, 4, 2))
        var entries = 0
        var position = 6
        while true {
            guard position < blob.count else { throw FormatError(offset: position, reason: "listpack missing end") }
            let first = blob[position]
            if first == 0xFF { break }
            let start = position
            func need(_ count: Int) throws(FormatError) {
                guard position + count <= blob.count - 1 else {
                    throw FormatError(offset: start, reason: "listpack entry past end")
                }
            }
            if first & 0x80 == 0 {
                visit(.integer(Int64(first)))
                position += 1
            } else if first & 0xC0 == 0x80 {
                let length = Int(first & 0x3f)
                try need(1 + length)
                visit(.bytes((position + 1)..<(position + 1 + length)))
                position += 1 + length
            } else if first & 0xE0 == 0xC0 {
                try need(2)
                var value = (Int64(first & 0x1f) << 8) | Int64(blob[position + 1])
                if value >= 4096 { value -= 8192 }
                visit(.integer(value))
                position += 2
            } else if first & 0xF0 == 0xE0 {
                try need(2)
                let length = (Int(first & 0x0f) << 8) | Int(blob[position + 1])
                try need(2 + length)
                visit(.bytes((position + 2)..<(position + 2 + length)))
                position += 2 + length
            } else {
                let width: Int
                switch first {
                case 0xF1: width = 2
                case 0xF2: width = 3
                case 0xF3: width = 4
                case 0xF4: width = 8
                case 0xF0:
                    try need(5)
                    let length = Int(readLittleEndian(blob, position + 1, 4))
                    try need(5 + length)
                    visit(.bytes((position + 5)..<(position + 5 + length)))
                    position += 5 + length
                    width = 0
                default:
                    throw FormatError(offset: start, reason: "listpack unknown encoding \(first)")
                }
                if width > 0 {
                    try need(1 + width)
                    let raw = readLittleEndian(blob, position + 1, width)
                    let shift = UInt64(64 - 8 * width)
                    visit(.integer(Int64(bitPattern: raw << shift) >> Int64(shift)))
                    position += 1 + width
                }
            }
            // The backlen must encode the entry's size (appendBacklen's form: 7-bit groups, the
            // most significant first and the only one without the continuation bit).
            let size = position - start
            var groups = 1
            while size >> (7 * groups) > 0 { groups += 1 }
            guard position + groups <= blob.count - 1 else {
                throw FormatError(offset: position, reason: "listpack bad backlen")
            }
            for index in 0..<groups {
                let group = UInt8((size >> (7 * (groups - 1 - index))) & 127)
                guard blob[position + index] == (index == 0 ? group : group | 128) else {
                    throw FormatError(offset: position, reason: "listpack bad backlen")
                }
            }
            position += groups
            entries += 1
        }
        guard position == blob.count - 1 else { throw FormatError(offset: position, reason: "listpack trailing bytes") }
        if declared != 65535 && declared != entries {
            throw FormatError(offset: 4, reason: "listpack count mismatch")
        }
        return entries
    }

    static func readLittleEndian(_ blob: [UInt8], _ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(blob[offset + index]) << (8 * UInt64(index)) }
        return value
    }
}

/// Decodes Redis ziplists (hashes in RDB type 13, written by Redis 3.2 through 6.2).
public enum Ziplist {
    /// The elements of a ziplist blob.
    public static func decode(_ blob: [UInt8]) throws(Listpack.FormatError) -> [[UInt8]] {
        typealias Failure = Listpack.FormatError
        guard blob.count >= 11 else { throw Failure(offset: 0, reason: "ziplist shorter than its header") }
        guard Int(Listpack.readLittleEndian(blob, 0, 4)) == blob.count else {
            throw Failure(offset: 0, reason: "ziplist size header mismatch")
        }
        var elements: [[UInt8]] = []
        var position = 10
        while true {
            guard position < blob.count else { throw Failure(offset: position, reason: "ziplist missing end") }
            if blob[position] == 0xFF { break }
            let start = position
            func need(_ count: Int) throws(Failure) {
                guard position + count <= blob.count - 1 else {
                    throw Failure(offset: start, reason: "ziplist entry past end")
                }
            }
            // prevlen: 1 byte, or 0xFE + 4 bytes.
            try need(1)
            position += blob[position] == 0xFE ? 5 : 1
            try need(1)
            let encoding = blob[position]
            switch encoding >> 6 {
            case 0:
                let length = Int(encoding & 0x3f)
                try need(1 + length)
                elements.append(Array(blob[(position + 1)..<(position + 1 + length)]))
                position += 1 + length
            case 1:
                try need(2)
                let length = (Int(encoding & 0x3f) << 8) | Int(blob[position + 1])
                try need(2 + length)
                elements.append(Array(blob[(position + 2)..<(position + 2 + length)]))
                position += 2 + length
            case 2:
                try need(5)
                var length = 0
                for index in 1...4 { length = (length << 8) | Int(blob[position + index]) }
                try need(5 + length)
                elements.append(Array(blob[(position + 5)..<(position + 5 + length)]))
                position += 5 + length
            default:
                let width: Int
                switch encoding {
                case 0xC0: width = 2
                case 0xD0: width = 4
                case 0xE0: width = 8
                case 0xF0: width = 3
                case 0xFE: width = 1
                case 0xF1...0xFD:
                    elements.append(decimalBytes(Int64(encoding & 0x0f) - 1))
                    position += 1
                    continue
                default:
                    throw Failure(offset: position, reason: "ziplist unknown encoding \(encoding)")
                }
                try need(1 + width)
                let raw = Listpack.readLittleEndian(blob, position + 1, width)
                let shift = UInt64(64 - 8 * width)
                elements.append(decimalBytes(Int64(bitPattern: raw << shift) >> Int64(shift)))
                position += 1 + width
            }
        }
        guard position == blob.count - 1 else { throw Failure(offset: position, reason: "ziplist trailing bytes") }
        return elements
    }
}
