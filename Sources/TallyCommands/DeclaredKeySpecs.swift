// DeclaredKeySpecs: the key specs and command tips Redis 7.0 declares for each of its commands.
//
// COMMAND INFO reports, per command, how its keys are found (key specs) and how a cluster client
// should route and merge it (tips). Cluster clients and key-extraction libraries read them, so they
// must be Redis's own, not derived from the first/last/step columns: BITOP writes its first key
// and reads the others, DEL removes, EXISTS reads no value, EVAL's keys follow a count. The facts
// are those of redis-server 7.0.15 (COMMAND INFO, src/commands/*.json); the free-text `notes` of a
// few specs are left out on purpose (Tally does not copy Redis's prose), and
// conformance/differential/commandinfo.py checks every row against redis-server. The table covers
// every Redis 7.0 command, those Tally lacks too (MIGRATE, CLUSTER...), so one added later reports
// Redis's declarations without an edit here.

/// The declared key specs and tips, looked up by command name ("client|getname" for a subcommand).
enum DeclaredKeySpecs {
    /// What Redis declares for one command.
    struct Declared {
        var tips: [String] = []
        var keys: [KeySpec] = []
    }

    /// `row` and its subcommands with their declared key specs and tips filled in; a row that
    /// already names its own keeps them.
    static func apply(_ row: CommandSpec) -> CommandSpec {
        var row = row
        if let declared = declared(row.name) {
            if row.keySpecs.isEmpty { row.keySpecs = declared.keys }
            if row.tips.isEmpty { row.tips = declared.tips }
        }
        row.subcommands = row.subcommands.map(apply)
        return row
    }

    /// The declarations for `name`, or nil for a command Redis declares neither for.
    static func declared(_ name: String) -> Declared? {
        switch name {
        case "append": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "bitcount": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "bitfield": return Declared(keys: [KeySpec([.rw, .update, .access, .variableFlags], .index(1))])
        case "bitfield_ro": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "bitop": return Declared(
            keys: [KeySpec([.ow, .update], .index(2)), KeySpec([.ro, .access], .index(3), .range(-1))])
        case "bitpos": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "blmove": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.rw, .insert], .index(2))])
        case "blmpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(2), .keynum(0, first: 1))])
        case "blpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .range(-2))])
        case "brpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .range(-2))])
        case "brpoplpush": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.rw, .insert], .index(2))])
        case "bzmpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(2), .keynum(0, first: 1))])
        case "bzpopmax": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .range(-2))])
        case "bzpopmin": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .range(-2))])
        case "client|info": return Declared(tips: ["nondeterministic_output"])
        case "client|list": return Declared(tips: ["nondeterministic_output"])
        case "cluster|bumpepoch": return Declared(tips: ["nondeterministic_output"])
        case "cluster|count-failure-reports": return Declared(tips: ["nondeterministic_output"])
        case "cluster|getkeysinslot": return Declared(tips: ["nondeterministic_output"])
        case "cluster|info": return Declared(tips: ["nondeterministic_output"])
        case "cluster|links": return Declared(tips: ["nondeterministic_output"])
        case "cluster|nodes": return Declared(tips: ["nondeterministic_output"])
        case "cluster|replicas": return Declared(tips: ["nondeterministic_output"])
        case "cluster|shards": return Declared(tips: ["nondeterministic_output"])
        case "cluster|slaves": return Declared(tips: ["nondeterministic_output"])
        case "cluster|slots": return Declared(tips: ["nondeterministic_output"])
        case "command": return Declared(tips: ["nondeterministic_output_order"])
        case "command|docs": return Declared(tips: ["nondeterministic_output_order"])
        case "command|info": return Declared(tips: ["nondeterministic_output_order"])
        case "command|list": return Declared(tips: ["nondeterministic_output_order"])
        case "config|set": return Declared(tips: ["request_policy:all_nodes", "response_policy:all_succeeded"])
        case "copy": return Declared(keys: [KeySpec([.ro, .access], .index(1)), KeySpec([.ow, .update], .index(2))])
        case "dbsize": return Declared(tips: ["request_policy:all_shards", "response_policy:agg_sum"])
        case "decr": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "decrby": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "del": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:agg_sum"],
            keys: [
                KeySpec([.rm, .delete], .index(1), .range(-1)),
            ])
        case "dump": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "eval": return Declared(keys: [KeySpec([.rw, .access, .update], .index(2), .keynum(0, first: 1))])
        case "eval_ro": return Declared(keys: [KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        case "evalsha": return Declared(keys: [KeySpec([.rw, .access, .update], .index(2), .keynum(0, first: 1))])
        case "evalsha_ro": return Declared(keys: [KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        case "exists": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:agg_sum"],
            keys: [
                KeySpec([.ro], .index(1), .range(-1)),
            ])
        case "expire": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "expireat": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "expiretime": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "fcall": return Declared(keys: [KeySpec([.rw, .access, .update], .index(2), .keynum(0, first: 1))])
        case "fcall_ro": return Declared(keys: [KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        case "flushall": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "flushdb": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "function|delete": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "function|flush": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "function|kill": return Declared(tips: ["request_policy:all_shards", "response_policy:one_succeeded"])
        case "function|list": return Declared(tips: ["nondeterministic_output_order"])
        case "function|load": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "function|restore": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "function|stats": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        case "geoadd": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "geodist": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "geohash": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "geopos": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "georadius": return Declared(
            keys: [
                KeySpec([.ro, .access], .index(1)),
                KeySpec([.ow, .update], .keyword("STORE", startFrom: 6)),
                KeySpec([.ow, .update], .keyword("STOREDIST", startFrom: 6)),
            ])
        case "georadius_ro": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "georadiusbymember": return Declared(
            keys: [
                KeySpec([.ro, .access], .index(1)),
                KeySpec([.ow, .update], .keyword("STORE", startFrom: 5)),
                KeySpec([.ow, .update], .keyword("STOREDIST", startFrom: 5)),
            ])
        case "georadiusbymember_ro": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "geosearch": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "geosearchstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2))])
        case "get": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "getbit": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "getdel": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "getex": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "getrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "getset": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "hdel": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "hexists": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "hget": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "hgetall": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1))])
        case "hincrby": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "hincrbyfloat": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "hkeys": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1))])
        case "hlen": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "hmget": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "hmset": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "hrandfield": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "hscan": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "hset": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "hsetnx": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "hstrlen": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "hvals": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1))])
        case "incr": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "incrby": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "incrbyfloat": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "info": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        case "keys": return Declared(tips: ["request_policy:all_shards", "nondeterministic_output_order"])
        case "lastsave": return Declared(tips: ["nondeterministic_output"])
        case "latency|doctor": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"])
        case "latency|graph": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"])
        case "latency|histogram": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"])
        case "latency|history": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"])
        case "latency|latest": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"])
        case "latency|reset": return Declared(tips: ["request_policy:all_nodes", "response_policy:all_succeeded"])
        case "lcs": return Declared(keys: [KeySpec([.ro, .access], .index(1), .range(1))])
        case "lindex": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "linsert": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "llen": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "lmove": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.rw, .insert], .index(2))])
        case "lmpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .keynum(0, first: 1))])
        case "lpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "lpos": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "lpush": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "lpushx": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "lrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "lrem": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "lset": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "ltrim": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "memory|doctor": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        case "memory|malloc-stats": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        case "memory|purge": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "memory|stats": return Declared(
            tips: ["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
        case "memory|usage": return Declared(keys: [KeySpec([.ro], .index(2))])
        case "mget": return Declared(
            tips: ["request_policy:multi_shard"], keys: [KeySpec([.ro, .access], .index(1), .range(-1))])
        case "migrate": return Declared(
            tips: ["nondeterministic_output"],
            keys: [
                KeySpec([.rw, .access, .delete], .index(3)),
                KeySpec([.rw, .access, .delete, .incomplete], .keyword("KEYS", startFrom: -2), .range(-1)),
            ])
        case "module|list": return Declared(tips: ["nondeterministic_output_order"])
        case "move": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "mset": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:all_succeeded"],
            keys: [
                KeySpec([.ow, .update], .index(1), .range(-1, step: 2)),
            ])
        case "msetnx": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:agg_min"],
            keys: [
                KeySpec([.ow, .insert], .index(1), .range(-1, step: 2)),
            ])
        case "object|encoding": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro], .index(2))])
        case "object|freq": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro], .index(2))])
        case "object|idletime": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro], .index(2))])
        case "object|refcount": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro], .index(2))])
        case "persist": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "pexpire": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "pexpireat": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "pexpiretime": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "pfadd": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "pfcount": return Declared(keys: [KeySpec([.rw, .access], .index(1), .range(-1))])
        case "pfdebug": return Declared(keys: [KeySpec([.rw, .access], .index(2))])
        case "pfmerge": return Declared(
            keys: [KeySpec([.rw, .access, .insert], .index(1)), KeySpec([.ro, .access], .index(2), .range(-1))])
        case "ping": return Declared(tips: ["request_policy:all_shards", "response_policy:all_succeeded"])
        case "psetex": return Declared(keys: [KeySpec([.ow, .update], .index(1))])
        case "pttl": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "randomkey": return Declared(tips: ["request_policy:all_shards", "nondeterministic_output"])
        case "rename": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.ow, .update], .index(2))])
        case "renamenx": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.ow, .insert], .index(2))])
        case "restore": return Declared(keys: [KeySpec([.ow, .update], .index(1))])
        case "restore-asking": return Declared(keys: [KeySpec([.ow, .update], .index(1))])
        case "rpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "rpoplpush": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.rw, .insert], .index(2))])
        case "rpush": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "rpushx": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "sadd": return Declared(keys: [KeySpec([.rw, .insert], .index(1))])
        case "scan": return Declared(tips: ["nondeterministic_output", "request_policy:special"])
        case "scard": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "script|exists": return Declared(tips: ["request_policy:all_shards", "response_policy:agg_logical_and"])
        case "script|flush": return Declared(tips: ["request_policy:all_nodes", "response_policy:all_succeeded"])
        case "script|kill": return Declared(tips: ["request_policy:all_shards", "response_policy:one_succeeded"])
        case "script|load": return Declared(tips: ["request_policy:all_nodes", "response_policy:all_succeeded"])
        case "sdiff": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1), .range(-1))])
        case "sdiffstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2), .range(-1))])
        case "set": return Declared(keys: [KeySpec([.rw, .access, .update, .variableFlags], .index(1))])
        case "setbit": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "setex": return Declared(keys: [KeySpec([.ow, .update], .index(1))])
        case "setnx": return Declared(keys: [KeySpec([.ow, .insert], .index(1))])
        case "setrange": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "sinter": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1), .range(-1))])
        case "sintercard": return Declared(keys: [KeySpec([.ro, .access], .index(1), .keynum(0, first: 1))])
        case "sinterstore": return Declared(
            keys: [KeySpec([.rw, .update], .index(1)), KeySpec([.ro, .access], .index(2), .range(-1))])
        case "sismember": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "slowlog|get": return Declared(tips: ["request_policy:all_nodes", "nondeterministic_output"])
        case "slowlog|len": return Declared(
            tips: ["request_policy:all_nodes", "response_policy:agg_sum", "nondeterministic_output"])
        case "slowlog|reset": return Declared(tips: ["request_policy:all_nodes", "response_policy:all_succeeded"])
        case "smembers": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1))])
        case "smismember": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "smove": return Declared(
            keys: [KeySpec([.rw, .access, .delete], .index(1)), KeySpec([.rw, .insert], .index(2))])
        case "sort": return Declared(
            keys: [
                KeySpec([.ro, .access], .index(1)),
                KeySpec([.ro, .access], .unknown, .unknown),
                KeySpec([.ow, .update], .unknown, .unknown),
            ])
        case "sort_ro": return Declared(
            keys: [KeySpec([.ro, .access], .index(1)), KeySpec([.ro, .access], .unknown, .unknown)])
        case "spop": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "spublish": return Declared(keys: [KeySpec([.notKey], .index(1))])
        case "srandmember": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "srem": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "sscan": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "ssubscribe": return Declared(keys: [KeySpec([.notKey], .index(1), .range(-1))])
        case "strlen": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "substr": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "sunion": return Declared(
            tips: ["nondeterministic_output_order"], keys: [KeySpec([.ro, .access], .index(1), .range(-1))])
        case "sunionstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2), .range(-1))])
        case "sunsubscribe": return Declared(keys: [KeySpec([.notKey], .index(1), .range(-1))])
        case "time": return Declared(tips: ["nondeterministic_output"])
        case "touch": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:agg_sum"],
            keys: [
                KeySpec([.ro], .index(1), .range(-1)),
            ])
        case "ttl": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "type": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "unlink": return Declared(
            tips: ["request_policy:multi_shard", "response_policy:agg_sum"],
            keys: [
                KeySpec([.rm, .delete], .index(1), .range(-1)),
            ])
        case "wait": return Declared(tips: ["request_policy:all_shards", "response_policy:agg_min"])
        case "watch": return Declared(keys: [KeySpec([.ro], .index(1), .range(-1))])
        case "xack": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "xadd": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.rw, .update], .index(1))])
        case "xautoclaim": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.rw, .delete], .index(1))])
        case "xclaim": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.rw, .update], .index(1))])
        case "xdel": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "xgroup|create": return Declared(keys: [KeySpec([.rw, .insert], .index(2))])
        case "xgroup|createconsumer": return Declared(keys: [KeySpec([.rw, .insert], .index(2))])
        case "xgroup|delconsumer": return Declared(keys: [KeySpec([.rw, .delete], .index(2))])
        case "xgroup|destroy": return Declared(keys: [KeySpec([.rw, .delete], .index(2))])
        case "xgroup|setid": return Declared(keys: [KeySpec([.rw, .update], .index(2))])
        case "xinfo|consumers": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(2))])
        case "xinfo|groups": return Declared(keys: [KeySpec([.ro, .access], .index(2))])
        case "xinfo|stream": return Declared(keys: [KeySpec([.ro, .access], .index(2))])
        case "xlen": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "xpending": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "xrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "xread": return Declared(
            keys: [KeySpec([.ro, .access], .keyword("STREAMS", startFrom: 1), .range(-1, limit: 2))])
        case "xreadgroup": return Declared(
            keys: [KeySpec([.ro, .access], .keyword("STREAMS", startFrom: 4), .range(-1, limit: 2))])
        case "xrevrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "xsetid": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "xtrim": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.rw, .delete], .index(1))])
        case "zadd": return Declared(keys: [KeySpec([.rw, .update], .index(1))])
        case "zcard": return Declared(keys: [KeySpec([.ro], .index(1))])
        case "zcount": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zdiff": return Declared(keys: [KeySpec([.ro, .access], .index(1), .keynum(0, first: 1))])
        case "zdiffstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        case "zincrby": return Declared(keys: [KeySpec([.rw, .access, .update], .index(1))])
        case "zinter": return Declared(keys: [KeySpec([.ro, .access], .index(1), .keynum(0, first: 1))])
        case "zintercard": return Declared(keys: [KeySpec([.ro, .access], .index(1), .keynum(0, first: 1))])
        case "zinterstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        case "zlexcount": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zmpop": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1), .keynum(0, first: 1))])
        case "zmscore": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zpopmax": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "zpopmin": return Declared(keys: [KeySpec([.rw, .access, .delete], .index(1))])
        case "zrandmember": return Declared(
            tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "zrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrangebylex": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrangebyscore": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrangestore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2))])
        case "zrank": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrem": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "zremrangebylex": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "zremrangebyrank": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "zremrangebyscore": return Declared(keys: [KeySpec([.rw, .delete], .index(1))])
        case "zrevrange": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrevrangebylex": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrevrangebyscore": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zrevrank": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zscan": return Declared(tips: ["nondeterministic_output"], keys: [KeySpec([.ro, .access], .index(1))])
        case "zscore": return Declared(keys: [KeySpec([.ro, .access], .index(1))])
        case "zunion": return Declared(keys: [KeySpec([.ro, .access], .index(1), .keynum(0, first: 1))])
        case "zunionstore": return Declared(
            keys: [KeySpec([.ow, .update], .index(1)), KeySpec([.ro, .access], .index(2), .keynum(0, first: 1))])
        default: return nil
        }
    }
}
