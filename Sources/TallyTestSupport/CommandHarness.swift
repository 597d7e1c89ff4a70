// CommandHarness: runs commands against an in-memory engine on a manual clock and returns reply bytes.
import TallyCommands
import TallyKeyspace
import TallyProtocol

/// A command engine plus one client session, for tests: `CommandHarness().run("INCRBY", "k", "1")`.
public final class CommandHarness {
    /// The engine under test.
    public let engine: CommandEngine
    /// The manual clock driving expiry.
    public let clock: ManualClock
    /// The session commands run in.
    public let session: ClientSession
    private var output = OutputBuffer()

    /// Creates a harness; `resp3` switches the session to RESP3 as `HELLO 3` would.
    public init(configuration: EngineConfiguration = EngineConfiguration(), clock: ManualClock = ManualClock(),
                resp3: Bool = false, serverCommands: [CommandSpec] = []) {
        self.clock = clock
        engine = CommandEngine(configuration: configuration, clock: clock, serverCommands: serverCommands)
        session = ClientSession(id: engine.makeClientID())
        if resp3 { session.protocolVersion = .resp3 }
    }

    /// Creates another session on the same engine (WATCH from two clients, SELECT isolation).
    public init(sharing other: CommandHarness) {
        engine = other.engine
        clock = other.clock
        session = ClientSession(id: engine.makeClientID())
    }

    /// Runs one command and returns its reply bytes.
    @discardableResult
    public func run(_ arguments: String...) -> [UInt8] {
        run(arguments.map { Array($0.utf8) })
    }

    /// Runs one command given as byte arrays.
    @discardableResult
    public func run(_ arguments: [[UInt8]]) -> [UInt8] {
        engine.execute(CommandArguments(arguments), session: session, output: &output)
        let reply = Array(output.storage[output.readerIndex...])
        output.readerIndex = output.storage.count
        output.discardReadBytes()
        return reply
    }

    /// Runs one command and returns the reply as a String (for readable assertions).
    @discardableResult
    public func reply(_ arguments: String...) -> String {
        String(decoding: run(arguments.map { Array($0.utf8) }), as: UTF8.self)
    }
}
