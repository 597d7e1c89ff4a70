// PubSubTests: subscribe family replies, delivery through mailboxes, the subscribed context and
// keyspace notifications, through the harness (two sessions on one engine).
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct PubSubTests {
    /// Messages waiting in `harness`'s mailbox, as text.
    private func mail(_ harness: CommandHarness) -> String {
        String(decoding: harness.session.subscriptions?.mailbox.takeMessages().bytes ?? [], as: UTF8.self)
    }

    /// The event names of the `__keyevent@0__:<event>` channels in `messages`, in order.
    private func keyevents(_ messages: String) -> [String] {
        messages.components(separatedBy: "\r\n").filter { $0.hasPrefix("__keyevent@0__:") && !$0.hasSuffix("*") }
            .map { String($0.dropFirst("__keyevent@0__:".count)) }
    }

    @Test func subscribePublishUnsubscribe() {
        let subscriber = CommandHarness()
        let publisher = CommandHarness(sharing: subscriber)
        #expect(subscriber.reply("SUBSCRIBE", "a", "b")
            == "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")
        #expect(publisher.reply("PUBLISH", "a", "hi") == ":1\r\n")
        #expect(publisher.reply("PUBLISH", "a", "again") == ":1\r\n")
        #expect(publisher.reply("PUBLISH", "zzz", "x") == ":0\r\n")
        // One publisher's messages arrive in order.
        #expect(mail(subscriber) == "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
            + "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nagain\r\n")
        #expect(publisher.reply("PUBSUB", "NUMSUB", "a", "c") == "*4\r\n$1\r\na\r\n:1\r\n$1\r\nc\r\n:0\r\n")
        #expect(subscriber.reply("UNSUBSCRIBE")
            == "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n")
        #expect(subscriber.reply("UNSUBSCRIBE") == "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n")
        #expect(publisher.reply("PUBLISH", "a", "gone") == ":0\r\n")
        #expect(subscriber.reply("PING") == "+PONG\r\n")
    }

    @Test func patternsCountOncePerSubscription() {
        let subscriber = CommandHarness()
        let publisher = CommandHarness(sharing: subscriber)
        subscriber.run("PSUBSCRIBE", "n*")
        subscriber.run("SUBSCRIBE", "news")
        #expect(publisher.reply("PUBLISH", "news", "x") == ":2\r\n")
        #expect(mail(subscriber) == "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$1\r\nx\r\n"
            + "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$1\r\nx\r\n")
        #expect(publisher.reply("PUBSUB", "NUMPAT") == ":1\r\n")
        // Shard channels are their own namespace: SPUBLISH reaches neither.
        #expect(publisher.reply("SPUBLISH", "news", "y") == ":0\r\n")
        subscriber.run("SSUBSCRIBE", "news")
        #expect(publisher.reply("SPUBLISH", "news", "y") == ":1\r\n")
        #expect(mail(subscriber) == "*3\r\n$8\r\nsmessage\r\n$4\r\nnews\r\n$1\r\ny\r\n")
    }

    @Test func subscribedRESP2ContextAndReset() {
        let h = CommandHarness()
        h.run("SUBSCRIBE", "a")
        #expect(h.reply("GET", "k") == "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING"
            + " / QUIT / RESET are allowed in this context\r\n")
        #expect(h.reply("PING") == "*2\r\n$4\r\npong\r\n$0\r\n\r\n")
        #expect(h.reply("PING", "x") == "*2\r\n$4\r\npong\r\n$1\r\nx\r\n")
        #expect(h.reply("RESET") == "+RESET\r\n")
        #expect(h.reply("GET", "k") == "$-1\r\n")
        #expect(h.engine.pubsub.counts().channels == 0)
    }

    @Test func resp3PushesAndPublishingToOneself() {
        let h = CommandHarness(resp3: true)
        #expect(h.reply("SUBSCRIBE", "a") == ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
        #expect(h.reply("GET", "k") == "_\r\n")
        // The publisher's own copy comes before the reply, as in Redis.
        #expect(h.reply("PUBLISH", "a", "me") == ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nme\r\n:1\r\n")
    }

    @Test func keyspaceEventLettersRoundTrip() {
        #expect(KeyspaceEventClass(letters: "gKE")?.letters == "gKE")
        #expect(KeyspaceEventClass(letters: "$lshzxeKE")?.letters == "$lshzxeKE")
        #expect(KeyspaceEventClass(letters: "KA")?.letters == "AK")
        #expect(KeyspaceEventClass(letters: "EA")?.letters == "AE")
        #expect(KeyspaceEventClass(letters: "Amn")?.letters == "Am")  // Redis drops n beside A
        #expect(KeyspaceEventClass(letters: "")?.letters == "")
        #expect(KeyspaceEventClass(letters: "Q") == nil)
    }

    @Test func keyspaceNotificationsFollowRedisOrder() {
        let subscriber = CommandHarness()
        let writer = CommandHarness(sharing: subscriber)
        writer.engine.setKeyspaceEventClasses(KeyspaceEventClass(letters: "KEA")!)
        subscriber.run("PSUBSCRIBE", "__keyevent@0__:*")
        writer.run("SET", "k", "v", "EX", "10")
        writer.run("RENAME", "k", "k2")
        writer.run("RPUSH", "l", "a")
        writer.run("LMOVE", "l", "d", "LEFT", "RIGHT")
        writer.run("HSET", "h", "f", "v")
        writer.run("INCRBY", "n", "2")
        let events = keyevents(mail(subscriber))
        #expect(events == ["set", "expire", "rename_from", "rename_to", "rpush", "rpush", "lpop", "del", "hset",
                           "incrby"])
        // Off: nothing is published.
        writer.engine.setKeyspaceEventClasses([])
        writer.run("SET", "k", "v")
        #expect(mail(subscriber).isEmpty)
    }

    @Test func lazyExpiryFiresExpiredBeforeTheCommandsEvent() {
        let subscriber = CommandHarness()
        let writer = CommandHarness(sharing: subscriber)
        writer.engine.setKeyspaceEventClasses(KeyspaceEventClass(letters: "Exgn$")!)
        subscriber.run("PSUBSCRIBE", "*")
        writer.run("SET", "k", "v", "PX", "10")
        _ = mail(subscriber)
        writer.clock.advance(by: 20)
        writer.run("SET", "k", "w")
        let events = keyevents(mail(subscriber))
        #expect(events == ["expired", "new", "set"])
    }

    @Test func evictionFiresEvicted() {
        let subscriber = CommandHarness()
        let writer = CommandHarness(sharing: subscriber)
        writer.engine.setKeyspaceEventClasses(KeyspaceEventClass(letters: "Ee")!)
        subscriber.run("SUBSCRIBE", "__keyevent@0__:evicted")
        writer.run("SET", "foo", "bar")
        writer.engine.setMemoryLimit(bytes: 1, policy: .allKeysLRU, samples: 5)
        writer.run("GET", "foo")
        writer.engine.setMemoryLimit(bytes: 0, policy: .noEviction, samples: 5)
        #expect(mail(subscriber) == "*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:evicted\r\n$3\r\nfoo\r\n")
    }
}
