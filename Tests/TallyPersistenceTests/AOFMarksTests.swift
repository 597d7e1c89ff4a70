// AOFMarksTests: CRC64 integrity marks: writer output, verification on load, torn and zero tails, checker, #TS cuts.
import Glibc
import Testing
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyPersistence
import TallyTestSupport

@Suite struct AOFMarksTests {
    let directory = "marks"
    let naming = AOFNaming()
    var incrName: String { naming.incrFileName(sequence: 1) }
    var incrPath: String { directory + "/" + incrName }

    func makeWriter(_ disk: SimulatedDisk, clock: ManualClock = ManualClock(), timestamps: Bool = false) throws
        -> AppendOnlyFile<SimulatedDisk>
    {
        let manifest = try AOFDirectory.prepare(
            storage: disk, directory: directory, naming: naming, existing: nil, emptyRDBBase: nil)
        return try AppendOnlyFile(
            storage: disk, manifest: manifest, baseSize: 0,
            configuration: AOFWriterConfiguration(
                directory: directory, fsyncPolicy: .always, startsFsyncThread: false, clock: clock,
                timestampsEnabled: timestamps))
    }

    func write(_ writer: AppendOnlyFile<SimulatedDisk>, _ words: [String]...) {
        var batch = PropagationBuffer()
        for command in words { batch.append(database: 0, arguments: CommandArguments(command.map { Array($0.utf8) })) }
        writer.waitUntilDurable(writer.append(batch))
    }

    /// Three batches: INCR a (x2), INCR b; returns the file bytes and the offset where each mark ends.
    func threeBatches(_ disk: SimulatedDisk) throws -> (bytes: [UInt8], markEnds: [Int]) {
        let writer = try makeWriter(disk)
        var markEnds: [Int] = []
        write(writer, ["INCR", "a"], ["INCR", "a"])
        markEnds.append(disk.contents(of: incrPath)?.count ?? 0)
        write(writer, ["SET", "s", String(repeating: "x", count: 40)])
        markEnds.append(disk.contents(of: incrPath)?.count ?? 0)
        write(writer, ["INCR", "b"])
        markEnds.append(disk.contents(of: incrPath)?.count ?? 0)
        return (disk.contents(of: incrPath) ?? [], markEnds)
    }

    func load(_ disk: SimulatedDisk, loadTruncated: Bool = true) throws -> (AOFLoadSummary?, [String]) {
        var loader = AOFLoader(storage: disk, directory: directory)
        loader.loadTruncated = loadTruncated
        return try replayed(loader)
    }

    @Test func writerMarksEveryBatchAndTheFileVerifies() throws {
        let disk = SimulatedDisk()
        let (bytes, markEnds) = try threeBatches(disk)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("#TALLY-AOF:1\r\n*2\r\n$6\r\nSELECT"))
        #expect(text.components(separatedBy: "#TALLY-CRC64:").count == 4)
        #expect(markEnds.last == bytes.count)
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .verified)
        let (summary, commands) = try load(disk)
        #expect(summary?.truncatedFiles.isEmpty == true)
        #expect(commands == ["0:INCR a", "0:INCR a", "0:SET s " + String(repeating: "x", count: 40), "0:INCR b"])
    }

    /// One flipped byte anywhere before the last good mark refuses the start with the file and an
    /// offset at or before the flipped byte, and leaves the file as it was; a flip after the
    /// last good mark (inside the final batch or its mark) is a torn tail, cut at that mark.
    @Test func flippedByteBeforeALaterMarkRefusesAndAfterItIsATornTail() throws {
        let reference = SimulatedDisk()
        let (bytes, markEnds) = try threeBatches(reference)
        let lastGoodBeforeFinal = markEnds[1]
        for position in AOFMarks.startLine.count..<bytes.count {
            let disk = SimulatedDisk()
            _ = try threeBatches(disk)
            var damaged = bytes
            damaged[position] ^= 0x01
            disk.install(incrPath, damaged)
            if position < lastGoodBeforeFinal {
                do {
                    _ = try load(disk)
                    Issue.record("flip at \(position) loaded")
                } catch let error as AOFLoadError {
                    #expect(error.file == incrName, "flip at \(position)")
                    #expect(error.offset <= Int64(position), "flip at \(position): \(error)")
                    #expect(error.offset >= Int64(AOFMarks.startLine.count), "flip at \(position): \(error)")
                }
                #expect(disk.contents(of: incrPath) == damaged, "flip at \(position) modified the file")
            } else {
                let (summary, commands) = try load(disk)
                #expect(summary?.truncatedFiles.first?.offset == Int64(lastGoodBeforeFinal), "flip at \(position)")
                #expect(commands.count == 3, "flip at \(position): \(commands)")
                #expect(disk.contents(of: incrPath) == Array(bytes[..<lastGoodBeforeFinal]))
            }
        }
    }

    /// The final batch torn at every length: cut back to the last good mark; complete records
    /// without their mark are not replayed (they were never acknowledged under `always`).
    @Test func tornFinalBatchAtEveryOffsetIsCutAtTheLastGoodMark() throws {
        let reference = SimulatedDisk()
        let (bytes, markEnds) = try threeBatches(reference)
        for cut in markEnds[1]..<bytes.count {
            let disk = SimulatedDisk()
            _ = try threeBatches(disk)
            disk.install(incrPath, Array(bytes[..<cut]))
            let (summary, commands) = try load(disk)
            #expect(commands.count == 3, "cut \(cut)")
            #expect(disk.contents(of: incrPath)?.count == markEnds[1], "cut \(cut)")
            #expect((summary?.truncatedFiles.isEmpty ?? true) == (cut == markEnds[1]), "cut \(cut)")
        }
    }

    /// Zero bytes after the data (the file kept its new length after a power cut): a torn tail
    /// in the last file, a refusal in any other file; with aof-load-truncated no, a refusal.
    @Test func zeroFilledTail() throws {
        let disk = SimulatedDisk()
        let (bytes, markEnds) = try threeBatches(disk)
        // The last batch's bytes came back as zeros.
        let zeroed = Array(bytes[..<markEnds[1]]) + [UInt8](repeating: 0, count: bytes.count - markEnds[1])
        disk.install(incrPath, zeroed)
        #expect(throws: AOFLoadError.self) { try load(disk, loadTruncated: false) }
        #expect(disk.contents(of: incrPath) == zeroed)
        let (summary, commands) = try load(disk)
        #expect(summary?.truncatedFiles.first?.offset == Int64(markEnds[1]))
        #expect(commands.count == 3)
        // A whole first batch of zeros (start line included) is a torn tail at 0.
        disk.install(incrPath, [UInt8](repeating: 0, count: 64))
        let (allZero, none) = try load(disk)
        #expect(allZero?.truncatedFiles.first?.offset == 0)
        #expect(none.isEmpty)
        // Not the last file: refused.
        let second = naming.incrFileName(sequence: 2)
        var manifest = try #require(try AOFLoader(storage: disk, directory: directory).readManifest())
        manifest.incrs.append(AOFFileInfo(name: second, sequence: 2, type: .incr))
        disk.install(directory + "/" + naming.manifestName, manifest.encoded())
        disk.install(directory + "/" + second, AOFMarks.startLine + withMark(record("INCR", "z")))
        disk.install(incrPath, zeroed)
        #expect(throws: AOFLoadError.self) { try load(disk) }
        #expect(disk.contents(of: incrPath) == zeroed)
    }

    /// A file written by redis-server (no marks) loads as before, including its own #TS lines;
    /// a zero tail after unmarked data is still refused there, as redis-server refuses it.
    @Test func unmarkedFilesLoadAsBefore() throws {
        let disk = SimulatedDisk()
        _ = try makeWriter(disk)
        let plain = Array("#TS:1700000000\r\n".utf8) + record("SELECT", "0") + record("INCR", "a")
        disk.install(incrPath, plain)
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .unmarked)
        #expect(try load(disk).1 == ["0:INCR a"])
        disk.install(incrPath, plain + [0, 0, 0, 0])
        #expect(throws: AOFLoadError.self) { try load(disk) }
        // Tally appending to a redis-written file: the unmarked prefix loads, Tally's part verifies.
        let mixed = plain + AOFMarks.startLine + withMark(record("INCR", "b"))
        disk.install(incrPath, mixed)
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .verified)
        #expect(try load(disk).1 == ["0:INCR a", "0:INCR b"])
    }

    /// tally-check-aof's checker: corruption before a good mark is reported with its offset and
    /// is not a truncation candidate; a torn tail is, down to the last good mark.
    @Test func checkerReportsCorruptionAndTornTails() throws {
        let disk = SimulatedDisk()
        let (bytes, markEnds) = try threeBatches(disk)
        var lines: [String] = []
        let checker = AOFChecker(storage: disk, output: { lines.append($0) })
        var damaged = bytes
        damaged[markEnds[0] - 40] ^= 0x20
        disk.install(incrPath, damaged)
        let corrupt = try checker.check(path: incrPath, displayName: incrName)
        #expect(!corrupt.isValid)
        #expect(corrupt.corruptOffset == Int64(AOFMarks.startLine.count))
        #expect(lines.contains { $0.contains("corruption at offset \(AOFMarks.startLine.count)") })
        disk.install(incrPath, Array(bytes.dropLast(3)))
        let torn = try checker.check(path: incrPath, displayName: incrName)
        #expect(torn.corruptOffset == nil)
        #expect(torn.validUpTo == Int64(markEnds[1]))
        disk.install(incrPath, bytes)
        #expect(try checker.check(path: incrPath, displayName: incrName).isValid)
    }

    /// aof-timestamp-enabled: #TS lines as Redis writes them, each preceded by a mark, so a cut at
    /// a #TS line (tally-check-aof --truncate-to-timestamp) leaves a verified file with exactly
    /// the writes of the earlier seconds.
    @Test func timestampsAndPointInTimeCut() throws {
        let disk = SimulatedDisk()
        let clock = ManualClock(milliseconds: 1_800_000_000_200)
        let writer = try makeWriter(disk, clock: clock, timestamps: true)
        write(writer, ["INCR", "a"])
        write(writer, ["INCR", "a"])
        clock.advance(by: 1000)
        write(writer, ["INCR", "b"])
        clock.advance(by: 2000)
        write(writer, ["INCR", "c"])
        let bytes = disk.contents(of: incrPath) ?? []
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.components(separatedBy: "#TS:").count == 4)
        #expect(text.hasPrefix("#TALLY-AOF:1\r\n#TS:1800000000\r\n*2\r\n$6\r\nSELECT"))
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .verified)
        let checker = AOFChecker(storage: disk, output: { _ in })
        #expect(try checker.timestampCut(path: incrPath, rdbBytes: 0, after: 1_800_000_003) == .none)
        #expect(try checker.timestampCut(path: incrPath, rdbBytes: 0, after: 1_799_999_999) == .nothingBefore)
        let cut = try checker.timestampCut(path: incrPath, rdbBytes: 0, after: 1_800_000_000)
        guard case .at(let offset) = cut else {
            Issue.record("expected a cut, got \(cut)")
            return
        }
        #expect(Array(bytes[Int(offset)..<Int(offset) + 4]) == Array("#TS:".utf8))
        try checker.truncate(path: incrPath, to: offset)
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .verified)
        let (summary, commands) = try load(disk)
        #expect(summary?.truncatedFiles.isEmpty == true)
        #expect(commands == ["0:INCR a", "0:INCR a"])
    }

    /// A rewritten RESP base: start line, optional #TS, a mark per ~1 MB at record boundaries, a
    /// final mark.
    @Test func markingSinkForRewrittenBases() throws {
        var sink = MarkingSink(base: MemorySink(), timestampSeconds: 42)
        let value = String(repeating: "v", count: 100_000)
        for index in 0..<30 { try sink.write(record("SET", "k\(index)", value)) }
        try sink.finish()
        let bytes = sink.base.bytes
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("#TALLY-AOF:1\r\n#TS:42\r\n*3\r\n"))
        #expect(text.components(separatedBy: "#TALLY-CRC64:").count == 4)
        let disk = SimulatedDisk()
        disk.install("base.aof", bytes)
        #expect(try AOFMarkVerifier(storage: disk).check(path: "base.aof", startingAt: 0) == .verified)
        var empty = MarkingSink(base: MemorySink())
        try empty.finish()
        #expect(empty.base.bytes.isEmpty)
    }

    /// A value that holds a `\n#TALLY-` line defeats the quick check; the record-by-record check
    /// still verifies the file. Marks straddling 1 MiB read boundaries verify too.
    @Test func markLookalikesInValuesAndChunkBoundaries() throws {
        let disk = SimulatedDisk()
        let writer = try makeWriter(disk)
        write(writer, ["SET", "trap", "x\n#TALLY-CRC64:0000000000000000 5\r\n"])
        write(writer, ["SET", "trap2", "\n#TALLY-AOF:1\r\n"])
        for index in 0..<40 { write(writer, ["SET", "k\(index)", String(repeating: "v", count: 70_001 + index)]) }
        #expect(try AOFMarkVerifier(storage: disk).check(path: incrPath, startingAt: 0) == .verified)
        let (summary, commands) = try load(disk)
        #expect(summary?.truncatedFiles.isEmpty == true)
        #expect(commands.count == 42)
    }

    /// The recovery table's row for mark damage: refuse in any file, at the offset, never cut.
    @Test func checksumMismatchRowRefuses() {
        for last in [false, true] {
            for loadTruncated in [false, true] {
                let action = AOFRecoveryPlan.action(
                    file: "f.aof", condition: .checksumMismatch(offset: 77, detail: "CRC64 mismatch"), isLastFile: last,
                    loadTruncated: loadTruncated)
                guard case .refuse(let file, let offset, let reason) = action else {
                    Issue.record("expected a refusal, got \(action)")
                    continue
                }
                #expect(file == "f.aof" && offset == 77)
                #expect(reason.contains("offset 77") && reason.contains("CRC64 mismatch"))
            }
        }
    }

    @Test func markLinesParse() {
        var line: [UInt8] = []
        AOFMarks.appendMark(crc: 0x0123_4567_89ab_cdef, length: 1234, to: &line)
        #expect(String(decoding: line, as: UTF8.self) == "#TALLY-CRC64:0123456789abcdef 1234\r\n")
        #expect(line.count == AOFMarks.markLineLength(regionLength: 1234))
        #expect(AOFMarks.parseMark(line)! == (0x0123_4567_89ab_cdef, 1234))
        #expect(AOFMarks.parseMark(Array("#TALLY-CRC64:0123456789abcdeg 1\r\n".utf8)) == nil)
        #expect(AOFMarks.parseTimestamp(Array("#TS:99\r\n".utf8))! == (99, true))
        #expect(AOFMarks.parseTimestamp(Array("#TS:99x\r\n".utf8))! == (99, false))
        #expect(AOFMarks.parseTimestamp(Array("#TALLY".utf8)) == nil)
    }
}
