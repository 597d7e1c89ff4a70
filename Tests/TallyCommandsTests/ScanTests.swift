// ScanTests: HSCAN paging through the harness (SSCAN and ZSCAN are in their families' tests).
import TallyCommands
import TallyKeyspace
import TallyTestSupport
import Testing

@Suite struct ScanTests {
    /// Up to 512 fields a hash answers whole with cursor 0; a larger one pages by cursor and
    /// every field present for the whole scan comes out while fields come and go.
    @Test func hscanPagesALargeHash() {
        let h = CommandHarness()
        h.run("HSET", "small", "a", "1", "b", "2")
        #expect(h.reply("HSCAN", "small", "0", "COUNT", "1")
            == "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n")
        h.run((["HSET", "h"] + (0..<2000).flatMap { ["f\($0)", "v"] }).map { Array($0.utf8) })
        var cursor = "0"
        var seen = Set<String>()
        var pages = 0
        repeat {
            let lines = h.reply("HSCAN", "h", cursor, "COUNT", "10")
                .split(separator: Character("\r\n"), omittingEmptySubsequences: false).map(String.init)
            let fields = stride(from: 5, to: lines.count - 1, by: 4).map { lines[$0] }
            #expect(fields.count < 200)
            seen.formUnion(fields)
            cursor = lines[2]
            pages += 1
            if pages % 4 == 0 {
                h.run((["HSET", "h"] + (0..<40).flatMap { ["n\(pages)-\($0)", "v"] }).map { Array($0.utf8) })
            }
            if pages % 5 == 0 { h.run("HDEL", "h", "f\(1900 + pages)") }
        } while cursor != "0" && pages < 10_000
        #expect(pages > 10)
        for index in 0..<1900 { #expect(seen.contains("f\(index)")) }
        #expect(h.reply("HSCAN", "h", "0", "COUNT", "9223372036854775807").hasPrefix("*2\r\n$1\r\n0\r\n"))
        #expect(h.reply("ZADD", "z", "1", String(repeating: "x", count: 65)) == ":1\r\n")
        #expect(h.reply("ZSCAN", "z", "0", "COUNT", "9223372036854775807").hasPrefix("*2\r\n$1\r\n0\r\n"))
        #expect(h.reply("ZSCAN", "z", "18446744073709551615").hasPrefix("*2\r\n"))
    }

    /// Pages of a full HSCAN with COUNT `count`: their field counts.
    static func hscanPages(_ h: CommandHarness, _ key: String, count: Int) -> [Int] {
        var cursor = "0"
        var pages: [Int] = []
        repeat {
            let lines = h.reply("HSCAN", key, cursor, "COUNT", String(count))
                .split(separator: Character("\r\n"), omittingEmptySubsequences: false).map(String.init)
            pages.append((lines.count - 4) / 4)
            cursor = lines[2]
        } while cursor != "0" && pages.count < 1000
        return pages
    }

    /// A hash is a hashtable, paged by cursor, once a field or value passed
    /// hash-max-listpack-value or the fields passed hash-max-listpack-entries, and stays one when
    /// it shrinks (t_hash.c hashTypeSet); a listpack hash answers whole (redis-server 7.0.15 does
    /// the same for each case here).
    @Test func hscanPagesHashtablesWhateverTheirSize() {
        let h = CommandHarness()
        h.run((["HSET", "small"] + (0..<20).flatMap { ["f\($0)", "v"] }).map { Array($0.utf8) })
        #expect(h.reply("OBJECT", "ENCODING", "small") == "$8\r\nlistpack\r\n")
        #expect(Self.hscanPages(h, "small", count: 1) == [20])

        h.run((["HSET", "long"] + (0..<20).flatMap { ["f\($0)", $0 == 7 ? String(repeating: "v", count: 65) : "v"] })
            .map { Array($0.utf8) })
        #expect(h.reply("OBJECT", "ENCODING", "long") == "$9\r\nhashtable\r\n")
        let longPages = Self.hscanPages(h, "long", count: 1)
        #expect(longPages.count > 5 && longPages.reduce(0, +) >= 20 && longPages.allSatisfy { $0 <= 5 })

        h.run("HSET", "grown", "f", String(repeating: "v", count: 64))
        #expect(h.reply("OBJECT", "ENCODING", "grown") == "$8\r\nlistpack\r\n")
        h.run("HINCRBY", "grown", String(repeating: "k", count: 65), "1")
        #expect(h.reply("OBJECT", "ENCODING", "grown") == "$9\r\nhashtable\r\n")
        h.run("HDEL", "grown", String(repeating: "k", count: 65))
        #expect(h.reply("OBJECT", "ENCODING", "grown") == "$9\r\nhashtable\r\n")

        // Pages of about COUNT, as redis-server's dict scan gives (2000 fields, COUNT 5: 364 calls
        // of 5 to 10 there), not a 32nd of the hash.
        h.run((["HSET", "big"] + (0..<2000).flatMap { ["f\($0)", "v"] }).map { Array($0.utf8) })
        let bigPages = Self.hscanPages(h, "big", count: 5)
        #expect(bigPages.count > 200 && bigPages.reduce(0, +) >= 2000 && bigPages.allSatisfy { $0 <= 12 })

        h.engine.setHashLimits(HashLimits(maxEntries: 4, maxValueBytes: 64))
        h.run("HSET", "four", "a", "1", "b", "2", "c", "3", "d", "4")
        #expect(h.reply("OBJECT", "ENCODING", "four") == "$8\r\nlistpack\r\n")
        h.run("HSET", "four", "e", "5")
        #expect(h.reply("OBJECT", "ENCODING", "four") == "$9\r\nhashtable\r\n")
        h.run("HDEL", "four", "a", "b", "c", "d")
        #expect(h.reply("OBJECT", "ENCODING", "four") == "$9\r\nhashtable\r\n")
    }
}
