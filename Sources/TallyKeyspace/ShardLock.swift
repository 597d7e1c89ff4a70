// ShardLock: the explicit lock()/unlock() mutex that guards one keyspace shard.
import Glibc

/// A pthread mutex with explicit `lock()`/`unlock()`.
///
/// Why not `Synchronization.Mutex`: a command locks several shards at once (MSET, EXEC) in
/// ascending order and unlocks them after logging, which does not fit a closure-scoped
/// `withLock`. The mutex lives in its own heap allocation so its address never moves, as
/// pthread requires; the class is `@unchecked Sendable` because pthread provides the safety.
public final class ShardLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// Creates an unlocked mutex.
    public init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init failed")
    }

    deinit {
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
}
