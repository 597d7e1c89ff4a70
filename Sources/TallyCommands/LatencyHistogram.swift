// LatencyHistogram: one command's latency distribution (INFO latencystats, LATENCY HISTOGRAM).
//
// Redis records every call's duration in nanoseconds into an HdrHistogram tracking 1 ns to 1 s with
// 2 significant digits (server.c updateCommandLatencyHistogram). The figures it reports are that
// histogram's bucket bounds, so Tally keeps the same bucket layout and reads it the same way:
//
//   bucket 0: values 0..<256, one per slot          counts[0..<256]
//   bucket b ≥ 1: values 2^(b+7)..<2^(b+8), 128 slots of width 2^b   counts[(b+1)·128 ..< (b+2)·128]
//
// 23 buckets cover 1 s, so 3,072 counters, allocated on a command's first call (24 KiB, as Redis
// allocates its histogram lazily) and incremented with one relaxed atomic add from any I/O thread.
import Synchronization

/// Call durations of one command, bucketed as Redis's latency histogram.
// Unchecked: the only state is the pointer, installed once by compare-exchange, to counters that are
// themselves atomics.
public final class LatencyHistogram: @unchecked Sendable {
    /// Slots: 24 half-buckets of 128 (hdr_calculate_bucket_config for 1..1e9 at 2 digits).
    static let slotCount = 3072
    /// Smallest and largest recorded value in nanoseconds (LATENCY_HISTOGRAM_MIN/MAX_VALUE).
    static let lowestValue: Int64 = 1
    static let highestValue: Int64 = 1_000_000_000

    private let slots = Atomic<UnsafeMutablePointer<Atomic<Int64>>?>(nil)

    /// An empty histogram; its counters are allocated by the first `record`.
    public init() {}

    deinit {
        if let counts = slots.load(ordering: .acquiring) {
            counts.deinitialize(count: Self.slotCount)
            counts.deallocate()
        }
    }

    /// Records one call that took `microseconds` (Redis records duration·1000 ns, clamped).
    @inline(__always) public func record(microseconds: Int64) {
        let nanoseconds = microseconds >= Self.highestValue / 1000 ? Self.highestValue
            : Swift.max(microseconds &* 1000, Self.lowestValue)
        counters()[Self.slot(of: nanoseconds)].add(1, ordering: .relaxed)
    }

    /// Zeroes every slot (CONFIG RESETSTAT; a histogram with no calls is not reported).
    public func reset() {
        guard let counts = slots.load(ordering: .acquiring) else { return }
        for index in 0..<Self.slotCount { counts[index].store(0, ordering: .relaxed) }
    }

    /// A copy of the slot counts, or nil when no call was recorded since the last reset.
    public func snapshot() -> Snapshot? {
        guard let counts = slots.load(ordering: .acquiring) else { return nil }
        var copy = [Int64](repeating: 0, count: Self.slotCount)
        var total: Int64 = 0
        for index in 0..<Self.slotCount {
            copy[index] = counts[index].load(ordering: .relaxed)
            total += copy[index]
        }
        return total == 0 ? nil : Snapshot(counts: copy, total: total)
    }

    private func counters() -> UnsafeMutablePointer<Atomic<Int64>> {
        if let counts = slots.load(ordering: .acquiring) { return counts }
        let fresh = UnsafeMutablePointer<Atomic<Int64>>.allocate(capacity: Self.slotCount)
        for index in 0..<Self.slotCount { (fresh + index).initialize(to: Atomic(0)) }
        let (installed, existing) = slots.compareExchange(expected: nil, desired: fresh,
                                                           ordering: .acquiringAndReleasing)
        if installed { return fresh }
        fresh.deinitialize(count: Self.slotCount)
        fresh.deallocate()
        return existing!
    }

    // MARK: Bucket arithmetic (the HdrHistogram layout described above)

    /// The bucket holding `value` (bucket 0 below 256).
    @inline(__always) static func bucket(of value: Int64) -> Int {
        (64 - (value | 255).leadingZeroBitCount) - 8
    }

    /// The slot counting `value`.
    @inline(__always) static func slot(of value: Int64) -> Int {
        let bucket = bucket(of: value)
        let subBucket = Int(truncatingIfNeeded: value >> Int64(bucket))
        return ((bucket + 1) << 7) + subBucket - 128
    }

    /// The smallest value counted by `slot`.
    static func value(atSlot slot: Int) -> Int64 {
        var bucket = (slot >> 7) - 1
        var subBucket = (slot & 127) + 128
        if bucket < 0 {
            subBucket -= 128
            bucket = 0
        }
        return Int64(subBucket) << Int64(bucket)
    }

    /// The largest value counted in the same slot as `value`.
    static func highestEquivalent(_ value: Int64) -> Int64 {
        let bucket = bucket(of: value)
        let lowest = (value >> Int64(bucket)) << Int64(bucket)
        return lowest + (Int64(1) << Int64(bucket)) - 1
    }

    /// The smallest value counted in the same slot as `value`.
    static func lowestEquivalent(_ value: Int64) -> Int64 {
        let bucket = bucket(of: value)
        return (value >> Int64(bucket)) << Int64(bucket)
    }

    /// Counts read at one moment.
    public struct Snapshot: Sendable, Equatable {
        /// Per-slot counts.
        public let counts: [Int64]
        /// Calls recorded (the sum of `counts`).
        public let total: Int64

        /// The value at `percentile` in nanoseconds, as hdr_value_at_percentile reports it: the
        /// highest value of the slot where the cumulative count reaches percentile·total
        /// (rounded, at least one call), or the lowest value of that slot for percentile 0.
        public func value(atPercentile percentile: Double) -> Int64 {
            let requested = percentile < 100 ? percentile : 100
            let target = Swift.min(Swift.max(Int64((requested / 100) * Double(total) + 0.5), 1), total)
            var cumulative: Int64 = 0
            var value: Int64 = 0
            var slot = -1
            while cumulative < target {
                slot += 1
                cumulative += counts[slot]
                value = LatencyHistogram.value(atSlot: slot)
            }
            return percentile == 0 ? LatencyHistogram.lowestEquivalent(value)
                : LatencyHistogram.highestEquivalent(value)
        }

        /// The cumulative distribution LATENCY HISTOGRAM replies with (latency.c fillCommandCDF):
        /// at reporting levels of 1024 ns doubling, the level's slot's highest value in whole
        /// microseconds and the calls counted up to and including that slot; levels that add no
        /// call are left out.
        public func cumulativeMicroseconds() -> [(microseconds: Int64, calls: Int64)] {
            var rows: [(microseconds: Int64, calls: Int64)] = []
            var level: Int64 = 1024
            var cumulative: Int64 = 0
            var slot = -1
            var reported: Int64 = 0
            while reported < total {
                let last = Swift.min(LatencyHistogram.slot(of: level), LatencyHistogram.slotCount - 1)
                while slot < last {
                    slot += 1
                    cumulative += counts[slot]
                }
                if cumulative > reported {
                    let highest = LatencyHistogram.highestEquivalent(LatencyHistogram.value(atSlot: slot))
                    rows.append((highest / 1000, cumulative))
                    reported = cumulative
                }
                if slot == LatencyHistogram.slotCount - 1 { break }
                level *= 2
            }
            return rows
        }
    }
}

/// A percentile as Redis prints it in CONFIG GET and INFO: `%f`, then the trailing zeros and a
/// trailing dot cut (util.c trimDoubleString): 50 → "50", 99.9 → "99.9".
public func percentileLabel(_ percentile: Double) -> String {
    let millionths = Int64((percentile * 1_000_000).rounded())
    var fraction = String(millionths % 1_000_000)
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.last == "0" { fraction.removeLast() }
    return String(millionths / 1_000_000) + (fraction.isEmpty ? "" : "." + fraction)
}

/// A percentile argument as string2d reads it: a whole decimal or exponent number, no spaces,
/// not NaN (the range is checked by the caller).
public func parsePercentile(_ text: String) -> Double? {
    guard let first = text.utf8.first, first != UInt8(ascii: " "), text.utf8.last != UInt8(ascii: " "),
          let value = Double(text), !value.isNaN
    else { return nil }
    return value
}
