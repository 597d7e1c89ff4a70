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
        // The directory's own entry in `dir` must be durable before anything in it is relied on.
        try makeDurableDirectory(storage, directory)
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
