// ExpireCommands: the expire command family.
import TallyKeyspace
import TallyProtocol

/// The expire family.
enum ExpireCommands {
    static var specs: [CommandSpec] { [] }
}
