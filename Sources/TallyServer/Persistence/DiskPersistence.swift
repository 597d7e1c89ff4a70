// DiskPersistence: the default PersistenceSubsystem: start-up loading, the AOF, RDB saves, rewrites, shutdown.
//
//   start-up (Redis 7.0 loadDataFromDisk)     runtime                          shutdown
//   ─────────────────────────────────────     ───────────────────────────      ─────────────────────────
//   appendonly yes: manifest ─► base ─► incr  engine ─► PersistenceLog         final RDB (save points /
//     (dump.rdb is never read then)             └─► AppendOnlyFile             SHUTDOWN SAVE), then flush
//   appendonly no: dump.rdb (expired dropped) cron: save points, auto-rewrite,   and fsync the AOF
//   then: fresh AOF dir if none (base+incr)     scheduled BGSAVE/BGREWRITEAOF
//
// Background work (BGSAVE, BGREWRITEAOF, enabling the AOF) runs on its own thread from a
// point-in-time `KeyspaceSnapshot`, one at a time, like Redis's single child process.
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol

/// Persistence settings read from the configuration (CONFIG SET updates them).
struct PersistenceSettings: Sendable {
    var appendOnly: Bool
    var fsyncPolicy: AppendFsyncPolicy
    var appendDirectory: String
    var naming: AOFNaming
    var useRDBPreamble: Bool
    var loadTruncated: Bool
    var compression: Bool
    var checksum: Bool
    var rewritePercentage: Int64
    var rewriteMinimumBytes: Int64
    var databases: Int

    init(_ configuration: ServerConfiguration) {
        appendOnly = configuration.bool("appendonly")
        fsyncPolicy = AppendFsyncPolicy(rawValue: configuration.string("appendfsync")) ?? .everysec
        appendDirectory = configuration.string("appenddirname")
        naming = AOFNaming(appendFileName: configuration.string("appendfilename"))
        useRDBPreamble = configuration.bool("aof-use-rdb-preamble")
        loadTruncated = configuration.bool("aof-load-truncated")
        compression = configuration.bool("rdbcompression")
        checksum = configuration.bool("rdbchecksum")
        rewritePercentage = configuration.integer("auto-aof-rewrite-percentage")
        rewriteMinimumBytes = configuration.integer("auto-aof-rewrite-min-size")
        databases = Int(configuration.integer("databases"))
    }

    /// The RDB settings of `configuration` (dump.rdb lives in the working directory, `dir`).
    static func snapshotSettings(_ configuration: ServerConfiguration) -> SnapshotSettings {
        var settings = SnapshotSettings(directory: ".")
        settings.fileName = configuration.string("dbfilename")
        settings.savePoints = configuration.savePoints.map { SavePoint(seconds: $0.seconds, changes: $0.changes) }
        settings.writer.compression = configuration.bool("rdbcompression")
        settings.writer.checksum = configuration.bool("rdbchecksum")
        settings.incrementalFsync = configuration.bool("rdb-save-incremental-fsync")
        settings.stopWritesOnError = configuration.bool("stop-writes-on-bgsave-error")
        settings.loadChunkBytes = SnapshotFiles.loadChunkBytes
        return settings
    }
}

/// The persistence subsystem `tally-server` runs with.
public final class DiskPersistence: PersistenceSubsystem {
    /// Consecutive rewrite failures after which automatic rewrites back off (aofRewriteLimited).
    static let rewriteFailuresBeforeBackoff = 3
    /// Longest automatic-rewrite back-off.
    static let rewriteBackoffMinutesMax: Int64 = 60

    let storage = PosixStorage()
    let log: ServerLog
    /// SAVE, BGSAVE, LASTSAVE, save points and the RDB INFO fields; AOF rewrites share its
    /// one-background-job slot.
    let snapshots: SnapshotController<PosixStorage>
    let gate = SaveErrorGate()
    let loadingStatus = AOFLoadingStatus()
    /// Set once the dataset is loaded and the AOF attached (clients are served -LOADING before).
    let startupComplete = Atomic<Bool>(false)
    let state: Mutex<State>

    struct State {
        var settings: PersistenceSettings
        var engine: CommandEngine?
        var log: PersistenceLog?
        var rewriter: AOFRewriter<PosixStorage>?
        /// Offset base for the next AOF generation (see PersistenceLog).
        var nextOffsetBase: UInt64 = 0
        /// Redis's AOF_WAIT_REWRITE: appendonly was switched on and the first base is being written.
        var enablingAOF = false
        var loadStartedSeconds: Int64 = 0
        // AOF rewrite.
        var rewriteInProgress = false
        var rewriteStartedMilliseconds: Int64 = 0
        var rewriteScheduled = false
        var rewriteBaseSize: Int64 = 0
        var rewriteFailures = 0
        var nextAutoRewriteMilliseconds: Int64 = 0
        var lastRewriteSeconds: Int64 = -1
        var lastRewriteOK = true
        var rewrites = 0
        var writer: AppendOnlyFile<PosixStorage>? { log?.writer }
    }

    /// Creates the subsystem for `configuration`; nothing touches the disk until `load`.
    public init(configuration: ServerConfiguration, log: ServerLog) {
        self.log = log
        state = Mutex(State(settings: PersistenceSettings(configuration)))
        snapshots = SnapshotController(
            storage: storage, settings: PersistenceSettings.snapshotSettings(configuration), clock: SystemClock(),
            log: Self.logger(log), usedMemoryBytes: { SnapshotFiles.residentBytes() })
        snapshots.onSaveFinished { [weak self] _ in self?.refreshSaveGate() }
    }

    var settings: PersistenceSettings { state.withLock { $0.settings } }

    func aofLogger() -> AOFLogger { Self.logger(log) }

    static func logger(_ log: ServerLog) -> AOFLogger {
        { level, message in
            switch level {
            case .warning: log.log(.warning, message)
            case .notice: log.log(.notice, message)
            case .verbose: log.log(.verbose, message)
            }
        }
    }

    // MARK: Start-up

    public func load(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError) {
        let settings = settings
        state.withLock {
            $0.engine = engine
            $0.loadStartedSeconds = Int64(time(nil))
        }
        if settings.appendOnly {
            try loadAppendOnlyFile(engine: engine, settings: settings)
        } else {
            try loadDump(engine: engine, settings: settings)
        }
        // Replayed commands counted as changes; a freshly loaded dataset has none to save.
        engine.resetChangesSinceLastSave(to: 0)
    }

    private func loadAppendOnlyFile(engine: CommandEngine, settings: PersistenceSettings)
        throws(PersistenceStartupError)
    {
        let databases = settings.databases
        let counter = Mutex<Int>(0)
        var loader = AOFLoader(
            storage: storage, directory: settings.appendDirectory, naming: settings.naming,
            loadTruncated: settings.loadTruncated, status: loadingStatus, log: aofLogger())
        // An RDB base (or RDB preamble): keys with a past TTL are kept, as Redis does for AOF
        // preambles; the replayed tail or active expiry removes them.
        loader.rdbReader = { storage, path in
            let result = try loadRDBFile(
                storage, path: path, options: RDBLoadOptions(dropExpiredBefore: nil, databaseCount: databases),
                chunkBytes: SnapshotFiles.loadChunkBytes
            ) { database, key, entry in
                engine.keyspace.insertLoaded(database: database, key: key, entry: entry)
            }
            counter.withLock { $0 += result.keysLoaded }
            return result.endOffset
        }
        let session = ClientSession(id: 0)
        session.isAuthenticated = true
        session.isReplayingLog = true
        var output = OutputBuffer(initialCapacity: 1024)
        let summary: AOFLoadSummary?
        do {
            summary = try loader.load { arguments, database in
                guard arguments.count > 0, engine.table.lookup(arguments[0]) != nil else {
                    let name = arguments.count > 0 ? String(decoding: arguments[0], as: UTF8.self) : ""
                    throw AOFReplayError(reason: "Unknown command '\(name)' reading the append only file")
                }
                session.database = database
                engine.execute(arguments, session: session, output: &output)
                output.readerIndex = output.writerIndex
                output.discardReadBytes()
            }
        } catch {
            throw PersistenceStartupError(
                "Fatal error loading the AOF in \(settings.appendDirectory): \(error.description)")
        }
        if let summary {
            log.log(.notice, "DB loaded from append only file (\(summary.commandsReplayed) commands replayed)")
            snapshots.recordLoad(keysLoaded: counter.withLock { $0 }, keysExpired: 0)
            state.withLock { $0.rewriteBaseSize = summary.totalSize }
        } else if storage.exists(snapshots.settings.fileName) {
            // Redis 7.0.15 does the same: with appendonly yes and no AOF, dump.rdb is ignored and
            // an empty AOF is created. Say so, since the data in dump.rdb is not loaded.
            log.log(
                .warning,
                "appendonly is yes but \(settings.appendDirectory)/\(settings.naming.manifestName) does not exist: "
                    + "starting empty, \(snapshots.settings.fileName) is NOT loaded "
                    + "(use CONFIG SET appendonly yes on a "
                    + "running server to switch from RDB to AOF)")
        }
    }

    private func loadDump(engine: CommandEngine, settings: PersistenceSettings) throws(PersistenceStartupError) {
        let path = snapshots.settings.fileName
        guard storage.exists(path) else { return }
        loadingStatus.isLoading.store(true, ordering: .releasing)
        defer { loadingStatus.isLoading.store(false, ordering: .releasing) }
        do {
            _ = try snapshots.load(into: engine, progress: loadingStatus)
        } catch let error as RDBError {
            throw PersistenceStartupError(
                "Short read or OOM loading DB. Unrecoverable error, aborting now.\n"
                    + "Internal error in RDB reading file \(path) offset \(error.offset): \(error.description)")
        } catch {
            throw PersistenceStartupError("Fatal error loading the DB \(path): \(error). Exiting.")
        }
    }

    public func attach(engine: CommandEngine, log: ServerLog) throws(PersistenceStartupError) -> (any CommandLog)? {
        let settings = settings
        guard settings.appendOnly else {
            startupComplete.store(true, ordering: .releasing)
            return nil
        }
        do {
            let generation = try openAppendOnlyFile(settings: settings, onServerStart: true, existingRequired: false)
            state.withLock { state in
                state.log = generation.log
                state.rewriter = generation.rewriter
                if state.rewriteBaseSize == 0 {
                    state.rewriteBaseSize = generation.log.writer?.snapshot().currentSize ?? 0
                }
            }
            startupComplete.store(true, ordering: .releasing)
            return generation.log
        } catch {
            throw PersistenceStartupError("Can't open the append-only file: \(error)")
        }
    }

    /// Opens the AOF directory for appending: creates base + incr + manifest in an empty
    /// directory (as Redis 7.0 does on start-up), or appends to the manifest's last incr file.
    private func openAppendOnlyFile(settings: PersistenceSettings, onServerStart: Bool, existingRequired: Bool)
        throws -> (log: PersistenceLog, rewriter: AOFRewriter<PosixStorage>)
    {
        let loader = AOFLoader(
            storage: storage, directory: settings.appendDirectory, naming: settings.naming, log: aofLogger())
        let existing = try loader.readManifest()
        let baseOptions = { SnapshotFiles.options(compression: settings.compression, checksum: settings.checksum,
                                                  aofBase: true) }
        let emptyBase: AOFEmptyRDBBaseWriter<PosixStorage>? = settings.useRDBPreamble
            ? { storage, directory, name in
                try atomicReplace(storage, directory: directory, name: name) { sink in
                    var writer = RDBWriter(sink: sink, options: baseOptions())
                    try writer.writeHeader()
                    sink = try writer.finish()
                }
            } : nil
        if existing == nil {
            let name = settings.naming.baseFileName(sequence: 1, rdbPreamble: settings.useRDBPreamble)
            log.log(.notice, "Creating AOF base file \(name) on server start")
        }
        if existing == nil || existing?.incrs.isEmpty == true {
            let sequence = (existing?.currentIncrSequence ?? 0) + 1
            let name = settings.naming.incrFileName(sequence: sequence)
            log.log(.notice, "Creating AOF incr file \(name) on server start")
        }
        let manifest = try AOFDirectory.prepare(
            storage: storage, directory: settings.appendDirectory, naming: settings.naming, existing: existing,
            emptyRDBBase: emptyBase)
        return try makeGeneration(settings: settings, manifest: manifest)
    }

    /// A writer + rewriter for `manifest` (its last incr file is opened for appending).
    private func makeGeneration(settings: PersistenceSettings, manifest: AOFManifest)
        throws -> (log: PersistenceLog, rewriter: AOFRewriter<PosixStorage>)
    {
        var baseSize: Int64 = 0
        if let base = manifest.base,
            let file = try? storage.openForReading(storagePath(settings.appendDirectory, base.name))
        {
            baseSize = (try? storage.size(file)) ?? 0
            storage.close(file)
        }
        let serverLog = log
        let configuration = AOFWriterConfiguration(
            directory: settings.appendDirectory, naming: settings.naming, fsyncPolicy: settings.fsyncPolicy,
            log: aofLogger(),
            fatal: { message in
                // Redis exits here: under `always` an acknowledged write may not be on disk.
                serverLog.log(.warning, message)
                exit(1)
            })
        let writer = try AppendOnlyFile(storage: storage, manifest: manifest, baseSize: baseSize,
                                        configuration: configuration)
        let compression = settings.compression
        let checksum = settings.checksum
        let rewriter = AOFRewriter(
            writer: writer, useRDBPreamble: settings.useRDBPreamble,
            rdbBaseWriter: { storage, directory, name, walk in
                try SnapshotFiles.writeBase(
                    walk, storage: storage, directory: directory, name: name,
                    options: SnapshotFiles.options(compression: compression, checksum: checksum, aofBase: true))
            })
        let offsetBase = state.withLock { $0.nextOffsetBase }
        return (PersistenceLog(writer: writer, offsetBase: offsetBase, gate: gate), rewriter)
    }

    // MARK: Cron

    public func tick(engine: CommandEngine, nowMilliseconds now: Int64) {
        let (writer, settings) = state.withLock { ($0.writer, $0.settings) }
        writer?.tick()
        // A scheduled rewrite goes first, then scheduled saves and save points, then auto-rewrite.
        let scheduled = state.withLock { !$0.rewriteInProgress && $0.rewriteScheduled }
        if scheduled, !snapshots.isBackgroundSaveInProgress {
            _ = startRewrite(engine: engine)
            return
        }
        if snapshots.tick(engine: engine, nowMilliseconds: now) { return }
        let message = state.withLock { state -> String? in
            guard !state.rewriteInProgress, let writer = state.writer, !state.enablingAOF,
                settings.rewritePercentage > 0 else { return nil }
            let current = writer.snapshot().currentSize
            guard current > settings.rewriteMinimumBytes else { return nil }
            let base = max(state.rewriteBaseSize, 1)
            let growth = current * 100 / base - 100
            guard growth >= settings.rewritePercentage else { return nil }
            if now < state.nextAutoRewriteMilliseconds { return nil }
            return "Starting automatic rewriting of AOF on \(growth)% growth"
        }
        guard let message, !snapshots.isBackgroundSaveInProgress else { return }
        log.log(.notice, message)
        _ = startRewrite(engine: engine)
    }

    // MARK: Shutdown

    public func shutdown(engine: CommandEngine, mode: ShutdownSaveMode, log: ServerLog) -> Bool {
        let (current, initialAOF) = state.withLock { ($0.log, $0.enablingAOF && $0.rewriteInProgress) }
        if !startupComplete.load(ordering: .acquiring) {
            // Like Redis's prepareForShutdown while loading: saving a partial dataset would lose data.
            log.log(.warning, "Shutting down while loading the dataset: not saving.")
            return true
        }
        if initialAOF {
            // Redis refuses too: the AOF on disk does not hold the dataset until this base exists.
            log.log(.warning, "Writing initial AOF, can't exit.")
            return false
        }
        let wantsSave = mode == .save || (mode == .configured && !snapshots.settings.savePoints.isEmpty)
        if wantsSave {
            log.log(.notice, "Saving the final RDB snapshot before exiting.")
            if !snapshots.save(engine: engine) {
                log.log(.warning, "Error trying to save the DB, can't exit.")
                return false
            }
        }
        if let writer = current?.writer {
            log.log(.notice, "Calling fsync() on the AOF file.")
            if !writer.shutdown() { log.log(.warning, "Error flushing the AOF file on shutdown.") }
        }
        return true
    }

    // MARK: CONFIG SET

    public func configurationChanged(_ name: String, value: String, engine: CommandEngine) -> String? {
        switch name {
        case "appendonly":
            // The loader owns the AOF directory until start-up finishes.
            guard startupComplete.load(ordering: .acquiring) else { return "the dataset is still loading" }
            let on = value == "yes"
            let was = state.withLock { $0.settings.appendOnly }
            if on && !was { return enableAppendOnly(engine: engine) }
            if !on && was { disableAppendOnly(engine: engine) }
        case "appendfsync":
            guard let policy = AppendFsyncPolicy(rawValue: value) else { return "argument(s) must be one of..." }
            let writer = state.withLock { state -> AppendOnlyFile<PosixStorage>? in
                state.settings.fsyncPolicy = policy
                return state.writer
            }
            writer?.setFsyncPolicy(policy)
        case "save":
            snapshots.update { $0.savePoints = SavePoint.parse(value) }
            refreshSaveGate()
        case "stop-writes-on-bgsave-error":
            snapshots.update { $0.stopWritesOnError = value == "yes" }
            refreshSaveGate()
        case "dbfilename": snapshots.update { $0.fileName = value }
        case "aof-use-rdb-preamble": state.withLock { $0.settings.useRDBPreamble = value == "yes" }
        case "aof-load-truncated": state.withLock { $0.settings.loadTruncated = value == "yes" }
        case "rdbcompression":
            state.withLock { $0.settings.compression = value == "yes" }
            snapshots.update { $0.writer.compression = value == "yes" }
        case "rdbchecksum":
            state.withLock { $0.settings.checksum = value == "yes" }
            snapshots.update { $0.writer.checksum = value == "yes" }
        case "rdb-save-incremental-fsync": snapshots.update { $0.incrementalFsync = value == "yes" }
        case "auto-aof-rewrite-percentage": state.withLock { $0.settings.rewritePercentage = Int64(value) ?? 100 }
        case "auto-aof-rewrite-min-size":
            state.withLock { $0.settings.rewriteMinimumBytes = Int64(value) ?? $0.settings.rewriteMinimumBytes }
        default:
            break
        }
        return nil
    }

    /// CONFIG SET appendonly yes (Redis startAppendOnly): opens a new incr file that collects
    /// writes from now on, and writes a base from a snapshot taken atomically with the switch.
    /// The manifest on disk changes only when the base is complete, so a crash before that
    /// leaves the previous AOF state (like Redis's temporary incr file in AOF_WAIT_REWRITE).
    private func enableAppendOnly(engine: CommandEngine) -> String? {
        let busy = state.withLock { state -> Bool in
            state.settings.appendOnly = true
            return !claimBackgroundSlot(&state)
        }
        if busy {
            // Redis also defers the first rewrite until the running child finishes.
            state.withLock {
                $0.enablingAOF = true
                $0.rewriteScheduled = true
            }
            log.log(.notice, "AOF was enabled but there is already another background operation. "
                + "An AOF background was scheduled to start when possible.")
            return nil
        }
        if let failure = beginEnablingRewrite(engine: engine) {
            state.withLock { $0.settings.appendOnly = false }
            return failure
        }
        return nil
    }

    /// Starts the first rewrite of a newly enabled AOF; returns an error text on failure.
    private func beginEnablingRewrite(engine: CommandEngine) -> String? {
        let settings = settings
        do {
            try storage.makeDirectory(settings.appendDirectory)
            let loader = AOFLoader(
                storage: storage, directory: settings.appendDirectory, naming: settings.naming, log: aofLogger())
            var manifest = try loader.readManifest() ?? AOFManifest()
            let sequence = manifest.currentIncrSequence + 1
            let name = settings.naming.incrFileName(sequence: sequence)
            let file = try storage.create(storagePath(settings.appendDirectory, name))
            storage.close(file)
            manifest.incrs.append(AOFFileInfo(name: name, sequence: sequence, type: .incr))
            manifest.currentIncrSequence = sequence
            // Attaching the log and taking the snapshot under every shard lock: each write is
            // either in the snapshot or in the new incr file, never both, never neither. A
            // previous generation (a retried first rewrite) is flushed first, and the new one's
            // offsets start where it ended, so no session waits on offsets the new writer
            // never issued.
            let locked = engine.keyspace.lockExclusive()
            let previous = state.withLock { state -> PersistenceLog? in
                if let current = state.log { state.nextOffsetBase = current.endOffset }
                return state.log
            }
            if let writer = previous?.writer { _ = writer.shutdown() }
            let generation: (log: PersistenceLog, rewriter: AOFRewriter<PosixStorage>)
            do {
                generation = try makeGeneration(settings: settings, manifest: manifest)
            } catch {
                engine.keyspace.unlockExclusive(locked)
                throw error
            }
            engine.attachLog(generation.log)
            let snapshot = engine.keyspace.snapshot()
            engine.keyspace.unlockExclusive(locked)
            state.withLock { state in
                state.log = generation.log
                state.rewriter = generation.rewriter
                state.enablingAOF = true
                state.rewriteInProgress = true
                state.rewriteScheduled = false
                state.rewriteStartedMilliseconds = monotonicMilliseconds()
            }
            log.log(.notice, "Background append only file rewriting started")
            let rewriter = generation.rewriter
            startThread { [self] in
                let ok = rewriter.rewrite(SnapshotFiles.walker(snapshot))
                rewriteFinished(ok: ok)
            }
            return nil
        } catch {
            releaseBackgroundSlot()
            log.log(.warning, "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. "
                + "(\(error))")
            return "Can't start the AOF: \(error)"
        }
    }

    /// CONFIG SET appendonly no (Redis stopAppendOnly): flush and fsync, then stop logging.
    private func disableAppendOnly(engine: CommandEngine) {
        // Under every shard lock no append is in flight: the last offset is final, the writer
        // is flushed before anyone can be told their write is durable, and the next
        // generation (or the MISCONF-only log) continues from that offset.
        let locked = engine.keyspace.lockExclusive()
        let current = state.withLock { state -> PersistenceLog? in
            state.settings.appendOnly = false
            state.enablingAOF = false
            state.rewriteScheduled = false
            let current = state.log
            state.log = nil
            state.rewriter = nil
            if let current { state.nextOffsetBase = current.endOffset }
            return current
        }
        if let writer = current?.writer { _ = writer.shutdown() }
        engine.attachLog(gateLogIfNeeded())
        engine.keyspace.unlockExclusive(locked)
    }

    // MARK: Background work

    /// Claims the one background-job slot for a rewrite (false while a rewrite or BGSAVE runs).
    /// Called under `state`'s lock; the controller's lock is always taken inside it, never around it.
    private func claimBackgroundSlot(_ state: inout State) -> Bool {
        guard !state.rewriteInProgress, snapshots.beginOtherBackgroundJob() else { return false }
        state.rewriteInProgress = true
        state.rewriteStartedMilliseconds = monotonicMilliseconds()
        return true
    }

    /// Gives the slot back without a rewrite having run (its start failed).
    private func releaseBackgroundSlot() {
        state.withLock { $0.rewriteInProgress = false }
        snapshots.endOtherBackgroundJob()
    }

    /// BGREWRITEAOF and the auto-rewrite cron.
    func startRewrite(engine: CommandEngine) -> AOFRewriteStart {
        enum Decision { case reply(AOFRewriteStart), enable, noWriter, run(AOFRewriter<PosixStorage>) }
        let decision = state.withLock { state -> Decision in
            if state.rewriteInProgress { return .reply(.alreadyInProgress) }
            guard claimBackgroundSlot(&state) else {
                // A BGSAVE runs: the rewrite starts from the cron once it ends.
                state.rewriteScheduled = true
                return .reply(.scheduled)
            }
            state.rewriteScheduled = false
            if state.enablingAOF { return .enable }
            guard let rewriter = state.rewriter else { return .noWriter }
            return .run(rewriter)
        }
        switch decision {
        case .reply(let reply):
            return reply
        case .enable:
            if let failure = beginEnablingRewrite(engine: engine) { return .failed(failure) }
            return .started
        case .noWriter:
            return rewriteWithoutAOF(engine: engine)
        case .run(let rewriter):
            // Rotating to a new incr file and copying the keyspace under every shard lock: no
            // append can fall between them (it would be in both the base and the new incr).
            let locked = engine.keyspace.lockExclusive()
            let begun = rewriter.beginRewrite()
            let snapshot = begun == .started ? engine.keyspace.snapshot() : nil
            engine.keyspace.unlockExclusive(locked)
            guard let snapshot else {
                rewriteFinished(ok: false)
                return begun
            }
            log.log(.notice, "Background append only file rewriting started")
            rewriter.runInBackground(SnapshotFiles.walker(snapshot)) { [self] ok in rewriteFinished(ok: ok) }
            return .started
        }
    }

    /// BGREWRITEAOF with appendonly no: like Redis 7.0, writes a base and a manifest listing
    /// only that base (no incr file), leaving the AOF off.
    private func rewriteWithoutAOF(engine: CommandEngine) -> AOFRewriteStart {
        let settings = settings
        let snapshot = engine.keyspace.snapshot()
        log.log(.notice, "Background append only file rewriting started")
        startThread { [self] in
            var ok = true
            do {
                try storage.makeDirectory(settings.appendDirectory)
                let loader = AOFLoader(
                    storage: storage, directory: settings.appendDirectory, naming: settings.naming, log: aofLogger())
                let old = try loader.readManifest() ?? AOFManifest()
                let sequence = old.currentBaseSequence + 1
                let asRDB = settings.useRDBPreamble
                let name = settings.naming.baseFileName(sequence: sequence, rdbPreamble: asRDB)
                if asRDB {
                    try saveSnapshot(
                        snapshot, storage: storage, directory: settings.appendDirectory, fileName: name,
                        options: SnapshotFiles.options(compression: settings.compression, checksum: settings.checksum,
                                                       aofBase: true),
                        incrementalFsync: true)
                } else {
                    try writeRESPBaseFile(SnapshotFiles.walker(snapshot), storage: storage,
                                          directory: settings.appendDirectory, name: name)
                }
                var next = AOFManifest(base: AOFFileInfo(name: name, sequence: sequence, type: .base))
                next.currentBaseSequence = sequence
                next.currentIncrSequence = old.currentIncrSequence
                try writeManifest(next, storage: storage, directory: settings.appendDirectory, naming: settings.naming)
                // The old files are no longer listed anywhere.
                for info in old.loadOrder where info.name != name {
                    try? storage.remove(storagePath(settings.appendDirectory, info.name))
                }
                log.log(.notice, "Background AOF rewrite finished successfully")
            } catch {
                log.log(.warning, "Background AOF rewrite failed: \(error)")
                ok = false
            }
            rewriteFinished(ok: ok)
        }
        return .started
    }

    private func rewriteFinished(ok: Bool) {
        let now = SystemClock().nowMilliseconds()
        state.withLock { state in
            state.lastRewriteSeconds = (monotonicMilliseconds() - state.rewriteStartedMilliseconds) / 1000
            state.rewriteInProgress = false
            state.lastRewriteOK = ok
            if ok {
                state.rewrites += 1
                state.rewriteFailures = 0
                state.nextAutoRewriteMilliseconds = 0
                state.enablingAOF = false
                state.rewriteBaseSize = state.writer?.snapshot().currentSize ?? 0
            } else {
                state.rewriteFailures += 1
                if state.enablingAOF { state.rewriteScheduled = true }
                if state.rewriteFailures >= Self.rewriteFailuresBeforeBackoff {
                    // 1, 2, 4 ... 60 minutes, like aofRewriteLimited.
                    let exponent = min(state.rewriteFailures - Self.rewriteFailuresBeforeBackoff, 6)
                    let minutes = min(Int64(1) << Int64(exponent), Self.rewriteBackoffMinutesMax)
                    state.nextAutoRewriteMilliseconds = now + minutes * 60_000
                    log.log(.warning, "Background AOF rewrite has repeatedly failed and triggered the limit, "
                        + "will retry in \(minutes) minutes")
                }
            }
        }
        snapshots.endOtherBackgroundJob()
    }

    /// Recomputes whether writes are refused for a failed BGSAVE and attaches the refusing log
    /// when the AOF is off (with the AOF on, its PersistenceLog consults the same gate).
    func refreshSaveGate() {
        let refusing = snapshots.writeRefusal() != nil
        let engine = state.withLock { $0.engine }
        let was = gate.refusing.exchange(refusing, ordering: .relaxed)
        guard was != refusing, let engine else { return }
        // Under the shard locks so enabling/disabling the AOF cannot interleave with this.
        let locked = engine.keyspace.lockExclusive()
        if state.withLock({ $0.log == nil }) { engine.attachLog(gateLogIfNeeded()) }
        engine.keyspace.unlockExclusive(locked)
    }

    /// With the AOF off, a writer-less log exists only to refuse writes after a failed BGSAVE.
    private func gateLogIfNeeded() -> PersistenceLog? {
        guard gate.refusing.load(ordering: .relaxed) else { return nil }
        let base = state.withLock { $0.nextOffsetBase }
        return PersistenceLog(writer: nil, offsetBase: base, gate: gate)
    }

    // MARK: WAITAOF

    func waitFsynced(_ offset: UInt64, timeoutMilliseconds: Int64) -> Bool? {
        guard let current = state.withLock({ $0.log }), current.writer != nil else { return nil }
        return current.waitUntilFsynced(offset, timeoutMilliseconds: timeoutMilliseconds)
    }
}

/// Writes a RESP base (`aof-use-rdb-preamble no`) atomically.
func writeRESPBaseFile(_ walk: AOFEntryWalker, storage: PosixStorage, directory: String, name: String) throws {
    try atomicReplace(storage, directory: directory, name: name, incrementalFsync: true) { sink in
        try writeRESPBase(walk, into: &sink)
    }
}
