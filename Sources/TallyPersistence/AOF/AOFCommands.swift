// AOFCommands: the WAITAOF and BGREWRITEAOF command rows (the server passes them in serverCommands).
import TallyCommands
import TallyProtocol

/// Hooks the AOF rows call; the persistence wiring fills them in, so the rows need not know
/// whether the AOF is on or which Storage backs it.
public struct AOFCommandHooks: Sendable {
    /// WAITAOF: nil when appendonly is off; else waits until `offset` is fsynced or the timeout
    /// (ms, 0 = forever) passes and returns whether it was.
    public var waitFsynced: @Sendable (_ offset: UInt64, _ timeoutMilliseconds: Int64) -> Bool?
    /// BGREWRITEAOF.
    public var startRewrite: @Sendable () -> AOFRewriteStart

    /// Creates hooks.
    public init(
        waitFsynced: @escaping @Sendable (UInt64, Int64) -> Bool?,
        startRewrite: @escaping @Sendable () -> AOFRewriteStart
    ) {
        self.waitFsynced = waitFsynced
        self.startRewrite = startRewrite
    }
}

/// Builds the rows.
public enum AOFCommands {
    /// WAITAOF numlocal numreplicas timeout (Redis 7.2): replies `[local_fsynced, 0]`; there are
    /// no replicas. BGREWRITEAOF: starts a background rewrite.
    public static func specs(hooks: AOFCommandHooks) -> [CommandSpec] {
        [
            CommandSpec(
                name: "waitaof", arity: 4, flags: [.noScript], categories: ["@slow", "@connection"]
            ) { context in
                waitAOF(&context, hooks: hooks)
            },
            CommandSpec(
                name: "bgrewriteaof", arity: 1, flags: [.admin, .noScript, .noAsyncLoading],
                categories: ["@admin", "@slow", "@dangerous"]
            ) { context in
                switch hooks.startRewrite() {
                case .started:
                    context.output.writeSimpleString("Background append only file rewriting started")
                case .scheduled:
                    context.output.writeSimpleString("Background append only file rewriting scheduled")
                case .alreadyInProgress:
                    context.output.writeError("ERR Background append only file rewriting already in progress")
                case .failed:
                    context.output.writeError(
                        """
                        ERR Can't execute an AOF background rewriting. \
                        Please check the server logs for more information.
                        """)
                }
            },
        ]
    }

    static func waitAOF(_ context: inout CommandContext, hooks: AOFCommandHooks) {
        let arguments = context.arguments
        guard let local = parseInteger(arguments[1]), let replicas = parseInteger(arguments[2]),
            let timeout = parseInteger(arguments[3])
        else {
            context.output.writeError("ERR value is not an integer or out of range")
            return
        }
        if timeout < 0 {
            context.output.writeError("ERR timeout is negative")
            return
        }
        _ = replicas
        var fsynced = false
        if local > 0 {
            guard let result = hooks.waitFsynced(context.session.pendingLogOffset, timeout) else {
                context.output.writeError("ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled.")
                return
            }
            fsynced = result
        } else if let result = hooks.waitFsynced(context.session.pendingLogOffset, 1) {
            fsynced = result
        }
        context.output.writeArrayHeader(2)
        context.output.writeInteger(fsynced ? 1 : 0)
        context.output.writeInteger(0)
    }

    // A canonical signed 64-bit decimal, as Redis's string2ll accepts.
    static func parseInteger(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }
}
