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
                    CommandSpec(name: "command|getkeys", arity: -4, flags: subcommandFlags,
                                categories: ["@slow", "@connection"]) { _ in },
                    CommandSpec(name: "command|getkeysandflags", arity: -4, flags: subcommandFlags,
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
        } else if arguments.matches(1, "getkeys") || arguments.matches(1, "getkeysandflags") {
            getKeys(&context, withFlags: arguments.matches(1, "getkeysandflags"))
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

    /// COMMAND GETKEYS|GETKEYSANDFLAGS command [arg ...] (server.c getKeysSubcommandImpl): the
    /// keys the request would touch, checked as Redis checks them. The flags are the key-spec
    /// flags COMMAND INFO reports for the row (SORT's are Redis's own: RO access, OW update).
    static func getKeys(_ context: inout CommandContext, withFlags: Bool) {
        let table = context.engine.table
        let request = (2..<context.arguments.count).map { context.arguments[$0] }
        guard let row = table.lookup(request[0]) else {
            return context.output.writeError("ERR Invalid command specified")
        }
        var spec = table.rows[row]
        if !spec.subcommands.isEmpty && request.count >= 2 {
            guard let sub = table.subcommand(of: row, named: request[1]) else {
                return context.output.writeError("ERR Invalid command specified")
            }
            spec = spec.subcommands[sub]
        }
        guard CommandKeys.hasKeys(spec) else {
            return context.output.writeError("ERR The command has no key arguments")
        }
        guard CommandTable.arityAccepts(spec.arity, request.count) else {
            return context.output.writeError("ERR Invalid number of arguments specified for command")
        }
        guard let positions = CommandKeys.positions(spec, request) else {
            if CommandKeys.noMandatoryKeys.contains(spec.name) { return context.output.writeArrayHeader(0) }
            return context.output.writeError("ERR Invalid arguments specified for command")
        }
        context.output.writeArrayHeader(positions.count)
        for (order, position) in positions.enumerated() {
            guard withFlags else {
                context.output.writeBulkString(request[position])
                continue
            }
            context.output.writeArrayHeader(2)
            context.output.writeBulkString(request[position])
            let flags: [String]
            if spec.name == "sort" {
                flags = order == 0 ? ["RO", "access"] : ["OW", "update"]
            } else {
                flags = spec.flags.contains(.write) ? ["RW", "update"] : ["RO", "access"]
            }
            context.output.writeSetHeader(flags.count)
            for flag in flags { context.output.writeSimpleString(flag.utf8) }
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

    /// One explicit key spec, in the shape of the derived one below.
    static func writeKeySpec(_ keySpec: KeySpec, into output: inout OutputBuffer) {
        output.writeMapHeader(3)
        output.writeBulkString("flags".utf8)
        output.writeSetHeader(keySpec.flags.count)
        for flag in keySpec.flags { output.writeSimpleString(flag.utf8) }
        output.writeBulkString("begin_search".utf8)
        output.writeMapHeader(2)
        output.writeBulkString("type".utf8)
        switch keySpec.begin {
        case .index(let index):
            output.writeBulkString("index".utf8)
            output.writeBulkString("spec".utf8)
            output.writeMapHeader(1)
            output.writeBulkString("index".utf8)
            output.writeInteger(index)
        case .keyword(let keyword, let startFrom):
            output.writeBulkString("keyword".utf8)
            output.writeBulkString("spec".utf8)
            output.writeMapHeader(2)
            output.writeBulkString("keyword".utf8)
            output.writeBulkString(keyword.utf8)
            output.writeBulkString("startfrom".utf8)
            output.writeInteger(startFrom)
        }
        output.writeBulkString("find_keys".utf8)
        output.writeMapHeader(2)
        output.writeBulkString("type".utf8)
        output.writeBulkString("range".utf8)
        output.writeBulkString("spec".utf8)
        output.writeMapHeader(3)
        output.writeBulkString("lastkey".utf8)
        output.writeInteger(keySpec.lastKey)
        output.writeBulkString("keystep".utf8)
        output.writeInteger(keySpec.keyStep)
        output.writeBulkString("limit".utf8)
        output.writeInteger(keySpec.limit)
    }

    /// The documentation group Redis files a command under, from its ACL categories.
    static func group(of spec: CommandSpec) -> String {
        let categories = Set(spec.categories)
        if categories.contains("@string") { return "string" }
        if categories.contains("@hash") { return "hash" }
        if categories.contains("@bitmap") { return "bitmap" }
        if categories.contains("@hyperloglog") { return "hyperloglog" }
        if categories.contains("@list") { return "list" }
        if categories.contains("@geo") { return "geo" }
        if categories.contains("@set") { return "set" }
        if categories.contains("@stream") { return "stream" }
        if categories.contains("@transaction") { return "transactions" }
        if categories.contains("@keyspace") { return "generic" }
        if categories.contains("@connection") { return "connection" }
        return "server"
    }

    /// Flag names in the order Redis prints them (server.c `addReplyCommandFlags`).
    static let flagNames: [(CommandFlags, String)] = [
        (.write, "write"), (.readonly, "readonly"), (.denyOOM, "denyoom"), (.admin, "admin"), (.pubsub, "pubsub"),
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
        output.writeSetHeader(0)  // tips: a set in RESP3, as server.c writes it
        if !spec.keySpecs.isEmpty {
            output.writeSetHeader(spec.keySpecs.count)
            for keySpec in spec.keySpecs { writeKeySpec(keySpec, into: &output) }
        } else if spec.firstKey > 0 {
            output.writeSetHeader(1)
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
            output.writeSetHeader(0)
        }
        // No subcommands: an empty set; otherwise an array (addReplyCommandSubCommands).
        if spec.subcommands.isEmpty {
            output.writeSetHeader(0)
        } else {
            output.writeArrayHeader(spec.subcommands.count)
        }
        for sub in spec.subcommands { writeInfo(sub, into: &output) }
    }
}
