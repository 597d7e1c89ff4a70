// ServerTestCase: the real tally-server started per test on an ephemeral port, stopped afterwards.
import TallyTestSupport
import XCTest

/// Base class of the suites that drive the real binary: `start` launches a server that
/// `tearDown` stops, whatever the test's outcome.
class ServerTestCase: XCTestCase {
    /// Servers to stop after the test (`start` adds to it; tests may add their own).
    var servers: [ServerProcess] = []

    override func tearDown() {
        for server in servers { server.stop() }
        servers.removeAll()
        super.tearDown()
    }

    /// Starts `tally-server` with `arguments` (beyond its port and directory).
    func start(_ arguments: [String] = []) throws -> ServerProcess {
        let server = try ServerProcess(arguments: arguments)
        servers.append(server)
        return server
    }
}
