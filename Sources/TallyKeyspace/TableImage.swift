// TableImage: one database's table in one shard as it was when a snapshot was taken, serialized
// a page of slots at a time.
//
//   snapshot instant          writer changes slot s          saver (BGSAVE thread)
//   every page pending   ──►  page s/1024 pending? encode  ──►  under the shard lock: encode the
//   (all shards locked)       it, then change the slot          next pending page, take the
//                                                               chunks writers encoded, write
//
// Before, a writer reaching a shard whose image the save had not written yet serialized that
// whole shard first (so it could change the table in place instead of copying it): with 2M
// keys over 16 shards that one INCR waited about 150 ms. Now the most any command pays for a
// snapshot is one page (`KeyTableStorage.pageSlots` slots), like a forked child's copy of one
// memory page (Redis's rdbSaveBackground relies on fork's copy-on-write); every page is
// encoded exactly once, by whichever of the writer or the saver reaches it first, so the save
// holds exactly the keyspace at the snapshot instant.
//
// A rehash moves every cell, so when the live table grows (or is rebuilt) during a save the
// image takes the old buffers and the references of the cells it has not captured yet; when
// the table leaves the shard (a flush) or is copied away from a second holder, the image keeps
// the storage object, which the shard no longer changes.

/// The occupied slots of one page of a table image, as (key, entry) pairs in slot order: what
/// a `ShardImageSerializer` encodes.
public struct TablePage: Sequence {
    let block: UnsafeMutableRawPointer
    let tags: UnsafeRawPointer
    let expiries: UnsafeMutablePointer<Int64>?
    let slots: Range<Int>

    /// Slots in the page (occupied or not): a bound on its entries.
    public var slotCount: Int { slots.count }

    public struct Iterator: IteratorProtocol {
        let page: TablePage
        var slot: Int

        public mutating func next() -> (key: Key, value: Entry)? {
            while slot < page.slots.upperBound {
                let current = slot
                slot += 1
                guard page.tags.load(fromByteOffset: current, as: UInt8.self) & 0x80 == 0 else { continue }
                let cell = page.block + current &* KeyTableStorage.cellBytes
                var entry = Entry(value: KeyTableStorage.value(ofCell: cell), access: cell.load(as: UInt32.self))
                if let expiries = page.expiries { entry.expiryStorage = expiries[current] }
                return (KeyTableStorage.withKeyBytes(cell) { Key($0) }, entry)
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(page: self, slot: slots.lowerBound) }
}

/// Turns the entries of one page of a table image into the bytes its consumer writes later
/// (for an RDB: the entries' records, prefix-compressed). Called under the shard's lock.
public typealias ShardImageSerializer = @Sendable (_ page: TablePage) -> [UInt8]

/// One table's pre-image, captured page by page (see the file comment). Every access holds the
/// lock of the shard the table belongs to: writers reach it through `KeyTableStorage.image`,
/// the consumer through `KeyspaceImage`.
final class TableImage {
    private let serializer: ShardImageSerializer
    /// The live storage while attached (it holds this image; its buffers are the ones read).
    private var live: Unmanaged<KeyTableStorage>?
    /// The storage after a hand-off: kept alive, no longer changed by the shard.
    private var owner: KeyTableStorage?
    /// After a rehash: buffers this image frees, whose uncaptured cells it holds references for.
    private var ownsBuffers = false
    private var block: UnsafeMutableRawPointer
    private var blockBytes: Int
    private var tags: UnsafeMutablePointer<UInt64>
    private var expiries: UnsafeMutablePointer<Int64>?
    private let slotCount: Int
    /// One bit per page, set while the page is not captured.
    private var pendingPages: [UInt64]
    private var pagesLeft: Int
    private var cursor = 0
    /// Encoded pages not yet handed to the consumer, in capture order.
    private var chunks: [[UInt8]] = []

    /// Attaches a new image to `storage` (caller holds the shard lock; no image attached).
    init(storage: KeyTableStorage, serializer: @escaping ShardImageSerializer) {
        self.serializer = serializer
        (block, blockBytes, tags, expiries) = storage.buffers
        slotCount = storage.groupCount * KeyTableStorage.groupWidth
        pagesLeft = (slotCount + KeyTableStorage.pageSlots - 1) / KeyTableStorage.pageSlots
        pendingPages = Array(repeating: 0, count: (pagesLeft + 63) / 64)
        for page in 0..<pagesLeft { pendingPages[page >> 6] |= 1 << UInt64(page & 63) }
        live = Unmanaged.passUnretained(storage)
        storage.image = self
    }

    /// True once every page is captured (the chunks may still wait for the consumer).
    var isComplete: Bool { pagesLeft == 0 }

    /// Captures `page` unless it already was.
    func capture(page: Int) {
        let bit: UInt64 = 1 << UInt64(page & 63)
        guard pendingPages[page >> 6] & bit != 0 else { return }
        pendingPages[page >> 6] &= ~bit
        pagesLeft -= 1
        let slots = page * KeyTableStorage.pageSlots ..< min(slotCount, (page + 1) * KeyTableStorage.pageSlots)
        let chunk = serializer(TablePage(block: block, tags: UnsafeRawPointer(tags), expiries: expiries, slots: slots))
        if !chunk.isEmpty { chunks.append(chunk) }
        if ownsBuffers { destroyCells(slots) }
        if pagesLeft == 0 { letGo() }
    }

    /// Captures the next page not captured yet, if any (the consumer's step).
    func captureNext() {
        let pages = pendingPages.count * 64
        while cursor < pages {
            let word = pendingPages[cursor >> 6] >> UInt64(cursor & 63)
            if word == 0 {
                cursor = (cursor | 63) + 1
                continue
            }
            cursor += word.trailingZeroBitCount
            capture(page: cursor)
            return
        }
    }

    /// Captures every page left.
    func captureAll() {
        while pagesLeft > 0 { captureNext() }
    }

    /// Hands over the pages encoded so far.
    func takeChunks() -> [[UInt8]] {
        defer { chunks = [] }
        return chunks
    }

    /// Keeps `storage`, which the shard no longer changes, and reads what is left from it.
    func adopt(owner storage: KeyTableStorage) {
        live = nil
        owner = storage
    }

    /// Takes the buffers a rehash of the live storage just left (its cells were moved bitwise
    /// into new ones): the cells not captured yet get their own references to what they hold.
    func adopt(block: UnsafeMutableRawPointer, bytes: Int, tags: UnsafeMutablePointer<UInt64>, groupCount: Int,
               expiries: UnsafeMutablePointer<Int64>?) {
        precondition(block == self.block && groupCount * KeyTableStorage.groupWidth == slotCount,
                     "a table image adopts the buffers it was reading")
        live = nil
        ownsBuffers = true
        self.blockBytes = bytes
        self.tags = tags
        // Expiries allocated after the snapshot hold no expiry for any uncaptured slot.
        self.expiries = expiries
        forEachPendingSlot { KeyTableStorage.retainCopiedCell(self.block + $0 &* KeyTableStorage.cellBytes) }
    }

    /// Drops everything (the consumer finished or gave up).
    func release() {
        if ownsBuffers { forEachPendingSlot { KeyTableStorage.destroyCell(block + $0 &* KeyTableStorage.cellBytes) } }
        pagesLeft = 0
        chunks = []
        letGo()
    }

    /// Stops reading table memory: detaches from the live storage, drops a kept one, frees
    /// adopted buffers (their cells already released).
    private func letGo() {
        if let live {
            live.takeUnretainedValue().image = nil
            self.live = nil
        }
        owner = nil
        if ownsBuffers {
            ownsBuffers = false
            KeyTableStorage.deallocateBuffer(block, bytes: blockBytes)
            if let expiries {
                KeyTableStorage.deallocateBuffer(UnsafeMutableRawPointer(expiries), bytes: slotCount * 8)
            }
            expiries = nil
        }
    }

    private func destroyCells(_ slots: Range<Int>) {
        let tagBytes = UnsafeRawPointer(tags)
        for slot in slots where tagBytes.load(fromByteOffset: slot, as: UInt8.self) & 0x80 == 0 {
            KeyTableStorage.destroyCell(block + slot &* KeyTableStorage.cellBytes)
        }
    }

    private func forEachPendingSlot(_ body: (Int) -> Void) {
        let tagBytes = UnsafeRawPointer(tags)
        let pages = (slotCount + KeyTableStorage.pageSlots - 1) / KeyTableStorage.pageSlots
        for page in 0..<pages where pendingPages[page >> 6] & (1 << UInt64(page & 63)) != 0 {
            let end = min(slotCount, (page + 1) * KeyTableStorage.pageSlots)
            for slot in page * KeyTableStorage.pageSlots ..< end
            where tagBytes.load(fromByteOffset: slot, as: UInt8.self) & 0x80 == 0 {
                body(slot)
            }
        }
    }
}
