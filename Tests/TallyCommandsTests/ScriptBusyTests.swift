// ScriptBusyTests: busy-reply-threshold, -BUSY, SCRIPT KILL / FUNCTION KILL, FUNCTION DUMP/RESTORE.
import Dispatch
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyProtocol
import TallyTestSupport
import Testing

@Suite struct ScriptBusyTests {
    static let library = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return 'one' end)"
    static let other = "#!lua name=lib2\nredis.register_function('f2', function(keys, args) return 'two' end)"

    @Test func killWithNothingRunningIsNotBusy() {
        let h = CommandHarness()
        #expect(h.reply("SCRIPT", "KILL") == "-NOTBUSY No scripts in execution right now.\r\n")
        #expect(h.reply("FUNCTION", "KILL") == "-NOTBUSY No scripts in execution right now.\r\n")
    }

    @Test func functionLoadStopsLibraryCodeAfterHalfASecond() {
        let h = CommandHarness()
        let reply = h.reply("FUNCTION", "LOAD", "#!lua name=slow\nlocal a = 1 while 1 do a = a + 1 end")
        #expect(reply.hasPrefix("-ERR Error registering functions: "))
        #expect(reply.contains("FUNCTION LOAD timeout"))
    }

    @Test func dumpAndRestoreFollowTheirPolicies() {
        let h = CommandHarness()
        h.engine.installDumpCodec(RDBDumpPayloadCodec())
        #expect(h.reply("FUNCTION", "LOAD", Self.library) == "$4\r\nlib1\r\n")
        let payload = h.run("FUNCTION", "DUMP")
        let body = Array(payload[payload.firstIndex(of: 10)! + 1 ..< payload.count - 2])
        #expect(body.first == 245)
        let restore = { (policy: [String]) -> String in
            let words = [Array("FUNCTION".utf8), Array("RESTORE".utf8), body] + policy.map { Array($0.utf8) }
            return String(decoding: h.run(words), as: UTF8.self)
        }
        #expect(restore([]) == "-ERR Library lib1 already exists\r\n")
        #expect(restore(["REPLACE"]) == "+OK\r\n")
        #expect(restore(["BAD"])
            == "-ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.\r\n")
        #expect(h.reply("FUNCTION", "RESTORE", "bad_payload") == "-ERR DUMP payload version or checksum are wrong\r\n")
        #expect(h.reply("FUNCTION", "FLUSH") == "+OK\r\n")
        #expect(h.reply("FUNCTION", "LOAD", Self.other) == "$4\r\nlib2\r\n")
        #expect(restore(["APPEND"]) == "+OK\r\n")
        #expect(h.reply("FCALL", "f1", "0") == "$3\r\none\r\n")
        #expect(h.reply("FCALL", "f2", "0") == "$3\r\ntwo\r\n")
        #expect(restore(["FLUSH"]) == "+OK\r\n")
        #expect(h.reply("FCALL", "f2", "0") == "-ERR Function not found\r\n")
        // A function name another library holds refuses the whole restore.
        #expect(h.reply("FUNCTION", "FLUSH") == "+OK\r\n")
        let clash = "#!lua name=lib3\nredis.register_function('f1', function(keys, args) return 'three' end)"
        #expect(h.reply("FUNCTION", "LOAD", clash) == "$4\r\nlib3\r\n")
        #expect(restore(["REPLACE"]) == "-ERR Function f1 already exists\r\n")
        #expect(h.reply("FCALL", "f1", "0") == "$5\r\nthree\r\n")
        #expect(h.reply("FUNCTION", "RESTORE", "a", "b", "c")
            == "-ERR unknown subcommand or wrong number of arguments for 'RESTORE'. Try FUNCTION HELP.\r\n")
    }

    static func call(_ engine: CommandEngine, _ session: ClientSession, _ words: [String]) -> String {
        var output = OutputBuffer()
        engine.execute(CommandArguments(words.map { Array($0.utf8) }), session: session, output: &output)
        return String(decoding: output.storage[output.readerIndex..<output.writerIndex], as: UTF8.self)
    }

    @Test func busyScriptRefusesOthersUntilKilled() {
        let engine = CommandEngine(configuration: EngineConfiguration(), clock: ManualClock(), serverCommands: [])
        engine.scriptWatch.setThreshold(milliseconds: 10)
        let finished = Mutex<String?>(nil)
        let started = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let call = { @Sendable (session: ClientSession, words: [String]) -> String in
            Self.call(engine, session, words)
        }
        runOnOwnThread {
            started.signal()
            let reply = call(ClientSession(id: 1), ["EVAL", "while true do end", "0"])
            finished.withLock { $0 = reply }
            done.signal()
        }
        started.wait()
        let other = ClientSession(id: 2)
        while !engine.scriptWatch.isRunning { usleep(1000) }
        #expect(call(other, ["PING"]).hasPrefix("-BUSY Redis is busy running a script. You can only call SCRIPT KILL"))
        #expect(call(other, ["FUNCTION", "KILL"])
            == "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n")
        #expect(call(other, ["FUNCTION", "STATS"])
            == "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n")
        #expect(call(other, ["SCRIPT", "KILL"]) == "+OK\r\n")
        done.wait()
        #expect(finished.withLock { $0 }?.hasPrefix("-ERR Script killed by user with SCRIPT KILL...") == true)
        #expect(call(other, ["PING"]) == "+PONG\r\n")
    }

    @Test func busyFunctionShowsInStatsAndOnlyFunctionKillStopsIt() {
        let engine = CommandEngine(configuration: EngineConfiguration(), clock: ManualClock(), serverCommands: [])
        engine.scriptWatch.setThreshold(milliseconds: 10)
        let call = { @Sendable (session: ClientSession, words: [String]) -> String in
            Self.call(engine, session, words)
        }
        let other = ClientSession(id: 2)
        let code = "#!lua name=spin\n"
            + "redis.register_function('spin', function() local a = 1 while true do a = a + 1 end end)"
        #expect(call(other, ["FUNCTION", "LOAD", code]) == "$4\r\nspin\r\n")
        let finished = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        runOnOwnThread {
            let reply = call(ClientSession(id: 1), ["FCALL", "spin", "0"])
            finished.withLock { $0 = reply }
            done.signal()
        }
        while !engine.scriptWatch.isRunning { usleep(1000) }
        let busy = "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
        #expect(call(other, ["GET", "k"]) == busy)
        let stats = call(other, ["FUNCTION", "STATS"])
        #expect(stats.hasPrefix("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n"
            + "$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"))
        #expect(call(other, ["SCRIPT", "KILL"]) == busy)
        #expect(call(other, ["FUNCTION", "KILL"]) == "+OK\r\n")
        done.wait()
        let killed = finished.withLock { $0 } ?? ""
        #expect(killed.hasPrefix("-ERR Script killed by user with SCRIPT KILL... script: spin"))
        #expect(call(other, ["FUNCTION", "STATS"]).contains("running_script\r\n$-1\r\n"))
    }

    @Test func scriptThatWroteCannotBeKilled() {
        let engine = CommandEngine(configuration: EngineConfiguration(), clock: ManualClock(), serverCommands: [])
        engine.scriptWatch.setThreshold(milliseconds: 10)
        let done = DispatchSemaphore(value: 0)
        let call = { @Sendable (session: ClientSession, words: [String]) -> String in
            Self.call(engine, session, words)
        }
        runOnOwnThread {
            let body = "redis.call('set','x','1') local i = 0 while i < 30000000 do i = i + 1 end"
            _ = call(ClientSession(id: 1), ["EVAL", body, "0"])
            done.signal()
        }
        let other = ClientSession(id: 2)
        while !engine.scriptWatch.isRunning { usleep(1000) }
        #expect(call(other, ["SCRIPT", "KILL"]).hasPrefix("-UNKILLABLE Sorry the script already executed write"))
        done.wait()
        #expect(call(other, ["GET", "x"]) == "$1\r\n1\r\n")
    }
}
