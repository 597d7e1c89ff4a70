// MigrateCommandTests: MIGRATE against an in-process target (a second engine) and scripted socket failures.
import Dispatch
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPersistence
import TallyTestSupport
import Testing

/// A failure to inject on a connection.
enum ScriptedFault {
    /// The read with this index (0 = the first on the connection) fails.
    case read(Int, MigrationIOFailure)
    /// The first send fails.
    case send(MigrationIOFailure)
    /// The target had closed the connection: a send is buffered by the kernel and lost, and the
    /// first read meets the end of the stream.
    case closedByTarget
}

/// MIGRATE's links, served by `target` (a harness whose replies become the lines read back),
/// with connections counted and faults injected in order.
final class InProcessTargets: MigrationLinks, @unchecked Sendable {
    // @unchecked: tests run MIGRATE on one thread at a time.
    let target: CommandHarness
    var connects = 0
    var closes = 0
    var refusesConnections = false
    /// Faults for the coming connections, one list per connection (empty: none).
    var faults: [[ScriptedFault]] = []
    /// Runs during each exchange, after the request is sent (a concurrent client's write).
    var duringExchange: (() -> Void)?
    /// Runs when a connection is asked for, before the request is built.
    var onAcquire: (() -> Void)?
    /// Every request sent, as RESP arrays decoded to words.
    var requests: [[String]] = []
    private var cached: InProcessLink?

    init(target: CommandHarness) { self.target = target }

    func acquire(host: [UInt8], port: [UInt8], timeoutMilliseconds: Int64) -> (any MigrationLink)? {
        onAcquire?()
        if refusesConnections { return nil }
        if let cached { return cached }
        connects += 1
        let link = InProcessLink(owner: self, faults: faults.isEmpty ? [] : faults.removeFirst())
        cached = link
        return link
    }

    /// Forgets the cached connection, as if the server's idle check had closed it.
    func dropCache() { cached = nil }

    func release(_ link: any MigrationLink, close: Bool) {
        if close {
            closes += 1
            cached = nil
        }
    }
}

final class InProcessLink: MigrationLink {
    var lastDatabase: Int64 = -1
    private unowned let owner: InProcessTargets
    private var faults: [ScriptedFault]
    private var lines: [[UInt8]] = []
    private var reads = 0

    init(owner: InProcessTargets, faults: [ScriptedFault]) {
        self.owner = owner
        self.faults = faults
    }

    func send(_ bytes: [UInt8], timeoutMilliseconds: Int64) throws(MigrationIOFailure) {
        if let index = faults.firstIndex(where: { if case .send = $0 { true } else { false } }),
           case .send(let failure) = faults.remove(at: index) {
            throw failure
        }
        var commands: [[[UInt8]]] = []
        var index = 0
        func number() -> Int {
            var end = index
            while bytes[end] != 13 { end += 1 }
            let value = Int(String(decoding: bytes[(index + 1)..<end], as: UTF8.self))!
            index = end + 2
            return value
        }
        while index < bytes.count {
            var command: [[UInt8]] = []
            for _ in 0..<number() {
                let length = number()
                command.append(Array(bytes[index..<(index + length)]))
                index += length + 2
            }
            commands.append(command)
        }
        owner.requests.append(commands.flatMap { $0.map { String(decoding: $0, as: UTF8.self) } })
        if faults.contains(where: { if case .closedByTarget = $0 { true } else { false } }) { return }
        for command in commands {
            let reply = owner.target.run(command)
            lines.append(Array(reply.prefix { $0 != 13 }))
        }
        owner.duringExchange?()
    }

    func readLine(timeoutMilliseconds: Int64) throws(MigrationIOFailure) -> [UInt8] {
        defer { reads += 1 }
        if faults.contains(where: { if case .closedByTarget = $0 { true } else { false } }) { throw .failed }
        for fault in faults {
            if case .read(let index, let failure) = fault, index == reads { throw failure }
        }
        guard !lines.isEmpty else { throw .timedOut }
        return lines.removeFirst()
    }
}

@Suite struct MigrateCommandTests {
    struct Setup {
        let source: CommandHarness
        let target: CommandHarness
        let links: InProcessTargets
        let log: RecordingLog
    }

    func setup() -> Setup {
        let clock = ManualClock()
        let codec = RDBDumpPayloadCodec()
        let target = CommandHarness(clock: clock, serverCommands: DumpCommands.specs(codec: codec))
        let links = InProcessTargets(target: target)
        let source = CommandHarness(clock: clock, serverCommands: DumpCommands.specs(codec: codec)
            + [MigrateCommand.spec(codec: codec, links: links)])
        let log = RecordingLog()
        source.engine.attachLog(log)
        return Setup(source: source, target: target, links: links, log: log)
    }

    @Test func movesEveryTypeWithItsTTLAndLogsOneDel() {
        let s = setup()
        s.source.run("SET", "a", "1")
        s.source.run("PEXPIRE", "a", "100000")
        s.source.run("RPUSH", "l", "x", "y", "z")
        s.source.run("HSET", "h", "f", "v")
        s.source.run("ZADD", "z", "1", "m", "2", "n")
        let dumps = ["a", "l", "h", "z"].map { s.source.run("DUMP", $0) }
        s.log.clear()
        #expect(s.source.reply("MIGRATE", "127.0.0.1", "1", "", "3", "5000", "KEYS", "a", "l", "nokey", "h", "z")
                    == "+OK\r\n")
        #expect(s.source.reply("EXISTS", "a", "l", "h", "z") == ":0\r\n")
        s.target.run("SELECT", "3")
        #expect(["a", "l", "h", "z"].map { s.target.run("DUMP", $0) } == dumps)
        #expect(s.target.reply("PTTL", "a") == ":100000\r\n")
        #expect(s.target.reply("PTTL", "l") == ":-1\r\n")
        #expect(s.log.recorded == ["0:DEL a l h z"])
        #expect(s.links.requests.count == 1)
        #expect(Array(s.links.requests[0].prefix(5)) == ["SELECT", "3", "RESTORE", "a", "100000"])
        #expect(s.links.requests[0].filter { $0 == "RESTORE" }.count == 4)

        // The cached connection has database 3 selected: no SELECT the second time.
        s.source.run("SET", "b", "2")
        #expect(s.source.reply("MIGRATE", "127.0.0.1", "1", "b", "3", "5000") == "+OK\r\n")
        #expect(s.links.requests[1].first == "RESTORE")
        #expect(s.links.connects == 1)
    }

    @Test func nokeyWhenNothingToMove() {
        let s = setup()
        #expect(s.source.reply("MIGRATE", "h", "1", "missing", "0", "1000") == "+NOKEY\r\n")
        #expect(s.source.reply("MIGRATE", "h", "1", "", "0", "1000", "KEYS") == "+NOKEY\r\n")
        #expect(s.source.reply("MIGRATE", "h", "1", "", "0", "1000", "KEYS", "n1", "n2") == "+NOKEY\r\n")
        #expect(s.links.connects == 0)
        // An expired key is missing too.
        s.source.run("SET", "e", "v", "PX", "10")
        s.source.clock.advance(by: 10)
        #expect(s.source.reply("MIGRATE", "h", "1", "e", "0", "1000") == "+NOKEY\r\n")
    }

    @Test func argumentErrorsInRedisOrder() {
        let s = setup()
        let cases: [([String], String)] = [
            (["k", "0", "1000", "bogus"], "-ERR syntax error\r\n"),
            (["k", "0", "1000", "AUTH"], "-ERR syntax error\r\n"),
            (["k", "0", "1000", "AUTH2", "u"], "-ERR syntax error\r\n"),
            (["k", "0", "1000", "KEYS", "a"],
             "-ERR When using MIGRATE KEYS option, the key argument must be set to the empty string\r\n"),
            // The options come first, then the timeout, then the database.
            (["k", "x", "y", "bogus"], "-ERR syntax error\r\n"),
            (["k", "0", "x"], "-ERR value is not an integer or out of range\r\n"),
            (["k", "x", "1000"], "-ERR value is not an integer or out of range\r\n"),
            (["k", "0"], "-ERR wrong number of arguments for 'migrate' command\r\n"),
            // Everything after KEYS is a key, even an option's name.
            (["", "0", "1000", "KEYS", "copy", "bogus"], "+NOKEY\r\n"),
        ]
        for (arguments, expected) in cases {
            #expect(s.source.run(["MIGRATE", "h", "1"].map { Array($0.utf8) } + arguments.map { Array($0.utf8) })
                        == Array(expected.utf8), "\(arguments)")
        }
    }

    @Test func copyKeepsTheSourceAndReplaceOverwrites() {
        let s = setup()
        s.source.run("SET", "b", "1")
        s.target.run("SET", "b", "2")
        #expect(s.source.reply("MIGRATE", "h", "1", "b", "0", "1000", "COPY")
                    == "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n")
        #expect(s.source.reply("MIGRATE", "h", "1", "b", "0", "1000", "COPY", "REPLACE") == "+OK\r\n")
        #expect(s.source.reply("GET", "b") == "$1\r\n1\r\n")
        #expect(s.target.reply("GET", "b") == "$1\r\n1\r\n")
        #expect(s.log.recorded == ["0:SET b 1"])
        #expect(s.links.requests.last?.last == "REPLACE")
    }

    @Test func keysAcknowledgedAroundATargetErrorAreStillDeleted() {
        let s = setup()
        s.source.run("MSET", "c1", "1", "c2", "2", "c3", "3")
        s.target.run("SET", "c2", "x")
        s.log.clear()
        #expect(s.source.reply("MIGRATE", "h", "1", "", "0", "1000", "KEYS", "c1", "c2", "c3")
                    == "-ERR Target instance replied with error: BUSYKEY Target key name already exists.\r\n")
        #expect(s.source.reply("EXISTS", "c1", "c2", "c3") == ":1\r\n")
        #expect(s.log.recorded == ["0:DEL c1 c3"])
        // After a target error the database is unknown: the next MIGRATE selects again.
        #expect(s.source.reply("MIGRATE", "h", "1", "c2", "0", "1000", "REPLACE") == "+OK\r\n")
        #expect(s.links.requests.last?.first == "SELECT")
    }

    @Test func authErrorFailsEveryKey() {
        let s = setup()
        s.source.run("SET", "k", "v")
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000", "AUTH2", "user", "pw").hasPrefix(
            "-ERR Target instance replied with error: "))
        #expect(s.links.requests[0].prefix(4) == ["AUTH", "user", "pw", "SELECT"])
        #expect(s.source.reply("EXISTS", "k") == ":1\r\n")
    }

    @Test func passwordsAreRedactedInTheSlowLog() {
        let s = setup()
        s.source.engine.slowLog.configure(slowerThanMicroseconds: 0, maxLength: 8)
        s.source.run("SET", "k", "v")
        s.source.run("MIGRATE", "h", "1", "k", "0", "1000", "COPY", "AUTH2", "user", "secret")
        s.source.run("MIGRATE", "h", "1", "k", "0", "1000", "AUTH", "secret", "bogus")
        let log = s.source.reply("SLOWLOG", "GET", "2")
        #expect(!log.contains("secret") && !log.contains("user"))
        #expect(log.components(separatedBy: "(redacted)").count == 4)
        #expect(log.contains("$5\r\nbogus\r\n"))
    }

    @Test func aClosedCachedConnectionIsRetriedOnceOnANewOne() {
        let s = setup()
        s.source.run("SET", "k", "v")
        s.links.faults = [[.closedByTarget]]
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000", "COPY") == "+OK\r\n")
        #expect(s.links.connects == 2 && s.links.closes == 1)
        // Sent twice, each time on a connection with no database selected.
        #expect(s.links.requests.map { $0.first } == ["SELECT", "SELECT"])

        // A write failure is retried too, and reported as writing when the retry fails as well.
        s.links.dropCache()
        s.links.faults = [[.send(.failed)], [.send(.failed)]]
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000", "COPY")
                    == "-IOERR error or timeout writing to target instance\r\n")
        #expect(s.links.connects == 4)
        // A write that times out is not retried.
        s.links.faults = [[.send(.timedOut)], []]
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000", "COPY")
                    == "-IOERR error or timeout writing to target instance\r\n")
        #expect(s.links.connects == 5)
    }

    @Test func aTimeoutIsNotRetried() {
        let s = setup()
        s.source.run("SET", "k", "v")
        s.links.faults = [[.read(0, .timedOut)]]
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "500")
                    == "-IOERR error or timeout reading to target instance\r\n")
        #expect(s.links.connects == 1 && s.links.closes == 1)
        #expect(s.source.reply("EXISTS", "k") == ":1\r\n")
        s.links.refusesConnections = true
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "500")
                    == "-IOERR error or timeout connecting to the client\r\n")
    }

    @Test func aFailureAfterSomeRepliesDeletesThoseAndIsNotRetried() {
        for failure in [MigrationIOFailure.timedOut, .failed] {
            let s = setup()
            s.source.run("MSET", "a", "1", "b", "2")
            s.log.clear()
            // Reads: SELECT's reply, a's RESTORE reply, then b's fails.
            s.links.faults = [[.read(2, failure)]]
            #expect(s.source.reply("MIGRATE", "h", "1", "", "0", "1000", "KEYS", "a", "b")
                        == "-IOERR error or timeout reading to target instance\r\n")
            #expect(s.links.connects == 1 && s.links.closes == 1)
            #expect(s.source.reply("EXISTS", "a") == ":0\r\n")
            #expect(s.source.reply("EXISTS", "b") == ":1\r\n")
            #expect(s.log.recorded == ["0:DEL a"])
        }
    }

    @Test func aKeyWrittenDuringTheExchangeIsKept() {
        let s = setup()
        s.source.run("MSET", "a", "1", "b", "2")
        s.log.clear()
        let other = CommandHarness(sharing: s.source)
        s.links.duringExchange = { other.run("APPEND", "b", "+") }
        #expect(s.source.reply("MIGRATE", "h", "1", "", "0", "1000", "KEYS", "a", "b") == "+OK\r\n")
        #expect(s.source.reply("GET", "b") == "$2\r\n2+\r\n")
        #expect(s.target.reply("GET", "b") == "$1\r\n2\r\n")
        #expect(s.log.recorded == ["0:APPEND b +", "0:DEL a"])
    }

    /// Carries a harness to another thread (the test hands it over and waits).
    struct Handover: @unchecked Sendable { let harness: CommandHarness }

    @Test func theShardsAreFreeDuringTheExchangeEvenWithBlockedClients() {
        let s = setup()
        // A parked BLPOP makes dispatch take every shard for each command (to serve waiters).
        let blocked = CommandHarness(sharing: s.source)
        blocked.session.wakeOwner = {}
        blocked.run("BLPOP", "queue", "0")
        #expect(s.source.engine.blocking.hasWaiters)
        s.source.run("SET", "k", "v")
        var wroteMeanwhile = false
        let other = Handover(harness: CommandHarness(sharing: s.source))
        s.links.duringExchange = {
            let done = DispatchSemaphore(value: 0)
            runOnOwnThread {
                other.harness.run("SET", "elsewhere", "x")
                done.signal()
            }
            wroteMeanwhile = done.wait(timeout: .now() + 5) == .success
        }
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000") == "+OK\r\n")
        #expect(wroteMeanwhile)
        #expect(s.source.reply("EXISTS", "k", "elsewhere") == ":1\r\n")
        // The waiter is still served by a later push.
        s.source.run("RPUSH", "queue", "item")
        #expect(!s.source.engine.blocking.hasWaiters)
    }

    @Test func underExecTheExchangeKeepsEveryShard() {
        let s = setup()
        s.source.run("SET", "k", "v")
        var heldMeanwhile = false
        s.links.duringExchange = { heldMeanwhile = s.source.engine.keyspace.isExclusivelyHeldByCurrentThread }
        s.source.run("MULTI")
        s.source.run("MIGRATE", "h", "1", "k", "0", "1000")
        #expect(s.source.reply("EXEC") == "*1\r\n+OK\r\n")
        #expect(heldMeanwhile)
        #expect(s.log.recorded.last == "0:MULTI; 0:DEL k; 0:EXEC")
    }

    @Test func theTTLIsTakenWhenTheRequestIsBuilt() {
        let s = setup()
        s.source.run("SET", "k", "v", "PX", "5")
        let payload = String(decoding: s.source.run("DUMP", "k").dropFirst(5).dropLast(2), as: UTF8.self)
        // The key is found, then 5 ms pass: its last millisecond is sent as a TTL of 1.
        s.links.onAcquire = { s.source.clock.advance(by: 5) }
        #expect(s.source.reply("MIGRATE", "h", "1", "k", "0", "1000", "COPY") == "+OK\r\n")
        #expect(s.links.requests[0] == ["SELECT", "0", "RESTORE", "k", "1", payload])
        // Past its expiry by then, it is not sent at all; with nothing left the reply is +OK.
        s.source.run("SET", "e", "v", "PX", "5")
        s.links.onAcquire = { s.source.clock.advance(by: 6) }
        #expect(s.source.reply("MIGRATE", "h", "1", "e", "5", "1000") == "+OK\r\n")
        #expect(s.links.requests[1] == ["SELECT", "5"])
    }

    @Test func getKeysFindsTheKeysAsRedisDoes() {
        let s = setup()
        #expect(s.source.reply("COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "1", "COPY", "AUTH2", "u", "p",
                               "KEYS", "a", "b") == "*2\r\n$1\r\na\r\n$1\r\nb\r\n")
        #expect(s.source.reply("COMMAND", "GETKEYS", "MIGRATE", "h", "1", "k", "0", "1", "KEYS", "a")
                    == "-ERR Invalid arguments specified for command\r\n")
        // "keys" is AUTH's password: migrateGetKeys skips it and finds no KEYS, so the key is argument 3.
        #expect(s.source.reply("COMMAND", "GETKEYS", "MIGRATE", "h", "1", "", "0", "1", "AUTH", "keys", "x", "y")
                    == "*1\r\n$0\r\n\r\n")
        #expect(s.source.reply("COMMAND", "GETKEYS", "MIGRATE", "keys", "1", "k", "0", "1") == "*1\r\n$1\r\nk\r\n")
        #expect(s.source.reply("COMMAND", "GETKEYSANDFLAGS", "MIGRATE", "h", "1", "k", "0", "1")
                    == "*1\r\n*2\r\n$1\r\nk\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n")
        let info = s.source.reply("COMMAND", "INFO", "MIGRATE")
        #expect(info.hasPrefix(
            "*1\r\n*10\r\n$7\r\nmigrate\r\n:-6\r\n*2\r\n+write\r\n+movablekeys\r\n:3\r\n:3\r\n:1\r\n"))
    }
}
