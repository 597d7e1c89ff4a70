// PosixStorage: the real `Storage` backend, one Glibc call per operation with EINTR retried.
import Glibc
import TallyPlatform

/// Files on the local file system, through open/read/write/fdatasync/rename and friends.
///
/// Every call that can be interrupted by a signal is retried on EINTR; any other failure is
/// thrown as a `StorageError` naming the operation and the path, so logs say what broke.
public final class PosixStorage: Storage {
    /// Creates the backend. It holds no state: file descriptors are the handles.
    public init() {}

    /// Runs `body` through the platform's EINTR loop; any other failure becomes a
    /// `StorageError` naming the operation and the path.
    @inline(__always)
    private func retrying<T: FixedWidthInteger>(
        _ operation: String, _ path: String, _ body: () -> T
    ) throws(StorageError) -> T {
        do {
            return try Posix.retryingInterrupted(body)
        } catch {
            throw StorageError(code: error.rawValue, operation: operation, path: path)
        }
    }

    private func open(_ path: String, flags: Int32, operation: String) throws(StorageError) -> StorageFile {
        let descriptor = try retrying(operation, path) { Glibc.open(path, flags | O_CLOEXEC, 0o644) }
        return StorageFile(id: descriptor, path: path)
    }

    public func openForAppend(_ path: String) throws(StorageError) -> StorageFile {
        try open(path, flags: O_WRONLY | O_APPEND | O_CREAT, operation: "open")
    }

    public func create(_ path: String) throws(StorageError) -> StorageFile {
        try open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, operation: "create")
    }

    public func openForReading(_ path: String) throws(StorageError) -> StorageFile {
        try open(path, flags: O_RDONLY, operation: "open")
    }

    public func read(_ file: StorageFile, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        return try retrying("read", file.path) { Glibc.read(file.id, base, buffer.count) }
    }

    public func write(_ file: StorageFile, _ bytes: UnsafeRawBufferPointer) throws(StorageError) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        return try retrying("write", file.path) { Glibc.write(file.id, base, bytes.count) }
    }

    public func fsync(_ file: StorageFile) throws(StorageError) {
        // fdatasync is enough: the size is metadata it does flush, and timestamps do not matter.
        _ = try retrying("fsync", file.path) { fdatasync(file.id) }
    }

    public func truncate(_ file: StorageFile, to length: Int64) throws(StorageError) {
        _ = try retrying("truncate", file.path) { ftruncate(file.id, off_t(length)) }
    }

    public func size(_ file: StorageFile) throws(StorageError) -> Int64 {
        var info = stat()
        _ = try retrying("fstat", file.path) { fstat(file.id, &info) }
        return Int64(info.st_size)
    }

    public func close(_ file: StorageFile) {
        // close(2) must not be retried on EINTR on Linux: the descriptor is already released.
        _ = Glibc.close(file.id)
    }

    public func rename(_ source: String, to destination: String) throws(StorageError) {
        _ = try retrying("rename", source) { Glibc.rename(source, destination) }
    }

    public func fsyncDirectory(_ directory: String) throws(StorageError) {
        let descriptor = try retrying("open", directory) { Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { _ = Glibc.close(descriptor) }
        _ = try retrying("fsync", directory) { Glibc.fsync(descriptor) }
    }

    public func remove(_ path: String) throws(StorageError) {
        _ = try retrying("unlink", path) { unlink(path) }
    }

    public func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    public func makeDirectory(_ path: String) throws(StorageError) {
        if Glibc.mkdir(path, 0o755) == 0 { return }
        let code = errno
        if code == EEXIST { return }
        throw StorageError(code: code, operation: "mkdir", path: path)
    }

    public func listDirectory(_ directory: String) throws(StorageError) -> [String] {
        guard let stream = opendir(directory) else {
            throw StorageError(code: errno, operation: "opendir", path: directory)
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
