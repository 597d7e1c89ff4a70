// PersistenceCommands: the command rows (SAVE/BGSAVE/LASTSAVE from SnapshotController, BGREWRITEAOF, WAITAOF) and INFO.
import Glibc
import TallyCommands
import TallyPersistence
import TallyProtocol
import TallyKeyspace

extension DiskPersistence {
    public var serverCommands: [CommandSpec] {
        let hooks = AOFCommandHooks(
            waitFsynced: { [self] offset, timeout in waitFsynced(offset, timeoutMilliseconds: timeout) },
            startRewrite: { [self] in
                guard let engine = state.withLock({ $0.engine }) else { return .failed("not started") }
                return startRewrite(engine: engine)
            })
        return snapshots.serverCommands + AOFCommands.specs(hooks: hooks)
    }

    /// INFO persistence, in Redis 7.0.15's field order.
    public func writeInfo(into text: inout String, engine: CommandEngine) {
        let state = state.withLock { $0 }
        let loading = loadingStatus.isLoading.load(ordering: .acquiring)
        text += "loading:\(loading ? 1 : 0)\r\nasync_loading:0\r\n"
        text += "current_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\n"
        snapshots.writeInfo(into: &text, engine: engine)
        let now = monotonicMilliseconds()
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
