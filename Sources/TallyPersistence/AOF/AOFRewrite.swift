// AOFRewrite: BGREWRITEAOF: rotate to a new incr file, write a new base from a snapshot, switch the manifest.
import Dispatch
import Synchronization
import TallyKeyspace
import TallyProtocol

/// Visits every entry of a point-in-time snapshot as (database, key, entry). Built by the
/// wiring from the keyspace snapshot; called once on the rewrite thread.
public typealias AOFEntryWalker = @Sendable (_ visit: (Int, [UInt8], Entry) throws -> Void) throws -> Void

/// Writes an RDB base (aux `aof-base=1`) named `name` in `directory` atomically from a walker
/// and returns its size. Supplied by the RDB writer's owner; nil means RESP bases only.
public typealias AOFRDBBaseWriter<S: Storage> =
    @Sendable (_ storage: S, _ directory: String, _ name: String, _ walk: AOFEntryWalker) throws -> Int64

/// What asking for a rewrite did.
public enum AOFRewriteStart: Equatable, Sendable {
    /// `+Background append only file rewriting started`.
    case started
    /// `-ERR Background append only file rewriting already in progress`.
    case alreadyInProgress
    /// `+Background append only file rewriting scheduled` (a BGSAVE runs; it starts after).
    case scheduled
    /// Could not even rotate the incr file; nothing changed.
    case failed(String)
}

/// Runs rewrites for one `AppendOnlyFile` and keeps the INFO counters.
///
/// Protocol (Redis 7.0's, with a snapshot instead of fork):
/// ```
///  caller (no appends in between!)         rewrite thread
///  1. beginRewrite(): flush, fsync,
///     open incr N+1, persist manifest
///  2. take the keyspace snapshot ───────►  3. write temp base, fsync, rename to
///                                             appendonly.aof.<b+1>.base.(rdb|aof)
///                                          4. old base + incr ≤ N become history,
///                                             persist manifest, delete history,
///                                             persist manifest again
/// ```
/// Steps 1 and 2 must be atomic with respect to appends (hold every shard lock across them),
/// or a write could land both in the snapshot and in incr N+1 and be applied twice on load.
/// On any failure before the manifest switch the new base is removed and the old manifest
/// stays in force; `aof_last_bgrewrite_status` becomes `err`.
public final class AOFRewriter<S: Storage>: Sendable {
    /// The writer whose files are rewritten.
    public let writer: AppendOnlyFile<S>
    /// `aof-use-rdb-preamble` (effective only with `rdbBaseWriter`).
    public let useRDBPreamble: Bool
    /// Writes RDB bases.
    public let rdbBaseWriter: AOFRDBBaseWriter<S>?

    private struct State {
        var inProgress = false
        var startedMilliseconds: Int64 = 0
        var info = AOFInfo()
    }
    private let state = Mutex(State())

    /// Creates a rewriter.
    public init(writer: AppendOnlyFile<S>, useRDBPreamble: Bool = true, rdbBaseWriter: AOFRDBBaseWriter<S>? = nil) {
        self.writer = writer
        self.useRDBPreamble = useRDBPreamble
        self.rdbBaseWriter = rdbBaseWriter
    }

    /// INFO counters (aof_rewrite_in_progress, aof_last_bgrewrite_status, aof_rewrites...).
    public func info() -> AOFInfo {
        state.withLock { state in
            var info = state.info
            info.enabled = true
            info.rewriteInProgress = state.inProgress
            info.currentRewriteSeconds = state.inProgress
                ? (monotonicMilliseconds() - state.startedMilliseconds) / 1000 : -1
            return info
        }
    }

    /// True while a rewrite runs.
    public var isInProgress: Bool { state.withLock { $0.inProgress } }

    /// Step 1: claims the rewrite and rotates to a new incr file.
    public func beginRewrite() -> AOFRewriteStart {
        let claimed = state.withLock { state -> Bool in
            if state.inProgress { return false }
            state.inProgress = true
            state.startedMilliseconds = monotonicMilliseconds()
            return true
        }
        guard claimed else { return .alreadyInProgress }
        do {
            _ = try writer.rotateIncrFile()
            return .started
        } catch {
            finish(ok: false, message: "Can't open new incr AOF for rewrite: \(error)")
            return .failed("\(error)")
        }
    }

    /// Steps 3-4 on a background thread; `completion` (tests) runs when it is done.
    public func runInBackground(_ walk: @escaping AOFEntryWalker, completion: (@Sendable (Bool) -> Void)? = nil) {
        DispatchQueue.global(qos: .utility).async {
            let ok = self.rewrite(walk)
            completion?(ok)
        }
    }

    /// Steps 3-4 on the calling thread; returns whether the new base is in force.
    @discardableResult
    public func rewrite(_ walk: AOFEntryWalker) -> Bool {
        let configuration = writer.configuration
        let directory = configuration.directory
        let naming = configuration.naming
        let manifest = writer.currentManifest()
        let sequence = manifest.currentBaseSequence + 1
        let asRDB = useRDBPreamble && rdbBaseWriter != nil
        let name = naming.baseFileName(sequence: sequence, rdbPreamble: asRDB)
        let baseSize: Int64
        do {
            if asRDB, let rdbBaseWriter {
                baseSize = try rdbBaseWriter(writer.storage, directory, name, walk)
            } else {
                baseSize = try atomicReplace(writer.storage, directory: directory, name: name, incrementalFsync: true) {
                    sink in
                    try writeRESPBase(walk, into: &sink)
                }
            }
        } catch {
            finish(ok: false, message: "Background AOF rewrite failed: \(error)")
            return false
        }
        // The rotated-in incr file (the last) survives; everything before it is covered by the base.
        var next = manifest
        next.currentBaseSequence = sequence
        var history = next.history
        if let oldBase = next.base {
            history.append(AOFFileInfo(name: oldBase.name, sequence: oldBase.sequence, type: .history))
        }
        for old in next.incrs.dropLast() {
            history.append(AOFFileInfo(name: old.name, sequence: old.sequence, type: .history))
        }
        next.base = AOFFileInfo(name: name, sequence: sequence, type: .base)
        next.incrs = Array(next.incrs.suffix(1))
        next.history = history
        do {
            try writer.persistManifest(next)
        } catch {
            try? writer.storage.remove(storagePath(directory, name))
            finish(ok: false, message: "Can't persist the AOF manifest after rewrite: \(error)")
            return false
        }
        let kept = writer.snapshot()
        writer.adoptRewrittenManifest(next, baseSize: baseSize, keptIncrSizes: 0)
        _ = kept
        // History files are garbage now; a crash here only leaves files the manifest lists as h.
        for old in history { try? writer.storage.remove(storagePath(directory, old.name)) }
        next.history = []
        if (try? writer.persistManifest(next)) != nil {
            writer.adoptRewrittenManifest(next, baseSize: baseSize, keptIncrSizes: 0)
        }
        finish(ok: true, message: "Background AOF rewrite finished successfully")
        return true
    }

    private func finish(ok: Bool, message: String) {
        writer.configuration.log(ok ? .notice : .warning, message)
        state.withLock { state in
            state.inProgress = false
            state.info.lastRewriteOK = ok
            state.info.lastRewriteSeconds = (monotonicMilliseconds() - state.startedMilliseconds) / 1000
            if ok { state.info.rewrites += 1 }
        }
    }
}

/// Items per HSET when rewriting a hash (Redis's AOF_REWRITE_ITEMS_PER_CMD).
let rewriteItemsPerCommand = 64

/// Writes the snapshot as RESP commands: SELECT per database change, SET (integers in decimal),
/// HSET in chunks of 64 pairs, PEXPIREAT for keys with a TTL.
public func writeRESPBase<Sink: ByteSink>(_ walk: AOFEntryWalker, into sink: inout Sink) throws {
    var database = -1
    var scratch: [UInt8] = []
    var digits: [UInt8] = []
    try walk { entryDatabase, key, entry in
        scratch.removeAll(keepingCapacity: true)
        if entryDatabase != database {
            RESPRecord.appendSelect(entryDatabase, to: &scratch)
            database = entryDatabase
        }
        switch entry.value {
        case .integer(let value):
            digits.removeAll(keepingCapacity: true)
            appendDecimal(Int(value), to: &digits)
            RESPRecord.append([Array("SET".utf8), key, digits], to: &scratch)
        case .string(let bytes):
            RESPRecord.append([Array("SET".utf8), key, bytes], to: &scratch)
        case .hash(let hash):
            var index = 0
            while index < hash.count {
                let end = Swift.min(index + rewriteItemsPerCommand, hash.count)
                RESPRecord.appendHeader(count: 2 + 2 * (end - index), to: &scratch)
                RESPRecord.appendBulk("HSET".utf8, to: &scratch)
                RESPRecord.appendBulk(key, to: &scratch)
                for position in index..<end {
                    RESPRecord.appendBulk(hash.fields[position], to: &scratch)
                    RESPRecord.appendBulk(hash.values[position], to: &scratch)
                }
                index = end
            }
        }
        if let expiry = entry.expiresAtMilliseconds {
            digits.removeAll(keepingCapacity: true)
            appendDecimal(Int(expiry), to: &digits)
            RESPRecord.append([Array("PEXPIREAT".utf8), key, digits], to: &scratch)
        }
        try sink.write(scratch)
    }
}
