// ListValue: Redis lists as a deque of listpack-encoded chunks (Redis 7.0's quicklist of listpacks).
import TallyProtocol

/// Which end of a list an operation works on.
public enum ListEnd: Sendable {
    /// The left end (LPUSH, LPOP, index 0).
    case head
    /// The right end (RPUSH, RPOP, index -1).
    case tail
}

/// One element as stored: listpack keeps canonical integers (string2ll) as integers and
/// everything else as bytes, so a reader gets either without copying.
public enum ListElement {
    /// A canonical decimal integer.
    case integer(Int64)
    /// Any other bytes (a view into the chunk).
    case bytes(ArraySlice<UInt8>)

    /// The element's bytes as a new array.
    public var materialized: [UInt8] {
        switch self {
        case .integer(let value): return decimalBytes(value)
        case .bytes(let bytes): return Array(bytes)
        }
    }

    /// True if the element equals `other` byte for byte (listpack's lpCompare: an integer
    /// entry equals only the canonical spelling of its value).
    public func equals<C: Collection>(_ other: C) -> Bool where C.Element == UInt8 {
        switch self {
        case .integer(let value): return parseRedisInteger(other) == value
        case .bytes(let bytes): return bytes.elementsEqual(other)
        }
    }
}

/// A list: chunks of listpack entries (encoding byte, data, backlen: the exact entry format of
/// Redis's listpack), kept in a deque of chunks.
///
/// - A small list is one chunk: a packed byte buffer, ~2–10 bytes per short element (Redis's
///   compact listpack encoding).
/// - A large list is many chunks of at most `chunkBytesLimit` (Redis's default
///   `list-max-listpack-size -2`: 8 KB per listpack, header included). An element bigger than
///   that gets a chunk of its own (Redis's plain-node case, which it only uses above 1 GB).
/// - Pushing or popping at either end touches only the end chunk (a memmove of at most 8 KB at
///   the head, as listpack does): O(1) amortized. Chunks sit in an array with free slots kept
///   in front (`head`), so adding a chunk at the head is amortized O(1) too.
/// - The RDB writer dumps each chunk as one listpack node of a QUICKLIST_2 value without
///   re-encoding it.
///
/// Measured (1M elements "1".."1000000", RPUSH): see README's lists section.
public struct ListValue: Sendable {
    /// Most entry bytes in a chunk: 8 KB listpacks minus their 7 bytes of header and terminator.
    public static let chunkBytesLimit = 8192 - 7

    /// Chunk slots; `chunks[0..<head]` are empty free slots for cheap head insertion.
    @usableFromInline var chunks: [ListChunk] = []
    @usableFromInline var head = 0
    /// Number of elements.
    public private(set) var count = 0
    /// Sum of the chunks' entry bytes, kept up to date so the memory estimate is O(1).
    public private(set) var payloadBytes = 0

    /// Creates an empty list.
    public init() {}

    /// A list of `elements`, in order.
    public init<S: Sequence>(_ elements: S) where S.Element == [UInt8] {
        for element in elements { push(element, at: .tail) }
    }

    /// True if the list holds no element.
    @inlinable public var isEmpty: Bool { count == 0 }

    /// Number of chunks (listpack nodes).
    public var chunkCount: Int { chunks.count - head }

    /// Calls `body` with each chunk's listpack entries (no header or terminator) and count.
    public func forEachChunk(_ body: ([UInt8], Int) throws -> Void) rethrows {
        for index in head..<chunks.count { try body(chunks[index].entries, chunks[index].count) }
    }

    // MARK: Ends

    /// Adds `element` (a request argument) at `end`. Non-generic entry points, so the encoder
    /// is specialized inside this module instead of iterating an unspecialized Collection.
    public mutating func push(_ element: ArraySlice<UInt8>, at end: ListEnd) { pushElement(element, at: end) }

    /// Adds `element` at `end`.
    public mutating func push(_ element: [UInt8], at end: ListEnd) { pushElement(element, at: end) }

    mutating func pushElement<C: Collection>(_ element: C, at end: ListEnd) where C.Element == UInt8 {
        let size = ListpackEntry.encodedSize(element)
        switch end {
        case .tail:
            if chunks.count == head || !chunks[chunks.count - 1].accepts(size) {
                var fresh = ListChunk()
                if chunks.count > head { fresh.entries.reserveCapacity(ListValue.chunkBytesLimit) }
                chunks.append(fresh)
            }
            chunks[chunks.count - 1].append(element, size: size)
        case .head:
            if chunks.count == head || !chunks[head].accepts(size) {
                var fresh = ListChunk()
                if chunks.count > head { fresh.entries.reserveCapacity(ListValue.chunkBytesLimit) }
                insertHeadChunk(fresh)
            }
            chunks[head].prepend(element, size: size)
        }
        count += 1
        payloadBytes += size
    }

    /// Puts `chunk` before the first chunk, growing the free slots in front when none is left.
    private mutating func insertHeadChunk(_ chunk: ListChunk) {
        if head == 0 {
            let live = chunks.count
            let gap = max(4, live)
            var grown: [ListChunk] = []
            grown.reserveCapacity(gap + live)
            grown.append(contentsOf: repeatElement(ListChunk(), count: gap))
            grown.append(contentsOf: chunks)
            chunks = grown
            head = gap
        }
        head -= 1
        chunks[head] = chunk
    }

    /// Removes and returns the element at `end`, or nil when empty.
    public mutating func pop(_ end: ListEnd) -> [UInt8]? {
        if count == 0 { return nil }
        let index = end == .head ? head : chunks.count - 1
        let (element, size) = end == .head ? chunks[index].removeFirst() : chunks[index].removeLast()
        count -= 1
        payloadBytes -= size
        if chunks[index].count == 0 { dropChunk(at: index) }
        return element
    }

    /// Removes the element at `end`, handing it to `body` first (a view into the chunk, so a
    /// reply is written without copying the element); false when empty.
    @discardableResult
    public mutating func pop(_ end: ListEnd, _ body: (ListElement) -> Void) -> Bool {
        if count == 0 { return false }
        let index = end == .head ? head : chunks.count - 1
        let start = end == .head ? 0 : ListpackEntry.start(endingAt: chunks[index].entries.count,
                                                           in: chunks[index].entries)
        let (element, size) = ListpackEntry.decode(chunks[index].entries, at: start)
        body(element)
        if end == .head {
            chunks[index].entries.removeFirst(size)
        } else {
            chunks[index].entries.removeLast(size)
        }
        chunks[index].count -= 1
        count -= 1
        payloadBytes -= size
        if chunks[index].count == 0 { dropChunk(at: index) }
        return true
    }

    /// Removes the chunk at slot `index` (an end chunk is O(1); a middle one shifts slots).
    private mutating func dropChunk(at index: Int) {
        if index == head {
            chunks[head] = ListChunk()
            head += 1
            if head == chunks.count {
                chunks.removeAll()
                head = 0
            }
        } else {
            chunks.remove(at: index)
        }
    }

    /// Removes `n` elements from `end` (all if `n >= count`).
    public mutating func remove(_ n: Int, from end: ListEnd) {
        var left = min(n, count)
        while left > 0 {
            let index = end == .head ? head : chunks.count - 1
            if chunks[index].count <= left {
                left -= chunks[index].count
                count -= chunks[index].count
                payloadBytes -= chunks[index].entries.count
                dropChunk(at: index)
            } else {
                let removed = chunks[index].removeElements(left, from: end)
                count -= left
                payloadBytes -= removed
                left = 0
            }
        }
    }

    // MARK: Positions

    /// The slot of the chunk holding element `index` (0..<count) and the index inside it.
    private func locate(_ index: Int) -> (slot: Int, offset: Int) {
        var remaining = index
        if index < count / 2 {
            var slot = head
            while remaining >= chunks[slot].count {
                remaining -= chunks[slot].count
                slot += 1
            }
            return (slot, remaining)
        }
        remaining = count - 1 - index
        var slot = chunks.count - 1
        while remaining >= chunks[slot].count {
            remaining -= chunks[slot].count
            slot -= 1
        }
        return (slot, chunks[slot].count - 1 - remaining)
    }

    /// The element at `index` (0..<count), or nil outside.
    public func element(at index: Int) -> ListElement? {
        if index < 0 || index >= count { return nil }
        let (slot, offset) = locate(index)
        var found: ListElement?
        var position = 0
        chunks[slot].forEach { element in
            if position == offset {
                found = element
                return false
            }
            position += 1
            return true
        }
        return found
    }

    /// Visits elements starting at `start` (0..<count), toward the tail or (`reverse`) the head;
    /// `body` gets each element's index and returns false to stop.
    public func visit(from start: Int, reverse: Bool = false, _ body: (Int, ListElement) -> Bool) {
        if start < 0 || start >= count { return }
        var (slot, offset) = locate(start)
        var index = start
        while slot >= head && slot < chunks.count {
            var position = 0
            var keepGoing = true
            if reverse {
                let skip = chunks[slot].count - 1 - offset
                chunks[slot].forEachReversed { element in
                    if position < skip {
                        position += 1
                        return true
                    }
                    keepGoing = body(index, element)
                    index -= 1
                    return keepGoing
                }
                if !keepGoing { return }
                slot -= 1
                if slot >= head { offset = chunks[slot].count - 1 }
            } else {
                chunks[slot].forEach { element in
                    if position < offset {
                        position += 1
                        return true
                    }
                    keepGoing = body(index, element)
                    index += 1
                    return keepGoing
                }
                if !keepGoing { return }
                slot += 1
                offset = 0
            }
        }
    }

    // MARK: Edits (rewrite the chunks they touch)

    /// The elements of the chunk at `slot`.
    private func elements(ofChunk slot: Int) -> [[UInt8]] {
        var elements: [[UInt8]] = []
        elements.reserveCapacity(chunks[slot].count)
        chunks[slot].forEach { element in
            elements.append(element.materialized)
            return true
        }
        return elements
    }

    /// Replaces the chunk at `slot` by `elements`, split into as many chunks as the size limit
    /// needs (none when empty).
    private mutating func replaceChunk(at slot: Int, with elements: [[UInt8]]) {
        count -= chunks[slot].count
        payloadBytes -= chunks[slot].entries.count
        var rebuilt: [ListChunk] = []
        var current = ListChunk()
        for element in elements {
            let size = ListpackEntry.encodedSize(element)
            if !current.accepts(size) {
                rebuilt.append(current)
                current = ListChunk()
            }
            current.append(element, size: size)
            payloadBytes += size
        }
        if current.count > 0 { rebuilt.append(current) }
        count += elements.count
        if rebuilt.isEmpty {
            dropChunk(at: slot)
        } else {
            chunks[slot] = rebuilt[0]
            if rebuilt.count > 1 { chunks.insert(contentsOf: rebuilt[1...], at: slot + 1) }
        }
    }

    /// Sets the element at `index` (0..<count); false when out of range.
    public mutating func replace<C: Collection>(at index: Int, with element: C) -> Bool where C.Element == UInt8 {
        if index < 0 || index >= count { return false }
        let (slot, offset) = locate(index)
        var elements = elements(ofChunk: slot)
        elements[offset] = Array(element)
        replaceChunk(at: slot, with: elements)
        return true
    }

    /// Inserts `element` before or after the first element equal to `pivot`; false if none is.
    public mutating func insert<P: Collection, C: Collection>(_ element: C, after: Bool, pivot: P) -> Bool
    where P.Element == UInt8, C.Element == UInt8 {
        var found = -1
        visit(from: 0) { index, candidate in
            if candidate.equals(pivot) {
                found = index
                return false
            }
            return true
        }
        if found < 0 { return false }
        let (slot, offset) = locate(found)
        var elements = elements(ofChunk: slot)
        elements.insert(Array(element), at: after ? offset + 1 : offset)
        replaceChunk(at: slot, with: elements)
        return true
    }

    /// Removes up to `limit` elements equal to `target` (0 = all), scanning from the head or
    /// (`fromTail`) the tail; returns how many were removed.
    public mutating func removeAll<C: Collection>(equalTo target: C, limit: Int, fromTail: Bool) -> Int
    where C.Element == UInt8 {
        var removed = 0
        var slot = fromTail ? chunks.count - 1 : head
        while slot >= head && slot < chunks.count && (limit == 0 || removed < limit) {
            var elements = elements(ofChunk: slot)
            var matched = false
            if fromTail {
                var position = elements.count - 1
                while position >= 0 && (limit == 0 || removed < limit) {
                    if ListElement.bytes(elements[position][...]).equals(target) {
                        elements.remove(at: position)
                        removed += 1
                        matched = true
                    }
                    position -= 1
                }
            } else {
                var position = 0
                while position < elements.count && (limit == 0 || removed < limit) {
                    if ListElement.bytes(elements[position][...]).equals(target) {
                        elements.remove(at: position)
                        removed += 1
                        matched = true
                    } else {
                        position += 1
                    }
                }
            }
            let wasHead = slot == head
            let dropped = matched && elements.isEmpty
            if matched { replaceChunk(at: slot, with: elements) }
            if fromTail {
                slot -= 1
            } else if !dropped || wasHead {
                // A dropped head chunk leaves its slot free; a dropped middle one shifts the next
                // chunk into its slot.
                slot += 1
            }
        }
        return removed
    }
}

/// One chunk: listpack entries (no header or terminator) and how many there are.
@usableFromInline
struct ListChunk: Sendable {
    @usableFromInline var entries: [UInt8] = []
    @usableFromInline var count = 0

    /// True if an entry of `size` bytes fits (an empty chunk takes any one element).
    func accepts(_ size: Int) -> Bool {
        count == 0 || entries.count + size <= ListValue.chunkBytesLimit
    }

    /// Below this many bytes a chunk grows to the exact size it needs instead of doubling: most
    /// lists are small, and doubling left up to half of each one's buffer unused (measured:
    /// 100k lists of 10 short elements). A realloc of a buffer this small costs little.
    static let exactGrowthBytesMax = 512

    @inline(__always)
    mutating func reserve(_ size: Int) {
        let needed = entries.count + size
        if needed > entries.capacity && needed <= ListChunk.exactGrowthBytesMax { entries.reserveCapacity(needed) }
    }

    mutating func append<C: Collection>(_ element: C, size: Int) where C.Element == UInt8 {
        reserve(size)
        let start = entries.count
        entries.append(contentsOf: repeatElement(0, count: size))
        entries.withUnsafeMutableBytes { ListpackEntry.write(element, size: size, into: $0, at: start) }
        count += 1
    }

    mutating func prepend<C: Collection>(_ element: C, size: Int) where C.Element == UInt8 {
        reserve(size)
        entries.insert(contentsOf: repeatElement(0, count: size), at: 0)
        entries.withUnsafeMutableBytes { ListpackEntry.write(element, size: size, into: $0, at: 0) }
        count += 1
    }

    mutating func removeFirst() -> ([UInt8], Int) {
        let (element, size) = ListpackEntry.decode(entries, at: 0)
        let bytes = element.materialized
        entries.removeFirst(size)
        count -= 1
        return (bytes, size)
    }

    mutating func removeLast() -> ([UInt8], Int) {
        let start = ListpackEntry.start(endingAt: entries.count, in: entries)
        let (element, size) = ListpackEntry.decode(entries, at: start)
        let bytes = element.materialized
        entries.removeLast(size)
        count -= 1
        return (bytes, size)
    }

    /// Removes `n` (< count) elements from `end`; returns the bytes removed.
    mutating func removeElements(_ n: Int, from end: ListEnd) -> Int {
        if end == .head {
            var position = 0
            for _ in 0..<n { position += ListpackEntry.decode(entries, at: position).size }
            entries.removeFirst(position)
            count -= n
            return position
        }
        var position = entries.count
        for _ in 0..<n { position = ListpackEntry.start(endingAt: position, in: entries) }
        let removed = entries.count - position
        entries.removeLast(removed)
        count -= n
        return removed
    }

    func forEach(_ body: (ListElement) -> Bool) {
        var position = 0
        while position < entries.count {
            let (element, size) = ListpackEntry.decode(entries, at: position)
            if !body(element) { return }
            position += size
        }
    }

    func forEachReversed(_ body: (ListElement) -> Bool) {
        var end = entries.count
        while end > 0 {
            let start = ListpackEntry.start(endingAt: end, in: entries)
            if !body(ListpackEntry.decode(entries, at: start).element) { return }
            end = start
        }
    }
}

/// Listpack entries (listpack.c's format): an encoding byte with inline small integers or
/// string lengths, the data, then the "backlen" (the size of encoding + data, 7 bits per byte,
/// most significant group first, high bit set on every byte but the leftmost) so the entry can
/// be parsed right to left. Canonical integers (string2ll) use the integer encodings.
public enum ListpackEntry {
    /// Bytes the backlen of an entry of `size` bytes takes.
    @inline(__always)
    static func backlenBytes(_ size: Int) -> Int {
        size < 128 ? 1 : size < 16384 ? 2 : size < 2_097_152 ? 3 : size < 268_435_456 ? 4 : 5
    }

    /// The integer a listpack would store `element` as, if any.
    @inline(__always)
    static func integerValue<C: Collection>(_ element: C) -> Int64? where C.Element == UInt8 {
        element.count <= 20 ? parseRedisInteger(element) : nil
    }

    /// Size of encoding + data (without the backlen).
    static func bodySize<C: Collection>(_ element: C) -> Int where C.Element == UInt8 {
        if let value = integerValue(element) {
            switch value {
            case 0...127: return 1
            case -4096...4095: return 2
            case -32768...32767: return 3
            case -8_388_608...8_388_607: return 4
            case Int64(Int32.min)...Int64(Int32.max): return 5
            default: return 9
            }
        }
        let length = element.count
        return length < 64 ? 1 + length : length < 4096 ? 2 + length : 5 + length
    }

    /// Total encoded size of `element`, backlen included.
    public static func encodedSize<C: Collection>(_ element: C) -> Int where C.Element == UInt8 {
        let body = bodySize(element)
        return body + backlenBytes(body)
    }

    /// Appends `element`'s entry to `blob` (a listpack being built).
    public static func append<C: Collection>(_ element: C, to blob: inout [UInt8]) where C.Element == UInt8 {
        let size = encodedSize(element)
        let start = blob.count
        blob.append(contentsOf: repeatElement(0, count: size))
        blob.withUnsafeMutableBytes { write(element, size: size, into: $0, at: start) }
    }

    /// Writes `element` (whose `encodedSize` is `size`) at `offset`.
    static func write<C: Collection>(_ element: C, size: Int, into buffer: UnsafeMutableRawBufferPointer,
                                     at offset: Int) where C.Element == UInt8 {
        var position = offset
        func put(_ byte: UInt8) {
            buffer[position] = byte
            position += 1
        }
        func putLittleEndian(_ value: Int64, _ width: Int) {
            let bits = UInt64(bitPattern: value)
            for index in 0..<width { put(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(index)))) }
        }
        if let value = integerValue(element) {
            switch value {
            case 0...127: put(UInt8(value))
            case -4096...4095:
                let bits = UInt16(bitPattern: Int16(value)) & 0x1fff
                put(0xC0 | UInt8(bits >> 8))
                put(UInt8(bits & 0xff))
            case -32768...32767:
                put(0xF1)
                putLittleEndian(value, 2)
            case -8_388_608...8_388_607:
                put(0xF2)
                putLittleEndian(value, 3)
            case Int64(Int32.min)...Int64(Int32.max):
                put(0xF3)
                putLittleEndian(value, 4)
            default:
                put(0xF4)
                putLittleEndian(value, 8)
            }
        } else {
            let length = element.count
            if length < 64 {
                put(0x80 | UInt8(length))
            } else if length < 4096 {
                put(0xE0 | UInt8(length >> 8))
                put(UInt8(length & 0xff))
            } else {
                put(0xF0)
                putLittleEndian(Int64(length), 4)
            }
            let copied: Void? = element.withContiguousStorageIfAvailable { source in
                UnsafeMutableRawBufferPointer(rebasing: buffer[position..<(position + length)])
                    .copyMemory(from: UnsafeRawBufferPointer(source))
            }
            if copied == nil {
                for byte in element { put(byte) }
            } else {
                position += length
            }
        }
        let body = position - offset
        let groups = backlenBytes(body)
        for group in 0..<groups {
            // Leftmost byte: the most significant 7 bits, without the continuation bit.
            let shift = 7 * (groups - 1 - group)
            let bits = UInt8((body >> shift) & 127)
            put(group == 0 ? bits : bits | 128)
        }
        assert(position - offset == size, "listpack entry size")
    }

    /// The element whose entry starts at `offset`, and the entry's size (backlen included).
    /// The bytes were written by `write` or validated by the RDB reader.
    static func decode(_ entries: [UInt8], at offset: Int) -> (element: ListElement, size: Int) {
        let first = entries[offset]
        let element: ListElement
        let body: Int
        func littleEndian(_ start: Int, _ width: Int) -> Int64 {
            var raw: UInt64 = 0
            for index in 0..<width { raw |= UInt64(entries[start + index]) << (8 * UInt64(index)) }
            let shift = UInt64(64 - 8 * width)
            return Int64(bitPattern: raw << shift) >> Int64(shift)
        }
        if first & 0x80 == 0 {
            element = .integer(Int64(first))
            body = 1
        } else if first & 0xC0 == 0x80 {
            let length = Int(first & 0x3f)
            element = .bytes(entries[(offset + 1)..<(offset + 1 + length)])
            body = 1 + length
        } else if first & 0xE0 == 0xC0 {
            var value = (Int64(first & 0x1f) << 8) | Int64(entries[offset + 1])
            if value >= 4096 { value -= 8192 }
            element = .integer(value)
            body = 2
        } else if first & 0xF0 == 0xE0 {
            let length = (Int(first & 0x0f) << 8) | Int(entries[offset + 1])
            element = .bytes(entries[(offset + 2)..<(offset + 2 + length)])
            body = 2 + length
        } else {
            switch first {
            case 0xF1: element = .integer(littleEndian(offset + 1, 2)); body = 3
            case 0xF2: element = .integer(littleEndian(offset + 1, 3)); body = 4
            case 0xF3: element = .integer(littleEndian(offset + 1, 4)); body = 5
            case 0xF4: element = .integer(littleEndian(offset + 1, 8)); body = 9
            default:
                let length = Int(UInt32(truncatingIfNeeded: littleEndian(offset + 1, 4)))
                element = .bytes(entries[(offset + 5)..<(offset + 5 + length)])
                body = 5 + length
            }
        }
        return (element, body + backlenBytes(body))
    }

    /// The offset of the entry that ends at `end`, found through its backlen.
    static func start(endingAt end: Int, in entries: [UInt8]) -> Int {
        var body = 0
        var shift = 0
        var position = end - 1
        while true {
            let byte = entries[position]
            body |= Int(byte & 127) << shift
            if byte & 128 == 0 { break }
            shift += 7
            position -= 1
        }
        return end - backlenBytes(body) - body
    }
}
