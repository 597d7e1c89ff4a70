// PersistenceHarness: a PersistenceEngine on SimulatedDisk, a manual clock and hand-run jobs, plus a command engine.
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol

/// Background jobs that run only when the test says (`BackgroundJobRunner` for tests).
public final class ManualJobs: Sendable {
    private let pending = Mutex<[@Sendable () -> Void]>([])

    /// Creates an empty queue.
    public init() {}

    /// The runner to give the engine: it queues each job.
    public var runner: BackgroundJobRunner {
        BackgroundJobRunner { [self] job in pending.withLock { $0.append(job) } }
    }

    /// Jobs started and not yet run.
    public var count: Int { pending.withLock { $0.count } }

    /// Runs the oldest queued job on the calling thread; false if none was queued.
    @discardableResult
    public func runNext() -> Bool {
        guard let job = pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { return false }
        job()
        return true
    }
}

/// Lines recorded from any thread (log output, fatal reports).
public final class LineRecorder: Sendable {
    private let storage = Mutex<[String]>([])

    /// Creates an empty recorder.
    public init() {}

    /// Records `line`.
    public func append(_ line: String) { storage.withLock { $0.append(line) } }

    /// Everything recorded, in order.
    public var lines: [String] { storage.withLock { $0 } }
}

/// A persistence engine wired the way tally-server wires it, but on `SimulatedDisk`, a
/// `ManualClock` and `ManualJobs`, with the persistence command rows in its command engine:
/// every schedule (a rewrite behind a BGSAVE, a back-off, a postponed fsync) is written down
/// step by step instead of waited for.
public final class PersistenceHarness {
    /// The disk.
    public let disk: SimulatedDisk
    /// The clock the engine and the commands read.
    public let clock: ManualClock
    /// Background jobs, run by hand.
    public let jobs = ManualJobs()
    /// The engine under test.
    public let persistence: PersistenceEngine<SimulatedDisk>
    /// Commands (SAVE, BGREWRITEAOF, WAITAOF... included) against the persisted dataset.
    public let commands: CommandHarness
    /// Messages the engine reported as fatal (tally-server exits on the first).
    public let fatalMessages = LineRecorder()
    /// Log lines, in order.
    public let logLines = LineRecorder()

    /// Creates the engine with `settings`; `start()` loads and attaches the AOF.
    public init(settings: PersistenceSettings, disk: SimulatedDisk = SimulatedDisk(),
                clock: ManualClock = ManualClock()) {
        self.disk = disk
        self.clock = clock
        let fatal = fatalMessages
        let lines = logLines
        persistence = PersistenceEngine(
            storage: disk, settings: settings, clock: clock, log: { _, line in lines.append(line) },
            jobs: jobs.runner, startsFsyncThread: false,
            onFatal: { message in fatal.append(message) })
        commands = CommandHarness(clock: clock, serverCommands: PersistenceCommands.specs(control: persistence)
            + DumpCommands.specs(codec: persistence))
        commands.engine.installDumpCodec(persistence)
    }

    /// Loads the dataset (replaying AOF commands through the command engine) and opens the AOF.
    public func start() throws(PersistenceStartupError) {
        let engine = commands.engine
        let session = ClientSession(id: 0)
        session.isAuthenticated = true
        var output = OutputBuffer(initialCapacity: 1024)
        try persistence.load(into: engine) { arguments, database in
            session.database = database
            engine.execute(arguments, session: session, output: &output)
            output.readerIndex = output.writerIndex
            output.discardReadBytes()
        }
        try persistence.openAppendLog()
    }

    /// Runs a command as an I/O thread would: execute, then wait until the AOF covers it.
    /// Returns the reply as text.
    @discardableResult
    public func run(_ arguments: String...) -> String {
        let reply = commands.run(arguments.map { Array($0.utf8) })
        commands.engine.attachedLog?.waitUntilDurable(commands.session.pendingLogOffset)
        return String(decoding: reply, as: UTF8.self)
    }

    /// The `# Persistence` INFO fields.
    public func info() -> String {
        var text = ""
        persistence.writeInfo(into: &text)
        return text
    }

    /// One INFO field's value.
    public func info(_ field: String) -> String? {
        for line in info().split(separator: "\r\n") where line.hasPrefix(field + ":") {
            return String(line.dropFirst(field.count + 1))
        }
        return nil
    }
}
