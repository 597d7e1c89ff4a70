// PersistenceEngine+Jobs: SAVE, BGSAVE, BGREWRITEAOF, enabling/disabling the AOF, and the one job slot.
//
//     command / cron thread                              job (BackgroundJobRunner)
//     claim slot ─ lockExclusive ─ [rotate incr] ─┐
//                  image ─ unlockExclusive ────┴───►  write dump.rdb or base (temp, fsync, rename)
//            ◀─ "+Background ... started"                 switch manifest (rewrite)
//     tick / INFO read `state` ◀──────────────────────── saveFinished / rewriteFinished: free the slot
import TallyKeyspace
import TallyProtocol

extension PersistenceEngine {
    // MARK: RDB

    public var lastSaveSeconds: Int64 { state.withLock { $0.lastSaveSeconds } }

    /// SAVE (Redis: saveCommand, rdb.c).
    public func save() -> SaveOutcome {
        // Redis refuses SAVE only while an RDB child runs (a rewrite may go on).
        let (busy, dataset) = state.withLock { ($0.job == .save, $0.dataset) }
        if busy { return .backgroundSaveInProgress }
        guard let dataset else { return .failed }
        return saveNow(dataset) ? .saved : .failed
    }

    /// A blocking save (SAVE, shutdown). As in Redis, a failed SAVE leaves
    /// `rdb_last_bgsave_status` (and so MISCONF) alone; a successful one sets it ok.
    func saveNow(_ dataset: any PersistedDataset) -> Bool {
        let start = clock.nowMilliseconds()
        let settings = state.withLock { state -> PersistenceSettings in
            state.saves += 1
            return state.settings
        }
        let changes = dataset.changesSinceLastSave
        let plain = settings.rdbOptions(nowMilliseconds: start, usedMemoryBytes: usedMemoryBytes(), aofBase: false)
        let (image, options) = dumpImage(dataset, options: plain)
        let ok = writeDump(image, settings: settings, options: options)
        saveFinished(ok: ok, dataset: dataset, changesAtStart: changes, start: start, background: false)
        return ok
    }

    /// BGSAVE (Redis: bgsaveCommand and rdbSaveBackground, rdb.c): refused while a save runs,
    /// scheduled behind another job only with SCHEDULE (or inside EXEC, which always defers).
    public func startBackgroundSave(schedule: Bool, deferred: Bool) -> BackgroundSaveStart {
        let start = clock.nowMilliseconds()
        let decision = state.withLock { state -> SaveDecision in
            if state.job == .save { return .reply(.alreadyInProgress) }
            guard let dataset = state.dataset else { return .reply(.otherJobActive) }
            if state.job != nil || deferred {
                guard schedule || deferred else { return .reply(.otherJobActive) }
                state.saveScheduled = true
                return .reply(.scheduled)
            }
            state.job = .save
            state.jobStartedMilliseconds = start
            state.saveScheduled = false
            state.lastSaveAttemptMilliseconds = start
            state.saves += 1
            return .start(state.settings, dataset)
        }
        guard case .start(let settings, let dataset) = decision else {
            if case .reply(let reply) = decision { return reply }
            return .alreadyInProgress
        }
        let changes = dataset.changesSinceLastSave
        let plain = settings.rdbOptions(nowMilliseconds: start, usedMemoryBytes: usedMemoryBytes(), aofBase: false)
        let (image, options) = dumpImage(dataset, options: plain)
        var keys = 0
        for database in 0..<image.databaseCount { keys += image.keyCount(database: database) }
        state.withLock { $0.currentSaveKeysTotal = keys }
        log(.notice, "Background saving started")
        runJob { [self] in
            let ok = writeDump(image, settings: settings, options: options)
            log(ok ? .notice : .warning, ok ? "Background saving terminated with success" : "Background saving error")
            saveFinished(ok: ok, dataset: dataset, changesAtStart: changes, start: start, background: true)
        }
        return .started
    }

    private func writeDump(_ image: KeyspaceImage, settings: PersistenceSettings, options: RDBWriterOptions)
        -> Bool
    {
        do {
            try saveSnapshot(image, storage: storage, directory: settings.directory, fileName: settings.rdbFileName,
                             options: options, incrementalFsync: settings.incrementalFsync)
            log(.notice, "DB saved on disk")
            return true
        } catch {
            log(.warning, "Failed opening the temp RDB file or writing it: \(error)")
            return false
        }
    }

    private func saveFinished(
        ok: Bool, dataset: any PersistedDataset, changesAtStart: Int64, start: Int64, background: Bool
    ) {
        let end = clock.nowMilliseconds()
        // Only the changes the image contains are cleared; later writes still count.
        if ok { dataset.resetChangesSinceLastSave(subtracting: changesAtStart) }
        state.withLock { state in
            if background {
                state.lastSaveDurationSeconds = (end - start) / 1000
                state.lastSaveOK = ok
            } else if ok {
                state.lastSaveOK = true
            }
            if ok { state.lastSaveSeconds = end / 1000 }
        }
        refreshSaveGate()
        // Only now does INFO stop showing the save in progress: a client that waits for that
        // (redis-cli, the test suites) then finds writes already refused after a failed save, as
        // Redis's backgroundSaveDoneHandler updates both at once for its main thread.
        if background { state.withLock { $0.job = nil } }
    }

    // MARK: AOF rewrite

    /// What a rewrite writes its base from: the image, and for an RDB base the options its
    /// shard images were serialized with.
    struct RewriteInput: Sendable {
        let image: KeyspaceImage
        let rdbOptions: RDBWriterOptions?
    }

    /// BGREWRITEAOF and the cron's rewrites (Redis: bgrewriteaofCommand and
    /// rewriteAppendOnlyFileBackground, aof.c): scheduled behind a running BGSAVE.
    public func startRewrite() -> AOFRewriteStart {
        let now = clock.nowMilliseconds()
        guard let dataset else { return .failed("not started") }
        let decision = state.withLock { state -> RewriteDecision in
            if state.job == .rewrite { return .reply(.alreadyInProgress) }
            if state.job == .save {
                // The rewrite starts from the cron once the save ends.
                state.rewriteScheduled = true
                return .reply(.scheduled)
            }
            state.job = .rewrite
            state.jobStartedMilliseconds = now
            state.rewriteScheduled = false
            if state.enablingAOF { return .enable }
            if let writer = state.writer { return .rotate(writer) }
            return .withoutAOF
        }
        switch decision {
        case .reply(let reply):
            return reply
        case .enable:
            if let failure = beginEnablingRewrite(dataset) { return .failed(failure) }
            return .started
        case .rotate(let writer):
            // Rotating to a new incr file and copying the keyspace under every shard lock: no
            // append can fall between them (it would be in both the base and the new incr).
            let locked = dataset.keyspace.lockExclusive()
            do {
                _ = try writer.rotateIncrFile()
            } catch {
                dataset.keyspace.unlockExclusive(locked)
                log(.warning, "Can't open new incr AOF for rewrite: \(error)")
                rewriteFinished(ok: false)
                return .failed("\(error)")
            }
            let input = takeRewriteSnapshot(dataset)
            dataset.keyspace.unlockExclusive(locked)
            log(.notice, "Background append only file rewriting started")
            runJob { [self] in rewrite(input, writer: writer) }
            return .started
        case .withoutAOF:
            // Like Redis 7.0 with appendonly no: a base and a manifest listing only that base.
            let input = takeRewriteSnapshot(dataset)
            log(.notice, "Background append only file rewriting started")
            runJob { [self] in rewrite(input, writer: nil) }
            return .started
        }
    }

    private func takeRewriteSnapshot(_ dataset: any PersistedDataset) -> RewriteInput {
        let settings = settings
        guard settings.useRDBPreamble else {
            return RewriteInput(image: dataset.keyspace.image(serializer: respShardSerializer()), rdbOptions: nil)
        }
        let options = settings.rdbOptions(
            nowMilliseconds: clock.nowMilliseconds(), usedMemoryBytes: usedMemoryBytes(), aofBase: true)
        return RewriteInput(
            image: dataset.keyspace.image(serializer: rdbShardSerializer(options: options)), rdbOptions: options)
    }

    /// The rewrite job, for all three callers (BGREWRITEAOF with the AOF on or off, and the first
    /// rewrite of a newly enabled AOF): writes the base, switches the manifest, frees the slot.
    private func rewrite(_ input: RewriteInput, writer: AppendOnlyFile<S>?) {
        let settings = settings
        let directory = settings.appendDirectory
        var ok = true
        do {
            let manifest: AOFManifest
            if let writer {
                manifest = writer.currentManifest()
            } else {
                try makeDurableDirectory(storage, directory)
                let loader = AOFLoader(storage: storage, directory: directory, naming: settings.naming, log: log)
                manifest = try loader.readManifest() ?? AOFManifest()
            }
            let installed = try installRewrittenBase(
                storage: storage, directory: directory, naming: settings.naming, manifest: manifest,
                keepsLastIncr: writer != nil, asRDB: input.rdbOptions != nil
            ) { name in
                if let options = input.rdbOptions {
                    return try saveSnapshot(input.image, storage: storage, directory: directory, fileName: name,
                                            options: options, incrementalFsync: true)
                }
                let stamp = settings.timestampsEnabled ? clock.nowMilliseconds() / 1000 : nil
                return try atomicReplace(storage, directory: directory, name: name, incrementalFsync: true) { sink in
                    // A RESP base carries integrity marks like incr files (AOFMarks.swift).
                    var marking = MarkingSink(base: sink, timestampSeconds: stamp)
                    try writeRESPFunctions(input.image.functionCodes, into: &marking)
                    try writeRESPBase(input.image, into: &marking)
                    try marking.finish()
                    sink = marking.base
                }
            }
            writer?.adoptRewrittenManifest(installed.manifest, baseSize: installed.baseSize, keptIncrSizes: 0)
            log(.notice, "Background AOF rewrite finished successfully")
        } catch {
            log(.warning, "Background AOF rewrite failed: \(error)")
            ok = false
        }
        rewriteFinished(ok: ok)
    }

    /// Frees the slot and updates the status; three consecutive failures start the back-off of
    /// automatic and scheduled rewrites: 1, 2, 4 ... 60 minutes (aofRewriteLimited).
    private func rewriteFinished(ok: Bool) {
        let now = clock.nowMilliseconds()
        let backoffMinutes = state.withLock { state -> Int64? in
            state.lastRewriteSeconds = (now - state.jobStartedMilliseconds) / 1000
            state.job = nil
            state.lastRewriteOK = ok
            if ok {
                state.rewrites += 1
                state.rewriteFailures = 0
                state.nextAutoRewriteMilliseconds = 0
                state.enablingAOF = false
                state.rewriteBaseSize = state.writer?.status().currentSize ?? 0
                return nil
            }
            state.rewriteFailures += 1
            // A newly enabled AOF keeps trying until its first base exists.
            if state.enablingAOF { state.rewriteScheduled = true }
            guard state.rewriteFailures >= Self.rewriteFailuresBeforeBackoff else { return nil }
            let exponent = min(state.rewriteFailures - Self.rewriteFailuresBeforeBackoff, 6)
            let minutes = min(Int64(1) << Int64(exponent), Self.rewriteBackoffMinutesMax)
            state.nextAutoRewriteMilliseconds = now + minutes * 60_000
            return minutes
        }
        if let backoffMinutes {
            log(.warning, "Background AOF rewrite has repeatedly failed and triggered the limit, "
                + "will retry in \(backoffMinutes) minutes")
        }
    }

    // MARK: appendonly yes / no

    /// CONFIG SET appendonly yes (Redis startAppendOnly): opens a new incr file that collects
    /// writes from now on, and writes a base from a image taken atomically with the switch.
    func enableAppendOnly(_ dataset: any PersistedDataset) -> String? {
        let now = clock.nowMilliseconds()
        let busy = state.withLock { state -> Bool in
            state.settings.appendOnly = true
            state.enablingAOF = true
            if state.job != nil {
                state.rewriteScheduled = true
                return true
            }
            state.job = .rewrite
            state.jobStartedMilliseconds = now
            return false
        }
        if busy {
            // Redis also defers the first rewrite until the running child finishes.
            log(.notice, "AOF was enabled but there is already another background operation. "
                + "An AOF background was scheduled to start when possible.")
            return nil
        }
        if let failure = beginEnablingRewrite(dataset) {
            state.withLock { state in
                state.settings.appendOnly = false
                state.enablingAOF = false
            }
            return failure
        }
        return nil
    }

    /// Starts the first rewrite of a newly enabled AOF (the slot is claimed); returns an error
    /// text on failure, with the slot released. The manifest on disk changes only when the base
    /// is complete, so a crash before that leaves the previous AOF state (like Redis's
    /// temporary incr file in AOF_WAIT_REWRITE).
    private func beginEnablingRewrite(_ dataset: any PersistedDataset) -> String? {
        let settings = settings
        do {
            try makeDurableDirectory(storage, settings.appendDirectory)
            let loader = AOFLoader(
                storage: storage, directory: settings.appendDirectory, naming: settings.naming, log: log)
            var manifest = try loader.readManifest() ?? AOFManifest()
            let sequence = manifest.currentIncrSequence + 1
            let name = settings.naming.incrFileName(sequence: sequence)
            let file = try storage.create(storagePath(settings.appendDirectory, name))
            storage.close(file)
            manifest.incrs.append(AOFFileInfo(name: name, sequence: sequence, type: .incr))
            manifest.currentIncrSequence = sequence
            // Attaching the log and taking the image under every shard lock: each write is
            // either in the image or in the new incr file, never both, never neither. A
            // previous generation (a retried first rewrite) is flushed first, and the new one's
            // offsets start where it ended, so no session waits on offsets the new writer
            // never issued.
            let locked = dataset.keyspace.lockExclusive()
            let previous = state.withLock { state -> AppendLogGeneration<S>? in
                if let current = state.log { state.nextOffsetBase = current.endOffset }
                return state.log
            }
            if let writer = previous?.writer { _ = writer.shutdown() }
            let generation: AppendLogGeneration<S>
            do {
                generation = try makeGeneration(settings: settings, manifest: manifest)
            } catch {
                dataset.keyspace.unlockExclusive(locked)
                throw error
            }
            dataset.attachLog(generation)
            let input = takeRewriteSnapshot(dataset)
            dataset.keyspace.unlockExclusive(locked)
            state.withLock { state in
                state.log = generation
                state.rewriteScheduled = false
            }
            log(.notice, "Background append only file rewriting started")
            runJob { [self] in rewrite(input, writer: generation.writer) }
            return nil
        } catch {
            state.withLock { $0.job = nil }
            log(.warning, "Redis needs to enable the AOF but can't trigger a background AOF rewrite operation. "
                + "(\(error))")
            return "Can't start the AOF: \(error)"
        }
    }

    /// CONFIG SET appendonly no (Redis stopAppendOnly): flush and fsync, then stop logging.
    func disableAppendOnly(_ dataset: any PersistedDataset) {
        // Under every shard lock no append is in flight: the last offset is final, the writer
        // is flushed before anyone can be told their write is durable, and the next
        // generation (or the MISCONF-only log) continues from that offset.
        let locked = dataset.keyspace.lockExclusive()
        let current = state.withLock { state -> AppendLogGeneration<S>? in
            state.settings.appendOnly = false
            state.enablingAOF = false
            state.rewriteScheduled = false
            let current = state.log
            state.log = nil
            if let current { state.nextOffsetBase = current.endOffset }
            return current
        }
        if let writer = current?.writer { _ = writer.shutdown() }
        dataset.attachLog(gateLogIfNeeded())
        dataset.keyspace.unlockExclusive(locked)
    }
}
