// PersistenceCommands: SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF, WAITAOF rows and the INFO persistence fields.
import Glibc
import TallyCommands
import TallyPersistence
import TallyProtocol

extension DiskPersistence {
    public var serverCommands: [CommandSpec] {
        let hooks = AOFCommandHooks(
            waitFsynced: { [self] offset, timeout in waitFsynced(offset, timeoutMilliseconds: timeout) },
            startRewrite: { [self] in
                guard let engine = state.withLock({ $0.engine }) else { return .failed("not started") }
                return startRewrite(engine: engine)
            })
        return [
            CommandSpec(
                name: "save", arity: 1, flags: [.admin, .noScript], categories: ["@admin", "@slow", "@dangerous"]
            ) { [self] context in
                // Redis refuses SAVE only while an RDB child runs (a rewrite may go on).
                if state.withLock({ $0.saveInProgress }) {
                    context.output.writeError("ERR Background save already in progress")
                } else if saveNow(engine: context.engine) {
                    context.output.writeSimpleString("OK")
                } else {
                    context.output.writeError("ERR")
                }
            },
            CommandSpec(
                name: "bgsave", arity: -1, flags: [.admin, .noScript], categories: ["@admin", "@slow", "@dangerous"]
            ) { [self] context in
                var schedule = false
                if context.arguments.count > 1 {
                    let option = String(decoding: context.arguments[1], as: UTF8.self).lowercased()
                    guard context.arguments.count == 2, option == "schedule" else {
                        context.output.writeError("ERR syntax error")
                        return
                    }
                    schedule = true
                }
                switch startBackgroundSave(engine: context.engine, schedule: schedule, automatic: false) {
                case .started: context.output.writeSimpleString("Background saving started")
                case .scheduled: context.output.writeSimpleString("Background saving scheduled")
                case .alreadyInProgress: context.output.writeError("ERR Background save already in progress")
                case .childActive:
                    context.output.writeError(
                        """
                        ERR Another child process is active (AOF?): can't BGSAVE right now. \
                        Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.
                        """)
                case .failed: context.output.writeError("ERR")
                }
            },
            CommandSpec(
                name: "lastsave", arity: 1, flags: [.random, .fast, .loading, .stale],
                categories: ["@admin", "@fast", "@dangerous"]
            ) { [self] context in
                context.output.writeInteger(state.withLock { $0.lastSaveSeconds })
            },
        ] + AOFCommands.specs(hooks: hooks)
    }

    /// INFO persistence, in Redis 7.0.15's field order.
    public func writeInfo(into text: inout String, engine: CommandEngine) {
        let state = state.withLock { $0 }
        let loading = loadingStatus.isLoading.load(ordering: .acquiring)
        text += "loading:\(loading ? 1 : 0)\r\nasync_loading:0\r\n"
        text += "current_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\n"
        text += "current_save_keys_processed:0\r\n"
        text += "current_save_keys_total:\(state.saveInProgress ? state.saveKeysTotal : 0)\r\n"
        let now = monotonicMilliseconds()
        text += "rdb_changes_since_last_save:\(engine.changesSinceLastSave)\r\n"
        text += "rdb_bgsave_in_progress:\(state.saveInProgress ? 1 : 0)\r\n"
        text += "rdb_last_save_time:\(state.lastSaveSeconds)\r\n"
        text += "rdb_last_bgsave_status:\(state.lastBackgroundSaveOK ? "ok" : "err")\r\n"
        text += "rdb_last_bgsave_time_sec:\(state.lastBackgroundSaveSeconds)\r\n"
        text += "rdb_current_bgsave_time_sec:"
            + "\(state.saveInProgress ? (now - state.saveStartedMilliseconds) / 1000 : -1)\r\n"
        text += "rdb_saves:\(state.saves)\r\nrdb_last_cow_size:0\r\n"
        text += "rdb_last_load_keys_expired:\(state.loadKeysExpired)\r\n"
        text += "rdb_last_load_keys_loaded:\(state.loadKeysLoaded)\r\n"
        let writer = state.writer
        let enabled = state.settings.appendOnly
        text += "aof_enabled:\(enabled ? 1 : 0)\r\n"
        text += "aof_rewrite_in_progress:\(state.rewriteInProgress ? 1 : 0)\r\n"
        text += "aof_rewrite_scheduled:\(state.rewriteScheduled ? 1 : 0)\r\n"
        text += "aof_last_rewrite_time_sec:\(state.lastRewriteSeconds)\r\n"
        text += "aof_current_rewrite_time_sec:"
            + "\(state.rewriteInProgress ? (now - state.rewriteStartedMilliseconds) / 1000 : -1)\r\n"
        text += "aof_last_bgrewrite_status:\(state.lastRewriteOK ? "ok" : "err")\r\n"
        text += "aof_rewrites:\(state.rewrites)\r\n"
        text += "aof_rewrites_consecutive_failures:\(state.rewriteFailures)\r\n"
        let snapshot = writer?.snapshot()
        text += "aof_last_write_status:\(snapshot?.errorCode == nil ? "ok" : "err")\r\n"
        text += "aof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n"
        if enabled, let snapshot {
            text += "aof_current_size:\(snapshot.currentSize)\r\n"
            text += "aof_base_size:\(snapshot.baseSize)\r\n"
            text += "aof_pending_rewrite:\(state.rewriteScheduled ? 1 : 0)\r\n"
            text += "aof_buffer_length:\(snapshot.bufferLength)\r\n"
            text += "aof_pending_bio_fsync:\(snapshot.fsyncInProgress ? 1 : 0)\r\n"
            text += "aof_delayed_fsync:\(snapshot.delayedFsyncs)\r\n"
        }
        // Redis prints the loading progress block last.
        if loading {
            let total = loadingStatus.totalBytes.load(ordering: .relaxed)
            let loaded = loadingStatus.loadedBytes.load(ordering: .relaxed)
            let percent = total > 0 ? Double(loaded) * 100 / Double(total) : 0
            text += "loading_start_time:\(state.loadStartedSeconds)\r\n"
            text += "loading_total_bytes:\(total)\r\nloading_rdb_used_mem:0\r\n"
            text += "loading_loaded_bytes:\(loaded)\r\nloading_loaded_perc:\(fixed2(percent))\r\n"
            text += "loading_eta_seconds:1\r\n"
        }
    }
}
