// DispatchFlagTests: each command-table flag decides in dispatch, in processCommand's order.
import Synchronization
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct DispatchFlagTests {
    /// Counts how often a row's handler ran.
    private final class RunCounter: Sendable {
        let runs = Atomic<Int>(0)
    }

    /// A `no-multi` admin row that counts its runs, like SHUTDOWN or SAVE.
    private static func countingRow(_ name: String, _ counter: RunCounter) -> CommandSpec {
        CommandSpec(name: name, arity: -1, flags: [.admin, .noScript, .loading, .stale, .noMulti]) { context in
            counter.runs.add(1, ordering: .relaxed)
            context.output.writeOK()
        }
    }

    @Test func noMultiCommandIsRefusedInsideMultiAndDoomsTheTransaction() {
        let counter = RunCounter()
        let client = CommandHarness(serverCommands: [Self.countingRow("shutdown", counter)])
        client.run("MULTI")
        client.run("SET", "x", "1")
        #expect(client.reply("SHUTDOWN") == "-ERR Command not allowed inside a transaction\r\n")
        #expect(client.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
        #expect(counter.runs.load(ordering: .relaxed) == 0)
        #expect(client.reply("EXISTS", "x") == ":0\r\n")
        // Outside MULTI it runs.
        #expect(client.reply("SHUTDOWN") == "+OK\r\n")
        #expect(counter.runs.load(ordering: .relaxed) == 1)
    }

    @Test func watchRemembersTheDatabaseOfTheKey() {
        // Redis's multi.tcl "WATCH is able to remember the DB a key belongs to", one client.
        let client = CommandHarness()
        client.run("SELECT", "5")
        client.run("SET", "x", "30")
        client.run("WATCH", "x")
        client.run("SELECT", "1")
        client.run("SET", "x", "10")
        client.run("SELECT", "5")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*1\r\n+PONG\r\n")
        // And a write to the watched (db, key) itself still aborts.
        client.run("WATCH", "x")
        client.run("SET", "x", "31")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*-1\r\n")
    }

    @Test func subcommandArityAndExistenceAreCheckedBeforeQueuing() {
        let client = CommandHarness()
        client.run("MULTI")
        #expect(client.reply("COMMAND", "NOPE") == "-ERR unknown subcommand 'NOPE'. Try COMMAND HELP.\r\n")
        #expect(client.reply("COMMAND", "COUNT", "x")
            == "-ERR wrong number of arguments for 'command|count' command\r\n")
        #expect(client.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
    }

    @Test func loadingRefusesCommandsWithoutTheLoadingFlag() {
        let client = CommandHarness()
        client.run("MULTI")
        client.run("SET", "k", "1")
        client.engine.setLoading(true)
        // EXEC is refused if any queued command may not run while loading.
        #expect(client.reply("EXEC")
            == "-EXECABORT Transaction discarded because of: LOADING Redis is loading the dataset in memory\r\n")
        #expect(client.reply("GET", "k") == "-LOADING Redis is loading the dataset in memory\r\n")
        #expect(client.reply("PING") == "-LOADING Redis is loading the dataset in memory\r\n")
        // A subcommand's own flags decide: COMMAND COUNT may run while loading.
        #expect(client.reply("COMMAND", "COUNT").hasPrefix(":"))
        // Unknown commands and arity errors come first, as in Redis.
        #expect(client.reply("GET") == "-ERR wrong number of arguments for 'get' command\r\n")
        // A command refused while queuing dooms the transaction as usual.
        client.run("MULTI")
        #expect(client.reply("SET", "k", "1") == "-LOADING Redis is loading the dataset in memory\r\n")
        #expect(client.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
        // The AOF replay's session is history, not a request.
        client.session.isReplayingLog = true
        #expect(client.reply("SET", "k", "1") == "+OK\r\n")
        client.session.isReplayingLog = false
        client.engine.setLoading(false)
        #expect(client.reply("GET", "k") == "$1\r\n1\r\n")
    }

    @Test func persistenceFailureRefusesWritesAndPingInOnePlace() {
        let client = CommandHarness()
        let log = RecordingLog()
        client.engine.attachLog(log)
        client.run("MULTI")
        client.run("INCR", "counter")
        log.refuseWrites("MISCONF Errors writing to the AOF file: No space left on device")
        // EXEC of a transaction holding a write is itself a write.
        #expect(client.reply("EXEC") == "-EXECABORT Transaction discarded because of: "
            + "MISCONF Errors writing to the AOF file: No space left on device\r\n")
        #expect(client.reply("INCR", "counter")
            == "-MISCONF Errors writing to the AOF file: No space left on device\r\n")
        #expect(client.reply("PING") == "-MISCONF Errors writing to the AOF file: No space left on device\r\n")
        #expect(client.reply("GET", "counter") == "$-1\r\n")
        // A read-only transaction still runs.
        client.run("MULTI")
        client.run("GET", "counter")
        #expect(client.reply("EXEC") == "*1\r\n$-1\r\n")
        log.refuseWrites(nil)
        #expect(client.reply("INCR", "counter") == ":1\r\n")
        #expect(log.recorded == ["0:INCR counter"])
    }

    @Test func whatIsLoggedDerivesFromTheRowAndTheResult() {
        let client = CommandHarness()
        let log = RecordingLog()
        client.engine.attachLog(log)
        client.run("SET", "a", "1")
        client.run("SET", "a", "2", "NX")  // no change: not logged
        client.run("DEL", "missing")  // no change: not logged
        client.run("GET", "a")  // read: not logged
        client.run("SET", "b", "1", "EX", "10")  // rewritten by the handler
        client.run("FLUSHDB")  // forced even though it is a write anyway
        client.run("FLUSHDB")  // forced on an empty database too
        #expect(log.recorded.count == 4)
        #expect(log.recorded[0] == "0:SET a 1")
        #expect(log.recorded[1].hasPrefix("0:SET b 1 PXAT "))
        #expect(log.recorded[2] == "0:FLUSHDB")
        #expect(log.recorded[3] == "0:FLUSHDB")
    }

    @Test func commandInfoReportsRedisFlags() {
        let client = CommandHarness()
        let info = client.reply("COMMAND", "INFO", "exec")
        #expect(info.contains("+noscript\r\n+loading\r\n+stale\r\n+skip_slowlog\r\n"))
        #expect(!info.contains("transaction_control"))
    }
}

/// CLUSTER and friends on a standalone server, MODULE with no modules: Redis's answers.
@Suite struct StandaloneCommandTests {
    @Test func clusterCommandsAnswerThatClusterSupportIsDisabled() {
        let client = CommandHarness()
        let disabled = "-ERR This instance has cluster support disabled\r\n"
        for request in [["CLUSTER", "INFO"], ["CLUSTER", "SLOTS"], ["CLUSTER", "KEYSLOT", "x"], ["READONLY"],
                        ["READWRITE"], ["ASKING"]] {
            #expect(String(decoding: client.run(request.map { Array($0.utf8) }), as: UTF8.self) == disabled)
        }
        // Dispatch checks the subcommand and its arity first, as Redis's processCommand does.
        #expect(client.reply("CLUSTER", "FOO") == "-ERR unknown subcommand 'FOO'. Try CLUSTER HELP.\r\n")
        #expect(client.reply("CLUSTER", "INFO", "x")
            == "-ERR wrong number of arguments for 'cluster|info' command\r\n")
    }

    @Test func moduleListsNothingAndLoadingIsProtected() {
        let client = CommandHarness()
        #expect(client.reply("MODULE", "LIST") == "*0\r\n")
        let refused = "-ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", "
            + "you can run it from a local connection, otherwise you need to set this option in the "
            + "configuration file, and then restart the server.\r\n"
        #expect(client.reply("MODULE", "LOAD", "/tmp/x.so") == refused)
        #expect(client.reply("MODULE", "UNLOAD", "x") == refused)
        client.engine.setModuleCommandAccess("yes")
        #expect(client.reply("MODULE", "LOAD", "/tmp/x.so")
            == "-ERR Error loading the extension. Please check the server logs.\r\n")
        #expect(client.reply("MODULE", "UNLOAD", "x")
            == "-ERR Error unloading module: no such module with that name\r\n")
    }
}
