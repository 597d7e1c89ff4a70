// ScriptingRuntime: the server's one Lua 5.1 interpreter, its script cache and the redis.* API.
import CLua
import Glibc
import CLuaLibraries
import TallyKeyspace
import TallyProtocol

/// A Lua state as the C API names it (the struct is opaque to Swift).
typealias LuaState = OpaquePointer

/// Shebang flags of a script (`#!lua flags=no-writes,allow-oom`), as Redis 7.0's script.c names them.
struct ScriptFlags: OptionSet {
    let rawValue: UInt8
    static let noWrites = ScriptFlags(rawValue: 1 << 0)
    static let allowOOM = ScriptFlags(rawValue: 1 << 1)
    static let allowStale = ScriptFlags(rawValue: 1 << 2)
    static let noCluster = ScriptFlags(rawValue: 1 << 3)
    static let allowCrossSlotKeys = ScriptFlags(rawValue: 1 << 4)
    /// No shebang: Redis 7.0 runs the script as before 7.0 (write checks per command).
    static let compatibility = ScriptFlags(rawValue: 1 << 5)

    static let names: [(String, ScriptFlags)] = [
        ("no-writes", .noWrites), ("allow-oom", .allowOOM), ("allow-stale", .allowStale),
        ("no-cluster", .noCluster), ("allow-cross-slot-keys", .allowCrossSlotKeys),
    ]
}

/// The state of one EVAL while it runs (Redis's scriptRunCtx).
final class ScriptRun {
    let engine: CommandEngine
    let session: ClientSession
    /// The script's SHA1, quoted in error replies.
    let sha: [UInt8]
    /// Protocol of the replies redis.call sees (`redis.setresp`).
    var resp: RESPVersion = .resp2
    /// EVAL_RO, or a `no-writes` script: write commands are refused.
    let readOnly: Bool
    /// `allow-oom`: denyoom commands run even over maxmemory.
    let allowOOM: Bool
    /// Memory was over `maxmemory` when the script started (server.pre_command_oom_state).
    let overMemoryLimitAtStart: Bool
    /// A write command already ran: later ones are not refused for OOM or MISCONF.
    var wroteDataset = false
    /// `redis.set_repl`: false after REPL_NONE/REPL_REPLICA, so later writes are not logged.
    var logsWrites = true
    /// The script's declared keys when its caller tracks keys (CLIENT TRACKING): a read
    /// command the script runs makes the caller remember these (server.c call()).
    var trackedKeys: [[UInt8]]?

    init(engine: CommandEngine, session: ClientSession, sha: [UInt8], readOnly: Bool, allowOOM: Bool,
         overMemoryLimitAtStart: Bool) {
        self.engine = engine
        self.session = session
        self.sha = sha
        self.readOnly = readOnly
        self.allowOOM = allowOOM
        self.overMemoryLimitAtStart = overMemoryLimitAtStart
    }
}

/// Redis's `redisLrand48`/`redisSrand48` (rand.c): the 48-bit linear congruential generator of
/// POSIX lrand48, global to the server, so math.random gives the same sequence on every machine.
struct Rand48 {
    private var state: UInt64 = 0x1234_ABCD_330E

    /// Seeds as srand48: the seed's 32 bits above the fixed low word 0x330E.
    mutating func seed(_ value: Int32) {
        state = UInt64(UInt32(bitPattern: value)) << 16 | 0x330E
    }

    /// The next value in 0..<2^31.
    mutating func next() -> Int32 {
        state = (state &* 0x5_DEEC_E66D &+ 0xB) & 0xFFFF_FFFF_FFFF
        return Int32(truncatingIfNeeded: state >> 17)
    }
}

/// A script's SHA1 (40 hex digits) as a dictionary key, hashed in one pass over its bytes: an
/// `[UInt8]` key hashes element by element, 40 Hasher calls on every EVAL's lookup.
struct ScriptDigest: Hashable {
    let hex: [UInt8]
    init(_ hex: [UInt8]) { self.hex = hex }
    func hash(into hasher: inout Hasher) { hex.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

/// The server's Lua interpreter: one `lua_State`, used by one script at a time under `lock`.
///
/// ```
///  EVAL ─► run() takes every shard (.runsExclusive) ─► lock ─► lua_pcall(script)
///                                                         │ redis.call ─► engine.run(insideExec)
///                                                         ▼            (RESP reply parsed to Lua)
///  reply ◄── finish(): log MULTI ... EXEC, unlock ◄── unlock ◄── Lua result → RESP
/// ```
///
/// The sandbox follows Redis 7.0: the base, table, string, math, debug (only for the error
/// handler), cjson, bit, cmsgpack and struct libraries; globals and library tables are read-only
/// proxies, so a script can neither create globals nor read undefined ones.
public final class ScriptingRuntime: @unchecked Sendable {
    /// Guards everything below.
    let lock = PosixLock()
    /// SHA1 (40 lowercase hex digits) → body and flags, as Redis's `lctx.lua_scripts`.
    var scripts: [ScriptDigest: (body: [UInt8], flags: ScriptFlags)] = [:]
    /// The body and SHA1 of the last EVAL: EVAL hashes its script on every call, and an app
    /// usually sends the same one again, so comparing bytes saves the digest (callgrind: 16k of
    /// the 64k instructions an EVAL of a rate limiter took).
    private var lastEval: (body: [UInt8], sha: [UInt8]) = ([], [])

    /// The script the last EVALSHA named (SHA1 in lowercase, flags): a rate limiter's client
    /// sends the same SHA1 over and over, and lowercasing it into a new array and looking it
    /// up cost ~1,100 of the ~25,000 instructions of a pipelined EVALSHA (callgrind).
    /// Forgotten with the cache (`reset`). Guarded by `lock`.
    private var lastEvalSHA: (sha: [UInt8], flags: ScriptFlags)?

    /// The cached script EVALSHA's `given` SHA1 names (any case) and its flags, or nil when none
    /// is cached. Called with `lock` held.
    func script(namedBy given: UnsafeRawBufferPointer) -> (sha: [UInt8], flags: ScriptFlags)? {
        if let last = lastEvalSHA, last.sha.count == given.count, last.sha.withUnsafeBytes({ cached in
            memcmp(cached.baseAddress!, given.baseAddress!, given.count) == 0
        }) {
            return last
        }
        let sha = given.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }
        guard let cached = scripts[ScriptDigest(sha)] else { return nil }
        lastEvalSHA = (sha, cached.flags)
        return (sha, cached.flags)
    }

    /// The SHA1 naming an EVAL body. Called with `lock` held.
    func digest(ofEvalBody body: ArraySlice<UInt8>) -> [UInt8] {
        let same = lastEval.body.count == body.count && lastEval.body.withUnsafeBytes { cached in
            body.withUnsafeBytes { given in memcmp(cached.baseAddress!, given.baseAddress!, given.count) == 0 }
        }
        if same && !body.isEmpty { return lastEval.sha }
        let sha = sha1Hex(body)
        lastEval = (Array(body), sha)
        return sha
    }
    /// The script running now (nil between scripts).
    var current: ScriptRun? {
        didSet { unretainedCurrent = current.map(Unmanaged.passUnretained) }
    }
    /// `current` unretained, for `redis.call`: reading `current` retained and released the run
    /// (two atomic operations) every call, and `current` holds it while it is set.
    private(set) var unretainedCurrent: Unmanaged<ScriptRun>?
    var random = Rand48()
    /// Scripts run since the last incremental garbage collection step.
    var callsSinceCollection = 0
    /// The command context `redis.call` reuses from one call to the next instead of building
    /// one a call (calls never nest: no command a script may call runs a script). Dropped when
    /// the script ends, so it never holds a finished client's session.
    var callContext: CommandContext?
    /// The arguments and reply buffer `redis.call` reuses (see `ScriptCalls.redisCall`).
    var callArguments = CommandArguments()
    var callOutput = OutputBuffer(initialCapacity: 128)
    /// The interpreter; SCRIPT FLUSH replaces it.
    private(set) var lua: LuaState
    /// Registry references: the real globals table (behind the read-only proxy) and the error handler.
    private(set) var realGlobals: Int32 = 0
    private(set) var errorHandler: Int32 = 0
    /// The metatable of the globals proxy, whose `__index` `useLoadTimeGlobals` switches.
    private var globalsMetatable: Int32 = 0

    /// True for the functions interpreter (FUNCTION/FCALL), which Redis 7.0 keeps apart from EVAL's.
    let forFunctions: Bool
    /// Function libraries in load order, and each function's library (FUNCTION LOAD).
    var libraries: [FunctionLibrary] = []
    /// The library FUNCTION LOAD is running now: its code sees only `redis.register_function`.
    var loadingLibrary: FunctionLibrary?
    /// Registry reference of the `redis` table library code sees while it loads.
    private(set) var libraryAPI: Int32 = 0
    /// When the library code now loading started (FUNCTION LOAD's 500 ms limit).
    var loadStartedMicroseconds: Int64 = 0

    init(forFunctions: Bool = false) {
        self.forFunctions = forFunctions
        lua = Self.makeState()
        install()
    }

    deinit { lua_close(lua) }

    private static func makeState() -> LuaState {
        guard let state = luaL_newstate() else { fatalError("Lua: cannot allocate the interpreter state") }
        return state
    }

    /// Scripts in the cache (INFO memory `number_of_cached_scripts`).
    public var cachedScriptCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return scripts.count
    }

    /// Bytes the script cache keeps outside the interpreter: each script's body and digest
    /// (INFO memory `used_memory_scripts_eval`).
    public var cachedScriptBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return scripts.values.reduce(0) { $0 + $1.body.count + 40 }
    }

    /// Loaded libraries, their functions, and the bytes their code and names keep outside the
    /// interpreter (INFO memory `number_of_libraries`, `number_of_functions`,
    /// `used_memory_functions`).
    public var libraryFigures: (libraries: Int, functions: Int, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        let functions = libraries.reduce(0) { $0 + $1.functions.count }
        let bytes = libraries.reduce(0) { $0 + $1.code.count + $1.name.count }
        return (libraries.count, functions, bytes)
    }

    /// Memory the interpreter holds (INFO memory `used_memory_lua`).
    public var interpreterBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return Int(lua_gc(lua, LUA_GCCOUNT, 0)) * 1024 + Int(lua_gc(lua, LUA_GCCOUNTB, 0))
    }

    /// SCRIPT FLUSH: forgets every script and starts a fresh interpreter (as Redis's scriptingReset).
    func reset() {
        scripts.removeAll()
        lastEvalSHA = nil
        libraries.removeAll()
        lua_close(lua)
        lua = Self.makeState()
        install()
    }

    private func install() {
        let lua = self.lua
        tally_lua_open_library(lua, luaopen_base, "")
        tally_lua_open_library(lua, luaopen_table, LUA_TABLIBNAME)
        tally_lua_open_library(lua, luaopen_string, LUA_STRLIBNAME)
        tally_lua_open_library(lua, luaopen_math, LUA_MATHLIBNAME)
        tally_lua_open_library(lua, luaopen_debug, LUA_DBLIBNAME)
        let libraries: [(lua_CFunction, String)] = [
            (luaopen_cjson, "cjson"), (luaopen_bit, "bit"),
            (tally_luaopen_cmsgpack, "cmsgpack"), (tally_luaopen_struct, "struct"),
        ]
        for (opener, name) in libraries {
            lua_pushcclosure(lua, opener, 0)
            lua_call(lua, 0, 1)
            lua_setfield(lua, tally_lua_globals_index(), name)
        }
        // The runtime, for the Swift entry points (they are plain C function pointers).
        lua_pushlightuserdata(lua, Unmanaged.passUnretained(self).toOpaque())
        lua_setfield(lua, tally_lua_registry_index(), "tally.runtime")
        tally_lua_set_hook_body(lua, scriptHookEntryPoint)

        lua_createtable(lua, 0, 32)
        for (name, entry) in RedisAPIEntry.exported {
            tally_lua_push_function(lua, redisAPIEntryPoint, entry.rawValue)
            lua_setfield(lua, -2, name)
        }
        let numbers: [(String, Double)] = [
            ("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3),
            ("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3),
            ("REDIS_VERSION_NUM", Double(0x07_00_0F)),
        ]
        for (name, value) in numbers {
            lua_pushnumber(lua, value)
            lua_setfield(lua, -2, name)
        }
        lua_pushstring(lua, "7.0.15")
        lua_setfield(lua, -2, "REDIS_VERSION")
        lua_setfield(lua, tally_lua_globals_index(), "redis")

        lua_getfield(lua, tally_lua_globals_index(), "math")
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.random.rawValue)
        lua_setfield(lua, -2, "random")
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.randomSeed.rawValue)
        lua_setfield(lua, -2, "randomseed")
        tally_lua_pop(lua, 1)

        // The sandbox, in Lua: returns the proxy globals, the real globals and the error handler.
        let loaded = Self.sandbox.withCString { text in
            luaL_loadbuffer(lua, text, Self.sandbox.utf8.count, "@tally_sandbox")
        }
        precondition(loaded == 0, "the Lua sandbox does not compile")
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.globalIndex.rawValue)
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.readonlyWrite.rawValue)
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.missingGlobal.rawValue)
        precondition(lua_pcall(lua, 3, 4, 0) == 0, "the Lua sandbox failed to install")
        globalsMetatable = luaL_ref(lua, tally_lua_registry_index())
        errorHandler = luaL_ref(lua, tally_lua_registry_index())
        realGlobals = luaL_ref(lua, tally_lua_registry_index())
        lua_replace(lua, tally_lua_globals_index())
        if forFunctions { installLibraryAPI() }
    }

    /// The `redis` table of library code at load time: register_function, log and the version.
    private func installLibraryAPI() {
        lua_createtable(lua, 0, 8)
        for (name, entry) in [("register_function", RedisAPIEntry.registerFunction), ("log", .log)] {
            tally_lua_push_function(lua, redisAPIEntryPoint, entry.rawValue)
            lua_setfield(lua, -2, name)
        }
        let numbers: [(String, Double)] = [
            ("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3),
            ("REDIS_VERSION_NUM", Double(0x07_00_0F)),
        ]
        for (name, value) in numbers {
            lua_pushnumber(lua, value)
            lua_setfield(lua, -2, name)
        }
        lua_pushstring(lua, "7.0.15")
        lua_setfield(lua, -2, "REDIS_VERSION")
        lua_createtable(lua, 0, 2)
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.missingGlobal.rawValue)
        lua_setfield(lua, -2, "__index")
        tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.readonlyWrite.rawValue)
        lua_setfield(lua, -2, "__newindex")
        lua_setmetatable(lua, -2)
        libraryAPI = luaL_ref(lua, tally_lua_registry_index())
    }

    /// Library code at load time sees only the `redis` load API (`true`, around a library's
    /// load), scripts and functions the real globals (`false`): the globals proxy's `__index`
    /// is then the C lookup that knows the difference, else the real globals table itself.
    func useLoadTimeGlobals(_ loading: Bool) {
        let registry = tally_lua_registry_index()
        lua_rawgeti(lua, registry, globalsMetatable)
        if loading {
            tally_lua_push_function(lua, redisAPIEntryPoint, RedisAPIEntry.globalIndex.rawValue)
        } else {
            lua_rawgeti(lua, registry, realGlobals)
        }
        lua_setfield(lua, -2, "__index")
        tally_lua_pop(lua, 1)
    }

    /// Builds the read-only environment (called with the C entry points for the globals lookup,
    /// a refused write and a missing global: errors raised from C name the script's line, as
    /// Redis's do). Written for Tally from Redis 7.0's observable behaviour:
    /// the globals Redis allows, `pcall` that turns error tables into their message, errors for
    /// undefined globals and for any write to globals or library tables, and the error handler
    /// that adds the failing line (source and line fields) to an error table.
    ///
    /// A global is found by a raw lookup in the real globals table (the proxy's `__index`), not a
    /// call into C per access: `redis`, `KEYS` and `ARGV` in a rate-limiter script cost about
    /// 5,000 instructions a run that way. A name the real table lacks reaches its own `__index`,
    /// the missing-global error. `getmetatable(_G)` shows the C lookup as `__index`, so no script
    /// can reach the real table and write to it.
    static let sandbox = """
    local real = {}
    local allowed = {
      'xpcall', 'tostring', 'getfenv', 'setmetatable', 'next', 'assert', 'tonumber', 'rawequal',
      'collectgarbage', 'getmetatable', 'rawset', 'coroutine', 'type', 'select', 'unpack',
      'gcinfo', 'pairs', 'rawget', 'loadstring', 'ipairs', '_VERSION', 'setfenv', 'load', 'error',
      'newproxy'
    }
    for _, name in ipairs(allowed) do real[name] = _G[name] end
    local global_index, refuse_write, missing_global = ...
    local debug_library = debug
    local base_pcall = pcall
    local guarded = setmetatable({}, { __mode = 'k' })
    -- getmetatable() of a guarded table gives a read-only view of its metatable.
    local function seal(metatable)
      metatable.__metatable = setmetatable({}, { __index = metatable, __newindex = refuse_write })
      return metatable
    end
    local function guard(library)
      local proxy = setmetatable({}, seal({ __index = library, __newindex = refuse_write }))
      guarded[proxy] = true
      return proxy
    end
    for _, name in ipairs({ 'string', 'math', 'table', 'cjson', 'bit', 'cmsgpack', 'struct', 'redis' }) do
      real[name] = guard(_G[name])
    end
    local function settle(ok, ...)
      if ok then return true, ... end
      local failure = ...
      if type(failure) == 'table' then
        local message = rawget(failure, 'err')
        if type(message) == 'string' or type(message) == 'number' then return false, message end
      end
      return false, failure
    end
    real.pcall = function(...) return settle(base_pcall(...)) end
    local base_setmetatable = setmetatable
    real.setmetatable = function(target, metatable)
      if guarded[target] then return refuse_write() end
      return base_setmetatable(target, metatable)
    end
    -- Precompiled chunks can break the interpreter's invariants: only source code loads.
    local base_loadstring = loadstring
    real.loadstring = function(source, name)
      if type(source) == 'string' and source:byte(1) == 27 then return nil, 'binary chunks are not allowed' end
      return base_loadstring(source, name)
    end
    local shown = { __index = global_index, __newindex = refuse_write }
    local globals_metatable = { __index = real, __newindex = refuse_write,
                                __metatable = setmetatable({}, { __index = shown, __newindex = refuse_write }) }
    local globals = setmetatable({}, globals_metatable)
    guarded[globals] = true
    real._G = globals
    local function handler(failure)
      local where = debug_library.getinfo(2, 'nSl')
      if where and where.what == 'C' then where = debug_library.getinfo(3, 'nSl') end
      if type(failure) ~= 'table' then failure = { err = 'ERR ' .. tostring(failure) } end
      if where then
        failure['source'] = where.source
        failure['line'] = where.currentline
      end
      return failure
    end
    setmetatable(real, { __index = missing_global })
    return globals, real, handler, globals_metatable
    """

    // MARK: Scripts

    /// Parses a shebang line: the flags, the length of the line to skip, or Redis's error text.
    static func shebang(_ body: [UInt8]) -> Result<(ScriptFlags, Int), ScriptError> {
        guard body.count >= 2 && body[0] == UInt8(ascii: "#") && body[1] == UInt8(ascii: "!") else {
            return .success((.compatibility, 0))
        }
        guard let end = body.firstIndex(of: UInt8(ascii: "\n")) else {
            return .failure(ScriptError("ERR Invalid script shebang"))
        }
        let parts = body[0..<end].split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == 13 }).map { Array($0) }
        guard let engine = parts.first else { return .failure(ScriptError("ERR Invalid engine in script shebang")) }
        guard engine == Array("#!lua".utf8) else {
            let name = String(decoding: engine, as: UTF8.self)
            return .failure(ScriptError("ERR Unexpected engine in script shebang: " + name))
        }
        var flags = ScriptFlags()
        for part in parts.dropFirst() {
            let text = String(decoding: part, as: UTF8.self)
            guard text.hasPrefix("flags=") else {
                return .failure(ScriptError("ERR Unknown lua shebang option: " + text))
            }
            for name in text.dropFirst(6).split(separator: ",", omittingEmptySubsequences: false) {
                guard let flag = ScriptFlags.names.first(where: { $0.0 == name }) else {
                    return .failure(ScriptError("ERR Unexpected flag in script shebang: " + name))
                }
                flags.insert(flag.1)
            }
        }
        return .success((flags, end))
    }

    /// Compiles `body` (cached under `sha`) unless it is already cached. Caller holds `lock`.
    func load(_ body: [UInt8], sha: [UInt8]) -> Result<ScriptFlags, ScriptError> {
        if let cached = scripts[ScriptDigest(sha)] { return .success(cached.flags) }
        let flags: ScriptFlags
        let skip: Int
        switch Self.shebang(body) {
        case .failure(let error): return .failure(error)
        case .success(let parsed): (flags, skip) = parsed
        }
        let lua = self.lua
        // One byte past the body keeps the pointer valid for an empty script.
        let padded = body + [0]
        let status = padded.withUnsafeBufferPointer { buffer -> Int32 in
            let base = UnsafeRawPointer(buffer.baseAddress! + skip).assumingMemoryBound(to: CChar.self)
            return luaL_loadbuffer(lua, base, body.count - skip, "@user_script")
        }
        if status != 0 {
            var message = Array("ERR Error compiling script (new function): ".utf8)
            message += luaString(lua, -1) ?? []
            tally_lua_pop(lua, 1)
            return .failure(ScriptError(message))
        }
        lua_setfield(lua, tally_lua_registry_index(), "f_" + String(decoding: sha, as: UTF8.self))
        scripts[ScriptDigest(sha)] = (body, flags)
        return .success(flags)
    }
}

/// One function of a library (redis.register_function).
struct LuaFunction {
    var name: [UInt8]
    /// Registry reference of the callback.
    var reference: Int32
    var flags: ScriptFlags
    var description: [UInt8]?
}

/// A function library (FUNCTION LOAD): its name, code and functions.
final class FunctionLibrary {
    let name: [UInt8]
    let code: [UInt8]
    var functions: [LuaFunction] = []

    init(name: [UInt8], code: [UInt8]) {
        self.name = name
        self.code = code
    }
}

/// An error reply text (without the leading `-`).
struct ScriptError: Error {
    var message: [UInt8]
    init(_ message: [UInt8]) { self.message = message }
    init(_ message: String) { self.message = Array(message.utf8) }
}

/// Reads the string (or number, as Lua converts it) at `index`.
func luaString(_ lua: LuaState, _ index: Int32) -> [UInt8]? {
    var length = 0
    guard let pointer = lua_tolstring(lua, index, &length) else { return nil }
    return Array(UnsafeRawBufferPointer(start: pointer, count: length))
}

/// Pushes `bytes` as a Lua string.
func luaPush(_ lua: LuaState, _ bytes: some Collection<UInt8>) {
    if bytes.isEmpty {
        lua_pushlstring(lua, "", 0)
        return
    }
    if let done = bytes.withContiguousStorageIfAvailable({ buffer -> Bool in
        lua_pushlstring(lua, UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self), buffer.count)
        return true
    }), done {
        return
    }
    Array(bytes).withUnsafeBufferPointer { buffer in
        lua_pushlstring(lua, UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self), buffer.count)
    }
}
