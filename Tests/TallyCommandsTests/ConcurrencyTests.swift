// ConcurrencyTests: many threads on one engine: exact counter sums and EXEC atomicity.
import Dispatch
import Synchronization
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyTestSupport
import Testing

@Suite struct ConcurrencyTests {
    @Test func parallelIncrementsSumExactly() {
        let engine = CommandEngine(configuration: EngineConfiguration(), clock: ManualClock(), serverCommands: [])
        let threads = 4
        let iterations = 5_000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            let session = ClientSession(id: Int64(thread))
            var output = OutputBuffer()
            for iteration in 0..<iterations {
                let key = "k\(iteration % 8)"
                engine.execute(CommandArguments([Array("INCRBY".utf8), Array(key.utf8), Array("3".utf8)]),
                               session: session, output: &output)
                if iteration % 100 == 0 {
                    engine.execute(CommandArguments([Array("MSET".utf8), Array("m\(thread)".utf8), Array("x".utf8),
                                                     Array("k0-shadow".utf8), Array("y".utf8)]),
                                   session: session, output: &output)
                }
                output.readerIndex = output.writerIndex
                output.discardReadBytes()
            }
        }
        let session = ClientSession(id: 99)
        var output = OutputBuffer()
        for index in 0..<8 {
            engine.execute(CommandArguments([Array("GET".utf8), Array("k\(index)".utf8)]), session: session,
                           output: &output)
        }
        let perKey = threads * iterations / 8 * 3
        let expected = String(repeating: "$\(String(perKey).count)\r\n\(perKey)\r\n", count: 8)
        #expect(String(decoding: output.storage, as: UTF8.self) == expected)
        let expectedChanges = Int64(threads * iterations + threads * (iterations / 100) * 2)
        #expect(engine.changesSinceLastSave == expectedChanges)
    }

    @Test func execIsAtomicAgainstConcurrentReaders() {
        let engine = CommandEngine(configuration: EngineConfiguration(), clock: ManualClock(), serverCommands: [])
        let torn = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        @Sendable func command(_ words: String...) -> CommandArguments { CommandArguments(words.map { Array($0.utf8) }) }
        DispatchQueue.concurrentPerform(iterations: 3) { role in
            let session = ClientSession(id: Int64(role))
            var output = OutputBuffer()
            if role == 0 {
                for _ in 0..<3_000 {
                    engine.execute(command("MULTI"), session: session, output: &output)
                    engine.execute(command("INCR", "x"), session: session, output: &output)
                    engine.execute(command("INCR", "y{other}"), session: session, output: &output)
                    engine.execute(command("EXEC"), session: session, output: &output)
                    output.readerIndex = output.writerIndex
                    output.discardReadBytes()
                }
                done.store(true, ordering: .releasing)
            } else {
                while !done.load(ordering: .acquiring) {
                    engine.execute(command("MGET", "x", "y{other}"), session: session, output: &output)
                    let reply = output.storage[output.readerIndex...]
                    let text = String(decoding: reply, as: UTF8.self).split(separator: "\r\n")
                    // *2, $n, x, $n, y  or  *2, $-1, $-1
                    if text.count == 5 && text[2] != text[4] { torn.add(1, ordering: .relaxed) }
                    if text.count == 4 { torn.add(1, ordering: .relaxed) }
                    output.readerIndex = output.writerIndex
                    output.discardReadBytes()
                }
            }
        }
        #expect(torn.load(ordering: .relaxed) == 0)
        let first = engine.keyspace.shardIndex(for: Array("x".utf8))
        let second = engine.keyspace.shardIndex(for: Array("y{other}".utf8))
        #expect(first != second)
    }
}
