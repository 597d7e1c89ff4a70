// ServerProcess: runs the real tally-server binary on an ephemeral port with a temporary dir.
import Foundation

/// A `tally-server` child process for black-box tests.
public final class ServerProcess {
    /// The child.
    public let process: Process
    /// The TCP port it listens on (a free port picked just before starting).
    public let port: Int
    /// Its working directory (deleted on `stop`).
    public let directory: String
    private let outputPipe = Pipe()
    private let collector = OutputCollector()

    /// Locates the binary: `$TALLY_SERVER_BINARY`, next to the test bundle, or `.build/debug`.
    public static func binaryPath() -> String? {
        if let path = ProcessInfo.processInfo.environment["TALLY_SERVER_BINARY"] { return path }
        var candidates: [String] = []
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(directory.appendingPathComponent("tally-server").path)
            directory = directory.deletingLastPathComponent()
        }
        for bundle in Bundle.allBundles {
            candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("tally-server").path)
        }
        candidates.append(FileManager.default.currentDirectoryPath + "/.build/debug/tally-server")
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts the server with `arguments` after `--port <free> --dir <temp> --appendonly no --save ""`
    /// (later arguments override earlier ones). With `waitReady` false, returns at once.
    public init(arguments: [String] = [], waitReady: Bool = true, configFile: String? = nil) throws {
        guard let binary = Self.binaryPath() else { throw ServerProcessError.binaryNotFound }
        directory = NSTemporaryDirectory() + "tally-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        var all: [String] = []
        if let configFile { all.append(configFile) }
        port = Self.freePort()
        all += ["--port", String(port), "--dir", directory, "--appendonly", "no", "--save", ""] + arguments
        process.arguments = all
        process.standardOutput = outputPipe
        process.standardError = outputPipe
        let collector = collector
        outputPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { collector.append(data) }
        }
        try process.run()
        if waitReady { try waitUntilReady() }
    }

    /// Everything the server printed so far.
    public var output: String { collector.text }

    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let text = output
            if text.contains("Ready to accept connections") { return }
            if !process.isRunning { throw ServerProcessError.exited(process.terminationStatus, text) }
            usleep(20_000)
        }
        throw ServerProcessError.notReady(output)
    }

    /// A port the kernel considers free right now (port 0 means "no TCP" to the server, as in Redis).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length)
                return getsockname(fd, pointer, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits for the process to exit and returns its status (nil on timeout).
    public func waitForExit(timeoutSeconds: Double = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Sends a signal to the server.
    public func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// Stops the server (SIGKILL if still running) and removes its directory.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        outputPipe.fileHandleForReading.readabilityHandler = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}

/// Why a server could not be started.
public enum ServerProcessError: Error {
    case binaryNotFound
    case exited(Int32, String)
    case notReady(String)
}

/// Collects the child's output from the pipe's reader thread.
private final class OutputCollector: @unchecked Sendable {
    // @unchecked: `data` is only touched under `lock`.
    private let lock = NSLock()
    private var data = Data()

    func append(_ chunk: Data) {
        lock.lock()
        data.append(chunk)
        lock.unlock()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}
