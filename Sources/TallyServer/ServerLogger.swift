// ServerLogger: Redis-style log lines (`pid:M dd Mon yyyy hh:mm:ss.mmm * message`) to stdout or `logfile`.
import Glibc
import Synchronization
import TallyPlatform

/// Log verbosity, as `loglevel` names it.
public enum LogLevel: Int, Sendable, Comparable {
    case debug = 0, verbose, notice, warning, nothing

    /// The level named by `loglevel` (`notice` if unknown).
    public init(name: String) {
        switch name {
        case "debug": self = .debug
        case "verbose": self = .verbose
        case "warning": self = .warning
        case "nothing": self = .nothing
        default: self = .notice
        }
    }

    /// The marker Redis prints for the level.
    var marker: String {
        switch self {
        case .debug: return "."
        case .verbose: return "-"
        case .notice: return "*"
        case .warning, .nothing: return "#"
        }
    }

    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The process log. Thread-safe: each line is written with one `write(2)` under a lock.
public final class ServerLogger: Sendable {
    private let descriptor: Int32
    private let minimumLevel: Atomic<Int>
    private let lock = Mutex<Void>(())
    /// Redis's role letter after the pid: M for a primary, S for a replica.
    private let followsPrimary = Atomic<Bool>(false)

    /// Logs to `path`, or to stdout when `path` is empty.
    public init(path: String, level: LogLevel) {
        if path.isEmpty {
            descriptor = STDOUT_FILENO
        } else {
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            descriptor = fd >= 0 ? fd : STDOUT_FILENO
        }
        minimumLevel = Atomic(level.rawValue)
    }

    /// Changes the verbosity (CONFIG SET loglevel).
    public func setLevel(_ level: LogLevel) { minimumLevel.store(level.rawValue, ordering: .relaxed) }

    /// Marks lines with S (a replica) or M (a primary), as Redis's serverLogRaw does.
    public func setReplica(_ value: Bool) { followsPrimary.store(value, ordering: .relaxed) }

    /// True if `level` would be written.
    public func isEnabled(_ level: LogLevel) -> Bool { level.rawValue >= minimumLevel.load(ordering: .relaxed) }

    /// Writes one line at `level`.
    public func log(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard level != .nothing, isEnabled(level) else { return }
        let role = followsPrimary.load(ordering: .relaxed) ? "S" : "M"
        let line = "\(getpid()):\(role) \(Self.timestamp()) \(level.marker) \(message())\n"
        var bytes = Array(line.utf8)
        lock.withLock { _ in
            bytes.withUnsafeMutableBytes { raw in
                try? Posix.writeAll(descriptor, UnsafeRawBufferPointer(raw))
            }
        }
    }

    /// Redis's timestamp: `21 Nov 2026 13:22:42.123` in local time.
    static func timestamp() -> String {
        var now = timeval()
        gettimeofday(&now, nil)
        var seconds = now.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let length = strftime(&text, text.count, "%d %b %Y %H:%M:%S", &parts)
        let prefix = String(decoding: text[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let millis = Int(now.tv_usec) / 1000
        return prefix + "." + (millis < 10 ? "00" : millis < 100 ? "0" : "") + String(millis)
    }
}
