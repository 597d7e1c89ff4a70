// SmokeTests: quick end-to-end checks of dispatch through the harness.
import TallyTestSupport
import Testing

@Suite struct DispatchTests {
    @Test func unknownAndArity() {
        let h = CommandHarness()
        #expect(h.reply("foo", "a", "b") == "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n")
        #expect(h.reply("incrby", "k") == "-ERR wrong number of arguments for 'incrby' command\r\n")
        #expect(h.reply("PING") == "+PONG\r\n")
        #expect(h.reply("incr", "k") == ":1\r\n")
        #expect(h.reply("INCRBY", "k", "41") == ":42\r\n")
        #expect(h.reply("get", "k") == "$2\r\n42\r\n")
        #expect(h.reply("set", "k", "v", "EX", "10") == "+OK\r\n")
        #expect(h.reply("get", "k") == "$1\r\nv\r\n")
    }
}
