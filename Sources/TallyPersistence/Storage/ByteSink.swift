// ByteSink: one write interface for RDB and AOF output (like Redis's rio), with storage, memory and CRC backends.

/// A destination for a stream of bytes. Writers (RDB, AOF rewrite) are generic over it.
public protocol ByteSink {
    /// Appends all of `bytes` (buffering is up to the sink).
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError)
    /// Pushes buffered bytes to the layer below (not necessarily durable).
    mutating func flush() throws(StorageError)
}

extension ByteSink {
    /// Appends the bytes of an array.
    @inlinable public mutating func write(_ bytes: [UInt8]) throws(StorageError) {
        let result: Result<Void, StorageError> = bytes.withUnsafeBytes { raw in
            do throws(StorageError) { try write(raw) } catch { return .failure(error) }
            return .success(())
        }
        try result.get()
    }

    /// Appends one byte.
    @inlinable public mutating func write(byte: UInt8) throws(StorageError) {
        let result: Result<Void, StorageError> = withUnsafeBytes(of: byte) { raw in
            do throws(StorageError) { try write(raw) } catch { return .failure(error) }
            return .success(())
        }
        try result.get()
    }
}

/// Collects everything in memory (tests, the RDB preamble of an in-memory rewrite).
public struct MemorySink: ByteSink {
    /// Everything written so far.
    public var bytes: [UInt8]

    /// Creates an empty sink.
    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        self.bytes.append(contentsOf: bytes)
    }

    public mutating func flush() throws(StorageError) {}
}

/// Buffers writes to a `Storage` file and, optionally, fsyncs every few megabytes.
///
/// Incremental fsync (`rdb-save-incremental-fsync`, `aof-rewrite-incremental-fsync`) bounds how
/// much dirty page cache one big write leaves behind, so the final fsync does not stall the disk.
public struct StorageSink<S: Storage>: ByteSink {
    /// Redis's `REDIS_AUTOSYNC_BYTES`: fsync after this many bytes when incremental fsync is on.
    public static var incrementalFsyncBytes: Int { 4 * 1024 * 1024 }
    /// Default buffer size: large enough that write(2) calls are rare.
    public static var defaultBufferBytes: Int { 256 * 1024 }

    /// The backend.
    public let storage: S
    /// The open file written to.
    public let file: StorageFile
    /// Whether to fsync every `incrementalFsyncBytes`.
    public var incrementalFsync: Bool
    /// Total bytes accepted (buffered or written).
    public private(set) var bytesWritten: Int64 = 0

    private var buffer: [UInt8]
    private let bufferLimit: Int
    private var bytesSinceFsync = 0

    /// Wraps an open file.
    public init(storage: S, file: StorageFile, incrementalFsync: Bool = false,
                bufferBytes: Int = StorageSink.defaultBufferBytes) {
        precondition(bufferBytes > 0, "buffer size must be positive")
        self.storage = storage
        self.file = file
        self.incrementalFsync = incrementalFsync
        self.bufferLimit = bufferBytes
        self.buffer = []
        buffer.reserveCapacity(bufferBytes)
    }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        bytesWritten += Int64(bytes.count)
        if buffer.count + bytes.count <= bufferLimit {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count >= bufferLimit {
            // A big chunk goes straight to the file instead of through the buffer.
            try writeThrough(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public mutating func flush() throws(StorageError) {
        guard !buffer.isEmpty else { return }
        let pending = buffer
        buffer.removeAll(keepingCapacity: true)
        let result: Result<Void, StorageError> = pending.withUnsafeBytes { raw in
            do throws(StorageError) { try writeThrough(raw) } catch { return .failure(error) }
            return .success(())
        }
        try result.get()
    }

    /// Flushes and fsyncs: everything written so far is durable once this returns.
    public mutating func synchronize() throws(StorageError) {
        try flush()
        try storage.fsync(file)
        bytesSinceFsync = 0
    }

    private mutating func writeThrough(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        try writeAll(storage, file, bytes)
        bytesSinceFsync += bytes.count
        if incrementalFsync && bytesSinceFsync >= StorageSink.incrementalFsyncBytes {
            try storage.fsync(file)
            bytesSinceFsync = 0
        }
    }
}

/// Passes bytes to `base` while computing Redis's CRC64 of everything that went through.
public struct ChecksummingSink<Base: ByteSink>: ByteSink {
    /// The wrapped sink.
    public var base: Base
    /// The running checksum.
    public private(set) var crc: CRC64
    /// When false, bytes pass through unchecksummed (`rdbchecksum no`), saving the CRC's cost.
    public let enabled: Bool

    /// Wraps `base`.
    public init(_ base: Base, enabled: Bool = true) {
        self.base = base
        self.crc = CRC64()
        self.enabled = enabled
    }

    /// The checksum so far (0 when disabled, which readers treat as "not checked").
    public var checksum: UInt64 { crc.value }

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws(StorageError) {
        if enabled { crc.update(bytes) }
        try base.write(bytes)
    }

    public mutating func flush() throws(StorageError) { try base.flush() }
}
