// Monitor: MONITOR, and every executed command streamed to monitoring clients (replication.c replicationFeedMonitors).
import Glibc
import Synchronization
import TallyProtocol

/// The clients in MONITOR mode. Each gets a pub/sub mailbox, so a command run on any I/O thread
/// reaches monitors on every thread in execution order. While nobody monitors, the engine pays
/// one relaxed load per command.
public final class MonitorFeed: Sendable {
    private let mailboxes = Mutex<[PubSubMailbox]>([])
    private let monitorCount = Atomic<Int>(0)

    init() {}

    /// True if at least one client monitors.
    @inline(__always) var isActive: Bool { monitorCount.load(ordering: .relaxed) > 0 }

    func add(_ mailbox: PubSubMailbox) {
        mailboxes.withLock { list in
            list.append(mailbox)
            monitorCount.store(list.count, ordering: .relaxed)
        }
    }

    func remove(clientID: Int64) {
        mailboxes.withLock { list in
            list.removeAll { $0.clientID == clientID }
            monitorCount.store(list.count, ordering: .relaxed)
        }
    }

    /// Sends `+<seconds>.<micros> [<db> <addr>] "arg" ...` (each argument escaped as
    /// sdscatrepr escapes it) to every monitor, bounded like a subscriber's mailbox.
    func feed(_ arguments: CommandArguments, database: Int, session: ClientSession, limitBytes: Int) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var micros = String(now.tv_nsec / 1000)
        micros = String(repeating: "0", count: 6 - micros.count) + micros
        // A script's commands show as coming from "lua" (replicationFeedMonitors' CLIENT_SCRIPT case).
        let source = session.isScriptCall ? "lua" : session.peerAddress
        var line = Array("+\(now.tv_sec).\(micros) [\(database) \(source)] ".utf8)
        for index in 0..<arguments.count {
            if index > 0 { line.append(UInt8(ascii: " ")) }
            Self.appendRepr(arguments[index], to: &line)
        }
        line += [13, 10]
        let targets = mailboxes.withLock { $0 }
        for mailbox in targets { mailbox.post(raw: line, limitBytes: limitBytes) }
    }

    /// sds.c sdscatrepr: a quoted string with \\ \" \n \r \t \a \b escaped and other
    /// unprintable bytes as \xHH.
    static func appendRepr(_ bytes: ArraySlice<UInt8>, to line: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        line.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: "\""): line += [UInt8(ascii: "\\"), byte]
            case 10: line += Array("\\n".utf8)
            case 13: line += Array("\\r".utf8)
            case 9: line += Array("\\t".utf8)
            case 7: line += Array("\\a".utf8)
            case 8: line += Array("\\b".utf8)
            case 32...126: line.append(byte)
            default: line += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        line.append(UInt8(ascii: "\""))
    }
}

enum MonitorCommands {
    static var specs: [CommandSpec] {
        [
            command("monitor", 1, [.admin, .noScript, .loading, .stale], "@admin @slow @dangerous") { context in
                // A client in a transaction expects one reply per command (server.c monitorCommand).
                if context.insideExec {
                    return context.output.writeError("ERR MONITOR isn't allowed for DENY BLOCKING client")
                }
                let session = context.session
                if session.isMonitoring { return }
                session.isMonitoring = true
                context.engine.monitors.add(session.makeSubscriptions().mailbox)
                context.output.writeOK()
            },
        ]
    }
}
