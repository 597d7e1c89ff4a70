// Shard: one independently locked slice of the keyspace (all databases), with its operations.
import Glibc
import Synchronization
import TallyProtocol

/// Errors of shard operations; the command layer maps each to Redis's exact reply text.
public enum KeyspaceError: Error, Sendable, Equatable {
    /// WRONGTYPE: the key holds another kind of value.
    case wrongType
    /// The stored value (or hash field) is not an integer.
    case notInteger
    /// The stored value (or hash field) is not a valid float.
    case notFloat
    /// INCR/DECR would leave the 64-bit range.
    case overflow
    /// INCRBYFLOAT would produce NaN or Infinity.
    case nanOrInfinity
    /// A string would exceed 512 MB.
    case tooLarge
}

/// Set by any session's write to a watched key; read by the watching session at EXEC.
///
/// Writers on other threads set it while holding the key's shard lock; the owner reads it at
/// EXEC while holding every shard lock, so an atomic flag is enough (no per-key versions).
public final class WatchToken: Sendable {
    private let dirty = Atomic<Bool>(false)

    /// Creates a clean token.
    public init() {}

    /// True once a watched key changed.
    public var isDirty: Bool { dirty.load(ordering: .acquiring) }

    /// Marks the transaction as doomed.
    public func markDirty() { dirty.store(true, ordering: .releasing) }
}

/// A key in a specific database (the watcher registry's key).
public struct DatabaseKey: Hashable, Sendable {
    /// The database index.
    public var database: Int
    /// The key.
    public var key: Key

    /// Creates a database-qualified key.
    public init(database: Int, key: Key) {
        self.database = database
        self.key = key
    }
}

/// One session's WATCH of one key. `stale` is Redis's `watchedKey.expired`: the key was stored
/// but already past its expiry when WATCHed, so deleting it (lazily, actively, by FLUSH) is no
/// logical change and does not doom the transaction; any other write still does.
struct WatchRegistration {
    let token: WatchToken
    var stale: Bool
}

/// The keys of one database that carry a TTL, kept so active expiry can sample them in O(1).
/// Each key's position in `keys` is kept in a `KeyTable` as an integer value: a key and a small
/// integer fit one 33-byte slot, where a Dictionary<Key, Int> took 32 bytes per slot at half the
/// load (about 40 bytes a key less for every key with a TTL).
struct ExpiringKeys {
    var keys: [Key] = []
    var positions = KeyTable()

    var count: Int { keys.count }

    mutating func insert(_ key: Key) {
        if positions.index(forKey: key) != nil { return }
        positions.updateValue(Entry(value: .integer(Int64(keys.count))), forKey: key)
        keys.append(key)
    }

    mutating func remove(_ key: Key) {
        guard let slot = positions.index(forKey: key),
              case .integer(let stored) = positions.value(at: slot) else { return }
        let position = Int(stored)
        positions.removeValue(forKey: key)
        let last = keys.removeLast()
        if position < keys.count {
            keys[position] = last
            positions.updateValue(Entry(value: .integer(Int64(position))), forKey: last)
        }
    }

    mutating func removeAll() {
        keys.removeAll()
        positions = KeyTable()
    }
}

/// One shard: per-database tables of the keys that hash to it, guarded by `lock`.
///
/// Every method other than `lock()`/`unlock()` requires the caller to hold the lock. All
/// mutations funnel through `store`, `remove` and `setExpiry`, which keep the TTL index and
/// notify watchers, so no operation can forget either.
///
/// The stored properties opt out of dynamic exclusivity checks (`@exclusivity(unchecked)`):
/// the mutex already serializes every access, and the checks cost a large share of the hot
/// path's instructions (measured in the probe described in NOTES.md).
public final class Shard: @unchecked Sendable {
    /// This shard's position in the keyspace (locks are always taken in ascending index order).
    public let index: Int
    /// The mutex guarding everything below.
    public let mutex = ShardLock()
    /// Per-database tables.
    @exclusivity(unchecked) public internal(set) var tables: [KeyTable]

    /// `body` with `database`'s table borrowed in place. A non-mutating call on
    /// `tables[database]` copies the table out of the array first, a retain and a release of
    /// its storage (two atomic operations) for each lookup on the hot path; an inout access
    /// does not copy.
    @inline(__always)
    func withTable<R>(_ database: Int, _ body: (inout KeyTable) -> R) -> R { body(&tables[database]) }

    @exclusivity(unchecked) var expiring: [ExpiringKeys]
    @exclusivity(unchecked) var watchers: [DatabaseKey: [WatchRegistration]] = [:]
    /// Keys deleted by lazy expiry during the current command, to be propagated as DEL.
    @exclusivity(unchecked) public var expiredDuringOperation: [DatabaseKey] = []
    /// True while the "new" keyspace event is enabled: `store` then records created keys in
    /// `createdDuringOperation` (drained by the command layer, which fires the events).
    @exclusivity(unchecked) public var recordsCreatedKeys = false
    @exclusivity(unchecked) public var createdDuringOperation: [DatabaseKey] = []
    /// True while the "keymiss" keyspace event is enabled: `lookupRead` then records the keys
    /// it did not find in `missedDuringOperation`, numbered across shards so that the command
    /// layer fires them in lookup order (MGET a b: a first, whichever shards hold them).
    @exclusivity(unchecked) public var recordsMissedKeys = false
    @exclusivity(unchecked) public var missedDuringOperation: [(sequence: UInt64, key: DatabaseKey)] = []
    /// Set whenever one of the three lists above gains an entry, so that a command holding
    /// every shard (EXEC, scripts) skips the shards with nothing to drain with one load each,
    /// instead of reading three arrays (a retain and release apiece) per shard. Cleared by the drain.
    @exclusivity(unchecked) public var hasOperationRecords = false
    /// Raised with `hasOperationRecords` in any shard of the keyspace: a command holding every
    /// shard (scripts, EXEC) then looks at none of them while it is down, which is nearly always.
    public let recordSignal: OperationRecordSignal

    /// Notes that one of the operation record lists gained an entry (caller holds the lock).
    @inline(__always)
    func noteOperationRecord() {
        hasOperationRecords = true
        recordSignal.raise()
    }
    static let missSequence = Atomic<UInt64>(0)
    /// Keys modified during the current command, recorded while any client of the process
    /// tracks keys (CLIENT TRACKING): the command layer drains them with the other operation
    /// records and sends the invalidations (Redis's signalModifiedKey -> trackingInvalidateKey).
    @exclusivity(unchecked) public var modifiedDuringOperation: [[UInt8]] = []
    /// Tracking clients in the process: while above 0 `touch` records modified keys. One
    /// process-wide counter, so a server where nobody tracks pays one relaxed load per mutation.
    public static let trackingClients = Atomic<Int>(0)
    /// Keyspace hits and misses (INFO stats), counted under the lock.
    @exclusivity(unchecked) public internal(set) var hits: Int64 = 0
    @exclusivity(unchecked) public internal(set) var misses: Int64 = 0
    /// Keys removed because they expired (lazily or actively).
    @exclusivity(unchecked) public internal(set) var expiredKeys: Int64 = 0
    /// Per-database running estimate of the TTL of keys with one (INFO `avg_ttl`), in ms.
    @exclusivity(unchecked) public internal(set) var averageTTL: [Int64]
    /// Running `MemoryEstimate` of this shard's entries. Written only under the lock (so a
    /// plain load + store suffices); atomic so the engine can sum shards without locking.
    public let usedBytes = Atomic<Int>(0)
    /// What lookups and stores record in `Entry.access` (set by `configureEviction`).
    @exclusivity(unchecked) public internal(set) var accessMode: AccessMode = .lru
    /// Every key per database, indexed for O(1) random sampling; kept only while an
    /// allkeys-* eviction policy is configured (volatile-* policies sample `expiring`).
    @exclusivity(unchecked) var sampledKeys: [ExpiringKeys]?
    /// Clock for access stamps taken in `store` (which has no `now` argument).
    @exclusivity(unchecked) var accessClock: (any Clock)?
    /// `lfu-log-factor` and `lfu-decay-time` (set by `configureEviction`).
    @exclusivity(unchecked) var lfuLogFactor = LFU.logFactor
    @exclusivity(unchecked) var lfuDecayMinutes = LFU.decayMinutes
    /// Generator for LFU coin flips and eviction samples.
    @exclusivity(unchecked) var fastRandom: FastRandom
    /// Keys removed by `maxmemory` eviction (INFO `evicted_keys`).
    @exclusivity(unchecked) public internal(set) var evictedKeys: Int64 = 0

    /// Set while clients are paused (CLIENT PAUSE): expired keys read as missing but stay
    /// stored, so a pause changes nothing (expire.c expireIfNeeded under a pause).
    let expiryGate: ExpiryGate

    init(index: Int, databases: Int, expiryGate: ExpiryGate = ExpiryGate(),
         recordSignal: OperationRecordSignal = OperationRecordSignal()) {
        self.index = index
        self.expiryGate = expiryGate
        self.recordSignal = recordSignal
        tables = Array(repeating: KeyTable(), count: databases)
        expiring = Array(repeating: ExpiringKeys(), count: databases)
        averageTTL = Array(repeating: 0, count: databases)
        fastRandom = FastRandom(seed: 0x2545_F491_4F6C_DD1D &* UInt64(index + 1))
    }

    /// Adds `delta` to `usedBytes` (caller holds the lock).
    @inline(__always)
    func account(_ delta: Int) {
        if delta != 0 { usedBytes.store(usedBytes.load(ordering: .relaxed) &+ delta, ordering: .relaxed) }
    }

    /// Acquires this shard.
    @inline(__always) public func lock() { mutex.lock() }
    /// Releases this shard.
    @inline(__always) public func unlock() { mutex.unlock() }

    // MARK: Primitive mutations

    /// Moves `writeVersion` (caller holds the lock). Every mutation does, and a command that
    /// will write several shards does so for each of them as it takes their locks, before it
    /// changes any: see `writeVersion`.
    @inline(__always)
    public func markWritten() {
        writeVersion.store(writeVersion.load(ordering: .relaxed) &+ 1, ordering: .releasing)
    }

    /// Changes each time this shard is written or locked by a command that writes several
    /// shards (always under the lock). A reader that visited several shards one lock at a time
    /// and finds every version unchanged afterwards saw one consistent state: a multi-shard
    /// write it half-saw would have moved the version of a shard it read before that write
    /// took the lock (see `StringCommands.mget`).
    public let writeVersion = Atomic<UInt64>(0)

    /// What `quietRead` found.
    public enum QuietRead {
        /// The live entry (its access was recorded and a hit counted).
        case found(Entry)
        /// No such key (a miss was counted).
        case missing
        /// The key has expired and must be deleted and propagated, or misses are being recorded
        /// for keyspace events: only a command holding the shard until it finishes can do that.
        case needsLockedPath
    }

    /// A read that changes nothing but the access stamp (unless `touch` is false, Redis's
    /// LOOKUP_NOTOUCH) and the hit/miss counters, so the caller may release the lock right
    /// after it (no DEL or event is left to propagate).
    public func quietRead(_ database: Int, _ key: Key, now: Int64, touch: Bool = true) -> QuietRead {
        guard let index = withTable(database, { $0.index(forKey: key) }) else {
            if recordsMissedKeys { return .needsLockedPath }
            misses &+= 1
            return .missing
        }
        if let expiry = withTable(database, { $0.expiresAtMilliseconds(at: index) }), expiry <= now {
            return .needsLockedPath
        }
        hits &+= 1
        if !touch { return .found(withTable(database) { $0.entry(at: index) }) }
        return .found(recordAccess(database, at: index, now: now))
    }

    /// Marks every session watching `key` as dirty; called after each mutation of `key`. A
    /// registration made while the key was stale is only cleared when the key is gone (multi.c
    /// touchWatchedKey: an already expired key being deleted is no logical change).
    @inline(__always)
    public func touch(_ database: Int, _ key: Key) {
        if Shard.trackingClients.load(ordering: .relaxed) > 0 {
            modifiedDuringOperation.append(key.bytes)
            noteOperationRecord()
        }
        if watchers.isEmpty { return }
        touchWatchers(DatabaseKey(database: database, key: key), removed: tables[database][key] == nil)
    }

    private func touchWatchers(_ watched: DatabaseKey, removed: Bool) {
        guard var registrations = watchers[watched] else { return }
        var cleared = false
        for index in registrations.indices {
            if registrations[index].stale && removed {
                registrations[index].stale = false
                cleared = true
            } else {
                registrations[index].token.markDirty()
            }
        }
        if cleared { watchers[watched] = registrations }
    }

    /// Stores `entry` under `key`, replacing any previous entry and its TTL; `now` (Unix ms), if
    /// the caller has it, saves the access stamp a clock read.
    public func store(_ database: Int, _ key: Key, _ entry: Entry, now: Int64? = nil) {
        markWritten()
        var entry = entry
        entry.access = accessStampForStore(database, key, now: now)
        let previous = tables[database].updateValue(entry, forKey: key)
        if let previous {
            account(MemoryEstimate.bytes(of: entry.value) - previous.estimatedBytes)
        } else {
            account(MemoryEstimate.bytes(key: key, value: entry.value))
            if sampledKeys != nil { sampledKeys![database].insert(key) }
            if recordsCreatedKeys {
                createdDuringOperation.append(DatabaseKey(database: database, key: key))
                noteOperationRecord()
            }
        }
        if entry.expiresAtMilliseconds != nil {
            if previous?.expiresAtMilliseconds == nil { expiring[database].insert(key) }
        } else if previous?.expiresAtMilliseconds != nil {
            expiring[database].remove(key)
        }
        touch(database, key)
    }

    /// Removes `key`; returns the removed entry.
    @discardableResult
    public func remove(_ database: Int, _ key: Key) -> Entry? {
        markWritten()
        guard let previous = tables[database].removeValue(forKey: key) else { return nil }
        account(-MemoryEstimate.bytes(key: key, value: previous.value))
        if sampledKeys != nil { sampledKeys![database].remove(key) }
        if previous.expiresAtMilliseconds != nil { expiring[database].remove(key) }
        touch(database, key)
        return previous
    }

    /// Changes the TTL of an existing key (nil = persist). Returns false if the key is absent.
    @discardableResult
    public func setExpiry(_ database: Int, _ key: Key, _ milliseconds: Int64?) -> Bool {
        markWritten()
        guard let index = tables[database].index(forKey: key) else { return false }
        let had = tables[database].expiresAtMilliseconds(at: index) != nil
        tables[database].setExpiry(milliseconds, at: index)
        if milliseconds != nil && !had { expiring[database].insert(key) }
        if milliseconds == nil && had { expiring[database].remove(key) }
        touch(database, key)
        return true
    }

    // MARK: Lookups

    /// The live entry for `key`, deleting it first if it has expired (lazy expiry), with the
    /// access recorded. Does not count hits or misses (write paths).
    public func lookup(_ database: Int, _ key: Key, now: Int64) -> Entry? {
        lookupTouching(database, key, now: now)
    }

    /// Like `lookup`, and counts a keyspace hit or miss (read commands). `touch: false` leaves
    /// the access stamp alone, as Redis's LOOKUP_NOTOUCH does for EXISTS, TYPE and TTL.
    public func lookupRead(_ database: Int, _ key: Key, now: Int64, touch: Bool = true) -> Entry? {
        let entry = touch ? lookup(database, key, now: now) : liveEntry(database, key, now: now)
        if entry == nil {
            misses &+= 1
            if recordsMissedKeys {
                let sequence = Shard.missSequence.add(1, ordering: .relaxed).newValue
                missedDuringOperation.append((sequence, DatabaseKey(database: database, key: key)))
                noteOperationRecord()
            }
        } else {
            hits &+= 1
        }
        return entry
    }

    /// The live entry for `key` (lazy expiry) without recording an access or counting anything.
    private func liveEntry(_ database: Int, _ key: Key, now: Int64) -> Entry? {
        guard let entry = tables[database][key] else { return nil }
        if let expiry = entry.expiresAtMilliseconds, expiry <= now, expire(database, key) { return nil }
        return entry
    }

    /// True if the key is stored and not past its expiry, without deleting or counting anything.
    public func peekLive(_ database: Int, _ key: Key, now: Int64) -> Bool {
        guard let index = withTable(database, { $0.index(forKey: key) }) else { return false }
        if let expiry = withTable(database, { $0.expiresAtMilliseconds(at: index) }), expiry <= now { return false }
        return true
    }

    /// Gives back the spare capacity of tables left mostly empty by deletions (server.c
    /// databasesCron's tryResizeHashTables; run from the active expiry cycle, under the lock,
    /// where no slot index is held). A table a snapshot still reads is left as it is.
    public func shrinkSparseTables() {
        for database in tables.indices { tables[database].shrinkIfSparse() }
    }

    /// True if the key exists and has not expired, without counting a hit.
    public func contains(_ database: Int, _ key: Key, now: Int64) -> Bool {
        lookup(database, key, now: now) != nil
    }

    /// For a key found past its TTL: deletes it and records it for DEL propagation, and
    /// returns true (it reads as missing). While clients are paused, or on a replica, it stays
    /// stored and still reads as missing, except to the primary's stream on a replica, for
    /// which it is live (false): only the primary's DEL removes it (db.c expireIfNeeded).
    func expire(_ database: Int, _ key: Key) -> Bool {
        if expiryGate.isPaused { return !expiryGate.readsExpiredAsLive() }
        remove(database, key)
        expiredKeys &+= 1
        expiredDuringOperation.append(DatabaseKey(database: database, key: key))
        noteOperationRecord()
        return true
    }

    /// Resets hit/miss/expired counters (CONFIG RESETSTAT).
    public func resetStatistics() {
        hits = 0
        misses = 0
        expiredKeys = 0
    }

    // MARK: Watchers

    /// Registers `token` to be marked dirty when `key` changes; returns whether the key is
    /// live now (stored and not past its expiry), as WATCH records it.
    @discardableResult
    public func addWatcher(_ database: Int, _ key: Key, _ token: WatchToken, now: Int64) -> Bool {
        let live = peekLive(database, key, now: now)
        let stale = !live && tables[database][key] != nil
        watchers[DatabaseKey(database: database, key: key), default: []]
            .append(WatchRegistration(token: token, stale: stale))
        return live
    }

    /// Unregisters `token` from `key`.
    public func removeWatcher(_ database: Int, _ key: Key, _ token: WatchToken) {
        let watched = DatabaseKey(database: database, key: key)
        guard var registrations = watchers[watched] else { return }
        registrations.removeAll { $0.token === token }
        watchers[watched] = registrations.isEmpty ? nil : registrations
    }

    /// Touches the watchers of every stored key in `database` before it is emptied
    /// (FLUSHDB/FLUSHALL; multi.c touchAllWatchedKeysInDb with nothing replacing it).
    func touchAll(_ database: Int) {
        if watchers.isEmpty { return }
        for watched in Array(watchers.keys) where watched.database == database {
            if tables[database][watched.key] != nil { touchWatchers(watched, removed: true) }
        }
    }

    /// Exchanges the contents of two databases in this shard (SWAPDB). Watchers stay with their
    /// database numbers, so a watched key whose visible state may change is touched: one live
    /// in either database before the swap (db.c dbSwapDatabases, multi.c touchAllWatchedKeysInDb;
    /// a key that was stale or missing on both sides does not change logically).
    public func swapDatabases(_ first: Int, _ second: Int, now: Int64) {
        markWritten()
        if !watchers.isEmpty {
            for (watched, registrations) in watchers where watched.database == first || watched.database == second {
                if peekLive(first, watched.key, now: now) || peekLive(second, watched.key, now: now) {
                    for registration in registrations { registration.token.markDirty() }
                }
            }
        }
        tables.swapAt(first, second)
        expiring.swapAt(first, second)
        averageTTL.swapAt(first, second)
        if sampledKeys != nil { sampledKeys!.swapAt(first, second) }
    }

    /// Empties `database` in this shard; returns how many keys it held.
    @discardableResult
    public func removeAll(_ database: Int, releasingTo lazyFree: LazyFree? = nil) -> Int {
        // Emptying needs no serialization: the table is replaced, not changed, so a snapshot
        // still reading it keeps the old storage (detached from this shard).
        tables[database].handOffImage()
        markWritten()
        touchAll(database)
        let count = tables[database].count
        var released = 0
        for (key, entry) in tables[database] { released += MemoryEstimate.bytes(key: key, value: entry.value) }
        account(-released)
        if let lazyFree {
            // FLUSH ... ASYNC: the whole table goes to the background releaser (emptyDbAsync).
            var detached = KeyTable()
            swap(&detached, &tables[database])
            lazyFree.release(tables: [detached], count: count)
        } else {
            tables[database] = KeyTable()
        }
        expiring[database].removeAll()
        if sampledKeys != nil { sampledKeys![database].removeAll() }
        return count
    }

    /// Makes room in `database`'s table for `additionalKeys` more keys without growing.
    func reserve(_ database: Int, additionalKeys: Int) {
        markWritten()
        tables[database].reserveCapacity(tables[database].count + additionalKeys)
    }

    /// Number of keys (expired ones not yet removed included, as Redis's DBSIZE counts them).
    public func count(_ database: Int) -> Int { tables[database].count }

    /// Number of keys with a TTL.
    public func expiringCount(_ database: Int) -> Int { expiring[database].count }

    // MARK: Active expiry

    /// Samples up to `sampleSize` keys with a TTL in `database`, deletes the expired ones and
    /// returns (sampled, expired). Deleted keys are appended to `expiredDuringOperation`.
    public func sampleExpired(_ database: Int, now: Int64, sampleSize: Int,
                              random: inout SystemRandomNumberGenerator) -> (sampled: Int, expired: Int) {
        let available = expiring[database].count
        if available == 0 { return (0, 0) }
        let samples = min(sampleSize, available)
        var expired = 0
        var ttlSum: Int64 = 0
        var ttlSamples: Int64 = 0
        defer {
            // Redis's estimate: each cycle moves avg_ttl 2% toward the sample's mean TTL.
            if ttlSamples > 0 {
                let sampleMean = ttlSum / ttlSamples
                let previous = averageTTL[database]
                averageTTL[database] = previous == 0 ? sampleMean : previous / 50 * 49 + sampleMean / 50
            }
        }
        for _ in 0..<samples {
            let count = expiring[database].count
            if count == 0 { break }
            let key = expiring[database].keys[Int.random(in: 0..<count, using: &random)]
            if let expiry = tables[database][key]?.expiresAtMilliseconds, expiry <= now {
                _ = expire(database, key)
                expired += 1
            } else if let expiry = tables[database][key]?.expiresAtMilliseconds {
                ttlSum += expiry - now
                ttlSamples += 1
            }
        }
        return (samples, expired)
    }

    // MARK: Value operations

    /// INCRBY on `key`: returns the new value. Keeps the TTL, as Redis does.
    public func incrementBy(_ database: Int, _ key: Key, delta: Int64, now: Int64) throws(KeyspaceError) -> Int64 {
        // Fast path for a live key unless LFU counters are kept: one hash probe instead of a
        // lookup plus a `store` (each hashing the key). The result equals what `store` writes:
        // same expiry, the access stamp of now, estimate minus the old value's bytes, watchers
        // touched; the key stays in the TTL and sampling indexes it is already in.
        markWritten()
        if accessMode != .lfu, let index = withTable(database, { $0.index(forKey: key) }) {
            let entry = withTable(database) { $0.entry(at: index) }
            if entry.expiresAtMilliseconds.map({ $0 > now }) ?? true {
                let value: Int64
                switch entry.value {
                case .integer(let stored): value = stored
                case .string(let bytes):
                    guard let parsed = parseRedisInteger(bytes) else { throw .notInteger }
                    value = parsed
                case .hash, .list, .set, .sortedSet, .stream: throw .wrongType
                }
                let (result, overflow) = value.addingReportingOverflow(delta)
                if overflow { throw .overflow }
                tables[database].setValue(.integer(result), at: index)
                tables[database].setAccess(accessMode == .lru ? UInt32(truncatingIfNeeded: now / 1000) : 0, at: index)
                account(-MemoryEstimate.bytes(of: entry.value))
                touch(database, key)
                return result
            }
        }
        var current: Int64 = 0
        var expiry: Int64?
        if let entry = lookup(database, key, now: now) {
            expiry = entry.expiresAtMilliseconds
            switch entry.value {
            case .integer(let value): current = value
            case .string(let bytes):
                guard let value = parseRedisInteger(bytes) else { throw .notInteger }
                current = value
            case .hash, .list, .set, .sortedSet, .stream: throw .wrongType
            }
        }
        let (result, overflow) = current.addingReportingOverflow(delta)
        if overflow { throw .overflow }
        store(database, key, Entry(value: .integer(result), expiresAtMilliseconds: expiry))
        return result
    }

    /// The string bytes stored at `key` (nil if absent), throwing for a hash.
    public func getString(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError) -> Value? {
        guard let entry = lookupRead(database, key, now: now) else { return nil }
        switch entry.value {
        case .hash, .list, .set, .sortedSet, .stream: throw .wrongType
        case .integer, .string: return entry.value
        }
    }

    /// Applies `body` to the hash at `key` (see `withAggregate`).
    @inlinable
    public func withHash<R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout HashValue, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var result: R?
        try updateHash(database, key, now: now, create: create) {
            (value: inout HashValue, changed: inout Bool) throws(KeyspaceError) in
            result = try body(&value, &changed)
        }
        return result
    }

    /// `withHash`'s body, specialized here (see `withAggregate`).
    @usableFromInline
    func updateHash(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout HashValue, inout Bool) throws(KeyspaceError) -> Void
    ) throws(KeyspaceError) {
        _ = try withAggregate(database, key, now: now, create: create, body)
    }
}

extension Shard {
    /// Applies `body` to the list at `key` (see `withAggregate`).
    @inlinable
    public func withList<R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout ListValue, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var result: R?
        try updateList(database, key, now: now, create: create) {
            (value: inout ListValue, changed: inout Bool) throws(KeyspaceError) in
            result = try body(&value, &changed)
        }
        return result
    }

    /// `withList`'s body, specialized here (see `withAggregate`).
    @usableFromInline
    func updateList(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout ListValue, inout Bool) throws(KeyspaceError) -> Void
    ) throws(KeyspaceError) {
        _ = try withAggregate(database, key, now: now, create: create, body)
    }

    /// Stores the aggregate `withAggregate` took out of `slot` back into it and counts its bytes.
    private func putBack(_ value: consuming Value, _ database: Int, at slot: Int) {
        account(MemoryEstimate.bytes(of: value))
        tables[database].restoreTaken(value, at: slot)
    }

    /// Applies `body` to the aggregate (hash, list...) at `key`, creating an empty one when
    /// `create`, and stores the result back; an emptied aggregate is removed, as Redis deletes
    /// empty aggregates. `body` sets its `changed` flag when it modified the value, so watchers
    /// are only touched by real writes. Returns nil when the key is absent and `create` is
    /// false; WRONGTYPE for another kind of value. The value is taken out of the table while
    /// `body` runs, so it is uniquely referenced and every edit happens in place.
    ///
    /// The public wrappers (`withList`, `withHash`, ...) are inlinable shells around a concrete
    /// `update…` function: the caller's result type is specialized in the caller's module and this
    /// runs specialized for the value type. Called across modules with a generic result, every
    /// LPUSH instantiated `Optional<R>` metadata at run time and moved its result through value
    /// witnesses (callgrind: about 1,500 of 7,000 instructions per pipelined LPUSH).
    func withAggregate<A: AggregateValue, R>(
        _ database: Int, _ key: Key, now: Int64, create: Bool,
        _ body: (inout A, inout Bool) throws(KeyspaceError) -> R
    ) throws(KeyspaceError) -> R? {
        var aggregate = A()
        // One hash probe for a live key unless LFU counters are kept (as incrementBy): the
        // slot index serves the take-out and the write-back below (nothing else touches the
        // table meanwhile, so it stays valid).
        var slot: Int?
        markWritten()
        if accessMode != .lfu {
            // A miss here is a miss for `lookup` too: no second probe (RPOP of a missing list).
            if let index = withTable(database, { $0.index(forKey: key) }) {
                if withTable(database, { $0.expiresAtMilliseconds(at: index) }).map({ $0 > now }) ?? true {
                    if accessMode == .lru {
                        tables[database].setAccess(UInt32(truncatingIfNeeded: now / 1000), at: index)
                    }
                    slot = index
                } else if lookup(database, key, now: now) != nil {
                    slot = tables[database].index(forKey: key)
                }
            }
        } else if lookup(database, key, now: now) != nil {
            slot = tables[database].index(forKey: key)
        }
        if let slot {
            // Leave a placeholder so `aggregate` holds the only reference; the estimate loses
            // the value's bytes until it is put back. Measured while a `let`: measuring the
            // `var` copied the value (a retain and a release).
            let takenValue = tables[database].takeValue(at: slot)
            let takenBytes = MemoryEstimate.bytes(of: takenValue)
            var taken = consume takenValue
            guard let existing = A.take(from: &taken) else {
                tables[database].setValue(taken, at: slot)
                throw .wrongType
            }
            account(-takenBytes)
            aggregate = existing
        } else if !create {
            return nil
        }
        var changed = false
        let result: R
        do {
            result = try body(&aggregate, &changed)
        } catch {
            if let slot { putBack((consume aggregate).intoValue(), database, at: slot) }
            throw error
        }
        if let slot {
            if aggregate.isEmpty {
                remove(database, key)
            } else {
                putBack((consume aggregate).intoValue(), database, at: slot)
                if changed { touch(database, key) }
            }
        } else if !aggregate.isEmpty {
            store(database, key, Entry(value: (consume aggregate).intoValue()))
        }
        return result
    }

    /// The list at `key` for a read (hit or miss counted); nil when absent, WRONGTYPE for
    /// another kind of value.
    public func readList(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError) -> ListValue? {
        guard let entry = lookupRead(database, key, now: now) else { return nil }
        guard case .list(let list) = entry.value else { throw .wrongType }
        return list
    }

    /// True when `key` holds a list, false when absent; WRONGTYPE for another kind of value.
    public func holdsList(_ database: Int, _ key: Key, now: Int64) throws(KeyspaceError) -> Bool {
        guard let entry = lookup(database, key, now: now) else { return false }
        guard case .list = entry.value else { throw .wrongType }
        return true
    }

    /// True when `key` holds a value that is not a list (the destination check of LMOVE).
    public func holdsNonList(_ database: Int, _ key: Key, now: Int64) -> Bool {
        guard let entry = lookup(database, key, now: now) else { return false }
        if case .list = entry.value { return false }
        return true
    }
}

/// Whether any shard of a keyspace may hold operation records (expired, missed, created or
/// modified keys) not yet drained. Raised under a shard's lock; lowered only by a drain that
/// holds every shard, so a command holding every shard finds nothing pending without visiting
/// sixteen shards (`CommandContext.drainExpiredKeys`, after each command a script calls).
public final class OperationRecordSignal: Sendable {
    private let raised = Atomic<Bool>(false)

    /// A lowered signal.
    public init() {}

    /// True when some shard may hold records.
    @inline(__always) public var isRaised: Bool { raised.load(ordering: .relaxed) }

    /// Raises the signal (a load first: shards of several threads then do not keep writing the
    /// shared cache line while it is already raised).
    @inline(__always) func raise() {
        if !raised.load(ordering: .relaxed) { raised.store(true, ordering: .relaxed) }
    }

    /// Lowers the signal; the caller holds every shard of the keyspace and has drained them.
    public func lower() { raised.store(false, ordering: .relaxed) }
}

/// Whether expired keys may be deleted now: closed while clients are paused and while this
/// server is a replica. One per keyspace, shared by its shards and read only on the expiry path
/// (a key found past its TTL), so the command hot path never looks at it.
public final class ExpiryGate: Sendable {
    private static let pausedBit: UInt8 = 1
    private static let replicaBit: UInt8 = 2
    private let state = Atomic<UInt8>(0)
    /// The thread that applies the primary's stream (`pthread_self()` as an integer; 0 = none).
    private let linkThread = Atomic<UInt>(0)

    /// An open gate.
    public init() {}

    /// True while expired keys must stay stored (clients paused, or a replica).
    public var isPaused: Bool { state.load(ordering: .acquiring) != 0 }

    /// Closes (true) or opens (false) the gate for CLIENT PAUSE.
    public func setPaused(_ value: Bool) { setBit(Self.pausedBit, value) }

    /// Marks this keyspace as a replica's (REPLICAOF): a key past its TTL reads as missing to
    /// clients but stays stored until the primary's DEL (db.c expireIfNeeded with masterhost).
    public func setReplica(_ value: Bool) { setBit(Self.replicaBit, value) }

    /// True while this keyspace follows a primary.
    public var isReplica: Bool { state.load(ordering: .acquiring) & Self.replicaBit != 0 }

    /// Names the calling thread as the one applying the primary's stream (`false` forgets it).
    /// Commands it runs see keys past their TTL as live, as Redis's master client does: only
    /// the primary decides when a key expires.
    public func setCurrentThreadAppliesStream(_ value: Bool) {
        linkThread.store(value ? UInt(pthread_self()) : 0, ordering: .releasing)
    }

    /// For a key found past its TTL: true when it must read as live (the primary's stream on a
    /// replica), false when it reads as missing.
    func readsExpiredAsLive() -> Bool {
        guard state.load(ordering: .acquiring) & Self.replicaBit != 0 else { return false }
        let current = UInt(pthread_self())
        return current != 0 && current == linkThread.load(ordering: .acquiring)
    }

    private func setBit(_ bit: UInt8, _ value: Bool) {
        if value { state.bitwiseOr(bit, ordering: .acquiringAndReleasing) } else {
            state.bitwiseAnd(~bit, ordering: .acquiringAndReleasing)
        }
    }
}
