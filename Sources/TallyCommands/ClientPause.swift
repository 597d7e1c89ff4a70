// ClientPause: CLIENT PAUSE / UNPAUSE state and which commands it holds back (networking.c pauseClients).
import Synchronization
import TallyKeyspace

/// What a pause holds back.
public enum ClientPauseKind: UInt8, Sendable, Comparable {
    /// Nothing.
    case none = 0
    /// Writes and may-replicate commands (and an EXEC of any): reads go on.
    case write = 1
    /// Every command.
    case all = 2

    public static func < (lhs: ClientPauseKind, rhs: ClientPauseKind) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The server's client pause. A held command is not run: dispatch marks its session postponed
/// and the I/O thread keeps the parsed command and the rest of the input until the pause ends
/// (by CLIENT UNPAUSE or its deadline), then runs them in order (blocked.c BLOCKED_POSTPONE).
/// While paused, nothing expires or is evicted, so the dataset does not change at all.
///
/// Dispatch pays one relaxed load while no pause was ever set; the state itself is under a lock.
public final class ClientPause: Sendable {
    private let possiblyPaused = Atomic<Bool>(false)
    /// Clients whose command is held back (counted in INFO `blocked_clients`, as Redis counts
    /// BLOCKED_POSTPONE clients); kept by the I/O threads.
    public let postponedClients = Atomic<Int>(0)
    private let state = Mutex<(kind: ClientPauseKind, until: Int64)>((.none, 0))
    private let expiryGate: ExpiryGate

    init(expiryGate: ExpiryGate) { self.expiryGate = expiryGate }

    /// CLIENT PAUSE: the stricter kind and the later deadline of this and any pause in force.
    public func pause(_ kind: ClientPauseKind, untilMilliseconds: Int64, now: Int64) {
        state.withLock { state in
            state.kind = max(state.kind, kind)
            state.until = max(state.until, untilMilliseconds)
            if state.until <= now { state = (.none, 0) }
            let active = state.kind != .none
            expiryGate.setPaused(active)
            possiblyPaused.store(active, ordering: .releasing)
        }
    }

    /// CLIENT UNPAUSE.
    public func unpause() {
        state.withLock { state in
            state = (.none, 0)
            expiryGate.setPaused(false)
            possiblyPaused.store(false, ordering: .releasing)
        }
    }

    /// False when no pause is set (dispatch's one check per command).
    @inline(__always) var isPossiblyActive: Bool { possiblyPaused.load(ordering: .relaxed) }

    /// The pause in force at `now`, ending one whose deadline passed.
    public func current(now: Int64) -> ClientPauseKind {
        if !possiblyPaused.load(ordering: .acquiring) { return .none }
        return state.withLock { state in
            if state.kind != .none && state.until <= now {
                state = (.none, 0)
                expiryGate.setPaused(false)
                possiblyPaused.store(false, ordering: .releasing)
            }
            return state.kind
        }
    }

    /// True if a command with `flags` (for EXEC: its queued commands' flags too) must wait:
    /// server.c processCommand's `is_may_replicate_command` under a WRITE pause, anything under
    /// ALL.
    func holds(_ flags: CommandFlags, now: Int64) -> Bool {
        switch current(now: now) {
        case .none: return false
        case .write: return !flags.isDisjoint(with: [.write, .mayReplicate])
        case .all: return true
        }
    }
}
