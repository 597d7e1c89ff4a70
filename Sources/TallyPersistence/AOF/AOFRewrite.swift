// AOFRewrite: BGREWRITEAOF's file steps: write a new base from a snapshot, switch the manifest.
import TallyKeyspace
import TallyProtocol

/// Visits every entry of a point-in-time snapshot as (database, key, entry). Built by the
/// wiring from the keyspace snapshot; called once on the rewrite thread.
public typealias AOFEntryWalker = @Sendable (_ visit: (Int, [UInt8], Entry) throws -> Void) throws -> Void

/// Steps 3-4 of a rewrite (Redis 7.0's, with a snapshot instead of fork):
/// ```
///  caller (no appends in between!)         background job
///  1. rotate to incr N+1 (AppendOnlyFile.
///     rotateIncrFile) or, with the AOF
///     off, nothing
///  2. take the keyspace snapshot ───────►  3. writeBase: temp base, fsync, rename to
///                                             appendonly.aof.<b+1>.base.(rdb|aof)
///                                          4. old base + incr <= N become history,
///                                             persist manifest, delete history,
///                                             persist manifest again
/// ```
/// Steps 1 and 2 must be atomic with respect to appends (hold every shard lock across them),
/// or a write could land both in the snapshot and in incr N+1 and be applied twice on load.
/// `keepsLastIncr` is false when the AOF is off (BGREWRITEAOF with appendonly no): the new
/// manifest then lists only the base, as in Redis 7.0. On a failure before the manifest
/// switch the new base is removed and the old manifest stays in force (the error is thrown).
/// Returns the manifest now in force and the base size.
func installRewrittenBase<S: Storage>(
    storage: S, directory: String, naming: AOFNaming, manifest: AOFManifest, keepsLastIncr: Bool, asRDB: Bool,
    writeBase: (_ name: String) throws -> Int64
) throws -> (manifest: AOFManifest, baseSize: Int64) {
    let sequence = manifest.currentBaseSequence + 1
    let name = naming.baseFileName(sequence: sequence, rdbPreamble: asRDB)
    let baseSize = try writeBase(name)
    var next = manifest
    next.currentBaseSequence = sequence
    var history = next.history
    if let oldBase = next.base {
        history.append(AOFFileInfo(name: oldBase.name, sequence: oldBase.sequence, type: .history))
    }
    for old in keepsLastIncr ? next.incrs.dropLast() : next.incrs[...] {
        history.append(AOFFileInfo(name: old.name, sequence: old.sequence, type: .history))
    }
    next.base = AOFFileInfo(name: name, sequence: sequence, type: .base)
    next.incrs = keepsLastIncr ? Array(next.incrs.suffix(1)) : []
    next.history = history
    do {
        try writeManifest(next, storage: storage, directory: directory, naming: naming)
    } catch {
        try? storage.remove(storagePath(directory, name))
        throw error
    }
    // History files are garbage now; a crash here only leaves files the manifest lists as h.
    for old in history where old.name != name { try? storage.remove(storagePath(directory, old.name)) }
    // The removals are made durable with the clean manifest below; if that write fails, on their own.
    var clean = next
    clean.history = []
    if (try? writeManifest(clean, storage: storage, directory: directory, naming: naming)) != nil {
        next = clean
    } else {
        try? storage.fsyncDirectory(directory.isEmpty ? "." : directory)
    }
    return (next, baseSize)
}

/// Items per HSET when rewriting a hash (Redis's AOF_REWRITE_ITEMS_PER_CMD).
let rewriteItemsPerCommand = 64

/// Writes `FUNCTION LOAD <code>` per library, as aof.c rewriteFunctions does before the databases.
public func writeRESPFunctions<Sink: ByteSink>(_ codes: [[UInt8]], into sink: inout Sink) throws {
    var scratch: [UInt8] = []
    for code in codes {
        RESPRecord.append([Array("FUNCTION".utf8), Array("LOAD".utf8), code], to: &scratch)
    }
    if !scratch.isEmpty { try sink.write(scratch) }
}

/// Writes the snapshot as RESP commands: SELECT per database change, SET (integers in decimal),
/// HSET in chunks of 64 pairs, RPUSH in chunks of 64 elements, PEXPIREAT for keys with a TTL.
public func writeRESPBase<Sink: ByteSink>(_ walk: AOFEntryWalker, into sink: inout Sink) throws {
    var database = -1
    var scratch: [UInt8] = []
    try walk { entryDatabase, key, entry in
        scratch.removeAll(keepingCapacity: true)
        if entryDatabase != database {
            RESPRecord.appendSelect(entryDatabase, to: &scratch)
            database = entryDatabase
        }
        appendRESPEntry(key: key, entry: entry, to: &scratch)
        try sink.write(scratch)
    }
}

/// Writes a snapshot taken with `respShardSerializer()` as a RESP base: a SELECT where the
/// database changes, then each page's commands as a writer or the image encoded them.
public func writeRESPBase<Sink: ByteSink>(_ image: KeyspaceImage, into sink: inout Sink) throws {
    var database = -1
    try image.forEachShardImage { part in
        switch part {
        case .section(let sectionDatabase, _, _):
            guard sectionDatabase != database else { return }
            var select: [UInt8] = []
            RESPRecord.appendSelect(sectionDatabase, to: &select)
            try sink.write(select)
            database = sectionDatabase
        case .serialized(let compact):
            try CompactSections.expand(compact) { chunk throws(StorageError) in try sink.write(chunk) }
        }
    }
}

/// The serializer to pass to `Keyspace.image(serializer:)` for a RESP base (`writeRESPBase`): a
/// page of a table becomes its keys' commands, prefix-compressed as `CompactSections` holds RDB
/// records, so a rewrite under writes bounds what a command pays as a save does.
public func respShardSerializer() -> ShardImageSerializer {
    { page in
        CompactSections.encode(page) { key, entry, record in
            appendRESPEntry(key: key.bytes, entry: entry, to: &record)
        }
    }
}

/// Appends the commands that recreate one key: SET (integers in decimal), HSET/RPUSH/SADD/ZADD
/// in chunks of 64 items (aof.c's rewrite*Object), a stream's commands, PEXPIREAT for a TTL.
func appendRESPEntry(key: [UInt8], entry: Entry, to scratch: inout [UInt8]) {
    var digits: [UInt8] = []
    switch entry.value {
    case .integer(let value):
        digits.removeAll(keepingCapacity: true)
        appendDecimal(Int(value), to: &digits)
        RESPRecord.append([Array("SET".utf8), key, digits], to: &scratch)
    case .string(let bytes):
        RESPRecord.append([Array("SET".utf8), key, bytes], to: &scratch)
    case .hash(let hash):
        // HSET in chunks of `rewriteItemsPerCommand` pairs, in the hash's order.
        var left = hash.count
        var inCommand = 0
        hash.forEach { field, value in
            if inCommand == 0 {
                let pairs = Swift.min(rewriteItemsPerCommand, left)
                RESPRecord.appendHeader(count: 2 + 2 * pairs, to: &scratch)
                RESPRecord.appendBulk("HSET".utf8, to: &scratch)
                RESPRecord.appendBulk(key, to: &scratch)
                inCommand = pairs
            }
            RESPRecord.appendBulk(field, to: &scratch)
            RESPRecord.appendBulk(value, to: &scratch)
            inCommand -= 1
            left -= 1
        }
    case .list(let list):
        // RPUSH in chunks of 64 elements (aof.c rewriteListObject).
        var left = list.count
        var inCommand = 0
        list.visit(from: 0) { _, element in
            if inCommand == 0 {
                let items = Swift.min(left, rewriteItemsPerCommand)
                RESPRecord.appendHeader(count: 2 + items, to: &scratch)
                RESPRecord.appendBulk("RPUSH".utf8, to: &scratch)
                RESPRecord.appendBulk(key, to: &scratch)
                inCommand = items
            }
            switch element {
            case .integer(let value):
                digits.removeAll(keepingCapacity: true)
                appendDecimal(Int(value), to: &digits)
                RESPRecord.appendBulk(digits, to: &scratch)
            case .bytes(let bytes):
                RESPRecord.appendBulk(bytes, to: &scratch)
            }
            inCommand -= 1
            left -= 1
            return true
        }
    case .set(let set):
        // SADD in chunks of 64 members (aof.c rewriteSetObject).
        var left = set.count
        var inCommand = 0
        set.forEach { member in
            if inCommand == 0 {
                let items = Swift.min(left, rewriteItemsPerCommand)
                RESPRecord.appendHeader(count: 2 + items, to: &scratch)
                RESPRecord.appendBulk("SADD".utf8, to: &scratch)
                RESPRecord.appendBulk(key, to: &scratch)
                inCommand = items
            }
            RESPRecord.appendBulk(member, to: &scratch)
            inCommand -= 1
            left -= 1
        }
    case .sortedSet(let set):
        // ZADD in chunks of 64 score/member pairs (aof.c rewriteSortedSetObject); `%.17g`
        // scores parse back to the exact double.
        var left = set.count
        var inCommand = 0
        set.forEach { member, score in
            if inCommand == 0 {
                let items = Swift.min(left, rewriteItemsPerCommand)
                RESPRecord.appendHeader(count: 2 + 2 * items, to: &scratch)
                RESPRecord.appendBulk("ZADD".utf8, to: &scratch)
                RESPRecord.appendBulk(key, to: &scratch)
                inCommand = items
            }
            RESPRecord.appendBulk(formatScore(score), to: &scratch)
            RESPRecord.appendBulk(member, to: &scratch)
            inCommand -= 1
            left -= 1
        }
    case .stream(let stream):
        appendStreamRewrite(stream, key: key, to: &scratch)
    }
    if let expiry = entry.expiresAtMilliseconds {
        digits.removeAll(keepingCapacity: true)
        appendDecimal(Int(expiry), to: &digits)
        RESPRecord.append([Array("PEXPIREAT".utf8), key, digits], to: &scratch)
    }
}

/// A stream as aof.c rewriteStreamObject writes it: XADD per entry (or an XADD MAXLEN 0 that
/// creates the empty stream), XSETID with the counters, then per group XGROUP CREATE ...
/// ENTRIESREAD, XCLAIM ... TIME RETRYCOUNT JUSTID FORCE per pending entry and XGROUP
/// CREATECONSUMER for consumers without pending entries.
func appendStreamRewrite(_ stream: StreamValue, key: [UInt8], to scratch: inout [UInt8]) {
    func decimal(_ value: Int64) -> [UInt8] { Array(String(value).utf8) }
    if stream.length > 0 {
        stream.forEach(from: .zero, through: .max) { id, fields in
            var command: [[UInt8]] = [Array("XADD".utf8), key, id.bytes]
            for field in fields { command.append(field.materialized) }
            RESPRecord.append(command, to: &scratch)
            return true
        }
    } else {
        RESPRecord.append([Array("XADD".utf8), key, Array("MAXLEN".utf8), Array("0".utf8), StreamID(0, 1).bytes,
                           Array("x".utf8), Array("y".utf8)], to: &scratch)
    }
    RESPRecord.append([Array("XSETID".utf8), key, stream.lastID.bytes, Array("ENTRIESADDED".utf8),
                       decimal(stream.entriesAdded), Array("MAXDELETEDID".utf8), stream.maxDeletedID.bytes],
                      to: &scratch)
    for group in stream.groups {
        RESPRecord.append([Array("XGROUP".utf8), Array("CREATE".utf8), key, group.name, group.lastID.bytes,
                           Array("ENTRIESREAD".utf8), decimal(group.entriesRead)], to: &scratch)
        for consumer in group.consumers {
            if consumer.pending.isEmpty {
                RESPRecord.append([Array("XGROUP".utf8), Array("CREATECONSUMER".utf8), key, group.name,
                                   consumer.name], to: &scratch)
                continue
            }
            for id in consumer.pending {
                guard let entry = group.pending(id) else { continue }
                RESPRecord.append([Array("XCLAIM".utf8), key, group.name, consumer.name, Array("0".utf8), id.bytes,
                                   Array("TIME".utf8), decimal(entry.deliveryTime), Array("RETRYCOUNT".utf8),
                                   decimal(entry.deliveryCount), Array("JUSTID".utf8), Array("FORCE".utf8)],
                                  to: &scratch)
            }
        }
    }
}
