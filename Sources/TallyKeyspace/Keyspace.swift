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
        self.shards = (0..<shards).map { Shard(index: $0, databases: databases, expiryGate: gate) }
    }

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
    /// each shard's tables are captured (O(1) copy-on-write), then released.
    ///
    /// With a `serializer`, a writer about to mutate a shard whose image the consumer has not
    /// taken yet first turns that image into bytes and lets go of it, so the mutation works on
    /// an unshared table instead of copying it: the save then costs about the serialized size
    /// of the dataset in extra memory instead of a second copy of every table. Consume such a
    /// snapshot with `forEachShardImage`.
    public func image(serializer: ShardImageSerializer? = nil) -> KeyspaceImage {
        let locked = lockExclusive()
        var slots: [ShardImageSlot] = []
        slots.reserveCapacity(shards.count)
        for shard in shards {
            // An earlier snapshot's pending image must not be captured by this one's slot.
            shard.serializePendingImage()
            let slot = ShardImageSlot(tables: shard.tables, serializer: serializer)
            slot.keyCounts = shard.tables.map(\.count)
            slot.expiringCounts = shard.expiring.map(\.count)
            if serializer != nil { shard.pendingImage = slot }
            slots.append(slot)
        }
        unlockExclusive(locked)
        return KeyspaceImage(keyspace: self, slots: slots, functionCodes: functionLibraries.codes)
    }

    /// Inserts an entry read from an RDB or AOF base, replacing any existing one.
    public func insertLoaded(database: Int, key: Key, entry: Entry) {
        let shard = shards[shardIndex(for: key)]
        let locked = acquire(shard)
        shard.store(database, key, entry)
        if locked { shard.unlock() }
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

/// Turns one shard's point-in-time tables (index = database) into the bytes its consumer writes
/// (for an RDB: one self-contained `FE db` section per non-empty database).
public typealias ShardImageSerializer = @Sendable (_ tables: [KeyTable]) -> [UInt8]

/// One shard's image in a snapshot, as the consumer receives it.
public enum ShardImage {
    /// The tables (index = database); the consumer serializes them.
    case tables([KeyTable])
    /// Already serialized by a writer that needed the shard (the serializer's output).
    case serialized([UInt8])
}

/// One shard's part of a snapshot. Every access holds that shard's lock: writers (through
/// `Shard.serializePendingImage`) and the consumer (through `KeyspaceImage`) both reach it.
final class ShardImageSlot: @unchecked Sendable {
    var tables: [KeyTable]?
    var chunk: [UInt8]?
    var keyCounts: [Int] = []
    var expiringCounts: [Int] = []
    let serializer: ShardImageSerializer?

    init(tables: [KeyTable], serializer: ShardImageSerializer?) {
        self.tables = tables
        self.serializer = serializer
    }

    /// Drops the image once handed out (caller holds the shard lock).
    func forget() {
        tables = nil
        chunk = nil
        keyCounts = keyCounts.map { _ in 0 }
        expiringCounts = expiringCounts.map { _ in 0 }
    }

    /// Serializes the held tables and drops them (caller holds the shard lock).
    func serialize() {
        guard let serializer, let held = tables else { return }
        tables = nil
        chunk = serializer(held)
    }
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
    /// already handed to the consumer.
    public func keyCount(database: Int) -> Int {
        slots.reduce(0) { $0 + $1.keyCounts[database] }
    }

    /// Keys with a TTL in `database` at snapshot time, less those already handed out.
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

    /// Hands each shard's image to `body`, in shard order, and forgets it (so memory falls as
    /// the save progresses). Call once; it is the only consumer of a snapshot taken with a
    /// serializer.
    public func forEachShardImage(_ body: (ShardImage) throws -> Void) throws {
        defer { release() }
        for index in slots.indices {
            let image: ShardImage? = withShard(index) { shard, slot in
                if shard.pendingImage === slot { shard.pendingImage = nil }
                defer { slot.forget() }
                if let chunk = slot.chunk { return .serialized(chunk) }
                if let tables = slot.tables { return .tables(tables) }
                return nil
            }
            if let image { try body(image) }
        }
    }

    /// Detaches every image writers still hold back for and drops what is left (after the
    /// consumer finished or gave up).
    public func release() {
        for index in slots.indices {
            withShard(index) { shard, slot in
                if shard.pendingImage === slot { shard.pendingImage = nil }
                slot.forget()
            }
        }
    }

    /// Visits every entry of `database`, one shard at a time, releasing each shard's image
    /// after visiting it (so the old copies are freed as the save progresses). Call once per
    /// database, on a snapshot taken without a serializer.
    public func forEachEntry(database: Int, _ body: (Key, Entry) throws -> Void) rethrows {
        for index in slots.indices {
            let slot = slots[index]
            precondition(slot.serializer == nil, "forEachEntry needs a snapshot taken without a serializer")
            guard let tables = slot.tables else { continue }
            for (key, entry) in tables[database] { try body(key, entry) }
            slot.tables![database] = KeyTable()
            slot.keyCounts[database] = 0
            slot.expiringCounts[database] = 0
        }
    }
}
