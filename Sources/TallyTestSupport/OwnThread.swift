// OwnThread: background work for tests that spin while it runs.
import Dispatch
import TallyPlatform

/// Runs `body` on a new thread of its own and returns a group that is left when it returns.
///
/// A test that spins (sched_yield, polling) until background work has reached some point must
/// not hand that work to `DispatchQueue.global()`: swift-testing runs the tests themselves on
/// that pool, which is as wide as the machine has cores, so on a 2-core machine two such tests
/// spinning at once left the work they waited for queued behind them forever.
@discardableResult
public func runOnOwnThread(_ body: @escaping @Sendable () -> Void) -> DispatchGroup {
    let group = DispatchGroup()
    group.enter()
    startThread {
        body()
        group.leave()
    }
    return group
}
