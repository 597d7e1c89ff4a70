// ClientLimits: admission checks for new connections (protected mode) and the limits' shared texts.
import Synchronization

/// Checks applied when a connection is accepted.
enum ClientLimits {
    /// Redis 7.0.15's protected-mode refusal, byte for byte (taken from the real server's reply).
    static let protectedModeRefusal: StaticString = """
        -DENIED Redis is running in protected mode because protected mode is enabled and no password is set \
        for the default user. In this mode connections are only accepted from the loopback interface. If you \
        want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just \
        disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface \
        by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not \
        publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) \
        Alternatively you can just disable the protected mode by editing the Redis configuration file, and \
        setting the protected mode option to 'no', and then restarting the server. 3) If you started the \
        server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an \
        authentication password for the default user. NOTE: You only need to do one of the above things in \
        order for the server to start accepting connections from the outside.\r\n
        """

    /// True for peers Redis's `connIsLocal` accepts in protected mode: IPv4 127.0.0.0/8, IPv6
    /// ::1 (also IPv4-mapped loopback) and Unix sockets (whose peer address is a path or empty).
    /// `peerAddress` is "ip:port" as `Posix.peerAddress` formats it.
    static func isLocal(peerAddress: String) -> Bool {
        if peerAddress.hasPrefix("127.") || peerAddress.hasPrefix("::1:") || peerAddress.hasPrefix("::ffff:127.") {
            return true
        }
        // Unix socket peers: "<path>:0" with an absolute or empty path.
        return peerAddress.hasPrefix("/") || peerAddress == ":0"
    }

    /// Redis 7.0 refuses, at accept time, a non-local client while protected mode is on and
    /// the default user has no password (7.0 no longer looks at `bind` for this).
    static func protectedModeRefuses(protectedMode: Bool, passwordSet: Bool, peerAddress: String) -> Bool {
        protectedMode && !passwordSet && !isLocal(peerAddress: peerAddress)
    }
}

extension ClientLimits {
    /// Redis's defaults per class, in CONFIG GET order (`normal` and `pubsub` apply: Tally has no
    /// replicas, but that class is accepted and reported like Redis).
    static let outputBufferClasses = ["normal", "slave", "pubsub"]

    /// Parses `client-output-buffer-limit` (config file words or one CONFIG SET string) into
    /// the full normalized form, classes not mentioned keeping Redis's defaults. Errors use
    /// Redis 7.0.15's texts.
    static func normalizeOutputBufferLimits(_ arguments: [String]) -> Result<String, ConfigError> {
        let words = arguments.flatMap { $0.split(separator: " ").map(String.init) }
        guard !words.isEmpty, words.count % 4 == 0 else {
            return .failure(ConfigError("Wrong number of arguments in buffer limit configuration."))
        }
        var limits: [String: [Int64]] = [
            "normal": [0, 0, 0], "slave": [268_435_456, 67_108_864, 60], "pubsub": [33_554_432, 8_388_608, 60],
        ]
        for group in stride(from: 0, to: words.count, by: 4) {
            var name = words[group].lowercased()
            if name == "replica" { name = "slave" }
            guard limits[name] != nil else {
                return .failure(ConfigError("Invalid client class specified in buffer limit configuration."))
            }
            guard let hard = parseMemory(words[group + 1]), let soft = parseMemory(words[group + 2]),
                  let seconds = Int64(words[group + 3]), hard >= 0, soft >= 0, seconds >= 0
            else {
                return .failure(
                    ConfigError("Error in hard, soft or soft_seconds setting in buffer limit configuration."))
            }
            limits[name] = [hard, soft, seconds]
        }
        let text = outputBufferClasses.map { name in
            ([name] + limits[name]!.map { String($0) }).joined(separator: " ")
        }.joined(separator: " ")
        return .success(text)
    }

    /// One class's limits: (hard bytes, soft bytes, soft seconds); 0 = no limit.
    static func outputLimits(_ normalized: String, class name: String = "normal")
        -> (hard: Int, soft: Int, seconds: Int)
    {
        let words = normalized.split(separator: " ")
        guard let start = words.firstIndex(where: { $0 == name }), words.count >= start + 4 else { return (0, 0, 0) }
        return (Int(words[start + 1]) ?? 0, Int(words[start + 2]) ?? 0, Int(words[start + 3]) ?? 0)
    }
}

/// The live output-buffer limits of one client class (`normal`, or `pubsub` for clients with
/// subscriptions), read by every I/O thread after each command batch; atomics so CONFIG SET
/// applies without locking the hot path.
final class OutputBufferLimits: Sendable {
    /// The class these limits apply to, as `client-output-buffer-limit` names it.
    let className: String
    let hardBytes = Atomic<Int>(0)
    let softBytes = Atomic<Int>(0)
    let softSeconds = Atomic<Int>(0)

    /// True when neither limit is set (Redis's default for normal clients): nothing to check.
    var isUnlimited: Bool {
        hardBytes.load(ordering: .relaxed) == 0 && softBytes.load(ordering: .relaxed) == 0
    }

    init(className: String = "normal") { self.className = className }

    func update(from configuration: ServerConfiguration) {
        let limits = ClientLimits.outputLimits(configuration.string("client-output-buffer-limit"), class: className)
        hardBytes.store(limits.hard, ordering: .relaxed)
        softBytes.store(limits.soft, ordering: .relaxed)
        softSeconds.store(limits.seconds, ordering: .relaxed)
    }

    /// Redis's `checkClientOutputBufferLimits` for one client: over the hard limit, or over the
    /// soft limit continuously for more than the soft seconds. `softSince` is the client's
    /// "over soft limit since" time in ms (0 = not over), updated here.
    func exceeded(pendingBytes: Int, nowMilliseconds: Int64, softSince: inout Int64) -> Bool {
        let hard = hardBytes.load(ordering: .relaxed)
        if hard > 0 && pendingBytes >= hard { return true }
        let soft = softBytes.load(ordering: .relaxed)
        guard soft > 0 && pendingBytes >= soft else {
            softSince = 0
            return false
        }
        if softSince == 0 {
            softSince = nowMilliseconds
            return false
        }
        return nowMilliseconds - softSince > Int64(softSeconds.load(ordering: .relaxed)) * 1000
    }
}
