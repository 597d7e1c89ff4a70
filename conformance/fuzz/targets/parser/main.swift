// Fuzz target: the RESP request parser, fed whole and in input-chosen chunks; both must agree.
import TallyProtocol

/// Small limits so the limit branches (bulk length, inline length, unauthenticated caps) are
/// reachable from inputs of a few hundred bytes.
let fuzzLimits = RequestParserLimits(
    maxBulkLength: 4096, maxMultibulkLength: 64, maxInlineLength: 256,
    unauthenticatedMaxArguments: 10, unauthenticatedMaxBulkLength: 512)

/// Parses `chunks` in order; returns the commands (as argument lists) and whether it stopped
/// on a protocol error.
func parse(_ chunks: [ArraySlice<UInt8>], authenticated: Bool) -> (commands: [[[UInt8]]], failed: Bool) {
    var parser = RequestParser(limits: fuzzLimits)
    var arguments = CommandArguments()
    var commands: [[[UInt8]]] = []
    for chunk in chunks {
        parser.append(contentsOf: chunk)
        parsing: while true {
            switch parser.next(into: &arguments, authenticated: authenticated) {
            case .command:
                precondition(arguments.count >= 1, "a command has at least one argument")
                commands.append((0..<arguments.count).map { arguments.copy($0) })
            case .needMoreData:
                // Asking again without new bytes must not consume or produce anything.
                let position = parser.position
                precondition(parser.next(into: &arguments, authenticated: authenticated) == .needMoreData)
                precondition(parser.position == position, "needMoreData consumed input")
                break parsing
            case .protocolError(let text):
                precondition(!text.isEmpty && !text.contains("\r") && !text.contains("\n"), "bad error text")
                return (commands, true)
            }
        }
        precondition(parser.position <= parser.buffer.count)
    }
    return (commands, false)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let control = input[0]
    let body = input[1...]
    let authenticated = control & 1 == 0
    let whole = parse([body], authenticated: authenticated)
    // Chunk sizes cycle through 1...8 scaled by the control byte: byte-by-byte drip included.
    var chunks: [ArraySlice<UInt8>] = []
    var start = body.startIndex
    var step = Int(control >> 1) % 8 + 1
    while start < body.endIndex {
        let end = min(body.endIndex, start + step)
        chunks.append(body[start..<end])
        start = end
        step = step % 8 + 1
    }
    let dripped = parse(chunks, authenticated: authenticated)
    // Split reads may hit a length limit earlier (a long line not yet terminated), never later,
    // so one command list must be a prefix of the other, and equal when neither failed.
    let shorter = min(whole.commands.count, dripped.commands.count)
    precondition(
        Array(whole.commands[0..<shorter]) == Array(dripped.commands[0..<shorter]), "chunking changed a command")
    if !whole.failed && !dripped.failed {
        precondition(whole.commands.count == dripped.commands.count, "chunking changed the command count")
    }
    if dripped.failed == false && whole.failed {
        preconditionFailure("the whole input failed but the dripped one did not")
    }
    return 0
}
