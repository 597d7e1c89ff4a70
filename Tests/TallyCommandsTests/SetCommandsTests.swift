// SetCommandsTests: set replies, encodings, propagation and SORT through the harness.
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct SetCommandsTests {
    @Test func addRemoveAndIntsetOrder() {
        let h = CommandHarness()
        #expect(h.reply("SADD", "s", "3", "1", "-70000", "1") == ":3\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$6\r\nintset\r\n")
        #expect(h.reply("SMEMBERS", "s") == "*3\r\n$6\r\n-70000\r\n$1\r\n1\r\n$1\r\n3\r\n")
        #expect(h.reply("SADD", "s", "5000000000") == ":1\r\n")
        #expect(h.reply("SMEMBERS", "s") == "*4\r\n$6\r\n-70000\r\n$1\r\n1\r\n$1\r\n3\r\n$10\r\n5000000000\r\n")
        #expect(h.reply("SISMEMBER", "s", "3") == ":1\r\n")
        #expect(h.reply("SISMEMBER", "s", "03") == ":0\r\n")
        #expect(h.reply("SMISMEMBER", "s", "3", "x", "1") == "*3\r\n:1\r\n:0\r\n:1\r\n")
        #expect(h.reply("SCARD", "s") == ":4\r\n")
        #expect(h.reply("SREM", "s", "3", "x", "-70000") == ":2\r\n")
        #expect(h.reply("SADD", "s", "a") == ":1\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$9\r\nhashtable\r\n")
        #expect(h.reply("SREM", "s", "a") == ":1\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$9\r\nhashtable\r\n")
        #expect(h.reply("SREM", "s", "1", "5000000000") == ":2\r\n")
        #expect(h.reply("EXISTS", "s") == ":0\r\n")
        #expect(h.reply("TYPE", "missing") == "+none\r\n")
        h.run("SADD", "t", "x")
        #expect(h.reply("TYPE", "t") == "+set\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "t") == "$9\r\nhashtable\r\n")
    }

    @Test func intsetConvertsPastTheLimit() {
        let h = CommandHarness()
        for value in 0..<512 { h.run("SADD", "s", String(value)) }
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$6\r\nintset\r\n")
        h.run("SADD", "s", "512")
        #expect(h.reply("OBJECT", "ENCODING", "s") == "$9\r\nhashtable\r\n")
        #expect(h.reply("SCARD", "s") == ":513\r\n")
        for value in 0..<500 { h.run("SREM", "s", String(value)) }
        #expect(h.reply("SCARD", "s") == ":13\r\n")
        #expect(h.reply("SISMEMBER", "s", "505") == ":1\r\n")
        #expect(h.reply("SISMEMBER", "s", "5") == ":0\r\n")
    }

    @Test func largeTableKeepsEveryMember() {
        var set = SetValue()
        for value in 0..<20000 { set.insert(Array("member:\(value)".utf8)) }
        #expect(set.count == 20000)
        for value in stride(from: 0, to: 20000, by: 2) {
            let removed = set.remove(Array("member:\(value)".utf8))
            #expect(removed)
        }
        #expect(set.count == 10000)
        for value in 0..<20000 { #expect(set.contains(Array("member:\(value)".utf8)) == (value % 2 == 1)) }
        var seen = Set<[UInt8]>()
        set.forEach { seen.insert(Array($0)) }
        #expect(seen.count == 10000)
        let added = set.insert([UInt8]())
        let again = set.insert([UInt8]())
        #expect(added && !again && set.contains([UInt8]()))
    }

    /// Random inserts and removals against a Swift `Set`, members from empty to 300 bytes
    /// (across the stack-composed entry limit and the two-byte length header), any byte value.
    @Test func randomOperationsMatchAModelSet() {
        var generator = SystemRandomNumberGenerator()
        var set = SetValue()
        var model = Set<[UInt8]>()
        let lengths = [0, 1, 3, 4, 7, 8, 20, 59, 60, 61, 63, 64, 65, 126, 127, 128, 129, 300]
        for _ in 0..<30000 {
            let length = lengths.randomElement(using: &generator)!
            let seed = UInt8.random(in: 0..<40, using: &generator)
            let member = (0..<length).map { UInt8(truncatingIfNeeded: Int(seed) &* 37 &+ $0 &* 11) }
            if Bool.random(using: &generator) || model.count < 200 {
                #expect(set.insert(member) == model.insert(member).inserted)
            } else {
                #expect(set.remove(member) == (model.remove(member) != nil))
            }
        }
        #expect(set.count == model.count)
        for member in model { #expect(set.contains(member)) }
        var seen = Set<[UInt8]>()
        set.forEach { seen.insert(Array($0)) }
        #expect(seen == model)
    }

    @Test func errorsAndEmptyReplies() {
        let h = CommandHarness()
        h.run("SET", "str", "v")
        let wrongType = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
        #expect(h.reply("SADD", "str", "a") == wrongType)
        #expect(h.reply("SINTER", "missing", "str") == wrongType)
        #expect(h.reply("SMEMBERS", "missing") == "*0\r\n")
        #expect(h.reply("SPOP", "missing") == "$-1\r\n")
        #expect(h.reply("SPOP", "missing", "3") == "*0\r\n")
        #expect(h.reply("SPOP", "missing", "-1") == "-ERR value is out of range, must be positive\r\n")
        #expect(h.reply("SRANDMEMBER", "missing", "-3") == "*0\r\n")
        #expect(h.reply("SRANDMEMBER", "missing", "-9223372036854775808")
            == "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807\r\n")
        #expect(h.reply("SINTERCARD", "0", "a") == "-ERR numkeys should be greater than 0\r\n")
        #expect(h.reply("SINTERCARD", "3", "a") == "-ERR Number of keys can't be greater than number of args\r\n")
        #expect(h.reply("SINTERCARD", "1", "a", "LIMIT", "-1") == "-ERR LIMIT can't be negative\r\n")
        #expect(h.reply("SSCAN", "missing", "0") == "*2\r\n$1\r\n0\r\n*0\r\n")
    }

    /// One SSCAN page: the next cursor and the members (ASCII members only).
    private func scanPage(_ h: CommandHarness, _ key: String, _ cursor: String, count: Int) -> (String, [String]) {
        let lines = h.reply("SSCAN", key, cursor, "COUNT", "\(count)")
            .split(separator: Character("\r\n"), omittingEmptySubsequences: false).map(String.init)
        let members = stride(from: 5, to: lines.count - 1, by: 2).map { lines[$0] }
        return (lines[2], members)
    }

    /// A hashtable set is scanned by cursor and COUNT (an intset whole); every member present for
    /// the whole scan comes out even while members are added and removed between pages.
    @Test func sscanWalksATableByCursor() {
        let h = CommandHarness()
        h.run((["SADD", "small"] + (0..<20).map { "\($0)" }).map { Array($0.utf8) })
        #expect(scanPage(h, "small", "0", count: 5).0 == "0")
        h.run((["SADD", "s"] + (0..<2000).map { "m\($0)" }).map { Array($0.utf8) })
        var cursor = "0"
        var seen = Set<String>()
        var pages = 0
        var added = 0
        repeat {
            let (next, members) = scanPage(h, "s", cursor, count: 10)
            #expect(members.count < 200)
            seen.formUnion(members)
            cursor = next
            pages += 1
            // Churn between pages: grow the table (rehashes) and remove members outside 0..<1000.
            if pages % 3 == 0 {
                h.run((["SADD", "s"] + (0..<50).map { "n\(added + $0)" }).map { Array($0.utf8) })
                added += 50
            }
            if pages % 5 == 0 { h.run("SREM", "s", "m\(1000 + pages)") }
        } while cursor != "0" && pages < 10_000
        #expect(pages > 20)
        #expect(cursor == "0")
        for index in 0..<1000 { #expect(seen.contains("m\(index)")) }
        #expect(h.reply("SSCAN", "s", "0", "COUNT", "0") == "-ERR syntax error\r\n")
        #expect(h.reply("SSCAN", "s", "0", "COUNT", "9223372036854775807").hasPrefix("*2\r\n$1\r\n0\r\n"))
        #expect(h.reply("SSCAN", "s", "18446744073709551615", "COUNT", "3").hasPrefix("*2\r\n"))
    }

    @Test func algebraAndStore() {
        let h = CommandHarness()
        h.run("SADD", "a", "1", "2", "3", "4")
        h.run("SADD", "b", "2", "3", "x")
        h.run("SADD", "c", "3", "4", "5")
        #expect(h.reply("SINTER", "a", "c") == "*2\r\n$1\r\n3\r\n$1\r\n4\r\n")
        #expect(h.reply("SINTERCARD", "2", "a", "c") == ":2\r\n")
        #expect(h.reply("SINTERCARD", "2", "a", "c", "LIMIT", "1") == ":1\r\n")
        #expect(h.reply("SDIFF", "a", "b", "missing") == "*2\r\n$1\r\n1\r\n$1\r\n4\r\n")
        #expect(h.reply("SDIFF", "a", "a") == "*0\r\n")
        #expect(h.reply("SUNIONSTORE", "u", "a", "c") == ":5\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "u") == "$6\r\nintset\r\n")
        #expect(h.reply("SMEMBERS", "u") == "*5\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n")
        #expect(h.reply("SINTERSTORE", "u", "a", "missing") == ":0\r\n")
        #expect(h.reply("EXISTS", "u") == ":0\r\n")
        #expect(h.reply("SDIFFSTORE", "d", "b", "a") == ":1\r\n")
        #expect(h.reply("OBJECT", "ENCODING", "d") == "$9\r\nhashtable\r\n")
        #expect(h.reply("SMOVE", "a", "d", "1") == ":1\r\n")
        #expect(h.reply("SMOVE", "a", "d", "1") == ":0\r\n")
        #expect(h.reply("SMOVE", "a", "a", "2") == ":1\r\n")
        #expect(h.reply("SCARD", "d") == ":2\r\n")
    }

    @Test func resp3RepliesAreSets() {
        let h = CommandHarness(resp3: true)
        h.run("SADD", "a", "1", "2")
        #expect(h.reply("SMEMBERS", "a") == "~2\r\n$1\r\n1\r\n$1\r\n2\r\n")
        #expect(h.reply("SUNION", "a") == "~2\r\n$1\r\n1\r\n$1\r\n2\r\n")
        #expect(h.reply("SMEMBERS", "none") == "~0\r\n")
        #expect(h.reply("SRANDMEMBER", "a", "5") == "*2\r\n$1\r\n1\r\n$1\r\n2\r\n")
        #expect(h.reply("SPOP", "a", "5") == "~2\r\n$1\r\n1\r\n$1\r\n2\r\n")
    }

    @Test func spopIsLoggedAsSremOrDel() {
        let h = CommandHarness()
        let log = RecordingLog()
        h.engine.attachLog(log)
        h.run("SADD", "s", "1")
        h.run("SPOP", "s")
        h.run("SADD", "t", "1", "2", "3")
        h.run("SPOP", "t", "10")
        h.run("SADD", "u", "7", "8", "9", "10", "11", "12")
        let popped = h.run("SPOP", "u", "1")
        let member = String(decoding: popped.suffix(from: 8).prefix(while: { $0 != 13 }), as: UTF8.self)
        #expect(log.recorded == ["0:SADD s 1", "0:SREM s 1", "0:SADD t 1 2 3", "0:DEL t",
                                 "0:SADD u 7 8 9 10 11 12", "0:SREM u \(member)"])
    }

    @Test func sortListsAndSets() {
        let h = CommandHarness()
        h.run("RPUSH", "l", "3", "1", "2")
        #expect(h.reply("SORT", "l") == "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n")
        #expect(h.reply("SORT", "l", "DESC", "LIMIT", "0", "2") == "*2\r\n$1\r\n3\r\n$1\r\n2\r\n")
        #expect(h.reply("SORT", "l", "BY", "nosort", "DESC") == "*3\r\n$1\r\n2\r\n$1\r\n1\r\n$1\r\n3\r\n")
        h.run("MSET", "w_1", "30", "w_2", "10", "w_3", "20", "o_1", "one")
        h.run("HSET", "h_2", "f", "two")
        #expect(h.reply("SORT", "l", "BY", "w_*", "GET", "#", "GET", "o_*", "GET", "h_*->f")
            == "*9\r\n$1\r\n2\r\n$-1\r\n$3\r\ntwo\r\n$1\r\n3\r\n$-1\r\n$-1\r\n$1\r\n1\r\n$3\r\none\r\n$-1\r\n")
        h.run("SADD", "s", "b", "a", "c")
        #expect(h.reply("SORT", "s", "ALPHA") == "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
        #expect(h.reply("SORT", "s") == "-ERR One or more scores can't be converted into double\r\n")
        #expect(h.reply("SORT", "s", "BY", "nosort", "STORE", "dst") == ":3\r\n")
        #expect(h.reply("LRANGE", "dst", "0", "-1") == "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n")
        #expect(h.reply("SORT_RO", "s", "ALPHA", "STORE", "x") == "-ERR syntax error\r\n")
        #expect(h.reply("SORT", "missing", "STORE", "dst") == ":0\r\n")
        #expect(h.reply("EXISTS", "dst") == ":0\r\n")
        h.run("HSET", "hash", "a", "b")
        #expect(h.reply("SORT", "hash")
            == "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
    }
}
