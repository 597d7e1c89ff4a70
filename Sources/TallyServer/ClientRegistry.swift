// ClientRegistry: the cross-thread view of connected clients, for CLIENT LIST/KILL, INFO and maxclients.
import Synchronization
import TallyCommands

/// What a connection is to this server, as Redis's getClientType (networking.c) classifies it for
/// CLIENT LIST/KILL TYPE and output-buffer limits. Pub/sub is not stored: a `.normal` client with
/// subscriptions is of type pubsub.
public enum ClientKind: Sendable, Equatable {
    /// An ordinary client (or a subscriber: see `ClientFields.typeName`).
    case normal
    /// A replica of ours, attached with SYNC/PSYNC (Redis's CLIENT_SLAVE; type `replica`/`slave`).
    case replica
    /// The link to our own primary, on which its stream arrives (Redis's CLIENT_MASTER; type `master`).
    case primary
}

/// What CLIENT LIST shows about one client, published by the owning I/O thread after each
/// batch of commands (not per command), so other threads can read it without touching the
/// thread-owned `ClientSession`.
public struct ClientFields: Sendable {
    public var id: Int64
    public var address: String
    public var localAddress: String
    public var descriptor: Int32
    public var name: [UInt8]?
    public var createdAtMilliseconds: Int64
    public var lastInteractionMilliseconds: Int64
    public var database: Int
    public var inMulti: Int
    public var queryBufferBytes: Int
    /// Room in the query buffer (`qbuf-free`).
    public var queryBufferFreeBytes: Int = 0
    public var outputBufferBytes: Int
    public var lastCommand: String
    public var protocolVersion: Int
    public var waitingToWrite: Bool
    /// Subscribed channels, patterns and shard channels (`sub=`, `psub=`, `ssub=`).
    public var channels: Int = 0
    public var patterns: Int = 0
    public var shardChannels: Int = 0
    /// What the connection is (set by replication when a client turns into a replica or is the
    /// primary link; never changed by `Connection.publish`).
    public var kind: ClientKind = .normal

    /// The client's type as CLIENT LIST/KILL TYPE name it: master first, then replica, then pubsub
    /// for a subscribed client, else normal (networking.c getClientType).
    public var typeName: String {
        switch kind {
        case .primary: return "master"
        case .replica: return "slave"
        case .normal: return channels + patterns + shardChannels > 0 ? "pubsub" : "normal"
        }
    }

    /// Whether `TYPE name` (already lowercased and validated by `ClientFields.typeNames`) selects this
    /// client; `replica` and `slave` are one type.
    public func hasType(_ name: String) -> Bool {
        typeName == (name == "replica" ? "slave" : name)
    }

    /// The names CLIENT LIST/KILL accept after TYPE (networking.c getClientTypeByName).
    public static let typeNames: Set<String> = ["normal", "slave", "replica", "pubsub", "master"]

    /// One CLIENT LIST line (without the newline) in Redis 7.0's field order.
    func line(nowMilliseconds: Int64) -> String {
        let age = max(0, (nowMilliseconds - createdAtMilliseconds) / 1000)
        let idle = max(0, (nowMilliseconds - lastInteractionMilliseconds) / 1000)
        let nameText = name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let events = waitingToWrite ? "rw" : "r"
        // networking.c catClientInfoString: S (replica), M (master), P (pubsub), x (MULTI).
        var flags = kind == .replica ? "S" : kind == .primary ? "M" : ""
        if channels + patterns + shardChannels > 0 { flags += "P" }
        if inMulti >= 0 { flags += "x" }
        if flags.isEmpty { flags = "N" }
        return "id=\(id) addr=\(address) laddr=\(localAddress) fd=\(descriptor) name=\(nameText) age=\(age)"
            + " idle=\(idle) flags=\(flags) db=\(database) sub=\(channels) psub=\(patterns) ssub=\(shardChannels)"
            + " multi=\(inMulti)"
            + " qbuf=\(queryBufferBytes) qbuf-free=\(queryBufferFreeBytes) argv-mem=0 multi-mem=0 rbs=16384 rbp=0"
            + " obl=\(outputBufferBytes) oll=0 omem=\(outputBufferBytes)"
            + " tot-mem=\(queryBufferBytes + queryBufferFreeBytes + outputBufferBytes + 16384)"
            + " events=\(events) cmd=\(lastCommand) user=default redir=-1 resp=\(protocolVersion)"
    }
}

/// The shared half of a connection: its published fields and a kill request flag.
public final class ClientRecord: Sendable {
    /// Client id (also in the fields; kept here for lock-free lookups).
    public let id: Int64
    /// The I/O thread that owns the connection.
    let ownerThread: Int
    let fields: Mutex<ClientFields>
    let killRequested = Atomic<Bool>(false)
    /// Closes a connection no I/O thread owns (a replication link on its own thread): CLIENT KILL
    /// sets `killRequested` and calls this instead of waking an I/O thread.
    let killHandler: (@Sendable () -> Void)?

    init(id: Int64, ownerThread: Int, fields: ClientFields, killHandler: (@Sendable () -> Void)? = nil) {
        self.id = id
        self.ownerThread = ownerThread
        self.fields = Mutex(fields)
        self.killHandler = killHandler
    }

    /// Marks the client as a replica or the primary link (CLIENT LIST flags and TYPE filters).
    public func setKind(_ kind: ClientKind) { fields.withLock { $0.kind = kind } }
}

/// All connected clients.
public final class ClientRegistry: Sendable {
    private let records = Mutex<[Int64: ClientRecord]>([:])
    private let connected = Atomic<Int>(0)

    /// Creates an empty registry.
    public init() {}

    /// Number of connected clients.
    public var count: Int { connected.load(ordering: .relaxed) }

    /// Reserves a client slot unless `limit` is reached; returns false when full (maxclients).
    func reserveSlot(limit: Int) -> Bool {
        while true {
            let current = connected.load(ordering: .relaxed)
            if current >= limit { return false }
            if connected.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
                .exchanged
            {
                return true
            }
        }
    }

    /// Gives back a slot reserved with `reserveSlot`.
    func releaseSlot() { connected.subtract(1, ordering: .relaxed) }

    func add(_ record: ClientRecord) { records.withLock { $0[record.id] = record } }

    func remove(_ id: Int64) { records.withLock { _ = $0.removeValue(forKey: id) } }

    /// All records, ordered by id like Redis's client list.
    func all() -> [ClientRecord] {
        records.withLock { Array($0.values) }.sorted { $0.id < $1.id }
    }

    func record(id: Int64) -> ClientRecord? { records.withLock { $0[id] } }
}
