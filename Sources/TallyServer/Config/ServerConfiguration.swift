// ServerConfiguration: option values parsed from redis.conf syntax and `--name value` overrides.
import Glibc
import TallyProtocol

/// The current value of every option in `ConfigTable`, normalized (memory sizes in bytes).
public struct ServerConfiguration: Sendable {
    /// Normalized values by option name.
    public private(set) var values: [String: String]
    /// The config file path given on the command line, if any (`config_file` in INFO).
    public var configFile: String = ""
    /// Where `daemonize yes` was last set while parsing: refused only if no later line (such as
    /// Debian's unit file's `--daemonize no` after /etc/redis/redis.conf) turns it off again.
    private var daemonizeDirective: (line: Int, text: String)?

    /// All defaults.
    public init() {
        var values: [String: String] = [:]
        for option in ConfigTable.options { values[option.name] = option.defaultValue }
        self.values = values
    }

    /// Sets option `name` from raw arguments, validating them.
    public mutating func set(_ name: String, _ arguments: [String]) throws(ConfigError) {
        guard let option = ConfigTable.option(named: name) else {
            throw ConfigError("Bad directive or wrong number of arguments")
        }
        switch option.normalize(arguments) {
        case .success(let value):
            values[option.name] = value
            if let alias = ConfigTable.aliases[option.name] ?? ConfigTable.encodingAliases[option.name] {
                values[alias] = value
            }
        case .failure(let error): throw error
        }
    }

    /// The normalized text of `name` ("" if unknown).
    public func string(_ name: String) -> String { values[name] ?? "" }
    /// An integer or memory option.
    public func integer(_ name: String) -> Int64 { Int64(values[name] ?? "") ?? 0 }
    /// A yes/no option.
    public func bool(_ name: String) -> Bool { values[name] == "yes" }

    // Typed accessors for the options the server itself acts on.
    /// TCP port (0 disables TCP, as in Redis).
    public var port: Int { Int(integer("port")) }
    /// Listen addresses; a leading `-` marks an address that may fail to bind.
    public var bindAddresses: [String] { string("bind").split(separator: " ").map(String.init) }
    /// I/O threads; 0 (the default) means one per core but one, and at least one: the core left
    /// over serves the clients on the same machine, the kernel's network work and the background
    /// threads (fsync, snapshots). Measured on 2 cores with redis-benchmark beside the server,
    /// a second I/O thread cost more than it gave: writes to one hot key at -P 16 ran at 0.70-0.81x
    /// redis-server (the two threads queue on its shard's lock) and 1.0-1.15x with one thread,
    /// and INCR -P 1's p99/max latency went from 1.80x/1.30x redis-server's to 0.90x/0.58x.
    public var ioThreads: Int {
        let configured = Int(integer("io-threads"))
        return configured > 0 ? configured : automaticIOThreads
    }

    /// The I/O thread count `io-threads 0` stands for on this machine.
    public var automaticIOThreads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) - 1) }
    /// Keyspace shards; 0 means "derived from the core count".
    public var shards: Int {
        let configured = Int(integer("shards"))
        return configured > 0 ? configured : max(16, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) * 4)
    }
    /// `save` points as (seconds, changes) pairs.
    public var savePoints: [(seconds: Int64, changes: Int64)] {
        let numbers = string("save").split(separator: " ").compactMap { Int64($0) }
        return stride(from: 0, to: numbers.count - 1, by: 2).map { (numbers[$0], numbers[$0 + 1]) }
    }

    /// The value CONFIG GET reports for `name`.
    public func rendered(_ name: String) -> String {
        guard let option = ConfigTable.option(named: name) else { return "" }
        let value = values[option.name] ?? ""
        if case .octal = option.kind { return value == "0" ? "0" : value }
        return value
    }

    private var badDirective: String { "Bad directive or wrong number of arguments" }

    /// Parses redis.conf text. `firstLine` numbers lines so errors match Redis's report.
    public mutating func apply(configText text: String, includeDepth: Int = 0) throws(ConfigFileError) {
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            var arguments = CommandArguments()
            guard splitInlineArguments(ArraySlice(Array(line.utf8)), into: &arguments) else {
                throw ConfigFileError(line: lineNumber, text: line, message: "Unbalanced quotes in configuration line")
            }
            guard arguments.count > 0 else { continue }
            let words = (0..<arguments.count).map { String(decoding: arguments[$0], as: UTF8.self) }
            let name = words[0].lowercased()
            if name == "include" && words.count == 2 {
                guard includeDepth < 8, let included = readWholeFile(words[1]) else {
                    throw ConfigFileError(line: lineNumber, text: line, message: badDirective)
                }
                try apply(configText: included, includeDepth: includeDepth + 1)
                continue
            }
            guard ConfigTable.option(named: name) != nil, words.count >= 2 || name == "save" else {
                throw ConfigFileError(line: lineNumber, text: line, message: badDirective)
            }
            do {
                try set(name, Array(words.dropFirst()))
            } catch {
                throw ConfigFileError(line: lineNumber, text: line, message: error.message)
            }
            if name == "daemonize" { daemonizeDirective = bool("daemonize") ? (lineNumber, line) : nil }
        }
        if includeDepth == 0, let directive = daemonizeDirective {
            throw ConfigFileError(
                line: directive.line, text: directive.text,
                message: "daemonize yes is not supported by tally-server; run it under a supervisor")
        }
    }

    /// Builds a configuration from `tally-server [file.conf] [--name value ...]`, like redis-server:
    /// the file's text comes first, then each `--name` starts a new line with its values quoted.
    public static func fromCommandLine(_ arguments: [String]) throws(ConfigFileError) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        var text = ""
        var rest = arguments[...]
        if let first = rest.first, !first.hasPrefix("--") {
            guard let contents = readWholeFile(first) else {
                throw ConfigFileError(line: 0, text: first, message: "Fatal error, can't open config file '\(first)'")
            }
            // Absolute, as redis-server keeps it (server.c getAbsolutePath): the server chdirs to
            // `dir` before CONFIG REWRITE writes the file again.
            configuration.configFile = absolutePath(first)
            text = contents
            rest = rest.dropFirst()
        }
        var options = ""
        for argument in rest {
            if argument.hasPrefix("--") && argument.count > 2 {
                options += "\n" + String(argument.dropFirst(2)) + " "
            } else {
                options += quoted(argument) + " "
            }
        }
        if !options.isEmpty {
            // Trailing spaces would show in the error echo; drop them per line.
            text += options.split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.hasSuffix(" ") ? String($0.dropLast()) : String($0) }.joined(separator: "\n")
        }
        try configuration.apply(configText: text)
        return configuration
    }

    /// Quotes a command-line value as Redis's sdscatrepr does (so `--save ""` stays one argument).
    static func quoted(_ value: String) -> String {
        var result = "\""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): result += "\\\\"
            case UInt8(ascii: "\""): result += "\\\""
            case 10: result += "\\n"
            case 13: result += "\\r"
            case 9: result += "\\t"
            case 32...126: result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16)
                result += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result + "\""
    }
}

/// `path` made absolute against the working directory, with leading `./` and `../` resolved
/// textually (symbolic links are not followed).
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    var base = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .split(separator: "/").map(String.init)
    var rest = Substring(path)
    while true {
        if rest.hasPrefix("./") {
            rest = rest.dropFirst(2)
        } else if rest.hasPrefix("../") {
            rest = rest.dropFirst(3)
            if !base.isEmpty { base.removeLast() }
        } else {
            break
        }
    }
    return "/" + (base + [String(rest)]).joined(separator: "/")
}

/// A fatal configuration error, reported like redis-server before exiting with status 1.
public struct ConfigFileError: Error, Sendable, Equatable {
    /// 1-based line of the combined configuration text.
    public var line: Int
    /// The offending line as written.
    public var text: String
    /// What was wrong with it.
    public var message: String

    /// Redis's exact report (printed on stderr).
    public var report: String {
        if line == 0 { return message + "\n" }
        return "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line \(line)\n"
            + ">>> '\(text)'\n\(message)\n"
    }
}

extension Substring {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}

/// Reads a whole file as UTF-8 text (config files only; not on any hot path).
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: bytes, as: UTF8.self)
}

