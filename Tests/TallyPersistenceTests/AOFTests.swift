// AOFTests: manifest round trips and rejections, the recovery table, loader truncation at every offset, interop.
import Glibc
import Testing
import TallyCommands
import TallyKeyspace
import TallyProtocol
import TallyPersistence
import TallyTestSupport

/// `region` followed by the Tally integrity mark that covers it.
func withMark(_ region: [UInt8]) -> [UInt8] {
    var output = region
    AOFMarks.appendMark(crc: CRC64.checksum(region), length: region.count, to: &output)
    return output
}

/// RESP record bytes for `words`.
func record(_ words: String...) -> [UInt8] {
    var bytes: [UInt8] = []
    CommandArguments(words.map { Array($0.utf8) }).encodeRESP(into: &bytes)
    return bytes
}

/// Loads `directory` and returns the replayed commands as "db:WORD WORD" strings.
func replayed<S: Storage>(_ loader: AOFLoader<S>) throws -> (summary: AOFLoadSummary?, commands: [String]) {
    var commands: [String] = []
    let summary = try loader.load { arguments, database in
        let words = (0..<arguments.count).map { String(decoding: arguments[$0], as: UTF8.self) }
        commands.append("\(database):" + words.joined(separator: " "))
    }
    return (summary, commands)
}

@Suite struct AOFManifestTests {
    @Test func encodesLikeRedis() {
        let manifest = AOFManifest(
            base: AOFFileInfo(name: "appendonly.aof.1.base.rdb", sequence: 1, type: .base),
            incrs: [AOFFileInfo(name: "appendonly.aof.1.incr.aof", sequence: 1, type: .incr)])
        let text = String(decoding: manifest.encoded(), as: UTF8.self)
        #expect(text == "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
        #expect(manifest.encoded().count == 88)
    }

    @Test func roundTripsHistoryAndQuotedNames() throws {
        let manifest = AOFManifest(
            base: AOFFileInfo(name: "odd name \"q\".rdb", sequence: 4, type: .base),
            history: [AOFFileInfo(name: "appendonly.aof.3.base.rdb", sequence: 3, type: .history)],
            incrs: [
                AOFFileInfo(name: "appendonly.aof.7.incr.aof", sequence: 7, type: .incr),
                AOFFileInfo(name: "tab\there.aof", sequence: 8, type: .incr),
            ])
        let parsed = try AOFManifest.parse(manifest.encoded(), path: "m")
        #expect(parsed == manifest)
        #expect(parsed.currentIncrSequence == 8)
        #expect(parsed.currentBaseSequence == 4)
    }

    @Test func rejectsWhatRedisRejects() {
        let cases: [(String, String)] = [
            ("", "Found an empty AOF manifest"),
            ("file a seq 1 type b\n\nfile b seq 1 type i\n", "Invalid AOF manifest file format"),
            ("file a seq 1 type x\n", "Unknown AOF file type"),
            ("file a seq 1 typo b\n", "Invalid AOF manifest file format"),
            ("file a seq 1 type\n", "Invalid AOF manifest file format"),
            ("file a seq 1\n", "Invalid AOF manifest file format"),
            ("file a seq 1 type b\nfile b seq 2 type b\n", "Found duplicate base file information"),
            ("file a seq 2 type i\nfile b seq 2 type i\n", "Found a non-monotonic sequence number"),
            ("file a seq 3 type i\nfile b seq 1 type i\n", "Found a non-monotonic sequence number"),
            ("file dir/a seq 1 type i\n", "File can't be a path, just a filename"),
            ("file a seq 1 type i", "The AOF manifest file contains too long line"),
            ("file " + String(repeating: "a", count: 1020) + " seq 1 type i\n",
             "The AOF manifest file contains too long line"),
            ("file \"unterminated seq 1 type i\n", "Invalid AOF manifest file format"),
            ("file a seq 0 type i\n", "Invalid AOF manifest file format"),
        ]
        for (text, reason) in cases {
            #expect(throws: AOFManifestError.self, "\(text)") {
                try AOFManifest.parse(Array(text.utf8), path: "x.manifest")
            }
            do {
                _ = try AOFManifest.parse(Array(text.utf8), path: "x.manifest")
            } catch {
                #expect(error.reason == reason, "\(text)")
                #expect(error.description.contains("x.manifest"))
            }
        }
    }

    @Test func acceptsCommentsAndUnknownKeys() throws {
        let text = "# comment\nfile a seq 1 type b extra 9\nfile b seq 1 type i\n"
        let manifest = try AOFManifest.parse(Array(text.utf8), path: "m")
        #expect(manifest.base?.name == "a")
        #expect(manifest.incrs.map(\.name) == ["b"])
    }
}

@Suite struct AOFRecoveryPlanTests {
    @Test func everyRow() {
        func action(_ condition: AOFFileCondition, last: Bool, truncated: Bool = true) -> AOFRecoveryAction {
            AOFRecoveryPlan.action(file: "f", condition: condition, isLastFile: last, loadTruncated: truncated)
        }
        #expect(action(.intact, last: true) == .load)
        #expect(action(.intact, last: false) == .load)
        #expect(action(.truncated(validUpTo: 10), last: true) == .truncateTail(at: 10))
        #expect(action(.incompleteTransaction(validBeforeMulti: 4), last: true) == .truncateTail(at: 4))
        func refuses(_ result: AOFRecoveryAction, at offset: Int64, containing text: String) -> Bool {
            if case .refuse(let file, let at, let reason) = result {
                return file == "f" && at == offset && reason.contains(text)
            }
            return false
        }
        #expect(refuses(action(.truncated(validUpTo: 10), last: true, truncated: false), at: 10,
                        containing: "Unexpected end"))
        #expect(refuses(action(.incompleteTransaction(validBeforeMulti: 3), last: true, truncated: false), at: 3,
                        containing: "Unexpected end"))
        #expect(refuses(action(.truncated(validUpTo: 10), last: false), at: 10, containing: "not the last file"))
        #expect(refuses(action(.incompleteTransaction(validBeforeMulti: 2), last: false), at: 2,
                        containing: "not the last file"))
        #expect(refuses(action(.corrupt(offset: 33), last: true), at: 33, containing: "Bad file format"))
        #expect(refuses(action(.corrupt(offset: 33), last: false), at: 33, containing: "Bad file format"))
        #expect(refuses(action(.corruptRDB(reason: "crc"), last: true), at: 0, containing: "RDB base"))
        #expect(refuses(action(.rejectedCommand(offset: 7, reason: "Unknown command"), last: true), at: 7,
                        containing: "Unknown command"))
        #expect(refuses(action(.missing, last: false), at: 0, containing: "doesn't exist"))
        #expect(refuses(action(.unreadable(reason: "EIO"), last: true), at: 0, containing: "can't open"))
    }
}

@Suite struct AOFLoaderTests {
    let directory = "aofdir"
    let naming = AOFNaming()

    func install(_ disk: SimulatedDisk, base: [UInt8], incrs: [[UInt8]]) {
        try? disk.makeDirectory(directory)
        var manifest = AOFManifest(base: AOFFileInfo(name: naming.baseFileName(sequence: 1, rdbPreamble: false),
                                                      sequence: 1, type: .base))
        disk.install(directory + "/" + manifest.base!.name, base)
        for (index, bytes) in incrs.enumerated() {
            let name = naming.incrFileName(sequence: Int64(index + 1))
            manifest.incrs.append(AOFFileInfo(name: name, sequence: Int64(index + 1), type: .incr))
            disk.install(directory + "/" + name, bytes)
        }
        disk.install(directory + "/" + naming.manifestName, manifest.encoded())
    }

    @Test func replaysBaseThenIncrsWithSelectAndTransactions() throws {
        let disk = SimulatedDisk()
        let base = record("SET", "a", "1") + record("SELECT", "2") + record("HSET", "h", "f", "v")
        let incr1 = record("SELECT", "0") + record("INCRBY", "a", "5") + record("MULTI") + record("INCR", "a")
            + record("EXEC")
        let incr2 = Array("#TS:123\r\n".utf8) + record("SELECT", "3") + record("DECR", "z")
        install(disk, base: base, incrs: [incr1, incr2])
        let (summary, commands) = try replayed(AOFLoader(storage: disk, directory: directory))
        #expect(commands == ["0:SET a 1", "2:HSET h f v", "0:INCRBY a 5", "0:MULTI", "0:INCR a", "0:EXEC", "3:DECR z"])
        #expect(summary?.truncatedFiles.isEmpty == true)
        #expect(summary?.totalSize == Int64(base.count + incr1.count + incr2.count))
    }

    @Test func noManifestMeansNothingToLoad() throws {
        let disk = SimulatedDisk()
        #expect(try replayed(AOFLoader(storage: disk, directory: directory)).summary == nil)
    }

    @Test func missingListedFileRefuses() throws {
        let disk = SimulatedDisk()
        install(disk, base: record("SET", "a", "1"), incrs: [record("INCR", "a")])
        try disk.remove(directory + "/" + naming.incrFileName(sequence: 1))
        #expect(throws: AOFLoadError.self) { try replayed(AOFLoader(storage: disk, directory: directory)) }
    }

    /// Cut the last file at every offset: the complete prefix loads and the file is truncated to
    /// exactly the end of the last complete record (or before an unfinished MULTI).
    @Test func lastFileTruncatedAtEveryOffset() throws {
        let records = [record("SELECT", "0"), record("INCR", "a"), record("MULTI"), record("INCRBY", "a", "10"),
                       record("EXEC"), record("SET", "b", "xyz")]
        let full = records.flatMap { $0 }
        var ends: [Int] = []
        var position = 0
        for r in records { position += r.count; ends.append(position) }
        for cut in 0...full.count {
            let disk = SimulatedDisk()
            install(disk, base: record("SET", "a", "1"), incrs: [Array(full[..<cut])])
            let (summary, commands) = try replayed(AOFLoader(storage: disk, directory: directory))
            // Expected end: the last record end ≤ cut, but never inside MULTI..EXEC (ends[1]..ends[4]).
            var good = ends.last { $0 <= cut } ?? 0
            if good > ends[1] && good < ends[4] { good = ends[1] }
            let incrPath = directory + "/" + naming.incrFileName(sequence: 1)
            #expect(disk.contents(of: incrPath)?.count == good, "cut \(cut)")
            #expect((summary?.truncatedFiles.isEmpty ?? true) == (good == cut), "cut \(cut)")
            let expectedCount = 1 + [ends[1], ends[4], ends[5]].map { good >= $0 ? 1 : 0 }
                .enumerated().map { $0.offset == 1 ? $0.element * 3 : $0.element }.reduce(0, +)
            #expect(commands.count == expectedCount, "cut \(cut): \(commands)")
        }
    }

    /// A non-last file cut anywhere inside a record refuses, and nothing on disk changes.
    @Test func nonLastFileTruncatedRefusesWithoutTouchingFiles() throws {
        let first = record("INCR", "a") + record("INCR", "b")
        for cut in 1..<first.count where cut != record("INCR", "a").count {
            let disk = SimulatedDisk()
            install(disk, base: [], incrs: [Array(first[..<cut]), record("INCR", "c")])
            let before = disk.contents(of: directory + "/" + naming.incrFileName(sequence: 1))
            #expect(throws: AOFLoadError.self, "cut \(cut)") {
                try replayed(AOFLoader(storage: disk, directory: directory))
            }
            #expect(disk.contents(of: directory + "/" + naming.incrFileName(sequence: 1)) == before)
        }
    }

    @Test func truncatedLastFileRefusedWhenLoadTruncatedIsOff() throws {
        let disk = SimulatedDisk()
        let incr = record("INCR", "a") + Array(record("INCR", "b").dropLast(3))
        install(disk, base: [], incrs: [incr])
        var loader = AOFLoader(storage: disk, directory: directory)
        loader.loadTruncated = false
        do {
            _ = try replayed(loader)
            Issue.record("expected a refusal")
        } catch let error as AOFLoadError {
            #expect(error.offset == Int64(record("INCR", "a").count))
            #expect(error.reason.contains("aof-load-truncated"))
        }
        #expect(disk.contents(of: directory + "/" + naming.incrFileName(sequence: 1)) == incr)
    }

    @Test func corruptionInTheMiddleNamesFileAndOffset() throws {
        let disk = SimulatedDisk()
        let good = record("INCR", "a")
        install(disk, base: [], incrs: [good + Array("garbage\r\n".utf8) + record("INCR", "b")])
        do {
            _ = try replayed(AOFLoader(storage: disk, directory: directory))
            Issue.record("expected a refusal")
        } catch let error as AOFLoadError {
            #expect(error.file == naming.incrFileName(sequence: 1))
            #expect(error.offset == Int64(good.count))
            #expect(error.reason.contains("Bad file format"))
        }
        let bad = record("INCR", "a") + Array("*2\r\n$4\r\nINCR\r\n#1\r\na\r\n".utf8)
        install(disk, base: [], incrs: [bad])
        #expect(throws: AOFLoadError.self) { try replayed(AOFLoader(storage: disk, directory: directory)) }
    }

    @Test func rejectedCommandRefuses() throws {
        let disk = SimulatedDisk()
        install(disk, base: [], incrs: [record("INCR", "a") + record("NOSUCH", "x")])
        let loader = AOFLoader(storage: disk, directory: directory)
        #expect(throws: AOFLoadError.self) {
            _ = try loader.load { arguments, _ in
                if arguments.matches(0, "nosuch") { throw AOFReplayError(reason: "Unknown command 'NOSUCH'") }
            }
        }
    }

    @Test func largeArgumentsSpanChunks() throws {
        let disk = SimulatedDisk()
        let big = String(repeating: "v", count: 3 << 20)
        install(disk, base: [], incrs: [record("SET", "k", big) + record("INCR", "n")])
        let (_, commands) = try replayed(AOFLoader(storage: disk, directory: directory))
        #expect(commands.count == 2)
        #expect(commands[0].count == "0:SET k ".count + big.count)
    }
}

/// Runs a shell command; returns its exit status and output.
func shell(_ command: String) -> (status: Int32, output: String) {
    guard let pipe = popen(command + " 2>&1", "r") else { return (-1, "") }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, pipe)
        if count == 0 { break }
        output += chunk[0..<count]
    }
    let status = pclose(pipe)
    return ((status >> 8) & 0xff, String(decoding: output, as: UTF8.self))
}

/// Polls `command` (a shell line) until its output contains `expected`, for up to `timeoutSeconds`:
/// a real redis-server's start-up, background rewrite or exit, without guessing a sleep.
@discardableResult
func pollShell(_ command: String, until expected: String, timeoutSeconds: Int64 = 30) -> Bool {
    let deadline = monotonicMilliseconds() + timeoutSeconds * 1000
    while monotonicMilliseconds() < deadline {
        if shell(command).output.contains(expected) { return true }
        usleep(10_000)
    }
    return false
}

@Suite struct AOFInteropTests {
    static var redisAvailable: Bool { shell("command -v redis-server && command -v redis-check-aof").status == 0 }

    /// redis-check-aof accepts a manifest and incr file written by Tally's writer.
    @Test(.enabled(if: AOFInteropTests.redisAvailable)) func redisCheckAOFAcceptsTallyDirectory() throws {
        let root = "/tmp/tally-aof-interop-\(getpid())"
        _ = shell("rm -rf \(root)")
        let storage = PosixStorage()
        let directory = root + "/appendonlydir"
        try storage.makeDirectory(root)
        let manifest = try AOFDirectory.prepare(
            storage: storage, directory: directory, naming: AOFNaming(), existing: nil, emptyRDBBase: nil)
        let writer = try AppendOnlyFile(
            storage: storage, manifest: manifest, baseSize: 0,
            configuration: AOFWriterConfiguration(directory: directory, fsyncPolicy: .always))
        var batch = PropagationBuffer()
        batch.append(database: 0, arguments: CommandArguments([Array("INCRBY".utf8), Array("c".utf8), Array("5".utf8)]))
        batch.append(database: 3, arguments: CommandArguments([Array("SET".utf8), Array("k".utf8), Array("v".utf8)]))
        let offset = writer.append(batch)
        writer.waitUntilDurable(offset)
        #expect(writer.isDurable(offset))
        #expect(writer.shutdown())
        let check = shell("redis-check-aof \(directory)/appendonly.aof.manifest")
        #expect(check.status == 0, "\(check.output)")
        #expect(check.output.contains("All AOF files and manifest are valid"))
        // The real server loads it too.
        let port = ServerProcess.freePort()
        let started = shell("redis-server --port \(port) --dir \(root) --appendonly yes --save '' --daemonize yes "
                                + "--logfile \(root)/redis.log")
        #expect(started.status == 0)
        #expect(pollShell("redis-cli -p \(port) PING", until: "PONG"))
        #expect(pollShell("redis-cli -p \(port) INFO persistence", until: "loading:0"))
        let value = shell("redis-cli -p \(port) -n 3 GET k; redis-cli -p \(port) GET c")
        _ = shell("redis-cli -p \(port) shutdown nosave")
        #expect(value.output == "v\n5\n", "\(value.output)")
        _ = shell("rm -rf \(root)")
    }

    /// Tally's loader reads an appendonlydir that redis-server 7.0 wrote (RESP base, then incr).
    @Test(.enabled(if: AOFInteropTests.redisAvailable)) func loadsRedisWrittenDirectory() throws {
        let root = "/tmp/tally-aof-redis-\(getpid())"
        _ = shell("rm -rf \(root); mkdir -p \(root)")
        let port = ServerProcess.freePort()
        _ = shell("redis-server --port \(port) --dir \(root) --appendonly yes --aof-use-rdb-preamble no --save '' "
                  + "--daemonize yes --logfile \(root)/redis.log")
        #expect(pollShell("redis-cli -p \(port) PING", until: "PONG"))
        _ = shell("redis-cli -p \(port) INCRBY counter 41; redis-cli -p \(port) SET temp 1 EX 1000; "
                  + "redis-cli -p \(port) HINCRBY h f 3; redis-cli -p \(port) BGREWRITEAOF")
        #expect(pollShell("redis-cli -p \(port) INFO persistence | tr -d '\\r'",
                          until: "aof_rewrite_in_progress:0\naof_rewrite_scheduled:0"))
        _ = shell("redis-cli -p \(port) INCR counter; redis-cli -p \(port) -n 2 INCRBY other 7")
        _ = shell("redis-cli -p \(port) shutdown nosave")
        #expect(pollShell("redis-cli -p \(port) PING 2>&1", until: "Connection refused"))
        let storage = PosixStorage()
        let loader = AOFLoader(storage: storage, directory: root + "/appendonlydir")
        let (summary, commands) = try replayed(loader)
        #expect(summary != nil)
        #expect(summary?.manifest.incrs.count ?? 0 >= 1)
        // The rewritten base holds the state as commands; the incr holds the later writes.
        #expect(commands.contains { $0.hasPrefix("0:") && $0.contains("counter") })
        #expect(commands.contains { $0.hasPrefix("0:") && $0.contains("h f 3") })
        #expect(commands.contains { $0.uppercased() == "0:INCR COUNTER" })
        #expect(commands.contains { $0.uppercased() == "2:INCRBY OTHER 7" })
        _ = shell("rm -rf \(root)")
    }
}
