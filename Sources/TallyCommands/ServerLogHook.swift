// ServerLogHook: how commands write a line to the server's log (redis.log, a failed MODULE LOAD).
import Synchronization

/// The server installs its logger here when it starts; until then (and in tests that run an
/// engine without a server) lines are dropped. Levels are Redis's: 0 debug, 1 verbose, 2 notice,
/// 3 warning (server.h LL_*); the installed logger applies `loglevel`.
public enum ServerLogHook {
    public typealias Sink = @Sendable (_ level: Int, _ message: [UInt8]) -> Void

    /// Redis's LL_WARNING.
    public static let warning = 3

    private static let sink = Mutex<Sink?>(nil)

    /// Sends later lines to `body`.
    public static func install(_ body: @escaping Sink) {
        sink.withLock { $0 = body }
    }

    /// Writes one line at `level`.
    public static func write(level: Int, _ message: [UInt8]) {
        guard let body = sink.withLock({ $0 }) else { return }
        body(level, message)
    }

    /// Writes one line at `level`.
    static func write(level: Int, _ message: String) {
        write(level: level, Array(message.utf8))
    }
}
