// AppendOnlyFile: the AOF writer: in-memory buffer, group-commit write/fsync, failure policy, incr rotation.
// Every write(2) batch ends with a CRC64 mark and every writer session starts a file with a start line
// (format: AOFMarks.swift); `#TS:` lines when aof-timestamp-enabled.
import Dispatch
import Glibc
import Synchronization
import TallyProtocol
import TallyKeyspace

/// `appendfsync`.
public enum AppendFsyncPolicy: String, Sendable {
    /// fdatasync after every write, before replies leave (group commit).
    case always
    /// write before replies; a background thread fsyncs about once a second.
    case everysec
    /// write before replies; the kernel decides when data reaches the disk.
    case no
}

/// Settings of the AOF writer.
public struct AOFWriterConfiguration: Sendable {
    /// The AOF directory (`dir`/`appenddirname`).
    public var directory: String
    /// File naming (`appendfilename`).
    public var naming: AOFNaming
    /// `appendfsync`.
    public var fsyncPolicy: AppendFsyncPolicy
    /// Start the everysec background fsync thread (tests drive `backgroundFsyncPass()` instead).
    public var startsFsyncThread: Bool
    /// Called once when durability can no longer be promised under `always` (Redis exits
    /// there). The writer itself only stops acknowledging: every later `isDurable` is false,
    /// so replies stay held. The owner decides what to do; `tally-server` exits.
    public var fatal: @Sendable (String) -> Void
    /// Log destination.
    public var log: PersistenceLogger
    /// Time for retry pacing, the everysec postponement and WAITAOF deadlines (a manual clock
    /// in tests, so those schedules run without sleeping).
    public var clock: any Clock
    /// `aof-timestamp-enabled`: write Redis 7.0's `#TS:<unix seconds>` line before the first
    /// record of each new second.
    public var timestampsEnabled: Bool

    /// Creates a configuration; without `fatal`, the fatal message is only logged.
    public init(
        directory: String, naming: AOFNaming = AOFNaming(), fsyncPolicy: AppendFsyncPolicy = .everysec,
        startsFsyncThread: Bool = true, clock: any Clock = SystemClock(),
        log: @escaping PersistenceLogger = { _, _ in }, fatal: (@Sendable (String) -> Void)? = nil,
        timestampsEnabled: Bool = false
    ) {
        self.timestampsEnabled = timestampsEnabled
        self.directory = directory
        self.naming = naming
        self.fsyncPolicy = fsyncPolicy
        self.startsFsyncThread = startsFsyncThread
        self.clock = clock
        self.log = log
        self.fatal = fatal ?? { message in log(.warning, message) }
    }
}

/// The AOF writer, shared by every I/O thread.
///
/// ```
///  I/O thread A ──append()──┐                     ┌─ first waiter becomes the flusher:
///  I/O thread B ──append()──┼─► buffer (locked) ──┤  one write(2) of the whole buffer,
///  I/O thread C ──append()──┘                     │  fdatasync under `always`
///                                                 └─ others wait on the condition until covered
///  fsync thread (everysec): every second, fdatasync if written > fsynced
/// ```
///
/// Offsets are logical: the count of bytes appended since this writer was created, across incr
/// files, so sessions can compare `pendingLogOffset` with `writtenOffset`/`fsyncedOffset`.
///
/// Failure policy (Redis's flushAppendOnlyFile): a write that fails after writing part of the
/// buffer is truncated back; under `always` any write or fsync error calls `fatal` (Redis exits), as
/// the contract is that acknowledged writes are on disk. Otherwise the error is sticky:
/// `writeRefusal()` returns MISCONF, the data stays buffered and the write is retried at most
/// once per second; success clears the status. `isDurable(_:)` tells the network layer whether
/// replies depending on an offset may be sent: while it is false they must be held (or the
/// connection closed), never acknowledged.
///
/// A failed fsync is never retried (Linux may have dropped the dirty pages, so a second fsync
/// can "succeed" over lost data; PostgreSQL's fsyncgate): under `always` it is fatal, under
/// `everysec`/`no` the current incr file is *poisoned*. Writes are refused with MISCONF,
/// replies for records appended after the failure are held, no fsync of that file counts any
/// more, and `needsRecoveryRewrite` asks the owner for a rewrite; once a rewrite whose base was
/// taken after the failure is installed (`adoptRewrittenManifest`), the data is durable again in
/// the new generation and writes are accepted.
///
/// Thread safety: every mutable field is guarded by `lock`; the class is `@unchecked Sendable`
/// because the pthread lock is invisible to the compiler.
public final class AppendOnlyFile<S: Storage>: AppendLog, @unchecked Sendable {
    /// Bound on the fsync postponement under everysec (Redis: 2 seconds).
    public static var fsyncPostponeMillisecondsMax: Int64 { 2000 }
    /// Minimum time between retries of a failed write.
    public static var writeRetryMillisecondsMin: Int64 { 1000 }
    /// Longest single wait while postponing behind a running fsync: the clock is re-read at
    /// least this often, so an injected clock's jumps are seen (a finished fsync wakes it anyway).
    static var postponeWaitMillisecondsMax: Int64 { 50 }

    /// The storage the AOF files live on.
    public let storage: S
    /// Settings.
    public let configuration: AOFWriterConfiguration
    let lock = PosixLock(withCondition: true)

    // Guarded by `lock`.
    private var buffer: [UInt8] = []
    private var spare: [UInt8] = []
    private var appended: UInt64 = 0
    private var written: UInt64 = 0
    private var fsynced: UInt64 = 0
    private var selectedDatabase = -1
    private var flushing = false
    private var fsyncInProgress = false
    private var postponedSince: Int64?
    private var writeErrorCode: Int32?
    private var fsyncErrorCode: Int32?
    private var lastWriteAttempt: Int64 = 0
    private var lastErrorLog: Int64 = 0
    private var failedFatally = false
    /// Set when an fsync of the current incr file failed (everysec/no): see the type's comment.
    private var fsyncPoisoned = false
    /// `written` when the poisoning fsync failed: records past it are not acknowledged until
    /// a rewrite recovers.
    private var poisonedAtOffset: UInt64 = 0
    /// The incr sequence of the poisoned file: a rewrite that rotated past it recovers.
    private var poisonedIncrSequence: Int64 = 0
    /// `written` at the last rotation: what the rewrite's base covers.
    private var rotatedAtOffset: UInt64 = 0
    /// Mirror of what `coveredLocked` accepts (0 while none can be), for the lock-free fast path
    /// of `waitUntilDurable`/`isDurable`: readers' replies check it once per event-loop pass.
    private let coveredHint = OffsetCell()
    private var stopping = false
    private var fsyncThreadRunning = false
    private var incrFile: StorageFile
    private(set) var manifest: AOFManifest
    private var currentIncrSize: Int64
    private var earlierIncrSize: Int64 = 0
    private var baseSize: Int64
    private var delayedFsyncs = 0
    /// `appendfsync` in force; starts as `configuration.fsyncPolicy`, CONFIG SET changes it live.
    private var policy: AppendFsyncPolicy
    /// `buffer[0..<markedUpTo]` is covered by marks already in the buffer; the bytes after it
    /// form the open region the next mark will cover.
    private var markedUpTo = 0
    /// The next append starts with a start line (a new writer session or a new incr file).
    private var needsStartLine = true
    /// `aof-timestamp-enabled` in force, and the second of the last `#TS:` line written.
    private var timestampsEnabled: Bool
    private var lastTimestampSeconds: Int64 = 0

    /// Opens the last incr file of `manifest` (which must have one) for appending.
    public init(storage: S, manifest: AOFManifest, baseSize: Int64, configuration: AOFWriterConfiguration)
        throws(StorageError)
    {
        precondition(!manifest.incrs.isEmpty, "the manifest must list an incr file to append to")
        self.storage = storage
        self.configuration = configuration
        self.manifest = manifest
        self.baseSize = baseSize
        policy = configuration.fsyncPolicy
        timestampsEnabled = configuration.timestampsEnabled
        let last = manifest.incrs[manifest.incrs.count - 1]
        incrFile = try storage.openForAppend(storagePath(configuration.directory, last.name))
        currentIncrSize = try storage.size(incrFile)
        for info in manifest.incrs.dropLast() {
            if let file = try? storage.openForReading(storagePath(configuration.directory, info.name)) {
                earlierIncrSize += (try? storage.size(file)) ?? 0
                storage.close(file)
            }
        }
        buffer.reserveCapacity(64 * 1024)
        spare.reserveCapacity(64 * 1024)
        if configuration.fsyncPolicy == .everysec && configuration.startsFsyncThread { startFsyncThread() }
    }

    deinit {
        storage.close(incrFile)
    }

    // MARK: AppendLog

    public func append(_ batch: borrowing PropagationBuffer) -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        let before = buffer.count
        if needsStartLine {
            closeRegionLocked()
            buffer.append(contentsOf: AOFMarks.startLine)
            markedUpTo = buffer.count
            needsStartLine = false
        }
        if timestampsEnabled {
            // Redis's feedAppendOnlyFile: a #TS line before the first command of a new second.
            // The region before it is closed by a mark, so cutting the file at a #TS line
            // (tally-check-aof --truncate-to-timestamp) leaves it ending on a good mark.
            let seconds = configuration.clock.nowMilliseconds() / 1000
            if seconds > lastTimestampSeconds {
                closeRegionLocked()
                AOFMarks.appendTimestamp(seconds, to: &buffer)
                lastTimestampSeconds = seconds
            }
        }
        for record in batch.records {
            if record.database != selectedDatabase {
                RESPRecord.appendSelect(record.database, to: &buffer)
                selectedDatabase = record.database
            }
            buffer.append(contentsOf: batch.bytes[record.range])
        }
        appended += UInt64(buffer.count - before)
        return appended
    }

    // Appends a mark covering the open region of the buffer, if it has any bytes.
    private func closeRegionLocked() {
        let length = buffer.count - markedUpTo
        guard length > 0 else { return }
        var crc = CRC64()
        let from = markedUpTo
        buffer.withUnsafeBytes { raw in crc.update(UnsafeRawBufferPointer(rebasing: raw[from...])) }
        AOFMarks.appendMark(crc: crc.value, length: length, to: &buffer)
        markedUpTo = buffer.count
    }

    /// CONFIG SET aof-timestamp-enabled: takes effect with the next append.
    public func setTimestampsEnabled(_ enabled: Bool) {
        lock.lock()
        defer { lock.unlock() }
        timestampsEnabled = enabled
    }

    public func writeRefusal() -> [UInt8]? {
        lock.lock()
        defer { lock.unlock() }
        guard let code = writeErrorCode ?? fsyncErrorCode else { return nil }
        return Array("MISCONF Errors writing to the AOF file: \(errnoDescription(code))".utf8)
    }

    public func waitUntilDurable(_ offset: UInt64) {
        if coveredHint.value.load(ordering: .acquiring) >= offset { return }
        _ = flush(upTo: offset)
    }

    /// True if everything up to `offset` has been written (and fsynced under `always`). The
    /// network layer calls it after `waitUntilDurable`; false means hold the replies.
    public func isDurable(_ offset: UInt64) -> Bool {
        if coveredHint.value.load(ordering: .acquiring) >= offset { return true }
        lock.lock()
        defer { lock.unlock() }
        return coveredLocked(offset)
    }

    private func coveredLocked(_ offset: UInt64) -> Bool {
        if failedFatally { return false }
        if fsyncPoisoned && offset > poisonedAtOffset { return false }
        if policy == .always { return fsynced >= offset }
        return written >= offset
    }

    /// Publishes the highest offset `coveredLocked` accepts; called after every change of
    /// `written`, `fsynced`, the policy or the failure state (with the lock held).
    private func publishCoverageLocked() {
        var covered = policy == .always ? fsynced : written
        if fsyncPoisoned { covered = Swift.min(covered, poisonedAtOffset) }
        if failedFatally { covered = 0 }
        coveredHint.value.store(covered, ordering: .releasing)
    }

    /// Marks the current incr file as poisoned by a failed fsync (the lock is held).
    private func poisonLocked(_ failure: StorageError) {
        if !fsyncPoisoned {
            configuration.log(
                .warning,
                "Error fsyncing the AOF file: \(errnoDescription(failure.code)). The file is not fsynced again: "
                    + "writes are refused until a rewrite from memory makes the dataset durable.")
            fsyncPoisoned = true
            poisonedAtOffset = written
            poisonedIncrSequence = manifest.incrs.last?.sequence ?? 0
        }
        fsyncErrorCode = failure.code
        publishCoverageLocked()
    }

    /// True while a failed fsync waits for a rewrite to make the data durable again; the
    /// owner's cron starts one.
    public var needsRecoveryRewrite: Bool {
        lock.lock()
        defer { lock.unlock() }
        return fsyncPoisoned && !failedFatally
    }

    /// Writes (and under `always` fsyncs) everything up to at least `offset`; returns whether
    /// `offset` is covered. Group commit: one caller writes the whole buffer for everyone.
    @discardableResult
    public func flush(upTo offset: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if failedFatally { return false }
            if coveredLocked(offset) { return true }
            if flushing {
                lock.wait()
                continue
            }
            let now = configuration.clock.nowMilliseconds()
            if writeErrorCode != nil && now - lastWriteAttempt < Self.writeRetryMillisecondsMin {
                return false
            }
            // everysec: a write(2) issued while fdatasync runs on the same file blocks in the
            // kernel anyway; Redis postpones it up to 2 s, then writes and counts a delayed fsync.
            if policy == .everysec && fsyncInProgress {
                let since = postponedSince ?? now
                postponedSince = since
                if now - since < Self.fsyncPostponeMillisecondsMax {
                    lock.wait(milliseconds: Swift.min(Self.fsyncPostponeMillisecondsMax - (now - since),
                                                      Self.postponeWaitMillisecondsMax))
                    continue
                }
                delayedFsyncs += 1
                configuration.log(
                    .notice,
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without "
                        + "waiting for fsync to complete, this may slow down Redis.")
            }
            postponedSince = nil
            if buffer.isEmpty {
                // Written but not fsynced under `always` (after a switch from everysec): fsync
                // now, unless the file is poisoned (an fsync of it can no longer be trusted).
                guard policy == .always && !fsyncPoisoned else { return coveredLocked(offset) }
            }
            writeBufferLocked(now: now)
        }
    }

    // Hands the buffer to storage with the lock released; called with the lock held.
    private func writeBufferLocked(now: Int64) {
        flushing = true
        lastWriteAttempt = now
        // The chunk takes the buffer's storage (uniquely, so appending the mark copies nothing);
        // appenders continue in the spare.
        var chunk: [UInt8] = []
        swap(&chunk, &buffer)
        swap(&buffer, &spare)
        buffer.removeAll(keepingCapacity: true)
        let regionFrom = markedUpTo
        markedUpTo = 0
        // The mark that ends this batch is part of the logical stream: counted now, so offsets
        // handed out after this point include it.
        let regionLength = chunk.count - regionFrom
        if regionLength > 0 { appended += UInt64(AOFMarks.markLineLength(regionLength: regionLength)) }
        let file = incrFile
        let sizeBefore = currentIncrSize
        let policy = policy
        // A poisoned file is not fsynced again: its fsync would prove nothing.
        let fsyncs = policy == .always && !fsyncPoisoned
        lock.unlock()

        if regionLength > 0 {
            var crc = CRC64()
            chunk.withUnsafeBytes { raw in crc.update(UnsafeRawBufferPointer(rebasing: raw[regionFrom...])) }
            AOFMarks.appendMark(crc: crc.value, length: regionLength, to: &chunk)
        }

        var done = 0
        var failure: StorageError?
        chunk.withUnsafeBytes { raw in
            while done < raw.count {
                do throws(StorageError) {
                    done += try storage.write(file, UnsafeRawBufferPointer(rebasing: raw[done...]))
                } catch {
                    failure = error
                    return
                }
            }
        }
        var fsyncFailure: StorageError?
        if failure == nil && fsyncs {
            do throws(StorageError) { try storage.fsync(file) } catch { fsyncFailure = error }
        }
        var truncatedBack = false
        if failure != nil && done > 0 {
            // Undo the partial write so the file never ends inside a record we will rewrite.
            truncatedBack = (try? storage.truncate(file, to: sizeBefore)) != nil
            if !truncatedBack {
                configuration.log(.warning, "Could not remove short write from the append-only file.")
            }
        }

        lock.lock()
        flushing = false
        defer {
            publishCoverageLocked()
            lock.broadcast()
        }
        if let failure {
            let kept = truncatedBack ? 0 : done
            written += UInt64(kept)
            currentIncrSize += Int64(kept)
            // Unwritten bytes go back in front of anything appended meanwhile.
            chunk.removeFirst(kept)
            // The leftover ends with its mark: all of it is covered.
            markedUpTo += chunk.count
            chunk.append(contentsOf: buffer)
            buffer = chunk
            if policy == .always {
                failedFatally = true
                configuration.fatal(
                    "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting... ("
                        + "\(failure))")
                return
            }
            if writeErrorCode == nil || now - lastErrorLog > 30_000 {
                configuration.log(.warning, "Error writing to the AOF file: \(errnoDescription(failure.code))")
                lastErrorLog = now
            }
            writeErrorCode = failure.code
            return
        }
        written += UInt64(chunk.count)
        currentIncrSize += Int64(chunk.count)
        chunk.removeAll(keepingCapacity: true)
        spare = chunk
        if writeErrorCode != nil {
            configuration.log(.warning, "AOF write error looks solved, Redis can write again.")
            writeErrorCode = nil
        }
        if let fsyncFailure {
            failedFatally = true
            configuration.fatal(
                "Can't persist AOF for fsync error when the AOF fsync policy is 'always': "
                    + "\(errnoDescription(fsyncFailure.code)). Exiting...")
            return
        }
        if fsyncs { fsynced = written }
    }

    // MARK: everysec fsync

    /// One pass of the background fsync: fdatasync if something written is not yet durable.
    /// Returns true if an fsync ran. The thread calls it about once a second; tests call it.
    @discardableResult
    public func backgroundFsyncPass() -> Bool {
        lock.lock()
        guard written > fsynced, !fsyncInProgress, !failedFatally, !fsyncPoisoned else {
            lock.unlock()
            return false
        }
        fsyncInProgress = true
        let target = written
        let file = incrFile
        lock.unlock()
        var failure: StorageError?
        do throws(StorageError) { try storage.fsync(file) } catch { failure = error }
        lock.lock()
        fsyncInProgress = false
        if let failure {
            // Never retried: the kernel may have dropped the pages it could not write.
            poisonLocked(failure)
        } else if file == incrFile {
            fsynced = Swift.max(fsynced, target)
            publishCoverageLocked()
        }
        lock.broadcast()
        lock.unlock()
        return true
    }

    /// CONFIG SET appendfsync: takes effect for the next write. Switching to `everysec` starts
    /// the background fsync thread if it is not running; switching to `always` makes the next
    /// durability wait fsync whatever is still only written.
    public func setFsyncPolicy(_ newPolicy: AppendFsyncPolicy) {
        lock.lock()
        defer { lock.unlock() }
        policy = newPolicy
        publishCoverageLocked()
        if newPolicy == .everysec && configuration.startsFsyncThread && !fsyncThreadRunning && !stopping {
            startFsyncThread()
        }
        lock.broadcast()
    }

    /// The `appendfsync` policy in force.
    public var fsyncPolicy: AppendFsyncPolicy {
        lock.lock()
        defer { lock.unlock() }
        return policy
    }

    private func startFsyncThread() {
        fsyncThreadRunning = true
        // A dedicated Dispatch thread (not a pthread with a C callback: a generic class cannot
        // form one). It lives until `shutdown()`.
        DispatchQueue(label: "tally.aof.fsync", qos: .utility).async { self.fsyncLoop() }
    }

    // Fsyncs about once a second, outside the lock so appenders are never blocked by it. The
    // lock's condition is broadcast after every write and fsync, so a single timed wait returned
    // almost at once under load (thousands of fdatasyncs a second): the loop waits on until a
    // whole second has passed since the last pass, as aof.c fsyncs everysec once the second
    // changed.
    private func fsyncLoop() {
        var lastPass = Self.monotonicMilliseconds()
        while true {
            lock.lock()
            while !stopping {
                let remaining = 1000 - (Self.monotonicMilliseconds() - lastPass)
                if remaining <= 0 { break }
                lock.wait(milliseconds: remaining)
            }
            lastPass = Self.monotonicMilliseconds()
            let stop = stopping
            // After CONFIG SET appendfsync no/always the thread idles (always fsyncs inline).
            let everysec = policy == .everysec
            lock.unlock()
            if everysec || stop { backgroundFsyncPass() }
            if stop { break }
        }
        lock.lock()
        fsyncThreadRunning = false
        lock.broadcast()
        lock.unlock()
    }

    private static func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// Called from the server cron (~10 Hz): retries a failed write once a second, as Redis's
    /// serverCron does, and writes a buffer nobody is waiting for.
    public func tick() {
        lock.lock()
        let pending = appended
        lock.unlock()
        _ = flush(upTo: pending)
    }

    /// Flushes, fsyncs and stops the fsync thread (SHUTDOWN). Returns false if data could not
    /// be made durable.
    @discardableResult
    public func shutdown() -> Bool {
        lock.lock()
        let pending = appended
        lock.unlock()
        var ok = flush(upTo: pending)
        lock.lock()
        stopping = true
        lock.broadcast()
        while fsyncThreadRunning { lock.wait() }
        let file = incrFile
        let poisoned = fsyncPoisoned
        lock.unlock()
        if poisoned {
            // A poisoned file's fsync proves nothing: shutting down reports the failure.
            ok = false
        } else {
            do throws(StorageError) { try storage.fsync(file) } catch { ok = false }
        }
        if ok {
            lock.lock()
            fsynced = written
            publishCoverageLocked()
            lock.unlock()
        }
        return ok
    }

    /// WAITAOF: writes up to `offset`, fsyncs right away (the client asked for it), then waits
    /// until `offset` is fsynced or `timeoutMilliseconds` pass (0 = no limit). Blocks the
    /// calling I/O thread, polling every millisecond; returns whether `offset` is fsynced.
    public func waitUntilFsynced(_ offset: UInt64, timeoutMilliseconds: Int64) -> Bool {
        let clock = configuration.clock
        let deadline = clock.nowMilliseconds() + timeoutMilliseconds
        flush(upTo: offset)
        backgroundFsyncPass()
        while true {
            lock.lock()
            let done = fsynced >= offset
            lock.unlock()
            if done { return true }
            if timeoutMilliseconds > 0 && clock.nowMilliseconds() >= deadline { return false }
            usleep(1000)
            flush(upTo: offset)
            backgroundFsyncPass()
        }
    }

    // MARK: State for INFO, WAITAOF and rewrite

    /// A consistent view of the writer's counters.
    public struct Status: Sendable {
        /// Bytes appended (logical offset).
        public var appendedOffset: UInt64
        /// Bytes handed to write(2).
        public var writtenOffset: UInt64
        /// Bytes known durable.
        public var fsyncedOffset: UInt64
        /// Bytes waiting in the buffer (`aof_buffer_length`).
        public var bufferLength: Int
        /// Base + incr file sizes (`aof_current_size`).
        public var currentSize: Int64
        /// Base size (`aof_base_size`).
        public var baseSize: Int64
        /// 1 while a background fsync runs (`aof_pending_bio_fsync`).
        public var fsyncInProgress: Bool
        /// Writes issued without waiting for a slow fsync (`aof_delayed_fsync`).
        public var delayedFsyncs: Int
        /// The sticky write/fsync error, if any (`aof_last_write_status:err`).
        public var errorCode: Int32?
        /// True while a write waits behind a running everysec fsync (Redis's
        /// aof_flush_postponed_start is set).
        public var writePostponed: Bool
    }

    /// The current counters.
    public func status() -> Status {
        lock.lock()
        defer { lock.unlock() }
        return Status(
            appendedOffset: appended, writtenOffset: written, fsyncedOffset: fsynced, bufferLength: buffer.count,
            currentSize: baseSize + earlierIncrSize + currentIncrSize, baseSize: baseSize,
            fsyncInProgress: fsyncInProgress, delayedFsyncs: delayedFsyncs,
            errorCode: writeErrorCode ?? fsyncErrorCode, writePostponed: postponedSince != nil)
    }

    /// The manifest currently in force.
    public func currentManifest() -> AOFManifest {
        lock.lock()
        defer { lock.unlock() }
        return manifest
    }

    /// Starts a new incr file (rewrite step 1): flushes and fsyncs the current one, opens
    /// `appendonly.aof.<seq+1>.incr.aof`, persists the manifest, and makes the next record
    /// start with SELECT. On failure nothing changes. Returns the new manifest.
    func rotateIncrFile() throws(StorageError) -> AOFManifest {
        lock.lock()
        let pending = appended
        lock.unlock()
        flush(upTo: pending)
        lock.lock()
        defer { lock.unlock() }
        while flushing || fsyncInProgress { lock.wait() }
        if let code = writeErrorCode {
            throw StorageError(code: code, operation: "write", path: "AOF buffer")
        }
        // Everything written so far goes to the old file, durably, before the switch. If that
        // fsync fails (or failed before), the file is poisoned and the switch goes on: the
        // rewrite's base, taken with it, holds everything the old file held.
        if !fsyncPoisoned {
            do throws(StorageError) {
                try storage.fsync(incrFile)
                fsynced = written
            } catch {
                if policy == .always {
                    failedFatally = true
                    publishCoverageLocked()
                    configuration.fatal(
                        "Can't persist AOF for fsync error when the AOF fsync policy is 'always': "
                            + "\(errnoDescription(error.code)). Exiting...")
                    throw error
                }
                poisonLocked(error)
            }
        }
        var next = manifest
        next.currentIncrSequence += 1
        let name = configuration.naming.incrFileName(sequence: next.currentIncrSequence)
        next.incrs.append(AOFFileInfo(name: name, sequence: next.currentIncrSequence, type: .incr))
        let path = storagePath(configuration.directory, name)
        let file = try storage.create(path)
        do throws(StorageError) {
            try persistManifest(next)
        } catch {
            storage.close(file)
            try? storage.remove(path)
            throw error
        }
        storage.close(incrFile)
        incrFile = file
        earlierIncrSize += currentIncrSize
        currentIncrSize = 0
        manifest = next
        selectedDatabase = -1
        needsStartLine = true
        rotatedAtOffset = written
        return next
    }

    /// Installs a manifest produced by a finished rewrite (already persisted) and the new
    /// base size; incr files no longer listed stop counting towards `aof_current_size`.
    ///
    /// If a failed fsync poisoned an incr file this rewrite rotated away from, the new base (fsynced,
    /// listed by a durable manifest) holds everything up to the rotation: the poison is lifted,
    /// those offsets count as fsynced and writes are accepted again.
    func adoptRewrittenManifest(_ next: AOFManifest, baseSize: Int64, keptIncrSizes: Int64) {
        lock.lock()
        defer { lock.unlock() }
        manifest = next
        self.baseSize = baseSize
        earlierIncrSize = keptIncrSizes
        let keptSequence = next.incrs.last?.sequence ?? Int64.max
        if fsyncPoisoned && poisonedIncrSequence < keptSequence {
            fsyncPoisoned = false
            fsyncErrorCode = nil
            fsynced = Swift.max(fsynced, rotatedAtOffset)
            configuration.log(.warning, "AOF fsync error recovered: the rewrite made the dataset durable again.")
            publishCoverageLocked()
            lock.broadcast()
        }
    }

    /// Writes `manifest` atomically: temp file, fsync, rename, fsync directory.
    func persistManifest(_ manifest: AOFManifest) throws(StorageError) {
        try writeManifest(manifest, storage: storage, directory: configuration.directory, naming: configuration.naming)
    }
}

/// An atomic offset in its own object: an `Atomic` stored directly in the generic writer, whose
/// initializer throws, crashes the release compiler (CopyPropagation, Swift 6.3).
final class OffsetCell: Sendable {
    let value = Atomic<UInt64>(0)
}

/// Writes `manifest` to `directory` atomically and durably (temp, fsync, rename, fsync dir).
public func writeManifest<S: Storage>(_ manifest: AOFManifest, storage: S, directory: String, naming: AOFNaming)
    throws(StorageError)
{
    let bytes = manifest.encoded()
    do {
        try atomicReplace(storage, directory: directory, name: naming.manifestName) { sink in
            try sink.write(bytes)
        }
    } catch let error as StorageError {
        throw error
    } catch {
        throw StorageError(code: EIO, operation: "write", path: naming.manifestName)
    }
}
