// ParallelReplay: AOF commands replayed on several threads, one lane of shards each, in log order per shard.
import TallyCommands
import TallyKeyspace
import TallyProtocol

/// Replays the commands an AOF load reads across `lanes` threads: the loading thread (lane 0)
/// and `lanes - 1` workers (`LoadLanes`). A write confined to one shard
/// (`CommandEngine.confinedShard`) goes to the lane that owns the shard, so commands on one
/// shard run in log order on one thread and different shards fill different cores: inserting a
/// million keys is bound by cache misses in the tables, which two cores take in parallel.
/// Anything else (MULTI and what it queues, FLUSHALL, SWAPDB, FUNCTION, keys on two lanes)
/// first waits until every worker has run what it was sent, then runs on the loading thread:
/// a barrier, so it sees every earlier command and every later one sees it. Redis 7.0 replays
/// on its one thread (aof.c loadSingleAppendOnlyFile); the dataset is the same either way
/// (`ParallelReplayTests`).
final class ParallelReplay {
    private let engine: CommandEngine
    private let workers: [LoadLane<ReplayBatch>]
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
        workers = (1..<max(1, lanes)).map { _ in
            LoadLane { () -> (inout ReplayBatch) -> Void in
                let session = ParallelReplay.loaderSession()
                var output = OutputBuffer(initialCapacity: 1024)
                var context: CommandContext?
                var arguments = CommandArguments()
                return { batch in
                    batch.forEach(into: &arguments) { database, arguments in
                        session.database = database
                        engine.execute(&arguments, session: session, output: &output, reusing: &context)
                        output.readerIndex = output.writerIndex
                        output.discardReadBytes()
                    }
                }
            }
        }
        laneOfShard = LoadLanes.owners(shards: engine.keyspace.shards.count, lanes: workers.count + 1)
    }

    /// A client the -LOADING gate lets through (`isReplayingLog`): no statistics, no slowlog.
    static func loaderSession() -> ClientSession {
        let session = ClientSession(id: 0)
        session.isAuthenticated = true
        session.isReplayingLog = true
        return session
    }

    /// Runs (or hands to its lane) one command read from the log, for `database`; `row` is
    /// its command's row in the engine's table.
    func replay(_ arguments: CommandArguments, row: Int, database: Int) {
        if !workers.isEmpty && !session.transaction.isActive,
           let shard = engine.confinedShard(ofLogged: arguments, row: row) {
            let lane = laneOfShard[shard]
            if lane > 0 {
                let worker = workers[lane - 1]
                worker.filling.append(arguments, database: database)
                if worker.filling.isFull { worker.flush() }
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
        for worker in workers { worker.drain() }
        workersBusy = false
    }

    /// Runs what is still queued, then stops the workers. The replay is complete when it returns.
    func finish() {
        for worker in workers { worker.stop() }
        workersBusy = false
    }
}

/// Commands stored back to back, so batching allocates nothing per command: each is its
/// database and argument count, then each argument's length, in `header`; the argument bytes
/// follow one another in `bytes`.
struct ReplayBatch: LoadBatch {
    private var header: [Int] = []
    private var bytes: [UInt8] = []
    private(set) var itemCount = 0

    var isFull: Bool { itemCount >= 256 || bytes.count >= 64 * 1024 }

    mutating func append(_ arguments: CommandArguments, database: Int) {
        header.append(database)
        header.append(arguments.count)
        for index in 0..<arguments.count {
            arguments.withUnsafeBytes(of: index) { argument in
                header.append(argument.count)
                bytes.append(contentsOf: argument)
            }
        }
        itemCount += 1
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
        itemCount = 0
    }
}
