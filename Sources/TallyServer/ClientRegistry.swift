// ClientRegistry: the cross-thread view of connected clients, for CLIENT LIST/KILL, INFO and maxclients.
import Synchronization
import TallyCommands

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
    /// CLIENT NO-EVICT ON (flag `e`).
    public var noEvict = false
    /// CLIENT TRACKING: flags `t`, `R` (redirect client gone), `B` (BCAST), and `redir=`.
    public var tracking = false
    /// MONITOR (flag `O`), parked in a blocking command (`b`), a WATCHed key changed (`d`).
    public var isMonitor = false
    public var isBlocked = false
    public var isDirtyCAS = false
    public var trackingBroken = false
    public var trackingBroadcast = false
    public var trackingRedirect: Int64 = 0
    public var outputBufferBytes: Int
    public var lastCommand: String
    public var protocolVersion: Int
    public var waitingToWrite: Bool
    /// Subscribed channels, patterns and shard channels (`sub=`, `psub=`, `ssub=`).
    public var channels: Int = 0
    public var patterns: Int = 0
    public var shardChannels: Int = 0
    /// A replica served by the replication code after SYNC/PSYNC (flag `S`, type `slave`).
    public var isReplica: Bool = false
    /// The link to our own primary (flag `M`, type `master`).
    public var isPrimaryLink: Bool = false

    /// Redis's getClientType name: `master`, `slave`, `pubsub` or `normal`.
    var clientType: String {
        if isPrimaryLink { return "master" }
        if isReplica { return "slave" }
        return channels + patterns + shardChannels > 0 ? "pubsub" : "normal"
    }

    /// CLIENT LIST's `tot-mem`: the query buffer, the pending output and the 16 KB reply buffer.
    var totalMemory: Int { queryBufferBytes + queryBufferFreeBytes + outputBufferBytes + 16384 }

    /// One CLIENT LIST line (without the newline) in Redis 7.0's field order.
    func line(nowMilliseconds: Int64) -> String {
        let age = max(0, (nowMilliseconds - createdAtMilliseconds) / 1000)
        let idle = max(0, (nowMilliseconds - lastInteractionMilliseconds) / 1000)
        let nameText = name.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let events = waitingToWrite ? "rw" : "r"
        // networking.c getClientInfoString's order: O/S (monitor or replica), M (master link),
        // P (pub/sub), x (MULTI), b (blocked), t R B (tracking), d (dirty CAS), U (Unix socket),
        // e (no-evict).
        var flags = isMonitor ? "O" : isReplica ? "S" : ""
        if isPrimaryLink { flags += "M" }
        if channels + patterns + shardChannels > 0 { flags += "P" }
        if inMulti >= 0 { flags += "x" }
        if isBlocked { flags += "b" }
        if tracking { flags += "t" }
        if trackingBroken { flags += "R" }
        if trackingBroadcast { flags += "B" }
        if isDirtyCAS { flags += "d" }
        if address.hasPrefix("/") || address == ":0" { flags += "U" }
        if noEvict { flags += "e" }
        if flags.isEmpty { flags = "N" }
        return "id=\(id) addr=\(address) laddr=\(localAddress) fd=\(descriptor) name=\(nameText) age=\(age)"
            + " idle=\(idle) flags=\(flags) db=\(database) sub=\(channels) psub=\(patterns) ssub=\(shardChannels)"
            + " multi=\(inMulti)"
            + " qbuf=\(queryBufferBytes) qbuf-free=\(queryBufferFreeBytes) argv-mem=0 multi-mem=0 rbs=16384 rbp=0"
            + " obl=\(outputBufferBytes) oll=0 omem=\(outputBufferBytes)"
            + " tot-mem=\(totalMemory)"
            + " events=\(events) cmd=\(lastCommand) user=default redir=\(tracking ? trackingRedirect : -1)"
            + " resp=\(protocolVersion)"
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
    /// The connection's mailbox: a tracking client that redirects here posts invalidations to it.
    let mailbox: PubSubMailbox?

    init(id: Int64, ownerThread: Int, fields: ClientFields, mailbox: PubSubMailbox? = nil) {
        self.id = id
        self.mailbox = mailbox
        self.ownerThread = ownerThread
        self.fields = Mutex(fields)
    }
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

    /// Sum of `tot-mem` over replicas and over the other clients, as last published (INFO
    /// `mem_clients_slaves`, `mem_clients_normal`; object.c getMemoryOverheadData).
    func memoryByKind() -> (replicas: Int, normal: Int) {
        var replicas = 0
        var normal = 0
        for record in records.withLock({ Array($0.values) }) {
            let fields = record.fields.withLock { $0 }
            if fields.isReplica { replicas += fields.totalMemory } else { normal += fields.totalMemory }
        }
        return (replicas, normal)
    }
}
