// Errno and IOResult: typed results for every syscall wrapper in Posix.swift.
import Glibc

/// A POSIX error number, thrown by the syscall wrappers.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    /// The C `errno` value.
    public let rawValue: Int32

    /// Wraps a C `errno` value.
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The current thread's `errno`.
    public static var current: Errno { Errno(rawValue: errno) }

    /// Interrupted system call (`EINTR`); the wrappers retry it.
    public static let interrupted = Errno(rawValue: EINTR)
    /// Resource temporarily unavailable (`EAGAIN`/`EWOULDBLOCK`); mapped to `.wouldBlock`.
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    /// Bad file descriptor (`EBADF`): always a bug in Tally.
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    /// Bad address (`EFAULT`): always a bug in Tally.
    public static let badAddress = Errno(rawValue: EFAULT)
    /// Connection reset by peer (`ECONNRESET`).
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    /// Broken pipe (`EPIPE`).
    public static let brokenPipe = Errno(rawValue: EPIPE)
    /// Address already in use (`EADDRINUSE`).
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    /// Cannot assign requested address (`EADDRNOTAVAIL`).
    public static let addressNotAvailable = Errno(rawValue: EADDRNOTAVAIL)
    /// Address family not supported (`EAFNOSUPPORT`), e.g. no IPv6.
    public static let addressFamilyNotSupported = Errno(rawValue: EAFNOSUPPORT)
    /// Too many open files (`EMFILE`).
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    /// Connection aborted (`ECONNABORTED`).
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    /// Invalid argument (`EINVAL`).
    public static let invalidArgument = Errno(rawValue: EINVAL)
    /// No such file or directory (`ENOENT`).
    public static let noSuchFile = Errno(rawValue: ENOENT)

    /// `strerror` text, as Redis prints it in logs.
    public var description: String { String(cString: strerror(rawValue)) }
}

/// The outcome of a non-blocking call: it did some work, or the kernel said "try later".
public enum IOResult<T> {
    /// The call completed with `T`.
    case processed(T)
    /// The call would block (EAGAIN); nothing was done.
    case wouldBlock
}

extension IOResult: Sendable where T: Sendable {}
