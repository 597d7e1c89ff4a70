// Fuzz target: command dispatch over a tiny keyspace, argv built from the fuzz input.
import TallyCommands
import TallyKeyspace
import TallyProtocol

/// Argument vocabulary: small, so commands collide on the same keys and reach deep branches.
let words: [[UInt8]] = [
    "k", "k2", "h", "0", "1", "-1", "10", "9223372036854775807", "-9223372036854775808", "1.5", "nan", "inf",
    "EX", "PX", "EXAT", "PXAT", "NX", "XX", "GT", "LT", "KEEPTTL", "GET", "COUNT", "MATCH", "*", "TYPE", "string",
    "hash", "WITHSCORES", "", "f", "v", "3", "100", "2", "AUTH", "default", "SETNAME", "x y",
].map { Array($0.utf8) }

/// A clock the input moves forward, so expiry paths run.
final class FuzzClock: Clock, @unchecked Sendable {
    var now: Int64 = 1_790_000_000_000
    func nowMilliseconds() -> Int64 { now }
}

struct Reader {
    var bytes: [UInt8]
    var index = 0
    mutating func next() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = Reader(bytes: Array(UnsafeBufferPointer(start: data, count: size)))
    guard let setup = reader.next() else { return 0 }
    let clock = FuzzClock()
    let engine = CommandEngine(
        configuration: EngineConfiguration(
            databases: 4, shards: 2, requirePass: setup & 1 == 1 ? Array("pw".utf8) : nil),
        clock: clock, serverCommands: [])
    if setup & 2 != 0 {
        // A tight maxmemory so every write runs the eviction path.
        let policy = EvictionPolicy.allCases[Int(setup >> 2) % EvictionPolicy.allCases.count]
        engine.setMemoryLimit(bytes: 600, policy: policy, samples: Int(setup >> 5) + 1)
    }
    // PFSELFTEST is a seconds-long self-test by design (Redis's too): under ASan a few of them in
    // one input pass libFuzzer's timeout without exercising anything the fuzz input chose.
    let names = engine.table.rows.filter { $0.name != "pfselftest" }.map { Array($0.name.utf8) }
    let sessions = [ClientSession(id: 1), ClientSession(id: 2)]
    for session in sessions { engine.sessionOpened(session) }
    var output = OutputBuffer()
    var commands = 0
    while let head = reader.next(), commands < 64 {
        commands += 1
        let session = sessions[Int(head & 1)]
        if head & 0x80 != 0 { clock.now += Int64(head & 0x7F) * 100 }
        guard let nameByte = reader.next(), let countByte = reader.next() else { break }
        var argv: [[UInt8]] = [names[Int(nameByte) % names.count]]
        for _ in 0..<Int(countByte % 6) {
            guard let choice = reader.next() else { break }
            if choice < 200 {
                argv.append(words[Int(choice) % words.count])
            } else {
                // Raw bytes from the input: lengths up to 15.
                var raw: [UInt8] = []
                for _ in 0..<Int(choice & 15) { if let byte = reader.next() { raw.append(byte) } }
                argv.append(raw)
            }
        }
        let start = output.writerIndex
        engine.execute(CommandArguments(argv), session: session, output: &output)
        if output.writerIndex > start {
            let first = output.storage[start]
            precondition(Array("+-:$*%_,#(=~>|".utf8).contains(first), "reply does not start with a RESP type byte")
        }
        if head & 0x40 != 0 { engine.activeExpireCycle() }
        if head & 0x20 != 0 { engine.sessionClosed(session) }
        output.readerIndex = output.writerIndex
        output.discardReadBytes()
    }
    for session in sessions { engine.sessionClosed(session) }
    // The estimate must not drift: after FLUSHALL every shard is back to zero.
    // A fresh session, so a transaction the input left open does not queue the FLUSHALL.
    let cleaner = ClientSession(id: 3)
    engine.sessionOpened(cleaner)
    engine.execute(CommandArguments([Array("FLUSHALL".utf8)]), session: cleaner, output: &output)
    precondition(engine.keyspace.usedMemoryBytes == 0, "memory estimate drifted: \(engine.keyspace.usedMemoryBytes)")
    return 0
}
