// ConformanceFixTests: differences the differential suite found, with redis-server 7.0.15's reply bytes.
import TallyCommands
import TallyTestSupport
import Testing

/// Each test replays a sequence whose replies were recorded from redis-server 7.0.15 on a raw
/// socket; arguments are bytes, so values with NUL or 0xff are sent as they are.
@Suite struct ConformanceFixTests {
    static let wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"

    /// Runs `steps` on `harness`, comparing each reply byte for byte.
    func check(_ harness: CommandHarness, _ steps: [([[UInt8]], String)]) {
        for (command, expected) in steps {
            let reply = String(decoding: harness.run(command), as: UTF8.self)
            #expect(reply == expected, "\(command.map { String(decoding: $0, as: UTF8.self) })")
        }
    }

    func bytes(_ words: String...) -> [[UInt8]] { words.map { Array($0.utf8) } }

    @Test func incrbyfloatRefusesStoredValuesThatAreNotWholeFloats() {
        let notFloat = "-ERR value is not a valid float\r\n"
        let key = Array("k".utf8)
        let set = Array("SET".utf8), incr = Array("INCRBYFLOAT".utf8)
        check(CommandHarness(), [
            ([set, key, [0x00, 0x01, 0xff]], "+OK\r\n"),
            ([incr, key, Array("0x10".utf8)], notFloat),
            ([set, key, Array("1".utf8) + [0]], "+OK\r\n"),
            ([incr, key, Array("1".utf8)], notFloat),
            (bytes("SET", "k", " 1"), "+OK\r\n"),
            (bytes("INCRBYFLOAT", "k", "1"), notFloat),
            (bytes("SET", "k", "1 "), "+OK\r\n"),
            (bytes("INCRBYFLOAT", "k", "1"), notFloat),
            (bytes("GET", "k"), "$2\r\n1 \r\n"),
        ])
    }

    @Test func incrbyfloatChecksTheTypeBeforeTheIncrement() {
        check(CommandHarness(), [
            (bytes("HSET", "k", "f", "1"), ":1\r\n"),
            (bytes("INCRBYFLOAT", "k", "abc"), Self.wrongType),
            (bytes("MULTI"), "+OK\r\n"),
            (bytes("INCRBYFLOAT", "k", "abc"), "+QUEUED\r\n"),
            (bytes("EXEC"), "*1\r\n" + Self.wrongType),
        ])
    }

    @Test func hincrbyfloatRefusesFieldsThatAreNotWholeFloats() {
        let hashNotFloat = "-ERR hash value is not a float\r\n"
        let hset = Array("HSET".utf8), key = Array("k".utf8), field = Array("f".utf8)
        check(CommandHarness(), [
            ([hset, key, field, [0x00, 0x01, 0xff]], ":1\r\n"),
            (bytes("HINCRBYFLOAT", "k", "f", "0.2"), hashNotFloat),
            ([hset, key, field, Array("1".utf8) + [0]], ":0\r\n"),
            (bytes("HINCRBYFLOAT", "k", "f", "0.2"), hashNotFloat),
        ])
    }

    @Test func floatIncrementsWithANulByteAreRefused() {
        let notFloat = "-ERR value is not a valid float\r\n"
        let increment = Array("1".utf8) + [0]
        check(CommandHarness(), [
            ([Array("INCRBYFLOAT".utf8), Array("b".utf8), increment], notFloat),
            (bytes("GET", "b"), "$-1\r\n"),
            (bytes("HSET", "h", "f", "1"), ":1\r\n"),
            ([Array("HINCRBYFLOAT".utf8), Array("h".utf8), Array("f".utf8), increment], notFloat),
        ])
    }

    @Test func getexOnAMissingKeyIgnoresTheExpireValue() {
        check(CommandHarness(), [
            (bytes("GETEX", "missing", "EX", "abc"), "$-1\r\n"),
            (bytes("GETEX", "missing", "EX", "0"), "$-1\r\n"),
            (bytes("GETEX", "missing", "EX", "9223372036854775807"), "$-1\r\n"),
            (bytes("GETEX", "missing", "BAD"), "-ERR syntax error\r\n"),
            (bytes("GETEX", "missing", "EX"), "-ERR syntax error\r\n"),
            (bytes("HSET", "h", "f", "1"), ":1\r\n"),
            (bytes("GETEX", "h", "EX", "abc"), Self.wrongType),
            (bytes("SET", "s", "v"), "+OK\r\n"),
            (bytes("GETEX", "s", "EX", "abc"), "-ERR value is not an integer or out of range\r\n"),
            (bytes("GETEX", "s", "EX", "0"), "-ERR invalid expire time in 'getex' command\r\n"),
        ])
    }

    @Test func expireChecksOptionsBeforeTheTime() {
        check(CommandHarness(), [
            (bytes("EXPIRE", "k", "abc", "BAD"), "-ERR Unsupported option BAD\r\n"),
            (bytes("EXPIRE", "k", "abc", "NX", "XX"),
             "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"),
            (bytes("EXPIRE", "k", "abc", "GT", "LT"), "-ERR GT and LT options at the same time are not compatible\r\n"),
            (bytes("EXPIRE", "k", "abc", "NX"), "-ERR value is not an integer or out of range\r\n"),
        ])
    }

    @Test func refusedExecAbortsTheTransaction() {
        let execArity = "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"
        let previous = "-EXECABORT Transaction discarded because of previous errors.\r\n"
        check(CommandHarness(), [
            (bytes("MULTI"), "+OK\r\n"),
            (bytes("SET", "a", "1"), "+QUEUED\r\n"),
            (bytes("EXEC", "a"), execArity),
            (bytes("EXEC"), "-ERR EXEC without MULTI\r\n"),
            (bytes("GET", "a"), "$-1\r\n"),
            (bytes("EXEC", "a"), execArity),
            (bytes("MULTI"), "+OK\r\n"),
            (bytes("DISCARD", "a"), "-ERR wrong number of arguments for 'discard' command\r\n"),
            (bytes("EXEC"), previous),
            (bytes("MULTI"), "+OK\r\n"),
            (bytes("MULTI", "a"), "-ERR wrong number of arguments for 'multi' command\r\n"),
            (bytes("EXEC"), previous),
        ])
    }

    @Test func arityIsCheckedBeforeAuthentication() {
        let harness = CommandHarness(configuration: EngineConfiguration(requirePass: Array("pw".utf8)))
        harness.engine.sessionOpened(harness.session)
        check(harness, [
            (bytes("GET"), "-ERR wrong number of arguments for 'get' command\r\n"),
            (bytes("EXEC"), "-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"),
            (bytes("EXEC", "a"),
             "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"),
            (bytes("MULTI"), "-NOAUTH Authentication required.\r\n"),
        ])
    }

    @Test func scanCursorsParseLikeStrtoul() {
        let invalid = "-ERR invalid cursor\r\n"
        let empty = "*2\r\n$1\r\n0\r\n*0\r\n"
        let one = "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nh\r\n"
        check(CommandHarness(), [
            (bytes("SET", "h", "1"), "+OK\r\n"),
            (bytes("SCAN", "-1"), empty),
            (bytes("SCAN", "18446744073709551615"), empty),
            (bytes("SCAN", "-0"), one),
            (bytes("SCAN", ""), one),
            ([Array("SCAN".utf8), [0x00] + Array("x".utf8)], one),
            (bytes("SCAN", "abc"), invalid),
            (bytes("SCAN", "+"), invalid),
            (bytes("SCAN", "-"), invalid),
            (bytes("SCAN", " 5"), invalid),
            (bytes("SCAN", "5 "), invalid),
            (bytes("SCAN", "18446744073709551616"), invalid),
        ])
    }
}
