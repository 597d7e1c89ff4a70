// ServerCore: state shared by the I/O threads, the cron and the server commands.
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyPlatform
import TallyProtocol

/// Process-wide server state. Hot-path knobs are atomics so CONFIG SET takes effect without locks.
final class ServerCore: Sendable {
    let log: ServerLogger
    let stats = ServerStats()
    let clients = ClientRegistry()
    let persistence: ServerPersistence
    /// Replication ID, offsets, backlog and attached replicas (Replication/).
    let replication = ReplicationState()
    /// The link to our primary while this server is a replica (Replication/ReplicaController).
    let replica = ReplicaController()
    /// MIGRATE's cached connections to its targets.
    let migrateSockets = MigrateSocketCache()
    let configuration: Mutex<ServerConfiguration>
    let startMilliseconds: Int64
    let runID: String
    /// The TCP port listened on (0: none).
    let boundPort = Atomic<Int>(0)
    /// The TCP listening sockets (replaced by CONFIG SET port / bind).
    let tcpListeners = TCPListeners()
    private let threadList = Mutex<[IOThread]>([])
    private let maxClientsValue: Atomic<Int>
    private let timeoutValue: Atomic<Int>
    private let keepAliveValue: Atomic<Int>
    private let queryBufferLimitValue: Atomic<Int>
    private let maxBulkValue: Atomic<Int>
    private let hzValue: Atomic<Int>
    /// `client-output-buffer-limit` for normal clients.
    let outputLimits = OutputBufferLimits()
    /// `client-output-buffer-limit` for clients with subscriptions (Redis's pubsub class).
    let pubsubOutputLimits = OutputBufferLimits(className: "pubsub")
    private let shuttingDown = Mutex<Bool>(false)
    /// Files to remove at exit (unix socket, pid file).
    let cleanupPaths = Mutex<[String]>([])

    init(configuration: ServerConfiguration, log: ServerLogger, persistence: ServerPersistence) {
        self.configuration = Mutex(configuration)
        self.log = log
        self.persistence = persistence
        startMilliseconds = SystemClock().nowMilliseconds()
        maxClientsValue = Atomic(Int(configuration.integer("maxclients")))
        timeoutValue = Atomic(Int(configuration.integer("timeout")))
        keepAliveValue = Atomic(Int(configuration.integer("tcp-keepalive")))
        queryBufferLimitValue = Atomic(Int(configuration.integer("client-query-buffer-limit")))
        maxBulkValue = Atomic(Int(configuration.integer("proto-max-bulk-len")))
        hzValue = Atomic(Int(configuration.integer("hz")))
        outputLimits.update(from: configuration)
        pubsubOutputLimits.update(from: configuration)
        runID = Self.makeRunID()
        applyReplicationSettings(from: configuration)
    }

    var threads: [IOThread] { threadList.withLock { $0 } }
    func setThreads(_ threads: [IOThread]) { threadList.withLock { $0 = threads } }

    var maxClients: Int { maxClientsValue.load(ordering: .relaxed) }
    var idleTimeoutSeconds: Int { timeoutValue.load(ordering: .relaxed) }
    var tcpKeepAliveSeconds: Int { keepAliveValue.load(ordering: .relaxed) }
    var queryBufferLimit: Int { queryBufferLimitValue.load(ordering: .relaxed) }
    var hz: Int { max(1, min(500, hzValue.load(ordering: .relaxed))) }
    var parserLimits: RequestParserLimits { RequestParserLimits(maxBulkLength: maxBulkValue.load(ordering: .relaxed)) }

    /// Re-reads the hot-path knobs after CONFIG SET.
    func refreshKnobs(from configuration: ServerConfiguration) {
        maxClientsValue.store(Int(configuration.integer("maxclients")), ordering: .relaxed)
        timeoutValue.store(Int(configuration.integer("timeout")), ordering: .relaxed)
        keepAliveValue.store(Int(configuration.integer("tcp-keepalive")), ordering: .relaxed)
        queryBufferLimitValue.store(Int(configuration.integer("client-query-buffer-limit")), ordering: .relaxed)
        maxBulkValue.store(Int(configuration.integer("proto-max-bulk-len")), ordering: .relaxed)
        hzValue.store(Int(configuration.integer("hz")), ordering: .relaxed)
        outputLimits.update(from: configuration)
        pubsubOutputLimits.update(from: configuration)
        applyReplicationSettings(from: configuration)
        log.setLevel(LogLevel(name: configuration.string("loglevel")))
    }

    /// Runs the persistence shutdown and exits the process. Returns only if persistence refused
    /// (SHUTDOWN then replies with an error and the server keeps running).
    func shutdown(engine: CommandEngine, mode: ShutdownSaveMode) -> Bool {
        let proceed = shuttingDown.withLock { active -> Bool in
            if active { return false }
            active = true
            return true
        }
        // A second concurrent request waits for the first to exit the process.
        guard proceed else {
            while true { sleep(1) }
        }
        log.log(.warning, "User requested shutdown...")
        // Freeze the keyspace first: holding every shard lock stops the I/O threads from
        // executing (and acknowledging) further writes that the final save would not contain.
        // Redis gets the same effect by saving on its single command thread.
        // SHUTDOWN NOSAVE may come while a busy script holds every shard (it is allow-busy):
        // nothing is saved then, so there is nothing to freeze.
        stopReplicaForShutdown()
        let frozen = mode == .noSave && engine.scriptWatch.isRunning ? false : engine.keyspace.lockExclusive()
        guard persistence.shutdown(mode: mode) else {
            engine.keyspace.unlockExclusive(frozen)
            resumeReplicaAfterFailedShutdown()
            log.log(.warning, "Errors trying to shut down the server. Check the logs for more information.")
            shuttingDown.withLock { $0 = false }
            return false
        }
        for path in cleanupPaths.withLock({ $0 }) { unlink(path) }
        log.log(.warning, "Redis is now ready to exit, bye bye...")
        exit(0)
    }

    private static func makeRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
