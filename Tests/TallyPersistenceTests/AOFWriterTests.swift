// AOFWriterTests: group commit, SELECT emission, power cuts under always/everysec, ENOSPC/EIO handling.
import Glibc
import Synchronization
import Testing
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyPersistence
import TallyTestSupport

/// Records fatal calls instead of exiting.
final class FatalRecorder: Sendable {
    let messages = Mutex<[String]>([])
    var count: Int { messages.withLock { $0.count } }
}

@Suite struct AOFWriterTests {
    let directory = "d"

    func makeWriter(_ disk: SimulatedDisk, _ policy: AppendFsyncPolicy, fatal: FatalRecorder = FatalRecorder(),
                    clock: ManualClock = ManualClock()) throws -> AppendOnlyFile<SimulatedDisk>
    {
        let manifest = try AOFDirectory.prepare(
            storage: disk, directory: directory, naming: AOFNaming(), existing: nil, emptyRDBBase: nil)
        return try AppendOnlyFile(
            storage: disk, manifest: manifest, baseSize: 0,
            configuration: AOFWriterConfiguration(
                directory: directory, fsyncPolicy: policy, startsFsyncThread: false, clock: clock,
                fatal: { message in fatal.messages.withLock { $0.append(message) } }))
    }

    func batch(_ database: Int, _ words: String...) -> PropagationBuffer {
        var buffer = PropagationBuffer()
        buffer.append(database: database, arguments: CommandArguments(words.map { Array($0.utf8) }))
        return buffer
    }

    var incrPath: String { directory + "/" + AOFNaming().incrFileName(sequence: 1) }

    @Test func emitsSelectOnDatabaseChangeOnly() throws {
        let disk = SimulatedDisk()
        let writer = try makeWriter(disk, .always)
        var combined = batch(0, "INCR", "a")
        combined.append(database: 0, arguments: CommandArguments([Array("INCR".utf8), Array("b".utf8)]))
        combined.append(database: 5, arguments: CommandArguments([Array("INCR".utf8), Array("c".utf8)]))
        let offset = writer.append(combined)
        writer.waitUntilDurable(offset)
        let records = record("SELECT", "0") + record("INCR", "a") + record("INCR", "b") + record("SELECT", "5")
            + record("INCR", "c")
        // A writer session starts with the start line; the batch's write ends with its mark.
        let expected = AOFMarks.startLine + withMark(records)
        #expect(disk.contents(of: incrPath) == expected)
        #expect(offset == UInt64(AOFMarks.startLine.count + records.count))
        #expect(writer.isDurable(offset))
        #expect(disk.durableContents(of: incrPath) == expected)
    }

    /// Under always, every acknowledged record survives a power cut at any point, and the
    /// loader recovers the directory (truncating a torn tail if there is one).
    @Test func alwaysNeverLosesAcknowledgedRecords() throws {
        for seed in UInt64(1)...20 {
            let disk = SimulatedDisk()
            let writer = try makeWriter(disk, .always)
            var random = SplitMix64(seed: seed)
            var acknowledged: [UInt8] = []
            var acknowledgedCommands = 0
            let count = Int(random.next() % 30) + 1
            for index in 0..<count {
                let database = Int(random.next() % 3)
                let offset = writer.append(batch(database, "INCRBY", "k\(index)", "\(index)"))
                if random.next() % 4 != 0 {
                    writer.waitUntilDurable(offset)
                    #expect(writer.isDurable(offset))
                    acknowledged = disk.contents(of: incrPath) ?? []
                    acknowledgedCommands = index + 1
                }
            }
            _ = disk.powerCut(seed: seed)
            let survived = disk.contents(of: incrPath) ?? []
            #expect(survived.count >= acknowledged.count, "reproduce with TALLY_SEED=\(seed)")
            #expect(Array(survived.prefix(acknowledged.count)) == acknowledged, "TALLY_SEED=\(seed)")
            var replayedCount = 0
            let summary = try AOFLoader(storage: disk, directory: directory).load { _, _ in replayedCount += 1 }
            #expect(summary != nil)
            #expect(replayedCount >= acknowledgedCommands, "TALLY_SEED=\(seed)")
        }
    }

    /// Under everysec, data is written before replies but durable only after the fsync pass;
    /// a power cut keeps at least what that pass covered.
    @Test func everysecDurableAfterBackgroundPass() throws {
        for seed in UInt64(1)...10 {
            let disk = SimulatedDisk()
            let writer = try makeWriter(disk, .everysec)
            let first = writer.append(batch(0, "INCR", "a"))
            writer.waitUntilDurable(first)
            #expect(writer.isDurable(first))
            #expect(writer.status().fsyncedOffset == 0)
            #expect(writer.backgroundFsyncPass())
            #expect(writer.status().fsyncedOffset >= first)
            #expect(writer.status().fsyncedOffset == writer.status().writtenOffset)
            #expect(!writer.backgroundFsyncPass())
            let second = writer.append(batch(0, "INCR", "b"))
            writer.waitUntilDurable(second)
            let fsyncedBytes = disk.durableContents(of: incrPath) ?? []
            _ = disk.powerCut(seed: seed)
            let survived = disk.contents(of: incrPath) ?? []
            #expect(Array(survived.prefix(fsyncedBytes.count)) == fsyncedBytes, "TALLY_SEED=\(seed)")
            #expect(survived.count >= Int(first))
        }
    }

    /// ENOSPC under everysec: MISCONF refusal, replies held, short write truncated back; the
    /// retry after a second succeeds and clears the status without duplicating bytes.
    @Test func writeErrorRefusesThenRecovers() throws {
        let disk = SimulatedDisk()
        let clock = ManualClock()
        let writer = try makeWriter(disk, .everysec, clock: clock)
        let first = writer.append(batch(0, "SET", "a", "1"))
        writer.waitUntilDurable(first)
        let before = disk.contents(of: incrPath) ?? []
        disk.setShortWrites(maxBytes: 5)
        disk.failNext(.write, after: 1, errno: ENOSPC)
        let second = writer.append(batch(0, "SET", "b", "2"))
        writer.waitUntilDurable(second)
        #expect(!writer.isDurable(second))
        let refusal = writer.writeRefusal().map { String(decoding: $0, as: UTF8.self) }
        #expect(refusal == "MISCONF Errors writing to the AOF file: No space left on device")
        #expect(disk.contents(of: incrPath) == before, "the partial write must be truncated back")
        #expect(writer.status().errorCode == ENOSPC)
        disk.clearFaults()
        // Retries are paced to one per second, as Redis's serverCron does.
        writer.tick()
        #expect(!writer.isDurable(second))
        clock.advance(by: 999)
        writer.tick()
        #expect(!writer.isDurable(second))
        clock.advance(by: 1)
        writer.tick()
        #expect(writer.isDurable(second))
        #expect(writer.writeRefusal() == nil)
        #expect(disk.contents(of: incrPath) == before + withMark(record("SET", "b", "2")))
    }

    /// Under always, a write or fsync error is fatal (Redis exits) and nothing is acknowledged.
    @Test func alwaysErrorsAreFatal() throws {
        for operation in [DiskOperation.write, .fsync] {
            let disk = SimulatedDisk()
            let fatal = FatalRecorder()
            let writer = try makeWriter(disk, .always, fatal: fatal)
            disk.failNext(operation, errno: EIO)
            let offset = writer.append(batch(0, "INCR", "x"))
            writer.waitUntilDurable(offset)
            #expect(!writer.isDurable(offset), "\(operation)")
            #expect(fatal.count == 1, "\(operation)")
        }
    }

    /// Many threads appending and waiting: every offset is covered, writes are batched.
    @Test func groupCommitAcrossThreads() async throws {
        let disk = SimulatedDisk()
        let writer = try makeWriter(disk, .always)
        let fsyncsBefore = disk.callCount(.fsync)
        let threads = 8
        let perThread = 50
        await withTaskGroup(of: Void.self) { group in
            for thread in 0..<threads {
                group.addTask {
                    for index in 0..<perThread {
                        var buffer = PropagationBuffer()
                        buffer.append(database: 0, arguments: CommandArguments(
                            [Array("INCR".utf8), Array("t\(thread)-\(index)".utf8)]))
                        let offset = writer.append(buffer)
                        writer.waitUntilDurable(offset)
                        #expect(writer.isDurable(offset))
                    }
                }
            }
        }
        var seen = 0
        _ = try AOFLoader(storage: disk, directory: directory).load { _, _ in seen += 1 }
        #expect(seen == threads * perThread)
        #expect(disk.callCount(.fsync) - fsyncsBefore <= threads * perThread)
    }
}

@Suite struct AOFRewriteTests {
    /// A started engine with a RESP-only AOF (appendonlydir/).
    func harness() throws -> PersistenceHarness {
        var settings = PersistenceSettings()
        settings.appendOnly = true
        settings.useRDBPreamble = false
        settings.fsyncPolicy = .always
        let harness = PersistenceHarness(settings: settings)
        try harness.start()
        return harness
    }

    var manifestPath: String { "appendonlydir/" + AOFNaming().manifestName }

    @Test func rewriteSwitchesBaseAndKeepsNewIncr() throws {
        let aof = try harness()
        #expect(aof.run("INCRBY", "counter", "42") == ":42\r\n")
        var hash = HashValue()
        hash.set(field: Array("f".utf8), value: Array("3".utf8))
        let keyspace = aof.commands.engine.keyspace
        keyspace.insertLoaded(database: 0, key: key("temp"),
                              entry: Entry(value: .string(Array("x".utf8)), expiresAtMilliseconds: 1_900_000_000_000))
        keyspace.insertLoaded(database: 2, key: key("h"), entry: Entry(value: .hash(hash)))
        #expect(aof.run("BGREWRITEAOF") == "+Background append only file rewriting started\r\n")
        #expect(aof.run("BGREWRITEAOF") == "-ERR Background append only file rewriting already in progress\r\n")
        #expect(aof.info("aof_rewrite_in_progress") == "1")
        aof.run("SELECT", "1")
        aof.run("INCR", "n")
        #expect(aof.jobs.runNext())
        #expect(String(decoding: aof.disk.contents(of: manifestPath) ?? [], as: UTF8.self)
                == "file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n")
        #expect(!aof.disk.exists("appendonlydir/appendonly.aof.1.incr.aof"))
        #expect(!aof.disk.exists("appendonlydir/appendonly.aof.1.base.aof"))
        #expect(aof.info("aof_rewrites") == "1")
        #expect(aof.info("aof_last_bgrewrite_status") == "ok")
        #expect(aof.info("aof_rewrite_in_progress") == "0")
        let (_, commands) = try replayed(AOFLoader(storage: aof.disk, directory: "appendonlydir"))
        // Keys of one database come in hash-table order; the base is complete and the incr follows.
        #expect(commands.sorted() == ["0:PEXPIREAT temp 1900000000000", "0:SET counter 42", "0:SET temp x",
                                      "1:INCR n", "2:HSET h f 3"])
        #expect(commands.last == "1:INCR n")
    }

    @Test func failedRewriteKeepsEverything() throws {
        let aof = try harness()
        aof.run("SET", "a", "1")
        #expect(aof.run("BGREWRITEAOF") == "+Background append only file rewriting started\r\n")
        let manifest = aof.disk.contents(of: manifestPath)
        aof.disk.failNext(.rename, errno: EIO)
        #expect(aof.jobs.runNext())
        #expect(aof.disk.contents(of: manifestPath) == manifest)
        #expect(aof.info("aof_last_bgrewrite_status") == "err")
        #expect(aof.info("aof_rewrite_in_progress") == "0")
        #expect(aof.info("aof_rewrites_consecutive_failures") == "1")
        let (_, commands) = try replayed(AOFLoader(storage: aof.disk, directory: "appendonlydir"))
        #expect(commands == ["0:SET a 1"])
    }
}
