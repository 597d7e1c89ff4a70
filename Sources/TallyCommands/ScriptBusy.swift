// ScriptBusy: the running script's state that every thread reads before taking locks
// (busy-reply-threshold, -BUSY, SCRIPT KILL / FUNCTION KILL), after Redis 7.0's script.c.
import CLua
import Glibc
import Synchronization
import TallyKeyspace

/// What other clients see of the script that runs now.
///
/// ```
///  I/O thread A (script)                          I/O thread B (other client)
///  begin() ─► lua_pcall ─► count hook every       dispatch ─► admission():
///             100000 instructions:                  running, not timed out ─► waits (1 ms naps)
///             past the threshold ─► timedOut        timed out ─► -BUSY, or runs an allow-busy
///             ─► serve A's other clients            command (SCRIPT KILL sets killRequested)
///             ─► killRequested? raise the error
///  end() ◄── lua_pcall returns
/// ```
///
/// A script holds every shard while it runs, so a command that reached the shard locks would
/// wait for the script's end: dispatch asks `admission` first, with no lock held, and a
/// command that arrives before the threshold waits here instead, as a Redis client's command
/// waits in the socket until the script yields to the event loop.
public final class ScriptWatch: Sendable {
    /// `busy-reply-threshold` (alias `lua-time-limit`) in milliseconds; 0 never times out.
    private let threshold = Atomic<Int>(5000)
    /// Monotonic start of the running script in microseconds; 0 when none runs.
    private let started = Atomic<Int64>(0)
    private let timedOut = Atomic<Bool>(false)
    private let killRequested = Atomic<Bool>(false)
    /// The script ran a write command (SCRIPT_WRITE_DIRTY): it can no longer be killed.
    private let wrote = Atomic<Bool>(false)
    /// EVAL family (true) or FCALL family (false).
    private let evalMode = Atomic<Bool>(true)
    /// pthread of the thread running the script.
    private let owner = Atomic<UInt>(0)
    /// The running function's name and command line (FUNCTION STATS).
    private let details = Mutex<(name: [UInt8], command: [[UInt8]])>(([], []))

    init() {}

    /// The configured threshold in milliseconds.
    public var thresholdMilliseconds: Int { threshold.load(ordering: .relaxed) }

    /// Changes the threshold (CONFIG SET busy-reply-threshold / lua-time-limit).
    public func setThreshold(milliseconds: Int) { threshold.store(max(0, milliseconds), ordering: .relaxed) }

    /// True while a script or function runs.
    public var isRunning: Bool { started.load(ordering: .acquiring) != 0 }

    var isTimedOut: Bool { timedOut.load(ordering: .acquiring) }
    var isEval: Bool { evalMode.load(ordering: .acquiring) }
    var isKillRequested: Bool { killRequested.load(ordering: .acquiring) }

    /// Milliseconds since the running script started (0 when none runs).
    var elapsedMilliseconds: Int64 {
        let start = started.load(ordering: .acquiring)
        return start == 0 ? 0 : (monotonicMicroseconds() - start) / 1000
    }

    /// The running function's name and command (FUNCTION STATS).
    var runningDetails: (name: [UInt8], command: [[UInt8]]) { details.withLock { $0 } }

    func begin(name: [UInt8], command: [[UInt8]], isEval: Bool) {
        details.withLock { $0 = (name, command) }
        timedOut.store(false, ordering: .relaxed)
        killRequested.store(false, ordering: .relaxed)
        wrote.store(false, ordering: .relaxed)
        evalMode.store(isEval, ordering: .relaxed)
        owner.store(UInt(pthread_self()), ordering: .relaxed)
        started.store(max(1, monotonicMicroseconds()), ordering: .releasing)
    }

    func end() {
        timedOut.store(false, ordering: .releasing)
        killRequested.store(false, ordering: .relaxed)
        started.store(0, ordering: .releasing)
        owner.store(0, ordering: .relaxed)
    }

    func markWrote() { wrote.store(true, ordering: .relaxed) }

    /// The hook's time check: true once the script has run past the threshold (and from then on).
    func checkTimedOut() -> Bool {
        if timedOut.load(ordering: .relaxed) { return true }
        let limit = threshold.load(ordering: .relaxed)
        if limit == 0 || elapsedMilliseconds < Int64(limit) { return false }
        timedOut.store(true, ordering: .releasing)
        return true
    }

    static let busyEval: [UInt8] =
        Array("-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.".utf8)
    static let busyFunction: [UInt8] =
        Array("-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.".utf8)

    /// Dispatch's check (processCommand's isInsideYieldingLongCommand): nil when the command
    /// may go on, else the -BUSY refusal. A command arriving while a script runs but has not
    /// timed out yet waits, with no lock held, until the script ends or times out.
    func admission(allowBusy: Bool) -> [UInt8]? {
        if started.load(ordering: .acquiring) == 0 { return nil }
        let me = UInt(pthread_self())
        while started.load(ordering: .acquiring) != 0 && !timedOut.load(ordering: .acquiring)
            && owner.load(ordering: .relaxed) != me
        {
            usleep(1000)
        }
        if started.load(ordering: .acquiring) == 0 || !timedOut.load(ordering: .acquiring) || allowBusy {
            return nil
        }
        return evalMode.load(ordering: .acquiring) ? Self.busyEval : Self.busyFunction
    }

    /// SCRIPT KILL (`isEval`) or FUNCTION KILL (script.c scriptKill): the reply's error text,
    /// or nil after asking the running script to stop (the caller replies +OK).
    func kill(isEval: Bool) -> [UInt8]? {
        guard isRunning else { return Array("NOTBUSY No scripts in execution right now.".utf8) }
        if wrote.load(ordering: .relaxed) {
            return Array(("UNKILLABLE Sorry the script already executed write commands against the dataset. "
                + "You can either wait the script termination or kill the server in a hard way using the "
                + "SHUTDOWN NOSAVE command.").utf8)
        }
        let running = evalMode.load(ordering: .acquiring)
        if isEval && !running { return Array(Self.busyFunction.dropFirst()) }
        if !isEval && running { return Array(Self.busyEval.dropFirst()) }
        killRequested.store(true, ordering: .releasing)
        return nil
    }
}

/// FUNCTION LOAD's time limit for library code (function_lua.c's 500 ms).
let functionLoadTimeoutMicroseconds: Int64 = 500_000

/// The Swift body of the count hook (see CLua's tally_lua_hook): FUNCTION LOAD's timeout, the
/// busy threshold, serving the thread's other clients once timed out, and SCRIPT KILL.
func scriptHookEntryPoint(_ state: OpaquePointer?) -> Int32 {
    guard let lua = state else { return 0 }
    lua_getfield(lua, tally_lua_registry_index(), "tally.runtime")
    let pointer = lua_touserdata(lua, -1)
    tally_lua_pop(lua, 1)
    guard let pointer else { return 0 }
    let runtime = Unmanaged<ScriptingRuntime>.fromOpaque(pointer).takeUnretainedValue()
    if runtime.loadingLibrary != nil {
        guard monotonicMicroseconds() - runtime.loadStartedMicroseconds > functionLoadTimeoutMicroseconds else {
            return 0
        }
        pushErrorTable(lua, Array("FUNCTION LOAD timeout".utf8))
        return 1
    }
    guard let run = runtime.current else { return 0 }
    let watch = run.engine.scriptWatch
    guard watch.checkTimedOut() else { return 0 }
    // Redis's processEventsWhileBlocked: the clients of this thread get -BUSY (or run an
    // allow-busy command) instead of waiting for the script's end.
    run.session.busyEventPump?()
    guard watch.isKillRequested else { return 0 }
    pushErrorTable(lua, Array("Script killed by user with SCRIPT KILL...".utf8))
    return 1
}
