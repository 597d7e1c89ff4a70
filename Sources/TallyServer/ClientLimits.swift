// ClientLimits: admission checks for new connections (protected mode) and the limits' shared texts.

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
