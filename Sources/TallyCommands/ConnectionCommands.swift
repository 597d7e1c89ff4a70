// ConnectionCommands: PING, ECHO, QUIT, RESET, HELLO, SELECT, TIME, AUTH.
import Glibc
import TallyKeyspace
import TallyProtocol

/// The connection family.
enum ConnectionCommands {
    static var specs: [CommandSpec] {
        [
            command("ping", -1, [.fast], "@fast @connection", ping),
            command("echo", 2, [.loading, .stale, .fast], "@fast @connection") { context in
                context.output.writeBulkString(context.arguments[1])
            },
            command("select", 2, [.loading, .stale, .fast], "@fast @connection", select),
        ]
    }

    /// PING [message]: `+PONG`, or the message as a bulk string.
    static func ping(_ context: inout CommandContext) {
        if context.arguments.count > 2 {
            writeArityError(context.spec.name, into: &context.output)
            return
        }
        if context.arguments.count == 2 {
            context.output.writeBulkString(context.arguments[1])
        } else {
            context.output.writeStaticString("+PONG\r\n")
        }
    }

    static func select(_ context: inout CommandContext) {
        guard let index = parseRedisInteger(context.arguments[1]), index <= Int64(Int32.max),
              index >= Int64(Int32.min) else {
            context.output.writeError(RedisError.notInteger)
            return
        }
        if index < 0 || index >= Int64(context.keyspace.databaseCount) {
            context.output.writeError(RedisError.databaseOutOfRange)
            return
        }
        context.session.database = Int(index)
        context.output.writeOK()
    }
}
