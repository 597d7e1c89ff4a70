// TableTests: the command table is consistent and COMMAND reflects it.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct TableTests {
    @Test func rowsAreSane() {
        let h = CommandHarness()
        for row in h.engine.table.rows {
            #expect(row.name == row.name.lowercased())
            #expect(row.arity != 0, "\(row.name)")
            #expect(!(row.flags.contains(.write) && row.flags.contains(.readonly)), "\(row.name)")
            if row.firstKey > 0 {
                #expect(row.step > 0, "\(row.name)")
                #expect(row.lastKey < 0 || row.lastKey >= row.firstKey, "\(row.name)")
            }
            #expect(h.engine.table.lookup(Array(row.name.uppercased().utf8)[...]) != nil)
        }
        #expect(h.reply("COMMAND", "COUNT") == ":\(h.engine.table.count)\r\n")
        #expect(h.engine.table.lookup(Array("GETX".utf8)[...]) == nil)
    }

    /// Lookup folds only A-Z: every row is found under its own name in mixed case and nothing
    /// else is, whatever bytes surround or replace a letter (NUL padding, bytes with the high
    /// bit set, the punctuation next to the letters in ASCII).
    @Test func lookupFoldsOnlyAsciiLetters() {
        let table = CommandHarness().engine.table
        for (index, row) in table.rows.enumerated() {
            var name = Array(row.name.utf8)
            for position in name.indices where position % 2 == 0 && name[position] >= 97 && name[position] <= 122 {
                name[position] -= 32
            }
            #expect(table.lookup(name[...]) == index, "\(row.name)")
            #expect(table.lookup((name + [0])[...]) == nil, "\(row.name)")
            for replacement: UInt8 in [0, 0x40, 0x5B, 0x60, 0x7B, 0xC1, 0xE1, 0xFF] {
                var changed = name
                changed[changed.count - 1] = replacement
                if let found = table.lookup(changed[...]) {
                    #expect(table.rows[found].name.utf8.elementsEqual(changed.map {
                        $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0
                    }))
                }
            }
        }
        #expect(table.lookup(Array(repeating: UInt8(ascii: "a"), count: 33)[...]) == nil)
        #expect(table.lookup([][...]) == nil)
    }

    @Test func commandInfoMatchesRedisForGet() {
        let h = CommandHarness()
        // Recorded from redis-server 7.0.15.
        let expected = "*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n"
            + "+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n"
            + "*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n"
            + "$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\n"
            + "limit\r\n:0\r\n*0\r\n"
        #expect(h.reply("COMMAND", "INFO", "get") == expected)
        #expect(h.reply("COMMAND", "INFO", "nosuch") == "*1\r\n$-1\r\n")
        #expect(h.reply("COMMAND", "FOO") == "-ERR unknown subcommand 'FOO'. Try COMMAND HELP.\r\n")
    }

    @Test func statisticsCountCallsAndFailures() {
        let h = CommandHarness()
        h.run("SET", "k", "v")
        h.run("INCR", "k")
        h.run("INCR")
        let incr = h.engine.commandStatistics().first { $0.name == "incr" }
        #expect(incr?.calls == 1)
        #expect(incr?.failedCalls == 1)
        #expect(incr?.rejectedCalls == 1)
    }

    /// Redis's AOF loader calls a command's proc directly (aof.c loadSingleAppendOnlyFile), so a
    /// replayed log leaves INFO commandstats and total_commands_processed as they were.
    @Test func replayedLogCommandsAreNotCounted() {
        let h = CommandHarness()
        h.session.isReplayingLog = true
        h.run("SET", "k", "1")
        h.run("INCR", "k")
        h.session.isReplayingLog = false
        #expect(h.engine.commandStatistics().allSatisfy { $0.calls == 0 })
        #expect(h.reply("GET", "k") == "$1\r\n2\r\n")
        #expect(h.engine.commandStatistics().first { $0.name == "get" }?.calls == 1)
    }
}
