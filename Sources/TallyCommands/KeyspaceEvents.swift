// KeyspaceEvents: keyspace notifications (`notify-keyspace-events`, notify.c) published through
// the pub/sub hub.
//
// How a command family fires an event (the one API; call it where Redis's t_*.c / db.c call
// notifyKeyspaceEvent, in the same order, with the same event name):
//
//     context.notify(.generic, "del", key)                  // key: [UInt8], ArraySlice or Key bytes
//     context.notify(.list, "lpush", context.arguments[1])
//     context.notify(.generic, "move_to", key, database: target)   // another database than SELECT's
//
// Classes: .generic (g: del, expire, persist, rename_from/_to, move_from/_to, copy_to, restore,
// sortstore's del), .string ($), .list (l), .set (s), .hash (h), .zset (z), .expired (x, fired by the
// engine for lazy and active expiry), .evicted (e, fired by the engine), .stream (t), .keyMiss (m),
// .module (d), .newKey (n). When notifications are off (the default) `notify` costs one relaxed
// atomic load and a branch; nothing is built.
//
// Events of a key that lazy expiry removed during this command ("expired") are published before the
// command's own events, as Redis fires them at lookup time. A command's notification reaches its
// own client (a RESP3 subscriber) through its mailbox, after the command's reply.
import Synchronization
import TallyKeyspace
import TallyProtocol

/// A set of keyspace event classes, with Redis's bit values (server.h NOTIFY_*).
public struct KeyspaceEventClass: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// K: publish on `__keyspace@<db>__:<key>`.
    public static let keyspace = KeyspaceEventClass(rawValue: 1 << 0)
    /// E: publish on `__keyevent@<db>__:<event>`.
    public static let keyevent = KeyspaceEventClass(rawValue: 1 << 1)
    public static let generic = KeyspaceEventClass(rawValue: 1 << 2)
    public static let string = KeyspaceEventClass(rawValue: 1 << 3)
    public static let list = KeyspaceEventClass(rawValue: 1 << 4)
    public static let set = KeyspaceEventClass(rawValue: 1 << 5)
    public static let hash = KeyspaceEventClass(rawValue: 1 << 6)
    public static let zset = KeyspaceEventClass(rawValue: 1 << 7)
    public static let expired = KeyspaceEventClass(rawValue: 1 << 8)
    public static let evicted = KeyspaceEventClass(rawValue: 1 << 9)
    public static let stream = KeyspaceEventClass(rawValue: 1 << 10)
    /// m: key misses (not part of A).
    public static let keyMiss = KeyspaceEventClass(rawValue: 1 << 11)
    public static let module = KeyspaceEventClass(rawValue: 1 << 13)
    /// n: a key was created (not part of A).
    public static let newKey = KeyspaceEventClass(rawValue: 1 << 14)
    /// A: every class but m and n.
    public static let all: KeyspaceEventClass = [
        .generic, .string, .list, .set, .hash, .zset, .expired, .evicted, .stream, .module,
    ]

    private static let letters: [(Character, KeyspaceEventClass)] = [
        ("g", .generic), ("$", .string), ("l", .list), ("s", .set), ("h", .hash), ("z", .zset), ("x", .expired),
        ("e", .evicted), ("t", .stream), ("d", .module), ("n", .newKey),
    ]

    /// Parses the letters of `notify-keyspace-events`; nil on an unknown letter.
    public init?(letters text: String) {
        var classes: KeyspaceEventClass = []
        for letter in text {
            switch letter {
            case "A": classes.formUnion(.all)
            case "K": classes.insert(.keyspace)
            case "E": classes.insert(.keyevent)
            case "m": classes.insert(.keyMiss)
            default:
                guard let match = Self.letters.first(where: { $0.0 == letter }) else { return nil }
                classes.formUnion(match.1)
            }
        }
        self = classes
    }

    /// The canonical letters CONFIG GET answers (notify.c keyspaceEventsFlagsToString).
    public var letters: String {
        var text = ""
        if isSuperset(of: .all) {
            text = "A"
        } else {
            for (letter, value) in Self.letters where contains(value) { text.append(letter) }
        }
        if contains(.keyspace) { text += "K" }
        if contains(.keyevent) { text += "E" }
        if contains(.keyMiss) { text += "m" }
        return text
    }

    /// Redis's CONFIG SET error for an unknown letter.
    public static let invalidLettersMessage = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
}

/// The live `notify-keyspace-events` setting and the publishing of events.
public final class KeyspaceNotifier: Sendable {
    private let enabled = Atomic<Int>(0)
    private let hub: PubSubHub

    init(hub: PubSubHub) { self.hub = hub }

    /// Replaces the enabled classes (CONFIG SET notify-keyspace-events); use
    /// `CommandEngine.setKeyspaceEventClasses`, which also switches the shards' recording of
    /// created keys for "new".
    func setClasses(_ classes: KeyspaceEventClass) { enabled.store(classes.rawValue, ordering: .relaxed) }

    /// The enabled classes.
    public var classes: KeyspaceEventClass { KeyspaceEventClass(rawValue: enabled.load(ordering: .relaxed)) }

    /// True when events of `kind` are published (one relaxed load).
    @inline(__always) func isEnabled(_ kind: KeyspaceEventClass) -> Bool {
        enabled.load(ordering: .relaxed) & kind.rawValue != 0
    }

    /// Publishes one event on the keyspace and/or keyevent channel, as notify.c does. The caller
    /// checked `isEnabled(kind)`.
    func publish<K: Collection>(_ event: StaticString, key: K, database: Int) where K.Element == UInt8 {
        let classes = classes
        guard hub.hasSubscribers, classes.contains(.keyspace) || classes.contains(.keyevent) else { return }
        let eventBytes = UnsafeRawBufferPointer(start: event.utf8Start, count: event.utf8CodeUnitCount)
        var unused = OutputBuffer(initialCapacity: 0)
        let keyBytes = Array(key)
        if classes.contains(.keyspace) {
            var channel = Array("__keyspace@\(database)__:".utf8)
            channel.append(contentsOf: keyBytes)
            _ = hub.publish(channel: channel[...], message: Array(eventBytes)[...], shard: false,
                            directClientID: -1, output: &unused)
        }
        if classes.contains(.keyevent) {
            var channel = Array("__keyevent@\(database)__:".utf8)
            channel.append(contentsOf: eventBytes)
            _ = hub.publish(channel: channel[...], message: keyBytes[...], shard: false, directClientID: -1,
                            output: &unused)
        }
    }

    /// Publishes an event if its class is enabled (for code without a CommandContext: serving
    /// blocked clients).
    func fire(_ kind: KeyspaceEventClass, _ event: StaticString, key: [UInt8], database: Int) {
        if isEnabled(kind) { publish(event, key: key, database: database) }
    }

    /// Publishes "expired" for keys removed by expiry (lazy or active).
    func publishExpired(_ expired: DatabaseKey) {
        if isEnabled(.expired) { publish("expired", key: expired.key.bytes, database: expired.database) }
    }

    /// Publishes "keymiss" for a key a read did not find.
    func publishMissed(_ missed: DatabaseKey) {
        if isEnabled(.keyMiss) { publish("keymiss", key: missed.key.bytes, database: missed.database) }
    }

    /// Publishes "new" for a key a command created.
    func publishCreated(_ created: DatabaseKey) {
        if isEnabled(.newKey) { publish("new", key: created.key.bytes, database: created.database) }
    }

    /// Publishes "evicted" for a key removed by maxmemory eviction.
    func publishEvicted(_ victim: DatabaseKey) {
        if isEnabled(.evicted) { publish("evicted", key: victim.key.bytes, database: victim.database) }
    }
}

extension CommandEngine {
    /// Applies `notify-keyspace-events`.
    public func setKeyspaceEventClasses(_ classes: KeyspaceEventClass) {
        keyspaceEvents.setClasses(classes)
        keyspace.setRecordsCreatedKeys(classes.contains(.newKey))
        keyspace.setRecordsMissedKeys(classes.contains(.keyMiss))
    }
}

extension CommandContext {
    /// Fires keyspace event `event` of class `kind` for `key` in `database` (default: the
    /// selected one). See the top of KeyspaceEvents.swift.
    @inline(__always)
    public mutating func notify<K: Collection>(_ kind: KeyspaceEventClass, _ event: StaticString, _ key: K,
                                               database: Int? = nil) where K.Element == UInt8 {
        guard engine.keyspaceEvents.isEnabled(kind) else { return }
        notifySlow(event, key, database: database ?? self.database)
    }

    /// Fires an event for a `Key`.
    @inline(__always)
    public mutating func notify(_ kind: KeyspaceEventClass, _ event: StaticString, _ key: Key, database: Int? = nil) {
        guard engine.keyspaceEvents.isEnabled(kind) else { return }
        notifySlow(event, key.bytes, database: database ?? self.database)
    }

    @inline(never)
    private mutating func notifySlow<K: Collection>(_ event: StaticString, _ key: K, database: Int)
    where K.Element == UInt8 {
        // Keys that expired while this command looked them up come first.
        if !heldShards.isEmpty || keyspace.isExclusivelyHeldByCurrentThread { drainExpiredKeys() }
        engine.keyspaceEvents.publish(event, key: key, database: database)
    }
}
