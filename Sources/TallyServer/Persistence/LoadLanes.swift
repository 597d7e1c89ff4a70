// LoadLanes: worker threads fed batches by the loading thread, so a restart fills the shards on every core.
import Glibc
import TallyKeyspace
import TallyPlatform

/// A batch of loading work that the loading thread fills and a `LoadLane` runs.
protocol LoadBatch: SendableMetatype {
    /// An empty batch.
    init()
    /// Items in the batch (0: nothing to send).
    var itemCount: Int { get }
    /// True when the batch should be sent now.
    var isFull: Bool { get }
    /// Empties the batch, keeping its capacity for the next fill.
    mutating func removeAll()
}

/// How loading spreads the shards over lanes: lane 0 is the loading thread, which also reads
/// and decodes the file, lanes 1... are `LoadLane` workers. Commands or keys of one shard
/// always go to the same lane, so their order in the file is kept; shards of different lanes
/// hold disjoint keys.
///
/// Used for AOF replay (`ParallelReplay`), where running a command costs several times what
/// handing it to another core does. An RDB's keys are inserted on the loading thread: for 1M
/// small keys, a worker inserting keys decoded on another core took as long as one thread
/// decoding and inserting them all (the cache lines of every key cross cores).
enum LoadLanes {
    /// The lanes to use on this machine: one per online core, at most `shards` and 8.
    static func available(shards: Int) -> Int {
        max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), shards, 8))
    }

    /// The lane owning each shard. The loading thread keeps about half a worker's share (a
    /// third of the shards with two lanes): reading and parsing the file is about a third of
    /// its time when it replays 1M SETs, so the lanes finish together.
    static func owners(shards: Int, lanes: Int) -> [Int] {
        guard lanes > 1 else { return [Int](repeating: 0, count: shards) }
        let kept = shards / (2 * lanes - 1)
        return (0..<shards).map { $0 < kept ? 0 : 1 + ($0 - kept) % (lanes - 1) }
    }
}

/// One worker thread that runs the batches one loading thread sends it, in order. A few
/// batches in flight keep it fed while bounding the memory; `flush` waits when it is behind.
final class LoadLane<Batch: LoadBatch>: @unchecked Sendable {
    private static var batchesInFlight: Int { 4 }

    /// The batch the loading thread is filling; only that thread touches it.
    var filling = Batch()

    // Shared with the worker thread, under `lock`.
    private let lock = PosixLock(withCondition: true)
    private var queued: [Batch] = []
    private var spare: [Batch] = []
    private var running = false
    private var stopping = false
    private var stopped = false
    private let makeRunner: @Sendable () -> (inout Batch) -> Void

    /// Starts the worker thread; `makeRunner` runs on it first and returns what runs each batch
    /// (so per-thread state, such as a client session, is created on the thread that uses it).
    init(makeRunner: @escaping @Sendable () -> (inout Batch) -> Void) {
        self.makeRunner = makeRunner
        start()
    }

    private func start() {
        startThread { [self] in run() }
    }

    /// Sends `filling` if it holds anything, waiting while the worker has enough queued.
    func flush() {
        guard filling.itemCount > 0 else { return }
        lock.lock()
        while queued.count >= Self.batchesInFlight { lock.wait() }
        queued.append(filling)
        filling = spare.popLast() ?? Batch()
        lock.broadcast()
        lock.unlock()
    }

    /// Sends what is being filled and waits until the worker has run everything sent.
    func drain() {
        flush()
        lock.lock()
        while !queued.isEmpty || running { lock.wait() }
        lock.unlock()
    }

    /// Runs what was sent, then ends the thread and waits for that.
    func stop() {
        flush()
        lock.lock()
        stopping = true
        lock.broadcast()
        while !stopped { lock.wait() }
        lock.unlock()
    }

    private func run() {
        let runBatch = makeRunner()
        lock.lock()
        while true {
            while queued.isEmpty && !stopping { lock.wait() }
            if queued.isEmpty { break }
            var batch = queued.removeFirst()
            running = true
            lock.broadcast()
            lock.unlock()
            runBatch(&batch)
            batch.removeAll()
            lock.lock()
            spare.append(batch)
            running = false
            lock.broadcast()
        }
        stopped = true
        lock.broadcast()
        lock.unlock()
    }
}
