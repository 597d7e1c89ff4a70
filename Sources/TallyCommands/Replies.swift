// Replies: Redis's exact error texts and the shared reply helpers (one place, like createSharedObjects).
import TallyKeyspace
import TallyProtocol

/// Error messages exactly as Redis 7.0.15 words them (without the leading `-`); each member
/// is named after the condition it reports, and its text was checked against redis-server.
public enum RedisError {
    public static let wrongType: StaticString = "WRONGTYPE Operation against a key holding the wrong kind of value"
    public static let notInteger: StaticString = "ERR value is not an integer or out of range"
    public static let overflow: StaticString = "ERR increment or decrement would overflow"
    public static let decrementOverflow: StaticString = "ERR decrement would overflow"
    public static let notFloat: StaticString = "ERR value is not a valid float"
    public static let nanOrInfinity: StaticString = "ERR increment would produce NaN or Infinity"
    public static let hashNotInteger: StaticString = "ERR hash value is not an integer"
    public static let hashNotFloat: StaticString = "ERR hash value is not a float"
    public static let syntax: StaticString = "ERR syntax error"
    public static let tooLarge: StaticString = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    public static let noSuchKey: StaticString = "ERR no such key"
    public static let databaseOutOfRange: StaticString = "ERR DB index is out of range"
    public static let noAuth: StaticString = "NOAUTH Authentication required."
    public static let outOfMemory: StaticString = "OOM command not allowed when used memory > 'maxmemory'."
    public static let wrongPass: StaticString = "WRONGPASS invalid username-password pair or user is disabled."
    public static let authNotConfigured: StaticString = """
        ERR AUTH <password> called without any password configured for the default user. \
        Are you sure your configuration is correct?
        """
    public static let execAbort: StaticString = "EXECABORT Transaction discarded because of previous errors."
    public static let nestedMulti: StaticString = "ERR MULTI calls can not be nested"
    public static let execWithoutMulti: StaticString = "ERR EXEC without MULTI"
    public static let discardWithoutMulti: StaticString = "ERR DISCARD without MULTI"
    public static let watchInsideMulti: StaticString = "ERR WATCH inside MULTI is not allowed"
    public static let invalidCursor: StaticString = "ERR invalid cursor"
    public static let noProto: StaticString = "NOPROTO unsupported protocol version"
    public static let loading: StaticString = "LOADING Redis is loading the dataset in memory"
    /// A write on a read-only replica (server.c shared.roslaveerr).
    public static let readOnlyReplica: StaticString = "READONLY You can't write against a read only replica."
    /// A command without the `stale` flag while the link to the primary is down and
    /// replica-serve-stale-data is no (server.c shared.masterdownerr).
    public static let masterDown: StaticString =
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    public static let valueOutOfRange: StaticString = "ERR value is out of range"
    public static let sameObject: StaticString = "ERR source and destination objects are the same"
    public static let busyKey: StaticString = "BUSYKEY Target key name already exists."
    public static let invalidFirstDatabase: StaticString = "ERR invalid first DB index"
    public static let invalidSecondDatabase: StaticString = "ERR invalid second DB index"
    public static let invalidClientName: StaticString =
        "ERR Client names cannot contain spaces, newlines or special characters."
    public static let mustBePositive: StaticString = "ERR value is out of range, must be positive"
    public static let indexOutOfRange: StaticString = "ERR index out of range"
    public static let rankZero: StaticString = """
        ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
        or use negative to start from the end of the list
        """
    public static let countNegative: StaticString = "ERR COUNT can't be negative"
    public static let maxlenNegative: StaticString = "ERR MAXLEN can't be negative"
    public static let numkeysNotPositive: StaticString = "ERR numkeys should be greater than 0"
    public static let timeoutNotFloat: StaticString = "ERR timeout is not a float or out of range"
    public static let timeoutNegative: StaticString = "ERR timeout is negative"
    public static let countNotPositive: StaticString = "ERR count should be greater than 0"
    public static let backgroundSaveInProgress: StaticString = "ERR Background save already in progress"
}

extension OutputBuffer {
    /// `+OK\r\n`.
    @inline(__always) public mutating func writeOK() { writeStaticString("+OK\r\n") }

    /// The reply for a shard operation error.
    public mutating func writeKeyspaceError(_ error: KeyspaceError) {
        switch error {
        case .wrongType: writeError(RedisError.wrongType)
        case .notInteger: writeError(RedisError.notInteger)
        case .notFloat: writeError(RedisError.notFloat)
        case .overflow: writeError(RedisError.overflow)
        case .nanOrInfinity: writeError(RedisError.nanOrInfinity)
        case .tooLarge: writeError(RedisError.tooLarge)
        }
    }

    /// A string value as a bulk reply (integers are formatted without allocating).
    public mutating func writeValue(_ value: Value) {
        switch value {
        case .integer(let integer): writeBulkDecimal(integer)
        case .string(let bytes): writeBulkString(bytes)
        case .hash, .list, .set, .sortedSet, .stream: writeError(RedisError.wrongType)
        }
    }
}

/// Writes `-ERR unknown command 'name', with args beginning with: 'a' 'b' `, reproducing
/// Redis 7.0's truncation: the name is cut at 128 bytes, each argument is printed with
/// `'%.*s' ` using the room left under 128 bytes, and printing stops once 128 are used.
/// C string formatting also stops at a NUL byte; CR/LF become spaces (writeError).
public func writeUnknownCommandError(_ arguments: CommandArguments, into output: inout OutputBuffer) {
    var message: [UInt8] = Array("ERR unknown command '".utf8)
    appendCString(arguments[0], limit: 128, to: &message)
    message.append(contentsOf: "', with args beginning with: ".utf8)
    var argumentText: [UInt8] = []
    var index = 1
    while index < arguments.count && argumentText.count < 128 {
        argumentText.append(UInt8(ascii: "'"))
        appendCString(arguments[index], limit: 128 - argumentText.count + 1, to: &argumentText)
        argumentText.append(contentsOf: "' ".utf8)
        index += 1
    }
    message.append(contentsOf: argumentText)
    output.writeError(message)
}

/// `%.{limit}s` semantics: at most `limit` bytes, stopping at the first NUL.
func appendCString(_ bytes: ArraySlice<UInt8>, limit: Int, to output: inout [UInt8]) {
    var written = 0
    for byte in bytes {
        if byte == 0 || written >= limit { break }
        output.append(byte)
        written += 1
    }
}

/// Writes `-ERR wrong number of arguments for 'name' command` (`name` as the table spells it,
/// `parent|sub` for subcommands).
public func writeArityError(_ name: String, into output: inout OutputBuffer) {
    output.writeError(Array("ERR ".utf8) + arityErrorReason(name))
}

/// `wrong number of arguments for 'name' command`, without the error code: EXEC's refusal
/// quotes it after "EXECABORT Transaction discarded because of:".
public func arityErrorReason(_ name: String) -> [UInt8] {
    var reason: [UInt8] = Array("wrong number of arguments for '".utf8)
    reason.append(contentsOf: name.utf8)
    reason.append(contentsOf: "' command".utf8)
    return reason
}

/// Writes `-ERR unknown subcommand 'sub'. Try PARENT HELP.` as Redis 7.0 does.
public func writeUnknownSubcommandError(_ arguments: CommandArguments, parent: String,
                                        into output: inout OutputBuffer) {
    output.writeError(Array("ERR ".utf8) + unknownSubcommandReason(arguments, parent: parent))
}

/// `unknown subcommand 'sub'. Try PARENT HELP.` without the error code (server.c
/// commandCheckExistence), as dispatch refuses it.
public func unknownSubcommandReason(_ arguments: CommandArguments, parent: String) -> [UInt8] {
    var message: [UInt8] = Array("unknown subcommand '".utf8)
    appendCString(arguments[1], limit: 128, to: &message)
    message.append(contentsOf: "'. Try ".utf8)
    message.append(contentsOf: parent.uppercased().utf8)
    message.append(contentsOf: " HELP.".utf8)
    return message
}

extension CommandContext {
    /// A container command's HELP reply as server.c addReplyHelp builds it: the usage line, the
    /// subcommand `lines`, then HELP itself.
    mutating func writeHelp(_ command: StaticString, _ lines: [String]) {
        output.writeArrayHeader(lines.count + 3)
        output.writeSimpleString(Array("\(command) <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".utf8))
        for line in lines { output.writeSimpleString(Array(line.utf8)) }
        output.writeSimpleString(Array("HELP".utf8))
        output.writeSimpleString(Array("    Prints this help.".utf8))
    }
}
