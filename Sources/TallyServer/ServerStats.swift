// ServerStats: process-wide counters for INFO stats, updated with relaxed atomics off the command path.
import Glibc
import Synchronization
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
    /// Instantaneous ops/sec: the cron samples the command total into a 16-slot ring, as Redis does.
    private let samples = Mutex<OpsSamples>(OpsSamples())

    struct OpsSamples {
        var lastTimeMilliseconds: Int64 = 0
        var lastCount: Int64 = 0
        var ring = [Int64](repeating: 0, count: 16)
        var index = 0
    }

    /// Creates zeroed counters.
    public init() {}

    /// Records a sample of the total command count (called by the cron every 100 ms).
    func sampleOperations(total: Int64, nowMilliseconds: Int64) {
        samples.withLock { state in
            let elapsed = nowMilliseconds - state.lastTimeMilliseconds
            if state.lastTimeMilliseconds != 0 && elapsed > 0 {
                state.ring[state.index] = (total - state.lastCount) * 1000 / elapsed
                state.index = (state.index + 1) % state.ring.count
            }
            state.lastTimeMilliseconds = nowMilliseconds
            state.lastCount = total
        }
    }

    /// Mean of the samples (INFO `instantaneous_ops_per_sec`).
    var instantaneousOpsPerSecond: Int64 {
        samples.withLock { state in state.ring.reduce(0, +) / Int64(state.ring.count) }
    }

    /// CONFIG RESETSTAT.
    func reset() {
        connectionsReceived.store(0, ordering: .relaxed)
        rejectedConnections.store(0, ordering: .relaxed)
        netInputBytes.store(0, ordering: .relaxed)
        netOutputBytes.store(0, ordering: .relaxed)
        readsProcessed.store(0, ordering: .relaxed)
        writesProcessed.store(0, ordering: .relaxed)
        errorReplies.store(0, ordering: .relaxed)
    }
}

/// Bytes of heap in use (INFO `used_memory`), from glibc's allocator statistics.
func heapBytesInUse() -> Int64 {
    Posix.heapBytesInUse()
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
