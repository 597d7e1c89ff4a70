// AtomicReplace: the single way persistence replaces a file (temp, fsync, rename, fsync directory).
import Glibc
import Synchronization

/// Distinguishes temp files of concurrent replacements made by one process.
private let temporarySequence = Atomic<Int>(0)

/// Joins a directory and a file name.
public func storagePath(_ directory: String, _ name: String) -> String {
    if directory.isEmpty || directory == "." { return name }
    return directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// The name of the temporary file for replacing `name`: `temp-<pid>-<n>.<ext>`.
public func temporaryFileName(for name: String) -> String {
    let sequence = temporarySequence.add(1, ordering: .relaxed).newValue
    var ext = "tmp"
    if let dot = name.lastIndex(of: "."), name.index(after: dot) != name.endIndex {
        ext = String(name[name.index(after: dot)...])
    }
    return "temp-\(getpid())-\(sequence).\(ext)"
}

/// Replaces `directory/name` with what `write` produces, atomically and durably.
///
/// Steps (Redis's rdbSave): write `temp-<pid>-<n>.<ext>` in the same directory, flush, fsync,
/// close, rename over the destination, fsync the directory. Readers and crashes see either the
/// old file or the complete new one, never a mixture. On any failure the temp file is removed
/// and the error rethrown; the destination is untouched unless the rename itself happened.
///
/// - Returns: the number of bytes written.
@discardableResult
public func atomicReplace<S: Storage>(
    _ storage: S, directory: String, name: String, incrementalFsync: Bool = false,
    write: (inout StorageSink<S>) throws -> Void
) throws -> Int64 {
    let temporary = storagePath(directory, temporaryFileName(for: name))
    let destination = storagePath(directory, name)
    let file = try storage.create(temporary)
    var closed = false
    do {
        var sink = StorageSink(storage: storage, file: file, incrementalFsync: incrementalFsync)
        try write(&sink)
        try sink.synchronize()
        storage.close(file)
        closed = true
        try storage.rename(temporary, to: destination)
        try storage.fsyncDirectory(directory.isEmpty ? "." : directory)
        return sink.bytesWritten
    } catch {
        if !closed { storage.close(file) }
        // After a successful rename the temp name no longer exists; removing it is harmless.
        if storage.exists(temporary) { try? storage.remove(temporary) }
        throw error
    }
}
