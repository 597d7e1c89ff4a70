// SyscallSeam: lets tests force EINTR, EAGAIN, short writes or errors on the N-th call of a syscall.
import Synchronization

/// The wrapped calls a test can inject faults into.
public enum SyscallName: Sendable, Hashable {
    case read, write, accept, epollWait
}

/// What a forced call does instead of (or on top of) the real syscall.
public enum SyscallFault: Sendable, Equatable {
    /// The call fails with this errno without reaching the kernel (EINTR is then retried).
    case error(Errno)
    /// Only for `write`: the real call is made with at most this many bytes.
    case shortWrite(Int)
}

/// Armed faults, consulted by the wrappers. The fast path is a single relaxed atomic load,
/// so production code pays nothing measurable for the seam.
public enum SyscallSeam {
    private struct Armed: Sendable {
        var name: SyscallName
        var remainingCalls: Int
        var fault: SyscallFault
        var repeats: Int
    }

    private static let armedCount = Atomic<Int>(0)
    private static let table = Mutex<[Armed]>([])

    /// Makes the `nth` (1-based) next call of `name` behave as `fault`, `repeats` times in a row.
    public static func inject(_ fault: SyscallFault, on name: SyscallName, nth: Int = 1, repeats: Int = 1) {
        precondition(nth >= 1 && repeats >= 1, "fault must target a future call")
        table.withLock { $0.append(Armed(name: name, remainingCalls: nth, fault: fault, repeats: repeats)) }
        armedCount.add(1, ordering: .releasing)
    }

    /// Disarms every fault.
    public static func reset() {
        table.withLock { $0.removeAll() }
        armedCount.store(0, ordering: .releasing)
    }

    /// Called by the wrappers: the fault to apply to this call, if any.
    @inline(__always)
    static func fault(for name: SyscallName) -> SyscallFault? {
        if armedCount.load(ordering: .relaxed) == 0 { return nil }
        return slowFault(for: name)
    }

    private static func slowFault(for name: SyscallName) -> SyscallFault? {
        table.withLock { armed -> SyscallFault? in
            guard let index = armed.firstIndex(where: { $0.name == name }) else { return nil }
            armed[index].remainingCalls -= 1
            guard armed[index].remainingCalls <= 0 else { return nil }
            let fault = armed[index].fault
            armed[index].repeats -= 1
            if armed[index].repeats == 0 {
                armed.remove(at: index)
                armedCount.subtract(1, ordering: .releasing)
            } else {
                armed[index].remainingCalls = 1
            }
            return fault
        }
    }
}
