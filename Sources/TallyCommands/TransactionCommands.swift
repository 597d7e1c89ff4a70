// TransactionCommands: the transaction command family.
import TallyKeyspace
import TallyProtocol

/// The transaction family.
enum TransactionCommands {
    static var specs: [CommandSpec] { [] }
}
