// ObjectCommands: OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP and MEMORY USAGE|HELP, described for Tally's layout.
import TallyKeyspace
import TallyProtocol

/// Introspection of one key's value. The figures describe Tally's own representation, not a
/// simulation of Redis's: where Tally keeps nothing to report (an access time under a policy
/// that does not record one), the reply says so instead of inventing a number.
enum ObjectCommands {
    static var specs: [CommandSpec] {
        let keyFlags: CommandFlags = [.readonly]
        return [
            CommandSpec(
                name: "object", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    CommandSpec(name: "object|encoding", arity: 3, flags: keyFlags, firstKey: 2, lastKey: 2, step: 1,
                                categories: ["@keyspace", "@read", "@slow"]) { _ in },
                    CommandSpec(name: "object|freq", arity: 3, flags: keyFlags, firstKey: 2, lastKey: 2, step: 1,
                                categories: ["@keyspace", "@read", "@slow"]) { _ in },
                    CommandSpec(name: "object|idletime", arity: 3, flags: keyFlags, firstKey: 2, lastKey: 2, step: 1,
                                categories: ["@keyspace", "@read", "@slow"]) { _ in },
                    CommandSpec(name: "object|help", arity: 2, flags: [.loading, .stale],
                                categories: ["@keyspace", "@slow"]) { _ in },
                    CommandSpec(name: "object|refcount", arity: 3, flags: keyFlags, firstKey: 2, lastKey: 2, step: 1,
                                categories: ["@keyspace", "@read", "@slow"]) { _ in },
                ],
                handler: object),
            CommandSpec(
                name: "memory", arity: -2, flags: [], categories: ["@slow"],
                subcommands: [
                    CommandSpec(name: "memory|help", arity: 2, flags: [.loading, .stale],
                                categories: ["@slow"]) { _ in },
                    CommandSpec(name: "memory|stats", arity: 2, flags: [], categories: ["@slow"]) { _ in },
                    CommandSpec(name: "memory|doctor", arity: 2, flags: [], categories: ["@slow"]) { _ in },
                    CommandSpec(name: "memory|usage", arity: -3, flags: keyFlags, firstKey: 2, lastKey: 2, step: 1,
                                categories: ["@read", "@slow"]) { _ in },
                    CommandSpec(name: "memory|malloc-stats", arity: 2, flags: [], categories: ["@slow"]) { _ in },
                    CommandSpec(name: "memory|purge", arity: 2, flags: [], categories: ["@slow"]) { _ in },
                ],
                handler: memory),
        ]
    }

    static let lfuSelected: StaticString = """
        ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching \
        between policies at runtime LRU and LFU data will take some time to adjust.
        """
    static let lfuNotSelected: StaticString = """
        ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
        switching between policies at runtime LRU and LFU data will take some time to adjust.
        """

    /// OBJECT subcommand key (dispatch has checked the subcommand and its arity).
    ///
    /// - ENCODING: `int` for a value stored as an unboxed Int64 (Redis's int encoding: no
    ///   buffer at all), `raw` for other strings (one heap buffer owned by the entry), and
    ///   `hashtable` for hashes (Tally has one hash layout: field and value arrays with a hash
    ///   index; it keeps insertion order like a listpack but is not packed).
    /// - REFCOUNT: 1. Tally never shares a value between keys (Redis's shared integers report
    ///   INT_MAX); an unboxed integer has no object to count, so it is 1 as well.
    /// - IDLETIME: seconds since the last read or write, kept only under an LRU policy.
    /// - FREQ: the LFU counter after decay, kept only under an LFU policy.
    static func object(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "help") {
            context.writeHelp("OBJECT", [
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
            ])
            return
        }
        let key = context.key(2)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookupWithoutTouching(context.database, key, now: context.now) else {
                context.output.writeNull()
                return
            }
            if arguments.matches(1, "encoding") {
                switch entry.value {
                case .integer: context.output.writeBulkString("int".utf8)
                case .string: context.output.writeBulkString("raw".utf8)
                case .hash(let hash): context.output.writeBulkString((hash.isListpack ? "listpack" : "hashtable").utf8)
                case .list: context.output.writeBulkString("quicklist".utf8)
                case .set(let set): context.output.writeBulkString(set.encodingName.utf8)
                case .sortedSet(let set): context.output.writeBulkString((set.isCompact ? "listpack" : "skiplist").utf8)
                case .stream: context.output.writeBulkString("stream".utf8)
                }
            } else if arguments.matches(1, "refcount") {
                context.output.writeInteger(1)
            } else if arguments.matches(1, "idletime") {
                // The LRU clock is kept under every policy but the LFU ones, as in Redis.
                guard let idle = shard.idleSeconds(of: entry, now: context.now) else {
                    context.output.writeError(lfuSelected)
                    return
                }
                context.output.writeInteger(idle)
            } else {
                guard let frequency = shard.accessFrequency(of: entry, now: context.now) else {
                    context.output.writeError(lfuNotSelected)
                    return
                }
                context.output.writeInteger(frequency)
            }
        }
    }

    /// MEMORY USAGE key [SAMPLES count] and MEMORY HELP.
    ///
    /// USAGE is Tally's running estimate for the entry (`MemoryEstimate.bytes(key:value:)`):
    /// the table slot (key inline up to 22 bytes, value and expiry), a long key's heap buffer,
    /// and the value's heap buffers (none for an unboxed integer). It is the same figure that
    /// `maxmemory` and INFO's `used_memory_dataset` add up; every field counts, so SAMPLES is
    /// parsed as Redis does but has no effect. Like Redis it looks the key up without expiring
    /// it.
    static func memory(_ context: inout CommandContext) {
        let arguments = context.arguments
        if arguments.matches(1, "stats") { return MemoryReport.stats(&context) }
        if arguments.matches(1, "doctor") { return MemoryReport.doctor(&context) }
        if arguments.matches(1, "malloc-stats") { return MemoryReport.allocatorStatistics(&context) }
        if arguments.matches(1, "purge") { return MemoryReport.purge(&context) }
        if arguments.matches(1, "help") {
            context.writeHelp("MEMORY", [
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value (Tally's estimate; SAMPLES is",
                "    accepted and ignored: every field is counted).",
            ])
            return
        }
        var index = 3
        while index < arguments.count {
            guard arguments.matches(index, "samples") && index + 1 < arguments.count else {
                context.output.writeError(RedisError.syntax)
                return
            }
            guard let samples = context.integerArgument(index + 1) else { return }
            if samples < 0 {
                context.output.writeError(RedisError.syntax)
                return
            }
            index += 2
        }
        let key = context.key(2)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.tables[context.database][key] else {
                context.output.writeNull()
                return
            }
            context.output.writeInteger(MemoryEstimate.bytes(key: key, value: entry.value))
        }
    }

}
