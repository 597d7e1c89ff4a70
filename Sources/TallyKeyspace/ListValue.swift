// ListValue: Redis lists as a deque of listpack-encoded chunks (Redis 7.0's quicklist of listpacks).
import TallyProtocol

/// Which end of a list an operation works on.
public enum ListEnd: Sendable {
    /// The left end (LPUSH, LPOP, index 0).
    case head
    /// The right end (RPUSH, RPOP, index -1).
    case tail
}

/// A list element seen in place (`ListValue.visitViews`): its bytes are valid only inside the
/// visit that produced it.
public enum ListElementView {
    /// A canonical decimal integer.
    case integer(Int64)
    /// Any other bytes, borrowed from the chunk.
    case bytes(UnsafeRawBufferPointer)
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

/// How full a list chunk may grow: Redis's `list-max-listpack-size` (the quicklist "fill").
/// -1...-5: a chunk's listpack may reach 4, 8, 16, 32 or 64 KB; a positive N: at most N elements
/// in a chunk of at most 8 KB (0 puts each element in a chunk of its own). Values outside
/// -5...32767 are clamped as quicklist.c's quicklistSetFill clamps them.
public struct ListFill: Sendable, Equatable {
    /// The clamped setting.
    public let value: Int

    /// Redis's default, -2: 8 KB listpacks.
    public static let standard = ListFill(-2)

    /// The fill for a configured `list-max-listpack-size`.
    public init(_ configured: Int) { value = min(max(configured, -5), 32767) }

    /// quicklist.c's optimization_level: the listpack size limit of fills -1...-5.
    static let sizeLevelBytes = [4096, 8192, 16384, 32768, 65536]
    /// quicklist.c's SIZE_SAFETY_LIMIT: a count-limited listpack still stays under 8 KB.
    static let safetyLimitBytes = 8192
    /// quicklist.c's SIZE_ESTIMATE_OVERHEAD: what an entry may add beyond the element's bytes.
    static let estimateOverheadBytes = 8
    /// A listpack's 6-byte header and 1-byte terminator, which a chunk does not store.
    static let listpackFrameBytes = 7

    /// True if a chunk of `count` elements in `entryBytes` takes one more element of
    /// `elementLength` bytes: quicklist.c's _quicklistNodeAllowInsert, which estimates the grown
    /// listpack from the element's length (its decimal text for an integer), not its encoding,
    /// so chunks split where Redis's nodes do.
    @inline(__always)
    func allowsInsert(entryBytes: Int, count: Int, elementLength: Int) -> Bool {
        let estimated = ListFill.listpackFrameBytes + entryBytes + elementLength + ListFill.estimateOverheadBytes
        if value < 0 { return estimated <= ListFill.sizeLevelBytes[-value - 1] }
        return estimated <= ListFill.safetyLimitBytes && count < value
    }

    /// True if two chunks holding `entryBytes` and `count` together may become one:
    /// quicklist.c's _quicklistNodeAllowMerge (two listpacks' sizes less one header and
    /// terminator, counted there as 11 bytes).
    @inline(__always)
    func allowsMerge(entryBytes: Int, count: Int) -> Bool {
        let merged = 2 * ListFill.listpackFrameBytes + entryBytes - 11
        if value < 0 { return merged <= ListFill.sizeLevelBytes[-value - 1] }
        return merged <= ListFill.safetyLimitBytes && count <= value
    }

    /// Entry bytes a chunk reaches before it is full, when the limit is a size (a new chunk
    /// behind a full one in a growing list reserves them); nil for a count limit.
    var fullChunkEntryBytes: Int? {
        value < 0 ? ListFill.sizeLevelBytes[-value - 1] - ListFill.listpackFrameBytes : nil
    }
}

/// A list: listpack entries (encoding byte, data, backlen: the exact entry format of Redis's
/// listpack) in chunks, held in one of two forms.
///
/// - A list that fits one chunk is that chunk alone (`compact`): one heap buffer with the
///   element count and the entries, referenced straight from the `Value` slot with no box.
///   Redis 7.0 spends a robj, a quicklist and a quicklist node besides the listpack on it.
/// - A larger list (`chunked`) is a deque of chunks, each filled as `ListFill` allows (Redis's
///   quicklist of listpacks under `list-max-listpack-size`, by default -2: 8 KB per listpack,
///   header included), so pushes split a list into the nodes Redis's pushes make and DUMP and
///   the RDB write the same nodes. An element bigger than the limit gets a chunk of its own
///   (Redis's plain-node case, which it only uses above 1 GB, is a listpack of one here).
///   Pushing or popping at either end touches only the end chunk (a memmove of at most the
///   limit at the head, as listpack does): O(1) amortized. Chunks sit in an array with free
///   slots kept in front, so adding a chunk at the head is amortized O(1) too.
/// - The RDB writer dumps each chunk as one listpack node of a QUICKLIST_2 value without
///   re-encoding it.
///
/// Measured (1M elements "1".."1000000", RPUSH; 100k lists of 10): see README's lists section.
public struct ListValue: Sendable {
    /// Most entry bytes in a chunk of several elements under the default fill: 8 KB listpacks
    /// minus their 7 bytes of header and terminator.
    public static let chunkBytesLimit = 8192 - 7

    /// A chunked list that shrinks to one chunk of at most this many entry bytes becomes compact
    /// again; the gap below `chunkBytesLimit` keeps a list at the boundary from converting back
    /// and forth on every push and pop.
    static let compactReturnBytes = chunkBytesLimit / 2

    @usableFromInline
    enum Storage: Sendable {
        /// The whole list in one chunk (empty: no buffer).
        case compact(ListChunk)
        /// More than one chunk, shared copy-on-write.
        case chunked(ChunkedListBox)
    }

    @usableFromInline var storage: Storage = .compact(ListChunk())

    /// Creates an empty list.
    public init() {}

    /// A list of `elements`, in order.
    public init<S: Sequence>(_ elements: S) where S.Element == [UInt8] {
        for element in elements { push(element, at: .tail) }
    }

    /// Number of elements.
    public var count: Int {
        switch storage {
        case .compact(let chunk): return chunk.count
        case .chunked(let box): return box.list.count
        }
    }

    /// Sum of the chunks' entry bytes (O(1), for the memory estimate).
    public var payloadBytes: Int {
        switch storage {
        case .compact(let chunk): return chunk.entryBytes
        case .chunked(let box): return box.list.payloadBytes
        }
    }

    /// True if the list holds no element.
    public var isEmpty: Bool { count == 0 }

    /// True while the list is a single chunk held without a box (see the type's comment).
    public var isCompact: Bool {
        if case .compact = storage { return true }
        return false
    }

    /// Number of chunks (listpack nodes).
    public var chunkCount: Int {
        switch storage {
        case .compact(let chunk): return chunk.count == 0 ? 0 : 1
        case .chunked(let box): return box.list.chunkCount
        }
    }

    /// Calls `body` with each chunk's listpack entries (no header or terminator) and count.
    public func forEachChunk(_ body: (ArraySlice<UInt8>, Int) throws -> Void) rethrows {
        switch storage {
        case .compact(let chunk): if chunk.count > 0 { try body(chunk.entries, chunk.count) }
        case .chunked(let box): try box.list.forEachChunk(body)
        }
    }

    // MARK: Form changes

    /// Takes the compact chunk out (leaving an empty one), so the caller holds the only
    /// reference to its buffer and edits it in place; nil when the list is chunked.
    @inline(__always)
    private mutating func takeCompact() -> ListChunk? {
        guard case .compact(let chunk) = storage else { return nil }
        storage = .compact(ListChunk())
        return chunk
    }

    /// Runs `body` on the chunked form (copying it first when another value shares it), then
    /// goes back to the compact form if the list shrank to one small chunk.
    private mutating func withChunked<R>(_ body: (inout ChunkedList) -> R) -> R {
        guard case .chunked(var box) = storage else { preconditionFailure("list is compact") }
        storage = .compact(ListChunk())
        if !isKnownUniquelyReferenced(&box) { box = ChunkedListBox(box.list) }
        let result = body(&box.list)
        if box.list.chunkCount > 1 {
            storage = .chunked(box)
        } else if let only = box.list.onlyChunk, only.entryBytes > ListValue.compactReturnBytes {
            storage = .chunked(box)
        } else {
            storage = .compact(box.list.onlyChunk?.shrunk() ?? ListChunk())
        }
        return result
    }

    /// Runs an edit that may split or empty chunks: on the chunked form, or on a one-chunk
    /// chunked copy of the compact form that stays compact if it is still one chunk.
    private mutating func edit<R>(_ body: (inout ChunkedList) -> R) -> R {
        guard let chunk = takeCompact() else { return withChunked(body) }
        var list = ChunkedList(chunk)
        let result = body(&list)
        storage = list.chunkCount > 1 ? .chunked(ChunkedListBox(list)) : .compact(list.onlyChunk ?? ListChunk())
        return result
    }

    // MARK: Ends

    /// Adds `element` (a request argument) at `end`. Non-generic entry points, so the encoder
    /// is specialized inside this module instead of iterating an unspecialized Collection.
    /// `fill` decides whether the end chunk takes it or a new chunk starts.
    public mutating func push(_ element: ArraySlice<UInt8>, at end: ListEnd, fill: ListFill = .standard) {
        pushElement(element, at: end, fill: fill)
    }

    /// Adds `element` at `end`.
    public mutating func push(_ element: [UInt8], at end: ListEnd, fill: ListFill = .standard) {
        pushElement(element, at: end, fill: fill)
    }

    /// Adds the bytes of `element` at `end` (a request's argument read in place: LPUSH).
    public mutating func push(_ element: UnsafeRawBufferPointer, at end: ListEnd, fill: ListFill = .standard) {
        pushElement(element, at: end, fill: fill)
    }

    /// Appends a whole chunk of `count` (1...65535) listpack entries after the last element, as
    /// they are: RDB loading keeps each QUICKLIST_2 node as it was saved (rdb.c appends a loaded
    /// listpack node to the quicklist whole), instead of decoding and re-pushing every element.
    /// The entries must be valid listpack entries (the loader has validated them).
    public mutating func appendChunk(entries: ArraySlice<UInt8>, count: Int) {
        precondition(count > 0 && count < 65536, "list chunk count")
        var chunk = ListChunk()
        chunk.bytes.reserveCapacity(ListChunk.headerBytes + entries.count)
        chunk.bytes.append(contentsOf: [0, 0])
        chunk.bytes.append(contentsOf: entries)
        chunk.count = count
        if isEmpty {
            storage = .compact(chunk)
            return
        }
        if let compact = takeCompact() { storage = .chunked(ChunkedListBox(ChunkedList(compact))) }
        withChunked { $0.appendChunk(chunk) }
    }

    mutating func pushElement<C: Collection>(_ element: C, at end: ListEnd, fill: ListFill) where C.Element == UInt8 {
        let size = ListpackEntry.encodedSize(element)
        if var chunk = takeCompact() {
            if chunk.accepts(elementLength: element.count, fill: fill) {
                if end == .tail { chunk.append(element, size: size) } else { chunk.prepend(element, size: size) }
                storage = .compact(chunk)
                return
            }
            storage = .chunked(ChunkedListBox(ChunkedList(chunk)))
        }
        withChunked { $0.pushElement(element, size: size, at: end, fill: fill) }
    }

    /// Removes and returns the element at `end`, or nil when empty.
    public mutating func pop(_ end: ListEnd) -> [UInt8]? {
        var element: [UInt8]?
        pop(end) { element = $0.materialized }
        return element
    }

    /// Removes the element at `end`, handing it to `body` first (a view into the chunk, so a
    /// reply is written without copying the element); false when empty.
    @discardableResult
    public mutating func pop(_ end: ListEnd, _ body: (ListElement) -> Void) -> Bool {
        if var chunk = takeCompact() {
            defer { storage = .compact(chunk) }
            if chunk.count == 0 { return false }
            chunk.removeEnd(end, body)
            return true
        }
        return withChunked { $0.pop(end, body) }
    }

    /// Removes `n` elements from `end` (all if `n >= count`).
    public mutating func remove(_ n: Int, from end: ListEnd) {
        if var chunk = takeCompact() {
            if n >= chunk.count {
                chunk = ListChunk()
            } else if n > 0 {
                chunk.removeElements(n, from: end)
            }
            storage = .compact(chunk)
            return
        }
        withChunked { $0.remove(n, from: end) }
    }

    // MARK: Positions

    /// The element at `index` (0..<count), or nil outside.
    public func element(at index: Int) -> ListElement? {
        switch storage {
        case .compact(let chunk): return index >= 0 && index < chunk.count ? chunk.element(at: index) : nil
        case .chunked(let box): return box.list.element(at: index)
        }
    }

    /// Visits elements starting at `start` (0..<count), toward the tail or (`reverse`) the head;
    /// `body` gets each element's index and returns false to stop.
    public func visit(from start: Int, reverse: Bool = false, _ body: (Int, ListElement) -> Bool) {
        switch storage {
        case .compact(let chunk):
            if start < 0 || start >= chunk.count { return }
            var index = start
            _ = chunk.visit(from: start, reverse: reverse, index: &index, body)
        case .chunked(let box):
            box.list.visit(from: start, reverse: reverse, body)
        }
    }

    /// `visit` with each element as a view valid only inside `body` (see `ListElementView`):
    /// the reply writers' path, with no reference counting per element.
    public func visitViews(from start: Int, reverse: Bool = false, _ body: (Int, ListElementView) -> Bool) {
        switch storage {
        case .compact(let chunk):
            if start < 0 || start >= chunk.count { return }
            var index = start
            _ = chunk.visitViews(from: start, reverse: reverse, index: &index, body)
        case .chunked(let box):
            box.list.visitViews(from: start, reverse: reverse, body)
        }
    }

    // MARK: Edits (rewrite the chunks they touch)

    /// Sets the element at `index` (0..<count); false when out of range.
    /// The chunk is edited in place whatever its size, as Redis's lpReplace edits a node.
    public mutating func replace<C: Collection>(at index: Int, with element: C) -> Bool where C.Element == UInt8 {
        if index < 0 || index >= count { return false }
        return edit { $0.replace(at: index, with: element) }
    }

    /// Inserts `element` before or after the first element equal to `pivot`; false if none is.
    public mutating func insert<P: Collection, C: Collection>(_ element: C, after: Bool, pivot: P,
                                                              fill: ListFill = .standard) -> Bool
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
        edit { $0.insert(element, after: after, at: found, fill: fill) }
        return true
    }

    /// Removes up to `limit` elements equal to `target` (0 = all), scanning from the head or
    /// (`fromTail`) the tail; returns how many were removed.
    public mutating func removeAll<C: Collection>(equalTo target: C, limit: Int, fromTail: Bool) -> Int
    where C.Element == UInt8 {
        var matches = false
        visit(from: 0) { _, candidate in
            matches = candidate.equals(target)
            return !matches
        }
        if !matches { return 0 }
        return edit { $0.removeAll(equalTo: target, limit: limit, fromTail: fromTail) }
    }
}

/// The chunked form's storage, shared between copies of a list until one of them writes.
@usableFromInline
final class ChunkedListBox: @unchecked Sendable {
    // Sendable: a box is only mutated through `ListValue.withChunked`, after
    // isKnownUniquelyReferenced; a shared box is copied first, like an Array's buffer.
    var list: ChunkedList

    init(_ list: ChunkedList) { self.list = list }
}

/// A list of several chunks: a deque of chunks with free slots in front.
struct ChunkedList {
    /// Chunk slots; `chunks[0..<head]` are empty free slots for cheap head insertion.
    var chunks: [ListChunk] = []
    var head = 0
    /// Number of elements.
    private(set) var count = 0
    /// Sum of the chunks' entry bytes.
    private(set) var payloadBytes = 0

    /// A list holding `chunk` (none if it is empty).
    init(_ chunk: ListChunk) {
        if chunk.count > 0 { chunks = [chunk] }
        count = chunk.count
        payloadBytes = chunk.entryBytes
    }

    var chunkCount: Int { chunks.count - head }

    /// The single chunk of a one-chunk list; nil otherwise.
    var onlyChunk: ListChunk? { chunkCount == 1 ? chunks[head] : nil }

    func forEachChunk(_ body: (ArraySlice<UInt8>, Int) throws -> Void) rethrows {
        for index in head..<chunks.count { try body(chunks[index].entries, chunks[index].count) }
    }

    mutating func pushElement<C: Collection>(_ element: C, size: Int, at end: ListEnd, fill: ListFill)
    where C.Element == UInt8 {
        switch end {
        case .tail:
            if chunks.count == head || !chunks[chunks.count - 1].accepts(elementLength: element.count, fill: fill) {
                var fresh = ListChunk()
                if chunks.count > head { fresh.reserveFullChunk(fill) }
                chunks.append(fresh)
            }
            chunks[chunks.count - 1].append(element, size: size)
        case .head:
            if chunks.count == head || !chunks[head].accepts(elementLength: element.count, fill: fill) {
                var fresh = ListChunk()
                if chunks.count > head { fresh.reserveFullChunk(fill) }
                insertHeadChunk(fresh)
            }
            chunks[head].prepend(element, size: size)
        }
        count += 1
        payloadBytes += size
    }

    /// Adds a non-empty chunk after the last one.
    mutating func appendChunk(_ chunk: ListChunk) {
        chunks.append(chunk)
        count += chunk.count
        payloadBytes += chunk.entryBytes
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

    mutating func pop(_ end: ListEnd, _ body: (ListElement) -> Void) -> Bool {
        if count == 0 { return false }
        let index = end == .head ? head : chunks.count - 1
        let size = chunks[index].removeEnd(end, body)
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

    mutating func remove(_ n: Int, from end: ListEnd) {
        var left = min(n, count)
        while left > 0 {
            let index = end == .head ? head : chunks.count - 1
            if chunks[index].count <= left {
                left -= chunks[index].count
                count -= chunks[index].count
                payloadBytes -= chunks[index].entryBytes
                dropChunk(at: index)
            } else {
                let removed = chunks[index].removeElements(left, from: end)
                count -= left
                payloadBytes -= removed
                left = 0
            }
        }
    }

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

    func element(at index: Int) -> ListElement? {
        if index < 0 || index >= count { return nil }
        let (slot, offset) = locate(index)
        return chunks[slot].element(at: offset)
    }

    func visit(from start: Int, reverse: Bool, _ body: (Int, ListElement) -> Bool) {
        walkChunks(from: start, reverse: reverse) { slot, offset, index in
            chunks[slot].visit(from: offset, reverse: reverse, index: &index, body)
        }
    }

    func visitViews(from start: Int, reverse: Bool, _ body: (Int, ListElementView) -> Bool) {
        walkChunks(from: start, reverse: reverse) { slot, offset, index in
            chunks[slot].visitViews(from: offset, reverse: reverse, index: &index, body)
        }
    }

    /// Calls `visitChunk` with each chunk slot from the one holding `start`, the offset to
    /// start at inside it and the running element index, until it returns false.
    @inline(__always)
    private func walkChunks(from start: Int, reverse: Bool, _ visitChunk: (Int, Int, inout Int) -> Bool) {
        if start < 0 || start >= count { return }
        var (slot, offset) = locate(start)
        var index = start
        while slot >= head && slot < chunks.count {
            if !visitChunk(slot, offset, &index) { return }
            if reverse {
                slot -= 1
                if slot >= head { offset = chunks[slot].count - 1 }
            } else {
                slot += 1
                offset = 0
            }
        }
    }

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

    /// Puts `chunk` in a new slot at `slot` (the chunks from `slot` on move up one).
    private mutating func insertChunk(_ chunk: ListChunk, at slot: Int) {
        if slot == head {
            insertHeadChunk(chunk)
        } else {
            chunks.insert(chunk, at: slot)
        }
    }

    /// LSET: the entry is replaced inside its chunk whatever the fill, as quicklist.c's
    /// quicklistReplaceEntry does with lpReplace for an element that fits a node.
    mutating func replace<C: Collection>(at index: Int, with element: C) -> Bool where C.Element == UInt8 {
        let (slot, offset) = locate(index)
        let (removed, added) = chunks[slot].replaceEntry(at: offset, with: element)
        payloadBytes += added - removed
        return true
    }

    /// Inserts `element` before or after the element at `index` (0..<count) where quicklist.c's
    /// _quicklistInsert puts it: into the element's chunk if `fill` lets it grow; at an edge of
    /// a full chunk, into the neighbour if that one may grow, else into a chunk of its own;
    /// inside a full chunk, by splitting it at the element (the new element joins the part
    /// beyond the split) and merging the chunks around the split as _quicklistMergeNodes does.
    mutating func insert<C: Collection>(_ element: C, after: Bool, at index: Int, fill: ListFill)
    where C.Element == UInt8 {
        let (slot, offset) = locate(index)
        let length = element.count
        let size = ListpackEntry.encodedSize(element)
        let full = !chunks[slot].accepts(elementLength: length, fill: fill)
        let atTail = after && offset == chunks[slot].count - 1
        let atHead = !after && offset == 0
        if !full {
            chunks[slot].insertEntry(element, size: size, at: after ? offset + 1 : offset)
            count += 1
            payloadBytes += size
            return
        }
        count += 1
        payloadBytes += size
        if atTail && slot + 1 < chunks.count && chunks[slot + 1].accepts(elementLength: length, fill: fill) {
            chunks[slot + 1].prepend(element, size: size)
        } else if atHead && slot > head && chunks[slot - 1].accepts(elementLength: length, fill: fill) {
            chunks[slot - 1].append(element, size: size)
        } else if atTail || atHead {
            var alone = ListChunk()
            alone.append(element, size: size)
            insertChunk(alone, at: after ? slot + 1 : slot)
        } else {
            // _quicklistSplitNode: after the element, the node keeps 0...offset and the new
            // node (after it) takes the rest behind the inserted element; before it, the node
            // keeps offset... and the new node (before it) takes 0..<offset then the element.
            let elements = elements(ofChunk: slot)
            let kept = after ? elements[...offset] : elements[offset...]
            var split = ListChunk()
            if !after { split.append(contentsOf: elements[..<offset]) }
            split.append(element, size: size)
            if after { split.append(contentsOf: elements[(offset + 1)...]) }
            var node = ListChunk()
            node.append(contentsOf: kept)
            chunks[slot] = node
            // _quicklistMergeNodes starts from the split node, wherever the new one put it.
            let center: Int
            if after {
                chunks.insert(split, at: slot + 1)
                center = slot
            } else if slot == head {
                insertHeadChunk(split)
                center = head + 1
            } else {
                chunks.insert(split, at: slot)
                center = slot + 1
            }
            mergeAround(center, fill: fill)
        }
    }

    /// quicklist.c's _quicklistMergeNodes around the chunk at `center`: the two before it, the
    /// two after it, then the center with its neighbours, each pair joined when
    /// `ListFill.allowsMerge` lets it.
    private mutating func mergeAround(_ center: Int, fill: ListFill) {
        var center = center
        if center - 2 >= head && allowsMerge(center - 2, fill) {
            join(center - 2)
            center -= 1
        }
        if center + 2 < chunks.count && allowsMerge(center + 1, fill) { join(center + 1) }
        var target = center
        if center - 1 >= head && allowsMerge(center - 1, fill) {
            join(center - 1)
            target = center - 1
        }
        if target + 1 < chunks.count && allowsMerge(target, fill) { join(target) }
    }

    /// True if the chunks at `slot` and `slot + 1` may become one.
    private func allowsMerge(_ slot: Int, _ fill: ListFill) -> Bool {
        fill.allowsMerge(entryBytes: chunks[slot].entryBytes + chunks[slot + 1].entryBytes,
                         count: chunks[slot].count + chunks[slot + 1].count)
    }

    /// Appends the chunk at `slot + 1` to the one at `slot`.
    private mutating func join(_ slot: Int) {
        chunks[slot].appendEntries(of: chunks[slot + 1])
        chunks.remove(at: slot + 1)
    }

    /// LREM: matching entries are cut out of each chunk in place (quicklist.c quicklistDelIndex
    /// on each match); a chunk left empty is dropped.
    mutating func removeAll<C: Collection>(equalTo target: C, limit: Int, fromTail: Bool) -> Int
    where C.Element == UInt8 {
        var removed = 0
        var slot = fromTail ? chunks.count - 1 : head
        while slot >= head && slot < chunks.count && (limit == 0 || removed < limit) {
            let (matched, bytes) = chunks[slot].removeEntries(equalTo: target, limit: limit == 0 ? 0 : limit - removed,
                                                              fromTail: fromTail)
            removed += matched
            count -= matched
            payloadBytes -= bytes
            let wasHead = slot == head
            let dropped = chunks[slot].count == 0
            if dropped { dropChunk(at: slot) }
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

/// One chunk in one buffer: empty (no buffer), or a 2-byte little-endian element count followed
/// by listpack entries (no listpack header or terminator). `ListFill` keeps a chunk of several
/// elements under 64 KB of entries of at least 2 bytes, or under 32768 elements, so the count
/// fits 16 bits.
@usableFromInline
struct ListChunk: Sendable {
    @usableFromInline var bytes: [UInt8] = []

    /// Bytes before the first entry: the element count.
    static let headerBytes = 2

    /// Number of elements.
    var count: Int {
        get { bytes.isEmpty ? 0 : Int(bytes[0]) | Int(bytes[1]) << 8 }
        set {
            assert(newValue < 65536, "list chunk count")
            bytes[0] = UInt8(truncatingIfNeeded: newValue)
            bytes[1] = UInt8(truncatingIfNeeded: newValue >> 8)
        }
    }

    /// Bytes of entries.
    var entryBytes: Int { bytes.isEmpty ? 0 : bytes.count - ListChunk.headerBytes }

    /// The entries, without the count.
    var entries: ArraySlice<UInt8> { bytes.isEmpty ? [] : bytes[ListChunk.headerBytes...] }

    /// True if an element of `elementLength` bytes may join the chunk under `fill` (an empty
    /// chunk takes any one element).
    @inline(__always)
    func accepts(elementLength: Int, fill: ListFill) -> Bool {
        count == 0 || fill.allowsInsert(entryBytes: entryBytes, count: count, elementLength: elementLength)
    }

    /// Below this many bytes a chunk grows to the exact size it needs instead of doubling: most
    /// lists are small, and doubling left up to half of each one's buffer unused (measured:
    /// 100k lists of 10 short elements). A realloc of a buffer this small costs little.
    static let exactGrowthBytesMax = 512

    /// Makes room for an entry of `size` bytes, starting the count when the chunk is empty.
    @inline(__always)
    mutating func reserve(_ size: Int) {
        let needed = max(bytes.count, ListChunk.headerBytes) + size
        if needed > bytes.capacity && needed <= ListChunk.exactGrowthBytesMax { bytes.reserveCapacity(needed) }
        if bytes.isEmpty { bytes.append(contentsOf: [0, 0]) }
    }

    /// Reserves a whole chunk's bytes when `fill` limits sizes (a chunk after the first in a
    /// growing list fills up); under a count limit the chunk grows as elements come.
    mutating func reserveFullChunk(_ fill: ListFill) {
        if let limit = fill.fullChunkEntryBytes { bytes.reserveCapacity(ListChunk.headerBytes + limit) }
    }

    /// The chunk in a buffer no larger than it needs (a list going back to the compact form
    /// keeps a chunk that may have reserved a full 8 KB).
    func shrunk() -> ListChunk {
        if bytes.capacity <= max(bytes.count * 2, ListChunk.exactGrowthBytesMax) { return self }
        var copy = ListChunk()
        copy.bytes.reserveCapacity(bytes.count)
        copy.bytes.append(contentsOf: bytes)
        return copy
    }

    mutating func append<C: Collection>(_ element: C, size: Int) where C.Element == UInt8 {
        reserve(size)
        ListpackEntry.append(element, size: size, to: &bytes)
        count += 1
    }

    /// Appends `elements` in order.
    mutating func append(contentsOf elements: ArraySlice<[UInt8]>) {
        for element in elements { append(element, size: ListpackEntry.encodedSize(element)) }
    }

    /// Appends `other`'s entries (listpack entries concatenate as they are).
    mutating func appendEntries(of other: ListChunk) {
        if other.count == 0 { return }
        if count == 0 {
            self = other
            return
        }
        let total = count + other.count
        bytes.append(contentsOf: other.entries)
        count = total
    }

    mutating func prepend<C: Collection>(_ element: C, size: Int) where C.Element == UInt8 {
        reserve(size)
        ListpackEntry.insert(element, size: size, into: &bytes, at: ListChunk.headerBytes)
        count += 1
    }

    /// Byte position of the entry at `offset` (0..<count), walked to from the nearer end.
    func entryStart(at offset: Int) -> Int {
        if offset <= count / 2 {
            var position = ListChunk.headerBytes
            for _ in 0..<offset { position += ListpackEntry.entrySize(bytes, at: position) }
            return position
        }
        var position = bytes.count
        for _ in offset..<count { position = ListpackEntry.start(endingAt: position, in: bytes) }
        return position
    }

    /// Replaces the entry at `offset` (0..<count) by `element` in place (listpack.c lpReplace);
    /// returns the entry sizes removed and added.
    mutating func replaceEntry<C: Collection>(at offset: Int, with element: C) -> (removed: Int, added: Int)
    where C.Element == UInt8 {
        let start = entryStart(at: offset)
        let removed = ListpackEntry.entrySize(bytes, at: start)
        let added = ListpackEntry.encodedSize(element)
        bytes.removeSubrange(start..<(start + removed))
        ListpackEntry.insert(element, size: added, into: &bytes, at: start)
        return (removed, added)
    }

    /// Inserts `element` (an entry of `size` bytes) so that it becomes element `offset`
    /// (0...count) of a non-empty chunk, in place.
    mutating func insertEntry<C: Collection>(_ element: C, size: Int, at offset: Int) where C.Element == UInt8 {
        let position = offset == count ? bytes.count : entryStart(at: offset)
        ListpackEntry.insert(element, size: size, into: &bytes, at: position)
        count += 1
    }

    /// Removes up to `limit` (0: no limit) entries equal to `target` in place, from the head or
    /// (`fromTail`) the tail; returns how many and their bytes. An emptied chunk has no buffer.
    mutating func removeEntries<C: Collection>(equalTo target: C, limit: Int, fromTail: Bool)
        -> (count: Int, bytes: Int) where C.Element == UInt8 {
        var removed = 0
        var removedBytes = 0
        var remaining = count
        if fromTail {
            var end = bytes.count
            while end > ListChunk.headerBytes && (limit == 0 || removed < limit) {
                let start = ListpackEntry.start(endingAt: end, in: bytes)
                if matches(at: start, target) {
                    bytes.removeSubrange(start..<end)
                    removedBytes += end - start
                    removed += 1
                    remaining -= 1
                }
                end = start
            }
        } else {
            var position = ListChunk.headerBytes
            while position < bytes.count && (limit == 0 || removed < limit) {
                let size = ListpackEntry.entrySize(bytes, at: position)
                if matches(at: position, target) {
                    bytes.removeSubrange(position..<(position + size))
                    removedBytes += size
                    removed += 1
                    remaining -= 1
                } else {
                    position += size
                }
            }
        }
        if remaining == 0 {
            bytes = []
        } else if removed > 0 {
            count = remaining
        }
        return (removed, removedBytes)
    }

    /// True if the entry at byte `position` equals `target`. The decoded view of the buffer ends
    /// inside this call, so the caller's edit that follows finds the buffer unshared.
    private func matches<C: Collection>(at position: Int, _ target: C) -> Bool where C.Element == UInt8 {
        ListpackEntry.decode(bytes, at: position).element.equals(target)
    }

    /// Removes the element at `end`, handing it to `body` first (a view into the buffer);
    /// returns the entry's size. The chunk must not be empty.
    @discardableResult
    mutating func removeEnd(_ end: ListEnd, _ body: (ListElement) -> Void) -> Int {
        let start = end == .head ? ListChunk.headerBytes : ListpackEntry.start(endingAt: bytes.count, in: bytes)
        let size: Int
        do {
            // The element views the buffer: its lifetime ends here, before the edit below, or
            // the buffer is shared when edited and copied whole (measured: most of an RPOP's
            // instructions on a full chunk).
            let (element, entrySize) = ListpackEntry.decode(bytes, at: start)
            body(element)
            size = entrySize
        }
        let remaining = count - 1
        if remaining == 0 {
            bytes = []
            return size
        }
        if end == .head {
            bytes.removeSubrange(start..<(start + size))
        } else {
            bytes.removeLast(size)
        }
        count = remaining
        return size
    }

    /// Removes `n` (0 < n < count) elements from `end`; returns the bytes removed.
    @discardableResult
    mutating func removeElements(_ n: Int, from end: ListEnd) -> Int {
        let remaining = count - n
        if end == .head {
            var position = ListChunk.headerBytes
            for _ in 0..<n { position += ListpackEntry.decode(bytes, at: position).size }
            bytes.removeSubrange(ListChunk.headerBytes..<position)
            count = remaining
            return position - ListChunk.headerBytes
        }
        var position = bytes.count
        for _ in 0..<n { position = ListpackEntry.start(endingAt: position, in: bytes) }
        let removed = bytes.count - position
        bytes.removeLast(removed)
        count = remaining
        return removed
    }

    /// The element at `offset` (0..<count).
    func element(at offset: Int) -> ListElement? {
        if offset < 0 || offset >= count { return nil }
        return ListpackEntry.decode(bytes, at: entryStart(at: offset)).element
    }

    /// Visits elements from `offset` toward the tail or (`reverse`) the head, numbering them
    /// from `index` (advanced as it goes); false when `body` stopped the walk. The entries
    /// before `offset` are stepped over by size from the nearer end, not decoded (as lpSeek).
    func visit(from offset: Int, reverse: Bool, index: inout Int, _ body: (Int, ListElement) -> Bool) -> Bool {
        walk(bytes, from: offset, reverse: reverse, index: &index) { current, parts in
            body(current, parts.bytes.map { .bytes(bytes[$0]) } ?? .integer(parts.integer))
        }
    }

    /// `visit` with each element as a view of the chunk's bytes, valid only inside `body`:
    /// no reference counting per element (LRANGE writes a hundred of them per request).
    func visitViews(from offset: Int, reverse: Bool, index: inout Int, _ body: (Int, ListElementView) -> Bool)
        -> Bool {
        bytes.withUnsafeBytes { raw in
            walk(raw, from: offset, reverse: reverse, index: &index) { current, parts in
                body(current, parts.bytes.map { .bytes(UnsafeRawBufferPointer(rebasing: raw[$0])) }
                    ?? .integer(parts.integer))
            }
        }
    }

    /// The walk behind `visit` and `visitViews`, over `entries` (this chunk's bytes).
    @inline(__always)
    private func walk<B: RandomAccessCollection>(_ entries: B, from offset: Int, reverse: Bool, index: inout Int,
                                                 _ body: (Int, ListpackEntry.ElementParts) -> Bool) -> Bool
    where B.Index == Int, B.Element == UInt8 {
        var current = index
        defer { index = current }
        if reverse {
            let first = Swift.min(offset, count - 1)
            if first < 0 { return true }
            var position = entryStart(at: first)
            while true {
                let keepGoing = body(current, ListpackEntry.decodeParts(entries, at: position).0)
                current -= 1
                if !keepGoing { return false }
                if position <= ListChunk.headerBytes { return true }
                position = ListpackEntry.start(endingAt: position, in: entries)
            }
        }
        let first = Swift.max(offset, 0)
        if first >= count { return true }
        var position = entryStart(at: first)
        while position < entries.count {
            let (parts, size) = ListpackEntry.decodeParts(entries, at: position)
            let keepGoing = body(current, parts)
            current += 1
            if !keepGoing { return false }
            position += size
        }
        return true
    }

    func forEach(_ body: (ListElement) -> Bool) {
        var position = ListChunk.headerBytes
        while position < bytes.count {
            let (element, size) = ListpackEntry.decode(bytes, at: position)
            if !body(element) { return }
            position += size
        }
    }

    func forEachReversed(_ body: (ListElement) -> Bool) {
        var end = bytes.count
        while end > ListChunk.headerBytes {
            let start = ListpackEntry.start(endingAt: end, in: bytes)
            if !body(ListpackEntry.decode(bytes, at: start).element) { return }
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
        append(element, size: encodedSize(element), to: &blob)
    }

    /// Appends `element`'s entry, whose `encodedSize` is `size`, to `blob`.
    static func append<C: Collection>(_ element: C, size: Int, to blob: inout [UInt8]) where C.Element == UInt8 {
        if size <= composedBytesMax {
            withComposed(element, size: size) { blob.append(contentsOf: $0) }
            return
        }
        let start = blob.count
        blob.append(contentsOf: repeatElement(0, count: size))
        blob.withUnsafeMutableBytes { write(element, size: size, into: $0, at: start) }
    }

    /// Inserts `element`'s entry, whose `encodedSize` is `size`, into `blob` at `offset`.
    static func insert<C: Collection>(_ element: C, size: Int, into blob: inout [UInt8], at offset: Int)
    where C.Element == UInt8 {
        if size <= composedBytesMax {
            withComposed(element, size: size) { blob.insert(contentsOf: $0, at: offset) }
            return
        }
        blob.insert(contentsOf: repeatElement(0, count: size), at: offset)
        blob.withUnsafeMutableBytes { write(element, size: size, into: $0, at: offset) }
    }

    /// Entries up to this size are encoded on the stack and copied in with one call; making
    /// room with `repeatElement(0, ...)` first has Array fill it byte by byte (callgrind: about
    /// 400 instructions of a pipelined LPUSH).
    static let composedBytesMax = 256

    /// Calls `body` with `element`'s entry of `size` (at most `composedBytesMax`) bytes,
    /// encoded in a stack buffer.
    @inline(__always)
    private static func withComposed<C: Collection>(
        _ element: C, size: Int, _ body: (UnsafeRawBufferPointer) -> Void
    ) where C.Element == UInt8 {
        withUnsafeTemporaryAllocation(byteCount: composedBytesMax, alignment: 8) { scratch in
            let entry = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<size])
            write(element, size: size, into: entry, at: 0)
            body(UnsafeRawBufferPointer(entry))
        }
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

    /// The size (backlen included) of the entry starting at `offset`, read from its encoding
    /// byte and length alone (no view of the element is made).
    static func entrySize(_ entries: [UInt8], at offset: Int) -> Int {
        let first = entries[offset]
        let body: Int
        if first & 0x80 == 0 {
            body = 1
        } else if first & 0xC0 == 0x80 {
            body = 1 + Int(first & 0x3f)
        } else if first & 0xE0 == 0xC0 {
            body = 2
        } else if first & 0xF0 == 0xE0 {
            body = 2 + ((Int(first & 0x0f) << 8) | Int(entries[offset + 1]))
        } else {
            switch first {
            case 0xF1: body = 3
            case 0xF2: body = 4
            case 0xF3: body = 5
            case 0xF4: body = 9
            default:
                var length = 0
                for index in 0..<4 { length |= Int(entries[offset + 1 + index]) << (8 * index) }
                body = 5 + length
            }
        }
        return body + backlenBytes(body)
    }

    /// The element whose entry starts at `offset`, and the entry's size (backlen included).
    /// The bytes were written by `write` or validated by the RDB reader.
    static func decode(_ entries: [UInt8], at offset: Int) -> (element: ListElement, size: Int) {
        let (parts, size) = decodeParts(entries, at: offset)
        return (parts.bytes.map { .bytes(entries[$0]) } ?? .integer(parts.integer), size)
    }

    /// An entry's element as positions: the range of its bytes in the listpack, or (nil) its
    /// integer. Lets one decoder serve an array (`decode`, an `ArraySlice` view) and raw bytes
    /// (`ListChunk.visitViews`, no reference counting per element).
    struct ElementParts {
        var integer: Int64 = 0
        var bytes: Range<Int>?
    }

    /// `decode` for any contiguous byte storage indexed from 0.
    @inline(__always)
    static func decodeParts<B: RandomAccessCollection>(_ entries: B, at offset: Int) -> (ElementParts, size: Int)
    where B.Index == Int, B.Element == UInt8 {
        let first = entries[offset]
        var parts = ElementParts()
        let body: Int
        func littleEndian(_ start: Int, _ width: Int) -> Int64 {
            var raw: UInt64 = 0
            for index in 0..<width { raw |= UInt64(entries[start + index]) << (8 * UInt64(index)) }
            let shift = UInt64(64 - 8 * width)
            return Int64(bitPattern: raw << shift) >> Int64(shift)
        }
        if first & 0x80 == 0 {
            parts.integer = Int64(first)
            body = 1
        } else if first & 0xC0 == 0x80 {
            let length = Int(first & 0x3f)
            parts.bytes = (offset + 1)..<(offset + 1 + length)
            body = 1 + length
        } else if first & 0xE0 == 0xC0 {
            var value = (Int64(first & 0x1f) << 8) | Int64(entries[offset + 1])
            if value >= 4096 { value -= 8192 }
            parts.integer = value
            body = 2
        } else if first & 0xF0 == 0xE0 {
            let length = (Int(first & 0x0f) << 8) | Int(entries[offset + 1])
            parts.bytes = (offset + 2)..<(offset + 2 + length)
            body = 2 + length
        } else {
            switch first {
            case 0xF1: parts.integer = littleEndian(offset + 1, 2); body = 3
            case 0xF2: parts.integer = littleEndian(offset + 1, 3); body = 4
            case 0xF3: parts.integer = littleEndian(offset + 1, 4); body = 5
            case 0xF4: parts.integer = littleEndian(offset + 1, 8); body = 9
            default:
                let length = Int(UInt32(truncatingIfNeeded: littleEndian(offset + 1, 4)))
                parts.bytes = (offset + 5)..<(offset + 5 + length)
                body = 5 + length
            }
        }
        return (parts, body + backlenBytes(body))
    }

    /// The offset of the entry that ends at `end`, found through its backlen.
    static func start<B: RandomAccessCollection>(endingAt end: Int, in entries: B) -> Int
    where B.Index == Int, B.Element == UInt8 {
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
