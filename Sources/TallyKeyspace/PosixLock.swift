// PosixLock: the one explicit lock()/unlock() mutex (shards, the AOF buffer), with an optional condition.
import Glibc

/// A pthread mutex with explicit `lock()`/`unlock()`, and optionally one condition variable.
///
/// Why not `Synchronization.Mutex`: a command locks several shards at once (MSET, EXEC) in
/// ascending order and unlocks them after logging, which does not fit a closure-scoped
/// `withLock`, and group commit needs waiters that sleep until the flushing thread has covered
/// their offset, which `Mutex` has no condition for. The mutex and condition live in their own
/// heap allocations so their addresses never move, as pthread requires; the class is
/// `@unchecked Sendable` because pthread provides the safety.
public final class PosixLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Present when created `withCondition`; timed waits measure CLOCK_MONOTONIC.
    private let condition: UnsafeMutablePointer<pthread_cond_t>?

    /// Creates an unlocked mutex, with a condition variable when `withCondition` is true.
    public init(withCondition: Bool = false) {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        guard withCondition else {
            condition = nil
            return
        }
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(condition, &attributes) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attributes)
        self.condition = condition
    }

    deinit {
        if let condition {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Blocks until the mutex is held by the caller.
    @inline(__always) public func lock() {
        let status = pthread_mutex_lock(mutex)
        precondition(status == 0, "pthread_mutex_lock failed")
    }

    /// Releases the mutex; the caller must hold it.
    @inline(__always) public func unlock() {
        let status = pthread_mutex_unlock(mutex)
        precondition(status == 0, "pthread_mutex_unlock failed")
    }

    /// Releases the mutex until `broadcast()`, then holds it again (spurious wake-ups possible;
    /// callers re-check their condition). The caller must hold the mutex.
    public func wait() {
        guard let condition else { preconditionFailure("PosixLock created without a condition") }
        pthread_cond_wait(condition, mutex)
    }

    /// Like `wait()`, giving up after at most `milliseconds`.
    public func wait(milliseconds: Int64) {
        guard let condition else { preconditionFailure("PosixLock created without a condition") }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanoseconds = Int64(deadline.tv_nsec) + (milliseconds % 1000) * 1_000_000
        deadline.tv_sec += Int(milliseconds / 1000 + nanoseconds / 1_000_000_000)
        deadline.tv_nsec = Int(nanoseconds % 1_000_000_000)
        pthread_cond_timedwait(condition, mutex, &deadline)
    }

    /// Wakes every waiter.
    public func broadcast() {
        guard let condition else { preconditionFailure("PosixLock created without a condition") }
        pthread_cond_broadcast(condition)
    }
}
