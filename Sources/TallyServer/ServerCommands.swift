// ServerCommands: INFO, CLIENT, CONFIG and SHUTDOWN as command-table rows with Redis 7.0 replies.
import Glibc
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol

extension ServerCore {
    /// The rows this module contributes to the command table.
    func commandSpecs() -> [CommandSpec] {
        replicationCommandSpecs() + [
            CommandSpec(
                name: "info", arity: -1, flags: [.loading, .stale], categories: ["@slow", "@dangerous"],
                handler: { [self] context in info(&context) }),
            CommandSpec(
                name: "client", arity: -2, flags: [], categories: ["@slow"], subcommands: Self.clientSubcommands,
                handler: { [self] context in client(&context) }),
            CommandSpec(
                name: "config", arity: -2, flags: [], categories: ["@slow"], subcommands: Self.configSubcommands,
                handler: { [self] context in config(&context) }),
            CommandSpec(
                name: "shutdown", arity: -1, flags: [.admin, .noScript, .loading, .stale, .noMulti, .allowBusy],
                categories: ["@admin", "@slow", "@dangerous"],
                handler: { [self] context in shutdownCommand(&context) }),
        ]
    }

    /// CLIENT's subcommands as Redis 7.0 declares them (arity and flags decide in dispatch;
    /// SETINFO is Redis 7.2's, accepted because client libraries send it on connect).
    static let clientSubcommands: [CommandSpec] = [
        subcommand("client|id", 2, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|getname", 2, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|setname", 3, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|setinfo", 4, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|info", 2, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|list", -2, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|kill", -3, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|help", 2, [.loading, .stale], "@slow @connection"),
        subcommand("client|reply", 3, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|unblock", -3, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|pause", -3, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|no-evict", 3, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|unpause", 2, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous @connection"),
        subcommand("client|tracking", -3, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|caching", 3, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|getredir", 2, [.noScript, .loading, .stale], "@slow @connection"),
        subcommand("client|trackinginfo", 2, [.noScript, .loading, .stale], "@slow @connection"),
    ]

    /// CONFIG's subcommands as Redis 7.0 declares them.
    static let configSubcommands: [CommandSpec] = [
        subcommand("config|get", -3, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous"),
        subcommand("config|set", -4, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous"),
        subcommand("config|resetstat", 2, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous"),
        subcommand("config|rewrite", 2, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous"),
        subcommand("config|help", 2, [.loading, .stale], "@slow"),
    ]

    /// A subcommand row: dispatch reads its arity and flags; the container's handler runs it.
    private static func subcommand(_ name: String, _ arity: Int, _ flags: CommandFlags, _ categories: String)
        -> CommandSpec
    {
        CommandSpec(name: name, arity: arity, flags: flags,
                    categories: categories.split(separator: " ").map(String.init)) { _ in }
    }

    private func text(_ context: CommandContext, _ index: Int) -> String {
        String(decoding: context.arguments[index], as: UTF8.self)
    }

    private func unknownSubcommand(_ context: inout CommandContext, _ command: String) {
        writeUnknownSubcommandError(context.arguments, parent: command, into: &context.output)
    }

    private func wrongArity(_ context: inout CommandContext, _ name: String) {
        writeArityError(name, into: &context.output)
    }

    // MARK: INFO

    private func info(_ context: inout CommandContext) {
        var sections = Set<String>()
        for index in 1..<context.arguments.count { sections.insert(text(context, index).lowercased()) }
        let body = infoText(sections: sections, engine: context.engine)
        context.output.writeVerbatim(Array(body.utf8))
    }

    /// INFO output for the requested sections (empty = default, "all"/"everything" = all).
    func infoText(sections requested: Set<String>, engine: CommandEngine) -> String {
        let defaults = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules",
            "errorstats", "cluster", "keyspace"]
        // genRedisInfoString's order, which every selection keeps: commandstats, errorstats and
        // latencystats come between modules and cluster.
        let all = ["server", "clients", "memory", "persistence", "stats", "replication", "cpu", "modules",
            "commandstats", "errorstats", "latencystats", "cluster", "keyspace"]
        var wanted: Set<String>
        if requested.isEmpty || requested.contains("default") {
            wanted = Set(defaults)
        } else {
            wanted = requested
        }
        if requested.contains("all") || requested.contains("everything") { wanted = Set(all) }
        var out = ""
        for section in all where wanted.contains(section) {
            if !out.isEmpty { out += "\r\n" }
            writeSection(section, into: &out, engine: engine)
        }
        return out
    }

    private func writeSection(_ section: String, into out: inout String, engine: CommandEngine) {
        let config = configuration.withLock { $0 }
        let now = SystemClock().nowMilliseconds()
        func field(_ name: String, _ value: String) { out += name + ":" + value + "\r\n" }
        switch section {
        case "server":
            out += "# Server\r\n"
            var names = utsname()
            uname(&names)
            let system = [
                withUnsafeBytes(of: names.sysname) { cText($0) }, withUnsafeBytes(of: names.release) { cText($0) },
                withUnsafeBytes(of: names.machine) { cText($0) },
            ].joined(separator: " ")
            let uptime = (now - startMilliseconds) / 1000
            field("redis_version", "7.0.15")
            field("tally_version", tallyVersion)
            field("redis_git_sha1", "00000000")
            field("redis_git_dirty", "0")
            field("redis_build_id", "0")
            field("redis_mode", "standalone")
            field("os", system)
            field("arch_bits", "64")
            field("monotonic_clock", "POSIX clock_gettime")
            field("multiplexing_api", "epoll")
            field("atomicvar_api", "c11-builtin")
            field("gcc_version", "0.0.0")
            field("process_id", String(getpid()))
            field("process_supervised", "no")
            field("run_id", runID)
            field("tcp_port", String(boundPort.load(ordering: .relaxed)))
            field("server_time_usec", String(now * 1000))
            field("uptime_in_seconds", String(uptime))
            field("uptime_in_days", String(uptime / 86400))
            field("hz", String(hz))
            field("configured_hz", String(config.integer("hz")))
            field("lru_clock", String((now / 1000) & ((1 << 24) - 1)))
            field("executable", executablePath())
            field("config_file", config.configFile)
            field("io_threads_active", threads.count > 1 ? "1" : "0")
            field("io_threads", String(threads.count))
            field("shards", String(engine.keyspace.shards.count))
        case "clients":
            out += "# Clients\r\n"
            // Replicas are not counted (server.c: listLength(clients) - listLength(slaves)).
            field("connected_clients", String(clients.count - replication.replicaLinks.count))
            field("cluster_connections", "0")
            field("maxclients", String(maxClients))
            field("client_recent_max_input_buffer", "0")
            field("client_recent_max_output_buffer", "0")
            field("blocked_clients", String(engine.blocking.count
                + engine.clientPause.postponedClients.load(ordering: .relaxed)))
            field("tracking_clients", String(engine.tracking.clientCount))
            field("clients_in_timeout_table", "0")
        case "memory":
            out += "# Memory\r\n"
            // Redis's fields in its order, where they mean something here: used_memory is the
            // heap malloc has handed out (what maxmemory bounds), the dataset the keyspace's
            // estimate, the overhead the rest (server.c genRedisInfoString, object.c
            // getMemoryOverheadData).
            let dataset = Int64(engine.keyspace.usedMemoryBytes)
            let memory = engine.processMemory.read(estimate: dataset)
            let used = memory.allocated
            let rss = memory.resident
            func percent(_ part: Int64, _ whole: Int64) -> String {
                fixed2(whole > 0 ? Double(part) * 100 / Double(whole) : 0) + "%"
            }
            field("used_memory", String(used))
            field("used_memory_human", humanBytes(used))
            field("used_memory_rss", String(rss))
            field("used_memory_rss_human", humanBytes(rss))
            field("used_memory_peak", String(memory.peakAllocated))
            field("used_memory_peak_human", humanBytes(memory.peakAllocated))
            field("used_memory_peak_perc", percent(used, memory.peakAllocated))
            field("used_memory_overhead", String(max(0, used - dataset)))
            field("used_memory_startup", String(memory.startupAllocated))
            field("used_memory_dataset", String(dataset))
            field("used_memory_dataset_perc", percent(dataset, max(1, used - memory.startupAllocated)))
            // glibc's malloc: allocated is what it handed out, active what it holds from the
            // kernel (free chunks included); it keeps no resident figure of its own, so
            // resident is active and the rest of the RSS is the process's other memory.
            let held = max(used, heapBytesHeld())
            field("allocator_allocated", String(used))
            field("allocator_active", String(held))
            field("allocator_resident", String(held))
            let physical = Int64(sysconf(Int32(_SC_PHYS_PAGES))) * Int64(sysconf(Int32(_SC_PAGESIZE)))
            field("total_system_memory", String(physical))
            field("total_system_memory_human", humanBytes(physical))
            let lua = Int64(engine.scripting.interpreterBytes)
            let functionsVM = Int64(engine.functions.interpreterBytes)
            let scripts = Int64(engine.scripting.cachedScriptBytes)
            let libraries = engine.functions.libraryFigures
            field("used_memory_lua", String(lua))
            field("used_memory_vm_eval", String(lua))
            field("used_memory_lua_human", humanBytes(lua))
            field("used_memory_scripts_eval", String(scripts))
            field("number_of_cached_scripts", String(engine.scripting.cachedScriptCount))
            field("number_of_functions", String(libraries.functions))
            field("number_of_libraries", String(libraries.libraries))
            field("used_memory_vm_functions", String(functionsVM))
            field("used_memory_vm_total", String(lua + functionsVM))
            field("used_memory_vm_total_human", humanBytes(lua + functionsVM))
            field("used_memory_functions", String(libraries.bytes))
            field("used_memory_scripts", String(scripts + Int64(libraries.bytes)))
            field("used_memory_scripts_human", humanBytes(scripts + Int64(libraries.bytes)))
            field("maxmemory", String(config.integer("maxmemory")))
            field("maxmemory_human", humanBytes(config.integer("maxmemory")))
            field("maxmemory_policy", config.string("maxmemory-policy"))
            func ratio(_ part: Int64, _ whole: Int64) -> String { fixed2(whole > 0 ? Double(part) / Double(whole) : 0) }
            field("allocator_frag_ratio", ratio(held, used))
            field("allocator_frag_bytes", String(held - used))
            field("allocator_rss_ratio", ratio(held, held))
            field("allocator_rss_bytes", "0")
            field("rss_overhead_ratio", ratio(rss, held))
            field("rss_overhead_bytes", String(rss - held))
            field("mem_fragmentation_ratio", fixed2(used > 0 ? Double(rss) / Double(used) : 0))
            field("mem_fragmentation_bytes", String(rss - used))
            // Redis leaves replica output and AOF buffers out of what maxmemory counts
            // (evict.c freeMemoryGetNotCountedMemory); Tally's limit is scaled to the whole
            // heap (CommandEngine.calibrateMemoryLimit), so nothing is left out. Tally keeps no
            // cluster links.
            field("mem_not_counted_for_evict", "0")
            let replicationState = replication.snapshot
            let backlog = replicationState.backlogActive ? Int64(replicationState.backlogCapacity) : 0
            let clientMemory = clients.memoryByKind()
            field("mem_replication_backlog", String(backlog))
            field("mem_total_replication_buffers", String(backlog))
            field("mem_clients_slaves", String(clientMemory.replicas))
            field("mem_clients_normal", String(clientMemory.normal))
            field("mem_cluster_links", "0")
            field("mem_aof_buffer", String(persistence.aofBufferBytes))
            field("mem_allocator", "libc")
            field("active_defrag_running", "0")
            field("lazyfree_pending_objects", String(engine.keyspace.lazyFree.pendingObjects))
            field("lazyfreed_objects", String(engine.keyspace.lazyFree.freedObjects))
        case "persistence":
            out += "# Persistence\r\n"
            persistence.writeInfo(into: &out)
        case "stats":
            out += "# Stats\r\n"
            let rows = engine.commandStatistics()
            let total = rows.reduce(Int64(0)) { $0 + $1.calls }
            let keyspace = engine.keyspace.statistics()
            field("total_connections_received", String(stats.connectionsReceived.load(ordering: .relaxed)))
            field("total_commands_processed", String(total))
            field("instantaneous_ops_per_sec", String(stats.instantaneousOpsPerSecond))
            field("total_net_input_bytes", String(stats.netInputBytes.load(ordering: .relaxed)))
            field("total_net_output_bytes", String(stats.netOutputBytes.load(ordering: .relaxed)))
            field("total_net_repl_input_bytes", String(stats.netReplInputBytes.load(ordering: .relaxed)))
            field("total_net_repl_output_bytes", String(stats.netReplOutputBytes.load(ordering: .relaxed)))
            field("instantaneous_input_kbps", stats.instantaneousKilobytes(.netInput))
            field("instantaneous_output_kbps", stats.instantaneousKilobytes(.netOutput))
            field("instantaneous_input_repl_kbps", stats.instantaneousKilobytes(.netReplInput))
            field("instantaneous_output_repl_kbps", stats.instantaneousKilobytes(.netReplOutput))
            field("rejected_connections", String(stats.rejectedConnections.load(ordering: .relaxed)))
            field("sync_full", String(stats.fullSyncs.load(ordering: .relaxed)))
            field("sync_partial_ok", String(stats.partialSyncsAccepted.load(ordering: .relaxed)))
            field("sync_partial_err", String(stats.partialSyncsRefused.load(ordering: .relaxed)))
            field("expired_keys", String(keyspace.expiredKeys))
            let expiry = engine.expiryStatistics.figures
            field("expired_stale_perc", fixed2(expiry.stalePercent))
            field("expired_time_cap_reached_count", String(expiry.timeCapReached))
            field("expire_cycle_cpu_milliseconds", String(expiry.milliseconds))
            field("evicted_keys", String(engine.keyspace.evictedKeys))
            // maxmemory-clients is accepted without effect: no client is ever evicted. Eviction
            // runs inside the command that needs it until memory is under the limit, never
            // left for later cycles as Redis's time-boxed performEvictions may.
            field("evicted_clients", "0")
            field("total_eviction_exceeded_time", "0")
            field("current_eviction_exceeded_time", "0")
            field("keyspace_hits", String(keyspace.hits))
            field("keyspace_misses", String(keyspace.misses))
            let pubsub = engine.pubsub.counts()
            field("pubsub_channels", String(pubsub.channels))
            field("pubsub_patterns", String(pubsub.patterns))
            field("pubsubshard_channels", String(pubsub.shardChannels))
            // Snapshots are written by a thread of this process, never a forked child.
            field("latest_fork_usec", "0")
            field("total_forks", "0")
            field("migrate_cached_sockets", String(migrateSockets.count))
            // A replica deletes expired keys only on its primary's DEL (no writable-replica keys).
            field("slave_expires_tracked_keys", "0")
            // No active defragmentation (the allocator is glibc's).
            field("active_defrag_hits", "0")
            field("active_defrag_misses", "0")
            field("active_defrag_key_hits", "0")
            field("active_defrag_key_misses", "0")
            field("total_active_defrag_time", "0")
            field("current_active_defrag_time", "0")
            let tracking = engine.tracking.totals()
            field("tracking_total_keys", String(tracking.keys))
            field("tracking_total_items", String(tracking.items))
            field("tracking_total_prefixes", String(tracking.prefixes))
            // Errors sent to a master, replica or the AOF loader: Tally has no replication.
            field("unexpected_error_replies", "0")
            field("total_error_replies", String(engine.errorStatistics.totalErrorReplies))
            // RESTORE checks every payload in full whatever sanitize-dump-payload says, which is
            // not counted as Redis's optional deep sanitization.
            field("dump_payload_sanitizations", "0")
            let reads = stats.readsProcessed.load(ordering: .relaxed)
            let writes = stats.writesProcessed.load(ordering: .relaxed)
            field("total_reads_processed", String(reads))
            field("total_writes_processed", String(writes))
            // Every read and write is an I/O thread's; Redis counts those of its helper threads
            // here, none when io-threads is 1.
            field("io_threaded_reads_processed", threads.count > 1 ? String(reads) : "0")
            field("io_threaded_writes_processed", threads.count > 1 ? String(writes) : "0")
            // Reply buffers are not resized by a cron (networking.c clientsCronResizeOutputBuffer).
            field("reply_buffer_shrinks", "0")
            field("reply_buffer_expands", "0")
        case "replication":
            out += "# Replication\r\n"
            writeReplicationInfo(field)
        case "cpu":
            out += "# CPU\r\n"
            var usage = rusage()
            getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
            func seconds(_ value: timeval) -> String { fixed6(Double(value.tv_sec) + Double(value.tv_usec) / 1e6) }
            field("used_cpu_sys", seconds(usage.ru_stime))
            field("used_cpu_user", seconds(usage.ru_utime))
            field("used_cpu_sys_children", "0.000000")
            field("used_cpu_user_children", "0.000000")
        case "modules":
            out += "# Modules\r\n"
        case "errorstats":
            out += "# Errorstats\r\n"
            for row in engine.errorStatistics.rows() {
                out += "errorstat_" + infoSafe(row.code) + ":count=\(row.count)\r\n"
            }
        case "cluster":
            out += "# Cluster\r\n"
            field("cluster_enabled", "0")
        case "keyspace":
            out += "# Keyspace\r\n"
            for row in engine.keyspace.databaseStatistics() where row.keys > 0 {
                out += "db\(row.database):keys=\(row.keys),expires=\(row.expires)"
                    + ",avg_ttl=\(row.averageTTLMilliseconds)\r\n"
            }
        case "commandstats":
            out += "# Commandstats\r\n"
            for row in engine.commandStatistics() {
                let perCall = row.calls > 0 ? fixed2(Double(row.microseconds) / Double(row.calls)) : "0.00"
                out += "cmdstat_\(row.name):calls=\(row.calls),usec=\(row.microseconds),usec_per_call=\(perCall)"
                    + ",rejected_calls=\(row.rejectedCalls),failed_calls=\(row.failedCalls)\r\n"
            }
        case "latencystats":
            // server.c genRedisInfoStringLatencyStats: nothing while latency-tracking is off.
            out += "# Latencystats\r\n"
            guard engine.latencyTracking.load(ordering: .relaxed) else { break }
            let percentiles = engine.latencyPercentiles.withLock { $0 }
            for (name, histogram) in engine.latencyHistograms() {
                let figures = percentiles.map { percentile in
                    "p" + percentileLabel(percentile) + "="
                        + fixed3(Double(histogram.value(atPercentile: percentile)) / 1000)
                }
                out += "latency_percentiles_usec_\(name):" + figures.joined(separator: ",") + "\r\n"
            }
        default:
            break
        }
    }

    // MARK: CLIENT

    private func client(_ context: inout CommandContext) {
        let count = context.arguments.count
        let session = context.session
        if context.arguments.matches(1, "id") && count == 2 {
            context.output.writeInteger(session.id)
        } else if context.arguments.matches(1, "getname") && count == 2 {
            if let name = session.name { context.output.writeBulkString(name) } else { context.output.writeNull() }
        } else if context.arguments.matches(1, "setname") && count == 3 {
            let name = context.arguments.copy(2)
            // Redis: names are printable ASCII without spaces (so CLIENT LIST stays parseable).
            guard name.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                context.output.writeError(RedisError.invalidClientName)
                return
            }
            session.name = name.isEmpty ? nil : name
            context.output.writeSimpleString("OK")
        } else if context.arguments.matches(1, "setinfo") && count == 4 {
            let value = context.arguments.copy(3)
            guard value.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                let attribute = text(context, 2)
                context.output.writeError(
                    Array("ERR \(attribute) cannot contain spaces, newlines or special characters.".utf8))
                return
            }
            if context.arguments.matches(2, "lib-name") {
                session.libraryName = value
            } else if context.arguments.matches(2, "lib-ver") {
                session.libraryVersion = value
            } else {
                context.output.writeError(Array("ERR Unrecognized option '\(text(context, 2))'".utf8))
                return
            }
            context.output.writeSimpleString("OK")
        } else if context.arguments.matches(1, "info") && count == 2 {
            let line = ownFields(session, arguments: context.arguments).line(nowMilliseconds: context.now)
            context.output.writeVerbatim(Array((line + "\n").utf8))
        } else if context.arguments.matches(1, "list") {
            clientList(&context)
        } else if context.arguments.matches(1, "kill") && count >= 3 {
            clientKill(&context)
        } else if context.arguments.matches(1, "unblock") && (count == 3 || count == 4) {
            clientUnblock(&context)
        } else if context.arguments.matches(1, "pause") && (count == 3 || count == 4) {
            clientPause(&context)
        } else if context.arguments.matches(1, "reply") && count == 3 {
            // OFF and SKIP answer nothing (the engine drops the reply once the mode changed).
            if context.arguments.matches(2, "on") {
                session.replyMode = .on
                context.output.writeSimpleString("OK")
            } else if context.arguments.matches(2, "off") {
                session.replyMode = .off
            } else if context.arguments.matches(2, "skip") {
                if session.replyMode != .off { session.replyMode = .skipArmed }
            } else {
                context.output.writeError(RedisError.syntax)
            }
        } else if context.arguments.matches(1, "no-evict") && count == 3 {
            if context.arguments.matches(2, "on") {
                session.noEvict = true
            } else if context.arguments.matches(2, "off") {
                session.noEvict = false
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            context.output.writeSimpleString("OK")
        } else if context.arguments.matches(1, "tracking") && count >= 3 {
            clientTracking(&context)
        } else if context.arguments.matches(1, "caching") && count >= 3 {
            clientCaching(&context)
        } else if context.arguments.matches(1, "getredir") && count == 2 {
            context.output.writeInteger(session.tracking.map { $0.redirect } ?? -1)
        } else if context.arguments.matches(1, "trackinginfo") && count == 2 {
            clientTrackingInfo(&context)
        } else if context.arguments.matches(1, "unpause") && count == 2 {
            context.engine.clientPause.unpause()
            context.output.writeSimpleString("OK")
        } else if context.arguments.matches(1, "help") && count == 2 {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CACHING (YES|NO)", "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
                "GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
                "GETNAME", "    Return the name of the current connection.",
                "ID", "    Return the ID of the current connection.",
                "INFO", "    Return information about the current client connection.",
                "KILL <ip:port>", "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are:",
                "    * ADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made from the specified address",
                "    * LADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made to specified local address",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Kill connections by type.",
                "    * USER <username>",
                "      Kill connections authenticated by <username>.",
                "    * SKIPME (YES|NO)",
                "      Skip killing current connection (default: yes).",
                "LIST [options ...]",
                "    Return information about client connections. Options:",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Return clients of specified type.",
                "UNPAUSE", "    Stop the current client pause, resuming traffic.",
                "PAUSE <timeout> [WRITE|ALL]",
                "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
                "SETNAME <name>", "    Assign the name <name> to the current connection.",
                "SETINFO <option> <value>", "    Set client library name or version (LIB-NAME, LIB-VER).",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
                "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
                "         [OPTIN] [OPTOUT] [NOLOOP]", "    Control server assisted client side caching.",
                "TRACKINGINFO", "    Report tracking status for the current connection.",
                "NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
                "HELP", "    Prints this help.",
            ]
            context.output.writeArrayHeader(lines.count)
            for line in lines { context.output.writeSimpleString(Array(line.utf8)) }
        } else {
            unknownSubcommand(&context, "CLIENT")
        }
    }

    /// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP]
    /// (networking.c clientCommand): options are parsed first, then checked against each other
    /// and the current mode in Redis's order, so each mistake gets Redis's error.
    private func clientTracking(_ context: inout CommandContext) {
        let arguments = context.arguments
        var redirect: Int64 = 0
        var options: TrackingOptions = []
        var prefixes: [[UInt8]] = []
        var index = 3
        while index < arguments.count {
            let hasMore = index + 1 < arguments.count
            if arguments.matches(index, "redirect") && hasMore {
                index += 1
                if redirect != 0 {
                    return context.output.writeError("ERR A client can only redirect to a single other client")
                }
                guard let id = parseRedisInteger(arguments[index]) else {
                    return context.output.writeError(RedisError.notInteger)
                }
                redirect = id
                // The target must exist now, even if it may go away later (Redis's sanity check).
                if !context.engine.tracking.clientExists(id) {
                    return context.output.writeError("ERR The client ID you want redirect to does not exist")
                }
            } else if arguments.matches(index, "bcast") {
                options.insert(.broadcast)
            } else if arguments.matches(index, "optin") {
                options.insert(.optIn)
            } else if arguments.matches(index, "optout") {
                options.insert(.optOut)
            } else if arguments.matches(index, "noloop") {
                options.insert(.noLoop)
            } else if arguments.matches(index, "prefix") && hasMore {
                index += 1
                prefixes.append(arguments.copy(index))
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 1
        }
        let session = context.session
        if arguments.matches(2, "on") {
            if let error = KeyTracking.enableError(session.tracking, options: options, prefixes: prefixes) {
                return context.output.writeError(error)
            }
            context.engine.tracking.enable(session, options: options, redirect: redirect, prefixes: prefixes)
        } else if arguments.matches(2, "off") {
            context.engine.tracking.disable(session)
        } else {
            return context.output.writeError(RedisError.syntax)
        }
        context.output.writeOK()
    }

    /// CLIENT CACHING YES|NO: the next command (or transaction) is tracked under OPTIN, or not
    /// under OPTOUT.
    private func clientCaching(_ context: inout CommandContext) {
        let session = context.session
        guard let tracking = session.tracking else {
            return context.output.writeError("""
                ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or \
                OPTOUT mode enabled
                """)
        }
        if context.arguments.matches(2, "yes") {
            guard tracking.options.contains(.optIn) else {
                return context.output.writeError(
                    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
            }
        } else if context.arguments.matches(2, "no") {
            guard tracking.options.contains(.optOut) else {
                return context.output.writeError(
                    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
            }
        } else {
            return context.output.writeError(RedisError.syntax)
        }
        context.engine.tracking.setCaching(session)
        context.output.writeOK()
    }

    /// CLIENT TRACKINGINFO: a map of flags (a set), redirect and prefixes, as Redis 7.0 orders them.
    private func clientTrackingInfo(_ context: inout CommandContext) {
        let session = context.session
        let tracking = session.tracking
        var flags = [tracking == nil ? "off" : "on"]
        if let tracking {
            if tracking.options.contains(.broadcast) { flags.append("bcast") }
            if tracking.options.contains(.optIn) {
                flags.append("optin")
                if session.trackingCaching { flags.append("caching-yes") }
            }
            if tracking.options.contains(.optOut) {
                flags.append("optout")
                if session.trackingCaching { flags.append("caching-no") }
            }
            if tracking.options.contains(.noLoop) { flags.append("noloop") }
            if session.mailbox?.isTrackingRedirectBroken == true { flags.append("broken_redirect") }
        }
        context.output.writeMapHeader(3)
        context.output.writeBulkString("flags".utf8)
        context.output.writeSetHeader(flags.count)
        for flag in flags { context.output.writeBulkString(flag.utf8) }
        context.output.writeBulkString("redirect".utf8)
        context.output.writeInteger(tracking?.redirect ?? -1)
        context.output.writeBulkString("prefixes".utf8)
        let prefixes = tracking?.prefixes ?? []
        context.output.writeArrayHeader(prefixes.count)
        for prefix in prefixes { context.output.writeBulkString(prefix) }
    }

    /// CLIENT PAUSE timeout-ms [WRITE|ALL] (networking.c): holds back every command, or only
    /// writes and may-replicate ones, until the deadline or CLIENT UNPAUSE. A pause set inside
    /// EXEC takes effect after the transaction, whose later commands still run.
    private func clientPause(_ context: inout CommandContext) {
        var kind = ClientPauseKind.all
        if context.arguments.count == 4 {
            if context.arguments.matches(3, "write") {
                kind = .write
            } else if !context.arguments.matches(3, "all") {
                context.output.writeError("ERR CLIENT PAUSE mode must be WRITE or ALL")
                return
            }
        }
        guard let milliseconds = parseRedisInteger(context.arguments[2]) else {
            context.output.writeError("ERR timeout is not an integer or out of range")
            return
        }
        if milliseconds < 0 {
            context.output.writeError("ERR timeout is negative")
            return
        }
        let until = milliseconds > 0 ? context.now &+ milliseconds : 0
        context.engine.clientPause.pause(kind, untilMilliseconds: until, now: context.now)
        context.output.writeSimpleString("OK")
    }

    /// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking pop with its timeout
    /// reply or an UNBLOCKED error (networking.c); 1 if that client was blocked, else 0.
    private func clientUnblock(_ context: inout CommandContext) {
        var asError = false
        if context.arguments.count == 4 {
            if context.arguments.matches(3, "error") {
                asError = true
            } else if !context.arguments.matches(3, "timeout") {
                context.output.writeError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
                return
            }
        }
        guard let id = parseRedisInteger(context.arguments[2]) else {
            context.output.writeError(RedisError.notInteger)
            return
        }
        let registry = context.engine.blocking
        guard let waiter = registry.waiter(clientID: id), registry.cancel(waiter) else {
            context.output.writeInteger(0)
            return
        }
        var reply = OutputBuffer(initialCapacity: 64, protocolVersion: waiter.protocolVersion)
        if asError {
            reply.writeError("UNBLOCKED client unblocked via CLIENT UNBLOCK")
        } else {
            waiter.writeTimeoutReply(into: &reply)
        }
        waiter.publish(Array(reply.storage), logOffset: 0)
        context.output.writeInteger(1)
    }

    /// The caller's own line, built from its live session (its published record lags a batch).
    private func ownFields(_ session: ClientSession, arguments: CommandArguments) -> ClientFields {
        // The running command is still in Redis's query buffer while it executes (qbuf=26 for
        // CLIENT LIST sent as a multibulk), and it is the client's last command (cmd=client|list).
        var commandBytes = 3 + String(arguments.count).utf8.count
        for index in 0..<arguments.count {
            commandBytes += 5 + String(arguments[index].count).utf8.count + arguments[index].count
        }
        let subcommand = arguments.count >= 2 ? "|" + String(decoding: arguments[1], as: UTF8.self).lowercased() : ""
        var fields = ClientFields(
            id: session.id, address: session.peerAddress, localAddress: session.localAddress,
            descriptor: session.descriptor, name: session.name, createdAtMilliseconds: session.createdAtMilliseconds,
            lastInteractionMilliseconds: session.lastInteractionMilliseconds, database: session.database,
            inMulti: session.transaction.isActive ? session.transaction.queued.count : -1,
            queryBufferBytes: commandBytes, outputBufferBytes: 0, lastCommand: "client" + subcommand,
            protocolVersion: session.protocolVersion.rawValue,
            waitingToWrite: false)
        (fields.channels, fields.patterns, fields.shardChannels) = session.subscriptionCounts
        fields.noEvict = session.noEvict
        fields.tracking = session.tracking != nil
        fields.trackingBroken = session.mailbox?.isTrackingRedirectBroken ?? false
        fields.trackingBroadcast = session.tracking?.options.contains(.broadcast) ?? false
        fields.trackingRedirect = session.tracking?.redirect ?? 0
        return fields
    }

    private func clientList(_ context: inout CommandContext) {
        var filter: Set<Int64>?
        if context.arguments.count > 2 {
            if context.arguments.matches(2, "id") && context.arguments.count >= 4 {
                var ids = Set<Int64>()
                for index in 3..<context.arguments.count {
                    guard let id = parseRedisInteger(context.arguments[index]), id > 0 else {
                        context.output.writeError("ERR Invalid client ID")
                        return
                    }
                    ids.insert(id)
                }
                filter = ids
            } else if context.arguments.matches(2, "type") && context.arguments.count == 4 {
                let kind = text(context, 3).lowercased()
                guard ["normal", "master", "replica", "slave", "pubsub"].contains(kind) else {
                    context.output.writeError(Array("ERR Unknown client type '\(text(context, 3))'".utf8))
                    return
                }
                // networking.c getClientType: the master link, replicas, subscribers, the rest.
                let wanted = kind == "replica" ? "slave" : kind
                var ids = Set<Int64>()
                for record in clients.all() {
                    let type = record.id == context.session.id
                        ? ownFields(context.session, arguments: context.arguments).clientType
                        : record.fields.withLock { $0.clientType }
                    if type == wanted { ids.insert(record.id) }
                }
                filter = ids
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
        }
        var body = ""
        for record in clients.all() where filter?.contains(record.id) ?? true {
            let fields = record.id == context.session.id
                ? ownFields(context.session, arguments: context.arguments) : record.fields.withLock { $0 }
            body += fields.line(nowMilliseconds: context.now) + "\n"
        }
        context.output.writeVerbatim(Array(body.utf8))
    }

    private func clientKill(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.count == 3 {
            // Old form: CLIENT KILL addr:port, replies +OK or an error.
            let address = text(context, 2)
            guard let record = clients.all().first(where: { $0.fields.withLock { $0.address } == address }) else {
                context.output.writeError("ERR No such client")
                return
            }
            if record.id == context.session.id { context.session.closeAfterReply = true } else { kill(record) }
            context.output.writeSimpleString("OK")
            return
        }
        guard arguments.count % 2 == 0 else {
            context.output.writeError(RedisError.syntax)
            return
        }
        var id: Int64?
        var address: String?
        var localAddress: String?
        var skipMe = true
        var type: String?
        var index = 2
        while index < arguments.count {
            let value = text(context, index + 1)
            if arguments.matches(index, "id") {
                guard let parsed = parseRedisInteger(arguments[index + 1]), parsed > 0 else {
                    context.output.writeError("ERR client-id should be greater than 0")
                    return
                }
                id = parsed
            } else if arguments.matches(index, "addr") {
                address = value
            } else if arguments.matches(index, "laddr") {
                localAddress = value
            } else if arguments.matches(index, "skipme") {
                switch value.lowercased() {
                case "yes": skipMe = true
                case "no": skipMe = false
                default:
                    context.output.writeError(RedisError.syntax)
                    return
                }
            } else if arguments.matches(index, "type") {
                let lowered = value.lowercased()
                guard ["normal", "master", "replica", "slave", "pubsub"].contains(lowered) else {
                    context.output.writeError(Array("ERR Unknown client type '\(value)'".utf8))
                    return
                }
                type = lowered == "replica" ? "slave" : lowered
            } else if arguments.matches(index, "user") {
                // The only user is "default" (names are case-sensitive, as ACLGetUserByName's).
                guard value == "default" else {
                    context.output.writeError(Array("ERR No such user '\(value)'".utf8))
                    return
                }
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 2
        }
        var killed = 0
        for record in clients.all() {
            let fields = record.fields.withLock { $0 }
            if let id, record.id != id { continue }
            if let address, fields.address != address { continue }
            if let localAddress, fields.localAddress != localAddress { continue }
            if let type {
                let own = record.id == context.session.id
                    ? ownFields(context.session, arguments: context.arguments) : fields
                if own.clientType != type { continue }
            }
            if record.id == context.session.id {
                if skipMe { continue }
                // The caller is closed once this reply is written (networking.c clientKillCommand
                // sets CLIENT_CLOSE_AFTER_REPLY on the current client), before it can read more.
                context.session.closeAfterReply = true
            } else {
                kill(record)
            }
            killed += 1
        }
        context.output.writeInteger(killed)
    }

    private func kill(_ record: ClientRecord) {
        record.killRequested.store(true, ordering: .relaxed)
        // A replica is served by its own thread, not by the I/O thread that accepted it.
        if replication.kill(clientID: record.id) { return }
        // The link to our primary (CLIENT KILL TYPE master): it reconnects and PSYNCs.
        if let link = replica.link, link.dropConnection(clientID: record.id) { return }
        let threads = threads
        if record.ownerThread < threads.count { threads[record.ownerThread].requestKillCheck() }
    }

    // MARK: CONFIG

    private func config(_ context: inout CommandContext) {
        let count = context.arguments.count
        if context.arguments.matches(1, "get") {
            guard count >= 3 else { return wrongArity(&context, "config|get") }
            let current = configuration.withLock { $0 }
            var matched: [String] = []
            for option in ConfigTable.options {
                for index in 2..<count
                where globMatches(context.arguments[index], option.name.utf8, caseInsensitive: true) {
                    matched.append(option.name)
                    break
                }
            }
            context.output.writeMapHeader(matched.count)
            for name in matched {
                context.output.writeBulkString(name.utf8)
                context.output.writeBulkString(current.rendered(name).utf8)
            }
        } else if context.arguments.matches(1, "set") {
            guard count >= 4 && count % 2 == 0 else { return wrongArity(&context, "config|set") }
            configSet(&context)
        } else if context.arguments.matches(1, "resetstat") {
            guard count == 2 else { return wrongArity(&context, "config|resetstat") }
            stats.reset()
            context.engine.resetStatistics()
            context.keyspace.lazyFree.resetStatistics()
            context.output.writeSimpleString("OK")
        } else if context.arguments.matches(1, "rewrite") {
            guard count == 2 else { return wrongArity(&context, "config|rewrite") }
            // `replicaof` holds "host port" while this server is a replica ("" on a primary).
            let primary = configuration.withLock { $0.string("replicaof") }
            if let error = rewriteConfigFile(replicaOf: primary.isEmpty ? nil : primary) {
                context.output.writeError(Array(error.utf8))
            } else {
                context.output.writeSimpleString("OK")
            }
        } else if context.arguments.matches(1, "help") && count == 2 {
            // networking.c addReplyHelp's wording, HELP last.
            let lines = [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>", "    Set the configuration <directive> to <value>.",
                "RESETSTAT", "    Reset statistics reported by the INFO command.",
                "REWRITE", "    Rewrite the configuration file.",
                "HELP", "    Prints this help.",
            ]
            context.output.writeArrayHeader(lines.count)
            for line in lines { context.output.writeSimpleString(Array(line.utf8)) }
        } else {
            unknownSubcommand(&context, "CONFIG")
        }
    }

    /// Listens on a new `port` or `bind` set by CONFIG SET before anything else is applied, so
    /// a port in use fails the whole command and changes nothing (config.c's apply rollback).
    /// Returns Redis's failure (the option and the reason), or nil.
    private func applyListenerChange(_ pairs: [(ConfigOption, String)]) -> (option: String, reason: String)? {
        let config = configuration.withLock { $0 }
        var port = config.port
        var bind = config.string("bind")
        for (option, value) in pairs {
            if option.name == "port" { port = Int(value) ?? port }
            if option.name == "bind" { bind = value }
        }
        guard port != config.port || bind != config.string("bind") else { return nil }
        guard listen(port: port, bind: bind, backlog: config.integer("tcp-backlog")) else {
            return port != config.port
                ? ("port", "Unable to listen on this port. Check server logs.")
                : ("bind", "Failed to bind to specified addresses.")
        }
        return nil
    }

    /// Replaces the TCP listeners with ones on `port` at the addresses of `bind`.
    private func listen(port: Int, bind: String, backlog: Int64) -> Bool {
        guard let thread = threads.first else { return false }
        do {
            try tcpListeners.replace(port: port, bindAddresses: bind.split(separator: " ").map(String.init),
                                     backlog: Int32(clamping: backlog), log: log, thread: thread)
        } catch {
            return false
        }
        boundPort.store(port, ordering: .relaxed)
        return true
    }

    /// CONFIG SET name value [name value ...]: all pairs are validated first, then applied
    /// together, so a bad pair changes nothing (as in Redis 7).
    private func configSet(_ context: inout CommandContext) {
        var pairs: [(ConfigOption, String)] = []
        var seen = Set<String>()
        var index = 2
        while index < context.arguments.count {
            let name = text(context, index).lowercased()
            let value = text(context, index + 1)
            guard let option = ConfigTable.option(named: name) else {
                context.output.writeError(
                    Array("ERR Unknown option or number of arguments for CONFIG SET - '\(name)'".utf8))
                return
            }
            func fail(_ reason: String) {
                context.output.writeError(
                    Array("ERR CONFIG SET failed (possibly related to argument '\(name)') - \(reason)".utf8))
            }
            guard !seen.contains(option.name) else { return fail("duplicate parameter") }
            seen.insert(option.name)
            guard option.isMutable else { return fail("can't set immutable config") }
            switch option.normalize([value]) {
            case .success(let normalized): pairs.append((option, normalized))
            case .failure(let error): return fail(error.message)
            }
            index += 2
        }
        if let failure = applyListenerChange(pairs) {
            let text = "ERR CONFIG SET failed (possibly related to argument '\(failure.option)') - \(failure.reason)"
            context.output.writeError(Array(text.utf8))
            return
        }
        for (option, value) in pairs {
            if let refusal = persistence.configurationChanged(option.name, value: value) {
                context.output.writeError(
                    Array("ERR CONFIG SET failed (possibly related to argument '\(option.name)') - \(refusal)".utf8))
                // Nothing of the command stays: listen where we did before it.
                let before = configuration.withLock { $0 }
                if before.port != boundPort.load(ordering: .relaxed) || pairs.contains(where: { $0.0.name == "bind" }) {
                    _ = listen(port: before.port, bind: before.string("bind"), backlog: before.integer("tcp-backlog"))
                }
                return
            }
        }
        // Redis 7.0's zset-max-ziplist-*, hash-max-ziplist-* and list-max-ziplist-size are aliases
        // of the listpack names: set both spellings.
        let aliases = ["zset-max-ziplist-entries": "zset-max-listpack-entries",
                       "zset-max-listpack-entries": "zset-max-ziplist-entries",
                       "zset-max-ziplist-value": "zset-max-listpack-value",
                       "zset-max-listpack-value": "zset-max-ziplist-value",
                       "list-max-ziplist-size": "list-max-listpack-size",
                       "list-max-listpack-size": "list-max-ziplist-size",
                       "hash-max-ziplist-entries": "hash-max-listpack-entries",
                       "hash-max-listpack-entries": "hash-max-ziplist-entries",
                       "hash-max-ziplist-value": "hash-max-listpack-value",
                       "hash-max-listpack-value": "hash-max-ziplist-value"]
        let updated = configuration.withLock { config -> ServerConfiguration in
            for (option, value) in pairs {
                try? config.set(option.name, [value])
                if let alias = aliases[option.name] { try? config.set(alias, [value]) }
            }
            return config
        }
        if seen.contains("requirepass") {
            context.engine.setRequirePass(Array(updated.string("requirepass").utf8))
        }
        let evictionOptions = ["maxmemory", "maxmemory-policy", "maxmemory-samples", "lfu-log-factor", "lfu-decay-time"]
        if evictionOptions.contains(where: seen.contains) {
            applyMemoryLimit(from: updated, to: context.engine)
        }
        if seen.contains("lazyfree-lazy-user-del") || seen.contains("lazyfree-lazy-user-flush") {
            context.engine.setLazyFree(userDel: updated.bool("lazyfree-lazy-user-del"),
                                       userFlush: updated.bool("lazyfree-lazy-user-flush"))
        }
        if seen.contains("hll-sparse-max-bytes") {
            context.engine.setHyperLogLogSparseMaxBytes(Int(clamping: updated.integer("hll-sparse-max-bytes")))
        }
        if seen.contains("slowlog-log-slower-than") || seen.contains("slowlog-max-len") {
            applySlowLogSettings(from: updated, to: context.engine)
        }
        if seen.contains("tracking-table-max-keys") {
            context.engine.tracking.setMaxKeys(Int(clamping: updated.integer("tracking-table-max-keys")))
        }
        if seen.contains("busy-reply-threshold") || seen.contains("lua-time-limit") {
            context.engine.scriptWatch.setThreshold(
                milliseconds: Int(clamping: updated.integer("busy-reply-threshold")))
        }
        if seen.contains("latency-monitor-threshold") {
            context.engine.latencyMonitor.configure(
                thresholdMilliseconds: updated.integer("latency-monitor-threshold"))
        }
        if seen.contains("latency-tracking") || seen.contains("latency-tracking-info-percentiles") {
            applyLatencyTracking(from: updated, to: context.engine)
        }
        if seen.contains("set-max-intset-entries") {
            context.engine.setSetMaxIntsetEntries(Int(clamping: updated.integer("set-max-intset-entries")))
        }
        if aliases.keys.contains(where: { $0.hasPrefix("zset-") && seen.contains($0) }) {
            context.engine.setSortedSetLimits(updated.sortedSetLimits)
        }
        if aliases.keys.contains(where: { $0.hasPrefix("hash-") && seen.contains($0) }) {
            context.engine.setHashLimits(updated.hashLimits)
        }
        if seen.contains("list-max-listpack-size") || seen.contains("list-max-ziplist-size") {
            context.engine.setListFill(updated.listFill)
        }
        if seen.contains("stream-node-max-bytes") || seen.contains("stream-node-max-entries") {
            applyStreamNodeLimits(from: updated)
        }
        refreshKnobs(from: updated)
        if seen.contains(where: { $0.hasPrefix("replica-") || $0.hasPrefix("slave-") }) { applyReplicaRole() }
        context.engine.pubsub.setMailboxLimit(bytes: pubsubOutputLimits.hardBytes.load(ordering: .relaxed))
        if seen.contains("notify-keyspace-events") {
            // Applied from the argument as given: the canonical text CONFIG GET answers drops
            // `n` beside `A`, as Redis prints it, but the class stays enabled.
            var letters = updated.string("notify-keyspace-events")
            for index in stride(from: 2, to: context.arguments.count - 1, by: 2)
            where text(context, index).lowercased() == "notify-keyspace-events" {
                letters = text(context, index + 1)
            }
            context.engine.setKeyspaceEventClasses(KeyspaceEventClass(letters: letters) ?? [])
        }
        context.output.writeSimpleString("OK")
    }

    /// `stream-node-max-bytes` and `stream-node-max-entries` into the stream node limits.
    func applyStreamNodeLimits(from configuration: ServerConfiguration) {
        StreamValue.nodeMaxBytes = Int(clamping: configuration.integer("stream-node-max-bytes"))
        StreamValue.nodeMaxEntries = Int(clamping: configuration.integer("stream-node-max-entries"))
    }

    /// `slowlog-log-slower-than` and `slowlog-max-len` into the engine's slow log.
    func applyLatencyTracking(from configuration: ServerConfiguration, to engine: CommandEngine) {
        engine.latencyTracking.store(configuration.string("latency-tracking") == "yes", ordering: .relaxed)
        let percentiles = configuration.string("latency-tracking-info-percentiles").split(separator: " ")
            .compactMap { parsePercentile(String($0)) }
        engine.latencyPercentiles.withLock { $0 = percentiles }
    }

    func applySlowLogSettings(from configuration: ServerConfiguration, to engine: CommandEngine) {
        engine.slowLog.configure(slowerThanMicroseconds: configuration.integer("slowlog-log-slower-than"),
                                 maxLength: Int(clamping: configuration.integer("slowlog-max-len")))
    }

    // MARK: SHUTDOWN

    private func shutdownCommand(_ context: inout CommandContext) {
        var mode = ShutdownSaveMode.configured
        for index in 1..<context.arguments.count {
            if context.arguments.matches(index, "nosave") {
                mode = .noSave
            } else if context.arguments.matches(index, "save") {
                mode = .save
            } else if context.arguments.matches(index, "now") || context.arguments.matches(index, "force") {
                continue
            } else if context.arguments.matches(index, "abort") && context.arguments.count == 2 {
                context.output.writeError("ERR No shutdown in progress.")
                return
            } else {
                context.output.writeError(RedisError.syntax)
                return
            }
        }
        if !shutdown(engine: context.engine, mode: mode) {
            context.output.writeError("ERR Errors trying to SHUTDOWN. Check logs.")
        }
    }
}

/// Tally's own version (INFO `tally_version`).
let tallyVersion = "0.1.0"

private func cText(_ raw: UnsafeRawBufferPointer) -> String {
    let end = raw.firstIndex(of: 0) ?? raw.count
    return String(decoding: raw[..<end], as: UTF8.self)
}

/// Resident set size from /proc/self/statm (pages × page size).
func residentSetBytes() -> Int64 {
    guard let text = readWholeFile("/proc/self/statm") else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int64(fields[1]) else { return 0 }
    return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
}

private func executablePath() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return "" }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A name as INFO prints it: `#`, `:`, CR and LF become `_` (server.c getSafeInfoString).
func infoSafe(_ bytes: [UInt8]) -> String {
    let unsafe: [UInt8] = [UInt8(ascii: "#"), UInt8(ascii: ":"), 10, 13]
    return String(decoding: bytes.map { unsafe.contains($0) ? UInt8(ascii: "_") : $0 }, as: UTF8.self)
}
