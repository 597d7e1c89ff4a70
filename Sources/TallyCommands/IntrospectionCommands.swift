// IntrospectionCommands: the introspection command family.
import TallyKeyspace
import TallyProtocol

/// The introspection family.
enum IntrospectionCommands {
    static var specs: [CommandSpec] { [] }
}
