// Posix: one typed wrapper per syscall. EINTR is retried, EAGAIN becomes `.wouldBlock`, EBADF/EFAULT trap.
import CTallyShims
import Glibc

/// Typed syscall wrappers; nothing else in Tally calls Glibc socket or epoll I/O directly.
public enum Posix {
    // Errors that can only come from a bug in Tally (a stale descriptor, a bad pointer): trap
    // instead of throwing, because no caller could recover meaningfully.
    @inline(__always)
    static func checkAcceptable(_ code: Int32, _ function: StaticString) {
        precondition(code != EBADF && code != EFAULT, "\(function) failed with unacceptable errno \(code)")
    }

    /// The one EINTR loop in Tally: runs `body` (a call returning -1 and setting errno on
    /// failure) until it does not fail with EINTR, and returns its result or throws its errno.
    /// The socket wrappers below and PosixStorage's file calls all go through it.
    @inlinable
    public static func retryingInterrupted<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code != EINTR { throw Errno(rawValue: code) }
        }
    }

    /// Runs `body` until it does not fail with EINTR. Returns `.wouldBlock` on EAGAIN.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(
        _ function: StaticString, _ body: () -> T
    ) throws(Errno) -> IOResult<T> {
        do {
            return .processed(try retryingInterrupted(body))
        } catch {
            if error.rawValue == EAGAIN || error.rawValue == EWOULDBLOCK { return .wouldBlock }
            checkAcceptable(error.rawValue, function)
            throw error
        }
    }

    /// Applies an injected fault; returns true if the call must retry (forced EINTR).
    @inline(__always)
    static func injected(_ name: SyscallName) throws(Errno) -> IOResult<Int>? {
        guard let fault = SyscallSeam.fault(for: name) else { return nil }
        switch fault {
        case .error(let code):
            if code == .interrupted { return nil }  // the retry loop absorbs it: proceed with the real call
            if code == .wouldBlock { return .wouldBlock }
            throw code
        case .shortWrite:
            return nil
        }
    }

    // MARK: Byte I/O

    /// Reads up to `buffer.count` bytes; `.processed(0)` means end of stream.
    /// The corresponding C function is `read`.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> IOResult<Int> {
        if let forced = try injected(.read) { return forced }
        return try retrying("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes some prefix of `bytes` and returns its length. The corresponding C function is `write`.
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> IOResult<Int> {
        var count = bytes.count
        if let fault = SyscallSeam.fault(for: .write) {
            switch fault {
            case .shortWrite(let limit): count = min(count, limit)
            case .error(let code):
                if code == .wouldBlock { return .wouldBlock }
                if code != .interrupted { throw code }
            }
        }
        return try retrying("write") { Glibc.write(fd, bytes.baseAddress, count) }
    }

    /// Writes all of `bytes` on a blocking descriptor (logs, pid files), looping over short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            switch try write(fd, UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
            case .processed(let written): offset += written
            case .wouldBlock: usleep(1000)
            }
        }
    }

    /// Closes `fd`. EINTR is not retried: on Linux the descriptor is released anyway.
    /// The corresponding C function is `close`.
    public static func close(_ fd: Int32) {
        if Glibc.close(fd) != 0 { checkAcceptable(errno, "close") }
    }

    /// Runs `body` with `fd`, closing it afterwards whatever happens.
    public static func closeAfter<R>(_ fd: Int32, _ body: (Int32) throws -> R) rethrows -> R {
        defer { close(fd) }
        return try body(fd)
    }

    // MARK: Sockets

    /// Creates a non-blocking, close-on-exec socket. The corresponding C function is `socket`.
    public static func socket(domain: Int32, type: Int32) throws(Errno) -> Int32 {
        let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = Glibc.socket(domain, type | flags, 0)
        if fd < 0 { throw Errno.current }
        return fd
    }

    /// Sets an integer socket option. The corresponding C function is `setsockopt`.
    public static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(Errno) {
        var value = value
        if setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let code = errno
            checkAcceptable(code, "setsockopt")
            throw Errno(rawValue: code)
        }
    }

    /// Disables Nagle's algorithm so small replies leave immediately.
    public static func setNoDelay(_ fd: Int32) throws(Errno) {
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

    /// Enables TCP keepalive probes after `idleSeconds` of silence (Redis's `tcp-keepalive`).
    public static func setKeepAlive(_ fd: Int32, idleSeconds: Int32) throws(Errno) {
        try setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPIDLE, value: idleSeconds)
        // Same split as Redis: probe every third of the idle time, give up after 3 probes.
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPINTVL, value: max(1, idleSeconds / 3))
        try setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_KEEPCNT, value: 3)
    }

    /// Creates a listening TCP socket on `host:port` (IPv4 or IPv6 literal).
    /// Returns the descriptor; `port` 0 picks an ephemeral port (see `localPort`).
    public static func listenTCP(host: String, port: Int, backlog: Int32) throws(Errno) -> Int32 {
        var storage = sockaddr_storage()
        var length: socklen_t = 0
        let family: Int32
        if let v4 = parseIPv4(host, port: port) {
            withUnsafeMutableBytes(of: &storage) { raw in raw.storeBytes(of: v4, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
        } else if let v6 = parseIPv6(host, port: port) {
            withUnsafeMutableBytes(of: &storage) { raw in raw.storeBytes(of: v6, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
        } else {
            throw Errno.invalidArgument
        }
        let fd = try socket(domain: family, type: Int32(SOCK_STREAM.rawValue))
        do throws(Errno) {
            try setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            if family == AF_INET6 {
                // Like Redis: an IPv6 listener never also takes IPv4 traffic, so "0.0.0.0 ::" can coexist.
                try setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 1)
            }
            let bound = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
            }
            if bound != 0 { throw Errno.current }
            if Glibc.listen(fd, backlog) != 0 { throw Errno.current }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Connects a non-blocking TCP socket to `host:port` (an IP literal or a name resolved with
    /// getaddrinfo, IPv4 or IPv6), waiting at most `timeoutMilliseconds` for the handshake, as
    /// Redis's replica connects to its primary (connConnect with repl-timeout). Returns the
    /// descriptor, still non-blocking. The corresponding C functions are `getaddrinfo`, `connect`.
    public static func connectTCP(host: String, port: Int, timeoutMilliseconds: Int32) throws(Errno) -> Int32 {
        try connectEachAddress(host: host, port: port) { fd, code in
            guard code == EINPROGRESS else { return code }
            guard waitFor(fd, events: Int16(POLLOUT), timeoutMilliseconds: timeoutMilliseconds) else {
                return ETIMEDOUT
            }
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length)
            return value
        }
    }

    /// Starts connecting a non-blocking TCP socket to `host:port` without waiting for the
    /// handshake, as Redis's anetTcpNonBlockConnect does for MIGRATE: returns the descriptor of
    /// the first address whose connect succeeded or is in progress, and throws only when the
    /// name does not resolve or every address fails at once. A handshake that fails later shows
    /// on the first read or write. The corresponding C functions are `getaddrinfo`, `connect`.
    public static func beginConnectTCP(host: String, port: Int) throws(Errno) -> Int32 {
        try connectEachAddress(host: host, port: port) { _, code in code == EINPROGRESS ? 0 : code }
    }

    /// Resolves `host:port` and tries each address in turn with a fresh non-blocking socket:
    /// `settle` gets the socket and `connect`'s errno (0 when it connected at once) and returns
    /// 0 to keep the socket or the errno that rules this address out (its socket is closed).
    /// Throws the last address's error, or EHOSTUNREACH when the name does not resolve.
    private static func connectEachAddress(host: String, port: Int,
                                           settle: (Int32, Int32) -> Int32) throws(Errno) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Errno(rawValue: EHOSTUNREACH)
        }
        defer { freeaddrinfo(list) }
        var failure = Errno(rawValue: ECONNREFUSED)
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let entry = candidate {
            candidate = entry.pointee.ai_next
            let fd: Int32
            do { fd = try socket(domain: entry.pointee.ai_family, type: Int32(SOCK_STREAM.rawValue)) } catch {
                failure = error
                continue
            }
            let connected = Glibc.connect(fd, entry.pointee.ai_addr, entry.pointee.ai_addrlen) == 0
            let code = settle(fd, connected ? 0 : errno)
            if code == 0 { return fd }
            Glibc.close(fd)
            failure = Errno(rawValue: code)
        }
        throw failure
    }

    /// Waits until `fd` is ready for `events` (POLLIN, POLLOUT) or `timeoutMilliseconds` pass;
    /// true when ready (an error or hang-up counts as ready: the next read or write reports
    /// it). The corresponding C function is `poll`.
    public static func waitFor(_ fd: Int32, events: Int16, timeoutMilliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let result = poll(&entry, 1, timeoutMilliseconds)
            if result < 0 && errno == EINTR { continue }
            return result > 0
        }
    }

    /// Creates a listening unix-domain socket at `path` (an existing socket file is replaced).
    public static func listenUnix(path: String, permissions: mode_t, backlog: Int32) throws(Errno) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Errno.invalidArgument }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        unlink(path)
        let fd = try socket(domain: AF_UNIX, type: Int32(SOCK_STREAM.rawValue))
        do throws(Errno) {
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if bound != 0 { throw Errno.current }
            if permissions != 0 { chmod(path, permissions) }
            if Glibc.listen(fd, backlog) != 0 { throw Errno.current }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Accepts one connection as a non-blocking, close-on-exec socket.
    /// The corresponding C function is `accept4`.
    public static func accept(_ fd: Int32) throws(Errno) -> IOResult<Int32> {
        if let forced = try injected(.accept) {
            if case .wouldBlock = forced { return .wouldBlock }
        }
        return try retrying("accept") { ctally_accept_nonblocking(fd, nil, nil) }
    }

    /// The peer address as Redis prints it (`127.0.0.1:5000`, `::1:5000`, `/tmp/sock:0`).
    public static func peerAddress(_ fd: Int32) -> String {
        address(fd, peer: true)
    }

    /// The local address as Redis prints it.
    public static func localAddress(_ fd: Int32) -> String {
        address(fd, peer: false)
    }

    /// The port a TCP socket is bound to (after binding port 0).
    public static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return 0 }
        return withUnsafeBytes(of: &storage) { raw -> Int in
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET: return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
            case AF_INET6: return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
            default: return 0
            }
        }
    }

    private static func address(_ fd: Int32, peer: Bool) -> String {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &length) : getsockname(fd, $0, &length)
            }
        }
        guard result == 0 else { return "?:0" }
        return withUnsafeBytes(of: &storage) { raw -> String in
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            switch Int32(raw.load(as: sa_family_t.self)) {
            case AF_INET:
                var v4 = raw.load(as: sockaddr_in.self)
                inet_ntop(AF_INET, &v4.sin_addr, &text, socklen_t(text.count))
                return decodeCString(text) + ":" + String(UInt16(bigEndian: v4.sin_port))
            case AF_INET6:
                var v6 = raw.load(as: sockaddr_in6.self)
                inet_ntop(AF_INET6, &v6.sin6_addr, &text, socklen_t(text.count))
                return decodeCString(text) + ":" + String(UInt16(bigEndian: v6.sin6_port))
            case AF_UNIX:
                let unix = raw.load(as: sockaddr_un.self)
                let path = withUnsafeBytes(of: unix.sun_path) { bytes -> String in
                    let end = bytes.firstIndex(of: 0) ?? bytes.count
                    return String(decoding: bytes[..<end], as: UTF8.self)
                }
                return path + ":0"
            default:
                return "?:0"
            }
        }
    }

    private static func decodeCString(_ text: [CChar]) -> String {
        let end = text.firstIndex(of: 0) ?? text.count
        return String(decoding: text[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func parseIPv4(_ host: String, port: Int) -> sockaddr_in? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        return address
    }

    private static func parseIPv6(_ host: String, port: Int) -> sockaddr_in6? {
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = UInt16(truncatingIfNeeded: port).bigEndian
        guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { return nil }
        return address
    }

    /// Heap bytes in use according to the C allocator (INFO `used_memory`).
    public static func heapBytesInUse() -> Int64 { Int64(ctally_heap_bytes_in_use()) }

    /// The C allocator's own statistics report (glibc malloc_info: XML per arena), for MEMORY
    /// MALLOC-STATS; empty if it cannot be produced.
    public static func allocatorReport() -> [UInt8] {
        var length = 0
        guard let buffer = ctally_malloc_info(&length) else { return [] }
        defer { free(buffer) }
        return Array(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    /// Returns free heap pages to the kernel (malloc_trim), for MEMORY PURGE.
    public static func releaseFreeHeapMemory() { _ = ctally_malloc_trim() }

    // MARK: Wake-ups and signals

    /// Creates a non-blocking eventfd used to wake an epoll loop from another thread.
    public static func eventFD() throws(Errno) -> Int32 {
        let fd = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        if fd < 0 { throw Errno.current }
        return fd
    }

    /// Adds one to an eventfd counter (wakes its loop). Never blocks.
    public static func signalEventFD(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    /// Resets an eventfd counter after a wake-up.
    public static func drainEventFD(_ fd: Int32) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
    }

    /// Ignores SIGPIPE so writes to closed sockets fail with EPIPE instead of killing the process.
    public static func ignoreBrokenPipe() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Blocks `signals` in the calling thread (and threads it creates later), so they can be
    /// collected synchronously with `waitForSignal`.
    public static func blockSignals(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits until one of `signals` (previously blocked) is delivered and returns it.
    public static func waitForSignal(_ signals: [Int32]) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        var received: Int32 = 0
        while sigwait(&set, &received) != 0 {}
        return received
    }
}
