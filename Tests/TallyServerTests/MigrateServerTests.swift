// MigrateServerTests: MIGRATE between two real tally-servers, a target that never answers, the socket cache.
import Foundation
import Glibc
import TallyTestSupport
import XCTest

final class MigrateServerTests: ServerTestCase {
    private func bulk(_ text: String) -> RESPValue { .bulk(Array(text.utf8)) }

    private func cachedSockets(_ client: RESPClient) throws -> Int {
        let info = try client.call("INFO", "stats").text ?? ""
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("migrate_cached_sockets:") })
        else { return -1 }
        return Int(line.dropFirst("migrate_cached_sockets:".count)) ?? -1
    }

    func testMigratesEveryTypeWithTTLCopyReplaceAndKeys() throws {
        let (sourceServer, targetServer) = (try start(), try start())
        let source = try RESPClient(port: sourceServer.port)
        let target = try RESPClient(port: targetServer.port)
        let port = String(targetServer.port)
        XCTAssertEqual(try cachedSockets(source), 0)
        _ = try source.call("SET", "s", "text", "PX", "100000")
        _ = try source.call("HSET", "h", "f1", "v1", "f2", "v2")
        _ = try source.call("RPUSH", "l", "a", "b", "c")
        _ = try source.call("ZADD", "z", "1", "one", "2.5", "two")
        let dumps = try ["s", "h", "l", "z"].map { try source.call("DUMP", $0) }

        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "s", "0", "5000"), .simple("OK"))
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", "h", "missing", "l", "z"),
                       .simple("OK"))
        XCTAssertEqual(try source.call("EXISTS", "s", "h", "l", "z"), .integer(0))
        XCTAssertEqual(try ["s", "h", "l", "z"].map { try target.call("DUMP", $0) }, dumps)
        guard case .integer(let ttl) = try target.call("PTTL", "s") else { return XCTFail("no TTL") }
        XCTAssertTrue(ttl > 90_000 && ttl <= 100_000, "\(ttl)")
        XCTAssertEqual(try target.call("ZRANGE", "z", "0", "-1", "WITHSCORES"),
                       .array([bulk("one"), bulk("1"), bulk("two"), bulk("2.5")]))
        XCTAssertEqual(try cachedSockets(source), 1)

        // COPY keeps the source; an existing target key is BUSYKEY unless REPLACE.
        _ = try source.call("SET", "b", "new")
        _ = try target.call("SET", "b", "old")
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "b", "0", "5000", "COPY"),
                       .error("ERR Target instance replied with error: BUSYKEY Target key name already exists."))
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "b", "0", "5000", "COPY", "REPLACE"),
                       .simple("OK"))
        XCTAssertEqual(try source.call("GET", "b"), bulk("new"))
        XCTAssertEqual(try target.call("GET", "b"), bulk("new"))
        // Keys acknowledged around a refused one are deleted; the refused one stays.
        _ = try source.call("MSET", "k1", "1", "k2", "2", "k3", "3")
        _ = try target.call("SET", "k2", "busy")
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS", "k1", "k2", "k3"),
                       .error("ERR Target instance replied with error: BUSYKEY Target key name already exists."))
        XCTAssertEqual(try source.call("MGET", "k1", "k2", "k3"), .array([.bulk(nil), bulk("2"), .bulk(nil)]))
        // Another database, then a missing key.
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "b", "7", "5000"), .simple("OK"))
        _ = try target.call("SELECT", "7")
        XCTAssertEqual(try target.call("GET", "b"), bulk("new"))
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", port, "b", "7", "5000"), .simple("NOKEY"))
        XCTAssertEqual(try cachedSockets(source), 1)
    }

    func testTimeoutToATargetThatNeverAnswers() throws {
        let server = try start()
        let client = try RESPClient(port: server.port)
        // A listener nobody accepts on: the connection completes in the backlog, the request is
        // written, and no reply ever comes.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                XCTAssertEqual(bind(listener, $0, length), 0)
                XCTAssertEqual(getsockname(listener, $0, &length), 0)
            }
        }
        XCTAssertEqual(listen(listener, 8), 0)
        let port = String(UInt16(bigEndian: address.sin_port))
        _ = try client.call("SET", "k", "v")
        let started = Date()
        XCTAssertEqual(try client.call("MIGRATE", "127.0.0.1", port, "k", "0", "300"),
                       .error("IOERR error or timeout reading to target instance"))
        let elapsed = Date().timeIntervalSince(started)
        // A timeout is not retried: one wait of 300 ms.
        XCTAssertTrue(elapsed >= 0.29 && elapsed < 2, "\(elapsed)")
        XCTAssertEqual(try client.call("GET", "k"), bulk("v"))
        XCTAssertEqual(try cachedSockets(client), 0)
        // A port nobody listens on: the connect is refused, which shows on writing (tried twice).
        close(listener)
        XCTAssertEqual(try client.call("MIGRATE", "127.0.0.1", port, "k", "0", "300"),
                       .error("IOERR error or timeout writing to target instance"))
        XCTAssertEqual(try client.call("MIGRATE", "256.1.1.1", "1", "k", "0", "300"),
                       .error("IOERR error or timeout connecting to the client"))
    }

    func testMigrateToItselfFailsAsRedisTimesOutAndKeepsTheKey() throws {
        // Two I/O threads: the RESTORE could be served by the other one if it were sent.
        let server = try start(["--io-threads", "2"])
        let client = try RESPClient(port: server.port)
        _ = try client.call("SET", "k", "v")
        XCTAssertEqual(try client.call("MIGRATE", "127.0.0.1", String(server.port), "k", "0", "5000", "REPLACE"),
                       .error("IOERR error or timeout reading to target instance"))
        XCTAssertEqual(try client.call("GET", "k"), bulk("v"))
    }

    func testCachedConnectionIsClosedAfterTenIdleSeconds() throws {
        let (sourceServer, targetServer) = (try start(), try start())
        let source = try RESPClient(port: sourceServer.port, timeoutSeconds: 30)
        _ = try source.call("SET", "k", "v")
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", String(targetServer.port), "k", "0", "5000", "COPY"),
                       .simple("OK"))
        let used = Date()
        XCTAssertEqual(try cachedSockets(source), 1)
        // Kept while idle for 10 s, closed by the once-a-second check after more than 10 s.
        while try cachedSockets(source) == 1 && Date().timeIntervalSince(used) < 14 { usleep(200_000) }
        let idle = Date().timeIntervalSince(used)
        XCTAssertEqual(try cachedSockets(source), 0)
        XCTAssertTrue(idle > 9.9 && idle < 13, "\(idle)")
        // A later MIGRATE connects afresh.
        XCTAssertEqual(try source.call("MIGRATE", "127.0.0.1", String(targetServer.port), "k", "0", "5000", "REPLACE"),
                       .simple("OK"))
        XCTAssertEqual(try source.call("EXISTS", "k"), .integer(0))
    }
}
