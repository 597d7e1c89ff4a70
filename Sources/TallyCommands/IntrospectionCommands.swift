// IntrospectionCommands: COMMAND, COMMAND COUNT / INFO / LIST / DOCS, generated from the table.
import TallyKeyspace
import TallyProtocol

/// COMMAND and its subcommands; every reply is derived from the table rows.
enum IntrospectionCommands {
    static var specs: [CommandSpec] {
        let subcommandFlags: CommandFlags = [.loading, .stale]
        return [
            CommandSpec(
                name: "command", arity: -1, flags: [.loading, .stale], categories: ["@slow", "@connection"],
                subcommands: [
                    CommandSpec(name: "command|count", arity: 2, flags: subcommandFlags,
                                categories: ["@slow", "@connection"]) { _ in },
                    CommandSpec(name: "command|info", arity: -2, flags: subcommandFlags,
                                categories: ["@slow", "@connection"]) { _ in },
                    CommandSpec(name: "command|list", arity: -2, flags: subcommandFlags,
                                categories: ["@slow", "@connection"]) { _ in },
                    CommandSpec(name: "command|docs", arity: -2, flags: subcommandFlags,
                                categories: ["@slow", "@connection"]) { _ in },
                ],
                handler: command)
        ]
    }

    static func command(_ context: inout CommandContext) {
        let arguments = context.arguments
        let table = context.engine.table
        if arguments.count == 1 {
            context.output.writeArrayHeader(table.rows.count)
            for row in table.rows { writeInfo(row, into: &context.output) }
            return
        }
        if arguments.matches(1, "count") {
            guard arguments.count == 2 else { return writeArityError("command|count", into: &context.output) }
            context.output.writeInteger(table.rows.count)
        } else if arguments.matches(1, "info") {
            context.output.writeArrayHeader(arguments.count - 2)
            for index in 2..<arguments.count {
                if let row = table.lookup(arguments[index]) {
                    writeInfo(table.rows[row], into: &context.output)
                } else {
                    context.output.writeNull()
                }
            }
        } else if arguments.matches(1, "list") {
            list(&context)
        } else if arguments.matches(1, "docs") {
            var rows: [CommandSpec] = []
            if arguments.count == 2 {
                rows = table.rows
            } else {
                for index in 2..<arguments.count {
                    if let row = table.lookup(arguments[index]) { rows.append(table.rows[row]) }
                }
            }
            context.output.writeMapHeader(rows.count)
            for row in rows {
                context.output.writeBulkString(row.name.utf8)
                // INCREX is the one command Tally adds beyond Redis 7.0: its docs say so.
                let isIncrex = row.name == "increx"
                context.output.writeMapHeader(isIncrex ? 3 : 1)
                if isIncrex {
                    context.output.writeBulkString("summary".utf8)
                    context.output.writeBulkString(increxSummary.utf8)
                    context.output.writeBulkString("since".utf8)
                    context.output.writeBulkString("8.8.0".utf8)
                }
                context.output.writeBulkString("group".utf8)
                context.output.writeBulkString(group(of: row).utf8)
            }
        } else {
            writeUnknownSubcommandError(arguments, parent: "command", into: &context.output)
        }
    }

    /// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob] (server.c
    /// commandListCommand): every command and subcommand name, optionally filtered. Tally has
    /// no modules, so a MODULE filter lists nothing; an unknown category lists nothing.
    static func list(_ context: inout CommandContext) {
        let arguments = context.arguments
        enum Filter { case none, module, category([UInt8]), pattern(ArraySlice<UInt8>) }
        var filter = Filter.none
        var index = 2
        while index < arguments.count {
            guard arguments.matches(index, "filterby") && arguments.count - 1 - index == 2 else {
                return context.output.writeError(RedisError.syntax)
            }
            if arguments.matches(index + 1, "module") {
                filter = .module
            } else if arguments.matches(index + 1, "aclcat") {
                let name = String(decoding: arguments[index + 2], as: UTF8.self).lowercased()
                filter = .category(Array(("@" + name).utf8))
            } else if arguments.matches(index + 1, "pattern") {
                filter = .pattern(arguments[index + 2])
            } else {
                return context.output.writeError(RedisError.syntax)
            }
            index += 3
        }
        var names: [String] = []
        for row in context.engine.table.rows {
            for spec in [row] + row.subcommands {
                switch filter {
                case .none: names.append(spec.name)
                case .module: break
                case .category(let category):
                    if spec.categories.contains(where: { Array($0.utf8) == category }) { names.append(spec.name) }
                case .pattern(let pattern):
                    if globMatches(pattern, spec.name.utf8, caseInsensitive: true) { names.append(spec.name) }
                }
            }
        }
        context.output.writeArrayHeader(names.count)
        for name in names { context.output.writeBulkString(name.utf8) }
    }

    static let increxSummary = "Increments the numeric value of a key within optional bounds and sets its "
        + "expiration time (Redis 8.8's INCREX: the one command Tally adds beyond Redis 7.0; logged to the AOF "
        + "as SET so Redis 7.0 can replay it)."

    /// The documentation group Redis files a command under, from its ACL categories.
    static func group(of spec: CommandSpec) -> String {
        let categories = Set(spec.categories)
        if categories.contains("@string") { return "string" }
        if categories.contains("@hash") { return "hash" }
        if categories.contains("@bitmap") { return "bitmap" }
        if categories.contains("@hyperloglog") { return "hyperloglog" }
        if categories.contains("@list") { return "list" }
        if categories.contains("@transaction") { return "transactions" }
        if categories.contains("@keyspace") { return "generic" }
        if categories.contains("@connection") { return "connection" }
        return "server"
    }

    /// Flag names in the order Redis prints them (server.c `addReplyCommandFlags`).
    static let flagNames: [(CommandFlags, String)] = [
        (.write, "write"), (.readonly, "readonly"), (.denyOOM, "denyoom"), (.admin, "admin"),
        (.noScript, "noscript"), (.blocking, "blocking"), (.loading, "loading"), (.stale, "stale"),
        (.skipMonitor, "skip_monitor"), (.skipSlowlog, "skip_slowlog"), (.fast, "fast"), (.noAuth, "no_auth"),
        (.noMandatoryKeys, "no_mandatory_keys"), (.noAsyncLoading, "no_async_loading"),
        (.noMulti, "no_multi"), (.movableKeys, "movablekeys"), (.allowBusy, "allow_busy"),
    ]

    /// One COMMAND INFO entry: name, arity, flags, first/last/step, categories, tips, key
    /// specs (one range spec derived from the key positions), subcommands.
    static func writeInfo(_ spec: CommandSpec, into output: inout OutputBuffer) {
        output.writeArrayHeader(10)
        output.writeBulkString(spec.name.utf8)
        output.writeInteger(spec.arity)
        let flags = flagNames.filter { spec.flags.contains($0.0) }
        output.writeSetHeader(flags.count)
        for (_, name) in flags { output.writeSimpleString(name.utf8) }
        output.writeInteger(spec.firstKey)
        output.writeInteger(spec.lastKey)
        output.writeInteger(spec.step)
        output.writeSetHeader(spec.categories.count)
        for category in spec.categories { output.writeSimpleString(category.utf8) }
        output.writeArrayHeader(0)
        if spec.firstKey > 0 {
            output.writeArrayHeader(1)
            output.writeMapHeader(3)
            output.writeBulkString("flags".utf8)
            output.writeSetHeader(2)
            if spec.flags.contains(.write) {
                output.writeSimpleString("RW".utf8)
                output.writeSimpleString("update".utf8)
            } else {
                output.writeSimpleString("RO".utf8)
                output.writeSimpleString("access".utf8)
            }
            output.writeBulkString("begin_search".utf8)
            output.writeMapHeader(2)
            output.writeBulkString("type".utf8)
            output.writeBulkString("index".utf8)
            output.writeBulkString("spec".utf8)
            output.writeMapHeader(1)
            output.writeBulkString("index".utf8)
            output.writeInteger(spec.firstKey)
            output.writeBulkString("find_keys".utf8)
            output.writeMapHeader(2)
            output.writeBulkString("type".utf8)
            output.writeBulkString("range".utf8)
            output.writeBulkString("spec".utf8)
            output.writeMapHeader(3)
            output.writeBulkString("lastkey".utf8)
            output.writeInteger(spec.lastKey < 0 ? spec.lastKey : spec.lastKey - spec.firstKey)
            output.writeBulkString("keystep".utf8)
            output.writeInteger(spec.step)
            output.writeBulkString("limit".utf8)
            output.writeInteger(0)
        } else {
            output.writeArrayHeader(0)
        }
        output.writeArrayHeader(spec.subcommands.count)
        for sub in spec.subcommands { writeInfo(sub, into: &output) }
    }
}
