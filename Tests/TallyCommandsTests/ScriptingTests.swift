// ScriptingTests: EVAL family, the redis.* API, Lua <-> RESP conversions, errors and effects logging.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct ScriptingTests {
    @Test func sha1MatchesKnownDigests() {
        #expect(String(decoding: sha1Hex([UInt8]()), as: UTF8.self) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(String(decoding: sha1Hex(Array("abc".utf8)), as: UTF8.self)
            == "a9993e364706816aba3e25717850c26c9cd0d89d")
        let long = Array(repeating: UInt8(ascii: "a"), count: 1000)
        #expect(String(decoding: sha1Hex(long), as: UTF8.self) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    @Test func returnValuesConvertAsRedisDoes() {
        let h = CommandHarness()
        #expect(h.reply("EVAL", "return 3.99", "0") == ":3\r\n")
        #expect(h.reply("EVAL", "return -3.99", "0") == ":-3\r\n")
        #expect(h.reply("EVAL", "return 'x'", "0") == "$1\r\nx\r\n")
        #expect(h.reply("EVAL", "return true", "0") == ":1\r\n")
        #expect(h.reply("EVAL", "return false", "0") == "$-1\r\n")
        #expect(h.reply("EVAL", "return nil", "0") == "$-1\r\n")
        #expect(h.reply("EVAL", "return {1,2,nil,4}", "0") == "*2\r\n:1\r\n:2\r\n")
        #expect(h.reply("EVAL", "return {1,{'a',false}}", "0") == "*2\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n")
        #expect(h.reply("EVAL", "return {ok='FINE'}", "0") == "+FINE\r\n")
        #expect(h.reply("EVAL", "return {err='x'}", "0") == "-x\r\n")
        #expect(h.reply("EVAL", "return redis.error_reply('My Error')", "0") == "-My Error\r\n")
        #expect(h.reply("EVAL", "return redis.status_reply('FOO')", "0") == "+FOO\r\n")
        #expect(h.reply("EVAL", "return {KEYS[1], ARGV[1], ARGV[2]}", "1", "k", "a", "b")
            == "*3\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\nb\r\n")
    }

    @Test func resp3RepliesFromScripts() {
        let h = CommandHarness()
        h.run("HELLO", "3")
        #expect(h.reply("EVAL", "redis.setresp(3); return {double=3.5}", "0") == ",3.5\r\n")
        #expect(h.reply("EVAL", "redis.setresp(3); return true", "0") == "#t\r\n")
        #expect(h.reply("EVAL", "return true", "0") == ":1\r\n")
        #expect(h.reply("EVAL", "return false", "0") == "_\r\n")
        #expect(h.reply("EVAL", "return {map={a=1}}", "0") == "%1\r\n$1\r\na\r\n:1\r\n")
        #expect(h.reply("EVAL", "return {set={a=true}}", "0") == "~1\r\n$1\r\na\r\n")
        #expect(h.reply("EVAL", "return {big_number='123'}", "0") == "(123\r\n")
        #expect(h.reply("EVAL", "return {verbatim_string={format='txt', string='hi'}}", "0") == "=6\r\ntxt:hi\r\n")
        h.run("HELLO", "2")
        #expect(h.reply("EVAL", "return {map={a=1}}", "0") == "*2\r\n$1\r\na\r\n:1\r\n")
        #expect(h.reply("EVAL", "return {double=3.5}", "0") == "$3\r\n3.5\r\n")
    }

    @Test func commandRepliesConvertToLua() {
        let h = CommandHarness()
        h.run("SET", "s", "v")
        #expect(h.reply("EVAL", "return redis.call('get', KEYS[1])", "1", "s") == "$1\r\nv\r\n")
        #expect(h.reply("EVAL", "return type(redis.call('get', 'nokey'))", "0") == "$7\r\nboolean\r\n")
        #expect(h.reply("EVAL", "return redis.call('set', 'a', 'b')['ok']", "0") == "$2\r\nOK\r\n")
        #expect(h.reply("EVAL", "return redis.call('incrby', 'n', 5) + 1", "0") == ":6\r\n")
        #expect(h.reply("EVAL", "redis.setresp(3); return type(redis.call('get', 'nokey'))", "0")
            == "$3\r\nnil\r\n")
        #expect(h.reply("EVAL", "redis.setresp(3); return redis.call('hgetall', 'nokey')['map'] ~= nil", "0")
            == ":1\r\n")
        // Numbers passed to redis.call are formatted with %.17g.
        #expect(h.reply("EVAL", "redis.call('set', 'f', 0.1); return redis.call('get', 'f')", "0")
            == "$19\r\n0.10000000000000001\r\n")
    }

    @Test func errorsCarryTheScriptLocation() {
        let h = CommandHarness()
        h.run("SET", "str", "x")
        let sha = "5b189d9d1be3b67dbfd2439c7970f29c29c107a8"
        #expect(h.reply("EVAL", "return redis.call('lpush','str','x')", "0")
            == "-WRONGTYPE Operation against a key holding the wrong kind of value script: \(sha), "
            + "on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "return redis.pcall('lpush','str','x')", "0")
            == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        #expect(h.reply("EVAL", "return redis.call('nosuch')", "0")
            == "-ERR Unknown Redis command called from script script: 206396248e12c6e742fd7296250433c8d7343b74, "
            + "on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "return redis.call('hset','h')", "0")
            == "-ERR Wrong number of args calling Redis command from script script: "
            + "6fd9c1f4b87890be4faa1edc767c6bc923bff304, on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "return redis.call('multi')", "0")
            == "-ERR This Redis command is not allowed from script script: "
            + "c329a1a294be6bf95b44144f7502610661ae925a, on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "error('boom')", "0")
            == "-ERR user_script:1: boom script: 82903a0434f1503e152f89c03c9acd881a0e8150, on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "x = 5", "0")
            == "-ERR user_script:1: Attempt to modify a readonly table script: "
            + "818a330663e3c3e78469660421595218e5ab5c48, on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "return x", "0")
            == "-ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: "
            + "03c387736bb5cc009ff35151572cee04677aa374, on @user_script:1.\r\n")
        #expect(h.reply("EVAL", "return os", "0").contains("nonexistent global variable 'os'"))
        // Globals are looked up in the real table, which no script can reach to write to: the
        // metatable _G shows still has a function as its __index.
        #expect(h.reply("EVAL", "return type(getmetatable(_G).__index)", "0") == "$8\r\nfunction\r\n")
        #expect(h.reply("EVAL", "return getmetatable(_G).__index(_G, 'KEYS')[1]", "1", "k") == "$1\r\nk\r\n")
        #expect(h.reply("EVAL", "rawset(getmetatable(_G).__index, 'redis', 1)", "0").contains("table expected"))
        #expect(h.reply("EVAL", "getmetatable(_G).__index = {}", "0").contains("Attempt to modify a readonly table"))
        #expect(h.reply("EVAL", "return type(redis)", "0") == "$5\r\ntable\r\n")
        #expect(h.reply("EVAL", "syntax error here", "0")
            == "-ERR Error compiling script (new function): user_script:1: '=' expected near 'error'\r\n")
        #expect(h.reply("EVAL_RO", "return redis.call('set','a','b')", "0")
            == "-ERR Write commands are not allowed from read-only scripts. script: "
            + "ff967d0ae0e68b4f9e360fa91c54598bc25ad9b6, on @user_script:1.\r\n")
    }

    @Test func argumentErrors() {
        let h = CommandHarness()
        #expect(h.reply("EVAL", "return 1", "2", "a") == "-ERR Number of keys can't be greater than number of args\r\n")
        #expect(h.reply("EVAL", "return 1", "-1") == "-ERR Number of keys can't be negative\r\n")
        #expect(h.reply("EVAL", "return 1", "x") == "-ERR value is not an integer or out of range\r\n")
        #expect(h.reply("EVALSHA", "abc", "0") == "-NOSCRIPT No matching script. Please use EVAL.\r\n")
        #expect(h.reply("EVALSHA", String(repeating: "f", count: 40), "0")
            == "-NOSCRIPT No matching script. Please use EVAL.\r\n")
    }

    @Test func scriptCache() {
        let h = CommandHarness()
        let sha = "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        #expect(h.reply("SCRIPT", "LOAD", "return 1") == "$40\r\n\(sha)\r\n")
        #expect(h.reply("EVALSHA", sha, "0") == ":1\r\n")
        #expect(h.reply("EVALSHA", sha.uppercased(), "0") == ":1\r\n")
        #expect(h.reply("SCRIPT", "EXISTS", sha, "nope") == "*2\r\n:1\r\n:0\r\n")
        #expect(h.reply("SCRIPT", "FLUSH", "bad") == "-ERR SCRIPT FLUSH only support SYNC|ASYNC option\r\n")
        #expect(h.reply("SCRIPT", "FLUSH") == "+OK\r\n")
        #expect(h.reply("SCRIPT", "EXISTS", sha) == "*1\r\n:0\r\n")
        #expect(h.reply("EVALSHA", sha, "0") == "-NOSCRIPT No matching script. Please use EVAL.\r\n")
        #expect(h.reply("EVAL", "return 1", "0") == ":1\r\n")
        #expect(h.reply("EVALSHA", sha, "0") == ":1\r\n")
        #expect(h.reply("SCRIPT", "KILL") == "-NOTBUSY No scripts in execution right now.\r\n")
    }

    @Test func shebangFlags() {
        let h = CommandHarness()
        #expect(h.reply("EVAL", "#!lua flags=no-writes\nreturn redis.call('set','a','b')", "0")
            .hasPrefix("-ERR Write commands are not allowed from read-only scripts."))
        #expect(h.reply("EVAL_RO", "#!lua\nreturn 1", "0")
            == "-ERR Can not execute a script with write flag using *_ro command.\r\n")
        #expect(h.reply("EVAL_RO", "#!lua flags=no-writes\nreturn 1", "0") == ":1\r\n")
        #expect(h.reply("EVAL", "#!lua flags=bogus\nreturn 1", "0")
            == "-ERR Unexpected flag in script shebang: bogus\r\n")
        #expect(h.reply("EVAL", "#!python\nreturn 1", "0")
            == "-ERR Unexpected engine in script shebang: #!python\r\n")
        #expect(h.reply("EVAL", "#!lua", "0") == "-ERR Invalid script shebang\r\n")
    }

    @Test func redisAPIMembers() {
        let h = CommandHarness()
        #expect(h.reply("EVAL", "return redis.sha1hex('')", "0")
            == "$40\r\nda39a3ee5e6b4b0d3255bfef95601890afd80709\r\n")
        #expect(h.reply("EVAL", "return redis.REDIS_VERSION", "0") == "$6\r\n7.0.15\r\n")
        #expect(h.reply("EVAL", "return redis.REDIS_VERSION_NUM", "0") == ":458767\r\n")
        #expect(h.reply("EVAL", "return redis.replicate_commands()", "0") == ":1\r\n")
        #expect(h.reply("EVAL", "redis.log(redis.LOG_WARNING, 'hi'); return 1", "0") == ":1\r\n")
        #expect(h.reply("EVAL", "return cjson.encode({1,2})", "0") == "$5\r\n[1,2]\r\n")
        #expect(h.reply("EVAL", "return bit.band(7, 3)", "0") == ":3\r\n")
        #expect(h.reply("EVAL", "return pcall(function() redis.call('nosuch') end)", "0") == "$-1\r\n")
        #expect(h.reply("EVAL", "local ok, e = pcall(function() redis.call('nosuch') end); return e", "0")
            == "$44\r\nERR Unknown Redis command called from script\r\n")
    }

    /// cmsgpack and struct (Sources/CLuaLibraries): expected bytes are redis-server 7.0.15's.
    @Test func messagePackAndStructLibraries() {
        let h = CommandHarness()
        func hex(_ expression: String) -> String {
            let script = "local s = \(expression) local h = '' for i = 1, #s do h = h .. string.format('%02x', s:byte(i)) end return h"
            let reply = h.reply("EVAL", script, "0")
            return String(reply.split(separator: "\r\n").dropFirst().first ?? "")
        }
        #expect(hex("cmsgpack.pack(0.1)") == "cb3fb999999999999a")
        #expect(hex("cmsgpack.pack(-1099511627776)") == "d3ffffff0000000000")
        #expect(hex("cmsgpack.pack(1.5, {1, 2}, {a = true}, string.rep('x', 40))")
            == "ca3fc0000092010281a161c3d928" + String(repeating: "78", count: 40))
        // A table that contains itself: 16 levels, then nil.
        #expect(hex("(function() local a = {y = 5} local b = {x = a} a.x = b return cmsgpack.pack(a) end)()")
            == String(repeating: "82a17905a17881a178", count: 8) + "c0")
        #expect(h.reply("EVAL", "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}", "0")
            == "*3\r\n:2\r\n:1\r\n:2\r\n")
        #expect(h.reply("EVAL", "return cmsgpack.unpack(string.char(0xc1))", "0").hasPrefix(
            "-ERR user_script:1: Bad data format in input."))
        #expect(hex("struct.pack('>i2<i2!4bi4', 1, 2, 3, 4)") == "0001020003000000" + "04000000")
        #expect(h.reply("EVAL", "return {struct.unpack('b c0', string.char(3) .. 'abcd')}", "0")
            == "*2\r\n$3\r\nabc\r\n:5\r\n")  // c0 takes the count and pops it
        #expect(h.reply("EVAL", "return struct.size('!4 b i4 d')", "0") == ":16\r\n")
        #expect(h.reply("EVAL", "cmsgpack.pack = 1", "0").contains("Attempt to modify a readonly table"))
    }

    @Test func mathRandomFollowsRedisSequence() {
        let h = CommandHarness()
        // redis-server 7.0.15 right after start: the first math.random() of the process.
        #expect(h.reply("EVAL", "return tostring(math.random())", "0") == "$16\r\n0.39646477363839\r\n")
        #expect(h.reply("EVAL", "return tostring(math.random())", "0") == "$16\r\n0.84048536971234\r\n")
        #expect(h.reply("EVAL", "math.randomseed(42); return math.random(100)", "0") == ":75\r\n")
    }

    @Test func scriptWritesAreLoggedAsEffects() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("EVAL", "redis.call('set', KEYS[1], 'v')", "1", "k")
        #expect(log.recorded == ["0:set k v"])
        h.run("EVAL", "redis.call('incr', 'a'); redis.call('incr', 'b')", "0")
        #expect(log.recorded.last == "0:MULTI; 0:incr a; 0:incr b; 0:EXEC")
        h.run("EVAL", "return redis.call('get', 'a')", "0")
        #expect(log.recorded.count == 2)
        h.run("EVAL", "redis.set_repl(redis.REPL_NONE); redis.call('incr', 'a')", "0")
        #expect(log.recorded.count == 2)
        // SELECT inside a script does not change the caller's database.
        h.run("EVAL", "redis.call('select', 5); redis.call('set', 'x', 1)", "0")
        #expect(h.reply("GET", "x") == "$-1\r\n")
        h.run("SELECT", "5")
        #expect(h.reply("GET", "x") == "$1\r\n1\r\n")
    }

    @Test func evalInsideMulti() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("MULTI")
        #expect(h.reply("EVAL", "return redis.call('incr', 'n')", "0") == "+QUEUED\r\n")
        h.run("INCR", "n")
        #expect(h.reply("EXEC") == "*2\r\n:1\r\n:2\r\n")
        #expect(log.recorded == ["0:MULTI; 0:incr n; 0:INCR n; 0:EXEC"])
    }

    @Test func blockingCommandsAreRefusedInScripts() {
        let h = CommandHarness()
        #expect(h.reply("EVAL", "return redis.call('blpop', 'nolist', 0)", "0")
            .hasPrefix("-ERR This Redis command is not allowed from script"))
    }
}

@Suite struct FunctionTests {
    static let library = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return keys[1] end)"

    @Test func loadCallAndErrors() {
        let h = CommandHarness()
        #expect(h.reply("FUNCTION", "LOAD", "return 1") == "-ERR Missing library metadata\r\n")
        #expect(h.reply("FUNCTION", "LOAD", Self.library) == "$4\r\nlib1\r\n")
        #expect(h.reply("FUNCTION", "LOAD", Self.library) == "-ERR Library 'lib1' already exists\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "REPLACE", Self.library) == "$4\r\nlib1\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua name=lib2\nlocal x = 1") == "-ERR No functions registered\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function('f1', function() end)")
            == "-ERR Function f1 already exists\r\n")
        #expect(h.reply("FCALL", "f1", "1", "kk") == "$2\r\nkk\r\n")
        #expect(h.reply("FCALL", "nosuch", "0") == "-ERR Function not found\r\n")
        #expect(h.reply("FCALL_RO", "f1", "0")
            == "-ERR Can not execute a script with write flag using *_ro command.\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua name=lib4\nredis.call('set','a','b')")
            == "-ERR Error registering functions: ERR user_function:2: Script attempted to access nonexistent "
            + "global variable 'call'\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua name=lib4\nx = 1")
            == "-ERR Error registering functions: ERR user_function:2: Attempt to modify a readonly table\r\n")
        let failing = "#!lua name=lib4\nredis.register_function('f4', function() error('in f4') end)"
        #expect(h.reply("FUNCTION", "LOAD", failing) == "$4\r\nlib4\r\n")
        #expect(h.reply("FCALL", "f4", "0") == "-ERR user_function:2: in f4 script: f4, on @user_function:2.\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua name=x foo=bar\nreturn 1")
            == "-ERR Invalid metadata value given: foo=bar\r\n")
        #expect(h.reply("FUNCTION", "LOAD", "#!lua\nreturn 1") == "-ERR Library name was not given\r\n")
        #expect(h.reply("FUNCTION", "DELETE", "nosuch") == "-ERR Library not found\r\n")
        #expect(h.reply("FUNCTION", "DELETE", "lib4") == "+OK\r\n")
        #expect(h.reply("FCALL", "f4", "0") == "-ERR Function not found\r\n")
    }

    @Test func namedRegistrationAndList() {
        let h = CommandHarness()
        let code = "#!lua name=lib3\nredis.register_function{function_name='f3', callback=function(keys, args) "
            + "return redis.call('get', keys[1]) end, flags={'no-writes'}}"
        #expect(h.reply("FUNCTION", "LOAD", code) == "$4\r\nlib3\r\n")
        h.run("SET", "a", "x")
        #expect(h.reply("FCALL_RO", "f3", "1", "a") == "$1\r\nx\r\n")
        #expect(h.reply("FUNCTION", "LIST")
            == "*1\r\n*6\r\n$12\r\nlibrary_name\r\n$4\r\nlib3\r\n$6\r\nengine\r\n$3\r\nLUA\r\n$9\r\nfunctions\r\n"
            + "*1\r\n*6\r\n$4\r\nname\r\n$2\r\nf3\r\n$11\r\ndescription\r\n$-1\r\n$5\r\nflags\r\n*1\r\n+no-writes\r\n")
        #expect(h.reply("FUNCTION", "STATS")
            == "*4\r\n$14\r\nrunning_script\r\n$-1\r\n$7\r\nengines\r\n*2\r\n$3\r\nLUA\r\n*4\r\n"
            + "$15\r\nlibraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:1\r\n")
        #expect(h.reply("FUNCTION", "FLUSH") == "+OK\r\n")
        #expect(h.reply("FCALL", "f3", "0") == "-ERR Function not found\r\n")
    }
}
