// CommandContext: what a handler sees while it runs: arguments, reply buffer, session, locks held.
import TallyKeyspace
import TallyProtocol

/// The state of one command execution, passed `inout` to its handler.
///
/// Handlers lock the shards they need through the context (`lockShard`, `lockShards`); the
/// engine calls `finish()` after the handler, which propagates lazily expired keys, appends
/// the command's deterministic form to the log while the locks are still held (so the log
/// order equals the execution order for every key), and then unlocks.
public struct CommandContext {
    /// The request (argv[0] is the command name). Settable only so the engine can move it in
    /// and out (see `CommandEngine.run`); a handler never changes it.
    public internal(set) var arguments: CommandArguments
    /// Where the reply goes.
    public var output: OutputBuffer
    /// The client.
    public private(set) var session: ClientSession
    /// The engine (keyspace, table, clock, log).
    public let engine: CommandEngine
    /// The index of the table row being executed.
    private(set) var row: Int
    /// Unix milliseconds at command start; expiry checks within one command use it.
    public private(set) var now: Int64
    /// True while running as part of EXEC: every shard is already held and the log is written
    /// once, wrapped in MULTI/EXEC, when EXEC finishes.
    public private(set) var insideExec: Bool
    /// Shards this command locked itself.
    public private(set) var heldShards = ShardMask()
    /// True when this command took every shard because clients are blocked (see lockShard).
    private var ownsExclusive = false
    /// True while dispatch holds every shard for this command (clients are blocked, see
    /// `CommandEngine.run`); false once `releaseShardsForSlowWait` gave them up, and then
    /// dispatch does not release them again.
    var holdsDispatchExclusive = false

    init(arguments: CommandArguments, output: OutputBuffer, session: ClientSession, engine: CommandEngine,
         row: Int, now: Int64, insideExec: Bool) {
        self.arguments = arguments
        self.output = output
        self.session = session
        self.engine = engine
        keyspace = engine.keyspace
        self.row = row
        self.now = now
        self.insideExec = insideExec
    }

    /// Makes a context left by an earlier command (see `CommandEngine.run`) ready for the next
    /// one, as `init` would make it: the session is replaced only when it changes, so a
    /// pipeline's commands take no reference-counting traffic for it.
    mutating func begin(row: Int, session: ClientSession, now: Int64, insideExec: Bool) {
        precondition(heldShards.isEmpty && !ownsExclusive, "a context is reused only after finish()")
        if self.session !== session { self.session = session }
        self.row = row
        self.now = now
        self.insideExec = insideExec
        holdsDispatchExclusive = false
        changes = 0
        propagation = .derived
    }

    /// The table row being executed (looked up on use: the context is built for every command,
    /// and holding a copy cost four retain/release pairs each time).
    public var spec: CommandSpec { engine.table.rows[row] }

    /// The selected database.
    @inline(__always) public var database: Int { session.database }

    /// The engine's keyspace, held here: reading it through `engine` retained and released it
    /// at every use (lockShard, finish), and the context is reused, so holding it is free.
    public let keyspace: Keyspace

    /// Argument `index` as a key, read in place: building it from the argument's slice retained
    /// and released the arguments' storage every command.
    @inline(__always) public func key(_ index: Int) -> Key { arguments.withUnsafeBytes(of: index, Key.init) }

    // MARK: Locking

    /// Locks the shard of `key` (a no-op when EXEC already holds every shard) and returns it.
    /// A command locking several shards must use `lockShards` instead (ascending order).
    public mutating func lockShard(for key: Key) -> Shard {
        lockUnretainedShard(for: key).takeUnretainedValue()
    }

    /// `lockShard` for the hottest single-key commands: runs `body` with the locked shard and
    /// this context, and does not retain the shard (its keyspace holds it), which saves an
    /// atomic increment and decrement a command.
    @inline(__always)
    public mutating func withLockedShard<R>(for key: Key, _ body: (Shard, inout CommandContext) -> R) -> R {
        lockUnretainedShard(for: key)._withUnsafeGuaranteedRef { body($0, &self) }
    }

    @inline(__always)
    private mutating func lockUnretainedShard(for key: Key) -> Unmanaged<Shard> {
        let index = keyspace.shardIndex(for: key)
        let unretained = keyspace.unretainedShards[index]
        if heldShards.contains(index) || keyspace.isExclusivelyHeldByCurrentThread { return unretained }
        precondition(heldShards.isEmpty, "lock several shards at once with lockShards")
        unretained._withUnsafeGuaranteedRef { $0.lock() }
        if engine.blocking.hasWaiters {
            // A client blocked after dispatch looked: take every shard instead (nothing has
            // changed yet), so finish() can serve it.
            unretained._withUnsafeGuaranteedRef { $0.unlock() }
            ownsExclusive = keyspace.lockExclusive()
            return unretained
        }
        heldShards.insert(index)
        return unretained
    }

    /// Locks every shard in `mask` in ascending order (no-op under EXEC).
    public mutating func lockShards(_ mask: ShardMask) {
        if keyspace.isExclusivelyHeldByCurrentThread { return }
        precondition(heldShards.isEmpty, "shards must be locked in one ascending pass")
        keyspace.lock(mask)
        if engine.blocking.hasWaiters {
            keyspace.unlock(mask)
            ownsExclusive = keyspace.lockExclusive()
            return
        }
        // A write to several shards moves their versions before it changes any, so an
        // optimistic reader that half-saw it fails its check (Shard.writeVersion).
        if !engine.table.flags[row].contains(.readonly) { mask.forEach { keyspace.shards[$0].markWritten() } }
        heldShards = mask
    }

    /// Reads the key arguments `first...last` for a read-only multi-key command without holding
    /// their shards together: each key is looked up under its own shard's lock alone and passed
    /// to `visit` (nil: missing) once that lock is released; then every shard visited is checked
    /// for a moved `Shard.writeVersion`. Two I/O threads' MGETs over overlapping shards then no
    /// longer wait for each other's whole command, yet what they read is one consistent state, as
    /// Redis's single thread gives: a write to several shards that was seen by half would have
    /// moved the version of a shard read before it took its locks. Returns false when a version
    /// moved or a key needs the locked path (expired, keyspace-miss events) or shards are already
    /// held (EXEC, scripts): the caller then undoes what `visit` did and runs its locked path.
    public mutating func readKeysOneLockAtATime(from first: Int, through last: Int, touch: Bool,
                                                _ visit: (inout CommandContext, Entry?) -> Void) -> Bool {
        guard heldShards.isEmpty && !keyspace.isExclusivelyHeldByCurrentThread else { return false }
        let keyspace = keyspace
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: keyspace.shards.count) { versions in
            var visited = ShardMask()
            for index in first...last {
                let key = self.key(index)
                let shardIndex = keyspace.shardIndex(for: key)
                let shard = keyspace.shards[shardIndex]
                shard.lock()
                let version = shard.writeVersion.load(ordering: .relaxed)
                if visited.contains(shardIndex) {
                    guard versions[shardIndex] == version else {
                        shard.unlock()
                        return false
                    }
                } else {
                    versions[shardIndex] = version
                    visited.insert(shardIndex)
                }
                let read = shard.quietRead(database, key, now: now, touch: touch)
                shard.unlock()
                switch read {
                case .found(let entry): visit(&self, entry)
                case .missing: visit(&self, nil)
                case .needsLockedPath: return false
                }
            }
            var consistent = true
            visited.forEach { shardIndex in
                if keyspace.shards[shardIndex].writeVersion.load(ordering: .acquiring) != versions[shardIndex] {
                    consistent = false
                }
            }
            return consistent
        }
    }

    /// The mask of the shards of the key arguments `first`, `first + step`, ... `last`.
    public func shardMask(keysFrom first: Int, through last: Int, step: Int = 1) -> ShardMask {
        var mask = ShardMask()
        var index = first
        while index <= last {
            mask.insert(keyspace.shardIndex(for: arguments[index]))
            index += step
        }
        return mask
    }

    /// Locks every shard (FLUSHALL, KEYS...), or nothing under EXEC.
    public mutating func lockAllShards() { lockShards(keyspace.allShards) }

    /// Lets the command wait on something slow (MIGRATE's exchange with another server) without
    /// its shards: keys that lazily expired so far are propagated and logged first, while the
    /// locks still order them, then every shard this command took is released, so `lockShards`
    /// may take them again afterwards. Returns false, releasing nothing, when the locks are not
    /// this command's to give up: under EXEC or a script every shard stays held until the whole
    /// transaction ends, which is what makes it atomic.
    public mutating func releaseShardsForSlowWait() -> Bool {
        let exclusive = ownsExclusive || holdsDispatchExclusive
        if insideExec || (keyspace.isExclusivelyHeldByCurrentThread && !exclusive) { return false }
        if !heldShards.isEmpty || exclusive { drainExpiredKeys() }
        if !session.propagation.isEmpty { engine.flushPropagation(session) }
        if !heldShards.isEmpty {
            keyspace.unlock(heldShards)
            heldShards = ShardMask()
        }
        if exclusive {
            keyspace.unlockExclusive(true)
            ownsExclusive = false
            holdsDispatchExclusive = false
        }
        return true
    }

    // MARK: Propagation and change counting

    /// Changes this command made to the dataset (its share of Redis's `server.dirty`).
    public private(set) var changes: Int64 = 0
    /// What this command logs beyond the default (see `finish`).
    private var propagation = PropagationChoice.derived

    private enum PropagationChoice {
        /// Log the request verbatim if and only if it changed the dataset.
        case derived
        /// Log the request verbatim even without changes (FLUSHALL on an empty keyspace).
        case forced
        /// The handler logged a deterministic rewrite instead (SET ... PXAT, DEL...).
        case rewritten
        /// Nothing beyond what the handler logged (Redis's preventCommandPropagation).
        case prevented
    }

    /// Never logs the request itself, whatever it changed; records the handler logged with
    /// `propagate` stay (XREADGROUP and XCLAIM log XCLAIM/XGROUP SETID records instead).
    public mutating func preventPropagation() {
        if propagation != .rewritten { propagation = .prevented }
    }

    /// Records that the dataset changed `count` times (Redis's `server.dirty`). A write
    /// command that records changes is logged verbatim unless the handler rewrote it: what is
    /// logged derives from the row (`.write`) and this result, as Redis's `call()` derives it
    /// from the dirty counter.
    @inline(__always) public mutating func addChanges(_ count: Int64) {
        changes &+= count
        engine.addChanges(count)
    }

    /// Logs the request verbatim even if it changed nothing (Redis's forceCommandPropagation).
    public mutating func forcePropagation() {
        if propagation == .derived { propagation = .forced }
    }

    /// Logs a deterministic rewrite of the request (PEXPIREAT, SET ... KEEPTTL, DEL ...)
    /// instead of the request itself. Only for a command that records changes.
    public mutating func propagate(_ command: [[UInt8]]) {
        propagation = .rewritten
        if skipsPropagation { return }
        preparePropagation()
        session.propagation.append(database: database, command)
    }

    /// False when a record would be dropped (see `skipsPropagation`): a handler can skip
    /// building an expensive rewrite, and then calls `propagate([])`.
    public var recordsPropagation: Bool { !skipsPropagation }

    /// True when nothing would consume the record: no log is attached. Encoding it anyway cost
    /// ~5% of a pipelined INCR and 3k instructions per redis.call of a script. Checked under the
    /// command's shard lock, after its write: a log attached later snapshots with those locks, so
    /// it sees the write. A transaction or script is logged whole or not at all: it holds every
    /// shard for its whole run (EXEC and EVAL lock exclusively), so no log can be attached
    /// between its commands; a command inside EXEC without that hold records, and EXEC decides at
    /// its end. Lazily expired keys are still drained by `finish()`, as before.
    @inline(__always) private var skipsPropagation: Bool {
        !engine.isLogAttached && (!insideExec || keyspace.isExclusivelyHeldByCurrentThread)
    }

    /// Drains lazily expired keys as DELs first (they happened before this command's effect),
    /// and opens the MULTI of an EXEC before its first write.
    private mutating func preparePropagation() {
        drainExpiredKeys()
        if insideExec && session.propagation.isEmpty {
            session.propagation.append(database: database, [Array("MULTI".utf8)])
        }
    }

    /// Moves keys deleted by lazy expiry in the shards this command holds into DEL records.
    mutating func drainExpiredKeys() {
        let exclusive = keyspace.isExclusivelyHeldByCurrentThread
        // Nearly every command recorded nothing: return before building the lists below.
        if exclusive {
            // Every shard is held: nothing pending anywhere unless the keyspace's signal is up,
            // and once these shards are drained nothing is (the signal goes down below).
            if !keyspace.operationRecords.isRaised { return }
            keyspace.operationRecords.lower()
        }
        let mask = exclusive ? keyspace.allShards : heldShards
        var recorded = false
        mask.forEach { index in recorded = recorded || keyspace.shards[index].hasOperationRecords }
        if !recorded { return }
        // Expired keys first: a command looks a key up (expiring it, then maybe missing it)
        // before it creates one. Misses go out in lookup order across shards.
        var missed: [(sequence: UInt64, key: DatabaseKey)] = []
        var created: [DatabaseKey] = []
        var modified: [[UInt8]] = []
        defer {
            if !modified.isEmpty && engine.tracking.isActive {
                engine.tracking.invalidate(modified, writer: session.isReplayingLog ? nil : session)
            }
            if missed.count > 1 { missed.sort { $0.sequence < $1.sequence } }
            for entry in missed { engine.keyspaceEvents.publishMissed(entry.key) }
            for key in created { engine.keyspaceEvents.publishCreated(key) }
        }
        mask.forEach { index in
            let shard = keyspace.shards[index]
            guard shard.hasOperationRecords else { return }
            shard.hasOperationRecords = false
            if !shard.missedDuringOperation.isEmpty {
                missed += shard.missedDuringOperation
                shard.missedDuringOperation.removeAll(keepingCapacity: true)
            }
            if !shard.modifiedDuringOperation.isEmpty {
                modified += shard.modifiedDuringOperation
                shard.modifiedDuringOperation.removeAll(keepingCapacity: true)
            }
            if !shard.createdDuringOperation.isEmpty {
                created += shard.createdDuringOperation
                shard.createdDuringOperation.removeAll(keepingCapacity: true)
            }
            if shard.expiredDuringOperation.isEmpty { return }
            for expired in shard.expiredDuringOperation {
                if insideExec && session.propagation.isEmpty {
                    session.propagation.append(database: database, [Array("MULTI".utf8)])
                }
                session.propagation.append(database: expired.database, [Array("DEL".utf8), expired.key.bytes])
                engine.keyspaceEvents.publishExpired(expired)
            }
            shard.expiredDuringOperation.removeAll(keepingCapacity: true)
        }
    }

    /// Propagates, logs and unlocks. The engine calls it once after every handler.
    ///
    /// The record is derived here, in one place: a command that changed the dataset (or
    /// forced propagation) and did not log a rewrite is logged as received. Debug builds
    /// check that a handler's changes and its propagation agree, and that only rows flagged
    /// `.write` or `.mayReplicate` change anything.
    public mutating func finish() {
        // A container's subcommands carry their own flags (XGROUP CREATE is a write).
        assert(changes == 0 || !engine.table.flags[row].isDisjoint(with: [.write, .mayReplicate])
                   || engine.table.hasSubcommands(row),
               "\(spec.name) changed the dataset but its row is not flagged write or may-replicate")
        assert(propagation != .rewritten || changes > 0,
               "\(spec.name) logged a rewrite without recording a change")
        if !heldShards.isEmpty || keyspace.isExclusivelyHeldByCurrentThread { drainExpiredKeys() }
        let logsRequest = propagation != .rewritten && propagation != .prevented
        if logsRequest && (changes > 0 || propagation == .forced) && !skipsPropagation {
            preparePropagation()
            session.propagation.append(database: database, arguments: arguments)
        }
        var served: [(BlockedWaiter, [UInt8])] = []
        if !insideExec && engine.blocking.hasWaiters && keyspace.isExclusivelyHeldByCurrentThread {
            // Waiters get pushed elements before any other client can see them (blocked.c
            // handleClientsBlockedOnKeys runs after the command, before the next one).
            var servedChanges: Int64 = 0
            served = engine.blocking.serveReady(keyspace, events: engine.keyspaceEvents, now: now,
                                                log: !skipsPropagation, listFill: engine.listFill,
                                                propagation: &session.propagation, changes: &servedChanges)
            engine.addChanges(servedChanges)
        }
        if !insideExec && !session.propagation.isEmpty { engine.flushPropagation(session) }
        for (waiter, reply) in served { waiter.publish(reply, logOffset: session.pendingLogOffset) }
        if !heldShards.isEmpty {
            keyspace.unlock(heldShards)
            heldShards = ShardMask()
        }
        if ownsExclusive {
            keyspace.unlockExclusive(true)
            ownsExclusive = false
        }
    }
}
