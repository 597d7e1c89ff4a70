// Storage: the small file-system interface all persistence I/O goes through.
//
import Glibc

// PosixStorage is the real backend; tests substitute SimulatedDisk, which keeps what was written
// apart from what is durable, so power cuts and disk faults can be simulated deterministically.

/// An errno-carrying storage failure, naming the operation and path for the log.
public struct StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The errno value (ENOSPC, EIO, ENOENT...).
    public var code: Int32
    /// The operation that failed ("write", "fsync", "rename"...).
    public var operation: String
    /// The path involved.
    public var path: String

    /// Creates an error.
    public init(code: Int32, operation: String, path: String) {
        self.code = code
        self.operation = operation
        self.path = path
    }

    public var description: String { "\(operation) \(path): \(errnoDescription(code))" }
}

/// An open file of some `Storage`.
public struct StorageFile: Hashable, Sendable {
    /// Backend-specific identifier (a file descriptor for PosixStorage).
    public let id: Int32
    /// The path it was opened with.
    public let path: String

    /// Creates a handle.
    public init(id: Int32, path: String) {
        self.id = id
        self.path = path
    }
}

/// The file operations persistence needs. Writers are generic over it (`AOFWriter<S: Storage>`).
public protocol Storage: AnyObject, Sendable {
    /// Opens `path` for appending, creating it if missing.
    func openForAppend(_ path: String) throws(StorageError) -> StorageFile
    /// Creates `path` (truncating an existing file) for writing.
    func create(_ path: String) throws(StorageError) -> StorageFile
    /// Opens `path` read-only.
    func openForReading(_ path: String) throws(StorageError) -> StorageFile
    /// Reads up to `buffer.count` bytes at the current position; 0 means end of file.
    func read(_ file: StorageFile, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int
    /// Writes some prefix of `bytes` and returns its length (short writes are possible).
    func write(_ file: StorageFile, _ bytes: UnsafeRawBufferPointer) throws(StorageError) -> Int
    /// Makes everything written to `file` durable (fdatasync).
    func fsync(_ file: StorageFile) throws(StorageError)
    /// Cuts `file` to `length` bytes.
    func truncate(_ file: StorageFile, to length: Int64) throws(StorageError)
    /// Current size of `file` in bytes.
    func size(_ file: StorageFile) throws(StorageError) -> Int64
    /// Closes `file`.
    func close(_ file: StorageFile)
    /// Atomically renames `source` over `destination` (durable only after `fsyncDirectory`).
    func rename(_ source: String, to destination: String) throws(StorageError)
    /// Makes renames, creations and removals in `directory` durable.
    func fsyncDirectory(_ directory: String) throws(StorageError)
    /// Removes a file.
    func remove(_ path: String) throws(StorageError)
    /// True if `path` exists.
    func exists(_ path: String) -> Bool
    /// Creates `path` as a directory if missing. The new entry is durable only after its parent
    /// is fsynced: use `makeDurableDirectory` on the durability path.
    func makeDirectory(_ path: String) throws(StorageError)
    /// Names of the entries in `directory`.
    func listDirectory(_ directory: String) throws(StorageError) -> [String]
}

/// The directory holding `path` ("." for a bare name), as `fsyncDirectory` expects it.
public func storageParent(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
}

/// Creates `path` as a directory if missing and fsyncs its parent, so the directory (and what
/// is later made durable inside it) survives a power cut. The parent is fsynced even when the
/// directory already existed: a previous process may have made it and lost power before
/// making it durable, and nothing written inside it may be acknowledged until it is.
public func makeDurableDirectory<S: Storage>(_ storage: S, _ path: String) throws(StorageError) {
    try storage.makeDirectory(path)
    try storage.fsyncDirectory(storageParent(of: path))
}

/// Writes all of `bytes`, looping over short writes.
public func writeAll<S: Storage>(_ storage: S, _ file: StorageFile, _ bytes: UnsafeRawBufferPointer)
    throws(StorageError)
{
    var offset = 0
    while offset < bytes.count {
        let written = try storage.write(file, UnsafeRawBufferPointer(rebasing: bytes[offset...]))
        precondition(written > 0, "storage write returned 0 bytes")
        offset += written
    }
}

/// The C library's text for an errno value (strerror), e.g. "No space left on device".
public func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
