// ReplicaDispatchTests: what a replica refuses (READONLY, MASTERDOWN) and what its primary's link may
// still do, in server.c processCommand's order, with Redis 7.0.15's exact error texts.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct ReplicaDispatchTests {
    private static let readOnly = "-READONLY You can't write against a read only replica.\r\n"
    private static let masterDown =
        "-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"

    @Test func readOnlyReplicaRefusesClientWritesOnly() {
        let client = CommandHarness()
        client.engine.setReplicaRole([.replica, .readOnly])
        #expect(client.reply("SET", "k", "v") == Self.readOnly)
        #expect(client.reply("INCR", "n") == Self.readOnly)
        #expect(client.reply("GET", "k") == "$-1\r\n")
        // The primary's link writes through (Redis's mustObeyClient).
        let link = CommandHarness(sharing: client)
        link.session.isReplicationPrimaryLink = true
        #expect(link.reply("SET", "k", "v") == "+OK\r\n")
        #expect(client.reply("GET", "k") == "$1\r\nv\r\n")
        // replica-read-only no: clients write too.
        client.engine.setReplicaRole([.replica])
        #expect(client.reply("INCR", "n") == ":1\r\n")
    }

    @Test func writeInsideMultiDoomsTheTransaction() {
        let client = CommandHarness()
        client.engine.setReplicaRole([.replica, .readOnly])
        client.run("MULTI")
        #expect(client.reply("GET", "k") == "+QUEUED\r\n")
        #expect(client.reply("SET", "k", "v") == Self.readOnly)
        #expect(client.reply("EXEC") == "-EXECABORT Transaction discarded because of previous errors.\r\n")
    }

    @Test func staleDataRefusalSparesStaleFlaggedCommands() {
        let client = CommandHarness()
        client.engine.setReplicaRole([.replica, .readOnly, .deniesStaleData])
        #expect(client.reply("GET", "k") == Self.masterDown)
        // PING has no `stale` flag in Redis 7.0 either; SELECT and MULTI do.
        #expect(client.reply("PING") == Self.masterDown)
        #expect(client.reply("SELECT", "1") == "+OK\r\n")
        // READONLY comes first for a write (server.c checks it before the stale-data rule).
        #expect(client.reply("SET", "k", "v") == Self.readOnly)
        let link = CommandHarness(sharing: client)
        link.session.isReplicationPrimaryLink = true
        #expect(link.reply("SET", "k", "v") == "+OK\r\n")
        // The link is up again: served.
        client.engine.setReplicaRole([.replica, .readOnly])
        #expect(client.reply("PING") == "+PONG\r\n")
    }

    /// replica-ignore-maxmemory yes: a replica neither evicts nor answers OOM; its primary's DELs
    /// keep its memory in step (evict.c).
    @Test func replicaIgnoresMaxmemory() {
        let link = CommandHarness()
        link.session.isReplicationPrimaryLink = true
        for index in 0..<100 { link.run("SET", "key:\(index)", String(repeating: "v", count: 100)) }
        link.engine.setMemoryLimit(bytes: 1, policy: .allKeysLRU, samples: 5)
        link.engine.setReplicaRole([.replica, .readOnly, .ignoresMaxmemory])
        #expect(link.reply("SET", "a", "1") == "+OK\r\n")
        #expect(link.reply("DBSIZE") == ":101\r\n")
        // A primary under the same limit evicts.
        link.engine.setReplicaRole([])
        link.run("SET", "b", "2")
        #expect(link.reply("DBSIZE") != ":102\r\n")
    }

    /// A replica runs no active expiry: keys past their TTL wait for the primary's DEL.
    @Test func noActiveExpiryOnAReplica() {
        let client = CommandHarness()
        client.run("SET", "k", "v", "PX", "10")
        client.engine.setReplicaRole([.replica])
        client.clock.advance(by: 100)
        client.engine.activeExpireCycle()
        #expect(client.reply("DBSIZE") == ":1\r\n")
        #expect(client.reply("GET", "k") == "$-1\r\n")
        #expect(client.reply("DBSIZE") == ":1\r\n")
        client.engine.setReplicaRole([])
        client.engine.activeExpireCycle()
        #expect(client.reply("DBSIZE") == ":0\r\n")
    }
}
