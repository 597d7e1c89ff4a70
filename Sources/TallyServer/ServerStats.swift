// ServerStats: process-wide counters for INFO stats, updated with relaxed atomics off the command path.
import Glibc
import Synchronization
import TallyKeyspace
import TallyPlatform

/// Counters INFO reports that the engine does not keep.
public final class ServerStats: Sendable {
    let connectionsReceived = Atomic<Int64>(0)
    let rejectedConnections = Atomic<Int64>(0)
    let netInputBytes = Atomic<Int64>(0)
    let netOutputBytes = Atomic<Int64>(0)
    let readsProcessed = Atomic<Int64>(0)
    let writesProcessed = Atomic<Int64>(0)
    let errorReplies = Atomic<Int64>(0)
    /// Full resyncs served, partial resyncs accepted and refused (INFO `sync_full`,
    /// `sync_partial_ok`, `sync_partial_err`; a PSYNC with replid `?` asks for a full one and
    /// counts as no refusal, as in replication.c syncCommand).
    let fullSyncs = Atomic<Int64>(0)
    let partialSyncsAccepted = Atomic<Int64>(0)
    let partialSyncsRefused = Atomic<Int64>(0)
    /// Bytes written to replicas and read from our primary (INFO `total_net_repl_output_bytes`,
    /// `total_net_repl_input_bytes`): networking.c counts replication traffic apart from the
    /// clients' `total_net_output_bytes`/`total_net_input_bytes`.
    let netReplInputBytes = Atomic<Int64>(0)
    let netReplOutputBytes = Atomic<Int64>(0)
    /// The instantaneous rates: the cron samples each running total into a 16-slot ring every
    /// 100 ms, as server.c trackInstantaneousMetric does.
    private let samples = Mutex<[RateSamples]>(Array(repeating: RateSamples(), count: Metric.allCases.count))

    /// What INFO reports an instantaneous rate of.
    enum Metric: Int, CaseIterable {
        case commands, netInput, netOutput, netReplInput, netReplOutput
    }

    struct RateSamples {
        var lastTimeMilliseconds: Int64 = 0
        var lastCount: Int64 = 0
        var ring = [Int64](repeating: 0, count: 16)
        var index = 0

        mutating func record(_ total: Int64, now: Int64) {
            let elapsed = now - lastTimeMilliseconds
            if lastTimeMilliseconds != 0 && elapsed > 0 {
                ring[index] = (total - lastCount) * 1000 / elapsed
                index = (index + 1) % ring.count
            }
            lastTimeMilliseconds = now
            lastCount = total
        }

        var mean: Int64 { ring.reduce(0, +) / Int64(ring.count) }
    }

    /// Creates zeroed counters.
    public init() {}

    /// Samples the command total and the byte counters (called by the cron every 100 ms).
    func sampleRates(commands: Int64, nowMilliseconds: Int64) {
        let totals = [commands, netInputBytes.load(ordering: .relaxed), netOutputBytes.load(ordering: .relaxed),
                      netReplInputBytes.load(ordering: .relaxed), netReplOutputBytes.load(ordering: .relaxed)]
        samples.withLock { rings in
            for metric in Metric.allCases {
                rings[metric.rawValue].record(totals[metric.rawValue], now: nowMilliseconds)
            }
        }
    }

    /// Mean per-second rate of `metric` over the last 16 samples.
    func instantaneous(_ metric: Metric) -> Int64 {
        samples.withLock { $0[metric.rawValue].mean }
    }

    /// Mean of the command samples (INFO `instantaneous_ops_per_sec`).
    var instantaneousOpsPerSecond: Int64 { instantaneous(.commands) }

    /// A byte rate as INFO's `instantaneous_*_kbps` prints it (KB/s, two decimals).
    func instantaneousKilobytes(_ metric: Metric) -> String { fixed2(Double(instantaneous(metric)) / 1024) }

    /// CONFIG RESETSTAT.
    func reset() {
        connectionsReceived.store(0, ordering: .relaxed)
        rejectedConnections.store(0, ordering: .relaxed)
        netInputBytes.store(0, ordering: .relaxed)
        netOutputBytes.store(0, ordering: .relaxed)
        netReplInputBytes.store(0, ordering: .relaxed)
        netReplOutputBytes.store(0, ordering: .relaxed)
        readsProcessed.store(0, ordering: .relaxed)
        writesProcessed.store(0, ordering: .relaxed)
        errorReplies.store(0, ordering: .relaxed)
    }
}

/// Bytes of heap in use (INFO `used_memory`), from glibc's allocator statistics plus the large
/// key tables, which are mapped from the kernel outside the allocator.
func heapBytesInUse() -> Int64 {
    Posix.heapBytesInUse() + Int64(KeyTableMemory.mappedBytes)
}

/// Bytes the allocator holds from the kernel, free chunks included, plus the mapped key tables
/// (INFO `allocator_active`).
func heapBytesHeld() -> Int64 {
    Posix.heapBytesHeld() + Int64(KeyTableMemory.mappedBytes)
}

/// Redis's bytesToHuman: `1013.78K`, `1.25M`, `512B`.
func humanBytes(_ bytes: Int64) -> String {
    let value = Double(bytes)
    let units: [(Double, String)] = [
        (1024.0 * 1024 * 1024 * 1024, "T"), (1024.0 * 1024 * 1024, "G"), (1024.0 * 1024, "M"), (1024.0, "K"),
    ]
    for (size, suffix) in units where value >= size {
        return fixed2(value / size) + suffix
    }
    return String(bytes) + "B"
}

/// Formats with exactly two decimals (`%.2f`) without Foundation.
func fixed2(_ value: Double) -> String {
    let hundredths = Int64((value * 100).rounded())
    let whole = hundredths / 100
    let fraction = abs(hundredths % 100)
    return String(whole) + "." + (fraction < 10 ? "0" : "") + String(fraction)
}

/// Formats with exactly six decimals (`%.6f`, INFO cpu) without Foundation.
func fixed6(_ value: Double) -> String {
    let millionths = Int64((value * 1_000_000).rounded())
    let fraction = String(millionths % 1_000_000)
    return String(millionths / 1_000_000) + "." + String(repeating: "0", count: 6 - fraction.count) + fraction
}
