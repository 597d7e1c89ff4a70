// LatencyHistogramTests: the bucket bounds and percentiles INFO latencystats and LATENCY HISTOGRAM
// report, as Redis's HdrHistogram (1 ns to 1 s, 2 significant digits) reports them, and the
// commands' reply shapes.
import TallyCommands
import TallyTestSupport
import Testing

@Suite struct LatencyHistogramTests {
    func recorded(_ microseconds: [Int64]) -> LatencyHistogram.Snapshot? {
        let histogram = LatencyHistogram()
        for value in microseconds { histogram.record(microseconds: value) }
        return histogram.snapshot()
    }

    @Test func percentilesAreSlotBoundsInNanoseconds() throws {
        // 6 µs = 6000 ns falls in the slot 5984...6015 (width 32): redis-server 7.0.15 reports
        // p0=5.984,p50=6.015 for one such call.
        let one = try #require(recorded([6]))
        #expect(one.total == 1)
        #expect(one.value(atPercentile: 0) == 5984)
        #expect(one.value(atPercentile: 50) == 6015)
        #expect(one.value(atPercentile: 100) == 6015)
        // A call under a microsecond counts as 1 ns, the smallest value.
        #expect(recorded([0])?.value(atPercentile: 99.9) == 1)
        // 1 µs: slot 1000...1003 ("1.003", the usual p50 of a fast command).
        let spread = try #require(recorded([1, 1, 1, 2, 40]))
        #expect(spread.value(atPercentile: 50) == 1003)
        #expect(spread.value(atPercentile: 80) == 2007)
        #expect(spread.value(atPercentile: 99) == 40_191)
        // Beyond a second the value is clamped to 1 s.
        #expect(recorded([5_000_000])?.value(atPercentile: 50) == 1_002_438_655)
    }

    @Test func cumulativeRowsDoubleFrom1024Nanoseconds() throws {
        // Redis replies `histogram_usec 8 1` for one 6 µs call: the 8192 ns level's slot ends at 8255.
        #expect(try #require(recorded([6])).cumulativeMicroseconds().map { [$0.0, $0.1] } == [[8, 1]])
        let rows = try #require(recorded([0, 1, 2, 3, 33, 34])).cumulativeMicroseconds()
        #expect(rows.map { [$0.0, $0.1] } == [[1, 2], [2, 3], [4, 4], [33, 5], [66, 6]])
        #expect(LatencyHistogram().snapshot() == nil)
        let reset = LatencyHistogram()
        reset.record(microseconds: 3)
        reset.reset()
        #expect(reset.snapshot() == nil)
    }

    @Test func labelsAndParsing() {
        #expect(percentileLabel(50) == "50")
        #expect(percentileLabel(99.9) == "99.9")
        #expect(percentileLabel(0) == "0")
        #expect(percentileLabel(12.3456789) == "12.345679")
        #expect(parsePercentile("99.9") == 99.9)
        #expect(parsePercentile("a") == nil)
        #expect(parsePercentile(" 1") == nil)
        #expect(parsePercentile("nan") == nil)
    }

    @Test func latencyHistogramReplies() {
        let h = CommandHarness()
        h.run("SET", "a", "b")
        h.run("SET", "c", "d")
        h.run("OBJECT", "ENCODING", "a")
        #expect(h.reply("LATENCY", "HISTOGRAM", "blabla") == "*0\r\n")
        let set = h.reply("LATENCY", "HISTOGRAM", "blabla", "set")
        #expect(set.hasPrefix("*2\r\n$3\r\nset\r\n*4\r\n$5\r\ncalls\r\n:2\r\n$14\r\nhistogram_usec\r\n*"))
        // A container answers for its subcommands, and `container|sub` names one.
        #expect(h.reply("LATENCY", "HISTOGRAM", "object").hasPrefix("*2\r\n$15\r\nobject|encoding\r\n"))
        #expect(h.reply("LATENCY", "HISTOGRAM", "OBJECT|Encoding").hasPrefix("*2\r\n$15\r\nobject|encoding\r\n"))
        // CONFIG RESETSTAT empties every histogram; the LATENCY call itself is recorded after it replies.
        h.engine.resetStatistics()
        h.run("GET", "a")
        #expect(h.reply("LATENCY", "HISTOGRAM").hasPrefix("*2\r\n$3\r\nget\r\n"))
        #expect(h.reply("LATENCY", "HISTOGRAM").hasPrefix("*4\r\n$3\r\nget\r\n"))
        #expect(h.reply("LATENCY", "GRAPH", "command") == "-ERR No samples available for event 'command'\r\n")
    }
}
