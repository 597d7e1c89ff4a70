// Tracking: server-assisted client-side caching, CLIENT TRACKING (Redis 7.0 tracking.c).
//
//   reader (tracking client, any thread)         writer (any thread)
//   ────────────────────────────────────         ─────────────────────────────────────────────
//   GET k ─► before and after the call:          SET k ─► Shard.touch records k (shard lock held)
//            remember(k, id): keys[k] += id              finish(): drain ─► invalidate(k, writer)
//                                                        table lock: ids = keys.remove(k)
//                                                          id == writer ─► writer's own pending list,
//                                                                          sent after its reply
//                                                          other id ─► its mailbox (or its redirect
//                                                                      client's) ─► owner's eventfd
//                                                        BCAST: prefix.keys[k] = writer
//   end of every I/O loop iteration: broadcastPending() sends each prefix's batch of keys.
//
// As in Redis the table is keyed by key name alone (no database), a key is forgotten once its
// invalidation is sent, and client ids are not removed from it when a client stops tracking
// (stale ids are skipped on delivery). Lock order: shard locks, then this table's lock, then a
// mailbox's lock; nothing here takes a shard lock.
import Synchronization
import TallyKeyspace
import TallyProtocol

/// CLIENT TRACKING's mode flags (server.h CLIENT_TRACKING_*).
public struct TrackingOptions: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let broadcast = TrackingOptions(rawValue: 1 << 0)
    public static let optIn = TrackingOptions(rawValue: 1 << 1)
    public static let optOut = TrackingOptions(rawValue: 1 << 2)
    public static let noLoop = TrackingOptions(rawValue: 1 << 3)
}

/// One session's tracking mode, as CLIENT TRACKINGINFO reports it (owned by the session).
public struct ClientTracking {
    /// BCAST, OPTIN, OPTOUT, NOLOOP.
    public var options: TrackingOptions
    /// The client invalidations go to; 0 for the tracking client itself.
    public var redirect: Int64
    /// BCAST prefixes, sorted bytewise (Redis keeps them in a radix tree).
    public var prefixes: [[UInt8]]
}

/// The server's tracking table, prefix table and delivery of invalidation messages.
public final class KeyTracking: Sendable {
    private struct Tracker {
        var mailbox: PubSubMailbox
        var options: TrackingOptions
        var redirect: Int64
    }

    private struct BroadcastPrefix {
        var clients: [Int64] = []
        /// Keys modified since the last broadcast, with the id of the client that last did.
        var keys: [[UInt8]: Int64] = [:]
    }

    private struct State {
        var keys: [[UInt8]: Set<Int64>] = [:]
        var totalItems = 0
        var trackers: [Int64: Tracker] = [:]
        var prefixes: [[UInt8]: BroadcastPrefix] = [:]
        var limitRounds = 0
    }

    private let state = Mutex<State>(State())
    private let trackingClients = Atomic<Int>(0)
    private let hasBroadcastKeys = Atomic<Bool>(false)
    private let maxKeys = Atomic<Int>(1_000_000)
    /// Finds any connected client's mailbox by id (REDIRECT targets); set by the server.
    private let directory = Mutex<(@Sendable (Int64) -> PubSubMailbox?)?>(nil)

    init() {}

    /// True while any client tracks (one relaxed load).
    @inline(__always) public var isActive: Bool { trackingClients.load(ordering: .relaxed) > 0 }

    /// INFO's `tracking_clients`.
    public var clientCount: Int { trackingClients.load(ordering: .relaxed) }

    /// INFO's `tracking_total_keys`, `tracking_total_items` and `tracking_total_prefixes`.
    public func totals() -> (keys: Int, items: Int, prefixes: Int) {
        state.withLock { ($0.keys.count, $0.totalItems, $0.prefixes.count) }
    }

    /// `tracking-table-max-keys` (0 = no limit).
    public func setMaxKeys(_ keys: Int) { maxKeys.store(max(0, keys), ordering: .relaxed) }

    /// Installs the lookup of a connected client's mailbox by id.
    public func setDirectory(_ lookup: @escaping @Sendable (Int64) -> PubSubMailbox?) {
        directory.withLock { $0 = lookup }
    }

    /// Whether a client with `id` is connected (CLIENT TRACKING REDIRECT's check).
    public func clientExists(_ id: Int64) -> Bool { lookupMailbox(id) != nil }

    private func lookupMailbox(_ id: Int64) -> PubSubMailbox? {
        guard let lookup = directory.withLock({ $0 }) else { return nil }
        return lookup(id)
    }

    // MARK: Enabling

    /// enableTracking: (re)enables tracking for `session`; the caller checked the options.
    public func enable(_ session: ClientSession, options: TrackingOptions, redirect: Int64, prefixes: [[UInt8]]) {
        let mailbox = session.makeMailbox()
        let wasTracking = session.tracking != nil
        var all = session.tracking?.prefixes ?? []
        state.withLock { state in
            state.trackers[session.id] = Tracker(mailbox: mailbox, options: options, redirect: redirect)
            guard options.contains(.broadcast) else { return }
            for prefix in prefixes.isEmpty ? [[]] : prefixes where !all.contains(prefix) {
                state.prefixes[prefix, default: BroadcastPrefix()].clients.append(session.id)
                all.append(prefix)
            }
        }
        if !wasTracking {
            trackingClients.add(1, ordering: .relaxed)
            Shard.trackingClients.add(1, ordering: .relaxed)
        }
        all.sort { $0.lexicographicallyPrecedes($1) }
        session.tracking = ClientTracking(options: options, redirect: redirect, prefixes: all)
        session.trackingCaching = false
        mailbox.setTrackingRedirectBroken(false)
    }

    /// The error CLIENT TRACKING ON answers for `options` and `prefixes` given the client's
    /// current mode, in networking.c clientCommand's order; nil when they may be enabled.
    public static func enableError(_ current: ClientTracking?, options: TrackingOptions,
                                   prefixes: [[UInt8]]) -> [UInt8]? {
        if !options.contains(.broadcast) && !prefixes.isEmpty {
            return Array("ERR PREFIX option requires BCAST mode to be enabled".utf8)
        }
        if let current, current.options.contains(.broadcast) != options.contains(.broadcast) {
            return Array(("ERR You can't switch BCAST mode on/off before disabling tracking for this client, "
                + "and then re-enabling it with a different mode.").utf8)
        }
        if options.contains(.broadcast) && !options.isDisjoint(with: [.optIn, .optOut]) {
            return Array("ERR OPTIN and OPTOUT are not compatible with BCAST".utf8)
        }
        if options.isSuperset(of: [.optIn, .optOut]) {
            return Array("ERR You can't specify both OPTIN mode and OPTOUT mode".utf8)
        }
        if let current, (options.contains(.optIn) && current.options.contains(.optOut))
            || (options.contains(.optOut) && current.options.contains(.optIn))
        {
            return Array(("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, "
                + "and then re-enabling it with a different mode.").utf8)
        }
        guard options.contains(.broadcast) else { return nil }
        // tracking.c checkPrefixCollisionsOrReply: a prefix may not be a prefix of another,
        // neither of one the client already has nor of a later one in the same call.
        func overlaps(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            let shorter = min(a.count, b.count)
            return a.prefix(shorter) == b.prefix(shorter)
        }
        for (index, prefix) in prefixes.enumerated() {
            for existing in current?.prefixes ?? [] where overlaps(existing, prefix) {
                return Array("ERR Prefix '".utf8) + prefix + Array("' overlaps with an existing prefix '".utf8)
                    + existing + Array("'. Prefixes for a single client must not overlap.".utf8)
            }
            for other in prefixes[(index + 1)...] where overlaps(prefix, other) {
                return Array("ERR Prefix '".utf8) + prefix + Array("' overlaps with another provided prefix '".utf8)
                    + other + Array("'. Prefixes for a single client must not overlap.".utf8)
            }
        }
        return nil
    }

    /// CLIENT CACHING YES|NO accepted: the next command (or transaction) flips the OPTIN/OPTOUT
    /// default.
    public func setCaching(_ session: ClientSession) { session.trackingCaching = true }

    /// disableTracking: leaves the prefixes; remembered keys stay until invalidated.
    public func disable(_ session: ClientSession) {
        guard let tracking = session.tracking else { return }
        state.withLock { state in
            state.trackers[session.id] = nil
            for prefix in tracking.prefixes {
                guard var entry = state.prefixes[prefix] else { continue }
                entry.clients.removeAll { $0 == session.id }
                state.prefixes[prefix] = entry.clients.isEmpty ? nil : entry
            }
        }
        trackingClients.subtract(1, ordering: .relaxed)
        Shard.trackingClients.subtract(1, ordering: .relaxed)
        session.tracking = nil
        session.trackingCaching = false
        session.mailbox?.setTrackingRedirectBroken(false)
    }

    // MARK: Reading

    /// trackingRememberKeys: `keys` were read by `session` (a tracking client outside BCAST, and
    /// past the OPTIN/OPTOUT check).
    /// Returns the keys the client had not read before (so they were not remembered for it).
    @discardableResult
    func remember(_ keys: [[UInt8]], session: ClientSession) -> [[UInt8]] {
        let id = session.id
        return state.withLock { state in
            var added: [[UInt8]] = []
            for key in keys where state.keys[key, default: []].insert(id).inserted {
                state.totalItems += 1
                added.append(key)
            }
            return added
        }
    }

    /// trackingLimitUsedSlots: past `tracking-table-max-keys`, invalidates keys until under it,
    /// with an effort of 100 keys per round that grows while the limit stays exceeded.
    public func limitUsedSlots() {
        let limit = maxKeys.load(ordering: .relaxed)
        if limit == 0 || !isActive { return }
        state.withLock { state in
            if state.keys.count <= limit {
                state.limitRounds = 0
                return
            }
            var effort = 100 * (state.limitRounds + 1)
            while effort > 0, let key = state.keys.keys.first {
                effort -= 1
                invalidateLocked(&state, key[...], writer: nil)
                if state.keys.count <= limit {
                    state.limitRounds = 0
                    return
                }
            }
            state.limitRounds += 1
        }
    }

    // MARK: Writing

    /// trackingInvalidateKey for each key `writer` (nil outside a command) modified: clients
    /// that read it get an invalidation, except `writer` itself, whose messages wait in its
    /// `trackingPending` until its reply is written (or are skipped under NOLOOP).
    func invalidate(_ keys: [[UInt8]], writer: ClientSession?) {
        if keys.isEmpty { return }
        let own = state.withLock { state -> [[UInt8]] in
            var own: [[UInt8]] = []
            for key in keys {
                if !state.prefixes.isEmpty { rememberForBroadcast(&state, key, writer: writer?.id ?? 0) }
                if invalidateLocked(&state, key[...], writer: writer?.id) { own.append(key) }
            }
            return own
        }
        guard let writer, !own.isEmpty else { return }
        for key in own where !writer.trackingEarlyKeys.contains(key) { writer.trackingPending.append(key) }
    }

    private func rememberForBroadcast(_ state: inout State, _ key: [UInt8], writer: Int64) {
        for prefix in state.prefixes.keys where prefix.count <= key.count && key.starts(with: prefix) {
            state.prefixes[prefix]!.keys[key] = writer
            hasBroadcastKeys.store(true, ordering: .relaxed)
        }
    }

    /// Sends `key`'s invalidation to every client that read it; returns whether `writer`
    /// read it too (its own message is deferred by the caller).
    @discardableResult
    private func invalidateLocked(_ state: inout State, _ key: ArraySlice<UInt8>, writer: Int64?) -> Bool {
        guard let ids = state.keys.removeValue(forKey: Array(key)) else { return false }
        state.totalItems -= ids.count
        var ownPending = false
        for id in ids {
            guard let tracker = state.trackers[id], !tracker.options.contains(.broadcast) else { continue }
            if id == writer {
                if !tracker.options.contains(.noLoop) { ownPending = true }
                continue
            }
            send(&state, to: id, keys: Self.keyArray(key))
        }
        return ownPending
    }

    /// FLUSHALL / FLUSHDB (trackingInvalidateKeysOnFlush): a null invalidation to every tracking
    /// client (the flushing one after its reply), and the table is emptied.
    func invalidateAll(writer: ClientSession) {
        let ownTracks = state.withLock { state -> Bool in
            var own = false
            for id in Array(state.trackers.keys) {
                if id == writer.id {
                    own = true
                    continue
                }
                send(&state, to: id, keys: nil)
            }
            state.keys = [:]
            state.totalItems = 0
            return own
        }
        if ownTracks { writer.trackingPendingFlush.append(writer.trackingPending.count) }
    }

    /// Sends what `session` deferred during its command (its own keys' invalidations), after
    /// its reply, into `output` or its redirect client's mailbox.
    func sendPending(_ session: ClientSession, output: inout OutputBuffer) {
        let keys = session.trackingPending
        let flushes = session.trackingPendingFlush
        session.trackingPending = []
        session.trackingPendingFlush = []
        guard session.tracking != nil else { return }
        var flushIndex = 0
        state.withLock { state in
            for index in 0...keys.count {
                while flushIndex < flushes.count && flushes[flushIndex] == index {
                    send(&state, to: session.id, keys: nil, direct: &output)
                    flushIndex += 1
                }
                if index < keys.count {
                    send(&state, to: session.id, keys: Self.keyArray(keys[index][...]), direct: &output)
                }
            }
        }
    }

    // MARK: Broadcasting

    /// trackingBroadcastInvalidationMessages: each prefix's keys modified since the last call,
    /// as one message per client (without its own changes under NOLOOP). Called once per I/O
    /// loop iteration; a relaxed load when nothing is pending.
    public func broadcastPending() {
        guard hasBroadcastKeys.load(ordering: .relaxed) else { return }
        hasBroadcastKeys.store(false, ordering: .relaxed)
        state.withLock { state in
            for prefix in state.prefixes.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                guard let entry = state.prefixes[prefix], !entry.keys.isEmpty else { continue }
                state.prefixes[prefix]!.keys = [:]
                let sortedKeys = entry.keys.keys.sorted { $0.lexicographicallyPrecedes($1) }
                let common = Self.keyArray(sortedKeys)
                for id in entry.clients {
                    guard let tracker = state.trackers[id] else { continue }
                    if tracker.options.contains(.noLoop) {
                        let others = sortedKeys.filter { entry.keys[$0] != id }
                        if others.isEmpty { continue }
                        send(&state, to: id, keys: Self.keyArray(others))
                    } else {
                        send(&state, to: id, keys: common)
                    }
                }
            }
        }
    }

    // MARK: Delivery

    /// `*N` and the key bulks (the message's value).
    static func keyArray<C: Collection>(_ key: C) -> [UInt8] where C.Element == UInt8 {
        keyArray([Array(key)])
    }

    static func keyArray(_ keys: [[UInt8]]) -> [UInt8] {
        var output = OutputBuffer(initialCapacity: 16 + keys.reduce(0) { $0 + $1.count + 16 })
        output.writeArrayHeader(keys.count)
        for key in keys { output.writeBulkString(key) }
        return Array(output.storage[output.readerIndex..<output.writerIndex])
    }

    private func send(_ state: inout State, to id: Int64, keys: [UInt8]?) {
        var unused = OutputBuffer(initialCapacity: 0)
        send(&state, to: id, keys: keys, direct: &unused, isDirect: false)
    }

    /// sendTrackingMessage: `keys` (nil: a flush's null) to tracking client `id`, or to its
    /// redirect client; a RESP3 tracking client whose redirect client is gone is told so.
    /// `direct` is the output of `id` itself when it runs on this thread (its own pending).
    private func send(_ state: inout State, to id: Int64, keys: [UInt8]?, direct: inout OutputBuffer,
                      isDirect: Bool = true) {
        guard let tracker = state.trackers[id] else { return }
        let trackerRESP3 = tracker.mailbox.isRESP3
        let null: [UInt8] = trackerRESP3 ? Array("_\r\n".utf8) : Array("$-1\r\n".utf8)
        let value = keys ?? null
        var target = tracker.mailbox
        var redirected = false
        if tracker.redirect != 0 {
            guard let redirect = lookupMailbox(tracker.redirect) else {
                tracker.mailbox.setTrackingRedirectBroken(true)
                guard trackerRESP3 else { return }
                var message = OutputBuffer(initialCapacity: 64)
                message.writeStaticString(">2\r\n$21\r\ntracking-redir-broken\r\n")
                message.writeInteger(tracker.redirect)
                deliver(Array(message.storage[message.readerIndex..<message.writerIndex]), to: tracker.mailbox,
                        direct: &direct, isDirect: isDirect)
                return
            }
            target = redirect
            redirected = true
        }
        var message: [UInt8]
        if target.isRESP3 {
            message = Array(">2\r\n$10\r\ninvalidate\r\n".utf8)
        } else if redirected && target.isSubscribed {
            message = Array("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n".utf8)
        } else {
            // RESP2 has no pushes on the same connection: nothing can be sent.
            return
        }
        message.append(contentsOf: value)
        deliver(message, to: target, direct: &direct, isDirect: isDirect && !redirected)
    }

    private func deliver(_ message: [UInt8], to mailbox: PubSubMailbox, direct: inout OutputBuffer, isDirect: Bool) {
        if isDirect {
            direct.writeBytes(message)
        } else {
            mailbox.post(raw: message, limitBytes: 0)
        }
    }
}
