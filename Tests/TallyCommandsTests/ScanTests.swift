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
}
