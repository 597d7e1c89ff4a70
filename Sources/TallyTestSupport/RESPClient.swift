// RESPClient: a small blocking RESP client for black-box tests against a running server.
import Glibc

/// A decoded RESP reply.
public indirect enum RESPValue: Equatable, Sendable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    /// The bulk payload as text, if this is a non-null bulk string.
    public var text: String? {
        switch self {
        case .bulk(let bytes?): return String(decoding: bytes, as: UTF8.self)
        case .simple(let text): return text
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .simple(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let value): return ":\(value)"
        case .bulk(let bytes?): return "$" + String(decoding: bytes, as: UTF8.self).debugDescription
        case .bulk(nil): return "$nil"
        case .array(let items?): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .array(nil): return "*nil"
        }
    }
}

/// Errors from the test client.
public enum RESPClientError: Error, Equatable {
    case connectFailed(Int32)
    case closed
    case timedOut
    case malformed(String)
}

/// One blocking TCP connection speaking RESP2.
public final class RESPClient {
    /// The socket.
    public let descriptor: Int32
    private var buffer: [UInt8] = []
    private var position = 0

    /// Connects to `host:port` (IPv4) with a receive timeout.
    public init(port: Int, host: String = "127.0.0.1", timeoutSeconds: Int = 10) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw RESPClientError.connectFailed(code)
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Sets the kernel receive buffer (small values make back-pressure tests fast).
    public func setReceiveBuffer(_ bytes: Int32) {
        var value = bytes
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends raw bytes.
    public func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw RESPClientError.closed
            }
            offset += written
        }
    }

    /// Sends raw text.
    public func sendRaw(_ text: String) throws { try sendRaw(Array(text.utf8)) }

    /// Encodes a command as a RESP multibulk.
    public static func encode(_ arguments: [String]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            out += Array("$\(argument.utf8.count)\r\n".utf8) + Array(argument.utf8) + [13, 10]
        }
        return out
    }

    /// Sends one command and reads its reply.
    @discardableResult
    public func call(_ arguments: String...) throws -> RESPValue {
        try sendRaw(Self.encode(arguments))
        return try readReply()
    }

    /// Reads every byte until the server closes the connection (for protocol-error tests).
    public func readUntilClosed() throws -> [UInt8] {
        var collected = Array(buffer[position...])
        buffer.removeAll()
        position = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return collected }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { throw RESPClientError.timedOut }
                return collected
            }
            collected += chunk[0..<count]
        }
    }

    /// Returns the bytes buffered or arriving within `milliseconds` (empty if none came), for
    /// streams that are not replies (a replication transfer).
    public func readAvailable(waitMilliseconds milliseconds: Int32) throws -> [UInt8] {
        var collected = Array(buffer[position...])
        buffer.removeAll()
        position = 0
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&request, 1, collected.isEmpty ? milliseconds : 0)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { return collected }
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return collected }
            if count < 0 {
                if errno == EINTR { continue }
                throw RESPClientError.closed
            }
            collected += chunk[0..<count]
        }
    }

    /// Reads one complete reply.
    public func readReply() throws -> RESPValue {
        let line = try readLine()
        guard let kind = line.first else { throw RESPClientError.malformed("empty line") }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch kind {
        case UInt8(ascii: "+"): return .simple(rest)
        case UInt8(ascii: "-"): return .error(rest)
        case UInt8(ascii: ":"):
            guard let value = Int64(rest) else { throw RESPClientError.malformed(rest) }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(rest) else { throw RESPClientError.malformed(rest) }
            if length < 0 { return .bulk(nil) }
            try fill(length + 2)
            let payload = Array(buffer[position..<position + length])
            position += length + 2
            return .bulk(payload)
        case UInt8(ascii: "*"):
            guard let count = Int(rest) else { throw RESPClientError.malformed(rest) }
            if count < 0 { return .array(nil) }
            var items: [RESPValue] = []
            for _ in 0..<count { items.append(try readReply()) }
            return .array(items)
        default:
            throw RESPClientError.malformed(String(decoding: line, as: UTF8.self))
        }
    }

    private func readLine() throws -> [UInt8] {
        while true {
            if let end = buffer[position...].firstIndex(of: 10), end > position, buffer[end - 1] == 13 {
                let line = Array(buffer[position..<end - 1])
                position = end + 1
                return line
            }
            try receiveMore()
        }
    }

    private func fill(_ count: Int) throws {
        while buffer.count - position < count { try receiveMore() }
    }

    private func receiveMore() throws {
        if position > 0 {
            buffer.removeSubrange(0..<position)
            position = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[0..<count]
                return
            }
            if count == 0 { throw RESPClientError.closed }
            if errno == EINTR { continue }
            if errno == EAGAIN { throw RESPClientError.timedOut }
            throw RESPClientError.closed
        }
    }
}
