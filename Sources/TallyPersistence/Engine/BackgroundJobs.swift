// BackgroundJobs: where the engine's one background job (BGSAVE, a rewrite) runs; tests run it by hand.
import Dispatch
import TallyPlatform

/// Starts a background job. Production hands jobs to a dispatch queue (the snapshot stands in
/// for Redis's fork, so the job is a thread, not a child process); tests pass a runner that
/// queues jobs and runs them when the test says, so "a rewrite requested while a BGSAVE
/// runs" is a schedule the test writes down instead of a race it hopes to win.
///
/// The engine calls `start` without holding any of its locks, at most one job at a time.
public struct BackgroundJobRunner: Sendable {
    /// Runs `job` now or later, on any thread.
    public let start: @Sendable (_ job: @escaping @Sendable () -> Void) -> Void

    /// Creates a runner from `start`.
    public init(start: @escaping @Sendable (_ job: @escaping @Sendable () -> Void) -> Void) {
        self.start = start
    }

    /// Each job runs on a thread of its own at nice `backgroundNiceness` (tally-server).
    public static var thread: BackgroundJobRunner {
        BackgroundJobRunner { job in
            startThread {
                lowerCurrentThreadPriority(niceness: backgroundNiceness)
                job()
            }
        }
    }

    /// The nice value of a background job's thread. A save or rewrite is throughput work that
    /// competes for the same cores as the I/O threads (on this 2-core machine: the I/O thread,
    /// the clients and the saver); at the default priority it took a whole core's share and
    /// INCR's p99 latency during a 2M-key BGSAVE rose to 1.45x redis-server's. The job still
    /// gets the CPU whenever a core is idle.
    public static let backgroundNiceness: Int32 = 10

    /// Jobs run on the calling thread before `start` returns.
    public static var inline: BackgroundJobRunner { BackgroundJobRunner { job in job() } }
}

/// What SHUTDOWN (or SIGTERM) asked for.
public enum ShutdownSaveMode: Sendable, Equatable {
    /// Save if save points are configured (SIGTERM, plain SHUTDOWN).
    case configured
    /// SHUTDOWN SAVE: save even without save points.
    case save
    /// SHUTDOWN NOSAVE: never save.
    case noSave
}

/// A fatal start-up problem (bad AOF, unreadable RDB...): the server logs it and exits 1.
public struct PersistenceStartupError: Error, Sendable {
    /// The log line(s) to print before exiting with status 1.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
}
