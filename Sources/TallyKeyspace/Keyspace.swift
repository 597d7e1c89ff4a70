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
///  BGSAVE ───────snapshot()──────────► all shards, O(1) COW copy each, then unlocked
/// ```
public final class Keyspace: Sendable {
    /// The shards; `shards[i].index == i`.
    public let shards: [Shard]
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
        self.shards = (0..<shards).map { Shard(index: $0, databases: databases) }
    }

    /// Every shard.
    public var allShards: ShardMask {
        ShardMask(bits: shards.count == 64 ? UInt64.max : (1 << UInt64(shards.count)) - 1)
    }

    /// The shard index of `bytes`: FNV-1a, then a multiply-xorshift finalizer so that keys
    /// differing only in their last byte still spread. Fixed (not seeded) so it is stable.
    @inlinable
    public func shardIndex<C: Collection>(for bytes: C) -> Int where C.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 29
        hash = hash &* 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 32
        return Int(truncatingIfNeeded: hash & shardMask)
    }

    @usableFromInline var shardMask: UInt64 { shardMaskBits }

    /// The shard holding `key`.
    @inlinable public func shard(for key: Key) -> Shard { shards[shardIndex(for: key)] }

    /// The shard index of `key` (hashes its bytes in place: no array is built for inline keys).
    @inlinable public func shardIndex(for key: Key) -> Int { key.withUnsafeBytes { shardIndex(for: $0) } }

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
    /// each shard's tables are copied (O(1) copy-on-write), then released.
    public func snapshot() -> KeyspaceSnapshot {
        let locked = lockExclusive()
        let tables = shards.map { $0.tables }
        unlockExclusive(locked)
        return KeyspaceSnapshot(tables: tables, databaseCount: databaseCount)
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

/// A point-in-time image of the keyspace for RDB saving and AOF rewrite.
///
/// `@unchecked Sendable` because it is handed to one background thread that owns it from
/// then on: the tables it holds are value copies no live shard can mutate (copy-on-write),
/// and `forEachEntry` releasing them is only called by that owner.
public final class KeyspaceSnapshot: @unchecked Sendable {
    private var tables: [[[Key: Entry]]]
    /// Number of databases.
    public let databaseCount: Int

    init(tables: [[[Key: Entry]]], databaseCount: Int) {
        self.tables = tables
        self.databaseCount = databaseCount
    }

    /// Keys in `database` at snapshot time (expired-but-unreclaimed keys included).
    public func keyCount(database: Int) -> Int {
        tables.reduce(0) { $0 + $1[database].count }
    }

    /// Keys with a TTL in `database`.
    public func expiringKeyCount(database: Int) -> Int {
        tables.reduce(0) { total, shard in
            total + shard[database].values.reduce(0) { $0 + ($1.expiresAtMilliseconds == nil ? 0 : 1) }
        }
    }

    /// Visits every entry of `database`, one shard at a time, releasing each shard's image
    /// after visiting it (so the old copies are freed as the save progresses). Call once per
    /// database.
    public func forEachEntry(database: Int, _ body: (Key, Entry) throws -> Void) rethrows {
        for shard in tables.indices {
            for (key, entry) in tables[shard][database] { try body(key, entry) }
            tables[shard][database] = [:]
        }
    }
}
