// Threads: plain detached pthreads for loops that must not run on a shared pool.
import CTallyShims
import Glibc

/// Starts a detached pthread running `body` (I/O loops and the cron are plain threads so
/// the command path never touches Swift concurrency).
public func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { argument in
        guard let argument else { return nil }
        let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(result == 0, "pthread_create failed: \(result)")
    pthread_detach(thread)
}

/// Lowers the calling thread's scheduling priority to `niceness` (Linux keeps a nice value per
/// thread: setpriority(2) on a thread id affects that thread only). An unprivileged thread can
/// raise its nice value but never lower it again, so call this only on a thread started for
/// background work alone. Returns false if the kernel refused.
@discardableResult
public func lowerCurrentThreadPriority(niceness: Int32) -> Bool {
    setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(ctally_thread_id()), niceness) == 0
}
