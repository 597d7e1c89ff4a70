// ClientSession: per-connection state the commands read and change (db, protocol, MULTI, WATCH).
import TallyKeyspace
import TallyProtocol

/// The state of one client connection. Owned by the I/O thread serving the connection, so it
/// is never touched by two threads at once; it is deliberately not Sendable.
public final class ClientSession {
    /// Unique, increasing client id (CLIENT ID).
    public let id: Int64
    /// CLIENT SETNAME value; nil when unset.
    public var name: [UInt8]?
    /// CLIENT SETINFO lib-name / lib-ver.
    public var libraryName: [UInt8]?
    public var libraryVersion: [UInt8]?
    /// The selected database (SELECT).
    public var database: Int = 0
    /// RESP2 or RESP3 (HELLO).
    public var protocolVersion: RESPVersion = .resp2
    /// False until AUTH succeeds when `requirepass` is set.
    public var isAuthenticated: Bool = true
    /// Set by QUIT, protocol errors and CLIENT KILL: close once pending replies are flushed.
    public var closeAfterReply: Bool = false
    /// The highest AOF offset this session's pending replies depend on (see AppendLog).
    public var pendingLogOffset: UInt64 = 0
    /// The AOF offset current when this session's last command ran (reads included): a reply
    /// may show another client's write, and must not leave before that write's record is
    /// written (fsynced under `always`), or a crash could take back a value someone saw.
    public var observedLogOffset: UInt64 = 0
    /// The offset the pending replies wait for: this session's own writes and what it observed.
    @inline(__always) public var replyLogOffset: UInt64 { Swift.max(pendingLogOffset, observedLogOffset) }
    /// The replication stream offset just past this session's last write (WAIT waits for
    /// replicas to acknowledge it; Redis's `c->woff`).
    public var replicationOffset: Int64 = 0
    /// True for the session that applies our primary's replication stream: its writes reach
    /// our AOF as usual but not the replication stream by propagation, since the primary's bytes
    /// are fed to the backlog verbatim (Redis's CLIENT_MASTER, replicationFeedStreamFromMasterStream).
    public var isReplicationPrimaryLink: Bool = false
    /// Set by SYNC/PSYNC: after this command the I/O thread hands the connection to the
    /// replication code, which serves it on its own thread from then on.
    public var handsOffConnection: Bool = false
    /// Name of the last command executed (CLIENT LIST `cmd=`).
    public var lastCommandName: String = "NULL"
    /// The top-level row `lastCommandName` was taken from (-1 for a subcommand or none).
    var lastCommandRow = -1
    /// Argument indexes of the running command that SLOWLOG and MONITOR show as "(redacted)"
    /// (networking.c redactClientCommandArgument: AUTH's and HELLO's credentials, MIGRATE's
    /// password); dispatch clears it.
    public var redactedArguments: [Int] = []
    /// Peer and local addresses as CLIENT LIST prints them ("127.0.0.1:5000").
    public var peerAddress: String = ""
    public var localAddress: String = ""
    /// File descriptor number (CLIENT LIST `fd=`).
    public var descriptor: Int32 = -1
    /// Creation and last-interaction times in Unix milliseconds.
    public var createdAtMilliseconds: Int64 = 0
    public var lastInteractionMilliseconds: Int64 = 0
    /// Write commands to log, collected during one execution; reused to avoid allocation.
    public var propagation = PropagationBuffer()
    /// MULTI/WATCH state, managed by the transaction commands.
    public var transaction = TransactionState()
    /// True for the session that replays the AOF at start-up: its commands are history, not
    /// requests, so the -LOADING gate does not apply (Redis runs them from a fake client that
    /// never passes through processCommand).
    public var isReplayingLog: Bool = false

    /// The blocking pop this client is parked in (its I/O thread stops executing its input
    /// until the waiter is served, times out or is cancelled); nil when not blocked.
    public var blockedWaiter: BlockedWaiter?
    /// The arguments and run time of the parked command, kept only if it was slow enough for
    /// SLOWLOG: logged when the client unblocks (`CommandEngine.blockedCommandEnded`).
    var slowBlockedCommand: (arguments: [[UInt8]], microseconds: Int64)?
    /// The parked command's counters and run time, recorded in its latency histogram when the
    /// client unblocks (blocked.c updateStatsOnUnblock), as Redis does.
    var blockedLatency: (statistics: CommandStatistics, microseconds: Int64)?
    /// Set by dispatch when CLIENT PAUSE held the command back: it did not run and has no
    /// reply yet; the I/O thread runs it again once the pause ends.
    public var isPostponed: Bool = false
    /// True while a script's redis.call runs a command for this client (Redis's CLIENT_SCRIPT):
    /// XREAD BLOCK is refused and SORT BY <constant> of a set is sorted.
    public var isScriptCall: Bool = false
    /// True after MONITOR: the client receives every executed command and may not touch keys.
    public var isMonitoring: Bool = false
    /// Wakes the I/O thread that owns this session (set by the server; a served waiter calls it
    /// from the pushing client's thread).
    public var wakeOwner: (@Sendable () -> Void)?
    /// Serves the other clients of this session's I/O thread while a script this session runs
    /// is past busy-reply-threshold (Redis's processEventsWhileBlocked); set by the server.
    public var busyEventPump: (() -> Void)?

    /// Channels, patterns and shard channels this client listens to; nil until it first
    /// subscribes (see PubSub.swift).
    public internal(set) var subscriptions: ClientSubscriptions?
    /// Every subscription of this client, shard channels included: while it is above 0 a RESP2
    /// client may only run the subscribe family, PING, QUIT and RESET (one field load per command).
    public internal(set) var subscriptionTotal: Int = 0 {
        didSet { mailbox?.isSubscribed = subscriptionTotal > 0 }
    }
    /// Where other threads leave messages for this client (pub/sub, tracking invalidations);
    /// see `makeMailbox`.
    public var mailbox: PubSubMailbox?
    /// CLIENT TRACKING's mode; nil while tracking is off (see Tracking.swift).
    public internal(set) var tracking: ClientTracking?
    /// CLIENT CACHING YES|NO given for the next command (or transaction).
    public internal(set) var trackingCaching = false
    /// Keys this client modified that it had read itself: their invalidations are sent after
    /// the command's reply (tracking.c tracking_pending_keys).
    var trackingPending: [[UInt8]] = []
    /// Keys the running command's early remembering added (see CommandEngine.run).
    var trackingEarlyKeys: [[UInt8]] = []
    /// Positions in `trackingPending` where a flush's null invalidation goes.
    var trackingPendingFlush: [Int] = []
    /// CLIENT REPLY: whether this client's replies are sent (pub/sub pushes always are).
    public var replyMode: ReplyMode = .on
    /// CLIENT NO-EVICT ON (flag `e` in CLIENT LIST). Tally has no client eviction
    /// (`maxmemory-clients`), so the flag only records the client's wish, as Redis shows it.
    public var noEvict = false
    /// Tells the owning I/O thread that messages wait in this client's mailbox (set by the
    /// server; nil in tests, which collect the mailbox themselves).
    public var announceMail: (@Sendable (PubSubMailbox) -> Void)?

    /// Creates a session with `id`.
    public init(id: Int64) { self.id = id }
}

/// CLIENT REPLY ON|OFF|SKIP state (networking.c CLIENT_REPLY_OFF / CLIENT_REPLY_SKIP*).
public enum ReplyMode: Sendable {
    /// Replies are sent.
    case on
    /// No replies until CLIENT REPLY ON.
    case off
    /// CLIENT REPLY SKIP just ran: its own reply and the next command's are dropped.
    case skipArmed
    /// The next command's reply is dropped.
    case skipNext
}

/// What MULTI has queued and which keys WATCH observes.
public struct TransactionState {
    /// True between MULTI and EXEC/DISCARD.
    public var isActive: Bool = false
    /// True once a queued command failed to queue (unknown, arity): EXEC replies EXECABORT.
    public var isPoisoned: Bool = false
    /// The queued commands.
    public var queued: [CommandArguments] = []
    /// The union of the queued commands' flags, and of their complements (Redis's
    /// `mstate.cmd_flags` / `cmd_inv_flags`): EXEC is a write if any queued command is, and
    /// may run while loading only if every queued command may.
    public var queuedFlags: CommandFlags = []
    public var queuedMissingFlags: CommandFlags = []
    /// Watched keys: database, key, and the key's version when WATCH ran.
    /// Tally's `version` is 1 when the key existed (not expired) at WATCH time, else 0: EXEC
    /// aborts if such a key has since expired, as Redis 7.0 does.
    public var watched: [(database: Int, key: [UInt8], version: UInt64)] = []
    /// Marked dirty by any write to a watched key; registered in the keys' shards.
    public var watchToken: WatchToken?

    /// Creates an idle transaction state.
    public init() {}

    /// Queues a command that passed dispatch's checks, remembering its flags.
    mutating func enqueue(_ arguments: CommandArguments, flags: CommandFlags) {
        queued.append(arguments)
        queuedFlags.formUnion(flags)
        queuedMissingFlags.formUnion(flags.symmetricDifference(CommandFlags(rawValue: ~0)))
    }

    /// Forgets the queued commands and their flags.
    mutating func clearQueue() {
        queued.removeAll()
        queuedFlags = []
        queuedMissingFlags = []
    }
}
