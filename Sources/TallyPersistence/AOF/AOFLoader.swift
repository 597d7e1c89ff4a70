// AOFLoader: start-up replay of the manifest's base and incr files, with the recovery table applied.
import Glibc
import Synchronization
import TallyProtocol
import TallyKeyspace

/// Severity of an AOF log line (Redis's `#`/`*`/`-` levels, as the server's logger prints them).
public enum PersistenceLogLevel: Sendable {
    case warning, notice, verbose
}

/// Where AOF components send log lines; the server wires it to its logger.
public typealias PersistenceLogger = @Sendable (PersistenceLogLevel, String) -> Void

/// Why loading stopped; the server logs `description` and exits without touching the files.
public struct AOFLoadError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file the problem is in (or the manifest).
    public var file: String
    /// Byte offset of the problem in that file (0 when not tied to a byte).
    public var offset: Int64
    /// What went wrong, in Redis's wording where Redis has one.
    public var reason: String

    /// Creates an error.
    public init(file: String, offset: Int64, reason: String) {
        self.file = file
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "\(reason) (file \(file), offset \(offset))" }
}

/// Thrown by a replay closure to reject a command (unknown name...): loading is refused.
public struct AOFReplayError: Error, Sendable {
    /// The message to log.
    public var reason: String

    /// Creates an error.
    public init(reason: String) { self.reason = reason }
}

/// What a finished load found.
public struct AOFLoadSummary: Sendable {
    /// The manifest that was loaded (incr files possibly truncated on disk, names unchanged).
    public var manifest: AOFManifest
    /// Commands replayed from RESP records (SELECT excluded).
    public var commandsReplayed: Int
    /// Files cut back to their last complete record, with the offset.
    public var truncatedFiles: [(file: String, offset: Int64)]
    /// Size of the base file after loading, bytes.
    public var baseSize: Int64
    /// Size of base plus incr files after loading, bytes.
    public var totalSize: Int64
}

/// The loading state INFO reports (`loading:1`, progress); shared with the server.
public final class AOFLoadingStatus: Sendable {
    /// True while a load is running.
    public let isLoading = Atomic<Bool>(false)
    /// Bytes of AOF files to read, for `loading_total_bytes`.
    public let totalBytes = Atomic<Int64>(0)
    /// Bytes processed so far, for `loading_loaded_bytes`.
    public let loadedBytes = Atomic<Int64>(0)

    /// Creates an idle status.
    public init() {}
}

/// Reads an RDB base (or an old RDB-preamble AOF) and returns how many bytes the RDB part used;
/// the rest of the file is replayed as RESP. Provided by the RDB reader's owner.
public typealias AOFRDBPreambleReader<S: Storage> = (_ storage: S, _ path: String) throws -> Int64

/// Loads an AOF directory into the dataset through `replay`.
///
/// Order: parse the manifest; check every listed file exists; read the base (RDB preamble via
/// `rdbReader` when it starts with "REDIS", then RESP), then each incr file in sequence order.
/// Each file's end condition goes through `AOFRecoveryPlan`; only a `.truncateTail` row modifies
/// a file, and only the last one. SELECT records switch the database passed to `replay`;
/// MULTI..EXEC is buffered and replayed as a unit only when EXEC is read, so a transaction cut
/// off at the end of the file is dropped entirely.
public struct AOFLoader<S: Storage> {
    /// The storage the files live on.
    public let storage: S
    /// The AOF directory (`dir`/`appenddirname`).
    public let directory: String
    /// File naming (`appendfilename`).
    public let naming: AOFNaming
    /// `aof-load-truncated`.
    public var loadTruncated: Bool
    /// Reads RDB bases; nil makes a base starting with "REDIS" a load error.
    public var rdbReader: AOFRDBPreambleReader<S>?
    /// Log destination.
    public var log: PersistenceLogger
    /// Progress shared with INFO.
    public var status: AOFLoadingStatus
    /// Called after each file's commands are handed to `replay`: a replay that runs commands on
    /// other threads returns once they have all run, so each file's time is its whole replay.
    public var replayBarrier: () -> Void = {}

    /// Creates a loader.
    public init(
        storage: S, directory: String, naming: AOFNaming = AOFNaming(), loadTruncated: Bool = true,
        rdbReader: AOFRDBPreambleReader<S>? = nil, status: AOFLoadingStatus = AOFLoadingStatus(),
        log: @escaping PersistenceLogger = { _, _ in }
    ) {
        self.storage = storage
        self.directory = directory
        self.naming = naming
        self.loadTruncated = loadTruncated
        self.rdbReader = rdbReader
        self.status = status
        self.log = log
    }

    /// Reads the manifest, or nil when the directory or the manifest does not exist (fresh start).
    public func readManifest() throws(AOFLoadError) -> AOFManifest? {
        let path = storagePath(directory, naming.manifestName)
        guard storage.exists(path) else { return nil }
        let bytes: [UInt8]
        do throws(StorageError) {
            bytes = try readWholeFile(storage, path)
        } catch {
            throw AOFLoadError(
                file: naming.manifestName, offset: 0,
                reason: "Fatal error: can't open the AOF manifest file \(path) for reading: "
                    + errnoDescription(error.code))
        }
        do throws(AOFManifestError) {
            return try AOFManifest.parse(bytes, path: path)
        } catch {
            throw AOFLoadError(file: naming.manifestName, offset: Int64(error.line), reason: error.description)
        }
    }

    /// Loads everything; returns nil when there is no manifest (nothing to load).
    public func load(replay: (CommandArguments, Int) throws -> Void) throws(AOFLoadError) -> AOFLoadSummary? {
        guard let manifest = try readManifest() else { return nil }
        let files = manifest.loadOrder
        var sizes: [Int64] = []
        for info in files {
            let path = storagePath(directory, info.name)
            guard storage.exists(path) else {
                throw refusal(info.name, .missing, isLast: false)
            }
            sizes.append(fileSize(path) ?? 0)
        }
        status.totalBytes.store(sizes.reduce(0, +), ordering: .relaxed)
        status.loadedBytes.store(0, ordering: .relaxed)
        status.isLoading.store(true, ordering: .releasing)
        defer { status.isLoading.store(false, ordering: .releasing) }

        var summary = AOFLoadSummary(
            manifest: manifest, commandsReplayed: 0, truncatedFiles: [], baseSize: 0, totalSize: 0)
        var replayer = Replayer()
        for (index, info) in files.enumerated() {
            let isLast = index == files.count - 1
            let path = storagePath(directory, info.name)
            let started = monotonicMilliseconds()
            let condition = loadOne(path: path, replayer: &replayer, replay: replay)
            replayBarrier()
            let action = AOFRecoveryPlan.action(
                file: info.name, condition: condition, isLastFile: isLast, loadTruncated: loadTruncated)
            switch action {
            case .load:
                break
            case .truncateTail(let offset):
                log(.warning, "!!! Warning: short read while loading the AOF file \(info.name)!!!")
                log(.warning, "!!! Truncating the AOF \(info.name) at offset \(offset) !!!")
                do throws(StorageError) {
                    let file = try storage.openForAppend(path)
                    defer { storage.close(file) }
                    try storage.truncate(file, to: offset)
                    try storage.fsync(file)
                } catch {
                    log(.warning, "Error truncating the AOF file \(info.name): \(errnoDescription(error.code))")
                    throw AOFLoadError(
                        file: info.name, offset: offset,
                        reason: "Error truncating the AOF file \(info.name): \(errnoDescription(error.code))")
                }
                log(.warning, "AOF \(info.name) loaded anyway because aof-load-truncated is enabled")
                summary.truncatedFiles.append((info.name, offset))
            case .refuse(let file, let offset, let reason):
                log(.warning, reason)
                throw AOFLoadError(file: file, offset: offset, reason: reason)
            }
            // "%.3f seconds", as aof.c loadAppendOnlyFiles logs it.
            let secondsText = fixed3(Double(monotonicMilliseconds() - started) / 1000)
            if info.type == .base {
                log(.notice, "DB loaded from base file \(info.name): \(secondsText) seconds")
            } else {
                log(.notice, "DB loaded from incr file \(info.name): \(secondsText) seconds")
            }
            let size = fileSize(path) ?? 0
            if info.type == .base { summary.baseSize = size }
            summary.totalSize += size
            status.loadedBytes.add(sizes[index], ordering: .relaxed)
        }
        summary.commandsReplayed = replayer.commands
        return summary
    }

    // Replays one file and reports how it ended, for the recovery table.
    private func loadOne(
        path: String, replayer: inout Replayer, replay: (CommandArguments, Int) throws -> Void
    ) -> AOFFileCondition {
        var skip: Int64 = 0
        do {
            if try startsWithRDBMagic(path) {
                guard let rdbReader else {
                    return .corruptRDB(reason: "no RDB reader is configured")
                }
                log(.notice, "Reading RDB base file on AOF loading...")
                do {
                    skip = try rdbReader(storage, path)
                } catch {
                    return .corruptRDB(reason: "\(error)")
                }
            }
        } catch {
            return .unreadable(reason: errnoDescription(error.code))
        }
        let file: StorageFile
        do throws(StorageError) {
            file = try storage.openForReading(path)
        } catch {
            return .unreadable(reason: errnoDescription(error.code))
        }
        defer { storage.close(file) }
        // Tally's marks are checked before anything is replayed: damage before a good mark
        // refuses the file; a torn tail limits the replay to the end of the last good mark.
        var limit: Int64?
        do throws(StorageError) {
            switch try AOFMarkVerifier(storage: storage).check(path: path, startingAt: skip) {
            case .unmarked, .verified:
                break
            case .corrupt(let offset, let reason):
                return .checksumMismatch(offset: offset, detail: reason)
            case .tornTail(let validUpTo, let reason):
                log(.warning, "!!! Torn tail in the AOF file \(path) (\(reason)): usable up to offset \(validUpTo) !!!")
                limit = validUpTo
            }
        } catch {
            return .unreadable(reason: errnoDescription(error.code))
        }
        var reader = AOFRecordReader(storage: storage, file: file, startingAt: skip)
        var arguments = CommandArguments()
        var end = AOFScanEnd.complete
        do throws(StorageError) {
            if skip > 0 { try skipForward(storage, file, count: skip) }
            replayer.beginFile()
            while try reader.next(into: &arguments, end: &end) {
                if let limit, reader.offset > limit { break }
                do {
                    try replayer.feed(arguments, recordEnd: reader.offset, replay: replay)
                } catch {
                    return .rejectedCommand(offset: reader.offset, reason: "\(error)")
                }
            }
        } catch {
            return .unreadable(reason: errnoDescription(error.code))
        }
        if let limit {
            return .truncated(validUpTo: replayer.openTransactionStart ?? limit)
        }
        switch end {
        case .complete:
            if let beforeMulti = replayer.openTransactionStart {
                log(.warning, "Revert incomplete MULTI/EXEC transaction in AOF file \(path)")
                return .incompleteTransaction(validBeforeMulti: beforeMulti)
            }
            return .intact
        case .truncated(let validUpTo):
            return .truncated(validUpTo: replayer.openTransactionStart ?? validUpTo)
        case .formatError(let offset, _):
            return .corrupt(offset: offset)
        }
    }

    private func startsWithRDBMagic(_ path: String) throws(StorageError) -> Bool {
        let file = try storage.openForReading(path)
        defer { storage.close(file) }
        var magic = [UInt8](repeating: 0, count: 5)
        var got = 0
        while got < 5 {
            let count = try readInto(storage, file, &magic, got..<5)
            if count == 0 { break }
            got += count
        }
        return got == 5 && magic == Array("REDIS".utf8)
    }

    private func fileSize(_ path: String) -> Int64? {
        guard let file = try? storage.openForReading(path) else { return nil }
        defer { storage.close(file) }
        return try? storage.size(file)
    }

    private func refusal(_ file: String, _ condition: AOFFileCondition, isLast: Bool) -> AOFLoadError {
        switch AOFRecoveryPlan.action(file: file, condition: condition, isLastFile: isLast, loadTruncated: false) {
        case .refuse(let file, let offset, let reason):
            log(.warning, reason)
            return AOFLoadError(file: file, offset: offset, reason: reason)
        case .load, .truncateTail:
            preconditionFailure("condition \(condition) must refuse")
        }
    }

    // Tracks SELECT and buffers MULTI..EXEC so a transaction is applied only once complete.
    struct Replayer {
        var database = 0
        var commands = 0
        var transaction: [CommandArguments] = []
        var inTransaction = false
        /// File offset where the open MULTI began, if one is open.
        var openTransactionStart: Int64?
        private var lastRecordEnd: Int64 = 0

        mutating func beginFile() {
            lastRecordEnd = 0
            // Redis creates a fresh loading client per file, so every file starts in database 0.
            database = 0
            // A transaction never spans files: Redis writes MULTI..EXEC as one batch.
            transaction.removeAll()
            inTransaction = false
            openTransactionStart = nil
        }

        // `recordEnd` is the reader offset after this record; the record began at the previous one.
        mutating func feed(
            _ arguments: CommandArguments, recordEnd: Int64, replay: (CommandArguments, Int) throws -> Void
        ) throws {
            defer { lastRecordEnd = recordEnd }
            if inTransaction {
                transaction.append(arguments)
                if arguments.matches(0, "exec") {
                    inTransaction = false
                    openTransactionStart = nil
                    for queued in transaction { try dispatch(queued, replay) }
                    transaction.removeAll(keepingCapacity: true)
                }
                return
            }
            if arguments.matches(0, "multi") {
                inTransaction = true
                openTransactionStart = lastRecordEnd
                transaction.append(arguments)
                return
            }
            try dispatch(arguments, replay)
        }

        private mutating func dispatch(
            _ arguments: CommandArguments, _ replay: (CommandArguments, Int) throws -> Void
        ) throws {
            if arguments.matches(0, "select") {
                guard arguments.count == 2, let number = Int(String(decoding: arguments[1], as: UTF8.self)),
                    number >= 0
                else { throw AOFReplayError(reason: "invalid SELECT in the append only file") }
                database = number
                return
            }
            commands += 1
            try replay(arguments, database)
        }
    }
}

/// Reads a whole (small) file, such as the manifest.
func readWholeFile<S: Storage>(_ storage: S, _ path: String) throws(StorageError) -> [UInt8] {
    let file = try storage.openForReading(path)
    defer { storage.close(file) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = try readInto(storage, file, &chunk, 0..<chunk.count)
        if count == 0 { return output }
        output.append(contentsOf: chunk[0..<count])
    }
}
