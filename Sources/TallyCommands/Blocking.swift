// Blocking: parked BLPOP/BRPOP/BLMOVE/BRPOPLPUSH/BLMPOP clients and how pushes serve them (blocked.c).
//
//   client A (thread 1)                         client B (thread 2)
//   ──────────────────                          ──────────────────
//   BLPOP q 0: q empty, under q's shard lock
//     registry.register(waiter) ─► parked (no thread waits; the I/O loop keeps serving others)
//                                               RPUSH q x: lockShard sees waiters ─► takes every shard
//                                               push, then finish(): log RPUSH, serve waiters in
//                                               FIFO order (pop, reply bytes, log LPOP q), flush log
//                                               waiter.publish(reply, log offset) ─► eventfd of thread 1
//   loop wakes: reply appended, input resumes ◄─┘
//
// While any client is blocked, every command that locks a shard takes all of them instead, so the
// serving pass can pop and push on any key (BLMOVE destinations) without lock-order risk, and no
// other client can see a pushed element before the waiters got theirs. A waiter registers while
// holding its keys' shards, so a push to one of them either came first (and the blocking command
// saw the element) or locks after the registration (and then sees the waiter).
import Synchronization
import TallyKeyspace
import TallyProtocol

/// What a parked client will do once one of its keys holds a list.
public enum BlockedOperation: Sendable {
    /// BLPOP / BRPOP: one element, replied as [key, element].
    case pop(ListEnd)
    /// BLMPOP: up to `count` elements, replied as [key, [elements]].
    case popCount(ListEnd, Int)
    /// BLMOVE / BRPOPLPUSH (`legacy`): pop, push onto `destination`, reply with the element.
    case move(from: ListEnd, to: ListEnd, destination: [UInt8], legacy: Bool)
    /// BZPOPMIN/BZPOPMAX (`count` nil: replied as [key, member, score]) or BZMPOP (`count`
    /// elements, replied as [key, [[member, score], ...]]) on a sorted set.
    case sortedSetPop(max: Bool, count: Int?)

    /// True when the operation waits for a sorted set rather than a list.
    var wantsSortedSet: Bool {
        if case .sortedSetPop = self { return true }
        return false
    }

    /// XREAD / XREADGROUP BLOCK: entries after `ids` (one per key, `.max` for `>`), at most
    /// `count`, through `group` as `consumer` when given (see StreamCommands.serveBlocked).
    case streamRead(ids: [StreamID], count: Int, group: [UInt8]?, consumer: [UInt8], noAck: Bool)
    /// WAIT (and any wait on something other than keys): served by whoever publishes a reply
    /// (the replication code, on an ACK); on timeout or CLIENT UNBLOCK it replies `timeoutReply()`,
    /// computed then (WAIT answers the replicas that acknowledged so far; blocked.c
    /// replyToBlockedClientTimedOut).
    case external(timeoutReply: @Sendable () -> [UInt8])
}

/// One parked client. Created and registered by its command on the client's thread; served on
/// whichever thread pushes; the reply is published here and collected by the owning thread.
public final class BlockedWaiter: Sendable {
    /// The client's id (CLIENT UNBLOCK).
    public let clientID: Int64
    let database: Int
    let keys: [[UInt8]]
    let operation: BlockedOperation
    /// The dialect of the client's replies.
    public let protocolVersion: RESPVersion
    /// Absolute Unix milliseconds at which the client gets the timeout reply; 0 = never.
    public let deadline: Int64
    private let wake: @Sendable () -> Void
    private let published = Mutex<(reply: [UInt8], logOffset: UInt64)?>(nil)
    /// An external waiter is answered once: by a publisher, a timeout or CLIENT UNBLOCK, whoever
    /// claims it first (the key registry plays this part for the others).
    private let claimed = Atomic<Bool>(false)

    init(clientID: Int64, database: Int, keys: [[UInt8]], operation: BlockedOperation,
         protocolVersion: RESPVersion, deadline: Int64, wake: @escaping @Sendable () -> Void) {
        self.clientID = clientID
        self.database = database
        self.keys = keys
        self.operation = operation
        self.protocolVersion = protocolVersion
        self.deadline = deadline
        self.wake = wake
    }

    /// A waiter for something other than keys (`BlockedOperation.external`); park it with
    /// `BlockingRegistry.registerExternal` and serve it with `claim()` then `publish`.
    public convenience init(clientID: Int64, protocolVersion: RESPVersion, deadline: Int64,
                            wake: @escaping @Sendable () -> Void, timeoutReply: @escaping @Sendable () -> [UInt8]) {
        self.init(clientID: clientID, database: 0, keys: [], operation: .external(timeoutReply: timeoutReply),
                  protocolVersion: protocolVersion, deadline: deadline, wake: wake)
    }

    /// True for the one caller that gets to answer an external waiter.
    public func claim() -> Bool { !claimed.exchange(true, ordering: .acquiringAndReleasing) }

    /// True once an external waiter was answered (or claimed for answering).
    public var isClaimed: Bool { claimed.load(ordering: .acquiring) }

    /// Hands the reply to the owning thread (after the log holds the served pops) and wakes it.
    public func publish(_ reply: [UInt8], logOffset: UInt64) {
        published.withLock { $0 = (reply, logOffset) }
        wake()
    }

    /// The published reply and the log offset it depends on, once served.
    public func takeReply() -> (reply: [UInt8], logOffset: UInt64)? {
        published.withLock { value in
            let taken = value
            value = nil
            return taken
        }
    }

    /// The reply on timeout: a null array for the pops, a null bulk for the moves.
    public func writeTimeoutReply(into output: inout OutputBuffer) {
        switch operation {
        case .move: output.writeNull()
        case .external(let timeoutReply): output.writeBytes(timeoutReply())
        default: output.writeNullArray()
        }
    }
}

/// Every parked client, by database and key, in the order they blocked.
public final class BlockingRegistry: Sendable {
    private struct Table {
        var queues: [DatabaseKey: [BlockedWaiter]] = [:]
        /// Keys in the order they first got a waiter (the order ready keys are served in).
        var order: [DatabaseKey] = []
    }

    private let table = Mutex<Table>(Table())
    private let waiterCount = Atomic<Int>(0)
    /// Parked external waiters by client id; apart from `waiterCount`, since they hold no key
    /// and must not make every command take all shards.
    private let externalWaiters = Mutex<[Int64: BlockedWaiter]>([:])
    private let externalCount = Atomic<Int>(0)

    /// True while any client is parked (one atomic load, read by every shard lock).
    @inline(__always) public var hasWaiters: Bool { waiterCount.load(ordering: .acquiring) > 0 }

    /// Number of parked clients (INFO `blocked_clients`).
    public var count: Int { waiterCount.load(ordering: .relaxed) + externalCount.load(ordering: .relaxed) }

    /// Parks an external waiter (WAIT): found by CLIENT UNBLOCK, counted in blocked_clients.
    public func registerExternal(_ waiter: BlockedWaiter) {
        externalWaiters.withLock { $0[waiter.clientID] = waiter }
        externalCount.add(1, ordering: .relaxed)
    }

    /// Forgets an external waiter once answered (whoever answered it).
    public func removeExternal(_ waiter: BlockedWaiter) {
        let removed = externalWaiters.withLock { waiters -> Bool in
            guard waiters[waiter.clientID] === waiter else { return false }
            waiters[waiter.clientID] = nil
            return true
        }
        if removed { externalCount.subtract(1, ordering: .relaxed) }
    }

    /// The parked waiter of client `id`, if any (CLIENT UNBLOCK).
    public func waiter(clientID id: Int64) -> BlockedWaiter? {
        if let external = externalWaiters.withLock({ $0[id] }) { return external }
        return table.withLock { table in
            for queue in table.queues.values {
                if let waiter = queue.first(where: { $0.clientID == id }) { return waiter }
            }
            return nil
        }
    }

    /// Parks `waiter` on each of its keys (the caller holds those keys' shards).
    func register(_ waiter: BlockedWaiter) {
        table.withLock { table in
            for key in waiter.keys {
                let watched = DatabaseKey(database: waiter.database, key: Key(key))
                if table.queues[watched] == nil { table.order.append(watched) }
                // A key named twice (BLPOP k k 0) holds the waiter once.
                if table.queues[watched]?.contains(where: { $0 === waiter }) == true { continue }
                table.queues[watched, default: []].append(waiter)
            }
        }
        waiterCount.add(1, ordering: .releasing)
    }

    /// Removes a waiter that has not been served (timeout, disconnect, CLIENT UNBLOCK); false when
    /// a push already claimed it, in which case its reply is being published.
    public func cancel(_ waiter: BlockedWaiter) -> Bool {
        if case .external = waiter.operation {
            guard waiter.claim() else { return false }
            removeExternal(waiter)
            return true
        }
        let removed = table.withLock { table in Self.remove(waiter, from: &table) }
        if removed { waiterCount.subtract(1, ordering: .releasing) }
        return removed
    }

    private static func remove(_ waiter: BlockedWaiter, from table: inout Table) -> Bool {
        var found = false
        for key in waiter.keys {
            let watched = DatabaseKey(database: waiter.database, key: Key(key))
            guard var queue = table.queues[watched], let position = queue.firstIndex(where: { $0 === waiter })
            else { continue }
            found = true
            queue.remove(at: position)
            if queue.isEmpty {
                table.queues[watched] = nil
                table.order.removeAll { $0 == watched }
            } else {
                table.queues[watched] = queue
            }
        }
        return found
    }

    /// Serves every waiter whose key now holds a list, first blocked first served, until no
    /// ready key is left (a served BLMOVE can make its destination ready). The caller holds every
    /// shard. Returns the served waiters with their replies; their pops are appended to
    /// `propagation` (LPOP/RPOP/LMOVE/RPOPLPUSH, as Redis logs them).
    func serveReady(_ keyspace: Keyspace, events: KeyspaceNotifier, now: Int64, log: Bool, listFill: ListFill,
                    propagation: inout PropagationBuffer, changes: inout Int64) -> [(BlockedWaiter, [UInt8])] {
        var served: [(BlockedWaiter, [UInt8])] = []
        table.withLock { table in
            var progress = true
            while progress {
                progress = false
                for watched in table.order {
                    // Every ready waiter of the key, first blocked first: a stream waiter that is not
                    // ready (it waits for a later id) does not hold back the ones behind it.
                    for waiter in table.queues[watched] ?? [] {
                        let shard = keyspace.shard(for: watched.key)
                        let value = shard.lookup(watched.database, watched.key, now: now)?.value
                        if case .streamRead(_, _, let group, _, _) = waiter.operation {
                            if case .stream(let stream)? = value {
                                guard StreamCommands.isReady(stream, waiter, key: watched.key) else { continue }
                            } else if group == nil {
                                continue
                            }
                            // A group read whose key was deleted or retyped is unblocked with an error.
                        } else if waiter.operation.wantsSortedSet {
                            guard case .sortedSet? = value else { break }
                        } else {
                            guard case .list? = value else { break }
                        }
                        _ = Self.remove(waiter, from: &table)
                        waiterCount.subtract(1, ordering: .releasing)
                        let reply = Self.serve(waiter, key: watched, keyspace, events: events, now: now, log: log,
                                               listFill: listFill, propagation: &propagation, changes: &changes)
                        served.append((waiter, reply))
                        progress = true
                    }
                }
            }
        }
        return served
    }

    /// Performs one waiter's operation on the list at `key` and returns its reply.
    private static func serve(_ waiter: BlockedWaiter, key watched: DatabaseKey, _ keyspace: Keyspace,
                              events: KeyspaceNotifier, now: Int64, log: Bool, listFill: ListFill,
                              propagation: inout PropagationBuffer, changes: inout Int64) -> [UInt8] {
        var output = OutputBuffer(initialCapacity: 64, protocolVersion: waiter.protocolVersion)
        let shard = keyspace.shard(for: watched.key)
        let database = watched.database
        let keyBytes = watched.key.bytes
        var record: [[UInt8]] = []
        do {
            switch waiter.operation {
            case .pop(let end):
                _ = try shard.withList(database, watched.key, now: now, create: false) { list, changed in
                    output.writeArrayHeader(2)
                    output.writeBulkString(keyBytes)
                    list.pop(end) { ListCommands.write($0, into: &output) }
                    changed = true
                }
                record = [end == .head ? Words.lpop : Words.rpop, keyBytes]
                changes += 1
            case .popCount(let end, let count):
                let popped = try shard.withList(database, watched.key, now: now, create: false) { list, changed in
                    output.writeArrayHeader(2)
                    output.writeBulkString(keyBytes)
                    changed = true
                    return ListCommands.popRange(&list, end, count: count, into: &output)
                } ?? 0
                record = [end == .head ? Words.lpop : Words.rpop, keyBytes, decimalBytes(Int64(popped))]
                changes += Int64(popped)
            case .sortedSetPop(let max, let count):
                // Served as genericZpopCommand serves it, logged as ZPOPMIN/ZPOPMAX key [count].
                let keySlice = keyBytes[...]
                let popped = try shard.withSortedSet(database, watched.key, now: now, create: false) { set, changed in
                    changed = true
                    return SortedSetCommands.pop(&set, key: keySlice, max: max, count: count ?? 1,
                                                 shape: count == nil ? .keyed : .keyedNested, into: &output)
                } ?? 0
                record = [max ? Words.zpopmax : Words.zpopmin, keyBytes]
                if count != nil { record.append(decimalBytes(Int64(popped))) }
                changes += Int64(popped)
            case .move(let from, let to, let destination, let legacy):
                let destinationKey = Key(destination)
                let destinationShard = keyspace.shard(for: destinationKey)
                if destinationShard.holdsNonList(database, destinationKey, now: now) {
                    // Redis unblocks the client with the error and moves nothing.
                    output.writeError(RedisError.wrongType)
                    return Array(output.storage)
                }
                let element: [UInt8] = try shard.withList(database, watched.key, now: now, create: false) {
                    list, changed in
                    changed = true
                    return list.pop(from) ?? []
                } ?? []
                _ = try destinationShard.withList(database, destinationKey, now: now, create: true) { list, changed in
                    list.push(element, at: to, fill: listFill)
                    changed = true
                }
                output.writeBulkString(element)
                record = legacy ? [Words.rpoplpush, keyBytes, destination]
                    : [Words.lmove, keyBytes, destination, ListCommands.endWord(from), ListCommands.endWord(to)]
                changes += 1
            case .external:
                preconditionFailure("external waiters are never queued on keys")
            case .streamRead:
                let served = StreamCommands.serveBlocked(waiter, key: watched.key, shard: shard, now: now,
                                                         events: events)
                for record in served.records where log { propagation.append(database: database, record) }
                changes += served.changes
                return served.reply
            }
        } catch {
            output.writeKeyspaceError(error)
            return Array(output.storage)
        }
        if log && !record.isEmpty { propagation.append(database: database, record) }
        // Events as serveClientBlockedOnList fires them: the push onto a BLMOVE destination
        // first, then the pop, then "del" if the source list is now empty.
        switch waiter.operation {
        case .pop(let end), .popCount(let end, _):
            events.fire(.list, end == .head ? "lpop" : "rpop", key: keyBytes, database: database)
        case .move(let from, let to, let destination, _):
            events.fire(.list, to == .head ? "lpush" : "rpush", key: destination, database: database)
            events.fire(.list, from == .head ? "lpop" : "rpop", key: keyBytes, database: database)
        case .sortedSetPop(let max, _):
            events.fire(.zset, max ? "zpopmax" : "zpopmin", key: keyBytes, database: database)
        case .streamRead, .external:
            break   // returned above: serveBlocked fires xgroup-createconsumer
        }
        if !shard.contains(database, watched.key, now: now) {
            events.fire(.generic, "del", key: keyBytes, database: database)
        }
        return Array(output.storage)
    }
}
