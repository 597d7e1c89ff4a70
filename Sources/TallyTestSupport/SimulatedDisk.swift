// SimulatedDisk: an in-memory Storage that separates written from durable state, for power-cut and fault tests.
import Dispatch
import Glibc
import Synchronization
import TallyPersistence

/// Operations of `SimulatedDisk` that faults can be injected into.
public enum DiskOperation: Hashable, Sendable, CaseIterable {
    case create, open, write, fsync, truncate, rename, fsyncDirectory, remove
}

/// An in-memory file system that models what survives a power cut.
///
/// Each file (inode) keeps the bytes *written* apart from the bytes *durable* (as of its last
/// fsync). The directory tree is kept twice too: the *visible* namespace that operations see, and
/// the *durable* namespace that only changes for a directory when it is fsynced. So a created,
/// renamed or removed name survives a power cut only after `fsyncDirectory`, like ext4/xfs
/// without the rename heuristics. `powerCut(seed:)` reverts to the durable state and may keep a
/// random prefix (a torn write) of each file's non-durable tail. A directory made by
/// `makeDirectory` is itself an entry of its parent: it survives a power cut only once the
/// parent is fsynced, and with it goes everything below it. All choices come from the seed, so
/// every run is reproducible.
///
///     visible names ──fsyncDirectory(parent)──▶ durable names
///     made directories ──fsyncDirectory(parent)──▶ durable directories
///     written bytes ──────fsync───────▶ durable bytes
public final class SimulatedDisk: Storage {
    private struct Inode {
        var written: [UInt8] = []
        var durable: [UInt8] = []
    }

    private struct Handle {
        var inode: Int
        var position: Int
        var append: Bool
        var readable: Bool
    }

    private struct Fault {
        var countdown: Int?       // fail when this reaches 0 (then cleared)
        var persistent: Int32?    // errno while set
        var errnoCode: Int32 = EIO
    }

    private struct State {
        var inodes: [Int: Inode] = [:]
        var visible: [String: Int] = [:]
        var durable: [String: Int] = [:]
        var directories: Set<String> = ["", ".", "/"]
        var durableDirectories: Set<String> = ["", ".", "/"]
        var handles: [Int32: Handle] = [:]
        var nextInode = 1
        var nextHandle: Int32 = 3
        var faults: [DiskOperation: Fault] = [:]
        var calls: [DiskOperation: Int] = [:]
        var shortWriteLimit: Int?
    }

    private let state = Mutex(State())
    /// While set, fsync calls wait (a disk busy flushing); `fsyncsWaiting` counts them.
    private let fsyncHold = Mutex<DispatchSemaphore?>(nil)
    private let fsyncWaiters = Atomic<Int>(0)

    /// Creates an empty disk.
    public init() {}

    /// Makes every fsync block until `releaseFsyncs()`: the everysec postponement and
    /// `aof_pending_bio_fsync` need an fsync that is visibly in progress.
    public func holdFsyncs() { fsyncHold.withLock { $0 = DispatchSemaphore(value: 0) } }

    /// Lets held fsyncs (and later ones) proceed.
    public func releaseFsyncs() {
        guard let hold = fsyncHold.withLock({ gate -> DispatchSemaphore? in defer { gate = nil }; return gate })
        else { return }
        // Signals outlive this call: an fsync that picked up the hold but has not started
        // waiting yet passes too.
        for _ in 0..<Self.fsyncHoldWaitersMax { hold.signal() }
    }

    /// More fsyncs than any test runs at once.
    static var fsyncHoldWaitersMax: Int { 64 }

    /// Number of fsync calls currently blocked by `holdFsyncs()`.
    public var fsyncsWaiting: Int { fsyncWaiters.load(ordering: .acquiring) }

    // MARK: Fault injection

    /// Makes the `after`+1-th next call of `operation` fail once with `errnoCode` (ENOSPC, EIO...).
    public func failNext(_ operation: DiskOperation, after: Int = 0, errno errnoCode: Int32 = EIO) {
        state.withLock { $0.faults[operation, default: Fault()].countdown = after
            $0.faults[operation, default: Fault()].errnoCode = errnoCode }
    }

    /// While `errnoCode` is non-nil, every call of `operation` fails with it.
    public func setFailing(_ operation: DiskOperation, errno errnoCode: Int32?) {
        state.withLock { $0.faults[operation, default: Fault()].persistent = errnoCode }
    }

    /// Limits every write to at most `bytes` bytes (short writes); nil restores full writes.
    public func setShortWrites(maxBytes bytes: Int?) {
        precondition(bytes.map { $0 > 0 } ?? true, "short write limit must be positive")
        state.withLock { $0.shortWriteLimit = bytes }
    }

    /// Clears all injected faults.
    public func clearFaults() {
        state.withLock {
            $0.faults.removeAll()
            $0.shortWriteLimit = nil
        }
    }

    /// How many times `operation` was called (failed calls included).
    public func callCount(_ operation: DiskOperation) -> Int {
        state.withLock { $0.calls[operation, default: 0] }
    }

    // MARK: Inspection

    /// The bytes of `path` as currently visible (nil if missing).
    public func contents(of path: String) -> [UInt8]? {
        state.withLock { state in state.visible[path].flatMap { state.inodes[$0]?.written } }
    }

    /// The bytes of `path` that would survive a power cut without tearing (nil if the name would not).
    public func durableContents(of path: String) -> [UInt8]? {
        state.withLock { state in state.durable[path].flatMap { state.inodes[$0]?.durable } }
    }

    /// Makes `path` (and every directory above it) exist durably (test setup: a `dir` that
    /// was there before the server started).
    public func installDirectory(_ path: String) {
        state.withLock { state in Self.installDirectories(&state, path) }
    }

    private static func installDirectories(_ state: inout State, _ path: String) {
        var current = path
        while !state.durableDirectories.contains(current) {
            state.directories.insert(current)
            state.durableDirectories.insert(current)
            current = parent(of: current)
        }
    }

    /// True if the directory `path` would survive a power cut now.
    public func isDirectoryDurable(_ path: String) -> Bool {
        state.withLock { $0.durableDirectories.contains(path) }
    }

    /// Writes `bytes` to `path` as a fully durable file (test setup); the directories above it
    /// become durable too.
    public func install(_ path: String, _ bytes: [UInt8]) {
        state.withLock { state in
            Self.installDirectories(&state, Self.parent(of: path))
            let inode = state.nextInode
            state.nextInode += 1
            state.inodes[inode] = Inode(written: bytes, durable: bytes)
            state.visible[path] = inode
            state.durable[path] = inode
        }
    }

    /// Simulates losing power: open files are closed, names and bytes revert to their durable
    /// state, and each file's non-durable appended tail is kept up to a seeded random length.
    ///
    /// Returns a description of what was torn, for failure messages.
    @discardableResult
    public func powerCut(seed: UInt64) -> [String] {
        var generator = SplitMix64(seed: seed)
        return state.withLock { state in
            var report: [String] = []
            state.handles.removeAll()
            // A directory whose own entry was never made durable is gone, with all below it.
            let rooted = state.durableDirectories
            state.durableDirectories = rooted.filter { Self.isRooted($0, in: rooted) }
            state.directories = state.durableDirectories
            state.durable = state.durable.filter { state.durableDirectories.contains(Self.parent(of: $0.key)) }
            state.visible = state.durable
            let live = Set(state.durable.values)
            for inode in state.inodes.keys.sorted() {
                guard live.contains(inode), var file = state.inodes[inode] else {
                    state.inodes[inode] = nil
                    continue
                }
                // Only an appended tail can partly reach the platter in this model; a rewritten
                // or truncated region reverts to what was durable.
                if file.written.count > file.durable.count && file.written.starts(with: file.durable) {
                    let extra = file.written.count - file.durable.count
                    let kept = Int(generator.next() % UInt64(extra + 1))
                    if kept > 0 {
                        file.durable.append(contentsOf: file.written[file.durable.count..<(file.durable.count + kept)])
                    }
                    report.append("inode \(inode): kept \(kept) of \(extra) unsynced bytes")
                }
                file.written = file.durable
                state.inodes[inode] = file
            }
            return report.sorted()
        }
    }

    // MARK: Storage

    /// True if every directory from `path` up to the root is in `set`.
    private static func isRooted(_ path: String, in set: Set<String>) -> Bool {
        var current = path
        while current != "" && current != "." && current != "/" {
            guard set.contains(current) else { return false }
            current = parent(of: current)
        }
        return true
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Counts the call and throws if a fault is armed for it.
    private static func check(_ state: inout State, _ operation: DiskOperation, _ path: String) throws(StorageError) {
        state.calls[operation, default: 0] += 1
        guard var fault = state.faults[operation] else { return }
        if let code = fault.persistent {
            throw StorageError(code: code, operation: "\(operation)", path: path)
        }
        if let countdown = fault.countdown {
            if countdown == 0 {
                fault.countdown = nil
                state.faults[operation] = fault
                throw StorageError(code: fault.errnoCode, operation: "\(operation)", path: path)
            }
            fault.countdown = countdown - 1
            state.faults[operation] = fault
        }
    }

    private func withState<T>(_ body: (inout State) throws(StorageError) -> T) throws(StorageError) -> T {
        let result: Result<T, StorageError> = state.withLock { state in
            do throws(StorageError) { return .success(try body(&state)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private static func requireDirectory(_ state: State, _ path: String) throws(StorageError) {
        guard state.directories.contains(parent(of: path)) else {
            throw StorageError(code: ENOENT, operation: "open", path: path)
        }
    }

    private static func newHandle(_ state: inout State, _ handle: Handle, _ path: String) -> StorageFile {
        let id = state.nextHandle
        state.nextHandle += 1
        state.handles[id] = handle
        return StorageFile(id: id, path: path)
    }

    public func openForAppend(_ path: String) throws(StorageError) -> StorageFile {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .open, path)
            try Self.requireDirectory(state, path)
            let inode: Int
            if let existing = state.visible[path] {
                inode = existing
            } else {
                inode = state.nextInode
                state.nextInode += 1
                state.inodes[inode] = Inode()
                state.visible[path] = inode
            }
            return Self.newHandle(&state, Handle(inode: inode, position: 0, append: true, readable: false), path)
        }
    }

    public func create(_ path: String) throws(StorageError) -> StorageFile {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .create, path)
            try Self.requireDirectory(state, path)
            let inode: Int
            if let existing = state.visible[path] {
                // O_TRUNC keeps the inode; the truncation is not durable until fsync.
                inode = existing
                state.inodes[inode]?.written.removeAll()
            } else {
                inode = state.nextInode
                state.nextInode += 1
                state.inodes[inode] = Inode()
                state.visible[path] = inode
            }
            return Self.newHandle(&state, Handle(inode: inode, position: 0, append: false, readable: false), path)
        }
    }

    public func openForReading(_ path: String) throws(StorageError) -> StorageFile {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .open, path)
            guard let inode = state.visible[path] else {
                throw StorageError(code: ENOENT, operation: "open", path: path)
            }
            return Self.newHandle(&state, Handle(inode: inode, position: 0, append: false, readable: true), path)
        }
    }

    public func read(_ file: StorageFile, into buffer: UnsafeMutableRawBufferPointer) throws(StorageError) -> Int {
        try withState { (state) throws(StorageError) in
            guard var handle = state.handles[file.id], handle.readable, let inode = state.inodes[handle.inode] else {
                throw StorageError(code: EBADF, operation: "read", path: file.path)
            }
            let count = min(buffer.count, max(0, inode.written.count - handle.position))
            if count > 0 {
                let range = handle.position..<(handle.position + count)
                inode.written.withUnsafeBytes { source in
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[range]))
                }
            }
            handle.position += count
            state.handles[file.id] = handle
            return count
        }
    }

    public func write(_ file: StorageFile, _ bytes: UnsafeRawBufferPointer) throws(StorageError) -> Int {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .write, file.path)
            guard var handle = state.handles[file.id], !handle.readable, var inode = state.inodes[handle.inode] else {
                throw StorageError(code: EBADF, operation: "write", path: file.path)
            }
            let count = min(bytes.count, state.shortWriteLimit ?? bytes.count)
            if handle.append { handle.position = inode.written.count }
            if handle.position > inode.written.count {
                inode.written.append(contentsOf: repeatElement(0, count: handle.position - inode.written.count))
            }
            let overlap = min(count, inode.written.count - handle.position)
            if overlap > 0 {
                inode.written.replaceSubrange(handle.position..<(handle.position + overlap), with: bytes[0..<overlap])
            }
            inode.written.append(contentsOf: bytes[overlap..<count])
            handle.position += count
            state.inodes[handle.inode] = inode
            state.handles[file.id] = handle
            return count
        }
    }

    public func fsync(_ file: StorageFile) throws(StorageError) {
        if let hold = fsyncHold.withLock({ $0 }) {
            fsyncWaiters.add(1, ordering: .releasing)
            hold.wait()
            fsyncWaiters.subtract(1, ordering: .releasing)
        }
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .fsync, file.path)
            guard let handle = state.handles[file.id], var inode = state.inodes[handle.inode] else {
                throw StorageError(code: EBADF, operation: "fsync", path: file.path)
            }
            inode.durable = inode.written
            state.inodes[handle.inode] = inode
        }
    }

    public func truncate(_ file: StorageFile, to length: Int64) throws(StorageError) {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .truncate, file.path)
            guard let handle = state.handles[file.id], var inode = state.inodes[handle.inode] else {
                throw StorageError(code: EBADF, operation: "truncate", path: file.path)
            }
            let newLength = Int(length)
            if newLength < inode.written.count {
                inode.written.removeSubrange(newLength...)
            } else {
                inode.written.append(contentsOf: repeatElement(0, count: newLength - inode.written.count))
            }
            state.inodes[handle.inode] = inode
        }
    }

    public func size(_ file: StorageFile) throws(StorageError) -> Int64 {
        try withState { (state) throws(StorageError) in
            guard let handle = state.handles[file.id], let inode = state.inodes[handle.inode] else {
                throw StorageError(code: EBADF, operation: "fstat", path: file.path)
            }
            return Int64(inode.written.count)
        }
    }

    public func close(_ file: StorageFile) {
        state.withLock { _ = $0.handles.removeValue(forKey: file.id) }
    }

    public func rename(_ source: String, to destination: String) throws(StorageError) {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .rename, source)
            guard let inode = state.visible[source] else {
                throw StorageError(code: ENOENT, operation: "rename", path: source)
            }
            try Self.requireDirectory(state, destination)
            state.visible[source] = nil
            state.visible[destination] = inode
        }
    }

    public func fsyncDirectory(_ directory: String) throws(StorageError) {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .fsyncDirectory, directory)
            guard state.directories.contains(directory) else {
                throw StorageError(code: ENOENT, operation: "open", path: directory)
            }
            // The durable view of this directory becomes exactly its visible view.
            for (path, _) in state.durable where Self.parent(of: path) == directory && state.visible[path] == nil {
                state.durable[path] = nil
            }
            for (path, inode) in state.visible where Self.parent(of: path) == directory {
                state.durable[path] = inode
            }
            for path in state.directories where path != directory && Self.parent(of: path) == directory {
                state.durableDirectories.insert(path)
            }
        }
    }

    public func remove(_ path: String) throws(StorageError) {
        try withState { (state) throws(StorageError) in
            try Self.check(&state, .remove, path)
            guard state.visible.removeValue(forKey: path) != nil else {
                throw StorageError(code: ENOENT, operation: "unlink", path: path)
            }
        }
    }

    public func exists(_ path: String) -> Bool {
        state.withLock { $0.visible[path] != nil || $0.directories.contains(path) }
    }

    public func makeDirectory(_ path: String) throws(StorageError) {
        try withState { (state) throws(StorageError) in
            guard state.directories.contains(Self.parent(of: path)) else {
                throw StorageError(code: ENOENT, operation: "mkdir", path: path)
            }
            // Visible now; durable only once the parent is fsynced.
            state.directories.insert(path)
        }
    }

    public func listDirectory(_ directory: String) throws(StorageError) -> [String] {
        try withState { (state) throws(StorageError) in
            guard state.directories.contains(directory) else {
                throw StorageError(code: ENOENT, operation: "opendir", path: directory)
            }
            var names: [String] = []
            for path in state.visible.keys where Self.parent(of: path) == directory {
                if let slash = path.lastIndex(of: "/") {
                    names.append(String(path[path.index(after: slash)...]))
                } else {
                    names.append(path)
                }
            }
            for path in state.directories where path != directory && Self.parent(of: path) == directory {
                names.append(String(path.split(separator: "/").last ?? ""))
            }
            return names.sorted()
        }
    }
}

/// A small seeded PRNG (SplitMix64) so simulated faults are reproducible from one seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Seeds the generator.
    public init(seed: UInt64) { state = seed }

    /// Next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xbf58_476d_1ce4_e5b9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94d0_49bb_1331_11eb
        return mixed ^ (mixed >> 31)
    }
}
