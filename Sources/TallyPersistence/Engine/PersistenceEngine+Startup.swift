// PersistenceEngine+Startup: loading dump.rdb or the AOF, then opening the AOF for appending.
import TallyKeyspace
import TallyProtocol

extension PersistenceEngine {
    /// Loads the dataset into `dataset` before clients are served (Redis 7.0 loadDataFromDisk):
    /// with appendonly yes the AOF directory (dump.rdb is never read then), else dump.rdb with
    /// already expired keys dropped. AOF commands are executed through `replay`; a replay that
    /// runs them on other threads gives a `replayBarrier` that returns once all have run.
    public func load(
        into dataset: any PersistedDataset, replay: CommandReplay, replayBarrier: @escaping () -> Void = {}
    ) throws(PersistenceStartupError) {
        let settings = state.withLock { state -> PersistenceSettings in
            state.dataset = dataset
            state.loadStartedSeconds = clock.nowMilliseconds() / 1000
            return state.settings
        }
        if settings.appendOnly {
            try loadAppendOnlyFile(dataset, settings: settings, replay: replay, replayBarrier: replayBarrier)
        } else {
            try loadDump(dataset, settings: settings)
        }
        // Replayed commands counted as changes; a freshly loaded dataset has none to save.
        dataset.resetChangesSinceLastSave(to: 0)
    }

    private func loadAppendOnlyFile(
        _ dataset: any PersistedDataset, settings: PersistenceSettings, replay: CommandReplay,
        replayBarrier: @escaping () -> Void
    ) throws(PersistenceStartupError) {
        let keyspace = dataset.keyspace
        var keysLoaded = 0
        var loader = AOFLoader(
            storage: storage, directory: settings.appendDirectory, naming: settings.naming,
            loadTruncated: settings.loadTruncated, status: loading, log: log)
        loader.replayBarrier = replayBarrier
        // An RDB base (or RDB preamble): keys with a past TTL are kept, as Redis does for AOF
        // preambles; the replayed tail or active expiry removes them.
        let chunkBytes = settings.loadChunkBytes
        var options = RDBLoadOptions(dropExpiredBefore: nil, databaseCount: settings.databases)
        options.sortedSetLimits = settings.sortedSetLimits
        options.listFill = settings.listFill
        options.hashLimits = settings.hashLimits
        options.onDatabaseSize = { database, keys in keyspace.reserve(database: database, keys: keys) }
        loader.rdbReader = { [options] storage, path in
            let result = try loadRDBFile(
                storage, path: path, options: options,
                chunkBytes: chunkBytes
            ) { database, key, entry in
                keyspace.insertLoaded(database: database, key: key, entry: entry)
            }
            keysLoaded += result.keysLoaded
            try loadFunctionLibraries(result.functionCodes, into: keyspace, path: path)
            return result.endOffset
        }
        let summary: AOFLoadSummary?
        do {
            summary = try loader.load(replay: replay)
        } catch {
            throw PersistenceStartupError(
                "Fatal error loading the AOF in \(settings.appendDirectory): \(error.description)")
        }
        if let summary {
            log(.notice, "DB loaded from append only file (\(summary.commandsReplayed) commands replayed)")
            state.withLock { state in
                state.lastLoadKeysLoaded = keysLoaded
                state.lastLoadKeysExpired = 0
                state.rewriteBaseSize = summary.totalSize
            }
        } else if storage.exists(storagePath(settings.directory, settings.rdbFileName)) {
            // Redis 7.0.15 does the same: with appendonly yes and no AOF, dump.rdb is ignored and
            // an empty AOF is created. Say so, since the data in dump.rdb is not loaded.
            log(.warning,
                "appendonly is yes but \(settings.appendDirectory)/\(settings.naming.manifestName) does not exist: "
                    + "starting empty, \(settings.rdbFileName) is NOT loaded "
                    + "(use CONFIG SET appendonly yes on a running server to switch from RDB to AOF)")
        }
    }

    private func loadDump(_ dataset: any PersistedDataset, settings: PersistenceSettings)
        throws(PersistenceStartupError)
    {
        let path = storagePath(settings.directory, settings.rdbFileName)
        guard storage.exists(path) else { return }
        loading.isLoading.store(true, ordering: .releasing)
        defer { loading.isLoading.store(false, ordering: .releasing) }
        do {
            _ = try loadDumpFile(into: dataset, settings: settings)
        } catch let error as RDBError {
            throw PersistenceStartupError(
                "Short read or OOM loading DB. Unrecoverable error, aborting now.\n"
                    + "Internal error in RDB reading file \(path) offset \(error.offset): \(error.description)")
        } catch {
            throw PersistenceStartupError("Fatal error loading the DB \(path): \(error). Exiting.")
        }
    }

    /// Loads dump.rdb (missing: nil, empty: an error, as in Redis), dropping keys already
    /// expired by the engine's clock, and records the counts INFO shows.
    func loadDumpFile(into dataset: any PersistedDataset, settings: PersistenceSettings) throws -> RDBLoadResult? {
        let result = try loadSnapshotFile(
            storage: storage, directory: settings.directory, fileName: settings.rdbFileName,
            into: dataset.keyspace, nowMilliseconds: clock.nowMilliseconds(), chunkBytes: settings.loadChunkBytes,
            progress: loading, sortedSetLimits: settings.sortedSetLimits, listFill: settings.listFill,
            hashLimits: settings.hashLimits)
        dataset.resetChangesSinceLastSave(to: 0)
        guard let result else { return nil }
        if let version = result.auxValue("redis-ver") {
            log(.notice, "Loading RDB produced by version \(String(decoding: version, as: UTF8.self))")
        }
        log(.notice, "Done loading RDB, keys loaded: \(result.keysLoaded), keys expired: \(result.expiredKeysDropped).")
        state.withLock { state in
            state.lastLoadKeysLoaded = result.keysLoaded
            state.lastLoadKeysExpired = result.expiredKeysDropped
            state.lastLoadReplication = ReplicationSaveInfo(aux: result.aux)
        }
        return result
    }

    /// After `load`: opens the AOF for appending (appendonly yes) and attaches it to the
    /// dataset, so writes are logged from now on; the engine then accepts CONFIG SET appendonly.
    public func openAppendLog() throws(PersistenceStartupError) {
        let (settings, dataset) = state.withLock { ($0.settings, $0.dataset) }
        guard let dataset else { throw PersistenceStartupError("openAppendLog() before load(into:replay:)") }
        guard settings.appendOnly else {
            state.withLock { $0.startupComplete = true }
            return
        }
        do {
            let generation = try openAppendOnlyFile(settings: settings)
            state.withLock { state in
                state.log = generation
                if state.rewriteBaseSize == 0 {
                    state.rewriteBaseSize = generation.writer?.status().currentSize ?? 0
                }
                state.startupComplete = true
            }
            dataset.attachLog(generation)
        } catch {
            throw PersistenceStartupError("Can't open the append-only file: \(error)")
        }
    }

    /// Opens the AOF directory for appending: creates base + incr + manifest in an empty
    /// directory (as Redis 7.0 does on start-up), or appends to the manifest's last incr file.
    private func openAppendOnlyFile(settings: PersistenceSettings) throws -> AppendLogGeneration<S> {
        let loader = AOFLoader(storage: storage, directory: settings.appendDirectory, naming: settings.naming, log: log)
        let existing = try loader.readManifest()
        let options = settings.rdbOptions(
            nowMilliseconds: clock.nowMilliseconds(), usedMemoryBytes: usedMemoryBytes(), aofBase: true)
        let emptyBase: AOFEmptyRDBBaseWriter<S>? = settings.useRDBPreamble
            ? { storage, directory, name in
                try atomicReplace(storage, directory: directory, name: name) { sink in
                    var writer = RDBWriter(sink: sink, options: options)
                    try writer.writeHeader()
                    sink = try writer.finish()
                }
            } : nil
        if existing == nil {
            let name = settings.naming.baseFileName(sequence: 1, rdbPreamble: settings.useRDBPreamble)
            log(.notice, "Creating AOF base file \(name) on server start")
        }
        if existing == nil || existing?.incrs.isEmpty == true {
            let name = settings.naming.incrFileName(sequence: (existing?.currentIncrSequence ?? 0) + 1)
            log(.notice, "Creating AOF incr file \(name) on server start")
        }
        let manifest = try AOFDirectory.prepare(
            storage: storage, directory: settings.appendDirectory, naming: settings.naming, existing: existing,
            emptyRDBBase: emptyBase)
        return try makeGeneration(settings: settings, manifest: manifest)
    }

    /// A writer for `manifest` (its last incr file is opened for appending), numbered on from
    /// where the previous generation's offsets ended.
    func makeGeneration(settings: PersistenceSettings, manifest: AOFManifest) throws -> AppendLogGeneration<S> {
        var baseSize: Int64 = 0
        if let base = manifest.base,
            let file = try? storage.openForReading(storagePath(settings.appendDirectory, base.name))
        {
            baseSize = (try? storage.size(file)) ?? 0
            storage.close(file)
        }
        let configuration = AOFWriterConfiguration(
            directory: settings.appendDirectory, naming: settings.naming, fsyncPolicy: settings.fsyncPolicy,
            startsFsyncThread: startsFsyncThread, clock: clock, log: log, fatal: onFatal,
            timestampsEnabled: settings.timestampsEnabled)
        let writer = try AppendOnlyFile(storage: storage, manifest: manifest, baseSize: baseSize,
                                        configuration: configuration)
        let offsetBase = state.withLock { $0.nextOffsetBase }
        return AppendLogGeneration(writer: writer, offsetBase: offsetBase, gate: gate)
    }
}
