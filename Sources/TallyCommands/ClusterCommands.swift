// ClusterCommands: CLUSTER, READONLY, READWRITE and ASKING on a server without cluster support.

/// Tally runs as a standalone server, which is what redis-server is with `cluster-enabled no`:
/// every CLUSTER subcommand and the three cluster connection commands answer Redis's
/// "cluster support disabled" error (cluster.c clusterCommand, readonlyCommand, readwriteCommand,
/// askingCommand check `server.cluster_enabled` first). The rows exist so that clients probing
/// for cluster mode (`CLUSTER INFO`, `READONLY`) get that answer and not "unknown command", and
/// so that COMMAND INFO/LIST/DOCS and the script sandbox's `noscript` check describe them as
/// Redis does (an unknown subcommand and a wrong arity are refused by dispatch, as there).
enum ClusterCommands {
    static let disabled: StaticString = "ERR This instance has cluster support disabled"

    static var specs: [CommandSpec] {
        let admin: CommandFlags = [.admin, .stale, .noAsyncLoading]
        let adminCategories = ["@admin", "@slow", "@dangerous"]
        func sub(_ name: String, _ arity: Int, _ flags: CommandFlags, _ categories: [String]) -> CommandSpec {
            CommandSpec(name: "cluster|" + name, arity: arity, flags: flags, categories: categories) { _ in }
        }
        return [
            CommandSpec(
                name: "cluster", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    sub("addslots", -3, admin, adminCategories),
                    sub("addslotsrange", -4, admin, adminCategories),
                    sub("bumpepoch", 2, admin, adminCategories),
                    sub("count-failure-reports", 3, [.admin, .stale], adminCategories),
                    sub("countkeysinslot", 3, [.stale], ["@slow"]),
                    sub("delslots", -3, admin, adminCategories),
                    sub("delslotsrange", -4, admin, adminCategories),
                    sub("failover", -2, admin, adminCategories),
                    sub("flushslots", 2, admin, adminCategories),
                    sub("forget", 3, admin, adminCategories),
                    sub("getkeysinslot", 4, [.stale], ["@slow"]),
                    sub("help", 2, [.loading, .stale], ["@slow"]),
                    sub("info", 2, [.stale], ["@slow"]),
                    sub("keyslot", 3, [.stale], ["@slow"]),
                    sub("links", 2, [.stale], ["@slow"]),
                    sub("meet", -4, admin, adminCategories),
                    sub("myid", 2, [.stale], ["@slow"]),
                    sub("nodes", 2, [.stale], ["@slow"]),
                    sub("replicas", 3, [.admin, .stale], adminCategories),
                    sub("replicate", 3, admin, adminCategories),
                    sub("reset", -2, [.admin, .noScript, .stale], adminCategories),
                    sub("saveconfig", 2, admin, adminCategories),
                    sub("set-config-epoch", 3, admin, adminCategories),
                    sub("setslot", -4, admin, adminCategories),
                    sub("shards", 2, [.stale], ["@slow"]),
                    sub("slaves", 3, [.admin, .stale], adminCategories),
                    sub("slots", 2, [.stale], ["@slow"]),
                ],
                handler: refuse),
            CommandSpec(name: "readonly", arity: 1, flags: [.loading, .stale, .fast],
                        categories: ["@fast", "@connection"], handler: refuse),
            CommandSpec(name: "readwrite", arity: 1, flags: [.loading, .stale, .fast],
                        categories: ["@fast", "@connection"], handler: refuse),
            CommandSpec(name: "asking", arity: 1, flags: [.fast], categories: ["@fast", "@connection"],
                        handler: refuse),
        ]
    }

    static func refuse(_ context: inout CommandContext) {
        context.output.writeError(disabled)
    }
}
