// FunctionLibraries: the function libraries' code as persistence sees it (RDB opcode 245, AOF rewrite).
import Synchronization

/// The code of every function library, kept by the command layer (which runs the libraries in
/// its Lua interpreter) for persistence, which sits beside it: a save copies `codes` with the
/// keyspace image, and a load hands each library read from a file to `load`.
public final class FunctionLibraries: Sendable {
    private let state = Mutex<(codes: [[UInt8]], loader: (@Sendable ([UInt8]) -> String?)?)>(([], nil))

    init() {}

    /// The libraries' code, in load order.
    public var codes: [[UInt8]] { state.withLock { $0.codes } }

    /// Records the current libraries' code (after FUNCTION LOAD/DELETE/FLUSH/RESTORE).
    public func publish(_ codes: [[UInt8]]) { state.withLock { $0.codes = codes } }

    /// Installs what creates a library from code read from a file (the command engine).
    public func installLoader(_ loader: @escaping @Sendable ([UInt8]) -> String?) {
        state.withLock { $0.loader = loader }
    }

    /// Creates the library `code` defines, replacing one of the same name; returns Redis's
    /// error text when the code does not load (the file is then refused).
    public func load(_ code: [UInt8]) -> String? {
        guard let loader = state.withLock({ $0.loader }) else { return "no function engine" }
        return loader(code)
    }
}
