// AOFDirectory: fresh-start creation of the AOF directory (base, incr, manifest) and INFO fields.

/// Writes an empty base file: an RDB with aux `aof-base=1` (supplied by the RDB writer's owner)
/// or, when nil, an empty `.base.aof`.
public typealias AOFEmptyRDBBaseWriter<S: Storage> = (_ storage: S, _ directory: String, _ name: String) throws -> Int64

/// Prepares the AOF directory for appending.
public enum AOFDirectory {
    /// Returns the manifest to append with, creating what Redis 7.0 creates in an empty
    /// directory when there is none: `appendonly.aof.1.base.rdb` (empty dataset),
    /// `appendonly.aof.1.incr.aof` and the manifest listing both (persisted atomically).
    /// When a manifest exists but lists no incr file, a new incr file is added to it.
    public static func prepare<S: Storage>(
        storage: S, directory: String, naming: AOFNaming, existing: AOFManifest?,
        emptyRDBBase: AOFEmptyRDBBaseWriter<S>?
    ) throws -> AOFManifest {
        try storage.makeDirectory(directory)
        var manifest = existing ?? AOFManifest()
        var changed = false
        if existing == nil {
            let sequence = manifest.currentBaseSequence + 1
            let name = naming.baseFileName(sequence: sequence, rdbPreamble: emptyRDBBase != nil)
            if let emptyRDBBase {
                _ = try emptyRDBBase(storage, directory, name)
            } else {
                _ = try atomicReplace(storage, directory: directory, name: name) { _ in }
            }
            manifest.base = AOFFileInfo(name: name, sequence: sequence, type: .base)
            manifest.currentBaseSequence = sequence
            changed = true
        }
        if manifest.incrs.isEmpty {
            let sequence = manifest.currentIncrSequence + 1
            let name = naming.incrFileName(sequence: sequence)
            let file = try storage.create(storagePath(directory, name))
            storage.close(file)
            manifest.incrs.append(AOFFileInfo(name: name, sequence: sequence, type: .incr))
            manifest.currentIncrSequence = sequence
            changed = true
        }
        if changed {
            try writeManifest(manifest, storage: storage, directory: directory, naming: naming)
        }
        return manifest
    }
}

/// The AOF part of INFO persistence, as Redis 7.0 prints it.
public struct AOFInfo: Sendable {
    /// `aof_enabled`.
    public var enabled = false
    /// `aof_rewrite_in_progress`.
    public var rewriteInProgress = false
    /// `aof_rewrite_scheduled`.
    public var rewriteScheduled = false
    /// `aof_last_rewrite_time_sec` (-1 before the first).
    public var lastRewriteSeconds: Int64 = -1
    /// `aof_current_rewrite_time_sec` (-1 when none runs).
    public var currentRewriteSeconds: Int64 = -1
    /// `aof_last_bgrewrite_status`.
    public var lastRewriteOK = true
    /// `aof_rewrites`.
    public var rewrites = 0
    /// `aof_last_write_status`.
    public var lastWriteOK = true

    /// Creates the defaults (AOF disabled).
    public init() {}

    /// Appends the `aof_*` lines (CRLF-terminated) to `output`; `writer` adds the size fields
    /// Redis prints only while the AOF is on.
    public func append<S: Storage>(to output: inout [UInt8], writer: AppendOnlyFile<S>?) {
        var text = "aof_enabled:\(enabled ? 1 : 0)\r\n"
        text += "aof_rewrite_in_progress:\(rewriteInProgress ? 1 : 0)\r\n"
        text += "aof_rewrite_scheduled:\(rewriteScheduled ? 1 : 0)\r\n"
        text += "aof_last_rewrite_time_sec:\(lastRewriteSeconds)\r\n"
        text += "aof_current_rewrite_time_sec:\(currentRewriteSeconds)\r\n"
        text += "aof_last_bgrewrite_status:\(lastRewriteOK ? "ok" : "err")\r\n"
        text += "aof_rewrites:\(rewrites)\r\n"
        text += "aof_rewrites_consecutive_failures:0\r\n"
        var writeOK = lastWriteOK
        let state = writer?.snapshot()
        if let state, state.errorCode != nil { writeOK = false }
        text += "aof_last_write_status:\(writeOK ? "ok" : "err")\r\n"
        text += "aof_last_cow_size:0\r\n"
        if enabled, let state {
            text += "aof_current_size:\(state.currentSize)\r\n"
            text += "aof_base_size:\(state.baseSize)\r\n"
            text += "aof_pending_rewrite:0\r\n"
            text += "aof_buffer_length:\(state.bufferLength)\r\n"
            text += "aof_pending_bio_fsync:\(state.fsyncInProgress ? 1 : 0)\r\n"
            text += "aof_delayed_fsync:\(state.delayedFsyncs)\r\n"
        }
        output.append(contentsOf: text.utf8)
    }
}
