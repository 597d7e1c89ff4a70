// CommandKeys: where a command's keys are, for COMMAND GETKEYS and GETKEYSANDFLAGS (db.c getKeysFromCommandWithSpecs).
import TallyProtocol

/// The key positions of a request. Fixed-position commands use their row's first/last/step; a
/// `movablekeys` command finds its keys the way Redis 7.0's key specs and getkeys procs do
/// (a numkeys argument, a STREAMS or STORE keyword, SORT's options).
enum CommandKeys {
    /// Commands whose key count may be zero (CMD_NO_MANDATORY_KEYS): GETKEYS answers an empty
    /// array rather than an error when none is found.
    static let noMandatoryKeys: Set<String> = ["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]

    /// Movable-key commands whose keys follow a count at `numkeys`; `fixed` keys come first.
    static let counted: [String: (numkeys: Int, fixed: [Int])] = [
        "eval": (2, []), "evalsha": (2, []), "eval_ro": (2, []), "evalsha_ro": (2, []),
        "fcall": (2, []), "fcall_ro": (2, []),
        "zunion": (1, []), "zinter": (1, []), "zdiff": (1, []), "zintercard": (1, []),
        "sintercard": (1, []), "lmpop": (1, []), "zmpop": (1, []), "blmpop": (2, []), "bzmpop": (2, []),
        "zunionstore": (2, [1]), "zinterstore": (2, [1]), "zdiffstore": (2, [1]),
    ]

    /// True if `spec` (a command or subcommand row) has key arguments at all.
    static func hasKeys(_ spec: CommandSpec) -> Bool {
        spec.firstKey > 0 || spec.flags.contains(.movableKeys) || counted[spec.name] != nil
    }

    /// The indexes of the keys in `arguments` (the command name at 0), or nil when the
    /// arguments do not say where they are (a numkeys that is not a count of what follows).
    static func positions(_ spec: CommandSpec, _ arguments: [ArraySlice<UInt8>]) -> [Int]? {
        let count = arguments.count
        if let (numkeysIndex, fixed) = counted[spec.name] {
            guard numkeysIndex < count, let keys = parseRedisInteger(arguments[numkeysIndex]), keys >= 0,
                  keys <= count - numkeysIndex - 1 else { return nil }
            if keys == 0 && !noMandatoryKeys.contains(spec.name) { return nil }
            return fixed + Array((numkeysIndex + 1)..<(numkeysIndex + 1 + Int(keys)))
        }
        switch spec.name {
        case "sort": return sortPositions(arguments)
        case "migrate": return migratePositions(arguments)
        case "xread", "xreadgroup":
            // Keys are the first half of what follows STREAMS.
            guard let streams = (1..<count).first(where: { matches(arguments[$0], "streams") }) else { return nil }
            let keys = (count - streams - 1) / 2
            return keys > 0 ? Array((streams + 1)...(streams + keys)) : nil
        case "georadius", "georadiusbymember":
            // The key, then the targets of the first STORE and the first STOREDIST.
            let start = spec.name == "georadius" ? 6 : 5
            var keys = [1]
            for keyword in ["store", "storedist"] {
                if let found = (min(start, count)..<count).first(where: { matches(arguments[$0], keyword) }),
                   found + 1 < count {
                    keys.append(found + 1)
                }
            }
            return keys
        default:
            guard spec.firstKey > 0 else { return nil }
            let last = spec.lastKey < 0 ? count + spec.lastKey : spec.lastKey
            guard spec.firstKey <= last, last < count else { return nil }
            return Array(stride(from: spec.firstKey, through: last, by: max(1, spec.step)))
        }
    }

    /// MIGRATE's keys as Redis 7.0 finds them: its KEYS key spec is incomplete, so when a KEYS
    /// word is found searching back from the second-to-last argument the specs give up and
    /// db.c migrateGetKeys decides (every argument after the first KEYS from index 6 on, skipping
    /// AUTH's and AUTH2's values; none when the key argument is not empty); otherwise the key is
    /// argument 3. Nil when no key results.
    static func migratePositions(_ arguments: [ArraySlice<UInt8>]) -> [Int]? {
        let count = arguments.count
        // Arity (-6) is checked first, so argument 3 exists.
        guard (1...(count - 2)).contains(where: { matches(arguments[$0], "keys") }) else { return [3] }
        var index = 6
        while index < count {
            if matches(arguments[index], "keys") {
                guard arguments[3].isEmpty, index + 1 < count else { return nil }
                return Array((index + 1)..<count)
            }
            if matches(arguments[index], "auth") {
                index += 1
            } else if matches(arguments[index], "auth2") {
                index += 2
            }
            index += 1
        }
        return [3]
    }

    /// db.c sortGetKeys: the key, then the argument after the last STORE, skipping LIMIT's two
    /// arguments and BY's and GET's one (so `LIMIT 0 STORE x` has no STORE).
    static func sortPositions(_ arguments: [ArraySlice<UInt8>]) -> [Int] {
        var keys = [1]
        var store: Int?
        var index = 2
        while index < arguments.count {
            if matches(arguments[index], "limit") {
                index += 2
            } else if matches(arguments[index], "get") || matches(arguments[index], "by") {
                index += 1
            } else if matches(arguments[index], "store") && index + 1 < arguments.count {
                store = index + 1
            }
            index += 1
        }
        if let store { keys.append(store) }
        return keys
    }

    static func matches(_ argument: ArraySlice<UInt8>, _ word: String) -> Bool {
        argument.count == word.utf8.count && zip(argument, word.utf8).allSatisfy { $0 | 0x20 == $1 }
    }
}
