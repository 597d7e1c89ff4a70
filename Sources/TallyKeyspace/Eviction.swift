// Eviction: Redis-style approximate LRU/LFU/TTL/random victim selection for `maxmemory`.
//
//   engine.execute ─► over maxmemory? ─► keyspace.evict ─► shard k (locked): sample N candidates
//                                              ▲                  per database, remove the best,
//                                              └── next shard ◄── report DEL for the AOF
//
// Like Redis, no exact ordering is kept: each step samples `maxmemory-samples` keys in each of
// a few consecutive shards (keys hash uniformly over shards, so together they approximate a
// sample of the keyspace, as Redis's eviction pool does) and removes the one with the highest
// idle time / lowest frequency / nearest expiry.
import Synchronization

extension Shard {
    /// Access stamp for an entry being stored now (LRU: now; LFU: the previous counter,
    /// touched, as Redis keeps the LFU counter when a key is overwritten).
    func accessStampForStore(_ database: Int, _ key: Key, now given: Int64? = nil) -> UInt32 {
        let now = given ?? accessClock?.nowMilliseconds() ?? 0
        switch accessMode {
        case .lru:
            return UInt32(truncatingIfNeeded: now / 1000)
        case .lfu:
            guard let previous = tables[database][key] else { return LFU.fresh(nowMilliseconds: now) }
            return previous.access
        }
    }

    /// The live entry for `key` without recording an access (OBJECT, like Redis's
    /// LOOKUP_NOTOUCH); an expired key is deleted, and a hit or miss is counted.
    public func lookupWithoutTouching(_ database: Int, _ key: Key, now: Int64) -> Entry? {
        guard let entry = tables[database][key] else {
            misses &+= 1
            return nil
        }
        if let expiry = entry.expiresAtMilliseconds, expiry <= now, expire(database, key) {
            misses &+= 1
            return nil
        }
        hits &+= 1
        return entry
    }

    /// Seconds since `entry` was last accessed, or nil under an LFU policy (the stamp is then a
    /// counter; Redis's 1 s LRU resolution).
    public func idleSeconds(of entry: Entry, now: Int64) -> Int64? {
        guard accessMode == .lru else { return nil }
        let clock = UInt32(truncatingIfNeeded: now / 1000)
        return Int64(clock &- entry.access)
    }

    /// The LFU counter of `entry` after decay for its idle minutes (what OBJECT FREQ shows),
    /// or nil when no LFU policy is configured.
    public func accessFrequency(of entry: Entry, now: Int64) -> Int64? {
        guard accessMode == .lfu else { return nil }
        return Int64(LFU.decayedCounter(entry.access, nowMilliseconds: now, decayMinutes: lfuDecayMinutes))
    }

    /// RESTORE's IDLETIME / FREQ for a key just stored (object.c objectSetLRUOrLFU): the idle
    /// seconds set the LRU clock back unless an LFU policy is in force, the frequency sets the
    /// LFU counter only under one; the other is ignored, as in Redis.
    public func setRestoredAccess(_ database: Int, _ key: Key, idleSeconds: Int64?, frequency: Int64?,
                                  now: Int64) {
        guard let index = tables[database].index(forKey: key) else { return }
        switch accessMode {
        case .lru:
            guard let idleSeconds else { return }
            tables[database].setAccess(UInt32(truncatingIfNeeded: now / 1000 - idleSeconds), at: index)
        case .lfu:
            guard let frequency else { return }
            tables[database].setAccess((LFU.minutes(now) << 8) | UInt32(frequency), at: index)
        }
    }

    /// `lookup`: the live entry, with the access recorded (LRU clock or LFU counter).
    func lookupTouching(_ database: Int, _ key: Key, now: Int64) -> Entry? {
        guard let index = withTable(database, { $0.index(forKey: key) }) else { return nil }
        if let expiry = withTable(database, { $0.expiresAtMilliseconds(at: index) }), expiry <= now,
           expire(database, key) {
            return nil
        }
        return recordAccess(database, at: index, now: now)
    }

    /// Stamps the entry at `index` as accessed now (LRU clock or LFU counter) and returns it.
    @inline(__always)
    func recordAccess(_ database: Int, at index: Int, now: Int64) -> Entry {
        stampAccess(database, at: index, now: now)
        return withTable(database) { $0.entry(at: index) }
    }

    /// Stamps the entry at `index` as accessed now (LRU clock or LFU counter).
    @inline(__always)
    func stampAccess(_ database: Int, at index: Int, now: Int64) {
        let stamp: UInt32
        switch accessMode {
        case .lru:
            stamp = UInt32(truncatingIfNeeded: now / 1000)
        case .lfu:
            let random = UInt32(truncatingIfNeeded: fastRandom.next() >> 32)
            stamp = LFU.touched(
                tables[database].access(at: index), nowMilliseconds: now, random: random, logFactor: lfuLogFactor,
                decayMinutes: lfuDecayMinutes)
        }
        tables[database].setAccess(stamp, at: index)
    }

    /// `lookup` for a caller that needs only whether the key is live and its expiry (SET's NX,
    /// XX and KEEPTTL): the same lazy expiry and access stamp, without copying the value out.
    public func lookupPresence(_ database: Int, _ key: Key, now: Int64) -> KeyPresence? {
        guard let index = presentIndex(database, key, now: now) else { return nil }
        return KeyPresence(expiresAtMilliseconds: withTable(database) { $0.expiresAtMilliseconds(at: index) })
    }

    /// `lookupPresence` giving the key's slot in its table instead, for an edit in place that
    /// then needs no second probe (valid until the table next changes).
    func presentIndex(_ database: Int, _ key: Key, now: Int64) -> Int? {
        guard let index = withTable(database, { $0.index(forKey: key) }) else { return nil }
        if let expiry = withTable(database, { $0.expiresAtMilliseconds(at: index) }), expiry <= now,
           expire(database, key) {
            return nil
        }
        stampAccess(database, at: index, now: now)
        return index
    }

    /// Applies `policy` to this shard (caller holds the lock): builds or drops the all-keys
    /// sampling index and, when the access mode changes, stamps existing keys as accessed now,
    /// so switching policy at runtime does not make every old key look maximally cold.
    func configureEviction(_ policy: EvictionPolicy, clock: any Clock, lfuLogFactor: UInt32, lfuDecayMinutes: Int64) {
        accessClock = clock
        self.lfuLogFactor = lfuLogFactor
        self.lfuDecayMinutes = lfuDecayMinutes
        let needsIndex = policy != .noEviction && !policy.onlyVolatile
        if needsIndex && sampledKeys == nil {
            var indexes = Array(repeating: ExpiringKeys(), count: tables.count)
            for database in tables.indices {
                for key in tables[database].keys { indexes[database].insert(key) }
            }
            sampledKeys = indexes
        } else if !needsIndex {
            sampledKeys = nil
        }
        let mode = policy.accessMode
        if mode != accessMode {
            accessMode = mode
            let now = clock.nowMilliseconds()
            let stamp: UInt32
            switch mode {
            case .lru: stamp = UInt32(truncatingIfNeeded: now / 1000)
            case .lfu: stamp = LFU.fresh(nowMilliseconds: now)
            }
            for database in tables.indices { tables[database].setEveryAccess(stamp) }
        }
    }

    /// The best of `samples` candidates per database under `policy` (caller holds the lock),
    /// or nil when this shard has no candidate. Removes nothing.
    func bestCandidate(policy: EvictionPolicy, samples: Int, now: Int64) -> (score: Int64, victim: DatabaseKey)? {
        var best: (score: Int64, database: Int, key: Key)?
        let databases = tables.count
        let start = databases > 1 ? fastRandom.below(databases) : 0
        for step in 0..<databases {
            let database = (start + step) % databases
            let candidates = policy.onlyVolatile ? expiring[database] : (sampledKeys?[database] ?? ExpiringKeys())
            let available = candidates.count
            if available == 0 { continue }
            if policy == .allKeysRandom || policy == .volatileRandom {
                best = (0, database, candidates.keys[fastRandom.below(available)])
                break
            }
            for _ in 0..<min(samples, available) {
                let key = candidates.keys[fastRandom.below(available)]
                guard let entry = tables[database][key] else { continue }
                let score = evictionScore(entry, policy: policy, now: now)
                if best == nil || score > best!.score { best = (score, database, key) }
            }
        }
        guard let best else { return nil }
        return (best.score, DatabaseKey(database: best.database, key: best.key))
    }

    /// Removes an eviction victim if it is still there (caller holds the lock).
    func evict(_ victim: DatabaseKey) -> Bool {
        guard remove(victim.database, victim.key) != nil else { return false }
        // The engine sends the victim's tracking invalidation itself, before the command's
        // reply; the command's own drain must not send it again.
        if modifiedDuringOperation.last == victim.key.bytes { modifiedDuringOperation.removeLast() }
        evictedKeys &+= 1
        return true
    }

    /// Higher = evict first.
    func evictionScore(_ entry: Entry, policy: EvictionPolicy, now: Int64) -> Int64 {
        switch policy {
        case .allKeysLRU, .volatileLRU:
            // Wrapping difference of 32-bit second clocks: the idle time in seconds.
            let nowSeconds = UInt32(truncatingIfNeeded: now / 1000)
            return Int64(nowSeconds &- entry.access)
        case .allKeysLFU, .volatileLFU:
            return 255 - Int64(LFU.decayedCounter(entry.access, nowMilliseconds: now, decayMinutes: lfuDecayMinutes))
        case .volatileTTL:
            return Int64.max - (entry.expiresAtMilliseconds ?? Int64.max)
        case .noEviction, .allKeysRandom, .volatileRandom:
            return 0
        }
    }
}

extension Keyspace {
    /// Sum of the shards' running memory estimates (`MemoryEstimate`), without locking.
    public var usedMemoryBytes: Int {
        var total = 0
        for shard in shards { total &+= shard.usedBytes.load(ordering: .relaxed) }
        return total
    }

    /// Keys removed by eviction since start (or CONFIG RESETSTAT).
    public var evictedKeys: Int64 {
        var total: Int64 = 0
        for shard in shards {
            let locked = acquire(shard)
            total &+= shard.evictedKeys
            if locked { shard.unlock() }
        }
        return total
    }

    /// Zeroes the evicted-keys counter (CONFIG RESETSTAT).
    public func resetEvictedKeys() {
        for shard in shards {
            let locked = acquire(shard)
            shard.evictedKeys = 0
            if locked { shard.unlock() }
        }
    }

    /// Switches every shard to `policy` (CONFIG SET maxmemory-policy). O(keys) when an
    /// allkeys-* index must be built or the access mode changes; otherwise O(shards).
    public func configureEviction(
        _ policy: EvictionPolicy, clock: any Clock, lfuLogFactor: UInt32 = LFU.logFactor,
        lfuDecayMinutes: Int64 = LFU.decayMinutes
    ) {
        for shard in shards {
            let locked = acquire(shard)
            shard.configureEviction(policy, clock: clock, lfuLogFactor: lfuLogFactor, lfuDecayMinutes: lfuDecayMinutes)
            if locked { shard.unlock() }
        }
    }

    /// Evicts keys chosen by `policy` until the estimate is at most `limitBytes`. `evicted` is
    /// called with each shard's victims while that shard is still locked (the AOF must see the
    /// DEL before any later write to those keys). Returns false when memory is still over the
    /// limit because no key is eligible (noeviction, or volatile-* with no TTL keys).
    public func evict(
        toAtMost limitBytes: Int, policy: EvictionPolicy, samples: Int, now: Int64,
        cursor: inout Int, evicted: ([DatabaseKey]) -> Void
    ) -> Bool {
        if policy == .noEviction { return usedMemoryBytes <= limitBytes }
        /// Shards sampled per victim: enough that the choice is close to a global one, few
        /// enough that one eviction locks only a handful of shards, one at a time.
        let probedShardsMax = 4
        let probed = min(probedShardsMax, shards.count)
        var emptyProbes = 0
        while usedMemoryBytes > limitBytes {
            // Every shard probed without finding a candidate: nothing is eligible.
            if emptyProbes * probed >= shards.count + probed { return false }
            var best: (score: Int64, shard: Shard, victim: DatabaseKey)?
            for step in 0..<probed {
                let shard = shards[(cursor &+ step) % shards.count]
                let locked = acquire(shard)
                if let candidate = shard.bestCandidate(policy: policy, samples: max(1, samples), now: now),
                   best == nil || candidate.score > best!.score {
                    best = (candidate.score, shard, candidate.victim)
                }
                if locked { shard.unlock() }
            }
            cursor &+= 1
            guard let best else {
                emptyProbes += 1
                cursor &+= probed - 1
                continue
            }
            emptyProbes = 0
            let locked = acquire(best.shard)
            // Another thread may have removed it between the probe and now; then just retry.
            if best.shard.evict(best.victim) { evicted([best.victim]) }
            if locked { best.shard.unlock() }
        }
        return true
    }
}

/// What `Shard.lookupPresence` found of a live key.
public struct KeyPresence: Sendable {
    /// Its expiry (Unix ms), nil for none.
    public let expiresAtMilliseconds: Int64?
}
