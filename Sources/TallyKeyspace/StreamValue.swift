// StreamValue: Redis streams as ordered listpack nodes (t_stream.c's radix tree of listpacks) plus consumer groups.
import Synchronization
import TallyProtocol

/// `stream-node-max-bytes` and `stream-node-max-entries`, process-wide as Redis's config (set by
/// CONFIG SET and the config file, read by every XADD).
private let streamNodeMaxBytes = Atomic<Int>(4096)
private let streamNodeMaxEntries = Atomic<Int>(100)

/// A stream entry id: milliseconds and a sequence number, compared as a 128-bit integer.
public struct StreamID: Comparable, Hashable, Sendable {
    /// The millisecond part.
    public var ms: UInt64
    /// The sequence part.
    public var seq: UInt64

    /// Creates an id.
    @inlinable public init(_ ms: UInt64, _ seq: UInt64) {
        self.ms = ms
        self.seq = seq
    }

    /// 0-0.
    public static let zero = StreamID(0, 0)
    /// The largest id (`+`).
    public static let max = StreamID(UInt64.max, UInt64.max)

    @inlinable public static func < (lhs: StreamID, rhs: StreamID) -> Bool {
        lhs.ms != rhs.ms ? lhs.ms < rhs.ms : lhs.seq < rhs.seq
    }

    /// The next id, or nil after the maximum (streamIncrID).
    public var successor: StreamID? {
        if seq < UInt64.max { return StreamID(ms, seq + 1) }
        if ms < UInt64.max { return StreamID(ms + 1, 0) }
        return nil
    }

    /// The previous id, or nil before 0-0 (streamDecrID).
    public var predecessor: StreamID? {
        if seq > 0 { return StreamID(ms, seq - 1) }
        if ms > 0 { return StreamID(ms - 1, UInt64.max) }
        return nil
    }

    /// "ms-seq" as bytes (one allocation: it is every XADD's reply).
    public var bytes: [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(41)
        StreamID.appendDecimal(ms, to: &text)
        text.append(UInt8(ascii: "-"))
        StreamID.appendDecimal(seq, to: &text)
        return text
    }

    private static func appendDecimal(_ value: UInt64, to text: inout [UInt8]) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        let start = text.count
        for _ in 0..<digits { text.append(UInt8(ascii: "0")) }
        var remaining = value
        var position = start + digits - 1
        while remaining > 0 {
            text[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
            position -= 1
        }
    }

    /// The 16-byte big-endian form (the radix tree key of a node and of a PEL entry).
    public var bigEndianBytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for index in 0..<8 {
            out[index] = UInt8(truncatingIfNeeded: ms >> (56 - 8 * UInt64(index)))
            out[8 + index] = UInt8(truncatingIfNeeded: seq >> (56 - 8 * UInt64(index)))
        }
        return out
    }

    /// Reads the 16-byte big-endian form; nil for another length.
    public init?<C: Collection>(bigEndian bytes: C) where C.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        var ms: UInt64 = 0
        var seq: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 8 { ms = ms << 8 | UInt64(byte) } else { seq = seq << 8 | UInt64(byte) }
        }
        self.init(ms, seq)
    }
}

/// Appends an integer element: 0...127 (flags, most deltas and counts) as its two-byte entry
/// without building its digits; anything else through the general encoder.
@inline(__always)
func appendListpackInteger(_ value: Int64, to body: inout [UInt8]) {
    if value >= 0 && value <= 127 {
        body.append(UInt8(value))
        body.append(1)
    } else {
        ListpackEntry.append(decimalBytes(value), to: &body)
    }
}

/// Encoded size of an integer element (see `appendListpackInteger`).
@inline(__always)
func listpackIntegerSize(_ value: Int64) -> Int {
    value >= 0 && value <= 127 ? 2 : ListpackEntry.encodedSize(decimalBytes(value))
}

/// Decimal digits of an unsigned integer.
func decimalBytes(_ value: UInt64) -> [UInt8] {
    if value == 0 { return [UInt8(ascii: "0")] }
    var digits: [UInt8] = []
    var rest = value
    while rest > 0 {
        digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
        rest /= 10
    }
    return digits.reversed()
}

/// One pending entry of a group (a NACK): who holds it, when it was last delivered, how often.
public struct StreamPendingEntry: Sendable {
    /// The consumer that holds it.
    public var consumer: [UInt8]
    /// Unix milliseconds of the last delivery.
    public var deliveryTime: Int64
    /// Number of deliveries.
    public var deliveryCount: Int64

    /// Creates a pending entry.
    public init(consumer: [UInt8], deliveryTime: Int64, deliveryCount: Int64) {
        self.consumer = consumer
        self.deliveryTime = deliveryTime
        self.deliveryCount = deliveryCount
    }
}

/// A consumer of a group: its name, when it was last seen, and the ids it holds (sorted).
public struct StreamConsumer: Sendable {
    /// The name.
    public var name: [UInt8]
    /// Unix milliseconds of its last interaction.
    public var seenTime: Int64
    /// Its pending ids, ascending.
    public var pending: [StreamID] = []

    /// Creates a consumer.
    public init(name: [UInt8], seenTime: Int64) {
        self.name = name
        self.seenTime = seenTime
    }
}

/// A consumer group: last delivered id, entries read (-1: unknown), PEL and consumers.
///
/// The PEL and each consumer's pending ids are arrays sorted by id (Redis uses radix trees):
/// deliveries append at the end, an acknowledgement is a binary search and a memmove.
public struct StreamGroup: Sendable {
    /// The group name.
    public var name: [UInt8]
    /// The last id delivered to the group.
    public var lastID: StreamID
    /// Entries read (SCG_INVALID_ENTRIES_READ = -1 when unknown).
    public var entriesRead: Int64
    /// Pending ids, ascending, parallel to `pendingEntries`.
    public private(set) var pendingIDs: [StreamID] = []
    /// The pending entries, parallel to `pendingIDs`.
    public private(set) var pendingEntries: [StreamPendingEntry] = []
    /// Consumers sorted by name (byte order, as rax iterates).
    public private(set) var consumers: [StreamConsumer] = []

    /// Creates a group.
    public init(name: [UInt8], lastID: StreamID, entriesRead: Int64) {
        self.name = name
        self.lastID = lastID
        self.entriesRead = entriesRead
    }

    /// Index of `id` in the PEL, or where it would go.
    public func pendingIndex(_ id: StreamID) -> (index: Int, found: Bool) {
        sortedSearch(pendingIDs, id)
    }

    /// The pending entry of `id`.
    public func pending(_ id: StreamID) -> StreamPendingEntry? {
        let (index, found) = pendingIndex(id)
        return found ? pendingEntries[index] : nil
    }

    /// Index of the consumer `name`.
    public func consumerIndex<C: Collection>(_ name: C) -> (index: Int, found: Bool) where C.Element == UInt8 {
        var low = 0
        var high = consumers.count
        while low < high {
            let middle = (low + high) / 2
            if consumers[middle].name.lexicographicallyPrecedes(name) { low = middle + 1 } else { high = middle }
        }
        return (low, low < consumers.count && consumers[low].name.elementsEqual(name))
    }

    /// The consumer `name`, created when missing; returns its index and whether it was created.
    @discardableResult
    public mutating func ensureConsumer(_ name: [UInt8], now: Int64) -> (index: Int, created: Bool) {
        let (index, found) = consumerIndex(name)
        if found { return (index, false) }
        consumers.insert(StreamConsumer(name: name, seenTime: now), at: index)
        return (index, true)
    }

    /// Sets the seen time of consumer `index`.
    public mutating func touchConsumer(_ index: Int, now: Int64) { consumers[index].seenTime = now }

    /// Removes consumer `index` and its pending entries; returns how many it held.
    public mutating func removeConsumer(_ index: Int) -> Int {
        let consumer = consumers.remove(at: index)
        for id in consumer.pending {
            let (position, found) = pendingIndex(id)
            if found {
                pendingIDs.remove(at: position)
                pendingEntries.remove(at: position)
            }
        }
        return consumer.pending.count
    }

    /// Removes `id` from the PEL and from its consumer; false when it was not pending.
    @discardableResult
    public mutating func acknowledge(_ id: StreamID) -> Bool {
        let (index, found) = pendingIndex(id)
        guard found else { return false }
        let owner = pendingEntries[index].consumer
        pendingIDs.remove(at: index)
        pendingEntries.remove(at: index)
        let (consumer, exists) = consumerIndex(owner)
        if exists { removeSorted(&consumers[consumer].pending, id) }
        return true
    }

    /// Records `id` as pending for consumer `name` (created if needed) with the given delivery
    /// time and count, moving it from a previous owner; the consumer must exist.
    public mutating func assign(_ id: StreamID, to name: [UInt8], deliveryTime: Int64, deliveryCount: Int64) {
        let (index, found) = pendingIndex(id)
        if found {
            let previous = pendingEntries[index].consumer
            if previous != name {
                let (old, exists) = consumerIndex(previous)
                if exists { removeSorted(&consumers[old].pending, id) }
                let (new, _) = consumerIndex(name)
                insertSorted(&consumers[new].pending, id)
            }
            pendingEntries[index] = StreamPendingEntry(consumer: name, deliveryTime: deliveryTime,
                                                       deliveryCount: deliveryCount)
            return
        }
        pendingIDs.insert(id, at: index)
        pendingEntries.insert(StreamPendingEntry(consumer: name, deliveryTime: deliveryTime,
                                                 deliveryCount: deliveryCount), at: index)
        let (consumer, _) = consumerIndex(name)
        insertSorted(&consumers[consumer].pending, id)
    }

    /// Updates the delivery time and count of the pending entry at PEL `index`.
    public mutating func redeliver(at index: Int, time: Int64, count: Int64) {
        pendingEntries[index].deliveryTime = time
        pendingEntries[index].deliveryCount = count
    }

    /// Adds a loaded consumer (RDB): appended, callers load in name order.
    public mutating func loadConsumer(_ consumer: StreamConsumer) {
        let (index, _) = consumerIndex(consumer.name)
        consumers.insert(consumer, at: index)
    }

    /// Points each loaded PEL entry at the consumer that lists it (RDB loading).
    public mutating func bindLoadedConsumers() {
        for consumer in consumers {
            for id in consumer.pending {
                let (index, found) = pendingIndex(id)
                if found { pendingEntries[index].consumer = consumer.name }
            }
        }
    }

    /// Adds a loaded PEL entry (RDB), without touching consumers.
    public mutating func loadPending(_ id: StreamID, _ entry: StreamPendingEntry) {
        let (index, found) = pendingIndex(id)
        if found { pendingEntries[index] = entry } else {
            pendingIDs.insert(id, at: index)
            pendingEntries.insert(entry, at: index)
        }
    }
}

/// Binary search in a sorted id array.
public func sortedSearch(_ ids: [StreamID], _ id: StreamID) -> (index: Int, found: Bool) {
    var low = 0
    var high = ids.count
    while low < high {
        let middle = (low + high) / 2
        if ids[middle] < id { low = middle + 1 } else { high = middle }
    }
    return (low, low < ids.count && ids[low] == id)
}

func insertSorted(_ ids: inout [StreamID], _ id: StreamID) {
    let (index, found) = sortedSearch(ids, id)
    if !found { ids.insert(id, at: index) }
}

func removeSorted(_ ids: inout [StreamID], _ id: StreamID) {
    let (index, found) = sortedSearch(ids, id)
    if found { ids.remove(at: index) }
}

/// One listpack node: entries whose ids are delta-encoded against `master` (the id of the
/// node's first entry, its key in Redis's radix tree).
///
/// `body` holds the node's listpack entries in Redis's exact stream layout, except the first
/// two (live count and deleted count), kept as integers here and encoded when the node is
/// written out: master field count, master fields, 0, then per entry flags, ms-diff, seq-diff,
/// [field count, fields and values | values], lp-count.
public struct StreamNode: Sendable {
    /// The node's key.
    public var master: StreamID
    /// Listpack entries from the master field count on.
    public var body: [UInt8]
    /// Live entries.
    public var live: Int {
        get { Int(counts.live) }
        set { counts.live = Int32(truncatingIfNeeded: newValue) }
    }
    /// Entries flagged deleted.
    public var deleted: Int {
        get { Int(counts.deleted) }
        set { counts.deleted = Int32(truncatingIfNeeded: newValue) }
    }
    /// Listpack elements in `body`.
    public var elements: Int {
        get { Int(counts.elements) }
        set { counts.elements = Int32(truncatingIfNeeded: newValue) }
    }
    /// Master field count.
    var masterFieldCount: Int {
        get { Int(counts.masterFields) }
        set { counts.masterFields = Int32(truncatingIfNeeded: newValue) }
    }
    /// Offset of the first entry in `body`.
    var firstEntryOffset: Int {
        get { Int(counts.firstEntryOffset) }
        set { counts.firstEntryOffset = Int32(truncatingIfNeeded: newValue) }
    }
    /// The counters as 32-bit fields: a node is 48 bytes in the array instead of 64 (a node holds
    /// at most 1 GB of listpack, so every count and offset fits).
    private var counts = NodeCounts()

    private struct NodeCounts: Sendable {
        var live: Int32 = 0
        var deleted: Int32 = 0
        var elements: Int32 = 0
        var masterFields: Int32 = 0
        var firstEntryOffset: Int32 = 0
    }

    /// The complete listpack entries (count and deleted included), as the RDB stores them.
    public var listpackEntries: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 4)
        ListpackEntry.append(decimalBytes(Int64(live)), to: &out)
        ListpackEntry.append(decimalBytes(Int64(deleted)), to: &out)
        out.append(contentsOf: body)
        return out
    }

    /// Listpack element count of the complete node.
    public var listpackElementCount: Int { elements + 2 }

    /// lpBytes of the node as Redis would hold it: header (6), count, deleted, body, end byte.
    var listpackBytes: Int {
        7 + listpackIntegerSize(Int64(live)) + listpackIntegerSize(Int64(deleted))
            + body.count
    }

    /// Rebuilds a node from a complete listpack's entries (RDB); nil if malformed.
    public init?(master: StreamID, listpackEntries entries: [UInt8], count: Int) {
        var offset = 0
        var values: [ListElement] = []
        var sizes: [Int] = []
        while offset < entries.count && values.count < 3 {
            let (element, size) = ListpackEntry.decode(entries, at: offset)
            values.append(element)
            sizes.append(size)
            offset += size
        }
        guard values.count == 3, case .integer(let live) = values[0], case .integer(let deleted) = values[1],
              case .integer(let fields) = values[2], fields >= 0 else { return nil }
        self.master = master
        self.body = Array(entries[(sizes[0] + sizes[1])...])
        self.live = Int(live)
        self.deleted = Int(deleted)
        self.elements = count - 2
        self.masterFieldCount = Int(fields)
        var position = sizes[2]
        for _ in 0..<(fields + 1) {
            guard position < body.count else { return nil }
            position += ListpackEntry.decode(body, at: position).size
        }
        self.firstEntryOffset = position
    }

    init(master: StreamID, fields: [ArraySlice<UInt8>]) {
        self.master = master
        body = []
        // As lpNew(STREAM_LISTPACK_MAX_PRE_ALLOCATE): one buffer for the node's life, shrunk to fit
        // when the next node starts, instead of a doubling series that leaves freed chunks behind.
        body.reserveCapacity(min(max(StreamValue.nodeMaxBytes, 64), 4096))
        live = 0
        deleted = 0
        ListpackEntry.append(decimalBytes(Int64(fields.count)), to: &body)
        for field in fields { ListpackEntry.append(field, to: &body) }
        ListpackEntry.append(decimalBytes(Int64(0)), to: &body)
        elements = fields.count + 2
        masterFieldCount = fields.count
        firstEntryOffset = body.count
    }

    /// Decodes the integer element at `offset`.
    func integer(at offset: Int) -> (Int64, Int) {
        let (element, size) = ListpackEntry.decode(body, at: offset)
        switch element {
        case .integer(let value): return (value, size)
        case .bytes(let bytes): return (parseRedisInteger(bytes) ?? 0, size)
        }
    }

    /// Walks the node's entries from the first; `visit` gets each entry and returns false to stop.
    func forEachEntry(_ visit: (StreamEntryRef) -> Bool) {
        var offset = firstEntryOffset
        while offset < body.count {
            let flagsOffset = offset
            let (flags, flagsSize) = integer(at: offset)
            offset += flagsSize
            let (msDelta, msSize) = integer(at: offset)
            offset += msSize
            let (seqDelta, seqSize) = integer(at: offset)
            offset += seqSize
            let sameFields = flags & 2 != 0
            var pairs = masterFieldCount
            var items = masterFieldCount
            if !sameFields {
                let (count, size) = integer(at: offset)
                offset += size
                pairs = Int(count)
                items = pairs * 2
            }
            let fieldsOffset = offset
            for _ in 0..<items { offset += ListpackEntry.decode(body, at: offset).size }
            offset += ListpackEntry.decode(body, at: offset).size
            let id = StreamID(master.ms &+ UInt64(bitPattern: msDelta), master.seq &+ UInt64(bitPattern: seqDelta))
            let entry = StreamEntryRef(id: id, flagsOffset: flagsOffset, isDeleted: flags & 1 != 0,
                                       sameFields: sameFields, fieldsOffset: fieldsOffset, pairs: pairs)
            if !visit(entry) { return }
        }
    }

    /// The entry's fields and values, interleaved.
    func fields(of entry: StreamEntryRef) -> [ListElement] {
        var out: [ListElement] = []
        out.reserveCapacity(entry.pairs * 2)
        var offset = entry.fieldsOffset
        if entry.sameFields {
            var masterOffset = ListpackEntry.decode(body, at: 0).size
            for _ in 0..<entry.pairs {
                let (field, fieldSize) = ListpackEntry.decode(body, at: masterOffset)
                masterOffset += fieldSize
                let (value, valueSize) = ListpackEntry.decode(body, at: offset)
                offset += valueSize
                out.append(field)
                out.append(value)
            }
        } else {
            for _ in 0..<(entry.pairs * 2) {
                let (element, size) = ListpackEntry.decode(body, at: offset)
                offset += size
                out.append(element)
            }
        }
        return out
    }

    /// True if `fields` equal the master fields, in order.
    func matchesMasterFields(_ fields: [ArraySlice<UInt8>]) -> Bool {
        guard fields.count == masterFieldCount else { return false }
        var offset = ListpackEntry.decode(body, at: 0).size
        for field in fields {
            let (element, size) = ListpackEntry.decode(body, at: offset)
            if !element.equals(field) { return false }
            offset += size
        }
        return true
    }

    /// The id of the node's last entry, deleted or not (lpGetEdgeStreamID).
    var lastEntryID: StreamID {
        var last = master
        forEachEntry { entry in
            last = entry.id
            return true
        }
        return last
    }

    /// Copies `body` into a buffer of its exact size (lpShrinkToFit), when the node is closed.
    mutating func shrink() {
        let count = body.count
        let source = body
        body = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = buffer.initialize(from: source)
            initialized = count
        }
    }
}

/// Where one entry sits in its node.
struct StreamEntryRef {
    let id: StreamID
    let flagsOffset: Int
    let isDeleted: Bool
    let sameFields: Bool
    let fieldsOffset: Int
    let pairs: Int
}

/// How a trim chooses what to remove.
public enum StreamTrimStrategy: Sendable {
    /// Keep at most this many entries.
    case maxLength(Int64)
    /// Remove entries with ids below this one.
    case minimumID(StreamID)
}

/// A stream: entries in listpack nodes ordered by master id, its counters and consumer groups.
///
/// Nodes sit in an array sorted by master id (ids only grow, so XADD appends to the last node
/// and trimming removes from the front); a lookup is a binary search over nodes and a scan of
/// at most `stream-node-max-entries` entries. Node boundaries follow Redis exactly (the same
/// byte and entry limits over the same listpack bytes), so approximate trimming (`~`), which
/// only drops whole nodes, removes what Redis removes.
public struct StreamValue: Sendable {
    /// The nodes, ascending by master id.
    public private(set) var nodes: [StreamNode] = []
    /// Live entries.
    public var length: Int64 = 0
    /// The last id generated or set (XSETID).
    public var lastID = StreamID.zero
    /// The first live id recorded (0-0 when empty).
    public var firstID = StreamID.zero
    /// The largest id removed by XDEL.
    public var maxDeletedID = StreamID.zero
    /// Entries ever added.
    public var entriesAdded: Int64 = 0
    /// Consumer groups sorted by name.
    public var groups: [StreamGroup] = []

    /// Creates an empty stream.
    public init() {}

    /// stream-node-max-bytes: a new node starts when the last one would reach it (0 = no limit).
    public static var nodeMaxBytes: Int {
        get { streamNodeMaxBytes.load(ordering: .relaxed) }
        set { streamNodeMaxBytes.store(newValue, ordering: .relaxed) }
    }

    /// stream-node-max-entries: a new node starts when the last one holds this many (0 = no limit).
    public static var nodeMaxEntries: Int {
        get { streamNodeMaxEntries.load(ordering: .relaxed) }
        set { streamNodeMaxEntries.store(newValue, ordering: .relaxed) }
    }

    /// Node bytes (listpack bodies plus a per-node overhead), kept up to date by every edit so
    /// the memory estimate does not walk the nodes (it runs twice per write).
    private var nodeBytes = 0

    /// Per-node cost besides its listpack bytes: the node struct in the array and the buffer header.
    static let nodeOverheadBytes = 96

    /// Bytes held by nodes and groups, for memory accounting: O(groups + consumers).
    public var payloadBytes: Int {
        var total = nodeBytes
        for group in groups {
            total += 96 + group.name.count + group.pendingIDs.count * 56
            for consumer in group.consumers { total += 64 + consumer.name.count + consumer.pending.count * 16 }
        }
        return total
    }

    /// Appends a node as loaded from an RDB file.
    public mutating func loadNode(_ node: StreamNode) {
        nodeBytes += node.body.count + StreamValue.nodeOverheadBytes
        nodes.append(node)
    }

    /// Removes node `index`, keeping `nodeBytes` right.
    private mutating func removeNode(at index: Int) {
        nodeBytes -= nodes[index].body.count + StreamValue.nodeOverheadBytes
        nodes.remove(at: index)
    }

    // MARK: Adding

    /// Appends an entry with `id` (already validated greater than `lastID`); `pairs` are the
    /// fields and values interleaved.
    public mutating func append(id: StreamID, pairs: [ArraySlice<UInt8>]) {
        var fields: [ArraySlice<UInt8>] = []
        fields.reserveCapacity(pairs.count / 2)
        var valueBytes = 0
        for index in stride(from: 0, to: pairs.count, by: 2) {
            fields.append(pairs[index])
            valueBytes += pairs[index].count + pairs[index + 1].count
        }
        var needsNode = nodes.isEmpty
        if let last = nodes.last {
            var maxBytes = StreamValue.nodeMaxBytes
            if maxBytes == 0 || maxBytes > 1 << 30 { maxBytes = 1 << 30 }
            if last.listpackBytes + valueBytes >= maxBytes {
                needsNode = true
            } else if StreamValue.nodeMaxEntries > 0 && last.live + last.deleted >= StreamValue.nodeMaxEntries {
                needsNode = true
            }
            if needsNode { nodes[nodes.count - 1].shrink() }
        }
        if needsNode {
            let node = StreamNode(master: id, fields: fields)
            nodeBytes += node.body.count + StreamValue.nodeOverheadBytes
            nodes.append(node)
        }
        let slot = nodes.count - 1
        let sameFields = nodes[slot].matchesMasterFields(fields)
        let master = nodes[slot].master
        var node = nodes[slot]
        nodes[slot].body = []
        let before = node.body.count
        appendListpackInteger(sameFields ? 2 : 0, to: &node.body)
        appendListpackInteger(Int64(bitPattern: id.ms &- master.ms), to: &node.body)
        appendListpackInteger(Int64(bitPattern: id.seq &- master.seq), to: &node.body)
        var elements = 4
        if !sameFields {
            appendListpackInteger(Int64(fields.count), to: &node.body)
            elements += 1
        }
        for index in stride(from: 0, to: pairs.count, by: 2) {
            if !sameFields {
                ListpackEntry.append(pairs[index], to: &node.body)
                elements += 1
            }
            ListpackEntry.append(pairs[index + 1], to: &node.body)
            elements += 1
        }
        let lpCount = fields.count + 3 + (sameFields ? 0 : fields.count + 1)
        appendListpackInteger(Int64(lpCount), to: &node.body)
        node.elements += elements
        node.live += 1
        nodeBytes += node.body.count - before
        nodes[slot] = node
        length += 1
        entriesAdded += 1
        lastID = id
        if length == 1 { firstID = id }
    }

    // MARK: Reading

    /// Index of the node that may hold `id`: the last node whose master is <= id (or 0).
    func nodeIndex(for id: StreamID) -> Int {
        var low = 0
        var high = nodes.count
        while low < high {
            let middle = (low + high) / 2
            if nodes[middle].master <= id { low = middle + 1 } else { high = middle }
        }
        return Swift.max(low - 1, 0)
    }

    /// True if a live entry has an id above `id` (a parked XREAD can be served).
    public func hasEntry(after id: StreamID) -> Bool { (lastLiveID.map { $0 > id }) ?? false }

    /// Visits live entries with ids in `start...end`, ascending or descending; `visit` returns
    /// false to stop.
    public func forEach(from start: StreamID, through end: StreamID, reverse: Bool = false,
                        _ visit: (StreamID, [ListElement]) -> Bool) {
        guard !nodes.isEmpty, start <= end else { return }
        if !reverse {
            var index = nodeIndex(for: start)
            var stopped = false
            while index < nodes.count && !stopped {
                let node = nodes[index]
                if node.master > end { break }
                node.forEachEntry { entry in
                    if entry.id > end {
                        stopped = true
                        return false
                    }
                    if entry.isDeleted || entry.id < start { return true }
                    if !visit(entry.id, node.fields(of: entry)) {
                        stopped = true
                        return false
                    }
                    return true
                }
                index += 1
            }
        } else {
            var index = nodeIndex(for: end)
            while index >= 0 {
                let node = nodes[index]
                var refs: [StreamEntryRef] = []
                node.forEachEntry { entry in
                    if entry.id > end { return false }
                    if !entry.isDeleted && entry.id >= start { refs.append(entry) }
                    return true
                }
                for entry in refs.reversed() where !visit(entry.id, node.fields(of: entry)) { return }
                if node.master <= start { return }
                index -= 1
            }
        }
    }

    /// The fields of the live entry `id`, or nil.
    public func entry(_ id: StreamID) -> [ListElement]? {
        var found: [ListElement]?
        forEach(from: id, through: id) { _, fields in
            found = fields
            return false
        }
        return found
    }

    /// True if `id` is a live entry.
    public func contains(_ id: StreamID) -> Bool { entry(id) != nil }

    /// The first live id, or nil (streamGetEdgeID first, skipping tombstones).
    public var firstLiveID: StreamID? {
        var found: StreamID?
        forEach(from: .zero, through: .max) { id, _ in
            found = id
            return false
        }
        return found
    }

    /// The last live id, or nil (streamLastValidID).
    public var lastLiveID: StreamID? {
        var found: StreamID?
        forEach(from: .zero, through: .max, reverse: true) { id, _ in
            found = id
            return false
        }
        return found
    }

    // MARK: Removing

    /// Flags entry `id` deleted (XDEL); false if it is not a live entry. An emptied node is freed.
    public mutating func delete(_ id: StreamID) -> Bool {
        guard !nodes.isEmpty else { return false }
        let index = nodeIndex(for: id)
        var offset: Int?
        var flagsValue: Int64 = 0
        nodes[index].forEachEntry { entry in
            if entry.id == id && !entry.isDeleted {
                offset = entry.flagsOffset
                flagsValue = (entry.sameFields ? 2 : 0) | 1
                return false
            }
            return entry.id < id
        }
        guard let offset else { return false }
        if nodes[index].live == 1 {
            removeNode(at: index)
        } else {
            // Flags 0...3 are one-byte 7-bit integers: the deleted flag is set in place.
            nodes[index].body[offset] = UInt8(flagsValue)
            nodes[index].live -= 1
            nodes[index].deleted += 1
        }
        length -= 1
        return true
    }

    /// Trims as streamTrim does: whole nodes first, then (unless `approximate`) entries of the
    /// first remaining node; `limit` caps removed entries (0 = none). Returns how many went.
    public mutating func trim(_ strategy: StreamTrimStrategy, approximate: Bool, limit: Int64) -> Int64 {
        var removed: Int64 = 0
        while !nodes.isEmpty {
            if case .maxLength(let maxLength) = strategy, length <= maxLength { break }
            let entries = Int64(nodes[0].live)
            if limit > 0 && removed + entries > limit { break }
            let dropsNode: Bool
            switch strategy {
            case .maxLength(let maxLength): dropsNode = length - entries >= maxLength
            case .minimumID(let minimum): dropsNode = nodes[0].lastEntryID < minimum
            }
            if dropsNode {
                removeNode(at: 0)
                length -= entries
                removed += entries
                continue
            }
            if approximate { break }
            var flagOffsets: [(Int, Int64)] = []
            var remaining = length
            nodes[0].forEachEntry { entry in
                switch strategy {
                case .maxLength(let maxLength): if remaining <= maxLength { return false }
                case .minimumID(let minimum): if entry.id >= minimum { return false }
                }
                if !entry.isDeleted {
                    flagOffsets.append((entry.flagsOffset, (entry.sameFields ? 2 : 0) | 1))
                    remaining -= 1
                }
                return true
            }
            for (offset, flags) in flagOffsets { nodes[0].body[offset] = UInt8(flags) }
            let count = Int64(flagOffsets.count)
            nodes[0].live -= Int(count)
            nodes[0].deleted += Int(count)
            length -= count
            removed += count
            break
        }
        if length == 0 {
            firstID = .zero
        } else if removed > 0 {
            firstID = firstLiveID ?? .zero
        }
        return removed
    }

    // MARK: Groups

    /// Index of group `name`.
    public func groupIndex<C: Collection>(_ name: C) -> (index: Int, found: Bool) where C.Element == UInt8 {
        var low = 0
        var high = groups.count
        while low < high {
            let middle = (low + high) / 2
            if groups[middle].name.lexicographicallyPrecedes(name) { low = middle + 1 } else { high = middle }
        }
        return (low, low < groups.count && groups[low].name.elementsEqual(name))
    }

    // MARK: Group lag (t_stream.c streamRangeHasTombstones / streamEstimateDistanceFromFirstEverEntry)

    /// True if a deleted entry may lie in `start...end`.
    public func rangeHasTombstones(_ start: StreamID?, _ end: StreamID?) -> Bool {
        if length == 0 || maxDeletedID == .zero { return false }
        if firstID > maxDeletedID { return false }
        let low = start ?? .zero
        let high = end ?? .max
        return low <= maxDeletedID && maxDeletedID <= high
    }

    /// The entries-read counter a group at `id` would have, or -1 when it cannot be known.
    public func estimateDistance(to id: StreamID) -> Int64 {
        if entriesAdded == 0 { return 0 }
        if length == 0 && id <= lastID { return entriesAdded }
        if id == lastID { return entriesAdded }
        if id > lastID { return -1 }
        if maxDeletedID == .zero || maxDeletedID < firstID {
            if id < firstID { return entriesAdded - length }
            if id == firstID { return entriesAdded - length + 1 }
        }
        return -1
    }

    /// The lag of `group`, or nil when unknown (streamReplyWithCGLag).
    public func lag(of group: StreamGroup) -> Int64? {
        if entriesAdded == 0 { return 0 }
        if group.entriesRead != -1 && !rangeHasTombstones(group.lastID, nil) {
            return entriesAdded - group.entriesRead
        }
        let read = estimateDistance(to: group.lastID)
        return read == -1 ? nil : entriesAdded - read
    }

    /// Number of radix tree nodes Redis's rax would hold for the node keys (XINFO STREAM's
    /// radix-tree-nodes): the compressed trie over the 16-byte big-endian master ids.
    public var radixTreeNodeCount: Int {
        if nodes.isEmpty { return 1 }
        let keys = nodes.map { $0.master.bigEndianBytes }
        return StreamValue.trieNodes(keys, 0..<keys.count, depth: 0)
    }

    static func trieNodes(_ keys: [[UInt8]], _ range: Range<Int>, depth: Int) -> Int {
        if depth == 16 { return 1 }
        let first = keys[range.lowerBound]
        let last = keys[range.upperBound - 1]
        var common = 0
        while depth + common < 16 && first[depth + common] == last[depth + common] { common += 1 }
        if common > 0 { return 1 + trieNodes(keys, range, depth: depth + common) }
        var total = 1
        var start = range.lowerBound
        while start < range.upperBound {
            var stop = start + 1
            while stop < range.upperBound && keys[stop][depth] == keys[start][depth] { stop += 1 }
            total += trieNodes(keys, start..<stop, depth: depth + 1)
            start = stop
        }
        return total
    }
}

extension Shard {
    /// `withStream` for a body without a result, not generic: a generic call from another
    /// module runs `withAggregate` unspecialized (runtime metadata lookups and value-witness
    /// copies of the stream took a quarter of an XADD). Returns false when the key is absent.
    public func updateStream(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout StreamValue, inout Bool) throws(KeyspaceError) -> Void
    ) throws(KeyspaceError) -> Bool {
        try withAggregate(database, key, now: now, create: create, body) != nil
    }

    /// Applies `body` to the stream at `key` (see `withAggregate`); a stream is never removed
    /// for being empty.
    @inlinable
    public func withStream<R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout StreamValue, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var result: R?
        _ = try updateStream(database, key, now: now, create: create) {
            (value: inout StreamValue, changed: inout Bool) throws(KeyspaceError) in
            result = try body(&value, &changed)
        }
        return result
    }
}
