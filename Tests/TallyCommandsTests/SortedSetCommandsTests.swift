// SortedSetCommandsTests: sorted-set replies (RESP2/3), encodings, propagation and blocking pops via the harness.
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyTestSupport
import Testing

@Suite struct SortedSetCommandsTests {
    @Test func addScoreAndRange() {
        let h = CommandHarness()
        #expect(h.reply("ZADD", "z", "1", "a", "2", "b", "1.1", "c") == ":3\r\n")
        #expect(h.reply("ZADD", "z", "CH", "5", "a", "2", "b") == ":1\r\n")
        #expect(h.reply("ZSCORE", "z", "c") == "$18\r\n1.1000000000000001\r\n")
        #expect(h.reply("ZRANGE", "z", "0", "-1", "WITHSCORES")
            == "*6\r\n$1\r\nc\r\n$18\r\n1.1000000000000001\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\na\r\n$1\r\n5\r\n")
        #expect(h.reply("ZRANK", "z", "a") == ":2\r\n")
        #expect(h.reply("ZREVRANK", "z", "a") == ":0\r\n")
        #expect(h.reply("ZINCRBY", "z", "-inf", "a") == "$4\r\n-inf\r\n")
        #expect(h.reply("ZINCRBY", "z", "+inf", "a") == "-ERR resulting score is not a number (NaN)\r\n")
        #expect(h.reply("ZADD", "z", "XX", "NX", "1", "a")
            == "-ERR XX and NX options at the same time are not compatible\r\n")
        #expect(h.reply("ZADD", "z", "GT", "LT", "1", "a")
            == "-ERR GT, LT, and/or NX options at the same time are not compatible\r\n")
        #expect(h.reply("ZADD", "z", "INCR", "1", "a", "2", "b")
            == "-ERR INCR option supports a single increment-element pair\r\n")
        #expect(h.reply("ZADD", "z", "nan", "a") == "-ERR value is not a valid float\r\n")
        #expect(h.reply("ZCOUNT", "z", "(1", "+inf") == ":2\r\n")
        #expect(h.reply("ZCOUNT", "z", "x", "1") == "-ERR min or max is not a float\r\n")
        #expect(h.reply("ZLEXCOUNT", "z", "a", "b") == "-ERR min or max not valid string range item\r\n")
        #expect(h.reply("TYPE", "z") == "+zset\r\n")
    }

    @Test func resp3RepliesUseDoublesAndPairs() {
        let h = CommandHarness()
        h.run("HELLO", "3")
        h.run("ZADD", "z", "1", "a", "2.5", "b")
        #expect(h.reply("ZSCORE", "z", "b") == ",2.5\r\n")
        #expect(h.reply("ZRANGE", "z", "0", "-1", "WITHSCORES")
            == "*2\r\n*2\r\n$1\r\na\r\n,1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n")
        #expect(h.reply("ZPOPMIN", "z") == "*2\r\n$1\r\na\r\n,1\r\n")
        #expect(h.reply("ZPOPMAX", "z", "1") == "*1\r\n*2\r\n$1\r\nb\r\n,2.5\r\n")
    }

    @Test func encodingFollowsTheListpackLimits() {
        let h = CommandHarness()
        h.run("ZADD", "small", "1", "a")
        #expect(h.reply("OBJECT", "ENCODING", "small") == "$8\r\nlistpack\r\n")
        h.run("ZADD", "small", "2", String(repeating: "x", count: 65))
        #expect(h.reply("OBJECT", "ENCODING", "small") == "$8\r\nskiplist\r\n")
        h.run("ZREM", "small", String(repeating: "x", count: 65))
        #expect(h.reply("OBJECT", "ENCODING", "small") == "$8\r\nskiplist\r\n")
        let members = (0..<129).flatMap { ["\($0)", "m\($0)"] }
        h.run((["ZADD", "big"] + members).map { Array($0.utf8) })
        #expect(h.reply("OBJECT", "ENCODING", "big") == "$8\r\nskiplist\r\n")
        h.run((["ZADD", "edge"] + Array(members.prefix(256))).map { Array($0.utf8) })
        #expect(h.reply("OBJECT", "ENCODING", "edge") == "$8\r\nlistpack\r\n")
        h.run("ZUNIONSTORE", "back", "1", "small")
        #expect(h.reply("OBJECT", "ENCODING", "back") == "$8\r\nlistpack\r\n")
    }

    @Test func largeSetsKeepOrderAndRanks() {
        let h = CommandHarness()
        var expected: [(Double, String)] = []
        for batch in 0..<20 {
            var command = ["ZADD", "z"]
            for index in 0..<100 {
                let number = batch * 100 + index
                let score = Double((number * 7919) % 1000)
                command += ["\(score)", "m\(number)"]
                expected.append((score, "m\(number)"))
            }
            h.run(command.map { Array($0.utf8) })
        }
        expected.sort { $0.0 != $1.0 ? $0.0 < $1.0 : Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8)) }
        #expect(h.reply("ZCARD", "z") == ":2000\r\n")
        for rank in stride(from: 0, to: 2000, by: 97) {
            let member = expected[rank].1
            #expect(h.reply("ZRANK", "z", member) == ":\(rank)\r\n")
            #expect(h.reply("ZRANGE", "z", "\(rank)", "\(rank)") == "*1\r\n$\(member.utf8.count)\r\n\(member)\r\n")
        }
        #expect(h.reply("ZREMRANGEBYRANK", "z", "10", "1500") == ":1491\r\n")
        expected.removeSubrange(10...1500)
        let last = expected[expected.count - 1].1
        #expect(h.reply("ZRANGE", "z", "-1", "-1") == "*1\r\n$\(last.utf8.count)\r\n\(last)\r\n")
        #expect(h.reply("ZCARD", "z") == ":509\r\n")
        #expect(h.reply("ZREMRANGEBYSCORE", "z", "-inf", "+inf") == ":509\r\n")
        #expect(h.reply("EXISTS", "z") == ":0\r\n")
    }

    /// Lex ranges over mixed scores follow Redis's walks over the score order (replies checked
    /// against redis-server 7.0.15 for the listpack; the skiplist as it walks with one-level nodes).
    @Test func lexRangesWithMixedScoresWalkTheScoreOrder() {
        let h = CommandHarness()
        h.run([Array("ZADD".utf8), Array("h2".utf8), Array("10".utf8), [], Array("inf".utf8), [0xFF],
               Array("-1".utf8), Array("f0".utf8)])
        #expect(h.reply("ZREVRANGEBYLEX", "h2", "[", "-", "LIMIT", "0", "2") == "*0\r\n")
        #expect(h.reply("ZLEXCOUNT", "h2", "-", "[") == ":0\r\n")
        h.run("ZADD", "z", "0", "a", "1", "c", "2", "b")
        #expect(h.reply("ZREVRANGEBYLEX", "z", "[b", "[a") == "*3\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\na\r\n")
        #expect(h.reply("ZREVRANGEBYLEX", "z", "[b", "[a", "LIMIT", "1", "-1") == "*2\r\n$1\r\nc\r\n$1\r\na\r\n")
        #expect(h.reply("ZRANGEBYLEX", "z", "[a", "[b") == "*1\r\n$1\r\na\r\n")
        #expect(h.reply("ZRANGEBYLEX", "z", "[a", "[b", "LIMIT", "2", "1") == "*1\r\n$1\r\nb\r\n")
        #expect(h.reply("ZLEXCOUNT", "z", "[a", "[b") == ":1\r\n")
        h.run("ZADD", "y", "0", "b", "1", "a")
        #expect(h.reply("ZREMRANGEBYLEX", "y", "[b", "[b") == ":0\r\n")
        // The indexed form: zslLastInLexRange walks from the head, zslDeleteRangeByLex skips the
        // range checks.
        let long = String(repeating: "x", count: 65)
        h.run("ZADD", "s", "0", "a", "1", "c", "2", "b", "3", long)
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$8\r\nskiplist\r\n")
        #expect(h.reply("ZREVRANGEBYLEX", "s", "[b", "[a") == "*1\r\n$1\r\na\r\n")
        #expect(h.reply("ZLEXCOUNT", "s", "[a", "[b") == ":1\r\n")
        #expect(h.reply("ZLEXCOUNT", "s", "[b", "[c") == ":2\r\n")
        h.run("ZADD", "t", "0", "b", "1", "a", "2", long)
        h.run("ZREM", "t", long)
        #expect(h.reply("ZREMRANGEBYLEX", "t", "[b", "[b") == ":2\r\n")
        #expect(h.reply("EXISTS", "t") == ":0\r\n")
    }

    /// A skiplist set is scanned by cursor (a listpack whole); every member present for the whole
    /// scan comes out even while members are added and removed between pages.
    @Test func zscanWalksAnIndexedSetByCursor() {
        let h = CommandHarness()
        h.run("ZADD", "small", "1", "a", "2", "b")
        #expect(h.reply("ZSCAN", "small", "0", "COUNT", "1")
            == "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n")
        h.run((["ZADD", "z"] + (0..<1000).flatMap { ["\($0 % 7)", "m\($0)"] }).map { Array($0.utf8) })
        var cursor = "0"
        var seen = Set<String>()
        var pages = 0
        repeat {
            let lines = h.reply("ZSCAN", "z", cursor, "COUNT", "10")
                .split(separator: Character("\r\n"), omittingEmptySubsequences: false).map(String.init)
            let members = stride(from: 5, to: lines.count - 1, by: 4).map { lines[$0] }
            #expect(members.count < 100)
            seen.formUnion(members)
            cursor = lines[2]
            pages += 1
            if pages % 4 == 0 {
                h.run((["ZADD", "z"] + (0..<40).flatMap { ["0", "n\(pages)-\($0)"] }).map { Array($0.utf8) })
            }
            if pages % 5 == 0 { h.run("ZREM", "z", "m\(900 + pages)") }
        } while cursor != "0" && pages < 10_000
        #expect(pages > 10)
        for index in 0..<900 { #expect(seen.contains("m\(index)")) }
    }

    @Test func setOperations() {
        let h = CommandHarness()
        h.run("ZADD", "a", "1", "x", "2", "y")
        h.run("ZADD", "b", "10", "y", "20", "w")
        #expect(h.reply("ZUNION", "2", "a", "b", "WITHSCORES")
            == "*6\r\n$1\r\nx\r\n$1\r\n1\r\n$1\r\ny\r\n$2\r\n12\r\n$1\r\nw\r\n$2\r\n20\r\n")
        #expect(h.reply("ZINTER", "2", "a", "b", "AGGREGATE", "MIN", "WITHSCORES") == "*2\r\n$1\r\ny\r\n$1\r\n2\r\n")
        #expect(h.reply("ZDIFF", "2", "a", "b") == "*1\r\n$1\r\nx\r\n")
        #expect(h.reply("ZINTERCARD", "2", "a", "b") == ":1\r\n")
        #expect(h.reply("ZUNIONSTORE", "d", "0", "a")
            == "-ERR at least 1 input key is needed for 'zunionstore' command\r\n")
        #expect(h.reply("ZINTERSTORE", "d", "2", "a", "missing") == ":0\r\n")
        #expect(h.reply("ZDIFFSTORE", "d", "2", "a", "b") == ":1\r\n")
        #expect(h.reply("ZRANGESTORE", "r", "b", "0", "0") == ":1\r\n")
        #expect(h.reply("ZRANGE", "r", "0", "-1") == "*1\r\n$1\r\ny\r\n")
    }

    @Test func popsArePropagatedAsZPOP() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("ZADD", "z", "1", "a", "2", "b", "3", "c")
        #expect(h.reply("ZMPOP", "2", "missing", "z", "MAX", "COUNT", "2")
            == "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n")
        #expect(h.reply("BZPOPMIN", "z", "0") == "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n")
        #expect(h.reply("BZPOPMIN", "z", "0") == "*-1\r\n")
        #expect(log.recorded == ["0:ZADD z 1 a 2 b 3 c", "0:ZPOPMAX z 2", "0:ZPOPMIN z"])
    }

    @Test func wrongTypeAndMissingKeys() {
        let h = CommandHarness()
        h.run("SET", "s", "v")
        let wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        #expect(h.reply("ZADD", "s", "1", "a") == wrongType)
        #expect(h.reply("ZRANGE", "s", "0", "-1") == wrongType)
        #expect(h.reply("ZUNION", "1", "s") == wrongType)
        #expect(h.reply("ZSCORE", "missing", "a") == "$-1\r\n")
        #expect(h.reply("ZRANGE", "missing", "0", "-1") == "*0\r\n")
        #expect(h.reply("ZPOPMIN", "missing") == "*0\r\n")
        #expect(h.reply("ZMPOP", "1", "missing", "MIN") == "*-1\r\n")
        h.run("ZADD", "z", "1", "a")
        #expect(h.reply("GET", "z") == wrongType)
        #expect(h.reply("LPUSH", "z", "x") == wrongType)
    }

    @Test func scoreText() {
        #expect(formatScore(1.1) == Array("1.1000000000000001".utf8))
        #expect(formatScore(1e20) == Array("1e+20".utf8))
        #expect(formatScore(-0.0) == Array("-0".utf8))
        #expect(scoreStorageText(1e17) == Array("100000000000000000".utf8))
        #expect(scoreStorageText(-0.0) == Array("-0".utf8))
        #expect(parseScore(Array(" 1".utf8)) == nil)
        #expect(parseScore(Array("0x10".utf8)) == 16)
        #expect(parseScore(Array("1e400".utf8)) == nil)
        #expect(ScoreBound(Array("(1".utf8))?.exclusive == true)
        #expect(ScoreBound(Array("".utf8))?.value == 0)
    }
}
