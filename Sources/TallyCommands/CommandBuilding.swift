// CommandBuilding: compact row construction and argument helpers shared by the command families.
import TallyKeyspace
import TallyProtocol

/// Builds a row; `keys` is (first, last, step) and `categories` is space separated, as
/// COMMAND INFO prints them.
func command(_ name: String, _ arity: Int, _ flags: CommandFlags, keys: (Int, Int, Int) = (0, 0, 0),
             _ categories: String, _ handler: @escaping CommandHandler) -> CommandSpec {
    CommandSpec(name: name, arity: arity, flags: flags, firstKey: keys.0, lastKey: keys.1, step: keys.2,
                categories: categories.split(separator: " ").map(String.init), handler: handler)
}

extension CommandContext {
    /// Argument `index` parsed as a Redis integer, or nil after writing the not-an-integer error.
    mutating func integerArgument(_ index: Int) -> Int64? {
        if let value = parseRedisInteger(arguments[index]) { return value }
        output.writeError(RedisError.notInteger)
        return nil
    }

    /// Argument `index` as an integer within `range`, or nil after writing Redis's reply
    /// (object.c getRangeLongFromObjectOrReply, which getInt/getPositiveLong... build on):
    /// `message` for either failure when given, else the not-an-integer error or "value is out
    /// of range, value must between MIN and MAX".
    mutating func integerArgument(_ index: Int, in range: ClosedRange<Int64>, message: StaticString? = nil)
        -> Int64?
    {
        guard let value = parseRedisInteger(arguments[index]) else {
            output.writeError(message ?? RedisError.notInteger)
            return nil
        }
        guard range.contains(value) else {
            if let message {
                output.writeError(message)
            } else {
                output.writeError(Array(
                    "ERR value is out of range, value must between \(range.lowerBound) and \(range.upperBound)".utf8))
            }
            return nil
        }
        return value
    }

    /// Argument `index` as a C `int` (object.c getIntFromObjectOrReply).
    mutating func int32Argument(_ index: Int, message: StaticString? = nil) -> Int? {
        integerArgument(index, in: Int64(Int32.min)...Int64(Int32.max), message: message).map(Int.init)
    }

    /// Argument `index` as a database number (MOVE, COPY ... DB): nil after writing the error
    /// for a non-integer or a database that does not exist.
    mutating func databaseArgument(_ index: Int) -> Int? {
        guard let database = int32Argument(index) else { return nil }
        guard database >= 0 && database < keyspace.databaseCount else {
            output.writeError(RedisError.databaseOutOfRange)
            return nil
        }
        return database
    }

    /// The command name as Redis prints it in messages (lowercase table name).
    var commandName: String { spec.name }

    /// Writes `-ERR invalid expire time in '<name>' command`.
    mutating func writeInvalidExpire() {
        var message: [UInt8] = Array("ERR invalid expire time in '".utf8)
        message.append(contentsOf: spec.name.utf8)
        message.append(contentsOf: "' command".utf8)
        output.writeError(message)
    }
}

/// Constant byte strings used in propagated commands.
enum Words {
    static let set: [UInt8] = Array("SET".utf8)
    static let del: [UInt8] = Array("DEL".utf8)
    static let pxat: [UInt8] = Array("PXAT".utf8)
    static let keepTTL: [UInt8] = Array("KEEPTTL".utf8)
    static let pexpireAt: [UInt8] = Array("PEXPIREAT".utf8)
    static let persist: [UInt8] = Array("PERSIST".utf8)
    static let hset: [UInt8] = Array("HSET".utf8)
    static let exec: [UInt8] = Array("EXEC".utf8)
    static let multi: [UInt8] = Array("MULTI".utf8)
    static let lpop: [UInt8] = Array("LPOP".utf8)
    static let rpop: [UInt8] = Array("RPOP".utf8)
    static let rpush: [UInt8] = Array("RPUSH".utf8)
    static let lmove: [UInt8] = Array("LMOVE".utf8)
    static let rpoplpush: [UInt8] = Array("RPOPLPUSH".utf8)
    static let left: [UInt8] = Array("LEFT".utf8)
    static let right: [UInt8] = Array("RIGHT".utf8)
}
