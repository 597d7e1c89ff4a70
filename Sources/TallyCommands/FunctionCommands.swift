// FunctionCommands: FUNCTION LOAD|DELETE|FLUSH|LIST|STATS|KILL|HELP, FCALL, FCALL_RO (Redis 7.0 functions).
import CLua
import TallyKeyspace
import TallyProtocol

/// Redis 7.0 functions on their own Lua interpreter (`CommandEngine.functions`). A library's code
/// runs once at FUNCTION LOAD with only `redis.register_function` (and log) visible; FCALL then
/// calls a registered callback with KEYS and ARGV as its two arguments, atomically like EVAL.
///
/// FUNCTION LOAD/DELETE/FLUSH/RESTORE count as changes, so the AOF logs them as sent; FUNCTION
/// DUMP/RESTORE payloads come from the engine's RDB codec.
enum FunctionCommands {
    static var specs: [CommandSpec] {
        let scripting = "@slow @scripting"
        let writing = ["@write", "@slow", "@scripting"]
        let reading = ["@slow", "@scripting"]
        return [
            command("fcall", -3, ScriptingCommands.evalFlags, scripting) { fcall(&$0, readOnly: false) },
            command("fcall_ro", -3, ScriptingCommands.readOnlyFlags, scripting) {
                fcall(&$0, readOnly: true)
            },
            CommandSpec(
                name: "function", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    CommandSpec(name: "function|delete", arity: 3, flags: [.write, .noScript],
                                categories: writing) { _ in },
                    CommandSpec(name: "function|dump", arity: 2, flags: [.noScript],
                                categories: reading) { _ in },
                    CommandSpec(name: "function|restore", arity: -3, flags: [.write, .denyOOM, .noScript],
                                categories: writing) { _ in },
                    CommandSpec(name: "function|flush", arity: -2, flags: [.write, .noScript],
                                categories: writing) { _ in },
                    CommandSpec(name: "function|help", arity: 2, flags: [.loading, .stale],
                                categories: reading) { _ in },
                    CommandSpec(name: "function|kill", arity: 2, flags: [.noScript, .allowBusy],
                                categories: reading) { _ in },
                    CommandSpec(name: "function|list", arity: -2, flags: [.noScript],
                                categories: reading) { _ in },
                    CommandSpec(name: "function|load", arity: -3, flags: [.write, .denyOOM, .noScript],
                                categories: writing) { _ in },
                    CommandSpec(name: "function|stats", arity: 2, flags: [.noScript, .allowBusy],
                                categories: reading) { _ in },
                ],
                handler: function),
        ]
    }

    // MARK: FCALL

    static func fcall(_ context: inout CommandContext, readOnly: Bool) {
        let runtime = context.engine.functions
        runtime.lock.lock()
        defer { runtime.lock.unlock() }
        // Function names match case-insensitively, as Redis's function dictionary does.
        let name = Array(context.arguments[1])
        let folded = foldCase(name)
        guard let function = runtime.libraries.lazy.flatMap({ $0.functions })
            .first(where: { foldCase($0.name) == folded })
        else {
            context.output.writeError("ERR Function not found")
            return
        }
        guard let keyCount = parseRedisInteger(context.arguments[2]) else {
            context.output.writeError("ERR Bad number of keys provided")
            return
        }
        let argumentCount = context.arguments.count
        if keyCount > Int64(argumentCount - 3) {
            context.output.writeError("ERR Number of keys can't be greater than number of args")
            return
        }
        if keyCount < 0 {
            context.output.writeError("ERR Number of keys can't be negative")
            return
        }
        guard let run = ScriptingCommands.prepareRun(
            &context, runtime: runtime, name: name, flags: function.flags, readOnly: readOnly)
        else { return }
        let lua = runtime.lua
        lua_rawgeti(lua, tally_lua_registry_index(), runtime.errorHandler)
        lua_rawgeti(lua, tally_lua_registry_index(), function.reference)
        let keyEnd = 3 + Int(keyCount)
        ScriptingCommands.pushArray(lua, context.arguments, 3..<keyEnd)
        ScriptingCommands.pushArray(lua, context.arguments, keyEnd..<argumentCount)
        ScriptingCommands.call(&context, runtime: runtime, run: run, argumentCount: 2)
    }

    // MARK: FUNCTION

    static func function(_ context: inout CommandContext) {
        let arguments = context.arguments
        let runtime = context.engine.functions
        let watch = context.engine.scriptWatch
        // KILL and STATS are allow-busy: a running function holds the interpreter's lock.
        if arguments.matches(1, "kill") {
            if let refusal = watch.kill(isEval: false) {
                context.output.writeError(refusal)
            } else {
                context.output.writeOK()
            }
            return
        }
        if arguments.matches(1, "stats") {
            if watch.isRunning && watch.isEval {
                // functionStatsCommand refuses while an EVAL script runs.
                context.output.writeError(Array(ScriptWatch.busyEval.dropFirst()))
            } else if watch.isRunning {
                // The running function's thread holds the lock and changes no library meanwhile.
                stats(&context, runtime: runtime, watch: watch)
            } else {
                runtime.lock.lock()
                stats(&context, runtime: runtime, watch: watch)
                runtime.lock.unlock()
            }
            return
        }
        runtime.lock.lock()
        defer { runtime.lock.unlock() }
        if arguments.matches(1, "load") {
            load(&context, runtime: runtime)
        } else if arguments.matches(1, "delete") {
            let name = Array(arguments[2])
            guard let index = runtime.libraries.firstIndex(where: { $0.name == name }) else {
                context.output.writeError("ERR Library not found")
                return
            }
            release(runtime.libraries.remove(at: index), runtime)
            context.addChanges(1)
            publish(context, runtime)
            context.output.writeOK()
        } else if arguments.matches(1, "flush") {
            if arguments.count > 3 {
                context.output.writeError(subcommandSyntaxError(arguments))
                return
            }
            guard arguments.count == 2 || arguments.matches(2, "sync") || arguments.matches(2, "async") else {
                context.output.writeError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
                return
            }
            runtime.reset()
            context.addChanges(1)
            publish(context, runtime)
            context.output.writeOK()
        } else if arguments.matches(1, "list") {
            list(&context, runtime: runtime)
        } else if arguments.matches(1, "dump") {
            dump(&context, runtime: runtime)
        } else if arguments.matches(1, "restore") {
            restore(&context, runtime: runtime)
        } else if arguments.matches(1, "help") {
            context.writeHelp("FUNCTION", helpLines)
        }
    }

    /// FUNCTION STATS: the running function (name, command, duration), or null while none
    /// (or an EVAL script) runs, then the engine's library and function counts.
    private static func stats(_ context: inout CommandContext, runtime: ScriptingRuntime, watch: ScriptWatch) {
        context.output.writeMapHeader(2)
        context.output.writeBulkString("running_script".utf8)
        if watch.isRunning && !watch.isEval {
            let (name, command) = watch.runningDetails
            context.output.writeMapHeader(3)
            context.output.writeBulkString("name".utf8)
            context.output.writeBulkString(name)
            context.output.writeBulkString("command".utf8)
            context.output.writeArrayHeader(command.count)
            for argument in command { context.output.writeBulkString(argument) }
            context.output.writeBulkString("duration_ms".utf8)
            context.output.writeInteger(watch.elapsedMilliseconds)
        } else {
            context.output.writeNull()
        }
        context.output.writeBulkString("engines".utf8)
        context.output.writeMapHeader(1)
        context.output.writeBulkString("LUA".utf8)
        context.output.writeMapHeader(2)
        context.output.writeBulkString("libraries_count".utf8)
        context.output.writeInteger(runtime.libraries.count)
        context.output.writeBulkString("functions_count".utf8)
        context.output.writeInteger(runtime.libraries.reduce(0) { $0 + $1.functions.count })
    }

    static let helpLines = [
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION "
            + "RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
    ]

    private static func release(_ library: FunctionLibrary, _ runtime: ScriptingRuntime) {
        for function in library.functions { luaL_unref(runtime.lua, tally_lua_registry_index(), function.reference) }
    }

    /// addReplySubcommandSyntaxError: names the subcommand as the client spelled it.
    private static func subcommandSyntaxError(_ arguments: CommandArguments) -> [UInt8] {
        Array("ERR unknown subcommand or wrong number of arguments for '".utf8) + arguments[1]
            + Array("'. Try FUNCTION HELP.".utf8)
    }

    /// Hands the libraries' code to persistence (the next save writes it).
    private static func publish(_ context: CommandContext, _ runtime: ScriptingRuntime) {
        context.engine.keyspace.functionLibraries.publish(runtime.libraries.map(\.code))
    }

    static func foldCase(_ bytes: [UInt8]) -> [UInt8] { bytes.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 } }

    /// True for a valid library or function name: letters, digits and `_`, at least one.
    static func isValidName(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.allSatisfy {
            ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95
        }
    }

    static let invalidName = "Library names can only contain letters, numbers, or underscores(_) and must be at "
        + "least one character long"

    /// FUNCTION LOAD [REPLACE] code.
    private static func load(_ context: inout CommandContext, runtime: ScriptingRuntime) {
        let arguments = context.arguments
        var index = 2
        var replace = false
        while index < arguments.count - 1 {
            guard arguments.matches(index, "replace") else {
                context.output.writeError(Array("ERR Unknown option given: ".utf8) + arguments[index])
                return
            }
            replace = true
            index += 1
        }
        switch createLibrary(arguments.copy(index), runtime: runtime, among: runtime.libraries, replace: replace) {
        case .failure(let error):
            context.output.writeError(error.message)
        case .success(let library):
            if let existing = runtime.libraries.firstIndex(where: { $0.name == library.name }) {
                release(runtime.libraries.remove(at: existing), runtime)
            }
            runtime.libraries.append(library)
            context.addChanges(1)
            publish(context, runtime)
            context.output.writeBulkString(library.name)
        }
    }

    /// Redis's functionsCreateWithLibraryCtx: parses the metadata line, refuses a library
    /// already in `libraries` (unless `replace`), runs the code to register its functions
    /// (within FUNCTION LOAD's 500 ms), and refuses a function name another library of
    /// `libraries` has. The library is not linked anywhere yet.
    static func createLibrary(_ code: [UInt8], runtime: ScriptingRuntime, among libraries: [FunctionLibrary],
                              replace: Bool) -> Result<FunctionLibrary, ScriptError> {
        guard code.count >= 2 && code[0] == UInt8(ascii: "#") && code[1] == UInt8(ascii: "!"),
              let lineEnd = code.firstIndex(of: 10)
        else {
            return .failure(ScriptError("ERR Missing library metadata"))
        }
        guard let parts = splitArguments(code[0..<lineEnd]), let engineName = parts.first else {
            return .failure(ScriptError("ERR Invalid library metadata"))
        }
        var name: [UInt8]?
        for part in parts.dropFirst() {
            guard part.count >= 5, part.prefix(5).map({ $0 | 0x20 }) == Array("name=".utf8) else {
                return .failure(ScriptError(Array("ERR Invalid metadata value given: ".utf8) + part))
            }
            if name != nil {
                return .failure(ScriptError("ERR Invalid metadata value, name argument was given multiple times"))
            }
            name = Array(part.dropFirst(5))
        }
        guard let name else { return .failure(ScriptError("ERR Library name was not given")) }
        let engine = Array(engineName.dropFirst(2))
        guard engine.map({ $0 | 0x20 }) == Array("lua".utf8) else {
            return .failure(ScriptError(Array("ERR Engine '".utf8) + engine + Array("' not found".utf8)))
        }
        guard isValidName(name) else { return .failure(ScriptError("ERR " + invalidName)) }
        if !replace && libraries.contains(where: { $0.name == name }) {
            return .failure(ScriptError(Array("ERR Library '".utf8) + name + Array("' already exists".utf8)))
        }
        let lua = runtime.lua
        let body = Array(code[lineEnd...]) + [0]
        let status = body.withUnsafeBufferPointer { buffer in
            luaL_loadbuffer(lua, UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self),
                            body.count - 1, "@user_function")
        }
        if status != 0 {
            let message = luaString(lua, -1) ?? []
            tally_lua_pop(lua, 1)
            return .failure(ScriptError(Array("ERR Error compiling function: ".utf8) + message))
        }
        let library = FunctionLibrary(name: name, code: code)
        runtime.loadingLibrary = library
        runtime.useLoadTimeGlobals(true)
        runtime.loadStartedMicroseconds = monotonicMicroseconds()
        tally_lua_arm_hook(lua, 100_000)
        let result = lua_pcall(lua, 0, 0, 0)
        tally_lua_disarm_hook(lua)
        runtime.useLoadTimeGlobals(false)
        runtime.loadingLibrary = nil
        var failure: [UInt8]?
        if result != 0 {
            var message: [UInt8] = []
            if lua_type(lua, -1) == LUA_TTABLE {
                lua_getfield(lua, -1, "err")
                message = luaString(lua, -1) ?? []
                tally_lua_pop(lua, 1)
            } else {
                message = Array("ERR ".utf8) + (luaString(lua, -1) ?? [])
            }
            tally_lua_pop(lua, 1)
            failure = Array("ERR Error registering functions: ".utf8) + message
        } else if library.functions.isEmpty {
            failure = Array("ERR No functions registered".utf8)
        } else {
            for function in library.functions {
                let owner = libraries.first { other in other.functions.contains { $0.name == function.name } }
                if let owner, owner.name != name {
                    failure = Array("ERR Function ".utf8) + function.name + Array(" already exists".utf8)
                    break
                }
            }
        }
        if let failure {
            release(library, runtime)
            return .failure(ScriptError(failure))
        }
        return .success(library)
    }

    /// Creates a library read from an RDB file or AOF base, replacing one of the same name.
    static func loadPersisted(_ code: [UInt8], runtime: ScriptingRuntime, registry: FunctionLibraries) -> String? {
        runtime.lock.lock()
        defer { runtime.lock.unlock() }
        switch createLibrary(code, runtime: runtime, among: runtime.libraries, replace: true) {
        case .failure(let error):
            return String(decoding: error.message, as: UTF8.self)
        case .success(let library):
            if let existing = runtime.libraries.firstIndex(where: { $0.name == library.name }) {
                release(runtime.libraries.remove(at: existing), runtime)
            }
            runtime.libraries.append(library)
            registry.publish(runtime.libraries.map(\.code))
            return nil
        }
    }

    /// Splits the metadata line as Redis's sdssplitargs does: blanks separate words, and a
    /// word may hold "double-quoted" parts (with \\n, \\r, \\t, \\b, \\a, \\xHH escapes) or
    /// 'single-quoted' parts; a closing quote must end the word. Nil for unbalanced quotes.
    static func splitArguments(_ line: ArraySlice<UInt8>) -> [[UInt8]]? {
        var words: [[UInt8]] = []
        var index = line.startIndex
        func isBlank(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 || byte == 0 }
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 48...57: return byte - 48
            case 97...102: return byte - 87
            case 65...70: return byte - 55
            default: return nil
            }
        }
        while true {
            while index < line.endIndex && isBlank(line[index]) { index += 1 }
            if index == line.endIndex { return words }
            var word: [UInt8] = []
            var quote: UInt8 = 0
            while true {
                if quote != 0 {
                    guard index < line.endIndex else { return nil }
                    let byte = line[index]
                    if quote == 34 && byte == 92 && index + 3 < line.endIndex && line[index + 1] == 120,
                       let high = hex(line[index + 2]), let low = hex(line[index + 3]) {
                        word.append(high << 4 | low)
                        index += 4
                        continue
                    }
                    if byte == 92 && index + 1 < line.endIndex && (quote == 34 || line[index + 1] == 39) {
                        let next = line[index + 1]
                        let escapes: [UInt8: UInt8] = [110: 10, 114: 13, 116: 9, 98: 8, 97: 7]
                        word.append(quote == 34 ? escapes[next] ?? next : next)
                        index += 2
                        continue
                    }
                    if byte == quote {
                        index += 1
                        guard index == line.endIndex || isBlank(line[index]) else { return nil }
                        break
                    }
                    word.append(byte)
                    index += 1
                } else {
                    guard index < line.endIndex, !isBlank(line[index]) else { break }
                    let byte = line[index]
                    index += 1
                    if byte == 34 || byte == 39 { quote = byte } else { word.append(byte) }
                }
            }
            words.append(word)
        }
    }

    /// FUNCTION DUMP: every library's code as opcode-245 records with the DUMP footer.
    private static func dump(_ context: inout CommandContext, runtime: ScriptingRuntime) {
        guard let codec = context.engine.dumpCodec else {
            context.output.writeError("ERR FUNCTION DUMP is not available without the RDB codec")
            return
        }
        context.output.writeBulkString(codec.functionsPayload(runtime.libraries.map(\.code)))
    }

    /// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE] (functionRestoreCommand): the policy,
    /// the footer, every library created apart, then joined (APPEND refuses a library that
    /// exists, REPLACE swaps it; both refuse a function name still taken) or swapped in (FLUSH).
    /// Nothing changes unless all of it succeeds.
    private static func restore(_ context: inout CommandContext, runtime: ScriptingRuntime) {
        let arguments = context.arguments
        if arguments.count > 4 {
            context.output.writeError(subcommandSyntaxError(arguments))
            return
        }
        enum Policy { case append, replace, flush }
        var policy = Policy.append
        if arguments.count == 4 {
            if arguments.matches(3, "append") {
                policy = .append
            } else if arguments.matches(3, "replace") {
                policy = .replace
            } else if arguments.matches(3, "flush") {
                policy = .flush
            } else {
                context.output.writeError(
                    "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")
                return
            }
        }
        guard let codec = context.engine.dumpCodec else {
            context.output.writeError("ERR FUNCTION RESTORE is not available without the RDB codec")
            return
        }
        let codes: [[UInt8]]
        switch codec.functionCodes(fromPayload: arguments.copy(2)) {
        case .wrongVersionOrChecksum:
            context.output.writeError("ERR DUMP payload version or checksum are wrong")
            return
        case .failure(let message):
            context.output.writeError(Array(("ERR " + message).utf8))
            return
        case .codes(let decoded): codes = decoded
        }
        var restored: [FunctionLibrary] = []
        func abandon(_ message: [UInt8]) {
            for library in restored { release(library, runtime) }
            context.output.writeError(message)
        }
        for code in codes {
            switch createLibrary(code, runtime: runtime, among: restored, replace: false) {
            case .failure(let error): return abandon(error.message)
            case .success(let library): restored.append(library)
            }
        }
        var kept = runtime.libraries
        var replaced: [FunctionLibrary] = []
        if policy == .flush {
            replaced = kept
            kept = []
        } else {
            for library in restored {
                guard let index = kept.firstIndex(where: { $0.name == library.name }) else { continue }
                if policy == .append {
                    return abandon(Array("ERR Library ".utf8) + library.name + Array(" already exists".utf8))
                }
                replaced.append(kept.remove(at: index))
            }
            for function in restored.lazy.flatMap({ $0.functions })
            where kept.contains(where: { $0.functions.contains { $0.name == function.name } }) {
                return abandon(Array("ERR Function ".utf8) + function.name + Array(" already exists".utf8))
            }
        }
        for library in replaced { release(library, runtime) }
        runtime.libraries = kept + restored
        context.addChanges(1)
        publish(context, runtime)
        context.output.writeOK()
    }

    /// redis.register_function(name, callback) or redis.register_function{function_name=...,
    /// callback=..., flags={...}, description=...}, during FUNCTION LOAD only.
    static func registerFunction(_ lua: LuaState, runtime: ScriptingRuntime) -> Int32 {
        guard let library = runtime.loadingLibrary else {
            pushErrorTable(lua, Array("redis.register_function can only be called on FUNCTION LOAD command".utf8))
            return -1
        }
        let count = lua_gettop(lua)
        guard count == 1 || count == 2 else {
            pushErrorTable(lua, Array("wrong number of arguments to redis.register_function".utf8))
            return -1
        }
        var function = LuaFunction(name: [], reference: LUA_NOREF, flags: [], description: nil)
        if count == 2 {
            let type = lua_type(lua, 1)
            guard type == LUA_TSTRING || type == LUA_TNUMBER, let name = luaString(lua, 1) else {
                pushErrorTable(lua, Array("first argument to redis.register_function must be a string".utf8))
                return -1
            }
            guard lua_type(lua, 2) == LUA_TFUNCTION else {
                pushErrorTable(lua, Array("second argument to redis.register_function must be a function".utf8))
                return -1
            }
            function.name = name
            lua_pushvalue(lua, 2)
            function.reference = luaL_ref(lua, tally_lua_registry_index())
        } else {
            if let error = readNamedArguments(lua, into: &function) {
                if function.reference != LUA_NOREF { luaL_unref(lua, tally_lua_registry_index(), function.reference) }
                pushErrorTable(lua, Array(error.utf8))
                return -1
            }
        }
        var error: String?
        if !isValidName(function.name) {
            error = invalidName
        } else if library.functions.contains(where: { $0.name == function.name }) {
            error = "Function already exists in the library"
        }
        if let error {
            luaL_unref(lua, tally_lua_registry_index(), function.reference)
            pushErrorTable(lua, Array(error.utf8))
            return -1
        }
        library.functions.append(function)
        return 0
    }

    /// The table form of register_function; returns Redis's error text or nil.
    private static func readNamedArguments(_ lua: LuaState, into function: inout LuaFunction) -> String? {
        guard lua_type(lua, 1) == LUA_TTABLE else {
            return "calling redis.register_function with a single argument is only applicable to Lua table "
                + "(representing named arguments)."
        }
        var named = false
        lua_pushnil(lua)
        while lua_next(lua, 1) != 0 {
            guard lua_type(lua, -2) == LUA_TSTRING, let key = luaString(lua, -2) else {
                tally_lua_pop(lua, 2)
                return "named argument key given to redis.register_function is not a string"
            }
            let lower = key.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }
            let valueType = lua_type(lua, -1)
            switch String(decoding: lower, as: UTF8.self) {
            case "function_name":
                guard valueType == LUA_TSTRING || valueType == LUA_TNUMBER, let name = luaString(lua, -1) else {
                    tally_lua_pop(lua, 2)
                    return "function_name argument given to redis.register_function must be a string"
                }
                function.name = name
                named = true
            case "description":
                guard valueType == LUA_TSTRING || valueType == LUA_TNUMBER, let text = luaString(lua, -1) else {
                    tally_lua_pop(lua, 2)
                    return "description argument given to redis.register_function must be a string"
                }
                function.description = text
            case "callback":
                guard valueType == LUA_TFUNCTION else {
                    tally_lua_pop(lua, 2)
                    return "callback argument given to redis.register_function must be a function"
                }
                if function.reference != LUA_NOREF { luaL_unref(lua, tally_lua_registry_index(), function.reference) }
                function.reference = luaL_ref(lua, tally_lua_registry_index())
                continue
            case "flags":
                guard valueType == LUA_TTABLE else {
                    tally_lua_pop(lua, 2)
                    return "flags argument to redis.register_function must be a table representing function flags"
                }
                var position: Int32 = 1
                while true {
                    lua_rawgeti(lua, -1, position)
                    let flagType = lua_type(lua, -1)
                    if flagType == LUA_TNIL {
                        tally_lua_pop(lua, 1)
                        break
                    }
                    let text = String(decoding: (flagType == LUA_TSTRING ? luaString(lua, -1) : nil) ?? [],
                                      as: UTF8.self).lowercased()
                    tally_lua_pop(lua, 1)
                    guard let flag = ScriptFlags.names.first(where: { $0.0 == text }) else {
                        tally_lua_pop(lua, 2)
                        return "unknown flag given"
                    }
                    function.flags.insert(flag.1)
                    position += 1
                }
            default:
                tally_lua_pop(lua, 2)
                return "unknown argument given to redis.register_function"
            }
            tally_lua_pop(lua, 1)
        }
        if !named { return "redis.register_function must get a function name argument" }
        if function.reference == LUA_NOREF { return "redis.register_function must get a callback argument" }
        return nil
    }

    /// FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern].
    private static func list(_ context: inout CommandContext, runtime: ScriptingRuntime) {
        let arguments = context.arguments
        var withCode = false
        var pattern: ArraySlice<UInt8>?
        var index = 2
        while index < arguments.count {
            if !withCode && arguments.matches(index, "withcode") {
                withCode = true
                index += 1
            } else if pattern == nil && arguments.matches(index, "libraryname") {
                guard index + 1 < arguments.count else {
                    context.output.writeError("ERR library name argument was not given")
                    return
                }
                pattern = arguments[index + 1]
                index += 2
            } else {
                context.output.writeError(Array("ERR Unknown argument ".utf8) + arguments[index])
                return
            }
        }
        let selected = runtime.libraries.filter { library in
            pattern.map { globMatches($0, library.name, caseInsensitive: false) } ?? true
        }
        // Moved out of the context, not copied: a copy would duplicate the pending replies on
        // its first write (copy-on-write).
        var output = OutputBuffer(initialCapacity: 0, protocolVersion: context.output.protocolVersion)
        swap(&output, &context.output)
        output.writeArrayHeader(selected.count)
        for library in selected {
            output.writeMapHeader(withCode ? 4 : 3)
            output.writeBulkString("library_name".utf8)
            output.writeBulkString(library.name)
            output.writeBulkString("engine".utf8)
            output.writeBulkString("LUA".utf8)
            output.writeBulkString("functions".utf8)
            output.writeArrayHeader(library.functions.count)
            for function in library.functions {
                output.writeMapHeader(3)
                output.writeBulkString("name".utf8)
                output.writeBulkString(function.name)
                output.writeBulkString("description".utf8)
                if let description = function.description {
                    output.writeBulkString(description)
                } else {
                    output.writeNull()
                }
                output.writeBulkString("flags".utf8)
                let flags = ScriptFlags.names.filter { function.flags.contains($0.1) }
                output.writeSetHeader(flags.count)
                for (flagName, _) in flags { output.writeSimpleString(flagName.utf8) }
            }
            if withCode {
                output.writeBulkString("library_code".utf8)
                output.writeBulkString(library.code)
            }
        }
        swap(&output, &context.output)
    }
}
