// LatencyMonitor: LATENCY LATEST/HISTORY/RESET/DOCTOR/HELP and the samples behind them (latency.c).
import Glibc
import Synchronization
import TallyKeyspace
import TallyProtocol

/// Latency events at or over `latency-monitor-threshold` milliseconds (0 disables it): for each
/// event the last 160 per-second maxima and the all-time maximum, as Redis keeps them. The
/// engine samples `command` and `fast-command` after every command and `expire-cycle` after an
/// active expiry pass; while the monitor is off that costs one relaxed load.
public final class LatencyMonitor: Sendable {
    /// Samples kept per event (LATENCY_TS_LEN).
    static let historyLength = 160

    struct Series {
        var samples: [(seconds: Int64, milliseconds: Int64)] = []   // oldest first
        var maximum: Int64 = 0
    }

    private let thresholdMilliseconds = Atomic<Int64>(0)
    private let events = Mutex<[(name: String, series: Series)]>([])

    /// A monitor that is off (Redis's default threshold 0).
    public init() {}

    /// Applies `latency-monitor-threshold`.
    public func configure(thresholdMilliseconds value: Int64) {
        thresholdMilliseconds.store(max(0, value), ordering: .relaxed)
    }

    /// True if the monitor is on.
    var isEnabled: Bool { thresholdMilliseconds.load(ordering: .relaxed) > 0 }

    /// latencyAddSampleIfNeeded: records `milliseconds` for `event` if the monitor is on and it
    /// reaches the threshold; a sample in the same second as the previous one raises it instead.
    @inline(__always) func sample(_ event: StaticString, milliseconds: Int64, unixSeconds: @autoclosure () -> Int64) {
        let threshold = thresholdMilliseconds.load(ordering: .relaxed)
        guard threshold > 0 && milliseconds >= threshold else { return }
        add(event.description, milliseconds: milliseconds, unixSeconds: unixSeconds())
    }

    func add(_ event: String, milliseconds: Int64, unixSeconds: Int64) {
        events.withLock { events in
            var index = events.firstIndex { $0.name == event }
            if index == nil {
                events.append((event, Series()))
                index = events.count - 1
            }
            guard let position = index else { return }
            var series = events[position].series
            series.maximum = max(series.maximum, milliseconds)
            if let last = series.samples.last, last.seconds == unixSeconds {
                series.samples[series.samples.count - 1].milliseconds = max(last.milliseconds, milliseconds)
            } else {
                series.samples.append((unixSeconds, milliseconds))
                if series.samples.count > Self.historyLength { series.samples.removeFirst() }
            }
            events[position].series = series
        }
    }

    func series(_ event: ArraySlice<UInt8>) -> Series? {
        let name = String(decoding: event, as: UTF8.self)
        return events.withLock { events in events.first { $0.name == name }?.series }
    }

    func all() -> [(name: String, series: Series)] { events.withLock { $0 } }

    /// Forgets the named events (all when `names` is nil); returns how many existed.
    func reset(_ names: [String]?) -> Int {
        events.withLock { events in
            guard let names else {
                defer { events.removeAll() }
                return events.count
            }
            var removed = 0
            for name in names {
                if let index = events.firstIndex(where: { $0.name == name }) {
                    events.remove(at: index)
                    removed += 1
                }
            }
            return removed
        }
    }

    /// LATENCY DOCTOR's report (latency.c createLatencyReport): per event its spike count, average,
    /// mean absolute deviation, period and worst case. Tally gives no tuning advice (Redis's is
    /// about fork, transparent huge pages and its own AOF settings).
    func report(nowSeconds: Int64) -> String {
        guard isEnabled else {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. "
                + "You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. "
                + "If we weren't in a deep space mission I'd suggest to take a look at "
                + "https://redis.io/topics/latency-monitor.\n"
        }
        let events = all()
        guard !events.isEmpty else {
            return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the "
                + "slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think "
                + "things over.\n"
        }
        var text = "Dave, I have observed latency spikes in this Redis instance. "
            + "You don't mind talking about it, do you Dave?\n\n"
        for (number, event) in events.enumerated() {
            let samples = event.series.samples
            let count = Int64(samples.count)
            let average = samples.reduce(0) { $0 + $1.milliseconds } / max(1, count)
            let deviation = samples.reduce(0) { $0 + abs(average - $1.milliseconds) } / max(1, count)
            let oldest = samples.map(\.seconds).min() ?? nowSeconds
            let period = max(1, nowSeconds - oldest)
            let perSpike = Double(period) / Double(max(1, count))
            text += "\(number + 1). \(event.name): \(count) latency spikes (average \(average)ms, mean deviation "
                + "\(deviation)ms, period \(formatTwoDecimals(perSpike)) sec). Worst all time event "
                + "\(event.series.maximum)ms.\n"
        }
        text += "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the "
            + "Redis community to get some help, providing this report in your help request.\n"
        return text
    }

    private func formatTwoDecimals(_ value: Double) -> String {
        let hundredths = Int64((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}

/// LATENCY, a container command: subcommand rows carry arity and flags; this handler runs them.
enum LatencyCommands {
    static var specs: [CommandSpec] {
        let flags: CommandFlags = [.admin, .noScript, .loading, .stale]
        let categories = "@admin @slow @dangerous"
        return [
            CommandSpec(name: "latency", arity: -2, flags: [], categories: ["@slow"], subcommands: [
                command("latency|latest", 2, flags, categories) { _ in },
                command("latency|history", 3, flags, categories) { _ in },
                command("latency|reset", -2, flags, categories) { _ in },
                command("latency|doctor", 2, flags, categories) { _ in },
                command("latency|graph", 3, flags, categories) { _ in },
                command("latency|histogram", -2, flags, categories) { _ in },
                command("latency|help", 2, [.loading, .stale], "@slow") { _ in },
            ], handler: latency),
        ]
    }

    /// LATENCY GRAPH's text (latency.c latencyCommandGenSparkeline): a header, a rule of 80
    /// dashes, then the samples as a 4-row filled sparkline with "how long ago" labels written
    /// vertically under each column, 80 columns per block (sparkline.c sparklineRender).
    static func graph(_ event: String, _ series: LatencyMonitor.Series, nowSeconds: Int64) -> String {
        let samples = series.samples
        let values = samples.map { Double($0.milliseconds) }
        let low = samples.map(\.milliseconds).min() ?? 0
        let high = samples.map(\.milliseconds).max() ?? 0
        let labels = samples.map { sample -> [Character] in
            let elapsed = nowSeconds - sample.seconds
            let text = elapsed < 60 ? "\(elapsed)s" : elapsed < 3600 ? "\(elapsed / 60)m"
                : elapsed < 86_400 ? "\(elapsed / 3600)h" : "\(elapsed / 86_400)d"
            return Array(text)
        }
        var out = "\(event) - high \(high) ms, low \(low) ms (all time high \(series.maximum) ms)\n"
        out += String(repeating: "-", count: 80) + "\n"
        let rows = 4
        let fill: [Character] = ["_", "o", "#"]
        let steps = fill.count * rows
        let minimum = values.min() ?? 0
        let range = (values.max() ?? 0) - minimum == 0 ? 1 : (values.max() ?? 0) - minimum
        var start = 0
        while start < samples.count {
            if start != 0 { out += "\n" }
            let columns = start..<Swift.min(start + 80, samples.count)
            // Sparkline rows, top first: each column shows the part of its height in this row.
            for row in 0..<rows {
                var line = ""
                for column in columns {
                    var step = Int(Double(Int((values[column] - minimum) * Double(steps))) / range)
                    step = Swift.max(0, Swift.min(step, steps - 1))
                    let index = step - (rows - row - 1) * fill.count
                    line.append(index >= 0 && index < fill.count ? fill[index] : index >= fill.count ? "|" : " ")
                }
                out += line + "\n"
            }
            // One blank row, then the labels, one character per row.
            out += String(repeating: " ", count: columns.count) + "\n"
            var labelRow = 0
            while columns.contains(where: { labels[$0].count > labelRow }) {
                out += String(columns.map { labels[$0].count > labelRow ? labels[$0][labelRow] : " " }) + "\n"
                labelRow += 1
            }
            start += 80
        }
        return out
    }

    static func latency(_ context: inout CommandContext) {
        let monitor = context.engine.latencyMonitor
        let arguments = context.arguments
        if arguments.matches(1, "latest") {
            let events = monitor.all()
            context.output.writeArrayHeader(events.count)
            for event in events {
                let last = event.series.samples.last ?? (0, 0)
                context.output.writeArrayHeader(4)
                context.output.writeBulkString(event.name.utf8)
                context.output.writeInteger(last.seconds)
                context.output.writeInteger(last.milliseconds)
                context.output.writeInteger(event.series.maximum)
            }
        } else if arguments.matches(1, "history") {
            let samples = monitor.series(arguments[2])?.samples ?? []
            context.output.writeArrayHeader(samples.count)
            for sample in samples {
                context.output.writeArrayHeader(2)
                context.output.writeInteger(sample.seconds)
                context.output.writeInteger(sample.milliseconds)
            }
        } else if arguments.matches(1, "reset") {
            let names = arguments.count == 2 ? nil
                : (2..<arguments.count).map { String(decoding: arguments[$0], as: UTF8.self) }
            context.output.writeInteger(monitor.reset(names))
        } else if arguments.matches(1, "doctor") {
            context.output.writeVerbatim(Array(monitor.report(nowSeconds: context.now / 1000).utf8))
        } else if arguments.matches(1, "graph") {
            guard let series = monitor.series(arguments[2]) else {
                context.output.writeError(Array("ERR No samples available for event '".utf8) + Array(arguments[2])
                    + Array("'".utf8))
                return
            }
            let name = String(decoding: arguments[2], as: UTF8.self)
            context.output.writeVerbatim(Array(graph(name, series, nowSeconds: context.now / 1000).utf8))
        } else if arguments.matches(1, "histogram") {
            let names = arguments.count == 2 ? nil : (2..<arguments.count).map { arguments[$0] }
            let histograms = context.engine.latencyHistograms(named: names)
            context.output.writeMapHeader(histograms.count)
            for (name, histogram) in histograms {
                context.output.writeBulkString(name.utf8)
                context.output.writeMapHeader(2)
                context.output.writeBulkString("calls".utf8)
                context.output.writeInteger(histogram.total)
                context.output.writeBulkString("histogram_usec".utf8)
                let rows = histogram.cumulativeMicroseconds()
                context.output.writeMapHeader(rows.count)
                for row in rows {
                    context.output.writeInteger(row.microseconds)
                    context.output.writeInteger(row.calls)
                }
            }
        } else {
            context.writeHelp("LATENCY", [
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "GRAPH <event>",
                "    Return an ASCII latency graph for the <event> class.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
                "HISTOGRAM [COMMAND ...]",
                "    Return a cumulative distribution of latencies in the format of a histogram for the specified "
                    + "command names.",
                "    If no commands are specified then all histograms are replied.",
            ])
        }
    }
}
