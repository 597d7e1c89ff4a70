// PubSubCommands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB (pubsub.c).
import TallyKeyspace
import TallyProtocol

/// The pub/sub family. Shard channels are a namespace of their own, as in Redis 7.0 on a
/// standalone server: SPUBLISH reaches SSUBSCRIBE clients only, never patterns.
enum PubSubCommands {
    static var specs: [CommandSpec] {
        let subscribeFlags: CommandFlags = [.pubsub, .noScript, .loading, .stale, .allowedWhileSubscribed]
        let publishFlags: CommandFlags = [.pubsub, .loading, .stale, .fast, .mayReplicate]
        let readFlags: CommandFlags = [.pubsub, .loading, .stale]
        return [
            command("subscribe", -2, subscribeFlags, "@pubsub @slow") { subscribe(&$0, .channel) },
            command("unsubscribe", -1, subscribeFlags, "@pubsub @slow") { unsubscribe(&$0, .channel) },
            command("psubscribe", -2, subscribeFlags, "@pubsub @slow") { subscribe(&$0, .pattern) },
            command("punsubscribe", -1, subscribeFlags, "@pubsub @slow") { unsubscribe(&$0, .pattern) },
            command("ssubscribe", -2, subscribeFlags, keys: (1, -1, 1), "@pubsub @slow") {
                subscribe(&$0, .shardChannel)
            },
            command("sunsubscribe", -1, subscribeFlags, keys: (1, -1, 1), "@pubsub @slow") {
                unsubscribe(&$0, .shardChannel)
            },
            command("publish", 3, publishFlags, "@pubsub @fast") { publish(&$0, shard: false) },
            command("spublish", 3, publishFlags, keys: (1, 1, 1), "@pubsub @fast") { publish(&$0, shard: true) },
            CommandSpec(
                name: "pubsub", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    CommandSpec(name: "pubsub|numsub", arity: -2, flags: readFlags,
                                categories: ["@pubsub", "@slow"]) { _ in },
                    CommandSpec(name: "pubsub|help", arity: 2, flags: [.loading, .stale],
                                categories: ["@slow"]) { _ in },
                    CommandSpec(name: "pubsub|numpat", arity: 2, flags: readFlags,
                                categories: ["@pubsub", "@slow"]) { _ in },
                    CommandSpec(name: "pubsub|shardnumsub", arity: -2, flags: readFlags,
                                categories: ["@pubsub", "@slow"]) { _ in },
                    CommandSpec(name: "pubsub|channels", arity: -2, flags: readFlags,
                                categories: ["@pubsub", "@slow"]) { _ in },
                    CommandSpec(name: "pubsub|shardchannels", arity: -2, flags: readFlags,
                                categories: ["@pubsub", "@slow"]) { _ in },
                ],
                handler: pubsub),
        ]
    }

    // MARK: Replies

    static let subscribeWords: [SubscriptionKind: (subscribe: [UInt8], unsubscribe: [UInt8])] = [
        .channel: (Array("subscribe".utf8), Array("unsubscribe".utf8)),
        .pattern: (Array("psubscribe".utf8), Array("punsubscribe".utf8)),
        .shardChannel: (Array("ssubscribe".utf8), Array("sunsubscribe".utf8)),
    ]

    /// `*N` in RESP2, a push `>N` in RESP3 (subscription confirmations are pushes too).
    static func writePushHeader(_ count: Int, into output: inout OutputBuffer) {
        if output.protocolVersion == .resp3 {
            output.writeStaticString(">")
            output.writeDecimal(Int64(count))
            output.writeCRLF()
        } else {
            output.writeArrayHeader(count)
        }
    }

    /// One (un)subscribe confirmation: [word, name or null, the kind's subscription count].
    private static func confirm(_ word: [UInt8], _ name: [UInt8]?, count: Int, into output: inout OutputBuffer) {
        writePushHeader(3, into: &output)
        output.writeBulkString(word)
        if let name { output.writeBulkString(name) } else { output.writeNull() }
        output.writeInteger(Int64(count))
    }

    private static func count(_ subscriptions: ClientSubscriptions, _ kind: SubscriptionKind) -> Int {
        kind == .shardChannel ? subscriptions.shardChannels.count : subscriptions.count
    }

    // MARK: Handlers

    static func subscribe(_ context: inout CommandContext, _ kind: SubscriptionKind) {
        let session = context.session
        let subscriptions = session.makeSubscriptions()
        let hub = context.engine.pubsub
        for index in 1..<context.arguments.count {
            let name = context.arguments.copy(index)
            let added: Bool
            switch kind {
            case .channel: added = subscriptions.channels.insert(name)
            case .pattern: added = subscriptions.patterns.insert(name)
            case .shardChannel: added = subscriptions.shardChannels.insert(name)
            }
            if added { hub.add(subscriptions.mailbox, to: name, kind: kind) }
            confirm(subscribeWords[kind]!.subscribe, name, count: count(subscriptions, kind), into: &context.output)
        }
        session.subscriptionTotal = subscriptions.total
    }

    static func unsubscribe(_ context: inout CommandContext, _ kind: SubscriptionKind) {
        let session = context.session
        let subscriptions = session.makeSubscriptions()
        let names = context.arguments.count == 1
            ? items(subscriptions, kind) : (1..<context.arguments.count).map { context.arguments.copy($0) }
        let word = subscribeWords[kind]!.unsubscribe
        if names.isEmpty {
            // Subscribed to nothing of this kind: Redis still answers, with a null name.
            confirm(word, nil, count: count(subscriptions, kind), into: &context.output)
        }
        for name in names {
            if remove(name, kind, from: subscriptions) {
                context.engine.pubsub.remove(subscriptions.mailbox, from: name, kind: kind)
            }
            confirm(word, name, count: count(subscriptions, kind), into: &context.output)
        }
        session.subscriptionTotal = subscriptions.total
    }

    private static func items(_ subscriptions: ClientSubscriptions, _ kind: SubscriptionKind) -> [[UInt8]] {
        switch kind {
        case .channel: subscriptions.channels.items
        case .pattern: subscriptions.patterns.items
        case .shardChannel: subscriptions.shardChannels.items
        }
    }

    private static func remove(_ name: [UInt8], _ kind: SubscriptionKind, from subscriptions: ClientSubscriptions)
        -> Bool
    {
        switch kind {
        case .channel: subscriptions.channels.remove(name)
        case .pattern: subscriptions.patterns.remove(name)
        case .shardChannel: subscriptions.shardChannels.remove(name)
        }
    }

    /// Drops every subscription of `session` without confirmations (RESET, disconnect).
    static func unsubscribeAll(_ session: ClientSession, hub: PubSubHub) {
        guard let subscriptions = session.subscriptions else { return }
        for (kind, names) in [(SubscriptionKind.channel, subscriptions.channels.items),
                              (.pattern, subscriptions.patterns.items),
                              (.shardChannel, subscriptions.shardChannels.items)] {
            for name in names where remove(name, kind, from: subscriptions) {
                hub.remove(subscriptions.mailbox, from: name, kind: kind)
            }
        }
        session.subscriptionTotal = 0
    }

    static func publish(_ context: inout CommandContext, shard: Bool) {
        // Inside EXEC the publisher's own copy goes through its mailbox (after the EXEC reply).
        let selfID = context.insideExec ? -1 : context.session.id
        let receivers = context.engine.pubsub.publish(
            channel: context.arguments[1], message: context.arguments[2], shard: shard, directClientID: selfID,
            output: &context.output)
        context.output.writeInteger(Int64(receivers))
    }

    static func pubsub(_ context: inout CommandContext) {
        let arguments = context.arguments
        let hub = context.engine.pubsub
        if arguments.matches(1, "help") && arguments.count == 2 {
            context.writeHelp("PUBSUB", [
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
            ])
        } else if (arguments.matches(1, "channels") || arguments.matches(1, "shardchannels"))
            && arguments.count <= 3
        {
            let pattern = arguments.count == 3 ? arguments[2] : nil
            let names = hub.channelNames(matching: pattern, shard: arguments.matches(1, "shardchannels"))
            context.output.writeArrayHeader(names.count)
            for name in names { context.output.writeBulkString(name) }
        } else if arguments.matches(1, "numsub") || arguments.matches(1, "shardnumsub") {
            let shard = arguments.matches(1, "shardnumsub")
            context.output.writeArrayHeader((arguments.count - 2) * 2)
            for index in 2..<arguments.count {
                context.output.writeBulkString(arguments[index])
                context.output.writeInteger(Int64(hub.subscriberCount(arguments.copy(index), shard: shard)))
            }
        } else if arguments.matches(1, "numpat") {
            context.output.writeInteger(Int64(hub.counts().patterns))
        } else {
            var message: [UInt8] = Array("ERR unknown subcommand or wrong number of arguments for '".utf8)
            appendCString(arguments[1], limit: 128, to: &message)
            message.append(contentsOf: "'. Try PUBSUB HELP.".utf8)
            context.output.writeError(message)
        }
    }
}

extension ClientSession {
    /// The session's subscriptions, created (with its mailbox) on first use.
    func makeSubscriptions() -> ClientSubscriptions {
        if let subscriptions { return subscriptions }
        let created = ClientSubscriptions(mailbox: makeMailbox())
        subscriptions = created
        return created
    }

    /// The mailbox other clients' messages for this one go to, created on first use (the
    /// server creates it at accept, so that any client can be a REDIRECT target).
    public func makeMailbox() -> PubSubMailbox {
        if let mailbox { return mailbox }
        let created = PubSubMailbox(
            clientID: id, descriptor: descriptor, resp3: protocolVersion == .resp3, announce: announceMail)
        mailbox = created
        return created
    }

    /// CLIENT LIST's `sub=`, `psub=` and `ssub=`.
    public var subscriptionCounts: (channels: Int, patterns: Int, shardChannels: Int) {
        guard let subscriptions else { return (0, 0, 0) }
        return (subscriptions.channels.count, subscriptions.patterns.count, subscriptions.shardChannels.count)
    }
}
