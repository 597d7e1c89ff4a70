// ErrorStatisticsTests: INFO errorstats counts and commandstats failed/rejected calls, as Redis 7.0.15.
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyTestSupport
import Testing

@Suite struct ErrorStatisticsTests {
    /// `CODE:count` rows, in INFO order.
    private func errorRows(_ h: CommandHarness) -> [String] {
        h.engine.errorStatistics.rows().map { String(decoding: $0.code, as: UTF8.self) + ":\($0.count)" }
    }

    /// `calls/rejected/failed` of one command, or nil when it has no row.
    private func calls(_ h: CommandHarness, _ name: String) -> String? {
        h.engine.commandStatistics().first { $0.name == name }
            .map { "\($0.calls)/\($0.rejectedCalls)/\($0.failedCalls)" }
    }

    @Test func errorCodeIsTheFirstWordWithinThirtyTwoBytes() {
        #expect(OutputBuffer.errorCode(Array("-WRONGTYPE Operation".utf8)[...]) == Array("WRONGTYPE".utf8))
        #expect(OutputBuffer.errorCode(Array("-NOSPACE".utf8)[...]) == Array("ERR".utf8))
        let long = "-" + String(repeating: "X", count: 40) + " tail"
        #expect(OutputBuffer.errorCode(Array(long.utf8)[...]) == Array("ERR".utf8))
        #expect(OutputBuffer.errorCode(Array("+OK".utf8)[...]) == Array("ERR".utf8))
    }

    @Test func successfulCommandsCountNothing() {
        let h = CommandHarness()
        h.run("SET", "k", "v")
        h.run("GET", "k")
        #expect(errorRows(h).isEmpty)
        #expect(h.engine.errorStatistics.totalErrorReplies == 0)
        #expect(calls(h, "set") == "1/0/0")
    }

    @Test func failedAndRejectedCallsCountByCode() {
        let h = CommandHarness()
        h.run("SET", "s", "v")
        #expect(h.reply("LPUSH", "s", "x").hasPrefix("-WRONGTYPE"))
        #expect(h.reply("SET", "k").hasPrefix("-ERR wrong number"))
        #expect(h.reply("NOSUCHCOMMAND").hasPrefix("-ERR unknown command"))
        h.run("XADD", "st", "*", "f", "v")
        #expect(h.reply("XGROUP", "CREATECONSUMER", "st", "g", "c").hasPrefix("-NOGROUP"))
        #expect(errorRows(h) == ["ERR:2", "NOGROUP:1", "WRONGTYPE:1"])
        #expect(h.engine.errorStatistics.totalErrorReplies == 4)
        #expect(calls(h, "lpush") == "1/0/1")
        #expect(calls(h, "set") == "1/1/0")
        h.run("SET", "k1", "v1")
        #expect(calls(h, "set") == "2/1/0")
        h.engine.resetStatistics()
        #expect(errorRows(h).isEmpty)
        #expect(h.engine.errorStatistics.totalErrorReplies == 0)
        #expect(calls(h, "set") == nil)
    }

    @Test func subcommandsHaveTheirOwnRows() {
        let h = CommandHarness()
        #expect(h.reply("XGROUP").hasPrefix("-ERR wrong number of arguments for 'xgroup'"))
        #expect(h.reply("XGROUP", "NOSUCH").hasPrefix("-ERR unknown subcommand"))
        #expect(h.reply("XGROUP", "CREATECONSUMER", "st").hasPrefix("-ERR wrong number of arguments"))
        h.run("XADD", "st", "1-1", "f", "v")
        #expect(h.reply("XGROUP", "CREATECONSUMER", "st", "g", "c").hasPrefix("-NOGROUP"))
        #expect(calls(h, "xgroup") == "0/1/0")
        #expect(calls(h, "xgroup|createconsumer") == "1/1/1")
        #expect(errorRows(h) == ["ERR:3", "NOGROUP:1"])
        // A script's reply assembled from nested tables keeps its errors counted.
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return {1, redis.error_reply('NESTED in array')}", "0")
            == "*2\r\n:1\r\n-NESTED in array\r\n")
        #expect(errorRows(h) == ["NESTED:1"])
        #expect(calls(h, "eval") == "1/0/1")
    }

    @Test func transactionsPinErrorsOnTheirCommands() {
        let h = CommandHarness()
        h.run("MULTI")
        h.run("SET", "a", "b")
        h.run("INCR", "a")
        #expect(h.reply("EXEC").contains("-ERR value is not an integer"))
        #expect(calls(h, "incr") == "1/0/1")
        #expect(calls(h, "exec") == "1/0/0")
        #expect(h.reply("EXEC") == "-ERR EXEC without MULTI\r\n")
        #expect(calls(h, "exec") == "2/0/1")
        #expect(errorRows(h) == ["ERR:2"])
        h.engine.resetStatistics()
        h.run("MULTI")
        h.run("SET")
        #expect(h.reply("EXEC").hasPrefix("-EXECABORT"))
        #expect(errorRows(h) == ["ERR:1", "EXECABORT:1"])
        #expect(calls(h, "set") == "0/1/0")
        #expect(calls(h, "multi") == "1/0/0")
        #expect(calls(h, "exec") == "1/0/1")
        #expect(h.engine.errorStatistics.totalErrorReplies == 2)
    }

    @Test func scriptErrorsCountOnce() {
        let h = CommandHarness()
        // redis.error_reply: counted under its own code.
        #expect(h.reply("EVAL", "return redis.error_reply('MY_ERR_CODE custom msg')", "0")
            == "-MY_ERR_CODE custom msg\r\n")
        #expect(errorRows(h) == ["MY_ERR_CODE:1"])
        #expect(calls(h, "eval") == "1/0/1")
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return redis.error_reply('')", "0") == "-ERR \r\n")
        #expect(errorRows(h) == ["ERR:1"])
        // redis.call of a failing command: the command's error, not the script's.
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return redis.call('select', 99)", "0").hasPrefix("-ERR DB index is out of range"))
        #expect(errorRows(h) == ["ERR:1"])
        #expect(h.engine.errorStatistics.totalErrorReplies == 1)
        #expect(calls(h, "select") == "1/0/1")
        #expect(calls(h, "eval") == "1/0/1")
        // redis.pcall and a script that swallows the error.
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "local t = redis.pcall('select', 99); return 1", "0") == ":1\r\n")
        #expect(errorRows(h) == ["ERR:1"])
        #expect(calls(h, "eval") == "1/0/0")
        // A command refused inside the script: rejected, counted once.
        h.engine.resetStatistics()
        #expect(h.reply("EVAL_RO", "return redis.call('set', 'x', 'y')", "1", "x")
            .hasPrefix("-ERR Write commands are not allowed from read-only scripts"))
        #expect(errorRows(h) == ["ERR:1"])
        #expect(h.engine.errorStatistics.totalErrorReplies == 1)
        #expect(calls(h, "set") == "0/1/0")
        #expect(calls(h, "eval_ro") == "1/0/1")
        // A WRONGTYPE from GEOADD inside a script.
        h.engine.resetStatistics()
        h.run("SET", "Sicily", "1")
        #expect(h.reply("EVAL", "return redis.call('GEOADD', 'Sicily', '13.361389', '38.115556', 'Palermo')", "1",
                        "Sicily").hasPrefix("-WRONGTYPE"))
        #expect(errorRows(h) == ["WRONGTYPE:1"])
        #expect(calls(h, "geoadd") == "1/0/1")
        #expect(calls(h, "eval") == "1/0/1")
        // A plain Lua runtime error.
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return nosuchglobal", "0").hasPrefix("-ERR "))
        #expect(errorRows(h) == ["ERR:1"])
    }

    @Test func scriptOutOfMemoryRefusalCountsAsOOM() {
        let h = CommandHarness()
        h.run("SET", "big", String(repeating: "x", count: 1000))
        h.engine.setMemoryLimit(bytes: 1, policy: .noEviction, samples: 5)
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return redis.call('set','x','y')", "1", "x").hasPrefix("-OOM "))
        #expect(errorRows(h) == ["OOM:1"])
        #expect(calls(h, "set") == "0/1/0")
        #expect(calls(h, "eval") == "1/0/1")
        h.engine.resetStatistics()
        #expect(h.reply("EVAL", "return redis.pcall('set','x','y')", "1", "x").hasPrefix("-OOM "))
        #expect(errorRows(h) == ["OOM:1"])
        #expect(h.engine.errorStatistics.totalErrorReplies == 1)
        #expect(calls(h, "eval") == "1/0/1")
        h.engine.resetStatistics()
        #expect(h.reply("SET", "y", "z").hasPrefix("-OOM "))
        #expect(errorRows(h) == ["OOM:1"])
        #expect(calls(h, "set") == "0/1/0")
        h.engine.setMemoryLimit(bytes: 0, policy: .noEviction, samples: 5)
    }

    @Test func scriptsRefuseBlockingStreamReads() {
        let h = CommandHarness()
        h.run("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")
        #expect(h.reply("EVAL", "return redis.pcall('xread','STREAMS','s','$')", "1", "s") == "$-1\r\n")
        #expect(h.reply("EVAL", "return redis.pcall('xread','BLOCK',0,'STREAMS','s','$')", "1", "s")
            == "-ERR xread command is not allowed with BLOCK option from scripts\r\n")
        #expect(h.reply("EVAL", "return redis.pcall('XREADGROUP','group','g','c','BLOCK',0,'STREAMS','s','>')", "1",
                        "s") == "-ERR XREADGROUP command is not allowed with BLOCK option from scripts\r\n")
        // Outside a script BLOCK is still accepted (here with data ready, so it does not wait).
        h.run("XADD", "s", "1-1", "f", "v")
        #expect(h.reply("XREAD", "BLOCK", "0", "STREAMS", "s", "0").hasPrefix("*1"))
    }

    @Test func sortByConstantIsOrderedInsideScripts() {
        let h = CommandHarness()
        h.run("SADD", "myset", "c", "a", "b", "aa")
        #expect(h.reply("EVAL", "return redis.call('sort',KEYS[1],'by','_')", "1", "myset")
            == "*4\r\n$1\r\na\r\n$2\r\naa\r\n$1\r\nb\r\n$1\r\nc\r\n")
        #expect(h.reply("EVAL", "return redis.call('sort',KEYS[1],'by','_','get','#','get','_:*')", "1", "myset")
            == "*8\r\n$1\r\na\r\n$-1\r\n$2\r\naa\r\n$-1\r\n$1\r\nb\r\n$-1\r\n$1\r\nc\r\n$-1\r\n")
        // A list keeps its own order.
        h.run("RPUSH", "l", "z", "y")
        #expect(h.reply("EVAL", "return redis.call('sort',KEYS[1],'by','_')", "1", "l")
            == "*2\r\n$1\r\nz\r\n$1\r\ny\r\n")
    }
}
