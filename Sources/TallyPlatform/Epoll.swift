// Epoll: a typed wrapper over one epoll instance, used by each I/O thread's event loop.
import CTallyShims
import Glibc

/// Readiness interests and results.
public struct EpollEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Readable (EPOLLIN).
    public static let readable = EpollEvents(rawValue: EPOLLIN.rawValue)
    /// Writable (EPOLLOUT).
    public static let writable = EpollEvents(rawValue: EPOLLOUT.rawValue)
    /// Error (EPOLLERR), always reported.
    public static let error = EpollEvents(rawValue: EPOLLERR.rawValue)
    /// Hang-up (EPOLLHUP), always reported.
    public static let hangup = EpollEvents(rawValue: EPOLLHUP.rawValue)
    /// Peer closed its writing half (EPOLLRDHUP).
    public static let readHangup = EpollEvents(rawValue: EPOLLRDHUP.rawValue)
}

/// One ready descriptor as reported by `wait`.
public struct EpollReady: Sendable {
    /// The token registered with the descriptor.
    public var token: UInt64
    /// What happened.
    public var events: EpollEvents
}

/// An epoll instance owned by one thread. Not thread-safe by design: each loop has its own.
public struct Epoll: ~Copyable {
    /// The epoll descriptor.
    public let fd: Int32
    private var buffer: UnsafeMutablePointer<epoll_event>
    /// How many readiness events one `wait` can return.
    public let capacity: Int

    /// Creates an epoll instance returning at most `capacity` events per wait.
    /// The corresponding C function is `epoll_create1`.
    public init(capacity: Int = 1024) throws(Errno) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw Errno.current }
        self.fd = fd
        self.capacity = capacity
        buffer = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
    }

    deinit {
        buffer.deallocate()
        Posix.close(fd)
    }

    /// Registers `descriptor` with `events` and `token`. The corresponding C function is `epoll_ctl`.
    public func add(_ descriptor: Int32, events: EpollEvents, token: UInt64) throws(Errno) {
        try control(EPOLL_CTL_ADD, descriptor, events, token)
    }

    /// Changes the interests of a registered descriptor.
    public func modify(_ descriptor: Int32, events: EpollEvents, token: UInt64) throws(Errno) {
        try control(EPOLL_CTL_MOD, descriptor, events, token)
    }

    /// Unregisters a descriptor (before closing it).
    public func remove(_ descriptor: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(fd, EPOLL_CTL_DEL, descriptor, &event)
    }

    private func control(_ operation: Int32, _ descriptor: Int32, _ events: EpollEvents, _ token: UInt64)
        throws(Errno)
    {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.u64 = token
        if epoll_ctl(fd, operation, descriptor, &event) != 0 {
            let code = errno
            Posix.checkAcceptable(code, "epoll_ctl")
            throw Errno(rawValue: code)
        }
    }

    /// `wait` with its own small event buffer, for a wait nested inside another wait's `body`
    /// (a busy script serving its thread's other clients), which must not overwrite the
    /// events the outer wait is still walking.
    @discardableResult
    public func waitNested(timeoutMilliseconds: Int32, _ body: (EpollReady) -> Void) -> Int {
        withUnsafeTemporaryAllocation(of: epoll_event.self, capacity: 64) { events in
            let count = epoll_wait(fd, events.baseAddress, Int32(events.count), timeoutMilliseconds)
            if count < 0 {
                let code = errno
                Posix.checkAcceptable(code, "epoll_wait")
                return 0
            }
            for index in 0..<Int(count) {
                let event = events[index]
                body(EpollReady(token: event.data.u64, events: EpollEvents(rawValue: event.events)))
            }
            return Int(count)
        }
    }

    /// Waits up to `timeoutMilliseconds` (-1 = forever) and calls `body` for each ready descriptor.
    /// EINTR is reported as zero events. Returns the number of events.
    /// The corresponding C function is `epoll_wait`.
    @discardableResult
    public func wait(timeoutMilliseconds: Int32, _ body: (EpollReady) -> Void) -> Int {
        let count = epoll_wait(fd, buffer, Int32(capacity), timeoutMilliseconds)
        if count < 0 {
            let code = errno
            Posix.checkAcceptable(code, "epoll_wait")
            return 0
        }
        for index in 0..<Int(count) {
            let event = buffer[index]
            body(EpollReady(token: event.data.u64, events: EpollEvents(rawValue: event.events)))
        }
        return Int(count)
    }
}
