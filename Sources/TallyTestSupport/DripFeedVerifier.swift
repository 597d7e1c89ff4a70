// DripFeedVerifier: feeds parser input whole, byte by byte and at every 2-way split, checking the results agree.
import TallyProtocol

/// One thing the parser produced: a command's arguments, or a protocol error text.
public enum ParsedItem: Equatable, Sendable, CustomStringConvertible {
    /// A complete command.
    case command([[UInt8]])
    /// A protocol error (parsing stops there, as the connection would be closed).
    case error(String)

    public var description: String {
        switch self {
        case .command(let arguments):
            return "command(" + arguments.map { String(decoding: $0, as: UTF8.self).debugDescription }
                .joined(separator: " ") + ")"
        case .error(let text): return "error(\(text))"
        }
    }
}

/// Runs a `RequestParser` over the same input cut in many ways (NIO's ByteToMessageDecoderVerifier).
public struct DripFeedVerifier {
    /// Parser limits for every run.
    public var limits: RequestParserLimits
    /// Whether the simulated client is authenticated.
    public var authenticated: Bool

    /// Creates a verifier.
    public init(limits: RequestParserLimits = RequestParserLimits(), authenticated: Bool = true) {
        self.limits = limits
        self.authenticated = authenticated
    }

    /// Parses `input` delivered in `chunks` and returns what came out (stopping at the first error).
    public func parse(_ input: [UInt8], chunks: [Int]) -> [ParsedItem] {
        var parser = RequestParser(limits: limits)
        var arguments = CommandArguments()
        var items: [ParsedItem] = []
        var offset = 0
        for size in chunks + [0] {
            let end = min(input.count, offset + size)
            parser.append(contentsOf: input[offset..<end])
            offset = end
            loop: while true {
                switch parser.next(into: &arguments, authenticated: authenticated) {
                case .command:
                    items.append(.command((0..<arguments.count).map { arguments.copy($0) }))
                case .needMoreData:
                    break loop
                case .protocolError(let text):
                    items.append(.error(text))
                    return items
                }
            }
        }
        return items
    }

    /// A description of every way of cutting `input` whose result differs from `expected`;
    /// empty when all agree. Tries: whole, byte by byte, and every split into two pieces.
    public func mismatches(_ input: [UInt8], expected: [ParsedItem]) -> [String] {
        var cuts: [(String, [Int])] = [
            ("whole", [input.count]), ("byte-by-byte", Array(repeating: 1, count: input.count)),
        ]
        if input.count > 1 {
            for split in 1..<input.count { cuts.append(("split at \(split)", [split, input.count - split])) }
        }
        var failures: [String] = []
        for (name, chunks) in cuts {
            let got = parse(input, chunks: chunks)
            if got != expected { failures.append("\(name): got \(got), expected \(expected)") }
        }
        return failures
    }
}
