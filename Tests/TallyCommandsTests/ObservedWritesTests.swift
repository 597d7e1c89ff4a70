// ObservedWritesTests: every reply, reads included, waits for the log offset of what its command could see.
import Testing
import TallyCommands
import TallyKeyspace
import TallyTestSupport

@Suite struct ObservedWritesTests {
    /// A reader on another session sees the writer's value: its reply must wait for the
    /// writer's record, so its observed offset covers it.
    @Test func readerObservesTheWritersOffset() {
        let writer = CommandHarness()
        let log = RecordingLog()
        writer.engine.attachLog(log)
        let reader = CommandHarness(sharing: writer)
        #expect(reader.session.replyLogOffset == 0)
        writer.run("INCR", "n")
        let written = writer.session.pendingLogOffset
        #expect(written == 1)
        #expect(reader.reply("GET", "n") == "$1\r\n1\r\n")
        #expect(reader.session.observedLogOffset == written)
        #expect(reader.session.pendingLogOffset == 0, "the reader wrote nothing (WAITAOF counts own writes)")
        #expect(reader.session.replyLogOffset == written)
        writer.run("INCR", "n")
        writer.run("INCR", "other")
        // Any command, even one that touches no key, carries the current offset.
        reader.run("PING")
        #expect(reader.session.replyLogOffset == 3)
    }

    /// The high-water mark only rises, whatever order concurrent appends return in.
    @Test func offsetsOnlyRise() {
        let first = CommandHarness()
        let log = RecordingLog()
        first.engine.attachLog(log)
        let second = CommandHarness(sharing: first)
        for index in 0..<20 {
            (index % 2 == 0 ? first : second).run("INCR", "k\(index % 3)")
        }
        let reader = CommandHarness(sharing: first)
        reader.run("GET", "k0")
        #expect(reader.session.observedLogOffset == 20)
    }

    /// Without a log nothing waits.
    @Test func noLogNoWait() {
        let harness = CommandHarness()
        harness.run("SET", "a", "1")
        harness.run("GET", "a")
        #expect(harness.session.replyLogOffset == 0)
    }
}
