// ShardLock: the lock every shard is guarded by, one futex word instead of a pthread mutex.
import CTallyShims

/// A non-recursive mutex of one 32-bit word on a cache line of its own (see CTallyShims.h).
///
/// Every command takes one shard lock, and a script or EXEC takes all sixteen: a pthread mutex
/// cost about 33 instructions to lock and 26 to unlock, behind a call into libc (callgrind, a
/// pipelined EVALSHA of a limiter script), where this lock's uncontended paths are one inlined
/// atomic instruction each. Contended, it spins briefly and then sleeps in futex(2).
public final class ShardLock: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32>

    /// An unlocked lock.
    public init() {
        // A line of its own: two threads taking neighbouring shards must not share one.
        let line = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        word = line.initializeMemory(as: UInt32.self, repeating: 0, count: 16)
    }

    deinit { UnsafeMutableRawPointer(word).deallocate() }

    /// Blocks until the caller holds the lock.
    @inline(__always) public func lock() { ctally_lock(word) }

    /// Releases the lock; the caller must hold it.
    @inline(__always) public func unlock() { ctally_unlock(word) }
}
