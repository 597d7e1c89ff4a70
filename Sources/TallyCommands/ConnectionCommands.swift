// ConnectionCommands: PING, ECHO, QUIT, RESET, HELLO, SELECT, TIME, AUTH.
import Glibc
import TallyKeyspace
import TallyProtocol

/// The connection family.
enum ConnectionCommands {
    static var specs: [CommandSpec] {
        [
            command("ping", -1, [.fast, .allowedWhileSubscribed], "@fast @connection", ping),
            command("echo", 2, [.loading, .stale, .fast], "@fast @connection") { context in
                context.output.writeBulkString(context.arguments[1])
            },
            command("select", 2, [.loading, .stale, .fast], "@fast @connection", select),
            command("quit", -1, [.noScript, .loading, .stale, .fast, .noAuth, .allowBusy, .transactionControl,
                                 .allowedWhileSubscribed],
                    "@fast @connection") { context in
                context.session.closeAfterReply = true
                context.output.writeOK()
            },
            command("reset", 1, [.noScript, .loading, .stale, .fast, .noAuth, .allowBusy, .transactionControl,
                                 .allowedWhileSubscribed],
                    "@fast @connection", reset),
            command("hello", -1, [.noScript, .loading, .stale, .fast, .noAuth, .allowBusy],
                    "@fast @connection", hello),
            command("auth", -2, [.noScript, .loading, .stale, .fast, .noAuth, .allowBusy],
                    "@fast @connection", auth),
            command("time", 1, [.loading, .stale, .fast], "@fast", time),
        ]
    }

    /// RESET: back to a fresh connection's state (no MULTI/WATCH, db 0, RESP2, no name, and
    /// unauthenticated when a password is required).
    static func reset(_ context: inout CommandContext) {
        let session = context.session
        TransactionCommands.discardTransaction(session, context.engine)
        PubSubCommands.unsubscribeAll(session, hub: context.engine.pubsub)
        context.engine.tracking.disable(session)
        session.replyMode = .on
        session.database = 0
        session.protocolVersion = .resp2
        context.output.protocolVersion = .resp2
        session.name = nil
        session.isAuthenticated = !context.engine.requiresAuthentication
        context.output.writeStaticString("+RESET\r\n")
    }

    /// Checks a username/password pair against the default user (the only user Tally has).
    /// The password comparison takes the same time wherever the first difference is.
    static func authenticate(_ engine: CommandEngine, user: ArraySlice<UInt8>, password: ArraySlice<UInt8>) -> Bool {
        guard user.elementsEqual("default".utf8) else { return false }
        guard let expected = engine.requirePass else { return true }
        var difference = UInt8(truncatingIfNeeded: expected.count ^ password.count)
        let count = max(expected.count, password.count)
        var left = expected.startIndex
        var right = password.startIndex
        for _ in 0..<count {
            let a = left < expected.endIndex ? expected[left] : 0
            let b = right < password.endIndex ? password[right] : 0
            difference |= a ^ b
            left += 1
            right += 1
        }
        return difference == 0 && expected.count == password.count
    }

    static func auth(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.count > 3 {
            context.output.writeError(RedisError.syntax)
            return
        }
        // SLOWLOG and MONITOR never show the credentials (acl.c authCommand redacts them all).
        context.session.redactedArguments += Array(1..<arguments.count)
        let user: ArraySlice<UInt8>
        let password: ArraySlice<UInt8>
        if arguments.count == 2 {
            if !context.engine.requiresAuthentication {
                context.output.writeError(RedisError.authNotConfigured)
                return
            }
            user = Array("default".utf8)[...]
            password = arguments[1]
        } else {
            user = arguments[1]
            password = arguments[2]
        }
        if authenticate(context.engine, user: user, password: password) {
            context.session.isAuthenticated = true
            context.output.writeOK()
        } else {
            context.output.writeError(RedisError.wrongPass)
        }
    }

    /// HELLO [protover [AUTH user pass] [SETNAME name]]: switches RESP version and replies
    /// with the server map, in 7.0.15's order.
    static func hello(_ context: inout CommandContext) {
        let arguments = context.arguments
        var version: Int64 = 0
        var index = 1
        if arguments.count >= 2 {
            guard let parsed = parseRedisInteger(arguments[1]) else {
                context.output.writeError("ERR Protocol version is not an integer or out of range")
                return
            }
            if parsed < 2 || parsed > 3 {
                context.output.writeError(RedisError.noProto)
                return
            }
            version = parsed
            index = 2
        }
        var credentials: (user: ArraySlice<UInt8>, password: ArraySlice<UInt8>)?
        var name: [UInt8]?
        while index < arguments.count {
            let more = arguments.count - 1 - index
            if arguments.matches(index, "auth") && more >= 2 {
                context.session.redactedArguments += [index + 1, index + 2]
                credentials = (arguments[index + 1], arguments[index + 2])
                index += 3
            } else if arguments.matches(index, "setname") && more >= 1 {
                let candidate = arguments.copy(index + 1)
                if candidate.contains(where: { $0 < 33 || $0 > 126 }) {
                    context.output.writeError(RedisError.invalidClientName)
                    return
                }
                name = candidate
                index += 2
            } else {
                var message: [UInt8] = Array("ERR Syntax error in HELLO option '".utf8)
                message.append(contentsOf: arguments[index].prefix { $0 != 0 })
                message.append(UInt8(ascii: "'"))
                context.output.writeError(message)
                return
            }
        }
        if let credentials {
            guard authenticate(context.engine, user: credentials.user, password: credentials.password) else {
                context.output.writeError(RedisError.wrongPass)
                return
            }
            context.session.isAuthenticated = true
        }
        if !context.session.isAuthenticated && context.engine.requiresAuthentication {
            context.output.writeError("""
                NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                select the RESP protocol version at the same time
                """)
            return
        }
        if let name { context.session.name = name.isEmpty ? nil : name }
        if version != 0 {
            context.session.protocolVersion = version == 3 ? .resp3 : .resp2
            context.output.protocolVersion = context.session.protocolVersion
            context.session.mailbox?.isRESP3 = version == 3
        }
        let output = context.session.protocolVersion
        context.output.writeMapHeader(7)
        context.output.writeBulkString("server".utf8)
        context.output.writeBulkString("redis".utf8)
        context.output.writeBulkString("version".utf8)
        context.output.writeBulkString("7.0.15".utf8)
        context.output.writeBulkString("proto".utf8)
        context.output.writeInteger(Int64(output.rawValue))
        context.output.writeBulkString("id".utf8)
        context.output.writeInteger(context.session.id)
        context.output.writeBulkString("mode".utf8)
        context.output.writeBulkString("standalone".utf8)
        context.output.writeBulkString("role".utf8)
        context.output.writeBulkString("master".utf8)
        context.output.writeBulkString("modules".utf8)
        context.output.writeArrayHeader(0)
    }

    /// TIME: wall-clock seconds and microseconds as two bulk strings.
    static func time(_ context: inout CommandContext) {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        context.output.writeArrayHeader(2)
        context.output.writeBulkDecimal(Int64(spec.tv_sec))
        context.output.writeBulkDecimal(Int64(spec.tv_nsec) / 1000)
    }

    /// PING [message]: `+PONG`, or the message as a bulk string.
    static func ping(_ context: inout CommandContext) {
        if context.arguments.count > 2 {
            writeArityError(context.spec.name, into: &context.output)
            return
        }
        if context.session.subscriptionTotal > 0 && context.output.protocolVersion == .resp2 {
            // Subscribed RESP2 clients get PING as a message-shaped reply (pingCommand).
            context.output.writeArrayHeader(2)
            context.output.writeBulkString("pong".utf8)
            let argument: ArraySlice<UInt8> = context.arguments.count == 2 ? context.arguments[1] : []
            context.output.writeBulkString(argument)
        } else if context.arguments.count == 2 {
            context.output.writeBulkString(context.arguments[1])
        } else {
            context.output.writeStaticString("+PONG\r\n")
        }
    }

    static func select(_ context: inout CommandContext) {
        guard let database = context.databaseArgument(1) else { return }
        context.session.database = database
        context.output.writeOK()
    }
}
