// KeyspaceCommands: the keyspace command family.
import TallyKeyspace
import TallyProtocol

/// The keyspace family.
enum KeyspaceCommands {
    static var specs: [CommandSpec] { [] }
}
