// KeyTable: one database's keys and entries in a shard, in a compact open-addressing table.
//
//   cells  [32 B][32 B][32 B]...   one per slot: access stamp, form, key length, then
//                                  key + value bytes (a counter, a short string) or
//                                  key + an 8-byte payload (any other value)
//   tags   [8 B group][8 B group]  one byte per slot: empty, deleted, or 7 bits of the key's hash
//   expiries [Int64]...            allocated once the table holds a key with a TTL
//
// A Swift Dictionary<Key, Entry> spent 48 bytes of key and entry per slot at a load factor
// between 3/8 and 3/4 (about 100 bytes per counter, as much as redis-server's dictEntry,
// robj and sds together). Here a counter or a short string is one 33-byte slot, with the
// table kept between 70% and 87.5% full: it grows by a quarter at a time (not doubling, so the
// spare capacity stays small) and every slot is usable (the group index is a range reduction
// of the hash, so any group count works). Lookups compare the 8 tags of a group at once (as
// SwissTable does) and only then the key bytes.
import Glibc
import Synchronization

/// The keys of one database in one shard (see the file comment). A value type with
/// copy-on-write storage, as the Dictionary it replaces: a snapshot keeps a copy in O(1) and
/// the first later mutation copies the table; a serializing snapshot instead attaches a
/// `TableImage`, and a mutation first serializes only the page of slots it changes.
///
/// Slot indices (`index(forKey:)`) stay valid until the next insertion of a new key or
/// `shrinkIfSparse`; removing keys never moves the others.
///
/// `@unchecked Sendable` as the Dictionary was Sendable: every value it holds is, and its
/// storage is only mutated after a uniqueness check, under the owning shard's lock.
public struct KeyTable: Sequence, @unchecked Sendable {
    @usableFromInline var storage: KeyTableStorage

    /// An empty table.
    public init() { storage = KeyTableStorage(groupCount: 1) }

    /// Number of keys.
    public var count: Int { storage.count }

    /// True when the table holds no key.
    public var isEmpty: Bool { storage.count == 0 }

    /// Slots allocated (for memory estimates and tests).
    public var capacity: Int { storage.groupCount * KeyTableStorage.groupWidth }

    /// The entry stored under `key`, if any.
    public subscript(key: Key) -> Entry? {
        guard let slot = index(forKey: key) else { return nil }
        return storage.entry(at: slot)
    }

    /// The slot holding `key`, if any.
    @inline(__always)
    public func index(forKey key: Key) -> Int? {
        let hash = KeyTableStorage.hash(of: key)
        return key.withUnsafeBytes { storage.find($0, hash: hash) }
    }

    /// The entry at an occupied slot.
    @inline(__always) public func entry(at slot: Int) -> Entry { storage.entry(at: slot) }

    /// The value at an occupied slot.
    @inline(__always) public func value(at slot: Int) -> Value { storage.value(at: slot) }

    /// The key at an occupied slot.
    public func key(at slot: Int) -> Key { storage.key(at: slot) }

    /// The expiry at an occupied slot (Unix ms), nil for none.
    @inline(__always)
    public func expiresAtMilliseconds(at slot: Int) -> Int64? {
        guard let expiries = storage.expiries else { return nil }
        let stored = expiries[slot]
        return stored == Entry.noExpiry ? nil : stored
    }

    /// The access stamp at an occupied slot.
    @inline(__always) public func access(at slot: Int) -> UInt32 { storage.access(at: slot) }

    /// Replaces the value at an occupied slot (expiry and access stamp kept).
    @inline(__always)
    mutating func setValue(_ value: Value, at slot: Int) {
        makeUnique()
        storage.willWrite(slot)
        storage.setValue(value, at: slot)
    }

    /// Stores `value` at a slot `takeValue` emptied (the put-back of `Shard.withAggregate` and
    /// `Shard.mutateString`).
    mutating func restoreTaken(_ value: consuming Value, at slot: Int) {
        makeUnique()
        storage.willWrite(slot)
        storage.restoreTaken(value, at: slot)
    }

    /// Moves the value at an occupied slot out, leaving the integer 0 in its place, so the
    /// caller holds its only reference and can edit it in place.
    mutating func takeValue(at slot: Int) -> Value {
        makeUnique()
        storage.willWrite(slot)
        return storage.takeValue(at: slot)
    }

    /// Changes the expiry at an occupied slot (nil = none).
    mutating func setExpiry(_ milliseconds: Int64?, at slot: Int) {
        makeUnique()
        storage.willWrite(slot)
        storage.setExpiryStorage(milliseconds.map { Swift.max($0, Entry.noExpiry + 1) } ?? Entry.noExpiry, at: slot)
    }

    /// Changes the access stamp at an occupied slot. A snapshot image does not see it change
    /// (RDB files carry no access stamps here), so nothing is captured first.
    @inline(__always)
    mutating func setAccess(_ stamp: UInt32, at slot: Int) {
        makeUnique()
        storage.setAccess(stamp, at: slot)
    }

    /// What `updateValue` replaced: enough for the shard's bookkeeping, without copying the
    /// old value out (an inline string would need an allocation).
    struct Replaced {
        /// The old value's `MemoryEstimate.bytes(of:)`.
        let estimatedBytes: Int
        /// The old expiry.
        let expiresAtMilliseconds: Int64?
    }

    /// Stores `entry` under `key`; returns what it replaced, if anything.
    @discardableResult
    mutating func updateValue(_ entry: Entry, forKey key: Key) -> Replaced? {
        makeUnique()
        // The table holds `storage` throughout: borrowing it unretained saves a retain and a
        // release (atomic, so the release also waited for the insert's stores to reach memory).
        return Unmanaged.passUnretained(storage)._withUnsafeGuaranteedRef { storage in
            updateValue(entry, forKey: key, in: storage)
        }
    }

    private func updateValue(_ entry: Entry, forKey key: Key, in storage: KeyTableStorage) -> Replaced? {
        key.withUnsafeBytes { bytes -> Replaced? in
            let hash = KeyTableStorage.hash(of: key)
            if let slot = storage.find(bytes, hash: hash) {
                storage.willWrite(slot)
                let previous = Replaced(estimatedBytes: storage.estimatedBytes(at: slot),
                                        expiresAtMilliseconds: expiresAtMilliseconds(at: slot))
                storage.setValue(entry.value, at: slot)
                storage.setAccess(entry.access, at: slot)
                storage.setExpiryStorage(entry.expiryStorage, at: slot)
                return previous
            }
            storage.insertNew(bytes, hash: hash, key: key, entry: entry)
            return nil
        }
    }

    /// Removes `key`; returns its entry, if it was stored.
    @discardableResult
    mutating func removeValue(forKey key: Key) -> Entry? {
        makeUnique()
        guard let slot = index(forKey: key) else { return nil }
        storage.willWrite(slot)
        let previous = storage.entry(at: slot)
        storage.remove(at: slot)
        return previous
    }

    /// Grows the table at once to hold `keys` keys at its lowest load (a loader's size hint).
    mutating func reserveCapacity(_ keys: Int) {
        let groups = KeyTableStorage.groupsFor(keys)
        guard groups > storage.groupCount else { return }
        makeUnique()
        storage.rehash(groupCount: groups)
    }

    /// Sets every entry's access stamp (an eviction policy change).
    mutating func setEveryAccess(_ stamp: UInt32) {
        makeUnique()
        storage.forEachOccupied { storage.setAccess(stamp, at: $0) }
    }

    /// Gives back capacity when most slots are free after deletions (dict.c's htNeedsResize:
    /// Redis shrinks a table under 10% full). Moves keys: no slot index may be held across it.
    /// Skipped while a snapshot still reads the table (copied or paged).
    mutating func shrinkIfSparse() {
        let capacity = storage.groupCount * KeyTableStorage.groupWidth
        guard storage.groupCount > 1, storage.count * 10 < capacity, storage.image == nil,
              isKnownUniquelyReferenced(&storage) else { return }
        storage.rehash(groupCount: KeyTableStorage.groupsFor(storage.count))
    }

    /// The key at the `offset`-th occupied slot (0 ..< count), for RANDOMKEY.
    public func key(atOffset offset: Int) -> Key? {
        var remaining = offset
        var found: Key?
        storage.forEachOccupied { slot in
            if found != nil { return }
            if remaining == 0 { found = storage.key(at: slot) }
            remaining -= 1
        }
        return found
    }

    /// Number of keys with a TTL.
    public var expiringCount: Int {
        guard let expiries = storage.expiries else { return 0 }
        var expiring = 0
        storage.forEachOccupied { if expiries[$0] != Entry.noExpiry { expiring += 1 } }
        return expiring
    }

    /// Every key, in slot order.
    public var keys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        storage.forEachOccupied { keys.append(storage.key(at: $0)) }
        return keys
    }

    @inline(__always)
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copyLeavingImage() }
    }

    /// Starts serializing this table's current contents for a snapshot, page by page (caller
    /// holds the shard lock). An image still attached from an earlier snapshot is completed
    /// first. Returns nil for an empty table.
    func beginImage(serializer: @escaping ShardImageSerializer) -> TableImage? {
        storage.image?.captureAll()
        guard !isEmpty else { return nil }
        return TableImage(storage: storage, serializer: serializer)
    }

    /// Before this table's storage leaves the shard (a flush): an attached image keeps the
    /// storage alive and reads the pages it has not captured from it.
    func handOffImage() { storage.handOffImage() }

    /// Iterates (key, entry) pairs in slot order.
    public struct Iterator: IteratorProtocol {
        let storage: KeyTableStorage
        var slot = 0

        public mutating func next() -> (key: Key, value: Entry)? {
            let capacity = storage.groupCount * KeyTableStorage.groupWidth
            while slot < capacity {
                let current = slot
                slot += 1
                if storage.isOccupied(current) { return (storage.key(at: current), storage.entry(at: current)) }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(storage: storage) }
}

/// Bytes of key tables mapped straight from the kernel (see `KeyTableStorage.allocateBuffer`),
/// which the C allocator's statistics do not see: INFO's `used_memory` adds them.
public enum KeyTableMemory {
    static let mapped = Atomic<Int>(0)

    /// Bytes currently mapped for tables.
    public static var mappedBytes: Int { mapped.load(ordering: .relaxed) }
}

/// The buffers behind a `KeyTable` (see the file comment for the layout).
///
/// Cell layout, 32 bytes:
///
///     0..<4   access stamp (UInt32)
///     4       form: 0...26 inline string of that many bytes, 0x21...0x28 inline integer of
///             1...8 bytes (little-endian, sign-extended), 0x40 | kind a payload at 24..<32
///             (kind: see `PayloadKind`), plus 0x80 when the key is out of line
///     5       key length (inline key)
///     6..<32  inline forms: key bytes, then value bytes (26 bytes between them)
///     6..<24  payload forms: key bytes (up to 18); out of line: a [UInt8] at 8..<16
///     24..<32 payload forms: Int64, [UInt8], HashValue, ListValue, SetValue, SortedSetValue
///             or a StreamBox
@usableFromInline
final class KeyTableStorage {
    static let groupWidth = 8
    static let cellBytes = 32
    static let inlineBytes = 26
    static let payloadKeyBytes = 18
    static let keyOffset = 6
    static let payloadOffset = 24
    static let outOfLineKeyOffset = 8
    static let empty: UInt8 = 0x80
    static let deleted: UInt8 = 0xFE
    static let lowBits: UInt64 = 0x0101_0101_0101_0101
    static let highBits: UInt64 = 0x8080_8080_8080_8080
    static let formInteger: UInt8 = 0x20
    static let formPayload: UInt8 = 0x40
    static let formKeyOutOfLine: UInt8 = 0x80
    static let mapThreshold = 128 * 1024

    /// What a payload cell holds at 24..<32.
    enum PayloadKind: UInt8 {
        case integer, string, hash, list, set, sortedSet, stream
    }

    private(set) var groupCount: Int
    private(set) var count = 0
    private var tombstones = 0
    private var block: UnsafeMutableRawPointer
    private var blockBytes: Int
    private(set) var tags: UnsafeMutablePointer<UInt64>
    private(set) var expiries: UnsafeMutablePointer<Int64>?
    /// The snapshot still reading this table's pre-image page by page (`TableImage`): a slot
    /// is changed only after its page was captured (`willWrite`).
    var image: TableImage?

    /// Slots per page of a snapshot image: the most one mutation serializes for a snapshot
    /// (about 200 keys at this table's load, tens of microseconds). 1,024-slot pages left
    /// INCR's max latency during a 2M-key BGSAVE at 1.4x redis-server's, 256 at 0.9x.
    static let pageSlots = 256

    init(groupCount: Int) {
        self.groupCount = groupCount
        (block, blockBytes, tags) = Self.allocateSlots(groupCount: groupCount)
    }

    deinit {
        // Tables leave a shard through `handOffImage`; should one still go with an image
        // attached, the image captures the rest while the cells are intact.
        image?.captureAll()
        forEachOccupied { Self.destroyCell(cell($0)) }
        releaseBuffers()
    }

    /// Call before changing slot `slot`'s cell, tag or expiry: an attached snapshot image
    /// captures the slot's page first.
    @inline(__always)
    func willWrite(_ slot: Int) {
        if let image { image.capture(page: slot / Self.pageSlots) }
    }

    /// Detaches the image (caller holds the shard lock): it keeps this storage, which the
    /// shard no longer changes, and reads its uncaptured pages from it.
    func handOffImage() {
        guard let image else { return }
        self.image = nil
        image.adopt(owner: self)
    }

    /// `copy()` for a table about to change while something else holds this storage: the
    /// attached image, if any, stays with this storage, which the shard stops changing.
    func copyLeavingImage() -> KeyTableStorage {
        handOffImage()
        return copy()
    }

    private func releaseBuffers() {
        Self.deallocateBuffer(block, bytes: blockBytes)
        if let expiries {
            Self.deallocateBuffer(UnsafeMutableRawPointer(expiries), bytes: groupCount * Self.groupWidth * 8)
        }
    }

    // MARK: Buffers

    /// Cells then tags in one buffer; tags all empty.
    private static func allocateSlots(groupCount: Int)
        -> (UnsafeMutableRawPointer, Int, UnsafeMutablePointer<UInt64>)
    {
        let slots = groupCount * groupWidth
        let bytes = slots * cellBytes + slots
        let block = allocateBuffer(bytes: bytes)
        let tags = (block + slots * cellBytes).bindMemory(to: UInt64.self, capacity: groupCount)
        memset(tags, Int32(empty), slots)
        return (block, bytes, tags)
    }

    /// Small buffers from malloc; large ones mapped from the kernel, so that the buffer a
    /// growing table leaves behind returns to the kernel at once (glibc keeps a large block
    /// freed inside its heap resident, and raises its own mmap threshold after such frees).
    static func allocateBuffer(bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= mapThreshold {
            let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
                fatalError("out of memory for a key table of \(bytes) bytes")
            }
            KeyTableMemory.mapped.add(bytes, ordering: .relaxed)
            return mapped
        }
        guard let pointer = malloc(max(bytes, 8)) else { fatalError("out of memory for a key table of \(bytes) bytes") }
        return pointer
    }

    static func deallocateBuffer(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= mapThreshold {
            munmap(pointer, bytes)
            KeyTableMemory.mapped.subtract(bytes, ordering: .relaxed)
        } else {
            free(pointer)
        }
    }

    @inline(__always) func cell(_ slot: Int) -> UnsafeMutableRawPointer { block + slot &* Self.cellBytes }

    /// The buffers a `TableImage` reads while attached.
    var buffers: (UnsafeMutableRawPointer, Int, UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<Int64>?) {
        (block, blockBytes, tags, expiries)
    }

    @inline(__always) func tag(_ slot: Int) -> UInt8 {
        UnsafeRawPointer(tags).load(fromByteOffset: slot, as: UInt8.self)
    }

    @inline(__always) func setTag(_ value: UInt8, _ slot: Int) {
        UnsafeMutableRawPointer(tags).storeBytes(of: value, toByteOffset: slot, as: UInt8.self)
    }

    @inline(__always) func isOccupied(_ slot: Int) -> Bool { tag(slot) & 0x80 == 0 }

    /// Calls `body` with every occupied slot, in order.
    @inline(__always)
    func forEachOccupied(_ body: (Int) -> Void) {
        for group in 0..<groupCount {
            var full = ~tags[group] & Self.highBits
            while full != 0 {
                body(group &* Self.groupWidth &+ full.trailingZeroBitCount >> 3)
                full &= full &- 1
            }
        }
    }

    // MARK: Hashing and probing

    /// The hash of a key of up to 24 bytes from its zero-padded little-endian words (bytes
    /// 0..<8, 8..<16, 16..<24): two wyhash-style folds keyed by the per-process secret, so a
    /// key hashes the same whether it comes from a request (`Key`'s inline words), from raw
    /// bytes or from a cell, without a loop or a copy.
    @inline(__always)
    static func hashWords(_ word0: UInt64, _ word1: UInt64, _ word2: UInt64, count: Int,
                          secret: UInt64 = keyHashSecret) -> UInt64 {
        let first = keyHashFold(word0 ^ secret ^ 0xa076_1d64_78bd_642f,
                                word1 ^ (secret &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count))
        return keyHashFold(first ^ word2 ^ 0x8ebc_6af0_9c88_c6e3, secret ^ 0x5899_65cc_7537_4cc3)
    }

    /// Hash of any key bytes: `hashWords` up to 24 bytes, else 8 bytes at a time.
    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, secret: UInt64 = keyHashSecret) -> UInt64 {
        let count = bytes.count
        guard let base = bytes.baseAddress, count > 0 else { return hashWords(0, 0, 0, count: 0, secret: secret) }
        if count <= 24 {
            return hashWords(paddedWord(base, count, 0), paddedWord(base, count, 8), paddedWord(base, count, 16),
                             count: count, secret: secret)
        }
        var state = secret ^ UInt64(count) &* 0x9E37_79B9_7F4A_7C15
        var offset = 0
        while offset < count {
            let word = offset + 8 <= count ? base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
                : paddedWord(base, count, offset)
            state = keyHashFold(state ^ word ^ 0xa076_1d64_78bd_642f, secret ^ 0xe703_7ed1_a0b4_28db)
            offset += 8
        }
        return keyHashFold(state, secret ^ 0x1d8e_4e27_c47d_124f)
    }

    /// Bytes `offset..<offset + 8` of a `count`-byte key as a little-endian word, zero past the
    /// end, reading only the key's bytes (a short tail by overlapping loads).
    @inline(__always)
    static func paddedWord(_ base: UnsafeRawPointer, _ count: Int, _ offset: Int) -> UInt64 {
        let remaining = count - offset
        if remaining >= 8 { return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        if remaining <= 0 { return 0 }
        if count >= 8 {
            let last = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
            return last >> UInt64(8 * (8 - remaining))
        }
        if remaining >= 4 {
            let low = UInt64(UInt32(littleEndian: base.loadUnaligned(as: UInt32.self)))
            let high = UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: remaining - 4, as: UInt32.self)))
            return low | (high >> UInt64(8 * (8 - remaining))) << 32
        }
        var word: UInt64 = 0
        for index in 0..<remaining {
            word |= UInt64(base.load(fromByteOffset: index, as: UInt8.self)) << UInt64(8 * index)
        }
        return word
    }

    /// Hash of a `Key`: an inline key's words are already zero-padded.
    @inline(__always)
    static func hash(of key: Key, secret: UInt64 = keyHashSecret) -> UInt64 {
        switch key.storage {
        case .small(let small):
            return hashWords(small.word0, small.word1, UInt64(small.word2) | UInt64(small.word3) << 32,
                             count: Int(small.count), secret: secret)
        case .large(let array):
            return array.withUnsafeBytes { hash($0, secret: secret) }
        }
    }

    /// Hash of the key a cell holds. An inline key of up to 24 bytes is read as three words at
    /// offsets 6, 14 and 22 (inside the cell whatever the length) and masked to its length.
    @inline(__always)
    static func hash(ofCell cell: UnsafeMutableRawPointer) -> UInt64 {
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        let length = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
        if form & formKeyOutOfLine == 0 && length <= 24 {
            let source = UnsafeRawPointer(cell + keyOffset)
            return hashWords(UInt64(littleEndian: source.loadUnaligned(as: UInt64.self)) & mask(length, 0),
                             UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
                                & mask(length, 8),
                             UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                                & mask(length, 16),
                             count: length)
        }
        return withKeyBytes(cell) { hash($0) }
    }

    /// The mask keeping the bytes of word `offset..<offset + 8` that lie within `length`.
    @inline(__always)
    static func mask(_ length: Int, _ offset: Int) -> UInt64 {
        let kept = length - offset
        if kept >= 8 { return ~0 }
        if kept <= 0 { return 0 }
        return (1 << UInt64(8 * kept)) &- 1
    }

    @inline(__always) func homeGroup(_ hash: UInt64) -> Int {
        Int(truncatingIfNeeded: hash.multipliedFullWidth(by: UInt64(groupCount)).high)
    }

    @inline(__always) static func tagOf(_ hash: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: hash) & 0x7F }

    /// Bytes of `word` equal to `tag`, as their high bits (may include false positives next
    /// to a true match: every candidate's key is compared).
    @inline(__always) static func matches(_ word: UInt64, _ tag: UInt8) -> UInt64 {
        let spread = word ^ (lowBits &* UInt64(tag))
        return (spread &- lowBits) & ~spread & highBits
    }

    /// Empty bytes (0x80: high bit set, bit 1 clear; deleted is 0xFE).
    @inline(__always) static func emptyBytes(_ word: UInt64) -> UInt64 { word & (~word << 6) & highBits }

    /// The slot holding the key `bytes` (hash `hash`), if any.
    @inline(__always)
    func find(_ bytes: UnsafeRawBufferPointer, hash: UInt64) -> Int? {
        let tag = Self.tagOf(hash)
        var group = homeGroup(hash)
        while true {
            let word = tags[group]
            var candidates = Self.matches(word, tag)
            while candidates != 0 {
                let slot = group &* Self.groupWidth &+ candidates.trailingZeroBitCount >> 3
                if keyEquals(slot, bytes) { return slot }
                candidates &= candidates &- 1
            }
            if Self.emptyBytes(word) != 0 { return nil }
            group += 1
            if group == groupCount { group = 0 }
        }
    }

    @inline(__always)
    func keyEquals(_ slot: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let cell = cell(slot)
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        if form & Self.formKeyOutOfLine != 0 {
            return (cell + Self.outOfLineKeyOffset).assumingMemoryBound(to: [UInt8].self).pointee.withUnsafeBytes {
                $0.count == bytes.count && memcmp($0.baseAddress!, bytes.baseAddress!, $0.count) == 0
            }
        }
        let length = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
        guard length == bytes.count else { return false }
        return length == 0 || memcmp(cell + Self.keyOffset, bytes.baseAddress!, length) == 0
    }

    /// The first free (empty or deleted) slot on `hash`'s probe sequence.
    @inline(__always)
    private func freeSlot(_ hash: UInt64) -> Int {
        var group = homeGroup(hash)
        while true {
            let free = tags[group] & Self.highBits
            if free != 0 { return group &* Self.groupWidth &+ free.trailingZeroBitCount >> 3 }
            group += 1
            if group == groupCount { group = 0 }
        }
    }

    /// Groups for `count` keys at 70% load (room to grow by a quarter before the 87.5% limit).
    static func groupsFor(_ count: Int) -> Int { max(1, (count &* 10 / 7 + groupWidth - 1) / groupWidth) }

    /// Adds a key known to be absent.
    func insertNew(_ bytes: UnsafeRawBufferPointer, hash: UInt64, key: Key, entry: Entry) {
        let capacity = groupCount * Self.groupWidth
        if (count + tombstones + 1) * 8 > capacity * 7 {
            // Full of live keys: grow by about a quarter. Mostly tombstones: rebuild in place.
            rehash(groupCount: max(Self.groupsFor(count + 1), count * 2 < capacity ? 1 : groupCount + 1))
        }
        let slot = freeSlot(hash)
        willWrite(slot)
        if tag(slot) == Self.deleted { tombstones -= 1 }
        setTag(Self.tagOf(hash), slot)
        count += 1
        let cell = cell(slot)
        var keyArray: [UInt8]?
        if case .large(let array) = key.storage { keyArray = array }
        initializeCell(cell, key: bytes, keyArray: keyArray, value: entry.value, access: entry.access)
        if entry.expiryStorage != Entry.noExpiry || expiries != nil { setExpiryStorage(entry.expiryStorage, at: slot) }
    }

    /// Empties an occupied slot. A slot in a group that still has an empty byte becomes empty
    /// (no probe sequence passes that group); otherwise a tombstone keeps the probes going.
    func remove(at slot: Int) {
        Self.destroyCell(cell(slot))
        expiries?[slot] = Entry.noExpiry
        let group = slot / Self.groupWidth
        if Self.emptyBytes(tags[group]) != 0 {
            setTag(Self.empty, slot)
        } else {
            setTag(Self.deleted, slot)
            tombstones += 1
        }
        count -= 1
    }

    /// Moves every key into fresh buffers of `groupCount` groups (cells are moved bitwise:
    /// Swift values are bitwise movable).
    func rehash(groupCount newGroupCount: Int) {
        let oldBlock = block
        let oldBlockBytes = blockBytes
        let oldTags = tags
        let oldGroups = groupCount
        let oldExpiries = expiries
        (block, blockBytes, tags) = Self.allocateSlots(groupCount: newGroupCount)
        groupCount = newGroupCount
        tombstones = 0
        let newSlots = newGroupCount * Self.groupWidth
        if oldExpiries != nil {
            let buffer = Self.allocateBuffer(bytes: newSlots * 8).bindMemory(to: Int64.self, capacity: newSlots)
            buffer.initialize(repeating: Entry.noExpiry, count: newSlots)
            expiries = buffer
        }
        for group in 0..<oldGroups {
            var full = ~oldTags[group] & Self.highBits
            while full != 0 {
                let oldSlot = group * Self.groupWidth + full.trailingZeroBitCount >> 3
                full &= full - 1
                let source = oldBlock + oldSlot * Self.cellBytes
                let hash = Self.hash(ofCell: source)
                let slot = freeSlot(hash)
                setTag(Self.tagOf(hash), slot)
                Self.moveCell(from: source, to: cell(slot))
                if let oldExpiries { expiries![slot] = oldExpiries[oldSlot] }
            }
        }
        if let image {
            // The cells moved, so no page of the image can be captured from these buffers any
            // more: the image takes the old ones (its uncaptured cells' references retained).
            self.image = nil
            image.adopt(block: oldBlock, bytes: oldBlockBytes, tags: oldTags, groupCount: oldGroups,
                        expiries: oldExpiries)
            return
        }
        Self.deallocateBuffer(oldBlock, bytes: oldBlockBytes)
        if let oldExpiries {
            Self.deallocateBuffer(UnsafeMutableRawPointer(oldExpiries), bytes: oldGroups * Self.groupWidth * 8)
        }
    }

    /// Copies a cell's 32 bytes as four words (a memcpy call costs more than the copy).
    @inline(__always)
    static func moveCell(from source: UnsafeMutableRawPointer, to target: UnsafeMutableRawPointer) {
        let from = UnsafeRawPointer(source)
        target.storeBytes(of: from.load(as: UInt64.self), as: UInt64.self)
        target.storeBytes(of: from.load(fromByteOffset: 8, as: UInt64.self), toByteOffset: 8, as: UInt64.self)
        target.storeBytes(of: from.load(fromByteOffset: 16, as: UInt64.self), toByteOffset: 16, as: UInt64.self)
        target.storeBytes(of: from.load(fromByteOffset: 24, as: UInt64.self), toByteOffset: 24, as: UInt64.self)
    }

    /// A copy sharing nothing mutable (payload references retained).
    func copy() -> KeyTableStorage {
        let copy = KeyTableStorage(groupCount: groupCount)
        let slots = groupCount * Self.groupWidth
        copy.tags.update(from: tags, count: groupCount)
        copy.count = count
        copy.tombstones = tombstones
        if let expiries {
            let buffer = Self.allocateBuffer(bytes: slots * 8).bindMemory(to: Int64.self, capacity: slots)
            buffer.update(from: expiries, count: slots)
            copy.expiries = buffer
        }
        forEachOccupied { slot in
            let source = cell(slot)
            let target = copy.cell(slot)
            target.copyMemory(from: source, byteCount: Self.cellBytes)
            Self.retainCopiedCell(target)
        }
        return copy
    }

    // MARK: Cells

    /// Calls `body` with the key bytes of a cell.
    @inline(__always)
    static func withKeyBytes<R>(_ cell: UnsafeMutableRawPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        if form & formKeyOutOfLine != 0 {
            return (cell + outOfLineKeyOffset).assumingMemoryBound(to: [UInt8].self).pointee.withUnsafeBytes(body)
        }
        let length = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
        return body(UnsafeRawBufferPointer(start: cell + keyOffset, count: length))
    }

    func key(at slot: Int) -> Key { Self.withKeyBytes(cell(slot)) { Key($0) } }

    @inline(__always) func access(at slot: Int) -> UInt32 { cell(slot).load(as: UInt32.self) }

    @inline(__always) func setAccess(_ stamp: UInt32, at slot: Int) {
        cell(slot).storeBytes(of: stamp, as: UInt32.self)
    }

    @inline(__always)
    func setExpiryStorage(_ stored: Int64, at slot: Int) {
        if expiries == nil {
            if stored == Entry.noExpiry { return }
            let slots = groupCount * Self.groupWidth
            let buffer = Self.allocateBuffer(bytes: slots * 8).bindMemory(to: Int64.self, capacity: slots)
            buffer.initialize(repeating: Entry.noExpiry, count: slots)
            expiries = buffer
        }
        expiries![slot] = stored
    }

    @inline(__always)
    func entry(at slot: Int) -> Entry {
        var entry = Entry(value: value(at: slot), access: access(at: slot))
        if let expiries { entry.expiryStorage = expiries[slot] }
        return entry
    }

    /// The value of an occupied slot (a copy: payload references retained).
    @inline(__always)
    func value(at slot: Int) -> Value { Self.value(ofCell: cell(slot)) }

    /// The value a cell holds (a copy: payload references retained).
    @inline(__always)
    static func value(ofCell cell: UnsafeMutableRawPointer) -> Value {
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        if form < Self.formInteger {
            let keyLength = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
            return .string(Array(UnsafeRawBufferPointer(start: cell + Self.keyOffset + keyLength, count: Int(form))))
        }
        if form < Self.formPayload {
            let keyLength = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
            return .integer(Self.loadInteger(cell + Self.keyOffset + keyLength, width: Int(form & 0x0F),
                                             room: Self.inlineBytes - keyLength))
        }
        let payload = cell + Self.payloadOffset
        switch PayloadKind(rawValue: form & 0x0F)! {
        case .integer: return .integer(payload.load(as: Int64.self))
        case .string: return .string(payload.load(as: [UInt8].self))
        case .hash: return .hash(payload.load(as: HashValue.self))
        case .list: return .list(payload.load(as: ListValue.self))
        case .set: return .set(payload.load(as: SetValue.self))
        case .sortedSet: return .sortedSet(payload.load(as: SortedSetValue.self))
        case .stream: return .stream(payload.load(as: StreamBox.self).value)
        }
    }

    /// `MemoryEstimate.bytes(of:)` of the value of an occupied slot, without copying it out.
    func estimatedBytes(at slot: Int) -> Int {
        let form = cell(slot).load(fromByteOffset: 4, as: UInt8.self)
        if form < Self.formInteger { return MemoryEstimate.bufferHeaderBytes + Int(form) }
        if form < Self.formPayload { return 0 }
        return MemoryEstimate.bytes(of: value(at: slot))
    }

    /// Replaces the value of an occupied slot (the key stays; its form may change).
    @inline(__always)
    func setValue(_ value: Value, at slot: Int) {
        let cell = cell(slot)
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        // The common INCR case: an inline integer that stays one.
        if case .integer(let integer) = value, form & 0xF0 == Self.formInteger {
            let keyLength = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
            let width = Self.integerWidth(integer)
            if keyLength + width <= Self.inlineBytes {
                Self.storeInteger(integer, cell + Self.keyOffset + keyLength, width: width,
                                  room: Self.inlineBytes - keyLength)
                cell.storeBytes(of: Self.formInteger | UInt8(width), toByteOffset: 4, as: UInt8.self)
                return
            }
        }
        let access = cell.load(as: UInt32.self)
        if form & Self.formKeyOutOfLine != 0 {
            let keyArray = cell.load(fromByteOffset: Self.outOfLineKeyOffset, as: [UInt8].self)
            Self.destroyCell(cell)
            keyArray.withUnsafeBytes { initializeCell(cell, key: $0, keyArray: keyArray, value: value, access: access) }
        } else {
            var key = InlineKeyBuffer()
            let length = Int(cell.load(fromByteOffset: 5, as: UInt8.self))
            withUnsafeMutableBytes(of: &key) {
                $0.baseAddress!.copyMemory(from: cell + Self.keyOffset, byteCount: length)
            }
            Self.destroyCell(cell)
            withUnsafeBytes(of: &key) { initializeCell(cell, key: UnsafeRawBufferPointer(rebasing: $0[..<length]),
                                                          keyArray: nil, value: value, access: access) }
        }
    }

    /// Moves the value of an occupied slot out, leaving the integer 0.
    func takeValue(at slot: Int) -> Value {
        let cell = cell(slot)
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        guard form & Self.formPayload != 0 else {
            let value = value(at: slot)
            setValue(.integer(0), at: slot)
            return value
        }
        let payload = cell + Self.payloadOffset
        let value: Value
        switch PayloadKind(rawValue: form & 0x0F)! {
        case .integer: value = .integer(payload.load(as: Int64.self))
        case .string: value = .string(payload.assumingMemoryBound(to: [UInt8].self).move())
        case .hash: value = .hash(payload.assumingMemoryBound(to: HashValue.self).move())
        case .list: value = .list(payload.assumingMemoryBound(to: ListValue.self).move())
        case .set: value = .set(payload.assumingMemoryBound(to: SetValue.self).move())
        case .sortedSet: value = .sortedSet(payload.assumingMemoryBound(to: SortedSetValue.self).move())
        case .stream: value = .stream(payload.assumingMemoryBound(to: StreamBox.self).move().value)
        }
        // The payload is uninitialized now: an integer payload needs no release.
        payload.storeBytes(of: Int64(0), as: Int64.self)
        cell.storeBytes(of: (form & Self.formKeyOutOfLine) | Self.formPayload | PayloadKind.integer.rawValue,
                        toByteOffset: 4, as: UInt8.self)
        return value
    }

    /// `setValue` for a slot `takeValue` left holding its placeholder (an integer payload) and
    /// an aggregate or a string too long to be inline: the value is moved into the payload and
    /// the key left where it is, where `setValue` copies the key out, rebuilds the cell and
    /// retains the value.
    func restoreTaken(_ value: consuming Value, at slot: Int) {
        let cell = cell(slot)
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        guard form & Self.formPayload != 0, form & 0x0F == PayloadKind.integer.rawValue else {
            setValue(value, at: slot)
            return
        }
        let payload = cell + Self.payloadOffset
        let kind: PayloadKind
        switch consume value {
        case .hash(let hash):
            payload.bindMemory(to: HashValue.self, capacity: 1).initialize(to: hash)
            kind = .hash
        case .list(let list):
            payload.bindMemory(to: ListValue.self, capacity: 1).initialize(to: list)
            kind = .list
        case .set(let set):
            payload.bindMemory(to: SetValue.self, capacity: 1).initialize(to: set)
            kind = .set
        case .sortedSet(let set):
            payload.bindMemory(to: SortedSetValue.self, capacity: 1).initialize(to: set)
            kind = .sortedSet
        case .stream(let stream):
            payload.bindMemory(to: StreamBox.self, capacity: 1).initialize(to: StreamBox(stream))
            kind = .stream
        case .string(let bytes) where bytes.count > Self.inlineBytes - Self.withKeyBytes(cell, \.count):
            payload.bindMemory(to: [UInt8].self, capacity: 1).initialize(to: bytes)
            kind = .string
        case let other:
            setValue(other, at: slot)
            return
        }
        cell.storeBytes(of: (form & Self.formKeyOutOfLine) | Self.formPayload | kind.rawValue,
                        toByteOffset: 4, as: UInt8.self)
    }

    /// Writes a fresh cell for `key` → `value` into uninitialized (or destroyed) memory.
    @inline(__always)
    func initializeCell(_ cell: UnsafeMutableRawPointer, key: UnsafeRawBufferPointer, keyArray: [UInt8]?,
                        value: Value, access: UInt32) {
        cell.storeBytes(of: access, as: UInt32.self)
        let keyLength = key.count
        let room = Self.inlineBytes - keyLength
        switch value {
        case .integer(let integer):
            let width = Self.integerWidth(integer)
            if width <= room {
                writeInlineKey(cell, key)
                Self.storeInteger(integer, cell + Self.keyOffset + keyLength, width: width, room: room)
                cell.storeBytes(of: Self.formInteger | UInt8(width), toByteOffset: 4, as: UInt8.self)
                return
            }
            writePayloadKey(cell, key, keyArray, kind: .integer)
            (cell + Self.payloadOffset).storeBytes(of: integer, as: Int64.self)
        case .string(let bytes):
            if bytes.count <= room {
                writeInlineKey(cell, key)
                if !bytes.isEmpty {
                    bytes.withUnsafeBytes {
                        (cell + Self.keyOffset + keyLength).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                    }
                }
                cell.storeBytes(of: UInt8(bytes.count), toByteOffset: 4, as: UInt8.self)
                return
            }
            writePayload(bytes, cell, key, keyArray, kind: .string)
        case .hash(let hash):
            writePayload(hash, cell, key, keyArray, kind: .hash)
        case .list(let list):
            writePayload(list, cell, key, keyArray, kind: .list)
        case .set(let set):
            writePayload(set, cell, key, keyArray, kind: .set)
        case .sortedSet(let set):
            writePayload(set, cell, key, keyArray, kind: .sortedSet)
        case .stream(let stream):
            writePayload(StreamBox(stream), cell, key, keyArray, kind: .stream)
        }
    }

    @inline(__always)
    private func writeInlineKey(_ cell: UnsafeMutableRawPointer, _ key: UnsafeRawBufferPointer) {
        cell.storeBytes(of: UInt8(key.count), toByteOffset: 5, as: UInt8.self)
        if key.count > 0 { (cell + Self.keyOffset).copyMemory(from: key.baseAddress!, byteCount: key.count) }
    }

    /// Writes the key of a payload cell and moves a copy of `value` into its payload word.
    @inline(__always)
    private func writePayload<T>(_ value: T, _ cell: UnsafeMutableRawPointer, _ key: UnsafeRawBufferPointer,
                                 _ keyArray: [UInt8]?, kind: PayloadKind) {
        writePayloadKey(cell, key, keyArray, kind: kind)
        (cell + Self.payloadOffset).initializeMemory(as: T.self, repeating: value, count: 1)
    }

    private func writePayloadKey(_ cell: UnsafeMutableRawPointer, _ key: UnsafeRawBufferPointer, _ keyArray: [UInt8]?,
                                 kind: PayloadKind) {
        if key.count <= Self.payloadKeyBytes {
            writeInlineKey(cell, key)
            cell.storeBytes(of: Self.formPayload | kind.rawValue, toByteOffset: 4, as: UInt8.self)
        } else {
            cell.storeBytes(of: UInt8(0), toByteOffset: 5, as: UInt8.self)
            (cell + Self.outOfLineKeyOffset).initializeMemory(as: [UInt8].self, repeating: keyArray ?? Array(key),
                                                              count: 1)
            cell.storeBytes(of: Self.formKeyOutOfLine | Self.formPayload | kind.rawValue, toByteOffset: 4,
                            as: UInt8.self)
        }
    }

    /// Releases what a cell references (payload, out-of-line key); the bytes stay garbage.
    @inline(__always)
    static func destroyCell(_ cell: UnsafeMutableRawPointer) {
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        guard form & Self.formPayload != 0 else { return }
        if form & Self.formKeyOutOfLine != 0 {
            (cell + Self.outOfLineKeyOffset).assumingMemoryBound(to: [UInt8].self).deinitialize(count: 1)
        }
        let payload = cell + Self.payloadOffset
        switch PayloadKind(rawValue: form & 0x0F)! {
        case .integer: break
        case .string: payload.assumingMemoryBound(to: [UInt8].self).deinitialize(count: 1)
        case .hash: payload.assumingMemoryBound(to: HashValue.self).deinitialize(count: 1)
        case .list: payload.assumingMemoryBound(to: ListValue.self).deinitialize(count: 1)
        case .set: payload.assumingMemoryBound(to: SetValue.self).deinitialize(count: 1)
        case .sortedSet: payload.assumingMemoryBound(to: SortedSetValue.self).deinitialize(count: 1)
        case .stream: payload.assumingMemoryBound(to: StreamBox.self).deinitialize(count: 1)
        }
    }

    /// After a bitwise copy of a cell: takes the extra references the copy holds.
    static func retainCopiedCell(_ cell: UnsafeMutableRawPointer) {
        let form = cell.load(fromByteOffset: 4, as: UInt8.self)
        guard form & formPayload != 0 else { return }
        if form & formKeyOutOfLine != 0 {
            let pointer = cell + outOfLineKeyOffset
            pointer.initializeMemory(as: [UInt8].self, repeating: pointer.load(as: [UInt8].self), count: 1)
        }
        let payload = cell + payloadOffset
        switch PayloadKind(rawValue: form & 0x0F)! {
        case .integer: break
        case .string: payload.initializeMemory(as: [UInt8].self, repeating: payload.load(as: [UInt8].self), count: 1)
        case .hash: payload.initializeMemory(as: HashValue.self, repeating: payload.load(as: HashValue.self), count: 1)
        case .list: payload.initializeMemory(as: ListValue.self, repeating: payload.load(as: ListValue.self), count: 1)
        case .set: payload.initializeMemory(as: SetValue.self, repeating: payload.load(as: SetValue.self), count: 1)
        case .sortedSet:
            payload.initializeMemory(as: SortedSetValue.self, repeating: payload.load(as: SortedSetValue.self),
                                     count: 1)
        case .stream:
            payload.initializeMemory(as: StreamBox.self, repeating: payload.load(as: StreamBox.self), count: 1)
        }
    }

    // MARK: Inline integers

    /// Bytes needed for `value` in two's complement (1...8).
    @inline(__always)
    static func integerWidth(_ value: Int64) -> Int {
        let magnitude = value < 0 ? ~value : value
        return (64 - magnitude.leadingZeroBitCount + 8) >> 3
    }

    /// Stores the low `width` bytes of `value` at `target`, which has `room` bytes to the cell's end.
    @inline(__always)
    static func storeInteger(_ value: Int64, _ target: UnsafeMutableRawPointer, width: Int, room: Int) {
        if room >= 8 {
            target.storeBytes(of: value.littleEndian, as: Int64.self)
        } else {
            var little = value.littleEndian
            withUnsafeBytes(of: &little) { target.copyMemory(from: $0.baseAddress!, byteCount: width) }
        }
    }

    @inline(__always)
    static func loadInteger(_ source: UnsafeMutableRawPointer, width: Int, room: Int) -> Int64 {
        var raw: UInt64 = 0
        if room >= 8 {
            raw = UInt64(littleEndian: source.loadUnaligned(as: UInt64.self))
        } else {
            withUnsafeMutableBytes(of: &raw) { $0.baseAddress!.copyMemory(from: source, byteCount: width) }
            raw = UInt64(littleEndian: raw)
        }
        let shift = UInt64(64 - 8 * width)
        return Int64(bitPattern: raw << shift) >> Int64(shift)
    }
}

/// Room for an inline key's bytes while its cell is rewritten.
struct InlineKeyBuffer {
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

/// A stream's value in a table cell (a stream is larger than the 8-byte payload).
final class StreamBox {
    let value: StreamValue
    init(_ value: StreamValue) { self.value = value }
}
