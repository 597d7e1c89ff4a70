// Server: the startup sequence (config → engine → load → attach log → listen → serve) and signals.
import Glibc
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyPlatform
import TallyProtocol

/// Entry point used by `tally-server`'s main.swift.
public enum ServerMain {
    /// Parses `arguments` like redis-server and serves until shutdown. Returns the exit status
    /// for startup failures (a running server exits from its shutdown path instead).
    public static func run(arguments: [String]) -> Int32 {
        if arguments.first == "-v" || arguments.first == "--version" {
            writeStandardOutput("Tally server v=\(tallyVersion) (Redis 7.0.15 compatible) bits=64\n")
            return 0
        }
        if arguments.first == "-h" || arguments.first == "--help" {
            writeStandardOutput(
                "Usage: tally-server [/path/to/redis.conf] [options]\n       tally-server -v or --version\n"
                    + "Examples:\n       tally-server --port 7777 --dir /tmp --appendonly no\n")
            return 0
        }
        let configuration: ServerConfiguration
        do {
            configuration = try ServerConfiguration.fromCommandLine(arguments)
        } catch {
            var report = Array(error.report.utf8)
            report.withUnsafeMutableBytes { _ = try? Posix.writeAll(STDERR_FILENO, UnsafeRawBufferPointer($0)) }
            return 1
        }
        let server = Server(configuration: configuration)
        return server.run()
    }
}

/// One server process.
public final class Server: Sendable {
    let core: ServerCore
    let configuration: ServerConfiguration

    /// Creates a server for `configuration` (nothing starts until `run`).
    public init(configuration: ServerConfiguration) {
        var configuration = configuration
        // `io-threads 0` (the default) picks a count from the cores; CONFIG GET then reports the
        // count in use, as Redis reports its own (1 by default).
        if configuration.integer("io-threads") == 0 {
            try? configuration.set("io-threads", [String(configuration.ioThreads)])
        }
        self.configuration = configuration
        let level = LogLevel(name: configuration.string("loglevel"))
        let log = ServerLogger(path: configuration.string("logfile"), level: level)
        core = ServerCore(configuration: configuration, log: log,
                          persistence: ServerPersistence.make(configuration: configuration, log: log))
    }

    /// Starts everything and blocks the calling thread waiting for SIGTERM/SIGINT.
    /// Returns 1 if startup fails.
    public func run() -> Int32 {
        let log = core.log
        // Signals are blocked before any thread starts, so only the main thread's sigwait sees them.
        Posix.ignoreBrokenPipe()
        Posix.blockSignals([SIGTERM, SIGINT])
        log.log(.notice, "oO0OoO0OoO0Oo Tally is starting oO0OoO0OoO0Oo")
        log.log(.notice, "Tally version=\(tallyVersion) (Redis 7.0.15 protocol), bits=64, pid=\(getpid()), started")
        if configuration.configFile.isEmpty {
            log.log(.warning, "Warning: no config file specified, using the default config. In order to specify a "
                + "config file use tally-server /path/to/redis.conf")
        } else {
            log.log(.notice, "Configuration loaded")
        }

        // 1. The working directory, as Redis's `dir` does with chdir.
        let dir = configuration.string("dir")
        if !dir.isEmpty && chdir(dir) != 0 {
            log.log(.warning, "Can't chdir to '\(dir)': \(Errno.current)")
            return 1
        }

        // 2. The engine, with server and persistence commands in its table.
        let password = configuration.string("requirepass")
        let engineConfiguration = EngineConfiguration(
            databases: Int(configuration.integer("databases")), shards: Self.shardCount(configuration.shards),
            requirePass: password.isEmpty ? nil : Array(password.utf8),
            maxStringBytes: Int(configuration.integer("proto-max-bulk-len")))
        let engine = CommandEngine(
            configuration: engineConfiguration, clock: SystemClock(),
            serverCommands: core.commandSpecs() + core.replicaCommandSpecs()
                + PersistenceCommands.specs(control: core.persistence)
                + DumpCommands.specs(codec: core.persistence)
                + [MigrateCommand.spec(codec: core.persistence, links: core.migrateSockets)])
        engine.installDumpCodec(core.persistence)
        core.replication.install(engine: engine)
        engine.threadStarter.withLock { $0 = { body in startThread(body) } }
        core.migrateSockets.installOwnPort { [core] in core.boundPort.load(ordering: .relaxed) }
        core.applyMemoryLimit(from: configuration, to: engine)
        engine.setHyperLogLogSparseMaxBytes(Int(clamping: configuration.integer("hll-sparse-max-bytes")))
        engine.setModuleCommandAccess(configuration.string("enable-module-command"))
        engine.setLazyFree(userDel: configuration.bool("lazyfree-lazy-user-del"),
                           userFlush: configuration.bool("lazyfree-lazy-user-flush"))
        core.applySlowLogSettings(from: configuration, to: engine)
        core.applyLatencyTracking(from: configuration, to: engine)
        engine.scriptWatch.setThreshold(milliseconds: Int(clamping: configuration.integer("busy-reply-threshold")))
        let serverLog = core.log
        ServerLogHook.install { level, message in
            serverLog.log(LogLevel(rawValue: level) ?? .notice, String(decoding: message, as: UTF8.self))
        }
        engine.processMemory.install { (heapBytesInUse(), residentSetBytes()) }
        engine.processMemory.installAllocator(report: { Posix.allocatorReport() },
                                              purge: { Posix.releaseFreeHeapMemory() })
        engine.latencyMonitor.configure(thresholdMilliseconds: configuration.integer("latency-monitor-threshold"))
        engine.setSetMaxIntsetEntries(Int(clamping: configuration.integer("set-max-intset-entries")))
        engine.setSortedSetLimits(configuration.sortedSetLimits)
        engine.setListFill(configuration.listFill)
        engine.setHashLimits(configuration.hashLimits)
        core.applyStreamNodeLimits(from: configuration)
        engine.pubsub.setMailboxLimit(bytes: core.pubsubOutputLimits.hardBytes.load(ordering: .relaxed))
        engine.tracking.setMaxKeys(Int(clamping: configuration.integer("tracking-table-max-keys")))
        let clients = core.clients
        engine.tracking.setDirectory { id in clients.record(id: id)?.mailbox }

        // 3. Listeners and I/O threads, open while the dataset loads (as Redis does): until
        //    loading ends, commands without the `loading` flag are answered -LOADING.
        let threadCount = configuration.ioThreads
        var threads: [IOThread] = []
        do {
            for index in 0..<threadCount { threads.append(try IOThread(index: index, server: core, engine: engine)) }
        } catch {
            log.log(.warning, "Failed creating the event loop: \(error)")
            return 1
        }
        guard let listeners = openListeners(log: log) else { return 1 }
        for listener in listeners {
            do { try threads[0].addListener(listener) } catch {
                log.log(.warning, "Failed watching a listener: \(error)")
                return 1
            }
        }
        core.setThreads(threads)
        writePidFile(log: log)
        engine.setLoading(true)
        for thread in threads { startThread { thread.run() } }

        // 4. Persistence: load the dataset, then start logging writes.
        do {
            let started = SystemClock().nowMilliseconds()
            let lanes = LoadLanes.available(shards: engine.keyspace.shards.count)
            try core.persistence.load(into: engine, lanes: lanes)
            let seconds = Double(SystemClock().nowMilliseconds() - started) / 1000
            log.log(.notice, "DB loaded from disk: \(fixed3(seconds)) seconds")
            try core.persistence.openAppendLog()
        } catch {
            log.log(.warning, error.message)
            return 1
        }
        engine.setLoading(false)
        core.startReplicaFromConfiguration(engine: engine)
        // Keyspace events start once the dataset is in: loading stores every key, and recording
        // them all for "new" would only queue events nobody asked for.
        let eventLetters = core.configuration.withLock { $0.string("notify-keyspace-events") }
        engine.setKeyspaceEventClasses(KeyspaceEventClass(letters: eventLetters) ?? [])
        startCron(engine: engine)
        log.log(.notice, "Running with \(threadCount) I/O threads and \(engine.keyspace.shards.count) shards")
        log.log(.notice, "Ready to accept connections tcp")
        if !configuration.string("unixsocket").isEmpty { log.log(.notice, "Ready to accept connections unix") }

        // 5. Wait for a termination signal, then shut down through persistence.
        while true {
            let signal = Posix.waitForSignal([SIGTERM, SIGINT])
            log.log(.warning, "Received \(signal == SIGINT ? "SIGINT" : "SIGTERM") scheduling shutdown...")
            _ = core.shutdown(engine: engine, mode: .configured)
            log.log(.warning, "SIGTERM received but errors trying to shut down the server, check the logs")
        }
    }

    /// Rounds the configured shard count to a power of two in 1...64 (the keyspace requires it).
    static func shardCount(_ requested: Int) -> Int {
        var count = 1
        while count < requested && count < 64 { count *= 2 }
        return count
    }

    private func openListeners(log: ServerLogger) -> [Int32]? {
        var listeners: [Int32] = []
        let port = configuration.port
        let backlog = Int32(configuration.integer("tcp-backlog"))
        if port != 0 {
            guard let opened = try? TCPListeners.open(port: port, bindAddresses: configuration.bindAddresses,
                                                      backlog: backlog, log: log)
            else { return nil }
            listeners = opened.descriptors
            core.tcpListeners.adopt(opened.descriptors)
            core.boundPort.store(opened.port, ordering: .relaxed)
            log.log(.notice, "Listening on port \(opened.port)")
        }
        let unixPath = configuration.string("unixsocket")
        if !unixPath.isEmpty {
            let permissions = mode_t(UInt32(configuration.string("unixsocketperm"), radix: 8) ?? 0)
            do {
                listeners.append(try Posix.listenUnix(path: unixPath, permissions: permissions, backlog: backlog))
                core.cleanupPaths.withLock { $0.append(unixPath) }
            } catch {
                log.log(.warning, "Failed opening Unix socket: \(error)")
                return nil
            }
        }
        if listeners.isEmpty {
            log.log(.warning, "Configured to not listen anywhere, exiting.")
            return nil
        }
        return listeners
    }

    private func writePidFile(log: ServerLogger) {
        let path = configuration.string("pidfile")
        guard !path.isEmpty else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            log.log(.warning, "Failed to write PID file: \(Errno.current)")
            return
        }
        var text = Array("\(getpid())\n".utf8)
        text.withUnsafeMutableBytes { _ = try? Posix.writeAll(fd, UnsafeRawBufferPointer($0)) }
        Posix.close(fd)
        core.cleanupPaths.withLock { $0.append(path) }
    }

    /// The `hz` cron on its own thread: active expiry, persistence tick, ops/sec sampling.
    private func startCron(engine: CommandEngine) {
        let core = core
        startThread {
            var lastSampleMilliseconds: Int64 = 0
            var heapSamples = 0
            var lastReplicationMilliseconds: Int64 = 0
            while true {
                usleep(UInt32(1_000_000 / core.hz))
                let now = SystemClock().nowMilliseconds()
                engine.activeExpireCycle()
                // Past tracking-table-max-keys, keys are invalidated a batch per tick too
                // (server.c serverCron's trackingLimitUsedSlots).
                engine.tracking.limitUsedSlots()
                // Expired keys' DELs reach the replicas now, not at the next I/O loop pass.
                core.replication.wakeReplicasIfDue()
                core.persistence.tick()
                // replicationCron runs once a second in Redis too.
                if now - lastReplicationMilliseconds >= 1000 {
                    lastReplicationMilliseconds = now
                    core.replication.cron(nowMilliseconds: now)
                    // serverCron's once-a-second migrateCloseTimedoutSockets.
                    core.migrateSockets.closeIdle()
                }
                if now - lastSampleMilliseconds >= 100 {
                    lastSampleMilliseconds = now
                    // Reading the heap walks malloc's free lists (mallinfo2: about 3M instructions
                    // after a load): ten times a second only when maxmemory needs it, else once
                    // a second for used_memory_peak (INFO and MEMORY read it themselves too).
                    heapSamples += 1
                    if engine.hasMemoryLimit || heapSamples % 10 == 0 { engine.calibrateMemoryLimit() }
                    core.stats.sampleRates(commands: engine.totalCommandCalls(), nowMilliseconds: now)
                }
            }
        }
    }
}

private func writeStandardOutput(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { _ = try? Posix.writeAll(STDOUT_FILENO, UnsafeRawBufferPointer($0)) }
}
