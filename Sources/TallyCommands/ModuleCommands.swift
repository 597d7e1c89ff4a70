// ModuleCommands: MODULE LIST|LOAD|LOADEX|UNLOAD|HELP for a server that loads no Redis modules.

/// Tally cannot load Redis modules (they are shared objects written against redis-server's
/// internals), so it answers MODULE as a redis-server with none loaded whose every load fails
/// (module.c moduleCommand): LIST is empty, LOAD/LOADEX reply "Error loading the extension" and
/// log why, UNLOAD finds no such module. LOAD, LOADEX and UNLOAD are protected commands
/// (`enable-module-command`, default `no`): dispatch refuses them first, as processCommand does.
/// Clients such as object mappers send `MODULE LIST` to detect RedisJSON/RediSearch.
enum ModuleCommands {
    static var specs: [CommandSpec] {
        let load: CommandFlags = [.admin, .noScript, .noAsyncLoading, .protected]
        let categories = ["@admin", "@slow", "@dangerous"]
        return [
            CommandSpec(
                name: "module", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    CommandSpec(name: "module|help", arity: 2, flags: [.loading, .stale],
                                categories: ["@slow"]) { _ in },
                    CommandSpec(name: "module|list", arity: 2, flags: [.admin, .noScript],
                                categories: categories) { _ in },
                    CommandSpec(name: "module|load", arity: -3, flags: load, categories: categories) { _ in },
                    CommandSpec(name: "module|loadex", arity: -3, flags: load, categories: categories) { _ in },
                    CommandSpec(name: "module|unload", arity: 3, flags: load, categories: categories) { _ in },
                ],
                handler: module),
        ]
    }

    static func module(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "help") {
            context.writeHelp("MODULE", [
                "LIST",
                "    Return a list of loaded modules.",
                "LOAD <path> [<arg> ...]",
                "    Load a module library from <path>, passing to it any optional arguments.",
                "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
                "    Load a module library from <path>, while passing it module configurations and optional arguments.",
                "UNLOAD <name>",
                "    Unload a module.",
            ])
        } else if arguments.matches(1, "list") {
            context.output.writeArrayHeader(0)
        } else if arguments.matches(1, "load") || arguments.matches(1, "loadex") {
            let path = String(decoding: arguments[2], as: UTF8.self)
            ServerLogHook.write(level: ServerLogHook.warning,
                                "Module \(path) failed to load: Tally does not load Redis modules")
            context.output.writeError("ERR Error loading the extension. Please check the server logs.")
        } else {
            context.output.writeError("ERR Error unloading module: no such module with that name")
        }
    }
}
