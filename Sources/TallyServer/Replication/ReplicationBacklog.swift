// ReplicationBacklog: the last `repl-backlog-size` bytes of the replication stream, for PSYNC.
//
//   stream offsets:   1 ............ firstByteOffset ............ lastOffset (= master_repl_offset)
//   ring (capacity):              [ oldest byte ......... newest byte ]   histlen bytes
//
// Offsets follow Redis (replication.c createReplicationBacklog, feedReplicationBuffer): stream
// bytes are numbered from 1, `master_repl_offset` is the number of the last byte fed, and the
// backlog's `offset` (INFO's repl_backlog_first_byte_offset) is the number of its oldest byte,
// `master_repl_offset + 1` while it is empty. A replica's PSYNC offset is the next byte it wants.

/// A fixed-capacity ring of the newest stream bytes. Not thread-safe: `ReplicationState` guards it.
struct ReplicationBacklog {
    /// `repl-backlog-size`.
    private(set) var capacity: Int
    private var storage: [UInt8]
    /// Where the next byte goes in `storage`.
    private var writeIndex = 0
    /// Bytes held (Redis's `repl_backlog->histlen`), at most `capacity`.
    private(set) var historyLength = 0
    /// Stream offset of the oldest byte held (Redis's `repl_backlog->offset`).
    private(set) var firstByteOffset: Int64

    /// An empty backlog whose first byte will be stream byte `nextOffset`.
    init(capacity: Int, nextOffset: Int64) {
        precondition(capacity > 0, "repl-backlog-size is at least 1")
        self.capacity = capacity
        storage = [UInt8](repeating: 0, count: capacity)
        firstByteOffset = nextOffset
    }

    /// Stream offset of the newest byte held (`firstByteOffset - 1` when empty).
    var lastOffset: Int64 { firstByteOffset + Int64(historyLength) - 1 }

    /// Appends stream bytes, dropping the oldest once full.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let total = bytes.count
        if total == 0 { return }
        // Only the last `capacity` bytes of a batch larger than the ring can survive it.
        var source = max(0, total - capacity)
        storage.withUnsafeMutableBytes { ring in
            while source < total {
                let chunk = min(total - source, capacity - writeIndex)
                ring.baseAddress!.advanced(by: writeIndex)
                    .copyMemory(from: bytes.baseAddress!.advanced(by: source), byteCount: chunk)
                writeIndex = (writeIndex + chunk) % capacity
                source += chunk
            }
        }
        let grown = historyLength + total
        if grown > capacity {
            firstByteOffset += Int64(grown - capacity)
            historyLength = capacity
        } else {
            historyLength = grown
        }
    }

    /// Appends stream bytes given as an array.
    mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// True if a replica asking for stream byte `offset` onward can be served from here
    /// (replication.c masterTryPartialResynchronization: offset in [first, first + histlen]).
    func canServe(from offset: Int64) -> Bool {
        offset >= firstByteOffset && offset <= firstByteOffset + Int64(historyLength)
    }

    /// The bytes from stream byte `offset` to the newest (`canServe(from:)` must hold).
    func bytes(from offset: Int64) -> [UInt8] {
        precondition(canServe(from: offset), "offset outside the backlog")
        let count = Int(firstByteOffset + Int64(historyLength) - offset)
        if count == 0 { return [] }
        let oldestIndex = (writeIndex - historyLength + capacity) % capacity
        let start = (oldestIndex + Int(offset - firstByteOffset)) % capacity
        var result: [UInt8] = []
        result.reserveCapacity(count)
        let firstChunk = min(count, capacity - start)
        result.append(contentsOf: storage[start..<(start + firstChunk)])
        if firstChunk < count { result.append(contentsOf: storage[0..<(count - firstChunk)]) }
        return result
    }

    /// CONFIG SET repl-backlog-size: keeps the newest bytes that fit (replication.c
    /// resizeReplicationBacklog keeps the history too, trimmed to the new size).
    mutating func resize(capacity newCapacity: Int) {
        precondition(newCapacity > 0, "repl-backlog-size is at least 1")
        if newCapacity == capacity { return }
        let kept = min(historyLength, newCapacity)
        let tail = bytes(from: lastOffset + 1 - Int64(kept))
        let next = lastOffset + 1
        self = ReplicationBacklog(capacity: newCapacity, nextOffset: next - Int64(kept))
        append(tail)
    }
}
