// IntrospectionCommands: COMMAND, COMMAND COUNT / INFO / LIST / DOCS / GETKEYS / HELP, generated from the table.
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
                    CommandSpec(name: "command|help", arity: 2, flags: subcommandFlags,
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
                if let spec = spec(named: arguments[index], in: table) {
                    writeInfo(spec, into: &context.output)
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
        } else if arguments.matches(1, "help") {
            context.writeHelp("COMMAND", helpLines)
        } else {
            writeUnknownSubcommandError(arguments, parent: "command", into: &context.output)
        }
    }

    /// COMMAND GETKEYS|GETKEYSANDFLAGS command [arg ...] (server.c getKeysSubcommandImpl): the
    /// keys the request would touch, checked as Redis checks them, with the flags of the key
    /// spec that found each (`keysWithFlags`).
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
        // Only names that are not keys (SPUBLISH's shard channel): no key arguments, as in Redis.
        let onlyNotKeys = !spec.keySpecs.isEmpty && spec.keySpecs.allSatisfy { $0.flags.contains(.notKey) }
        guard CommandKeys.hasKeys(spec) && !onlyNotKeys else {
            return context.output.writeError("ERR The command has no key arguments")
        }
        guard CommandTable.arityAccepts(spec.arity, request.count) else {
            return context.output.writeError("ERR Invalid number of arguments specified for command")
        }
        guard let positions = CommandKeys.positions(spec, request) else {
            if CommandKeys.noMandatoryKeys.contains(spec.name) { return context.output.writeArrayHeader(0) }
            return context.output.writeError("ERR Invalid arguments specified for command")
        }
        let keys = keysWithFlags(spec, request, positions: positions)
        context.output.writeArrayHeader(keys.count)
        for (position, flags) in keys {
            guard withFlags else {
                context.output.writeBulkString(request[position])
                continue
            }
            context.output.writeArrayHeader(2)
            context.output.writeBulkString(request[position])
            let names = flags.names
            context.output.writeSetHeader(names.count)
            for name in names { context.output.writeSimpleString(name.utf8) }
        }
    }

    /// A command row, or with "container|subcommand" a subcommand row (server.c
    /// lookupCommandBySds): COMMAND INFO CLIENT|GETNAME answers the subcommand's entry.
    static func spec(named name: ArraySlice<UInt8>, in table: CommandTable) -> CommandSpec? {
        guard let bar = name.firstIndex(of: UInt8(ascii: "|")) else {
            return table.lookup(name).map { table.rows[$0] }
        }
        let subName = name[(bar + 1)...]
        guard !subName.contains(UInt8(ascii: "|")), let row = table.lookup(name[..<bar]),
              let sub = table.subcommand(of: row, named: subName) else { return nil }
        return table.rows[row].subcommands[sub]
    }

    /// The keys of a request with the flags GETKEYSANDFLAGS reports (db.c
    /// getKeysFromCommandWithSpecs): the declared key specs find them when they can and their
    /// flags do not depend on the arguments; otherwise `positions` with the flags the command's
    /// own key finder gives (SET and BITFIELD look at their options, SORT reads then stores,
    /// SORT_RO reads, the numkeys commands give none).
    static func keysWithFlags(
        _ spec: CommandSpec, _ request: [ArraySlice<UInt8>], positions: [Int]
    ) -> [(Int, KeySpecFlags)] {
        let hasKeys = spec.keySpecs.contains { !$0.flags.contains(.notKey) }
        let variable = spec.keySpecs.contains { $0.flags.contains(.variableFlags) }
        if hasKeys && !variable, let found = keysFromSpecs(spec, request) { return found }
        switch spec.name {
        case "set":
            let get = request.indices.dropFirst(3).contains { CommandKeys.matches(request[$0], "get") }
            return positions.map { ($0, get ? [.rw, .access, .update] : [.ow, .update]) }
        case "bitfield":
            let flags: KeySpecFlags = bitfieldReadsOnly(request) ? [.ro, .access] : [.rw, .access, .update]
            return positions.map { ($0, flags) }
        case "sort":
            return positions.enumerated().map { ($1, $0 == 0 ? [.ro, .access] : [.ow, .update]) }
        case "sort_ro":
            return positions.map { ($0, [.ro, .access]) }
        case "migrate":
            return positions.map { ($0, [.rw, .access, .delete]) }
        default:
            return positions.map { ($0, []) }
        }
    }

    /// db.c bitfieldGetKeys: read only while every operation is a whole GET or OVERFLOW; a SET,
    /// an INCRBY or anything malformed counts as a write.
    static func bitfieldReadsOnly(_ request: [ArraySlice<UInt8>]) -> Bool {
        var index = 2
        while index < request.count {
            let remaining = request.count - index - 1
            if CommandKeys.matches(request[index], "get") && remaining >= 2 {
                index += 3
            } else if CommandKeys.matches(request[index], "overflow") && remaining >= 1 {
                index += 2
            } else {
                return false
            }
        }
        return true
    }

    /// db.c getKeysUsingKeySpecs: every key spec's keys in order with its flags, or nil when a
    /// spec cannot be followed (unknown, incomplete, a bad key count, keys out of range).
    static func keysFromSpecs(_ spec: CommandSpec, _ request: [ArraySlice<UInt8>]) -> [(Int, KeySpecFlags)]? {
        let count = request.count
        var keys: [(Int, KeySpecFlags)] = []
        for keySpec in spec.keySpecs where !keySpec.flags.contains(.notKey) {
            var first: Int
            switch keySpec.begin {
            case .index(let index):
                first = index
            case .keyword(let keyword, let startFrom):
                // Forward up to the next-to-last argument, or backward down to argument 2.
                let forward = startFrom > 0
                let start = forward ? startFrom : count + startFrom
                let found = forward ? (start < count - 1 ? Array(start..<(count - 1)) : [])
                                    : (start >= 2 && start < count ? Array((2...start).reversed()) : [])
                let word = keyword.lowercased()
                guard let at = found.first(where: { CommandKeys.matches(request[$0], word) }) else { continue }
                first = at + 1
            case .unknown:
                return nil
            }
            let last: Int
            let step: Int
            switch keySpec.find {
            case .range(let lastKey, let keyStep, let limit):
                step = keyStep
                if lastKey >= 0 {
                    last = first + lastKey
                } else if limit == 0 {
                    last = count + lastKey
                } else {
                    last = first + (count - first) / limit + lastKey
                }
            case .keynum(let index, let firstKey, let keyStep):
                step = keyStep
                guard first + index < count, let number = parseRedisInteger(request[first + index]), number >= 0
                else { return nil }
                first += firstKey
                last = first + Int(number) - 1
            case .unknown:
                return nil
            }
            guard last < count, last >= first, first < count else { return nil }
            for position in stride(from: first, through: last, by: max(1, step)) {
                keys.append((position, keySpec.flags))
            }
            if keySpec.flags.contains(.incomplete) { return nil }
        }
        return keys
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

    /// COMMAND HELP's subcommand lines (server.c commandHelpCommand's reply).
    static let helpLines = [
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys and the access flags from a full Redis command.",
    ]

    static let increxSummary = "Increments the numeric value of a key within optional bounds and sets its "
        + "expiration time (Redis 8.8's INCREX: the one command Tally adds beyond Redis 7.0; logged to the AOF "
        + "as SET so Redis 7.0 can replay it)."

    /// One key spec map (server.c addReplyCommandKeySpecs, less the notes).
    static func writeKeySpec(_ keySpec: KeySpec, into output: inout OutputBuffer) {
        output.writeMapHeader(3)
        output.writeBulkString("flags".utf8)
        let names = keySpec.flags.names
        output.writeSetHeader(names.count)
        for name in names { output.writeSimpleString(name.utf8) }
        output.writeBulkString("begin_search".utf8)
        output.writeMapHeader(2)
        output.writeBulkString("type".utf8)
        switch keySpec.begin {
        case .index(let index):
            output.writeBulkString("index".utf8)
            writeSpecMap([("index", index)], into: &output)
        case .keyword(let keyword, let startFrom):
            output.writeBulkString("keyword".utf8)
            output.writeBulkString("spec".utf8)
            output.writeMapHeader(2)
            output.writeBulkString("keyword".utf8)
            output.writeBulkString(keyword.utf8)
            output.writeBulkString("startfrom".utf8)
            output.writeInteger(startFrom)
        case .unknown:
            output.writeBulkString("unknown".utf8)
            writeSpecMap([], into: &output)
        }
        output.writeBulkString("find_keys".utf8)
        output.writeMapHeader(2)
        output.writeBulkString("type".utf8)
        switch keySpec.find {
        case .range(let lastKey, let keyStep, let limit):
            output.writeBulkString("range".utf8)
            writeSpecMap([("lastkey", lastKey), ("keystep", keyStep), ("limit", limit)], into: &output)
        case .keynum(let index, let firstKey, let keyStep):
            output.writeBulkString("keynum".utf8)
            writeSpecMap([("keynumidx", index), ("firstkey", firstKey), ("keystep", keyStep)], into: &output)
        case .unknown:
            output.writeBulkString("unknown".utf8)
            writeSpecMap([], into: &output)
        }
    }

    /// "spec" and a map of integer fields.
    static func writeSpecMap(_ fields: [(String, Int)], into output: inout OutputBuffer) {
        output.writeBulkString("spec".utf8)
        output.writeMapHeader(fields.count)
        for (name, value) in fields {
            output.writeBulkString(name.utf8)
            output.writeInteger(value)
        }
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
    /// specs, subcommands.
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
        output.writeSetHeader(spec.tips.count)  // a set in RESP3, as server.c writes it
        for tip in spec.tips { output.writeBulkString(tip.utf8) }
        var keySpecs = spec.keySpecs
        if keySpecs.isEmpty && spec.firstKey > 0 {
            // A row Redis declares nothing for (Tally's own INCREX): one range over its key positions.
            let lastKey = spec.lastKey < 0 ? spec.lastKey : spec.lastKey - spec.firstKey
            let flags: KeySpecFlags = spec.flags.contains(.write) ? [.rw, .update] : [.ro, .access]
            keySpecs = [KeySpec(flags, .index(spec.firstKey), .range(lastKey, step: spec.step))]
        }
        output.writeSetHeader(keySpecs.count)
        for keySpec in keySpecs { writeKeySpec(keySpec, into: &output) }
        // No subcommands: an empty set; otherwise an array (addReplyCommandSubCommands).
        if spec.subcommands.isEmpty {
            output.writeSetHeader(0)
        } else {
            output.writeArrayHeader(spec.subcommands.count)
        }
        for sub in spec.subcommands { writeInfo(sub, into: &output) }
    }
}
