// LazyFree: releases big deleted values and emptied databases on a background thread, as
// Redis's lazyfree.c does for UNLINK, FLUSHALL/FLUSHDB ASYNC and the lazyfree-lazy-* options.
import Glibc
import Synchronization

/// A background releaser. A command removes the value from its table under the shard lock (so
/// every reader sees it gone at once) and hands the last reference here: the thousands of
/// deallocations of a big set or list then happen off the command path, and the shard lock is
/// not held while they run. Small values are dropped in place, as Redis frees a value whose
/// effort is under LAZYFREE_THRESHOLD synchronously: a queue round trip would cost more.
///
/// INFO's `lazyfree_pending_objects` and `lazyfreed_objects` count what went through here.
public final class LazyFree: Sendable {
    /// Redis's LAZYFREE_THRESHOLD: values of more allocations than this are freed in background.
    public static let threshold = 64

    private enum Item {
        case value(Value)
        case tables([KeyTable], count: Int)
    }

    private struct Queue: Sendable {
        var items: [Item] = []
        var threadStarted = false
    }

    private let queue = Mutex(Queue())
    private let signal = PosixLock(withCondition: true)
    private let pendingCount = Atomic<Int>(0)
    private let freedCount = Atomic<Int>(0)

    /// Creates an idle releaser (its thread starts with the first job).
    public init() {}

    /// Objects queued and not yet released (`lazyfree_pending_objects`).
    public var pendingObjects: Int { pendingCount.load(ordering: .relaxed) }
    /// Objects released in background since the last CONFIG RESETSTAT (`lazyfreed_objects`).
    public var freedObjects: Int { freedCount.load(ordering: .relaxed) }

    /// CONFIG RESETSTAT.
    public func resetStatistics() { freedCount.store(0, ordering: .relaxed) }

    /// Takes `value`, which the caller no longer stores: releases it in background if it is big
    /// (lazyfree.c freeObjAsync), else drops it here.
    public func release(_ value: consuming Value) {
        guard Self.freeEffort(value) > Self.threshold else { return }
        pendingCount.add(1, ordering: .relaxed)
        enqueue(.value(value))
    }

    /// Takes whole emptied tables (FLUSHALL/FLUSHDB ASYNC, lazyfree.c emptyDbAsync): their
    /// `count` keys are released in background and counted as freed objects.
    public func release(tables: consuming [KeyTable], count: Int) {
        guard count > 0 else { return }
        pendingCount.add(count, ordering: .relaxed)
        enqueue(.tables(tables, count: count))
    }

    /// How many allocations freeing `value` takes, as lazyfree.c lazyfreeGetFreeEffort counts
    /// them: a list's nodes, a hashtable's or skiplist's entries, a stream's radix nodes plus its
    /// groups and their pending entries; one for anything held in a single allocation.
    public static func freeEffort(_ value: borrowing Value) -> Int {
        switch value {
        case .integer, .string: return 1
        case .list(let list): return list.chunkCount
        case .set(let set): return set.isIntset ? 1 : set.count
        case .sortedSet(let zset): return zset.isCompact ? 1 : zset.count
        case .hash(let hash): return hash.isListpack ? 1 : hash.count
        case .stream(let stream):
            var effort = stream.radixTreeNodeCount
            if let first = stream.groups.first { effort += stream.groups.count * (1 + first.pendingIDs.count) }
            return effort
        }
    }

    private func enqueue(_ item: Item) {
        let startThread = queue.withLock { queue -> Bool in
            queue.items.append(item)
            defer { queue.threadStarted = true }
            return !queue.threadStarted
        }
        if startThread { start() }
        signal.lock()
        signal.broadcast()
        signal.unlock()
    }

    private func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            Unmanaged<LazyFree>.fromOpaque(argument).takeRetainedValue().run()
        }, box)
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(thread)
    }

    /// The background loop: takes queued items and lets them go.
    private func run() -> Never {
        while true {
            var items = queue.withLock { queue -> [Item] in
                let taken = queue.items
                queue.items.removeAll()
                return taken
            }
            if items.isEmpty {
                signal.lock()
                if queue.withLock({ $0.items.isEmpty }) { signal.wait(milliseconds: 1000) }
                signal.unlock()
                continue
            }
            while !items.isEmpty {
                // Counted once the memory is really gone (the item dies inside the call).
                let released = Self.releaseLast(&items)
                pendingCount.subtract(released, ordering: .relaxed)
                freedCount.add(released, ordering: .relaxed)
            }
        }
    }

    /// Removes and drops the last item; returns how many objects it held.
    private static func releaseLast(_ items: inout [Item]) -> Int {
        let item = items.removeLast()
        switch item {
        case .value: return 1
        case .tables(_, let count): return count
        }
    }
}
