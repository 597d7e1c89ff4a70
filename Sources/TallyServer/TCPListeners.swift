// TCPListeners: the TCP listening sockets for every `bind` address on `port`, opened at start
// and again when CONFIG SET changes either (config.c updatePort / applyBind in Redis).
import Synchronization
import TallyPlatform

/// Opens and replaces the server's TCP listeners. The sockets are watched by the first I/O
/// thread; a replacement is opened here first (so a port in use fails the CONFIG SET and
/// changes nothing) and then handed to that thread, which stops watching and closes the old ones.
final class TCPListeners: Sendable {
    private let current = Mutex<[Int32]>([])

    /// Why a set of listeners could not be opened (already logged).
    struct OpenFailure: Error {}

    /// Listens on `port` at every address of `bindAddresses` (a leading `-` marks an address
    /// that may be missing on this machine); port 0 listens nowhere. With an unusable address
    /// everything opened so far is closed. Returns the sockets and the port bound.
    static func open(port: Int, bindAddresses: [String], backlog: Int32,
                     log: ServerLogger) throws(OpenFailure) -> (descriptors: [Int32], port: Int) {
        guard port != 0 else { return ([], 0) }
        var descriptors: [Int32] = []
        for entry in bindAddresses {
            let optional = entry.hasPrefix("-")
            let host = optional ? String(entry.dropFirst()) : entry
            let address = host == "*" ? "0.0.0.0" : host == "::*" ? "::" : host
            do {
                descriptors.append(try Posix.listenTCP(host: address, port: port, backlog: backlog))
            } catch {
                if optional && (error == .addressNotAvailable || error == .addressFamilyNotSupported) {
                    log.log(.notice, "Skipping optional bind address \(host): \(error)")
                    continue
                }
                log.log(.warning, "Warning: Could not create server TCP listening socket \(host):\(port): \(error)")
                descriptors.forEach { Posix.close($0) }
                throw OpenFailure()
            }
        }
        return (descriptors, port)
    }

    /// Records the sockets opened at start.
    func adopt(_ descriptors: [Int32]) { current.withLock { $0 = descriptors } }

    /// Opens listeners for `port` and `bindAddresses`, then hands them to `thread` in place of
    /// the current ones. Throws (changing nothing) when they cannot all be opened.
    func replace(port: Int, bindAddresses: [String], backlog: Int32, log: ServerLogger,
                 thread: IOThread) throws(OpenFailure) {
        let opened = try Self.open(port: port, bindAddresses: bindAddresses, backlog: backlog, log: log)
        let old = current.withLock { current in
            let old = current
            current = opened.descriptors
            return old
        }
        thread.replaceListeners(removing: old, adding: opened.descriptors)
    }
}
