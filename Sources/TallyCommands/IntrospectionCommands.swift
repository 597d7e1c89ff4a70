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
            var names: [String] = []
            for row in table.rows {
                names.append(row.name)
                for sub in row.subcommands { names.append(sub.name) }
            }
            context.output.writeArrayHeader(names.count)
            for name in names { context.output.writeBulkString(name.utf8) }
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
                context.output.writeMapHeader(1)
                context.output.writeBulkString("group".utf8)
                context.output.writeBulkString(group(of: row).utf8)
            }
        } else {
            writeUnknownSubcommandError(arguments, parent: "command", into: &context.output)
        }
    }

    /// The documentation group Redis files a command under, from its ACL categories.
    static func group(of spec: CommandSpec) -> String {
        let categories = Set(spec.categories)
        if categories.contains("@string") { return "string" }
        if categories.contains("@hash") { return "hash" }
        if categories.contains("@transaction") { return "transactions" }
        if categories.contains("@keyspace") { return "generic" }
        if categories.contains("@connection") { return "connection" }
        return "server"
    }

    /// Flag names in the order Redis prints them (server.c `addReplyCommandFlags`).
    static let flagNames: [(CommandFlags, String)] = [
        (.write, "write"), (.readonly, "readonly"), (.denyOOM, "denyoom"), (.admin, "admin"),
        (.noScript, "noscript"), (.loading, "loading"), (.stale, "stale"), (.skipSlowlog, "skip_slowlog"),
        (.fast, "fast"), (.noAuth, "no_auth"), (.noAsyncLoading, "no_async_loading"), (.noMulti, "no_multi"),
        (.allowBusy, "allow_busy"),
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
