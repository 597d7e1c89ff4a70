// PubSub: channel, pattern and shard-channel subscriptions, and delivery of published messages
// to subscribers on any I/O thread (pubsub.c).
//
//   publisher (I/O thread 1)                          subscriber (I/O thread 2)
//   ────────────────────────                          ─────────────────────────
//   PUBLISH ch m ─► hub lock ─► for each subscriber:
//                                 mailbox lock, append encoded message
//                                 first message since the last drain?
//                                   ─► announce(mailbox): owner's ready list + eventfd ─► loop wakes
//                               ◄─ receivers counted                                     takeMessages()
//   :N                                                                                   ─► output buffer
//                                                                                        ─► flush (or close
//                                                                                           past the pubsub
//                                                                                           output limit)
//
// Every message to one subscriber is appended under that subscriber's mailbox lock, in the order
// the hub lock serialises publishers, so the messages of one publisher arrive in publish order.
// A subscriber that does not drain (its thread is busy) is bounded by the pubsub class's hard
// output limit: past it the mailbox drops everything and marks itself overflowed, and the owning
// thread closes the connection, as Redis closes a client over `client-output-buffer-limit pubsub`.
//
// A client publishing to itself (RESP3, or a keyspace notification caused by its own command) gets
// the message in its reply stream directly, before the command's reply, as in Redis; inside EXEC
// it goes through the mailbox instead (after the EXEC reply), so it never splits the EXEC array.
import Synchronization
import TallyProtocol

/// Where messages for one subscribed client wait until the client's own I/O thread collects them.
public final class PubSubMailbox: Sendable {
    /// The subscribed client's id.
    public let clientID: Int64
    /// The client's socket when it was created (the server's lookup key; checked with the id).
    public let descriptor: Int32
    private struct Pending {
        var bytes: [UInt8] = []
        var overflowed = false
        var announced = false
    }

    private let pending = Mutex<Pending>(Pending())
    private let usesRESP3: Atomic<Bool>
    private let announce: (@Sendable (PubSubMailbox) -> Void)?

    /// Creates a mailbox; `announce` tells the owning thread that messages are waiting (nil in
    /// tests, which collect with `takeMessages` themselves).
    public init(clientID: Int64, descriptor: Int32, resp3: Bool, announce: (@Sendable (PubSubMailbox) -> Void)?) {
        self.clientID = clientID
        self.descriptor = descriptor
        usesRESP3 = Atomic(resp3)
        self.announce = announce
    }

    private let waiting = Atomic<Bool>(false)
    private let subscribed = Atomic<Bool>(false)

    /// True while posted messages wait to be taken (one relaxed load).
    public var hasMessages: Bool { waiting.load(ordering: .relaxed) }
    private let redirectBroken = Atomic<Bool>(false)

    /// True while the client has any subscription (Redis's CLIENT_PUBSUB): a RESP2 client
    /// receives tracking invalidations redirected to it only then.
    public var isSubscribed: Bool {
        get { subscribed.load(ordering: .relaxed) }
        set { subscribed.store(newValue, ordering: .relaxed) }
    }

    /// CLIENT_TRACKING_BROKEN_REDIR: this tracking client's redirect client was gone when an
    /// invalidation was due (set by whichever thread sent it; CLIENT LIST `R`, TRACKINGINFO).
    public var isTrackingRedirectBroken: Bool { redirectBroken.load(ordering: .relaxed) }
    func setTrackingRedirectBroken(_ broken: Bool) { redirectBroken.store(broken, ordering: .relaxed) }

    /// The dialect messages are encoded in (HELLO may change it while subscribed).
    public var isRESP3: Bool {
        get { usesRESP3.load(ordering: .relaxed) }
        set { usesRESP3.store(newValue, ordering: .relaxed) }
    }

    /// Appends one message already encoded for RESP2 (`*N...`); RESP3 subscribers get it as a
    /// push (`>N...`). Past `limitBytes` (0 = none) the mailbox drops everything and overflows.
    func post(_ encoded: [UInt8], limitBytes: Int) {
        let resp3 = isRESP3
        let first = pending.withLock { state -> Bool in
            if state.overflowed { return false }
            if resp3 {
                state.bytes.append(UInt8(ascii: ">"))
                state.bytes.append(contentsOf: encoded[1...])
            } else {
                state.bytes.append(contentsOf: encoded)
            }
            if limitBytes > 0 && state.bytes.count > limitBytes {
                state.overflowed = true
                state.bytes = []
            }
            waiting.store(true, ordering: .relaxed)
            if state.announced { return false }
            state.announced = true
            return true
        }
        if first { announce?(self) }
    }

    /// Appends bytes sent as they are in either dialect (MONITOR's status lines).
    func post(raw bytes: [UInt8], limitBytes: Int) {
        let first = pending.withLock { state -> Bool in
            if state.overflowed { return false }
            state.bytes.append(contentsOf: bytes)
            if limitBytes > 0 && state.bytes.count > limitBytes {
                state.overflowed = true
                state.bytes = []
            }
            waiting.store(true, ordering: .relaxed)
            if state.announced { return false }
            state.announced = true
            return true
        }
        if first { announce?(self) }
    }

    /// Takes the waiting messages; `overflowed` means the client fell past its output limit and
    /// must be closed.
    public func takeMessages() -> (bytes: [UInt8], overflowed: Bool) {
        pending.withLock { state in
            let taken = (state.bytes, state.overflowed)
            state.bytes = []
            state.announced = false
            waiting.store(false, ordering: .relaxed)
            return taken
        }
    }
}

/// One client's subscriptions, owned by its I/O thread (kept in its `ClientSession`).
public final class ClientSubscriptions {
    /// Where other clients' messages for this one are left.
    public let mailbox: PubSubMailbox
    /// Channels, in subscription order (UNSUBSCRIBE with no argument replies in this order).
    var channels = OrderedByteSet()
    /// Patterns, in subscription order.
    var patterns = OrderedByteSet()
    /// Shard channels, in subscription order.
    var shardChannels = OrderedByteSet()

    init(mailbox: PubSubMailbox) { self.mailbox = mailbox }

    /// Channels plus patterns (the count the subscribe family replies with).
    var count: Int { channels.count + patterns.count }
    /// Every subscription, shard channels included (Redis's CLIENT_PUBSUB flag is set while > 0).
    var total: Int { channels.count + patterns.count + shardChannels.count }
}

/// A small insertion-ordered set of byte strings.
struct OrderedByteSet {
    private(set) var items: [[UInt8]] = []
    private var members: Set<[UInt8]> = []

    var count: Int { items.count }

    mutating func insert(_ item: [UInt8]) -> Bool {
        guard members.insert(item).inserted else { return false }
        items.append(item)
        return true
    }

    mutating func remove(_ item: [UInt8]) -> Bool {
        guard members.remove(item) != nil else { return false }
        items.removeAll { $0 == item }
        return true
    }
}

/// The three kinds of subscription, as pubsub.c's `pubsubtype` separates them.
enum SubscriptionKind {
    case channel, pattern, shardChannel
}

/// Every subscription on the server, shared by all I/O threads.
public final class PubSubHub: Sendable {
    private struct Tables {
        var channels: [[UInt8]: [PubSubMailbox]] = [:]
        var patterns: [[UInt8]: [PubSubMailbox]] = [:]
        /// Patterns in the order they got their first subscriber (the delivery order).
        var patternOrder: [[UInt8]] = []
        var shardChannels: [[UInt8]: [PubSubMailbox]] = [:]
    }

    private let tables = Mutex<Tables>(Tables())
    /// Subscriptions of any kind on the server: notifications skip building channel names when 0.
    private let subscriptionCount = Atomic<Int>(0)
    private let mailboxLimit = Atomic<Int>(32 * 1024 * 1024)

    /// The hard limit a mailbox may hold (the pubsub class of `client-output-buffer-limit`).
    var mailboxLimitBytes: Int { mailboxLimit.load(ordering: .relaxed) }

    /// Creates an empty hub.
    public init() {}

    /// The pubsub class's hard output limit, which also bounds a subscriber's undrained mailbox.
    public func setMailboxLimit(bytes: Int) { mailboxLimit.store(max(0, bytes), ordering: .relaxed) }

    /// True while anyone is subscribed to anything (one relaxed load).
    @inline(__always) public var hasSubscribers: Bool { subscriptionCount.load(ordering: .relaxed) > 0 }

    /// INFO's `pubsub_channels`, `pubsub_patterns` and `pubsubshard_channels`.
    public func counts() -> (channels: Int, patterns: Int, shardChannels: Int) {
        tables.withLock { ($0.channels.count, $0.patterns.count, $0.shardChannels.count) }
    }

    /// Adds `mailbox` to the subscribers of `name`.
    func add(_ mailbox: PubSubMailbox, to name: [UInt8], kind: SubscriptionKind) {
        tables.withLock { tables in
            switch kind {
            case .channel: tables.channels[name, default: []].append(mailbox)
            case .shardChannel: tables.shardChannels[name, default: []].append(mailbox)
            case .pattern:
                if tables.patterns[name] == nil { tables.patternOrder.append(name) }
                tables.patterns[name, default: []].append(mailbox)
            }
        }
        subscriptionCount.add(1, ordering: .relaxed)
    }

    /// Removes `mailbox` from the subscribers of `name`, dropping the name when none are left.
    func remove(_ mailbox: PubSubMailbox, from name: [UInt8], kind: SubscriptionKind) {
        tables.withLock { tables in
            func drop(_ table: inout [[UInt8]: [PubSubMailbox]]) -> Bool {
                guard var list = table[name] else { return false }
                list.removeAll { $0 === mailbox }
                table[name] = list.isEmpty ? nil : list
                return list.isEmpty
            }
            switch kind {
            case .channel: _ = drop(&tables.channels)
            case .shardChannel: _ = drop(&tables.shardChannels)
            case .pattern:
                if drop(&tables.patterns) { tables.patternOrder.removeAll { $0 == name } }
            }
        }
        subscriptionCount.subtract(1, ordering: .relaxed)
    }

    /// Delivers `message` on `channel` to its channel subscribers and, unless `shard`, to every
    /// matching pattern's subscribers; returns the receivers (a client once per matching
    /// subscription). `direct` receives messages for the client `directClientID` (the publisher
    /// itself) so they land in its reply stream at once.
    func publish(channel: ArraySlice<UInt8>, message: ArraySlice<UInt8>, shard: Bool,
                 directClientID: Int64, direct: (inout OutputBuffer) -> Void = { _ in },
                 output: inout OutputBuffer) -> Int {
        if !hasSubscribers { return 0 }
        let limit = mailboxLimit.load(ordering: .relaxed)
        let channelKey = Array(channel)
        return tables.withLock { tables -> Int in
            var receivers = 0
            let listeners = shard ? tables.shardChannels[channelKey] : tables.channels[channelKey]
            if let listeners {
                let encoded = Self.encode(shard ? Self.smessageWord : Self.messageWord, nil, channel, message)
                for mailbox in listeners {
                    deliver(encoded, to: mailbox, limit: limit, directClientID: directClientID, output: &output)
                }
                receivers += listeners.count
            }
            if shard || tables.patternOrder.isEmpty { return receivers }
            for pattern in tables.patternOrder where globMatches(pattern, channel) {
                guard let listeners = tables.patterns[pattern] else { continue }
                let encoded = Self.encode(Self.pmessageWord, pattern[...], channel, message)
                for mailbox in listeners {
                    deliver(encoded, to: mailbox, limit: limit, directClientID: directClientID, output: &output)
                }
                receivers += listeners.count
            }
            return receivers
        }
    }

    private func deliver(_ encoded: [UInt8], to mailbox: PubSubMailbox, limit: Int, directClientID: Int64,
                         output: inout OutputBuffer) {
        if mailbox.clientID == directClientID {
            if output.protocolVersion == .resp3 {
                output.writeStaticString(">")
                output.writeBytes(encoded[1...])
            } else {
                output.writeBytes(encoded)
            }
        } else {
            mailbox.post(encoded, limitBytes: limit)
        }
    }

    /// Active channel names (of `shard` channels or plain ones) matching `pattern` (all if nil).
    func channelNames(matching pattern: ArraySlice<UInt8>?, shard: Bool) -> [[UInt8]] {
        tables.withLock { tables in
            let table = shard ? tables.shardChannels : tables.channels
            return table.keys.filter { pattern == nil || globMatches(pattern!, $0) }
        }
    }

    /// The number of subscribers of each channel (PUBSUB NUMSUB / SHARDNUMSUB).
    func subscriberCount(_ channel: [UInt8], shard: Bool) -> Int {
        tables.withLock { (shard ? $0.shardChannels[channel] : $0.channels[channel])?.count ?? 0 }
    }

    static let messageWord: [UInt8] = Array("message".utf8)
    static let smessageWord: [UInt8] = Array("smessage".utf8)
    static let pmessageWord: [UInt8] = Array("pmessage".utf8)

    /// A message in RESP2 framing: [kind, (pattern,) channel, payload].
    static func encode(_ kind: [UInt8], _ pattern: ArraySlice<UInt8>?, _ channel: ArraySlice<UInt8>,
                       _ message: ArraySlice<UInt8>) -> [UInt8] {
        var output = OutputBuffer(initialCapacity: 32 + channel.count + message.count + (pattern?.count ?? 0))
        output.writeArrayHeader(pattern == nil ? 3 : 4)
        output.writeBulkString(kind)
        if let pattern { output.writeBulkString(pattern) }
        output.writeBulkString(channel)
        output.writeBulkString(message)
        return Array(output.storage[output.readerIndex..<output.writerIndex])
    }
}
