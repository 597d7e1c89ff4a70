// ReplicaConnection: the replica's socket to its primary: line replies with a deadline, raw reads, whole writes.
import Glibc
import TallyPlatform

/// Why the link to the primary ended (each is logged, then the link reconnects).
enum ReplicaLinkError: Error, Equatable {
    /// The primary closed the connection.
    case closed
    /// Nothing arrived within repl-timeout.
    case timedOut
    /// A socket call failed.
    case io(Errno)
    /// The primary answered something the protocol does not allow, or refused a step.
    case refused(String)
    /// REPLICAOF changed the target or promoted this server: stop quietly.
    case stopped
}

/// A connected, non-blocking socket with a read buffer. Owned by the link thread.
final class ReplicaConnection {
    let descriptor: Int32
    /// Bytes read and not consumed yet (`buffer[position...]`).
    private var buffer: [UInt8] = []
    private var position = 0
    /// Unix milliseconds of the last byte received (Redis's master->lastinteraction).
    private(set) var lastReceiveMilliseconds: Int64
    private let isStopped: () -> Bool
    private static let readChunkBytes = 16 * 1024
    /// One poll never sleeps longer, so a stop request or the ACK timer is noticed quickly.
    static let pollSliceMilliseconds: Int32 = 100

    /// Told how many bytes each read brought (INFO `total_net_repl_input_bytes`).
    private let received: (Int) -> Void

    init(descriptor: Int32, isStopped: @escaping () -> Bool, received: @escaping (Int) -> Void = { _ in }) {
        self.descriptor = descriptor
        self.isStopped = isStopped
        self.received = received
        lastReceiveMilliseconds = wallMilliseconds()
    }

    deinit { Posix.close(descriptor) }

    /// Bytes buffered beyond what was consumed.
    var bufferedBytes: Int { buffer.count - position }

    /// Takes every buffered byte (what followed the RDB payload is the start of the stream).
    func takeBuffered() -> ArraySlice<UInt8> {
        let rest = buffer[position...]
        buffer.removeAll()
        position = 0
        return rest
    }

    /// Sends `bytes` whole, waiting for room in the socket buffer.
    func send(_ bytes: [UInt8]) throws(ReplicaLinkError) {
        var offset = 0
        while offset < bytes.count {
            if isStopped() { throw .stopped }
            let result = bytes.withUnsafeBytes { raw in
                Result { () throws(Errno) in
                    try Posix.write(descriptor, UnsafeRawBufferPointer(rebasing: raw[offset...]))
                }
            }
            switch result {
            case .success(.processed(let written)): offset += written
            case .success(.wouldBlock): _ = Posix.waitFor(descriptor, events: Int16(POLLOUT), timeoutMilliseconds: 100)
            case .failure(let error): throw .io(error)
            }
        }
    }

    /// Sends one command as a RESP array (the handshake's PING, AUTH, REPLCONF, PSYNC).
    func sendCommand(_ words: [String]) throws(ReplicaLinkError) {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: Array("*\(words.count)\r\n".utf8))
        for word in words {
            let utf8 = Array(word.utf8)
            bytes.append(contentsOf: Array("$\(utf8.count)\r\n".utf8))
            bytes.append(contentsOf: utf8)
            bytes.append(contentsOf: [13, 10])
        }
        try send(bytes)
    }

    /// Reads what is available (waiting up to one poll slice). Returns the count read, 0 when
    /// nothing came in this slice; throws `.closed` at end of stream.
    @discardableResult
    func fill() throws(ReplicaLinkError) -> Int {
        if isStopped() { throw .stopped }
        if !Posix.waitFor(descriptor, events: Int16(POLLIN), timeoutMilliseconds: Self.pollSliceMilliseconds) {
            return 0
        }
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: Self.readChunkBytes))
        let result = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) in
                try Posix.read(descriptor, into: UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
            }
        }
        switch result {
        case .failure(let error):
            buffer.removeSubrange(start...)
            throw .io(error)
        case .success(.processed(0)):
            buffer.removeSubrange(start...)
            throw .closed
        case .success(.processed(let count)):
            buffer.removeSubrange((start + count)...)
            received(count)
            lastReceiveMilliseconds = wallMilliseconds()
            return count
        case .success(.wouldBlock):
            buffer.removeSubrange(start...)
            return 0
        }
    }

    /// Reads one reply line (without CRLF), failing after `timeoutSeconds` without a byte, as
    /// Redis's syncReadLine does during the handshake (repl-timeout).
    func readLine(timeoutSeconds: Int64) throws(ReplicaLinkError) -> String {
        while true {
            if let newline = buffer[position...].firstIndex(of: 10) {
                var end = newline
                if end > position && buffer[end - 1] == 13 { end -= 1 }
                let line = String(decoding: buffer[position..<end], as: UTF8.self)
                position = newline + 1
                return line
            }
            if try fill() == 0 && wallMilliseconds() - lastReceiveMilliseconds > timeoutSeconds * 1000 {
                throw .timedOut
            }
        }
    }

    /// Moves up to `limit` buffered bytes to `body` (RDB payload), reading more if none is buffered.
    /// Returns the count handed over (0 when nothing arrived in this poll slice).
    /// `body` returns how many of the bytes it took; the rest stays buffered (what followed an
    /// RDB's EOF mark is the start of the stream).
    func readPayload(limit: Int, _ body: (ArraySlice<UInt8>) throws(ReplicaLinkError) -> Int)
        throws(ReplicaLinkError) -> Int
    {
        if bufferedBytes == 0, try fill() == 0 { return 0 }
        let count = min(limit, bufferedBytes)
        let taken = try body(buffer[position..<(position + count)])
        precondition(taken >= 0 && taken <= count, "readPayload body took \(taken) of \(count) bytes")
        position += taken
        return taken
    }
}

/// Unix time in milliseconds (the link's timers and INFO's seconds-ago fields).
func wallMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
