// ScriptCalls: redis.call / redis.pcall: checks, execution through the engine, RESP reply → Lua value.
import CLua
import TallyKeyspace
import TallyProtocol

/// How a script runs a command (Redis 7.0's scriptCall and luaRedisGenericCommand, for Tally).
enum ScriptCalls {
    /// redis.call (`raise`) or redis.pcall: builds argv from the Lua arguments, refuses what a
    /// script may not run, runs the command as part of the script and pushes its reply.
    static func redisCall(_ lua: LuaState, runtime: ScriptingRuntime, raise: Bool) -> Int32 {
        guard let run = runtime.unretainedCurrent else {
            pushErrorTable(lua, Array("redis.call/pcall can only be called inside a script invocation".utf8))
            return -1
        }
        return run._withUnsafeGuaranteedRef { redisCall(lua, runtime: runtime, run: $0, raise: raise) }
    }

    private static func redisCall(_ lua: LuaState, runtime: ScriptingRuntime, run: ScriptRun, raise: Bool) -> Int32 {
        let count = lua_gettop(lua)
        if count == 0 {
            pushErrorTable(lua, Array("Please specify at least one argument for this redis lib call".utf8))
            return raise ? -1 : 1
        }
        // The runtime's buffers, moved out for the call and back after it: a limiter's two
        // calls a script allocated and freed four buffers (callgrind: ~1,300 instructions a call).
        var arguments = CommandArguments(reservingCapacity: false)
        swap(&arguments, &runtime.callArguments)
        arguments.removeAll()
        defer { swap(&arguments, &runtime.callArguments) }
        arguments.reserveAdditional(bytes: 64, arguments: Int(count))
        var valid = true
        for index in 1...count {
            let type = lua_type(lua, index)
            if type == LUA_TNUMBER {
                ScriptingCommands.appendNumber(lua_tonumber(lua, index), to: &arguments)
            } else if type == LUA_TSTRING {
                // Straight from Lua's string into the argument storage (no intermediate array).
                var length = 0
                guard let pointer = lua_tolstring(lua, index, &length) else { valid = false; break }
                arguments.append(UnsafeRawBufferPointer(start: pointer, count: length))
            } else {
                valid = false
                break
            }
        }
        lua_settop(lua, 0)
        guard valid else {
            pushErrorTable(lua, Array("Lua redis lib command arguments must be strings or integers".utf8))
            return raise ? -1 : 1
        }
        let engine = run.engine
        let found = arguments.withUnsafeBytes(of: 0) { engine.table.lookup($0) }
        if let refusal = refusal(arguments, row: found, run) {
            // Counted here, once, as Redis's scriptCall counts its refusal; the script passing
            // the error on does not count it again.
            engine.errorStatistics.record([OutputBuffer.errorCode(refusal[...])])
            if let found {
                engine.statistics(row: found, arguments).rejectedCalls.add(1, ordering: .relaxed)
            }
            pushErrorTable(lua, refusal)
            markIgnoredInStatistics(lua)
            return raise ? -1 : 1
        }
        guard let row = found else { return 0 }
        var output = OutputBuffer(initialCapacity: 0)
        swap(&output, &runtime.callOutput)
        output.protocolVersion = run.resp
        defer {
            output.readerIndex = output.writerIndex
            output.discardReadBytes()
            output.shrinkIfOversized(limitBytes: 64 * 1024)
            swap(&output, &runtime.callOutput)
        }
        let logged = run.session.propagation.recordCount
        run.session.isScriptCall = true
        engine.run(row: row, &arguments, session: run.session, output: &output, insideExec: true,
                   reusing: &runtime.callContext)
        run.session.isScriptCall = false
        if let keys = run.trackedKeys {
            engine.rememberScriptKeys(keys, innerRow: row, arguments, session: run.session)
        }
        // The command's own error counts now; the script's reply built from it will not.
        engine.errorStatistics.take(from: &output)
        if !run.logsWrites { run.session.propagation.removeRecords(from: logged) }
        var position = output.readerIndex
        let isError = output.storage.count > position && output.storage[position] == UInt8(ascii: "-")
        if lua_checkstack(lua, 8) == 0 {
            pushErrorTable(lua, Array("reached lua stack limit".utf8))
            return -1
        }
        RESPToLua.push(lua, output.storage, &position)
        return raise && isError ? -1 : 1
    }

    /// Why the script may not run `arguments` (command table row `row`) now (Redis's error
    /// text), or nil.
    private static func refusal(_ arguments: CommandArguments, row: Int?, _ run: ScriptRun) -> [UInt8]? {
        let table = run.engine.table
        guard let row else {
            return Array("Unknown Redis command called from script".utf8)
        }
        let wrongArity = "Wrong number of args calling Redis command from script"
        if !CommandTable.arityAccepts(table.rows[row].arity, arguments.count) { return Array(wrongArity.utf8) }
        var flags = table.flags[row]
        if table.hasSubcommands(row) && arguments.count >= 2 {
            guard let sub = table.subcommand(of: row, named: arguments[1]) else {
                return Array("Unknown Redis command called from script".utf8)
            }
            let subcommand = table.rows[row].subcommands[sub]
            if !CommandTable.arityAccepts(subcommand.arity, arguments.count) { return Array(wrongArity.utf8) }
            flags = subcommand.flags
        }
        if flags.contains(.noScript) { return Array("This Redis command is not allowed from script".utf8) }
        if run.readOnly && !flags.isDisjoint(with: [.write, .mayReplicate]) {
            return Array("Write commands are not allowed from read-only scripts.".utf8)
        }
        if flags.contains(.write) && !run.wroteDataset, let refusal = run.engine.attachedLog?.writeRefusal() {
            return [UInt8(ascii: "-")] + refusal
        }
        // script.c scriptVerifyWriteCommandAllow checks min-replicas-to-write for every write.
        if flags.contains(.write) && run.engine.lacksGoodReplicasForWrites && !run.session.isReplicationPrimaryLink {
            return CommandEngine.noReplicasReason
        }
        if run.overMemoryLimitAtStart && !run.wroteDataset && !run.allowOOM && flags.contains(.denyOOM) {
            return [UInt8(ascii: "-")] + RedisError.outOfMemory.withUTF8Buffer { Array($0) }
        }
        if flags.contains(.write) {
            run.wroteDataset = true
            run.engine.scriptWatch.markWrote()
        }
        return nil
    }

    /// Marks the error table on top so the script's own failure is not counted twice.
    private static func markIgnoredInStatistics(_ lua: LuaState) {
        lua_pushboolean(lua, 1)
        lua_setfield(lua, -2, "ignore_error_stats_update")
    }
}

/// Converts one RESP2/RESP3 reply into a Lua value (script_lua.c's redisProtocolToLuaType rules):
/// status → `{ok=...}`, error → `{err=...}`, integer → number, bulk → string, null bulk/array →
/// false, RESP3 null → nil, array → table, map → `{map={...}}`, set → `{set={k=true}}`,
/// double → `{double=n}`, boolean → boolean, big number → `{big_number=s}`, verbatim →
/// `{verbatim_string={format=..., string=...}}`; attributes are skipped.
enum RESPToLua {
    static func push(_ lua: LuaState, _ bytes: [UInt8], _ position: inout Int) {
        guard position < bytes.count else {
            lua_pushnil(lua)
            return
        }
        let kind = bytes[position]
        let line = readLine(bytes, &position)
        switch kind {
        case UInt8(ascii: "+"):
            lua_createtable(lua, 0, 1)
            luaPush(lua, line)
            lua_setfield(lua, -2, "ok")
        case UInt8(ascii: "-"):
            pushErrorTable(lua, [UInt8(ascii: "-")] + line)
            lua_pushboolean(lua, 1)
            lua_setfield(lua, -2, "ignore_error_stats_update")
        case UInt8(ascii: ":"):
            lua_pushnumber(lua, Double(parseRedisInteger(line[...]) ?? 0))
        case UInt8(ascii: "$"), UInt8(ascii: "="):
            let length = Int(parseRedisInteger(line[...]) ?? -1)
            if length < 0 {
                lua_pushboolean(lua, 0)
                return
            }
            let body = bytes[position..<(position + length)]
            position += length + 2
            if kind == UInt8(ascii: "$") {
                luaPush(lua, body)
            } else {
                lua_createtable(lua, 0, 1)
                lua_createtable(lua, 0, 2)
                luaPush(lua, body.dropFirst(4))
                lua_setfield(lua, -2, "string")
                luaPush(lua, body.prefix(3))
                lua_setfield(lua, -2, "format")
                lua_setfield(lua, -2, "verbatim_string")
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let count = Int(parseRedisInteger(line[...]) ?? -1)
            if count < 0 {
                lua_pushboolean(lua, 0)
                return
            }
            if kind == UInt8(ascii: "|") {
                for _ in 0..<(count * 2) {
                    push(lua, bytes, &position)
                    tally_lua_pop(lua, 1)
                }
                push(lua, bytes, &position)
                return
            }
            let wrapper = kind == UInt8(ascii: "~") ? "set" : kind == UInt8(ascii: "%") ? "map" : nil
            if wrapper != nil { lua_createtable(lua, 0, 1) }
            lua_createtable(lua, kind == UInt8(ascii: "*") ? Int32(count) : 0, 0)
            for index in 0..<count {
                if kind == UInt8(ascii: "*") {
                    push(lua, bytes, &position)
                    lua_rawseti(lua, -2, Int32(index + 1))
                } else if kind == UInt8(ascii: "~") {
                    push(lua, bytes, &position)
                    lua_pushboolean(lua, 1)
                    lua_settable(lua, -3)
                } else {
                    push(lua, bytes, &position)
                    push(lua, bytes, &position)
                    lua_settable(lua, -3)
                }
            }
            if let wrapper { lua_setfield(lua, -2, wrapper) }
        case UInt8(ascii: "_"):
            lua_pushnil(lua)
        case UInt8(ascii: "#"):
            lua_pushboolean(lua, line.first == UInt8(ascii: "t") ? 1 : 0)
        case UInt8(ascii: ","):
            lua_createtable(lua, 0, 1)
            lua_pushnumber(lua, Double(String(decoding: line, as: UTF8.self)) ?? 0)
            lua_setfield(lua, -2, "double")
        case UInt8(ascii: "("):
            lua_createtable(lua, 0, 1)
            luaPush(lua, line)
            lua_setfield(lua, -2, "big_number")
        default:
            lua_pushnil(lua)
        }
    }

    /// The rest of the current line after its type byte; moves past the CRLF.
    private static func readLine(_ bytes: [UInt8], _ position: inout Int) -> ArraySlice<UInt8> {
        let start = position + 1
        var end = start
        while end + 1 < bytes.count && !(bytes[end] == 13 && bytes[end + 1] == 10) { end += 1 }
        position = min(end + 2, bytes.count)
        return bytes[start..<min(end, bytes.count)]
    }
}
