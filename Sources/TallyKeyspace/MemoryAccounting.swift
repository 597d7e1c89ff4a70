// MemoryAccounting: the per-entry byte estimate behind `maxmemory`, and the LRU/LFU access stamps.

/// Which keys `maxmemory` may evict, and how the victim is chosen (Redis's `maxmemory-policy`).
public enum EvictionPolicy: String, Sendable, CaseIterable {
    /// Refuse `denyOOM` commands instead of evicting.
    case noEviction = "noeviction"
    /// Least recently used among all keys.
    case allKeysLRU = "allkeys-lru"
    /// Least frequently used among all keys.
    case allKeysLFU = "allkeys-lfu"
    /// Any key, at random.
    case allKeysRandom = "allkeys-random"
    /// Least recently used among keys with a TTL.
    case volatileLRU = "volatile-lru"
    /// Least frequently used among keys with a TTL.
    case volatileLFU = "volatile-lfu"
    /// A key with a TTL, at random.
    case volatileRandom = "volatile-random"
    /// The key with the nearest expiry.
    case volatileTTL = "volatile-ttl"

    /// True when only keys with a TTL may be evicted.
    public var onlyVolatile: Bool {
        switch self {
        case .volatileLRU, .volatileLFU, .volatileRandom, .volatileTTL: return true
        default: return false
        }
    }

    /// What the access stamp of each entry records under this policy: the LFU counter under an
    /// LFU policy, else the LRU clock, which Redis keeps under every other policy too (OBJECT
    /// IDLETIME answers under noeviction; callgrind shows no cost per GET or INCR).
    public var accessMode: AccessMode {
        switch self {
        case .allKeysLFU, .volatileLFU: return .lfu
        default: return .lru
        }
    }
}

/// What `Entry.access` holds.
public enum AccessMode: Sendable {
    /// Seconds clock of the last access (Redis's 1000 ms LRU resolution), low 32 bits.
    case lru
    /// Redis's LFU layout: bits 8...23 the last decrement time in minutes (mod 2^16), bits
    /// 0...7 a logarithmic access counter.
    case lfu
}

/// Byte estimates. Tally does not ask the allocator per key (too slow on the hot path and not
/// attributable to a key); it keeps a running sum of these estimates per shard, which is what
/// `maxmemory` is compared with and what INFO reports as `used_memory_dataset`. The constants
/// approximate Swift's real costs on 64-bit Linux: a `KeyTable` slot (33 bytes at a load
/// between 70% and 87.5%), an array's heap header (32 bytes) per byte buffer.
public enum MemoryEstimate {
    /// Per-entry cost besides key and value bytes (the table slot).
    public static let entryOverheadBytes = 42
    /// Heap header of one `[UInt8]` buffer.
    public static let bufferHeaderBytes = 32
    /// Per-field cost of a hashtable-encoded hash besides the field and value bytes (two
    /// buffers, index slot). A listpack-encoded one is one buffer (`HashValue.heapBytes`).
    public static let hashFieldOverheadBytes = 3 * bufferHeaderBytes + 32

    /// Estimated bytes held by `key` → `entry`. Keys of up to `Key.inlineCapacity` bytes live
    /// inside the table slot, with no heap buffer of their own.
    @inlinable
    public static func bytes(key: Key, value: Value) -> Int {
        let keyCount = key.count
        let keyHeap = keyCount <= Key.inlineCapacity ? 0 : bufferHeaderBytes + keyCount
        return entryOverheadBytes + keyHeap + bytes(of: value)
    }

    /// Estimated heap bytes of a string value of `count` bytes (one buffer).
    @inlinable
    public static func bytes(ofStringCount count: Int) -> Int { bufferHeaderBytes + count }

    /// Estimated heap bytes of a value (an integer is stored inline: 0).
    @inlinable
    public static func bytes(of value: Value) -> Int {
        switch value {
        case .integer: return 0
        case .string(let string): return bytes(ofStringCount: string.count)
        case .hash(let hash):
            // The packed buffer (capacity), or the hashtable's box, arrays and per-field cost.
            return hash.heapBytes
        case .list(let list):
            // Compact: one buffer (header, 2-byte count, entries). Chunked: the box and the chunk
            // array, and per chunk its slot (8), buffer header and count.
            if list.isCompact { return list.isEmpty ? 0 : bufferHeaderBytes + 2 + list.payloadBytes }
            return 2 * bufferHeaderBytes + list.payloadBytes + list.chunkCount * (10 + bufferHeaderBytes)
        case .set(let set):
            // The intset's buffer, or the table's box, arena and slots (capacities).
            return bufferHeaderBytes + set.payloadBytes
        case .sortedSet(let set):
            return set.heapBytes
        case .stream(let stream):
            // The box, the node array and groups; per node its buffer (capacity) and fields.
            return 2 * bufferHeaderBytes + 96 + stream.payloadBytes
        }
    }
}

/// Redis's LFU counter (`LFU_INIT_VAL 5`; `lfu-log-factor` default 10, `lfu-decay-time` default 1).
public enum LFU {
    /// Counter of a new key, so it is not evicted before it has a chance to be used.
    public static let initialCounter: UInt32 = 5
    /// Default `lfu-log-factor`: higher = the counter saturates more slowly.
    public static let logFactor: UInt32 = 10
    /// Default `lfu-decay-time`: minutes per counter decrement while a key is idle (0 = never).
    public static let decayMinutes: Int64 = 1

    /// Stamp of a fresh key at `nowMilliseconds`.
    @inlinable
    public static func fresh(nowMilliseconds: Int64) -> UInt32 {
        (minutes(nowMilliseconds) << 8) | initialCounter
    }

    @inlinable
    static func minutes(_ nowMilliseconds: Int64) -> UInt32 {
        UInt32(truncatingIfNeeded: nowMilliseconds / 60_000) & 0xFFFF
    }

    /// The counter after decay for the idle time since the stamp (what eviction compares).
    @inlinable
    public static func decayedCounter(_ stamp: UInt32, nowMilliseconds: Int64, decayMinutes: Int64 = decayMinutes)
        -> UInt32
    {
        let counter = stamp & 0xFF
        let last = stamp >> 8
        let now = minutes(nowMilliseconds)
        // The minute clock wraps every ~45 days, as Redis's 16-bit one does.
        let elapsed = Int64(now >= last ? now - last : 0xFFFF - last + now)
        let periods = decayMinutes > 0 ? elapsed / decayMinutes : 0
        return periods >= Int64(counter) ? 0 : counter - UInt32(periods)
    }

    /// The stamp after one access: decay, then a logarithmic increment (probability
    /// 1 / ((counter - 5) * logFactor + 1)), using `random` in 0..<2^32.
    @inlinable
    public static func touched(
        _ stamp: UInt32, nowMilliseconds: Int64, random: UInt32, logFactor: UInt32 = logFactor,
        decayMinutes: Int64 = decayMinutes
    ) -> UInt32 {
        var counter = decayedCounter(stamp, nowMilliseconds: nowMilliseconds, decayMinutes: decayMinutes)
        if counter < 255 {
            let base = counter > initialCounter ? counter - initialCounter : 0
            let probability = 1.0 / Double(base * logFactor + 1)
            if Double(random) / 4_294_967_296.0 < probability { counter += 1 }
        }
        return (minutes(nowMilliseconds) << 8) | counter
    }
}

/// A tiny xorshift generator for the LFU coin flips and eviction sampling: seeded per shard,
/// used under the shard lock, far cheaper than the system generator on the read path.
public struct FastRandom: Sendable {
    @usableFromInline var state: UInt64

    /// Seeds the generator (0 is replaced, as xorshift would stay at 0).
    public init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// A value in 0..<upperBound (upperBound > 0); the modulo bias is irrelevant for sampling.
    @inlinable
    public mutating func below(_ upperBound: Int) -> Int { Int(next() % UInt64(upperBound)) }
}
