// HashCommands: the hash command family.
import TallyKeyspace
import TallyProtocol

/// The hash family.
enum HashCommands {
    static var specs: [CommandSpec] { [] }
}
