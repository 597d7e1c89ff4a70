// MemoryReport: MEMORY STATS and MEMORY DOCTOR from the process's figures and the keyspace (object.c).
import Synchronization
import TallyKeyspace
import TallyProtocol

/// What the process reports about its memory: the server reads malloc's and /proc's figures
/// (command code has no system access); tests and a bare engine use the keyspace estimate.
public struct ProcessMemory: Sendable {
    /// Heap bytes in use now (Redis's `used_memory`).
    public var allocated: Int64
    /// Resident set size.
    public var resident: Int64
    /// Heap in use once start-up finished, before any data.
    public var startupAllocated: Int64
    /// The highest `allocated` seen.
    public var peakAllocated: Int64

    /// Figures as given.
    public init(allocated: Int64, resident: Int64, startupAllocated: Int64, peakAllocated: Int64) {
        self.allocated = allocated
        self.resident = resident
        self.startupAllocated = startupAllocated
        self.peakAllocated = peakAllocated
    }
}

/// The source of `ProcessMemory` the engine asks (set once by the server), keeping the peak.
public final class ProcessMemoryReader: Sendable {
    private let reader = Mutex<(@Sendable () -> (allocated: Int64, resident: Int64))?>(nil)
    private let startup = Atomic<Int64>(0)
    private let peak = Atomic<Int64>(0)

    init() {}

    /// Installs the server's reader of heap-in-use and resident bytes; the heap in use now is
    /// the start-up figure.
    public func install(_ body: @escaping @Sendable () -> (allocated: Int64, resident: Int64)) {
        startup.store(body().allocated, ordering: .relaxed)
        reader.withLock { $0 = body }
    }

    private let allocator = Mutex<(report: @Sendable () -> [UInt8], purge: @Sendable () -> Void)?>(nil)

    /// Installs the server's allocator statistics report and purge (MEMORY MALLOC-STATS, PURGE).
    public func installAllocator(report: @escaping @Sendable () -> [UInt8], purge: @escaping @Sendable () -> Void) {
        allocator.withLock { $0 = (report, purge) }
    }

    /// The allocator's statistics report, or nil when none is installed.
    func allocatorReport() -> [UInt8]? { allocator.withLock { $0 }?.report() }

    /// Asks the allocator to give free memory back to the kernel.
    func purgeAllocator() { allocator.withLock { $0 }?.purge() }

    /// The figures now, with the peak updated.
    public func read(estimate: Int64) -> ProcessMemory {
        let figures: (allocated: Int64, resident: Int64) = reader.withLock { $0 }?() ?? (estimate, estimate)
        let highest = max(peak.load(ordering: .relaxed), figures.allocated)
        peak.store(highest, ordering: .relaxed)
        return ProcessMemory(allocated: figures.allocated, resident: figures.resident,
                             startupAllocated: startup.load(ordering: .relaxed), peakAllocated: highest)
    }
}

enum MemoryReport {
    /// MEMORY STATS (object.c memoryCommand): Redis's field names, with Tally's meaning where its
    /// layout differs: `dataset.bytes` is the keyspace's own estimate (what `maxmemory` counts),
    /// `overhead.total` the rest of the heap; there are no replicas, cluster links, script caches
    /// or jemalloc arenas, so those figures are 0 or equal to the heap's.
    static func stats(_ context: inout CommandContext) {
        let keyspace = context.keyspace
        let dataset = Int64(keyspace.usedMemoryBytes)
        let memory = context.engine.processMemory.read(estimate: dataset)
        context.lockAllShards()
        var keys = 0
        var databases: [(Int, Int, Int)] = []
        for database in 0..<keyspace.databaseCount {
            var count = 0
            var expiring = 0
            for shard in keyspace.shards {
                count += shard.count(database)
                expiring += shard.expiringCount(database)
            }
            keys += count
            // A table slot is a 24-byte key and an entry pointer, at the table's ~0.75 load.
            if count > 0 { databases.append((database, count * 43, expiring * 43)) }
        }
        let overhead = max(0, memory.allocated - dataset)
        let netAllocated = max(1, memory.allocated - memory.startupAllocated)
        func ratio(_ numerator: Int64, _ denominator: Int64) -> Double {
            denominator > 0 ? Double(numerator) / Double(denominator) : 0
        }
        var fields: [(String, Field)] = [
            ("peak.allocated", .integer(memory.peakAllocated)),
            ("total.allocated", .integer(memory.allocated)),
            ("startup.allocated", .integer(memory.startupAllocated)),
            ("replication.backlog", .integer(0)),
            ("clients.slaves", .integer(0)),
            ("clients.normal", .integer(0)),
            ("cluster.links", .integer(0)),
            ("aof.buffer", .integer(0)),
            ("lua.caches", .integer(0)),
            ("functions.caches", .integer(0)),
        ]
        for (database, main, expires) in databases {
            fields.append(("db.\(database)", .map([("overhead.hashtable.main", Int64(main)),
                                                  ("overhead.hashtable.expires", Int64(expires)),
                                                  ("overhead.hashtable.slot-to-keys", 0)])))
        }
        fields += [
            ("overhead.total", .integer(overhead)),
            ("keys.count", .integer(Int64(keys))),
            ("keys.bytes-per-key", .integer(keys > 0 ? netAllocated / Int64(keys) : 0)),
            ("dataset.bytes", .integer(dataset)),
            ("dataset.percentage", .double(ratio(dataset, netAllocated) * 100)),
            ("peak.percentage", .double(ratio(memory.allocated, memory.peakAllocated) * 100)),
            ("allocator.allocated", .integer(memory.allocated)),
            ("allocator.active", .integer(memory.allocated)),
            ("allocator.resident", .integer(memory.resident)),
            ("allocator-fragmentation.ratio", .double(1)),
            ("allocator-fragmentation.bytes", .integer(0)),
            ("allocator-rss.ratio", .double(ratio(memory.resident, memory.allocated))),
            ("allocator-rss.bytes", .integer(memory.resident - memory.allocated)),
            ("rss-overhead.ratio", .double(1)),
            ("rss-overhead.bytes", .integer(0)),
            ("fragmentation", .double(ratio(memory.resident, memory.allocated))),
            ("fragmentation.bytes", .integer(memory.resident - memory.allocated)),
        ]
        context.output.writeMapHeader(fields.count)
        for (name, field) in fields {
            context.output.writeBulkString(name.utf8)
            switch field {
            case .integer(let value): context.output.writeInteger(value)
            case .double(let value): context.output.writeDouble(formatted: formatScore(value))
            case .map(let pairs):
                context.output.writeMapHeader(pairs.count)
                for (key, value) in pairs {
                    context.output.writeBulkString(key.utf8)
                    context.output.writeInteger(value)
                }
            }
        }
    }

    enum Field {
        case integer(Int64)
        case double(Double)
        case map([(String, Int64)])
    }

    /// MEMORY DOCTOR (object.c getMemoryDoctorReport), over the checks that apply to Tally: an
    /// instance under 5 MB is "empty"; a peak over 150% of current use and a resident size over
    /// 1.4x the heap (with more than 10 MB in it) are reported.
    /// MEMORY MALLOC-STATS (object.c memoryCommand): the allocator's own report. Redis built
    /// with jemalloc prints jemalloc's; with another allocator, "Stats not supported for the
    /// current allocator". Tally runs on glibc's malloc, whose report is malloc_info's XML.
    static func allocatorStatistics(_ context: inout CommandContext) {
        let report = context.engine.processMemory.allocatorReport() ?? []
        if report.isEmpty {
            context.output.writeBulkString("Stats not supported for the current allocator".utf8)
        } else {
            context.output.writeBulkString(report)
        }
    }

    /// MEMORY PURGE: Redis asks jemalloc to purge dirty pages; glibc's equivalent is
    /// malloc_trim, which returns the free pages at the top of the heap and inside it.
    static func purge(_ context: inout CommandContext) {
        context.engine.processMemory.purgeAllocator()
        context.output.writeOK()
    }

    static func doctor(_ context: inout CommandContext) {
        let memory = context.engine.processMemory.read(estimate: Int64(context.keyspace.usedMemoryBytes))
        var text: String
        if memory.allocated < 5 << 20 {
            text = "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used "
                + "in these conditions. Please, leave for your mission on Earth and fill it with some data. The new "
                + "Sam and I will be back to our programming as soon as I finished rebooting.\n"
        } else {
            var issues: [String] = []
            if Double(memory.peakAllocated) / Double(memory.allocated) > 1.5 {
                issues.append(" * Peak memory: In the past this instance used more than 150% the memory that is "
                    + "currently using. The allocator is normally not able to release memory after a peak, so you "
                    + "can expect to see a big fragmentation ratio, however this is actually harmless and is only "
                    + "due to the memory peak.\n\n")
            }
            let extra = memory.resident - memory.allocated
            if Double(memory.resident) / Double(memory.allocated) > 1.4 && extra > 10 << 20 {
                issues.append(" * High total RSS: This instance has a memory fragmentation and RSS overhead greater "
                    + "than 1.4 (this means that the Resident Set Size of the process is much larger than the sum "
                    + "of the logical allocations it performed). Note: The currently used allocator is \"libc\".\n\n")
            }
            if issues.isEmpty {
                text = "Hi Sam, I can't find any memory issue in your instance. "
                    + "I can only account for what occurs on this base.\n"
            } else {
                text = "Sam, I detected a few issues in this Redis instance memory implants:\n\n" + issues.joined()
                    + "I'm here to keep you safe, Sam. I want to help you.\n"
            }
        }
        context.output.writeVerbatim(Array(text.utf8))
    }
}
