// Clock: injected wall time, so expiry and everysec logic are testable without sleeping.
import Glibc
import Synchronization

/// A source of Unix time in milliseconds.
public protocol Clock: Sendable {
    /// Milliseconds since the Unix epoch.
    func nowMilliseconds() -> Int64
    /// Microseconds since the Unix epoch: a command's start time and its duration's ends, from
    /// one reading each (server.c call() times commands with ustime()).
    func nowMicroseconds() -> Int64
}

extension Clock {
    public func nowMicroseconds() -> Int64 { nowMilliseconds() * 1000 }
}

/// The real wall clock (`clock_gettime(CLOCK_REALTIME)`).
public struct SystemClock: Clock {
    /// Creates the system clock.
    public init() {}

    public func nowMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    public func nowMicroseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }
}

/// Milliseconds of CLOCK_MONOTONIC: for durations and pacing, never for expiry (which is wall time).
public func monotonicMilliseconds() -> Int64 { monotonicMicroseconds() / 1000 }

/// Microseconds of CLOCK_MONOTONIC (command durations, time budgets).
@inline(__always)
public func monotonicMicroseconds() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000
}

/// A clock that only moves when told to; tests drive expiry with it.
public final class ManualClock: Clock {
    private let now: Atomic<Int64>

    /// Starts at `milliseconds` (default: a fixed date in 2026, so tests are reproducible).
    public init(milliseconds: Int64 = 1_790_000_000_000) { now = Atomic(milliseconds) }

    public func nowMilliseconds() -> Int64 { now.load(ordering: .relaxed) }

    /// Moves time forward by `milliseconds`.
    public func advance(by milliseconds: Int64) {
        now.add(milliseconds, ordering: .relaxed)
    }

    /// Sets the absolute time.
    public func set(_ milliseconds: Int64) { now.store(milliseconds, ordering: .relaxed) }
}
