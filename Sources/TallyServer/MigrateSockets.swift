// MigrateSockets: MIGRATE's cached connections to target servers (cluster.c migrateGetSocket and friends).
import Glibc
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyPlatform

/// One connection to a MIGRATE target, with blocking-style I/O under a timeout done over its
/// non-blocking socket with poll (syncio.c syncWrite, syncReadLine).
final class MigrateSocket: MigrationLink, @unchecked Sendable {
    // @unchecked: `descriptor`, `inUse` and `lastUseSeconds` are read and written under the
    // cache's lock; everything else only by the one MIGRATE that holds the socket (inUse).
    var descriptor: Int32 = -1
    var inUse = true
    var lastUseSeconds: Int64
    var lastDatabase: Int64 = -1
    /// Connected to this server's own port (see `MigrateSocketCache.acquire`).
    var loopsBack = false
    /// Bytes received beyond the lines read so far (the kernel would hold them for Redis):
    /// `received[receivedPosition..<receivedCount]`, read into this buffer, kept for the
    /// socket's life so a MIGRATE allocates nothing per read.
    private var received = [UInt8](repeating: 0, count: MigrateSocket.readChunkBytes)
    private var receivedPosition = 0
    private var receivedCount = 0

    /// The longest line a reply read returns, as connSyncReadLine's 1024-byte buffer with its NUL.
    static let lineBytesMax = 1023
    /// connSyncWrite is called with at most 64 KB at a time, each piece with the full timeout.
    static let writePieceBytes = 64 * 1024
    /// syncio.c's SYNCIO__RESOLUTION: the shortest wait between two attempts.
    static let waitResolutionMilliseconds: Int64 = 10
    /// What one read(2) asks for.
    static let readChunkBytes = 16 * 1024

    init(lastUseSeconds: Int64) { self.lastUseSeconds = lastUseSeconds }

    func send(_ bytes: [UInt8], timeoutMilliseconds: Int64) throws(MigrationIOFailure) {
        if loopsBack { return }
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + Self.writePieceBytes)
            try sendPiece(bytes, offset..<end, timeoutMilliseconds: timeoutMilliseconds)
            offset = end
        }
    }

    /// Writes `range` of `bytes`, failing with `.timedOut` once `timeoutMilliseconds` have passed.
    private func sendPiece(_ bytes: [UInt8], _ range: Range<Int>, timeoutMilliseconds: Int64)
        throws(MigrationIOFailure)
    {
        let start = monotonicMilliseconds()
        var offset = range.lowerBound
        while true {
            let result: IOResult<Int>
            do {
                result = try bytes.withUnsafeBytes { raw throws(Errno) in
                    try Posix.write(descriptor, UnsafeRawBufferPointer(rebasing: raw[offset..<range.upperBound]))
                }
            } catch {
                throw .failed
            }
            if case .processed(let written) = result { offset += written }
            if offset == range.upperBound { return }
            try wait(for: Int16(POLLOUT), since: start, timeoutMilliseconds: timeoutMilliseconds)
        }
    }

    func readLine(timeoutMilliseconds: Int64) throws(MigrationIOFailure) -> [UInt8] {
        if loopsBack { throw .timedOut }
        var line: [UInt8] = []
        while line.count < Self.lineBytesMax {
            if receivedPosition == receivedCount { try receive(timeoutMilliseconds: timeoutMilliseconds) }
            let byte = received[receivedPosition]
            receivedPosition += 1
            if byte == UInt8(ascii: "\n") {
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return line
            }
            line.append(byte)
        }
        return line
    }

    /// Waits up to `timeoutMilliseconds` for bytes and keeps what arrived; end of stream fails.
    private func receive(timeoutMilliseconds: Int64) throws(MigrationIOFailure) {
        receivedPosition = 0
        receivedCount = 0
        let start = monotonicMilliseconds()
        while true {
            let result: IOResult<Int>
            do {
                result = try received.withUnsafeMutableBytes { raw throws(Errno) in
                    try Posix.read(descriptor, into: raw)
                }
            } catch {
                throw .failed
            }
            switch result {
            case .processed(0): throw .failed
            case .processed(let count):
                receivedCount = count
                return
            case .wouldBlock:
                try wait(for: Int16(POLLIN), since: start, timeoutMilliseconds: timeoutMilliseconds)
            }
        }
    }

    /// Polls for `events` for what is left of the timeout (at least the resolution), then fails
    /// with `.timedOut` if the whole timeout has passed since `start`, as syncRead/syncWrite do.
    private func wait(for events: Int16, since start: Int64, timeoutMilliseconds: Int64)
        throws(MigrationIOFailure)
    {
        let remaining = timeoutMilliseconds - (monotonicMilliseconds() - start)
        let wait = max(remaining, Self.waitResolutionMilliseconds)
        _ = Posix.waitFor(descriptor, events: events, timeoutMilliseconds: Int32(clamping: wait))
        if monotonicMilliseconds() - start >= timeoutMilliseconds { throw .timedOut }
    }

    /// Closes the connection (the cache's lock held).
    func close() {
        if descriptor >= 0 { Posix.close(descriptor) }
        descriptor = -1
    }
}

/// MIGRATE's connections, one per "host:port" as the command spelled them, reused while they
/// work: at most `capacity` (a new one closes a random idle one) and each closed once idle for
/// more than `idleSecondsMax` by the server cron (`closeIdle`). A socket serves one MIGRATE at a
/// time; another MIGRATE to the same target waits for it, as Redis's single thread would run
/// them one after the other.
final class MigrateSocketCache: MigrationLinks, @unchecked Sendable {
    // @unchecked: `sockets` is only touched with `lock` held.
    /// MIGRATE_SOCKET_CACHE_ITEMS.
    static let capacity = 64
    /// MIGRATE_SOCKET_CACHE_TTL, in seconds.
    static let idleSecondsMax: Int64 = 10

    private let lock = PosixLock(withCondition: true)
    private var sockets: [[UInt8]: MigrateSocket] = [:]
    /// Reads this server's TCP port now (CONFIG SET port changes it); installed by the server
    /// once it exists (see `installOwnPort`), 0 until then.
    private let ownPort = Mutex<(@Sendable () -> Int)?>(nil)

    /// Tells the cache how to read the server's own port, to recognise a MIGRATE to itself.
    func installOwnPort(_ read: @escaping @Sendable () -> Int) { ownPort.withLock { $0 = read } }

    /// Connected sockets (INFO stats `migrate_cached_sockets`).
    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return sockets.values.reduce(0) { $0 + ($1.descriptor >= 0 ? 1 : 0) }
    }

    func acquire(host: [UInt8], port: [UInt8], timeoutMilliseconds: Int64) -> (any MigrationLink)? {
        let name = host + [UInt8(ascii: ":")] + port
        lock.lock()
        while let socket = sockets[name], socket.inUse { lock.wait() }
        let now = wallSeconds()
        if let socket = sockets[name] {
            socket.inUse = true
            socket.lastUseSeconds = now
            lock.unlock()
            return socket
        }
        if sockets.count >= Self.capacity, let victim = sockets.filter({ !$0.value.inUse }).randomElement() {
            victim.value.close()
            sockets[victim.key] = nil
        }
        // Reserved while connecting, so a second MIGRATE to this target waits for this one.
        let socket = MigrateSocket(lastUseSeconds: now)
        sockets[name] = socket
        lock.unlock()

        // connSocketBlockingConnect: only a connect that fails at once (a name that does not
        // resolve) is an error; one still in progress after the timeout, or refused meanwhile,
        // counts as connected, and its first write fails ("IOERR ... writing"), as in Redis.
        let descriptor: Int32
        do {
            descriptor = try Posix.beginConnectTCP(host: String(decoding: host, as: UTF8.self), port: Self.atoi(port))
            _ = Posix.waitFor(descriptor, events: Int16(POLLOUT),
                              timeoutMilliseconds: Int32(clamping: timeoutMilliseconds))
        } catch {
            lock.lock()
            sockets[name] = nil
            lock.broadcast()
            lock.unlock()
            return nil
        }
        try? Posix.setNoDelay(descriptor)
        // MIGRATE to this server itself: Redis, busy in the command, cannot answer its own
        // RESTOREs and times out ("IOERR ... reading"). Another I/O thread of Tally could answer
        // them, and a RESTORE REPLACE into the same database would then leave the key deleted as
        // migrated, so such a link sends nothing and fails as Redis's exchange does, at once.
        socket.loopsBack = Self.isConnectedToItself(descriptor, ownPort: ownPort.withLock { $0 }?() ?? 0)
        lock.lock()
        socket.descriptor = descriptor
        lock.unlock()
        return socket
    }

    func release(_ link: any MigrationLink, close: Bool) {
        guard let socket = link as? MigrateSocket else { return }
        lock.lock()
        socket.inUse = false
        if close || socket.descriptor < 0 {
            socket.close()
            for (name, cached) in sockets where cached === socket { sockets[name] = nil }
        }
        lock.broadcast()
        lock.unlock()
    }

    /// migrateCloseTimedoutSockets, from the server cron once a second: closes the idle sockets
    /// last used more than `idleSecondsMax` seconds ago.
    func closeIdle() {
        let now = wallSeconds()
        lock.lock()
        for (name, socket) in sockets where !socket.inUse && now - socket.lastUseSeconds > Self.idleSecondsMax {
            socket.close()
            sockets[name] = nil
        }
        lock.unlock()
    }

    /// True when `descriptor`'s peer is this host's `ownPort`: the peer's address is the local
    /// end's own (loopback, or a connection to one of this host's addresses).
    static func isConnectedToItself(_ descriptor: Int32, ownPort: Int) -> Bool {
        let peer = Posix.peerAddress(descriptor)
        let local = Posix.localAddress(descriptor)
        guard let peerColon = peer.lastIndex(of: ":"), let localColon = local.lastIndex(of: ":") else { return false }
        return peer[peer.index(after: peerColon)...] == String(ownPort) && peer[..<peerColon] == local[..<localColon]
    }

    /// C's atoi, as Redis reads the port: optional blanks and sign, then digits up to the first
    /// other byte (0 when there are none, which no connection accepts).
    static func atoi(_ text: [UInt8]) -> Int {
        var index = 0
        while index < text.count && (text[index] == 32 || (9...13).contains(text[index])) { index += 1 }
        var negative = false
        if index < text.count && (text[index] == UInt8(ascii: "-") || text[index] == UInt8(ascii: "+")) {
            negative = text[index] == UInt8(ascii: "-")
            index += 1
        }
        var value: Int32 = 0
        while index < text.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(text[index]) {
            value = value &* 10 &+ Int32(text[index] - UInt8(ascii: "0"))
            index += 1
        }
        return Int(negative ? 0 &- value : value)
    }
}

/// CLOCK_MONOTONIC in milliseconds, for timeouts that a wall-clock step must not shorten.
private func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Unix seconds (server.unixtime, which the idle check compares in whole seconds).
private func wallSeconds() -> Int64 { Int64(time(nil)) }
