// ShardLockTests: the futex shard lock excludes, and wakes sleepers, under real contention.
import Dispatch
import TallyKeyspace
import Testing

/// A counter only ever touched under `lock`, so lost updates show a broken lock.
private final class Guarded: @unchecked Sendable {
    let lock = ShardLock()
    var count = 0
    var inside = 0
    var overlaps = 0
}

@Suite struct ShardLockTests {
    /// Eight threads on two cores increment under the lock with work inside the hold (so holders
    /// get preempted and waiters fall through the spin into futex sleep): no update is lost and
    /// no two holders overlap.
    @Test func contendedIncrementsAreExact() {
        let guarded = Guarded()
        let threads = 8
        let rounds = 20_000
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            for _ in 0..<rounds {
                guarded.lock.lock()
                guarded.inside += 1
                if guarded.inside != 1 { guarded.overlaps += 1 }
                var spin = 0
                for step in 0..<50 { spin &+= step }
                guarded.count += 1 + (spin == -1 ? 1 : 0)
                guarded.inside -= 1
                guarded.lock.unlock()
            }
        }
        #expect(guarded.count == threads * rounds)
        #expect(guarded.overlaps == 0)
    }

    /// A thread that finds the lock held sleeps until the holder lets go, then takes it.
    @Test func waiterRunsAfterTheHolderUnlocks() {
        let guarded = Guarded()
        guarded.lock.lock()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            guarded.lock.lock()
            guarded.count += 1
            guarded.lock.unlock()
            done.signal()
        }
        // Long enough for the waiter to pass its spin and sleep in futex(2).
        #expect(done.wait(timeout: .now() + .milliseconds(50)) == .timedOut)
        #expect(guarded.count == 0)
        guarded.lock.unlock()
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        guarded.lock.lock()
        #expect(guarded.count == 1)
        guarded.lock.unlock()
    }
}
