// ParallelReplay: AOF commands replayed on several threads, one lane of shards each, in log order per shard.
import Glibc
import TallyCommands
import TallyKeyspace
import TallyPlatform
import TallyProtocol

/// Replays the commands an AOF load reads across `lanes` threads: the loading thread (lane 0)
/// and `lanes - 1` workers. A write confined to one shard (`CommandEngine.confinedShard`) goes
/// to the lane that owns the shard, so commands on one shard run in log order on one thread
/// and different shards fill different cores: inserting a million keys is bound by cache
/// misses in the tables, which two cores take in parallel. Anything else (MULTI and what it
/// queues, FLUSHALL, SWAPDB, FUNCTION, keys on two lanes) first waits until every worker has
/// run what it was sent, then runs on the loading thread: a barrier, so it sees every earlier
/// command and every later one sees it. Redis 7.0 replays on its one thread (aof.c
/// loadSingleAppendOnlyFile); the dataset is the same either way (`ParallelReplayTests`).
final class ParallelReplay {
    private let engine: CommandEngine
    private let workers: [ReplayWorker]
    /// The lane owning each shard (0: the loading thread).
    private let laneOfShard: [Int]
    private let session: ClientSession
    private var output = OutputBuffer(initialCapacity: 1024)
    private var context: CommandContext?
    /// True while some worker may hold commands it has not run (since the last barrier).
    private var workersBusy = false

    /// A replay on `lanes` threads (1: everything on the calling thread, in log order).
    init(engine: CommandEngine, lanes: Int) {
        self.engine = engine
        session = Self.loaderSession()
        workers = (1..<max(1, lanes)).map { _ in ReplayWorker(engine: engine) }
        laneOfShard = Self.lanes(shards: engine.keyspace.shards.count, lanes: workers.count + 1)
    }

    /// Shard owners: the loading thread also reads and parses the log, so it keeps about half
    /// a worker's share of the shards (a third of them with two lanes; measured on 1M SETs, the
    /// parse and routing are about a third of the loading thread's time), the workers the rest.
    static func lanes(shards: Int, lanes: Int) -> [Int] {
        guard lanes > 1 else { return [Int](repeating: 0, count: shards) }
        let kept = shards / (2 * lanes - 1)
        return (0..<shards).map { $0 < kept ? 0 : 1 + ($0 - kept) % (lanes - 1) }
    }

    /// A client the -LOADING gate lets through (`isReplayingLog`): no statistics, no slowlog.
    static func loaderSession() -> ClientSession {
        let session = ClientSession(id: 0)
        session.isAuthenticated = true
        session.isReplayingLog = true
        return session
    }

    /// The lanes to use on this machine: one per online core, at most `shards` and 8.
    static func defaultLanes(shards: Int) -> Int {
        max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), shards, 8))
    }

    /// Runs (or hands to its lane) one command read from the log, for `database`; `row` is
    /// its command's row in the engine's table.
    func replay(_ arguments: CommandArguments, row: Int, database: Int) {
        if !workers.isEmpty && !session.transaction.isActive,
           let shard = engine.confinedShard(ofLogged: arguments, row: row) {
            let lane = laneOfShard[shard]
            if lane > 0 {
                workers[lane - 1].send(arguments, database: database)
                workersBusy = true
                return
            }
        } else if workersBusy {
            barrier()
        }
        session.database = database
        var arguments = arguments
        engine.execute(&arguments, session: session, output: &output, reusing: &context)
        output.readerIndex = output.writerIndex
        output.discardReadBytes()
    }

    /// Waits until every worker has run everything sent to it.
    func barrier() {
        for worker in workers { worker.flush() }
        for worker in workers { worker.waitUntilIdle() }
        workersBusy = false
    }

    /// Runs what is still queued, then stops the workers. The replay is complete when it returns.
    func finish() {
        barrier()
        for worker in workers { worker.stop() }
    }
}

/// One replay thread: receives batches of commands (flat bytes, no allocation per command) and
/// runs them in order with its own loader session.
private final class ReplayWorker: @unchecked Sendable {
    /// Commands in one batch, and its argument bytes: a handful of batches in flight bound the
    /// memory while keeping the worker fed.
    private static let batchCommands = 256
    private static let batchBytes = 64 * 1024
    private static let batchesInFlight = 4

    // Fields below `lock` are shared with the worker thread.
    private let lock = PosixLock(withCondition: true)
    private var queued: [ReplayBatch] = []
    private var spare: [ReplayBatch] = []
    private var running = false
    private var stopping = false
    private var stopped = false

    // The loading thread's batch being filled (touched by that thread only).
    private var filling = ReplayBatch()

    init(engine: CommandEngine) {
        startThread { [self] in self.run(engine: engine) }
    }

    /// Appends one command to the batch being filled; sends the batch when it is full.
    func send(_ arguments: CommandArguments, database: Int) {
        filling.append(arguments, database: database)
        if filling.commandCount >= Self.batchCommands || filling.bytes.count >= Self.batchBytes { flush() }
    }

    /// Sends the batch being filled, waiting while the worker already has enough to do.
    func flush() {
        guard filling.commandCount > 0 else { return }
        lock.lock()
        while queued.count >= Self.batchesInFlight { lock.wait() }
        queued.append(filling)
        filling = spare.popLast() ?? ReplayBatch()
        lock.broadcast()
        lock.unlock()
    }

    /// Waits until everything sent has run.
    func waitUntilIdle() {
        lock.lock()
        while !queued.isEmpty || running { lock.wait() }
        lock.unlock()
    }

    /// Ends the thread once its queue is empty, and waits for that.
    func stop() {
        lock.lock()
        stopping = true
        lock.broadcast()
        while !stopped { lock.wait() }
        lock.unlock()
    }

    private func run(engine: CommandEngine) {
        let session = ParallelReplay.loaderSession()
        var output = OutputBuffer(initialCapacity: 1024)
        var context: CommandContext?
        var arguments = CommandArguments()
        lock.lock()
        while true {
            while queued.isEmpty && !stopping { lock.wait() }
            if queued.isEmpty { break }
            var batch = queued.removeFirst()
            running = true
            lock.broadcast()
            lock.unlock()
            batch.forEach(into: &arguments) { database, arguments in
                session.database = database
                engine.execute(&arguments, session: session, output: &output, reusing: &context)
                output.readerIndex = output.writerIndex
                output.discardReadBytes()
            }
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

/// Commands stored back to back: each is its database and argument count, then each argument's
/// length, in `header`; the argument bytes follow one another in `bytes`.
private struct ReplayBatch {
    var header: [Int] = []
    var bytes: [UInt8] = []
    var commandCount = 0

    mutating func append(_ arguments: CommandArguments, database: Int) {
        header.append(database)
        header.append(arguments.count)
        for index in 0..<arguments.count {
            arguments.withUnsafeBytes(of: index) { argument in
                header.append(argument.count)
                bytes.append(contentsOf: argument)
            }
        }
        commandCount += 1
    }

    /// Refills `arguments` with each command in turn and calls `body` with its database.
    func forEach(into arguments: inout CommandArguments, _ body: (Int, inout CommandArguments) -> Void) {
        var cursor = 0
        var offset = 0
        bytes.withUnsafeBytes { all in
            while cursor < header.count {
                let database = header[cursor]
                let count = header[cursor + 1]
                cursor += 2
                arguments.removeAll()
                for _ in 0..<count {
                    let length = header[cursor]
                    cursor += 1
                    arguments.append(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + length)]))
                    offset += length
                }
                body(database, &arguments)
            }
        }
    }

    mutating func removeAll() {
        header.removeAll(keepingCapacity: true)
        bytes.removeAll(keepingCapacity: true)
        commandCount = 0
    }
}
