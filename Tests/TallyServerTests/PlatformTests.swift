// PlatformTests: the syscall wrappers under injected faults (EINTR retried, EAGAIN, short writes, errors).
import Glibc
import TallyPlatform
import XCTest

final class PlatformTests: XCTestCase {
    override func tearDown() { SyscallSeam.reset() }

    private func makePipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        return (fds[0], fds[1])
    }

    func testInjectedFaultsOnWriteAndRead() throws {
        let (reader, writer) = makePipe()
        defer { Posix.close(reader); Posix.close(writer) }
        let payload: [UInt8] = Array("hello world".utf8)

        SyscallSeam.inject(.shortWrite(3), on: .write)
        let short = try payload.withUnsafeBytes { raw throws(Errno) in try Posix.write(writer, raw) }
        guard case .processed(3) = short else { return XCTFail("expected a 3-byte write, got \(short)") }

        SyscallSeam.inject(.error(.interrupted), on: .write)
        let retried = try payload.withUnsafeBytes { raw throws(Errno) in try Posix.write(writer, raw) }
        guard case .processed(payload.count) = retried else { return XCTFail("EINTR must be retried") }

        SyscallSeam.inject(.error(.wouldBlock), on: .write, nth: 2)
        _ = try payload.withUnsafeBytes { raw throws(Errno) in try Posix.write(writer, raw) }
        let blocked = try payload.withUnsafeBytes { raw throws(Errno) in try Posix.write(writer, raw) }
        guard case .wouldBlock = blocked else { return XCTFail("second write must report wouldBlock") }

        SyscallSeam.inject(.error(.connectionReset), on: .read)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        XCTAssertThrowsError(try Posix.read(reader, into: buffer)) { error in
            XCTAssertEqual(error as? Errno, .connectionReset)
        }
        guard case .processed(let count) = try Posix.read(reader, into: buffer) else { return XCTFail() }
        XCTAssertEqual(count, 3 + 2 * payload.count)
        guard case .wouldBlock = try Posix.read(reader, into: buffer) else { return XCTFail("pipe is empty") }
    }

    func testListenAcceptAndAddresses() throws {
        let listener = try Posix.listenTCP(host: "127.0.0.1", port: 0, backlog: 16)
        defer { Posix.close(listener) }
        let port = Posix.localPort(listener)
        XCTAssertGreaterThan(port, 0)
        guard case .wouldBlock = try Posix.accept(listener) else { return XCTFail("no client yet") }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(connected, 0)
        usleep(10_000)
        guard case .processed(let accepted) = try Posix.accept(listener) else { return XCTFail("accept") }
        defer { Posix.close(accepted) }
        XCTAssertEqual(Posix.localAddress(accepted), "127.0.0.1:\(port)")
        XCTAssertTrue(Posix.peerAddress(accepted).hasPrefix("127.0.0.1:"))
        XCTAssertNoThrow(try Posix.setNoDelay(accepted))
        XCTAssertNoThrow(try Posix.setKeepAlive(accepted, idleSeconds: 300))
        XCTAssertThrowsError(try Posix.listenTCP(host: "127.0.0.1", port: port, backlog: 1)) { error in
            XCTAssertEqual(error as? Errno, .addressInUse)
        }
    }
}
