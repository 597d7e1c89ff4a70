// TransactionTests: WATCH across sessions, expiry of watched keys, AUTH gating, RESP3 replies.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct TransactionTests {
    @Test func watchSeesOtherSessionsWrites() {
        let a = CommandHarness()
        let b = CommandHarness(sharing: a)
        a.run("SET", "k", "1")
        a.run("WATCH", "k")
        b.run("INCR", "k")
        a.run("MULTI")
        a.run("SET", "k", "100")
        #expect(a.reply("EXEC") == "*-1\r\n")
        #expect(a.reply("GET", "k") == "$1\r\n2\r\n")
        // The watch is gone after EXEC: the same sequence now succeeds.
        a.run("WATCH", "k")
        a.run("MULTI")
        a.run("SET", "k", "100")
        #expect(a.reply("EXEC") == "*1\r\n+OK\r\n")
    }

    @Test func watchIgnoresOtherDatabasesAndFailedWrites() {
        let a = CommandHarness()
        let b = CommandHarness(sharing: a)
        a.run("SET", "k", "1")
        a.run("WATCH", "k")
        b.run("SELECT", "1")
        b.run("SET", "k", "x")
        b.run("SELECT", "0")
        b.run("SET", "k", "2", "NX")
        a.run("MULTI")
        a.run("GET", "k")
        #expect(a.reply("EXEC") == "*1\r\n$1\r\n1\r\n")
    }

    @Test func expiryOfWatchedKeyAbortsAndFlushTouches() {
        let a = CommandHarness()
        a.run("SET", "k", "1", "PX", "100")
        a.run("WATCH", "k")
        a.clock.advance(by: 200)
        a.run("MULTI")
        a.run("PING")
        #expect(a.reply("EXEC") == "*-1\r\n")
        let b = CommandHarness(sharing: a)
        a.run("SET", "j", "1")
        a.run("WATCH", "j")
        b.run("FLUSHALL")
        a.run("MULTI")
        #expect(a.reply("EXEC") == "*-1\r\n")
    }

    @Test func authGatesCommands() {
        let h = CommandHarness(configuration: EngineConfiguration(requirePass: Array("secret".utf8)))
        h.engine.sessionOpened(h.session)
        #expect(h.reply("GET", "k") == "-NOAUTH Authentication required.\r\n")
        #expect(h.reply("AUTH", "wrong") == "-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        #expect(h.reply("AUTH", "secre") == "-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        #expect(h.reply("AUTH", "secret") == "+OK\r\n")
        #expect(h.reply("GET", "k") == "$-1\r\n")
        #expect(h.reply("RESET") == "+RESET\r\n")
        #expect(h.reply("PING") == "-NOAUTH Authentication required.\r\n")
        #expect(h.reply("AUTH", "default", "secret") == "+OK\r\n")
    }

    @Test func resp3Replies() {
        let h = CommandHarness()
        let hello = h.reply("HELLO", "3")
        #expect(hello.hasPrefix("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"))
        #expect(hello.hasSuffix("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"))
        h.run("HSET", "h", "b", "1", "a", "2")
        #expect(h.reply("HGETALL", "h") == "%2\r\n$1\r\nb\r\n$1\r\n1\r\n$1\r\na\r\n$1\r\n2\r\n")
        #expect(h.reply("GET", "nope") == "_\r\n")
        #expect(h.reply("HGETALL", "nope") == "%0\r\n")
        h.run("WATCH", "h")
        CommandHarness(sharing: h).run("DEL", "h")
        h.run("MULTI")
        #expect(h.reply("EXEC") == "_\r\n")
    }

    @Test func quitClosesAfterReply() {
        let h = CommandHarness()
        #expect(h.reply("QUIT") == "+OK\r\n")
        #expect(h.session.closeAfterReply)
    }

    /// multi.tcl's SWAPDB cases: a watched key that exists on either side is touched; a key
    /// missing or stale on both sides is not.
    @Test func swapdbTouchesWatchedKeysThatChangeVisibly() {
        let client = CommandHarness()
        client.run("SET", "x", "30")
        client.run("WATCH", "x")
        client.run("SWAPDB", "0", "1")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*-1\r\n")

        client.run("FLUSHALL")
        client.run("SELECT", "1")
        client.run("SET", "x", "30")
        client.run("SELECT", "0")
        client.run("WATCH", "x")
        client.run("SWAPDB", "0", "1")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*-1\r\n")

        client.run("FLUSHALL")
        client.run("SELECT", "1")
        client.run("SET", "x", "foo", "PX", "1")
        client.clock.advance(by: 2)
        client.run("SELECT", "0")
        client.run("WATCH", "x")
        client.run("SWAPDB", "0", "1")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*1\r\n+PONG\r\n")
        #expect(client.reply("DBSIZE") == ":1\r\n")
    }

    /// multi.tcl "WATCH stale keys should not fail EXEC": a key already expired when WATCHed
    /// changes nothing when it is then deleted, but a real write to it still aborts.
    @Test func watchedStaleKeyDeletionDoesNotAbort() {
        let client = CommandHarness()
        client.run("SET", "h1", "14", "PXAT", "1")
        client.run("WATCH", "h1")
        #expect(client.reply("EXISTS", "h1") == ":0\r\n")  // lazily deletes the stale key
        client.run("MULTI")
        #expect(client.reply("EXEC") == "*0\r\n")

        client.run("SET", "h2", "1", "PXAT", "1")
        client.run("WATCH", "h2")
        client.run("SET", "h2", "2")
        client.run("MULTI")
        #expect(client.reply("EXEC") == "*-1\r\n")

        client.run("SET", "h3", "1", "PXAT", "1")
        client.run("WATCH", "h3")
        client.run("FLUSHDB")
        client.run("MULTI")
        client.run("PING")
        #expect(client.reply("EXEC") == "*1\r\n+PONG\r\n")
    }
}
