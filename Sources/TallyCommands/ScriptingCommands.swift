// ScriptingCommands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, and the redis.* API scripts call.
import CLua
import TallyKeyspace
import TallyProtocol

/// The scripting family (Redis 7.0's eval.c and script_lua.c semantics, written for Tally).
///
/// Atomicity: EVAL rows carry `.runsExclusive`, so dispatch takes every shard before the handler
/// (as EXEC does); the script's commands run through `CommandEngine.run(insideExec: true)`, so
/// blocking commands do not block and the log gets one MULTI ... EXEC batch. Undeclared keys
/// (not in KEYS) work as on a standalone Redis: every shard is held anyway.
enum ScriptingCommands {
    /// The flags a script run counts with (server.c evalGetCommandFlags, fcallGetCommandFlags):
    /// a script or function that declares `no-writes` neither writes nor replicates, so a WRITE
    /// client pause lets it run. Only asked while a pause is set.
    static func declaredFlags(_ flags: CommandFlags, _ arguments: CommandArguments,
                              engine: CommandEngine) -> CommandFlags {
        guard flags.contains(.runsExclusive), arguments.count > 1 else { return flags }
        var declared: ScriptFlags?
        if arguments.matches(0, "eval") || arguments.matches(0, "eval_ro") {
            if case .success(let (scriptFlags, _)) = ScriptingRuntime.shebang(Array(arguments[1])) {
                declared = scriptFlags
            }
        } else if arguments.matches(0, "evalsha") || arguments.matches(0, "evalsha_ro") {
            let sha = Array(arguments[1]).map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }
            let runtime = engine.scripting
            runtime.lock.lock()
            declared = runtime.scripts[ScriptDigest(sha)]?.flags
            runtime.lock.unlock()
        } else if arguments.matches(0, "fcall") || arguments.matches(0, "fcall_ro") {
            let runtime = engine.functions
            let folded = FunctionCommands.foldCase(Array(arguments[1]))
            runtime.lock.lock()
            declared = runtime.libraries.lazy.flatMap { $0.functions }
                .first { FunctionCommands.foldCase($0.name) == folded }?.flags
            runtime.lock.unlock()
        }
        guard let declared, declared.contains(.noWrites) else { return flags }
        return flags.subtracting([.write, .mayReplicate])
    }

    /// EVAL_RO, EVALSHA_RO, FCALL_RO: read-only, and never replicated (no may_replicate).
    static let readOnlyFlags: CommandFlags = evalFlags.subtracting(.mayReplicate).union(.readonly)

    static let evalFlags: CommandFlags = [
        .noScript, .stale, .skipMonitor, .mayReplicate, .noMandatoryKeys, .movableKeys, .runsExclusive,
    ]

    static var specs: [CommandSpec] {
        let scripting = "@slow @scripting"
        return [
            command("eval", -3, evalFlags, scripting) { eval(&$0, bySHA: false, readOnly: false) },
            command("evalsha", -3, evalFlags, scripting) { eval(&$0, bySHA: true, readOnly: false) },
            command("eval_ro", -3, readOnlyFlags, scripting) { eval(&$0, bySHA: false, readOnly: true) },
            command("evalsha_ro", -3, readOnlyFlags, scripting) {
                eval(&$0, bySHA: true, readOnly: true)
            },
            CommandSpec(
                name: "script", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    subcommand("script|debug", 3, [.noScript]),
                    subcommand("script|exists", -3, [.noScript]),
                    subcommand("script|flush", -2, [.noScript]),
                    subcommand("script|help", 2, [.loading, .stale]),
                    subcommand("script|kill", 2, [.noScript, .allowBusy]),
                    subcommand("script|load", 3, [.noScript, .stale]),
                ],
                handler: script),
        ]
    }

    private static func subcommand(_ name: String, _ arity: Int, _ flags: CommandFlags) -> CommandSpec {
        CommandSpec(name: name, arity: arity, flags: flags, categories: ["@slow", "@scripting"]) { _ in }
    }

    static let noScript: StaticString = "NOSCRIPT No matching script. Please use EVAL."

    // MARK: EVAL

    /// EVAL/EVALSHA/EVAL_RO/EVALSHA_RO script numkeys key... arg...
    static func eval(_ context: inout CommandContext, bySHA: Bool, readOnly: Bool) {
        guard let keyCount = context.integerArgument(2) else { return }
        let argumentCount = context.arguments.count
        if keyCount > Int64(argumentCount - 3) {
            context.output.writeError("ERR Number of keys can't be greater than number of args")
            return
        }
        if keyCount < 0 {
            context.output.writeError("ERR Number of keys can't be negative")
            return
        }
        let engine = context.engine
        let runtime = engine.scripting
        if bySHA && context.arguments[1].count != 40 {
            context.output.writeError(noScript)
            return
        }
        runtime.lock.lock()
        defer { runtime.lock.unlock() }
        let sha: [UInt8]
        let flags: ScriptFlags
        if bySHA {
            guard let named = context.arguments.withUnsafeBytes(of: 1, runtime.script(namedBy:)) else {
                context.output.writeError(noScript)
                return
            }
            (sha, flags) = named
        } else {
            sha = runtime.digest(ofEvalBody: context.arguments[1])
            if let cached = runtime.scripts[ScriptDigest(sha)] {
                flags = cached.flags
            } else {
                switch runtime.load(Array(context.arguments[1]), sha: sha) {
                case .failure(let error):
                    context.output.writeError(error.message)
                    return
                case .success(let loaded): flags = loaded
                }
            }
        }
        guard let run = prepareRun(&context, runtime: runtime, name: sha, flags: flags, readOnly: readOnly) else {
            return
        }
        let lua = runtime.lua
        let registry = tally_lua_registry_index()
        lua_rawgeti(lua, registry, runtime.errorHandler)
        // The compiled function is registry["f_<sha>"]; the name is built on the stack.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: sha.count + 3) { name in
            name[0] = CChar(UInt8(ascii: "f"))
            name[1] = CChar(UInt8(ascii: "_"))
            for (index, digit) in sha.enumerated() { name[index + 2] = CChar(bitPattern: digit) }
            name[sha.count + 2] = 0
            lua_getfield(lua, registry, name.baseAddress!)
        }
        lua_rawgeti(lua, registry, runtime.realGlobals)
        let keyEnd = 3 + Int(keyCount)
        pushArray(lua, context.arguments, 3..<keyEnd)
        lua_setfield(lua, -2, "KEYS")
        pushArray(lua, context.arguments, keyEnd..<argumentCount)
        lua_setfield(lua, -2, "ARGV")
        tally_lua_pop(lua, 1)
        call(&context, runtime: runtime, run: run, argumentCount: 0)
    }

    /// The checks Redis's scriptPrepareForRun makes before a script or function starts, in its
    /// order (shebang or function flags against a stale replica, a read-only replica, MISCONF,
    /// EVAL_RO/FCALL_RO, min-replicas-to-write, OOM); nil after writing a refusal.
    static func prepareRun(_ context: inout CommandContext, runtime: ScriptingRuntime, name: [UInt8],
                           flags: ScriptFlags, readOnly: Bool) -> ScriptRun? {
        let engine = context.engine
        let compatible = flags.contains(.compatibility)
        let overLimit = engine.isOverMemoryLimit
        if !compatible {
            let role = engine.replicaRoleFlags
            let obeyed = context.session.isReplicationPrimaryLink
            if role.contains(.deniesStaleData) && !flags.contains(.allowStale) {
                context.output.writeError(
                    """
                    MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' \
                    and 'allow-stale' flag is not set on the script.
                    """)
                return nil
            }
            if !flags.contains(.noWrites) {
                if role.contains(.replica) && role.contains(.readOnly) && !obeyed {
                    context.output.writeError("READONLY Can not run script with write flag on readonly replica")
                    return nil
                }
                if !obeyed, let refusal = engine.attachedLog?.writeRefusal() {
                    context.output.writeError(refusal)
                    return nil
                }
                if readOnly {
                    context.output.writeError("ERR Can not execute a script with write flag using *_ro command.")
                    return nil
                }
                if engine.lacksGoodReplicasForWrites && !role.contains(.replica) {
                    context.output.writeError("NOREPLICAS Not enough good replicas to write.")
                    return nil
                }
            }
            if overLimit && flags.isDisjoint(with: [.allowOOM, .noWrites]) {
                context.output.writeError(
                    "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'")
                return nil
            }
        }
        let run = ScriptRun(
            engine: engine, session: context.session, sha: name,
            readOnly: readOnly || (!compatible && flags.contains(.noWrites)),
            allowOOM: !compatible && flags.contains(.allowOOM), overMemoryLimitAtStart: overLimit)
        if context.session.tracking != nil {
            let arguments = context.arguments
            let slices = (0..<arguments.count).map { arguments[$0] }
            run.trackedKeys = CommandKeys.positions(context.spec, slices)?.map { Array(slices[$0]) } ?? []
        }
        return run
    }

    /// Calls the function below the error handler on the Lua stack (with `argumentCount`
    /// arguments above it), writes its result or error as the reply and logs its effects.
    static func call(_ context: inout CommandContext, runtime: ScriptingRuntime, run: ScriptRun,
                     argumentCount: Int32) {
        let lua = runtime.lua
        let session = context.session
        let callerDatabase = session.database
        let watch = context.engine.scriptWatch
        // The count hook (busy-reply-threshold, SCRIPT KILL) only when a threshold is set, as Redis.
        let hooked = watch.thresholdMilliseconds > 0
        if hooked { tally_lua_arm_hook(lua, 100_000) }
        // FUNCTION STATS shows a running function's command line; scripts need no copy of it.
        let command = runtime.forFunctions
            ? (0..<context.arguments.count).map { Array(context.arguments[$0]) } : []
        watch.begin(name: run.sha, command: command, isEval: !runtime.forFunctions)
        runtime.current = run
        let status = lua_pcall(lua, argumentCount, 1, -2 - argumentCount)
        runtime.current = nil
        runtime.callContext = nil
        watch.end()
        if hooked { tally_lua_disarm_hook(lua) }
        session.database = callerDatabase
        runtime.callsSinceCollection += 1
        if runtime.callsSinceCollection == 50 {
            // A small incremental step every 50 scripts, as Redis does, instead of full cycles.
            lua_gc(lua, LUA_GCSTEP, 50)
            runtime.callsSinceCollection = 0
        }
        if status != 0 {
            context.output.writeError(failureMessage(lua, sha: run.sha),
                                      countsInStatistics: !errorStatisticsIgnored(lua, table: -1))
            tally_lua_pop(lua, 1)
        } else {
            writeLuaValue(lua, into: &context.output, scriptProtocol: run.resp)
        }
        tally_lua_pop(lua, 1)  // the error handler
        closePropagation(&context)
    }

    /// Pushes arguments `range` as a Lua array.
    static func pushArray(_ lua: LuaState, _ arguments: CommandArguments, _ range: Range<Int>) {
        lua_createtable(lua, Int32(range.count), 0)
        var position: Int32 = 1
        for index in range {
            luaPush(lua, arguments[index])
            lua_rawseti(lua, -2, position)
            position += 1
        }
    }

    /// The error reply for a script that raised an error: the error table's `err`, followed by
    /// ` script: <sha>, on <source>:<line>.` when the handler located it.
    private static func failureMessage(_ lua: LuaState, sha: [UInt8]) -> [UInt8] {
        guard lua_type(lua, -1) == LUA_TTABLE else {
            var message = Array("ERR Error running script ".utf8) + sha + Array(", ".utf8)
            message += (luaString(lua, -1) ?? Array("execution failure".utf8)).prefix(100)
            return message
        }
        var message = field(lua, "err") ?? []
        if let source = field(lua, "source"), let line = field(lua, "line") {
            message += Array(" script: ".utf8) + sha + Array(", on ".utf8) + source + [UInt8(ascii: ":")] + line
            message.append(UInt8(ascii: "."))
        }
        return message.map { $0 == 13 || $0 == 10 ? 32 : $0 }
    }

    /// True when the error table at `index` carries `ignore_error_stats_update`: the error came
    /// from a command the script called (or refused to call) and was counted then
    /// (script_lua.c luaExtractErrorInformation).
    static func errorStatisticsIgnored(_ lua: LuaState, table index: Int32) -> Bool {
        guard lua_type(lua, index) == LUA_TTABLE else { return false }
        lua_getfield(lua, index, "ignore_error_stats_update")
        defer { tally_lua_pop(lua, 1) }
        return lua_type(lua, -1) == LUA_TBOOLEAN && lua_toboolean(lua, -1) != 0
    }

    /// The string (or number) field `name` of the table on top of the stack.
    private static func field(_ lua: LuaState, _ name: String) -> [UInt8]? {
        lua_getfield(lua, -1, name)
        defer { tally_lua_pop(lua, 1) }
        let type = lua_type(lua, -1)
        guard type == LUA_TSTRING || type == LUA_TNUMBER else { return nil }
        return luaString(lua, -1)
    }

    /// Effects replication as Redis 7.0: the commands a script ran are logged, wrapped in MULTI/EXEC
    /// when there is more than one; never the script. Inside EXEC the transaction's own wrapper
    /// covers them.
    private static func closePropagation(_ context: inout CommandContext) {
        if context.insideExec { return }
        let session = context.session
        let count = session.propagation.records.count
        if count <= 1 {
            session.propagation.removeAll()
        } else if count == 2 {
            session.propagation.removeFirstRecord()
        } else {
            session.propagation.append(database: session.database, [Words.exec])
        }
    }

    // MARK: Lua → RESP

    /// Writes the value on top of the Lua stack as the reply (and pops it), by Redis's rules:
    /// strings as bulk strings, numbers truncated to integers, booleans as 1/nil (RESP2 scripts)
    /// or booleans, tables as `err`/`ok`/`double`/`big_number`/`verbatim_string`/`map`/`set`
    /// or as arrays up to the first nil, anything else as null.
    static func writeLuaValue(_ lua: LuaState, into output: inout OutputBuffer, scriptProtocol: RESPVersion) {
        defer { tally_lua_pop(lua, 1) }
        if lua_checkstack(lua, 4) == 0 {
            output.writeError("ERR reached lua stack limit")
            return
        }
        switch lua_type(lua, -1) {
        case LUA_TSTRING:
            output.writeBulkString(luaString(lua, -1) ?? [])
        case LUA_TBOOLEAN:
            let value = lua_toboolean(lua, -1) != 0
            if scriptProtocol == .resp2 {
                if value { output.writeInteger(1) } else { output.writeNull() }
            } else {
                output.writeBoolean(value)
            }
        case LUA_TNUMBER:
            output.writeInteger(Int64(tally_lua_number_as_integer(lua, -1)))
        case LUA_TTABLE:
            writeLuaTable(lua, into: &output, scriptProtocol: scriptProtocol)
        default:
            output.writeNull()
        }
    }

    private static func rawField(_ lua: LuaState, _ name: String) -> Int32 {
        lua_pushstring(lua, name)
        lua_rawget(lua, -2)
        return lua_type(lua, -1)
    }

    private static func writeLuaTable(_ lua: LuaState, into output: inout OutputBuffer, scriptProtocol: RESPVersion) {
        if rawField(lua, "err") == LUA_TSTRING {
            let message = luaString(lua, -1) ?? []
            tally_lua_pop(lua, 1)
            output.writeError(message.map { $0 == 13 || $0 == 10 ? 32 : $0 },
                              countsInStatistics: !errorStatisticsIgnored(lua, table: -1))
            return
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "ok") == LUA_TSTRING {
            let status = luaString(lua, -1) ?? []
            tally_lua_pop(lua, 1)
            output.writeSimpleString(status.map { $0 == 13 || $0 == 10 ? 32 : $0 })
            return
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "double") == LUA_TNUMBER {
            let text = formatDouble(lua_tonumber(lua, -1))
            tally_lua_pop(lua, 1)
            output.writeDouble(formatted: text)
            return
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "big_number") == LUA_TSTRING {
            let digits = (luaString(lua, -1) ?? []).map { $0 == 13 || $0 == 10 ? 32 : $0 }
            tally_lua_pop(lua, 1)
            if output.protocolVersion == .resp3 {
                output.writeBytes([UInt8(ascii: "(")] + digits)
                output.writeCRLF()
            } else {
                output.writeBulkString(digits)
            }
            return
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "verbatim_string") == LUA_TTABLE {
            if rawField(lua, "format") == LUA_TSTRING {
                let format = luaString(lua, -1) ?? []
                lua_pushstring(lua, "string")
                lua_rawget(lua, -3)
                if lua_type(lua, -1) == LUA_TSTRING {
                    let text = luaString(lua, -1) ?? []
                    tally_lua_pop(lua, 3)
                    if output.protocolVersion == .resp3 {
                        output.writeBytes([UInt8(ascii: "=")])
                        output.writeDecimal(Int64(text.count + 4))
                        output.writeCRLF()
                        output.writeBytes(format.prefix(3))
                        output.writeBytes([UInt8(ascii: ":")] + text)
                        output.writeCRLF()
                    } else {
                        output.writeBulkString(text)
                    }
                    return
                }
                tally_lua_pop(lua, 1)
            }
            tally_lua_pop(lua, 1)
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "map") == LUA_TTABLE {
            var body = OutputBuffer(initialCapacity: 64, protocolVersion: output.protocolVersion)
            var pairs = 0
            lua_pushnil(lua)
            while lua_next(lua, -2) != 0 {
                lua_pushvalue(lua, -2)
                writeLuaValue(lua, into: &body, scriptProtocol: scriptProtocol)
                writeLuaValue(lua, into: &body, scriptProtocol: scriptProtocol)
                pairs += 1
            }
            tally_lua_pop(lua, 1)
            output.writeMapHeader(pairs)
            output.writeBuffer(body)
            return
        }
        tally_lua_pop(lua, 1)
        if rawField(lua, "set") == LUA_TTABLE {
            var body = OutputBuffer(initialCapacity: 64, protocolVersion: output.protocolVersion)
            var members = 0
            lua_pushnil(lua)
            while lua_next(lua, -2) != 0 {
                tally_lua_pop(lua, 1)
                lua_pushvalue(lua, -1)
                writeLuaValue(lua, into: &body, scriptProtocol: scriptProtocol)
                members += 1
            }
            tally_lua_pop(lua, 1)
            output.writeSetHeader(members)
            output.writeBuffer(body)
            return
        }
        tally_lua_pop(lua, 1)
        var body = OutputBuffer(initialCapacity: 64, protocolVersion: output.protocolVersion)
        var count: Int32 = 0
        while true {
            lua_rawgeti(lua, -1, count + 1)
            if lua_type(lua, -1) == LUA_TNIL {
                tally_lua_pop(lua, 1)
                break
            }
            writeLuaValue(lua, into: &body, scriptProtocol: scriptProtocol)
            count += 1
        }
        output.writeArrayHeader(Int(count))
        output.writeBuffer(body)
    }

    /// `%.17g`.
    /// A Lua number as redis.call passes it: `%.17g`. Integral values below 1e17 print as
    /// plain integers under %.17g, so they skip snprintf (EXPIRE key 60 in a rate limiter:
    /// 2.8k instructions through snprintf).
    static func appendNumber(_ value: Double, to arguments: inout CommandArguments) {
        if value == value.rounded(.towardZero) && abs(value) < 1e17 && !(value == 0 && value.sign == .minus) {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { scratch in
                let length = formatDecimal(Int64(value), into: scratch)
                arguments.append(UnsafeRawBufferPointer(start: scratch.baseAddress! + (24 - length), count: length))
            }
        } else {
            arguments.append(formatDouble(value))
        }
    }

    static func formatDouble(_ value: Double) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        let length = Int(tally_format_double(value, &buffer, 64))
        return buffer[0..<min(length, 63)].map { UInt8(bitPattern: $0) }
    }

    // MARK: SCRIPT

    static func script(_ context: inout CommandContext) {
        let arguments = context.arguments
        let runtime = context.engine.scripting
        if arguments.matches(1, "help") {
            context.writeHelp("SCRIPT", [
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ])
        } else if arguments.matches(1, "flush") {
            guard arguments.count == 2 || (arguments.count == 3
                && (arguments.matches(2, "sync") || arguments.matches(2, "async")))
            else {
                context.output.writeError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
                return
            }
            runtime.lock.lock()
            runtime.reset()
            runtime.lock.unlock()
            context.output.writeOK()
        } else if arguments.matches(1, "exists") {
            runtime.lock.lock()
            defer { runtime.lock.unlock() }
            context.output.writeArrayHeader(arguments.count - 2)
            for index in 2..<arguments.count {
                context.output.writeInteger(runtime.scripts[ScriptDigest(Array(arguments[index]))] == nil ? 0 : 1)
            }
        } else if arguments.matches(1, "load") {
            let body = arguments.copy(2)
            let sha = sha1Hex(body)
            runtime.lock.lock()
            defer { runtime.lock.unlock() }
            switch runtime.load(body, sha: sha) {
            case .failure(let error): context.output.writeError(error.message)
            case .success: context.output.writeBulkString(sha)
            }
        } else if arguments.matches(1, "kill") {
            if let refusal = context.engine.scriptWatch.kill(isEval: true) {
                context.output.writeError(refusal)
            } else {
                context.output.writeOK()
            }
        } else if arguments.matches(1, "debug") {
            if arguments.matches(2, "no") {
                context.output.writeOK()
            } else if arguments.matches(2, "yes") || arguments.matches(2, "sync") {
                context.output.writeError("ERR SCRIPT DEBUG is not supported: Tally has no Lua debugger")
            } else {
                context.output.writeError("ERR Use SCRIPT DEBUG YES/SYNC/NO")
            }
        }
    }
}

// MARK: - The redis.* API (called from Lua through the C trampoline)

/// The Swift functions Lua scripts call; the raw value is the trampoline's selector.
enum RedisAPIEntry: Int32 {
    case call, protectedCall, sha1hex, errorReply, statusReply, log, setResp, setRepl, replicateCommands
    case breakpoint, debug, aclCheckCommand, random, randomSeed, globalIndex, readonlyWrite
    case registerFunction, missingGlobal

    /// Members of the `redis` table.
    static let exported: [(String, RedisAPIEntry)] = [
        ("call", .call), ("pcall", .protectedCall), ("sha1hex", .sha1hex), ("error_reply", .errorReply),
        ("status_reply", .statusReply), ("log", .log), ("setresp", .setResp), ("set_repl", .setRepl),
        ("replicate_commands", .replicateCommands), ("breakpoint", .breakpoint), ("debug", .debug),
        ("acl_check_cmd", .aclCheckCommand),
    ]
}

/// Pushes Redis's error table `{err = "CODE message"}`: a `-CODE message` text keeps its code,
/// any other text gets `ERR` (script_lua.c luaPushErrorBuff).
func pushErrorTable(_ lua: LuaState, _ text: [UInt8]) {
    var code = Array("ERR".utf8)
    var message = text
    if text.first == UInt8(ascii: "-") {
        if let space = text.firstIndex(of: 32) {
            code = Array(text[1..<space])
            message = Array(text[(space + 1)...])
        } else {
            message = Array(text.dropFirst())
        }
    }
    while let first = message.first, first == 13 || first == 10 { message.removeFirst() }
    while let last = message.last, last == 13 || last == 10 { message.removeLast() }
    lua_createtable(lua, 0, 2)
    luaPush(lua, code + [32] + message)
    lua_setfield(lua, -2, "err")
}

/// Pushes `message` prefixed with the calling script's position (luaL_error's form).
private func pushPositionedError(_ lua: LuaState, _ message: String) {
    luaL_where(lua, 1)
    lua_pushstring(lua, message)
    lua_concat(lua, 2)
}

/// The one C entry point for every redis.* function (see the CLua trampoline): returns the
/// number of results, or -1 after pushing the error the trampoline raises.
func redisAPIEntryPoint(_ state: OpaquePointer?, _ selector: Int32) -> Int32 {
    guard let lua = state, let entry = RedisAPIEntry(rawValue: selector) else { return 0 }
    lua_getfield(lua, tally_lua_registry_index(), "tally.runtime")
    let pointer = lua_touserdata(lua, -1)
    tally_lua_pop(lua, 1)
    guard let pointer else { return 0 }
    let unretained = Unmanaged<ScriptingRuntime>.fromOpaque(pointer)
    if entry == .call || entry == .protectedCall {
        // Without retaining the runtime (its owner outlives every script): two atomic
        // operations fewer per redis.call.
        return unretained._withUnsafeGuaranteedRef { ScriptCalls.redisCall(lua, runtime: $0, raise: entry == .call) }
    }
    let runtime = unretained.takeUnretainedValue()
    let argumentCount = lua_gettop(lua)
    switch entry {
    case .call, .protectedCall:
        preconditionFailure("redis.call and redis.pcall return above, without retaining the runtime")
    case .sha1hex:
        guard argumentCount == 1 else {
            pushErrorTable(lua, Array("wrong number of arguments".utf8))
            return -1
        }
        let digest = sha1Hex(luaString(lua, 1) ?? [])
        luaPush(lua, digest)
        return 1
    case .errorReply, .statusReply:
        guard argumentCount == 1, lua_type(lua, -1) == LUA_TSTRING else {
            pushErrorTable(lua, Array("wrong number or type of arguments".utf8))
            return 1
        }
        let text = luaString(lua, -1) ?? []
        if entry == .errorReply {
            pushErrorTable(lua, text.first == UInt8(ascii: "-") ? text : [UInt8(ascii: "-")] + text)
        } else {
            lua_createtable(lua, 0, 1)
            luaPush(lua, text)
            lua_setfield(lua, -2, "ok")
        }
        return 1
    case .log:
        if argumentCount < 2 {
            pushErrorTable(lua, Array("redis.log() requires two arguments or more.".utf8))
            return -1
        }
        if lua_isnumber(lua, 1) == 0 {
            pushErrorTable(lua, Array("First argument must be a number (log level).".utf8))
            return -1
        }
        let level = tally_lua_number_as_integer(lua, 1)
        if level < 0 || level > 3 {
            pushErrorTable(lua, Array("Invalid debug level.".utf8))
            return -1
        }
        // The other arguments joined by spaces, skipping any that are neither strings nor
        // numbers (script_lua.c luaLogCommand); the server's logger applies `loglevel`.
        var message: [UInt8] = []
        var first = true
        for index in 2...argumentCount {
            guard let text = luaString(lua, index) else { continue }
            if !first { message.append(UInt8(ascii: " ")) }
            message.append(contentsOf: text)
            first = false
        }
        ServerLogHook.write(level: Int(level), message)
        return 0
    case .setResp:
        guard let run = runtime.current else {
            pushErrorTable(lua, Array("redis.setresp can only be called inside a script invocation".utf8))
            return -1
        }
        guard argumentCount == 1 else {
            pushErrorTable(lua, Array("redis.setresp() requires one argument.".utf8))
            return -1
        }
        let version = tally_lua_number_as_integer(lua, 1)
        guard version == 2 || version == 3 else {
            pushErrorTable(lua, Array("RESP version must be 2 or 3.".utf8))
            return -1
        }
        run.resp = version == 3 ? .resp3 : .resp2
        return 0
    case .setRepl:
        guard let run = runtime.current else {
            pushErrorTable(lua, Array("redis.set_repl can only be called inside a script invocation".utf8))
            return -1
        }
        guard argumentCount == 1 else {
            pushErrorTable(lua, Array("redis.set_repl() requires two arguments.".utf8))
            return -1
        }
        let flags = tally_lua_number_as_integer(lua, -1)
        guard flags & ~3 == 0 else {
            pushErrorTable(
                lua, Array("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.".utf8))
            return -1
        }
        run.logsWrites = flags & 1 != 0
        return 0
    case .replicateCommands, .aclCheckCommand:
        lua_pushboolean(lua, 1)
        return 1
    case .breakpoint:
        lua_pushboolean(lua, 0)
        return 1
    case .debug:
        return 0
    case .random:
        guard runtime.current != nil else {
            pushPositionedError(lua, "math.random can only be called inside a script invocation")
            return -1
        }
        let raw = runtime.random.next()
        let fraction = Double(raw % Int32.max) / Double(Int32.max)
        switch argumentCount {
        case 0:
            lua_pushnumber(lua, fraction)
        case 1, 2:
            var bounds: [Double] = []
            for index in 1...argumentCount {
                guard lua_isnumber(lua, index) != 0 else {
                    let got = String(cString: lua_typename(lua, lua_type(lua, index)))
                    pushPositionedError(lua, "bad argument #\(index) to 'random' (number expected, got \(got))")
                    return -1
                }
                bounds.append(Double(Int32(truncatingIfNeeded: tally_lua_number_as_integer(lua, index))))
            }
            let lower = argumentCount == 1 ? 1 : bounds[0]
            let upper = bounds[Int(argumentCount) - 1]
            guard lower <= upper else {
                pushPositionedError(lua, "bad argument #\(argumentCount) to 'random' (interval is empty)")
                return -1
            }
            lua_pushnumber(lua, (fraction * (upper - lower + 1)).rounded(.down) + lower)
        default:
            pushPositionedError(lua, "wrong number of arguments")
            return -1
        }
        return 1
    case .randomSeed:
        guard runtime.current != nil else {
            pushPositionedError(lua, "math.randomseed can only be called inside a script invocation")
            return -1
        }
        guard lua_isnumber(lua, 1) != 0 else {
            let got = String(cString: lua_typename(lua, lua_type(lua, 1)))
            pushPositionedError(lua, "bad argument #1 to 'randomseed' (number expected, got \(got))")
            return -1
        }
        runtime.random.seed(Int32(truncatingIfNeeded: tally_lua_number_as_integer(lua, 1)))
        return 0
    case .registerFunction:
        return FunctionCommands.registerFunction(lua, runtime: runtime)
    case .missingGlobal:
        let name = lua_type(lua, 2) == LUA_TSTRING || lua_type(lua, 2) == LUA_TNUMBER
            ? String(decoding: luaString(lua, 2) ?? [], as: UTF8.self) : "?"
        pushPositionedError(lua, "Script attempted to access nonexistent global variable '\(name)'")
        return -1
    case .globalIndex:
        if runtime.loadingLibrary != nil {
            // Library code at load time sees only the `redis` load API.
            if lua_type(lua, 2) == LUA_TSTRING, luaString(lua, 2) == Array("redis".utf8) {
                lua_rawgeti(lua, tally_lua_registry_index(), runtime.libraryAPI)
                return 1
            }
            let name = String(decoding: luaString(lua, 2) ?? [], as: UTF8.self)
            pushPositionedError(lua, "Script attempted to access nonexistent global variable '\(name)'")
            return -1
        }
        lua_rawgeti(lua, tally_lua_registry_index(), runtime.realGlobals)
        lua_pushvalue(lua, 2)
        lua_rawget(lua, -2)
        if lua_type(lua, -1) != LUA_TNIL { return 1 }
        let name = lua_type(lua, 2) == LUA_TSTRING || lua_type(lua, 2) == LUA_TNUMBER
            ? String(decoding: luaString(lua, 2) ?? [], as: UTF8.self) : "?"
        pushPositionedError(lua, "Script attempted to access nonexistent global variable '\(name)'")
        return -1
    case .readonlyWrite:
        pushPositionedError(lua, "Attempt to modify a readonly table")
        return -1
    }
}
