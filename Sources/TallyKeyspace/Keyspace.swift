// Keyspace: N independently locked shards; routes keys, locks in order, snapshots and loads.
import Glibc
import Synchronization

/// A set of shard indexes (at most 64 shards), iterated in ascending order = lock order.
public struct ShardMask: Sendable, Equatable {
    /// One bit per shard.
    public var bits: UInt64

    /// Creates a mask from raw bits.
    @inlinable public init(bits: UInt64 = 0) { self.bits = bits }

    /// True if no shard is included.
    @inlinable public var isEmpty: Bool { bits == 0 }

    /// Adds shard `index`.
    @inlinable public mutating func insert(_ index: Int) { bits |= 1 << UInt64(index) }

    /// True if shard `index` is included.
    @inlinable public func contains(_ index: Int) -> Bool { bits & (1 << UInt64(index)) != 0 }

    /// Adds every shard of `other`.
    @inlinable public mutating func formUnion(_ other: ShardMask) { bits |= other.bits }

    /// Calls `body` for each included index, ascending.
    @inlinable public func forEach(_ body: (Int) throws -> Void) rethrows {
        var remaining = bits
        while remaining != 0 {
            let index = remaining.trailingZeroBitCount
            try body(index)
            remaining &= remaining &- 1
        }
    }

    /// Calls `body` for each included index, descending (unlock order).
    @inlinable public func forEachDescending(_ body: (Int) throws -> Void) rethrows {
        var remaining = bits
        while remaining != 0 {
            let index = 63 - remaining.leadingZeroBitCount
            try body(index)
            remaining &= ~(1 << UInt64(index))
        }
    }
}

/// Per-database key counts for INFO keyspace.
public struct DatabaseStatistics: Sendable, Equatable {
    /// The database index.
    public var database: Int
    /// Number of keys.
    public var keys: Int
    /// Number of keys with a TTL.
    public var expires: Int
    /// Estimated average TTL in milliseconds of keys with a TTL (sampled, as Redis estimates).
    public var averageTTLMilliseconds: Int64

    /// Creates a row.
    public init(database: Int, keys: Int, expires: Int, averageTTLMilliseconds: Int64) {
        self.database = database
        self.keys = keys
        self.expires = expires
        self.averageTTLMilliseconds = averageTTLMilliseconds
    }
}

/// The whole dataset: `databases` logical databases, spread over `shards` shards by key hash.
///
/// ```
///  I/O thread A ──execute(INCR k1)──► shard 3 lock ─┐
///  I/O thread B ──execute(MSET k1 k2)─► shard 3, 9 ─┤ (ascending order: no deadlock)
///  BGSAVE ───────snapshot()──────────► all shards, O(1) COW copy each, then unlocked; a
///                                      writer serializes a pending image before mutating
/// ```
public final class Keyspace: Sendable {
    /// The function libraries' code (saved before the databases, as Redis's rdbSaveFunctions).
    public let functionLibraries = FunctionLibraries()
    /// The shards; `shards[i].index == i`.
    public let shards: [Shard]
    /// `shards` unretained, for single-key commands: reading a class reference out of an array
    /// retains it and its holder releases it later (two atomic operations a command). They
    /// live as long as this keyspace, which holds them in `shards`.
    public let unretainedShards: [Unmanaged<Shard>]
    /// Releases big deleted values and flushed databases in background (UNLINK, FLUSH ASYNC).
    public let lazyFree = LazyFree()
    /// Number of logical databases (SELECT range).
    public let databaseCount: Int
    private let shardMaskBits: UInt64
    /// The thread (pthread_self) holding every shard for an EXEC, or 0. Whole-keyspace helpers
    /// called on that thread (DBSIZE, SAVE, INFO inside EXEC) must not lock again: they would
    /// deadlock on the non-recursive shard mutexes.
    private let exclusiveOwner = Atomic<UInt>(0)

    /// Creates an empty keyspace. `shards` must be a power of two between 1 and 64.
    public init(databases: Int = 16, shards: Int = 16) {
        precondition(databases >= 1, "at least one database")
        precondition(shards >= 1 && shards <= 64 && shards & (shards - 1) == 0,
                     "shards: power of two in 1...64")
        databaseCount = databases
        shardMaskBits = UInt64(shards - 1)
        let gate = ExpiryGate()
        expiryGate = gate
        let signal = OperationRecordSignal()
        operationRecords = signal
        self.shards = (0..<shards).map {
            Shard(index: $0, databases: databases, expiryGate: gate, recordSignal: signal)
        }
        unretainedShards = self.shards.map(Unmanaged.passUnretained)
    }

    /// Raised while some shard may hold undrained operation records (see `Shard.recordSignal`).
    public let operationRecords: OperationRecordSignal

    /// Closed while clients are paused: expired keys are then neither deleted nor propagated.
    public let expiryGate: ExpiryGate

    /// Every shard.
    public var allShards: ShardMask {
        ShardMask(bits: shards.count == 64 ? UInt64.max : (1 << UInt64(shards.count)) - 1)
    }

    /// The shard index of `bytes`: the tables' word hash (`KeyTableStorage.hash`) under a
    /// fixed secret, so it is stable across processes and independent of the tables' seeded
    /// hash; the top bits of a multiply pick the shard. For a key of up to 24 bytes it is a
    /// few folds of its words, where a byte-at-a-time FNV-1a loop cost ~90 instructions.
    public func shardIndex<C: Collection>(for bytes: C) -> Int where C.Element == UInt8 {
        let hash = bytes.withContiguousStorageIfAvailable { KeyTableStorage.hash(UnsafeRawBufferPointer($0),
                                                                                 secret: Self.shardSecret) }
            ?? Array(bytes).withUnsafeBytes { KeyTableStorage.hash($0, secret: Self.shardSecret) }
        return shardIndex(hash: hash)
    }

    /// The secret of the shard hash: fixed, unlike the tables' per-process one.
    static let shardSecret: UInt64 = 0x2d35_8dcc_aa6c_78a5

    @inline(__always) func shardIndex(hash: UInt64) -> Int {
        Int(truncatingIfNeeded: ((hash &* 0x9E37_79B9_7F4A_7C15) >> 32) & shardMask)
    }

    @usableFromInline var shardMask: UInt64 { shardMaskBits }

    /// The shard holding `key`.
    @inlinable public func shard(for key: Key) -> Shard { shards[shardIndex(for: key)] }

    /// The shard index of `key` (an inline key hashes from its words: no bytes are copied).
    public func shardIndex(for key: Key) -> Int {
        shardIndex(hash: KeyTableStorage.hash(of: key, secret: Self.shardSecret))
    }

    /// Locks the shards of `mask` in ascending order.
    public func lock(_ mask: ShardMask) { mask.forEach { shards[$0].lock() } }

    /// Unlocks the shards of `mask`.
    public func unlock(_ mask: ShardMask) { mask.forEachDescending { shards[$0].unlock() } }

    /// True when the calling thread holds every shard through `lockExclusive()`.
    @inline(__always)
    public var isExclusivelyHeldByCurrentThread: Bool {
        let owner = exclusiveOwner.load(ordering: .relaxed)
        return owner != 0 && owner == UInt(pthread_self())
    }

    /// Locks every shard for the calling thread (EXEC). Returns false, locking nothing, when
    /// the thread already holds them; pass the result to `unlockExclusive(_:)`.
    public func lockExclusive() -> Bool {
        if isExclusivelyHeldByCurrentThread { return false }
        lock(allShards)
        // Whatever the holder does to several shards must fail concurrent optimistic reads.
        for shard in shards { shard.markWritten() }
        exclusiveOwner.store(UInt(pthread_self()), ordering: .relaxed)
        return true
    }

    /// Undoes `lockExclusive()` when it returned true.
    public func unlockExclusive(_ locked: Bool) {
        guard locked else { return }
        exclusiveOwner.store(0, ordering: .relaxed)
        unlock(allShards)
    }

    /// Locks one shard unless the thread holds all shards; returns whether it locked.
    @inline(__always)
    func acquire(_ shard: Shard) -> Bool {
        if isExclusivelyHeldByCurrentThread { return false }
        shard.lock()
        return true
    }

    /// Turns the recording of created keys (the "new" keyspace event) on or off in every shard.
    public func setRecordsCreatedKeys(_ enabled: Bool) {
        for shard in shards {
            let locked = acquire(shard)
            shard.recordsCreatedKeys = enabled
            if !enabled { shard.createdDuringOperation.removeAll() }
            if locked { shard.unlock() }
        }
    }

    /// Turns the recording of missed reads (the "keymiss" keyspace event) on or off in every shard.
    public func setRecordsMissedKeys(_ enabled: Bool) {
        for shard in shards {
            let locked = acquire(shard)
            shard.recordsMissedKeys = enabled
            if !enabled { shard.missedDuringOperation.removeAll() }
            if locked { shard.unlock() }
        }
    }

    // MARK: Whole-keyspace operations (each locks what it needs)

    /// Number of keys in `database`.
    public func count(database: Int) -> Int {
        var total = 0
        for shard in shards {
            let locked = acquire(shard)
            total += shard.count(database)
            if locked { shard.unlock() }
        }
        return total
    }

    /// Key and TTL counts for each non-empty database (INFO keyspace).
    public func databaseStatistics() -> [DatabaseStatistics] {
        var result: [DatabaseStatistics] = []
        for database in 0..<databaseCount {
            var keys = 0
            var expires = 0
            var ttlSum: Int64 = 0
            var ttlShards: Int64 = 0
            for shard in shards {
                let locked = acquire(shard)
                keys += shard.count(database)
                expires += shard.expiringCount(database)
                let average = shard.averageTTL[database]
                if average > 0 {
                    ttlSum += average
                    ttlShards += 1
                }
                if locked { shard.unlock() }
            }
            if keys > 0 {
                let average = ttlShards > 0 ? ttlSum / ttlShards : 0
                result.append(DatabaseStatistics(
                    database: database, keys: keys, expires: expires, averageTTLMilliseconds: average))
            }
        }
        return result
    }

    /// Keyspace hits, misses and expired keys summed over shards (INFO stats).
    public func statistics() -> (hits: Int64, misses: Int64, expiredKeys: Int64) {
        var hits: Int64 = 0
        var misses: Int64 = 0
        var expired: Int64 = 0
        for shard in shards {
            let locked = acquire(shard)
            hits &+= shard.hits
            misses &+= shard.misses
            expired &+= shard.expiredKeys
            if locked { shard.unlock() }
        }
        return (hits, misses, expired)
    }

    /// Zeroes hits, misses and expired-key counters (CONFIG RESETSTAT).
    public func resetStatistics() {
        for shard in shards {
            let locked = acquire(shard)
            shard.resetStatistics()
            if locked { shard.unlock() }
        }
    }

    /// Takes a point-in-time copy of every database: all shards are locked together while
    /// each shard's tables are captured, then released.
    ///
    /// Without a `serializer` the tables are copied (O(1) copy-on-write; the first later
    /// mutation of a table copies it): consume with `forEachEntry`. With one, each table gets a
    /// `TableImage` instead: a writer about to change a slot first serializes that slot's page
    /// of the table, and the consumer (`forEachShardImage`) serializes the pages no writer
    /// reached, so no command pays for more than one page and the save costs about the
    /// serialized size of what writers reach first in extra memory, not a second table.
    public func image(serializer: ShardImageSerializer? = nil) -> KeyspaceImage {
        let locked = lockExclusive()
        var slots: [ShardImageSlot] = []
        slots.reserveCapacity(shards.count)
        for shard in shards {
            let slot = ShardImageSlot()
            slot.keyCounts = shard.tables.map(\.count)
            slot.expiringCounts = shard.expiring.map(\.count)
            if let serializer {
                slot.images = shard.tables.map { $0.beginImage(serializer: serializer) }
            } else {
                slot.tables = shard.tables
            }
            slots.append(slot)
        }
        unlockExclusive(locked)
        return KeyspaceImage(keyspace: self, slots: slots, functionCodes: functionLibraries.codes)
    }

    /// Inserts an entry read from an RDB or AOF base, replacing any existing one; `now` (Unix
    /// ms, read once for the whole load) stamps its access time instead of a clock read a key.
    public func insertLoaded(database: Int, key: Key, entry: Entry, now: Int64? = nil) {
        let shard = shards[shardIndex(for: key)]
        let locked = acquire(shard)
        shard.store(database, key, entry, now: now)
        if locked { shard.unlock() }
    }

    /// Sizes `database`'s tables for `keys` more keys spread over the shards (an RDB's
    /// RESIZEDB hint), so loading them does not grow each table a quarter at a time.
    public func reserve(database: Int, keys: Int) {
        guard database >= 0, database < databaseCount, keys > 0 else { return }
        let perShard = keys / shards.count + 1
        for shard in shards {
            let locked = acquire(shard)
            shard.reserve(database, additionalKeys: perShard)
            if locked { shard.unlock() }
        }
    }

    /// Removes every key of every database (before loading, DEBUG RELOAD, FLUSHALL).
    /// Returns how many keys were removed.
    @discardableResult
    public func removeAll() -> Int {
        let locked = lockExclusive()
        var removed = 0
        for shard in shards {
            for database in 0..<databaseCount { removed += shard.removeAll(database) }
        }
        unlockExclusive(locked)
        return removed
    }
}

/// A snapshot's content for one database of one shard, as `forEachShardImage` hands it out.
public enum ShardImage {
    /// Starts the database's part in a shard: how many keys the chunks that follow, up to the
    /// next `section`, hold together, and whether this is the database's first section.
    case section(database: Int, keys: Int, first: Bool)
    /// A page's entries as the serializer encoded them.
    case serialized([UInt8])
}

/// One shard's part of a snapshot: copied tables or, for a serializing snapshot, one image per
/// database. An image is only used under that shard's lock (writers reach it through their
/// table); the arrays here are only changed by the consumer's thread, and the key counts are
/// fixed at the snapshot instant (`forEachEntry` zeroes them as it goes).
final class ShardImageSlot: @unchecked Sendable {
    var tables: [KeyTable]?
    var images: [TableImage?] = []
    var keyCounts: [Int] = []
    var expiringCounts: [Int] = []
}

/// A point-in-time image of the keyspace for RDB saving and AOF rewrite.
///
/// `@unchecked Sendable` because it is handed to one background thread that owns it from
/// then on: the tables it holds are value copies no live shard can mutate (copy-on-write),
/// and each slot is only touched under its shard's lock.
public final class KeyspaceImage: @unchecked Sendable {
    private let keyspace: Keyspace
    private let slots: [ShardImageSlot]
    /// Number of databases.
    public var databaseCount: Int { keyspace.databaseCount }
    /// The function libraries' code at snapshot time.
    public let functionCodes: [[UInt8]]

    init(keyspace: Keyspace, slots: [ShardImageSlot], functionCodes: [[UInt8]]) {
        self.keyspace = keyspace
        self.slots = slots
        self.functionCodes = functionCodes
    }

    deinit { release() }

    /// Keys in `database` at snapshot time (expired-but-unreclaimed keys included), less those
    /// `forEachEntry` already visited.
    public func keyCount(database: Int) -> Int {
        slots.reduce(0) { $0 + $1.keyCounts[database] }
    }

    /// Keys with a TTL in `database` at snapshot time, less those `forEachEntry` already visited.
    public func expiringKeyCount(database: Int) -> Int {
        slots.reduce(0) { $0 + $1.expiringCounts[database] }
    }

    /// Runs `body` holding shard `index`'s lock (unless this thread holds every shard).
    private func withShard<R>(_ index: Int, _ body: (Shard, ShardImageSlot) -> R) -> R {
        let shard = keyspace.shards[index]
        let locked = keyspace.acquire(shard)
        defer { if locked { shard.unlock() } }
        return body(shard, slots[index])
    }

    /// Hands the snapshot to `body`, shard by shard and database by database: a `section`,
    /// then its pages as chunks, encoded by writers that reached them first or here, one page
    /// per hold of the shard lock. Call once; it is the only consumer of a snapshot taken with
    /// a serializer.
    public func forEachShardImage(_ body: (ShardImage) throws -> Void) throws {
        defer { release() }
        var sectionStarted = Array(repeating: false, count: databaseCount)
        for index in slots.indices {
            let slot = slots[index]
            for database in slot.images.indices where slot.images[database] != nil {
                try body(.section(database: database, keys: slot.keyCounts[database],
                                  first: !sectionStarted[database]))
                sectionStarted[database] = true
                var complete = false
                while !complete {
                    let chunks: [[UInt8]] = withShard(index) { _, slot in
                        guard let image = slot.images[database] else {
                            complete = true
                            return []
                        }
                        image.captureNext()
                        complete = image.isComplete
                        if complete { slot.images[database] = nil }
                        return image.takeChunks()
                    }
                    for chunk in chunks { try body(.serialized(chunk)) }
                }
            }
        }
    }

    /// Detaches every image writers still capture pages for and drops what is left (after the
    /// consumer finished or gave up).
    public func release() {
        for index in slots.indices {
            withShard(index) { _, slot in
                for image in slot.images { image?.release() }
                slot.images = []
                slot.tables = nil
            }
        }
    }

    /// Visits every entry of `database`, one shard at a time, releasing each shard's image
    /// after visiting it (so the old copies are freed as the save progresses). Call once per
    /// database, on a snapshot taken without a serializer.
    public func forEachEntry(database: Int, _ body: (Key, Entry) throws -> Void) rethrows {
        for index in slots.indices {
            let slot = slots[index]
            precondition(slot.images.isEmpty, "forEachEntry needs a snapshot taken without a serializer")
            guard let tables = slot.tables else { continue }
            for (key, entry) in tables[database] { try body(key, entry) }
            slot.tables![database] = KeyTable()
            slot.keyCounts[database] = 0
            slot.expiringCounts[database] = 0
        }
    }
}
