// CommandInfoTests: COMMAND INFO's key specs and tips and GETKEYSANDFLAGS, recorded from redis-server 7.0.15.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct CommandInfoTests {
    /// A RESP2 key-spec map as redis-server writes it (no notes).
    static func keySpec(_ flags: [String], begin: String, find: String) -> String {
        "*6\r\n$5\r\nflags\r\n*\(flags.count)\r\n" + flags.map { "+\($0)\r\n" }.joined()
            + "$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n" + begin + "$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n" + find
    }

    static func index(_ position: Int) -> String {
        "$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:\(position)\r\n"
    }

    static func range(_ lastKey: Int) -> String {
        "$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:\(lastKey)\r\n$7\r\nkeystep\r\n:1\r\n"
            + "$5\r\nlimit\r\n:0\r\n"
    }

    static let unknown = "$7\r\nunknown\r\n$4\r\nspec\r\n*0\r\n"

    /// A command added with keys but without Redis's declarations would report derived specs:
    /// every row that takes keys has declared ones (INCREX, Tally's own, is the exception).
    @Test func everyRowWithKeysDeclaresItsKeySpecs() {
        let h = CommandHarness()
        for row in h.engine.table.rows {
            for spec in [row] + row.subcommands where spec.firstKey > 0 || spec.flags.contains(.movableKeys) {
                #expect(!spec.keySpecs.isEmpty || spec.name == "increx", "\(spec.name)")
            }
        }
    }

    @Test func bitopDeclaresItsDestinationAndSources() {
        let h = CommandHarness()
        let expected = "*1\r\n*10\r\n$5\r\nbitop\r\n:-4\r\n*2\r\n+write\r\n+denyoom\r\n:2\r\n:-1\r\n:1\r\n*3\r\n"
            + "+@write\r\n+@bitmap\r\n+@slow\r\n*0\r\n*2\r\n"
            + Self.keySpec(["OW", "update"], begin: Self.index(2), find: Self.range(0))
            + Self.keySpec(["RO", "access"], begin: Self.index(3), find: Self.range(-1)) + "*0\r\n"
        #expect(h.reply("COMMAND", "INFO", "bitop") == expected)
    }

    @Test func sortHasUnknownSpecsAndEvalCountsItsKeys() {
        let h = CommandHarness()
        let sort = h.reply("COMMAND", "INFO", "sort")
        let unknownSpec = Self.keySpec(["OW", "update"], begin: Self.unknown, find: Self.unknown)
        #expect(sort.hasSuffix("*3\r\n" + Self.keySpec(["RO", "access"], begin: Self.index(1), find: Self.range(0))
            + Self.keySpec(["RO", "access"], begin: Self.unknown, find: Self.unknown) + unknownSpec + "*0\r\n"))
        let keynum = "$6\r\nkeynum\r\n$4\r\nspec\r\n*6\r\n$9\r\nkeynumidx\r\n:0\r\n$8\r\nfirstkey\r\n:1\r\n"
            + "$7\r\nkeystep\r\n:1\r\n"
        #expect(h.reply("COMMAND", "INFO", "eval").hasSuffix(
            "*1\r\n" + Self.keySpec(["RW", "access", "update"], begin: Self.index(2), find: keynum) + "*0\r\n"))
    }

    @Test func tipsAndSubcommandNames() {
        let h = CommandHarness()
        #expect(h.reply("COMMAND", "INFO", "dbsize") == "*1\r\n*10\r\n$6\r\ndbsize\r\n:1\r\n*2\r\n+readonly\r\n"
            + "+fast\r\n:0\r\n:0\r\n:0\r\n*3\r\n+@keyspace\r\n+@read\r\n+@fast\r\n*2\r\n"
            + "$25\r\nrequest_policy:all_shards\r\n$23\r\nresponse_policy:agg_sum\r\n*0\r\n*0\r\n")
        // A container|subcommand name answers the subcommand's entry; anything else is nil.
        let reply = h.reply("COMMAND", "INFO", "OBJECT|ENCODING", "object|nosuch", "get|x", "object|encoding|x")
        #expect(reply.hasPrefix("*4\r\n*10\r\n$15\r\nobject|encoding\r\n:3\r\n"))
        #expect(reply.hasSuffix("$23\r\nnondeterministic_output\r\n*1\r\n"
            + Self.keySpec(["RO"], begin: Self.index(2), find: Self.range(0)) + "*0\r\n$-1\r\n$-1\r\n$-1\r\n"))
    }

    @Test func getKeysAndFlagsFollowTheKeySpecs() {
        let h = CommandHarness()
        #expect(h.reply("COMMAND", "GETKEYSANDFLAGS", "set", "k", "v", "get")
            == "*1\r\n*2\r\n$1\r\nk\r\n*3\r\n+RW\r\n+access\r\n+update\r\n")
        #expect(h.reply("COMMAND", "GETKEYSANDFLAGS", "set", "k", "v")
            == "*1\r\n*2\r\n$1\r\nk\r\n*2\r\n+OW\r\n+update\r\n")
        #expect(h.reply("COMMAND", "GETKEYSANDFLAGS", "lmove", "a", "b", "left", "right")
            == "*2\r\n*2\r\n$1\r\na\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n*2\r\n$1\r\nb\r\n*2\r\n+RW\r\n+insert\r\n")
        #expect(h.reply("COMMAND", "GETKEYSANDFLAGS", "sort", "k1", "store", "k2")
            == "*2\r\n*2\r\n$2\r\nk1\r\n*2\r\n+RO\r\n+access\r\n*2\r\n$2\r\nk2\r\n*2\r\n+OW\r\n+update\r\n")
    }
}
