// HyperLogLogCommands: PFADD, PFCOUNT, PFMERGE over Redis's HLL strings (algorithm in HyperLogLog.swift).
import TallyKeyspace
import TallyProtocol

/// The HyperLogLog family. Values are ordinary strings in Redis's format, so GET/SET, RDB and
/// the AOF carry them unchanged, and both servers read each other's.
enum HyperLogLogCommands {
    static var specs: [CommandSpec] {
        [
            command("pfadd", -2, [.write, .denyOOM, .fast], keys: (1, 1, 1), "@write @hyperloglog @fast", add),
            command("pfcount", -2, [.readonly, .mayReplicate], keys: (1, -1, 1), "@read @hyperloglog @slow", count),
            command("pfmerge", -2, [.write, .denyOOM], keys: (1, -1, 1), "@write @hyperloglog @slow", merge),
        ]
    }

    static let notHyperLogLog: StaticString = "WRONGTYPE Key is not a valid HyperLogLog string value."
    static let corrupted: StaticString = "INVALIDOBJ Corrupted HLL object detected"

    /// Checks a stored value as Redis's `isHLLObjectOrReply`: WRONGTYPE for a hash, the
    /// HyperLogLog WRONGTYPE for any string that is not a well-formed HLL header (an
    /// integer-encoded value never is). Returns false after writing the error.
    static func checkValue(_ value: Value, _ output: inout OutputBuffer) -> Bool {
        switch value {
        case .hash, .list, .set, .sortedSet, .stream:
            output.writeError(RedisError.wrongType)
            return false
        case .integer:
            output.writeError(notHyperLogLog)
            return false
        case .string(let bytes):
            if bytes.withUnsafeBytes(HyperLogLog.isValid) { return true }
            output.writeError(notHyperLogLog)
            return false
        }
    }

    /// PFADD key [element ...]: 1 when a register changed or the key was created.
    static func add(_ context: inout CommandContext) {
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            // The value is checked where it is edited (copying it out first for checkValue cost a
            // lookup, a retain and a release per PFADD); a missing key comes in empty (minimumCount
            // 0) and becomes an empty sparse HLL, an existing empty string is not a HyperLogLog.
            let sparseMaxBytes = context.engine.hyperLogLogSparseMaxBytes
            let database = context.database
            let now = context.now
            typealias Outcome = (updated: Bool, corrupt: Bool, invalid: Bool)
            // The elements are read in place inside the edit: a closure reading them through the
            // context copied the arguments (a retain and a release of both of their arrays).
            let edited = context.arguments.withUnsafeArguments { arguments -> Result<(Outcome, Bool), KeyspaceError> in
                do throws(KeyspaceError) {
                    return .success(try shard.mutateString(
                        database, key, now: now, minimumCount: 0
                    ) { bytes, existed -> (result: Outcome, changed: Bool) in
                        var updated = false
                        if !existed {
                            bytes = HyperLogLog.makeEmpty()
                            updated = true
                        } else if !bytes.withUnsafeBytes(HyperLogLog.isValid) {
                            return ((false, false, true), false)
                        }
                        var changedRegisters = false
                        for index in 2..<arguments.count {
                            let result = HyperLogLog.add(&bytes, arguments[index], sparseMaxBytes: sparseMaxBytes)
                            if result < 0 { return ((updated, true, false), updated || changedRegisters) }
                            if result == 1 { changedRegisters = true }
                        }
                        if updated || changedRegisters { HyperLogLog.invalidateCache(&bytes) }
                        return ((updated || changedRegisters, false, false), updated || changedRegisters)
                    })
                } catch {
                    return .failure(error)
                }
            }
            switch edited {
            case .failure(let error):
                context.output.writeKeyspaceError(error)
            case .success(let (outcome, changed)):
                if changed {
                    context.addChanges(1)
                    context.notify(.string, "pfadd", context.arguments[1])
                }
                if outcome.invalid {
                    context.output.writeError(notHyperLogLog)
                } else if outcome.corrupt {
                    context.output.writeError(corrupted)
                } else {
                    context.output.writeInteger(outcome.updated ? 1 : 0)
                }
            }
        }
    }

    /// PFCOUNT key [key ...]: one key answers from (or refreshes) its cached cardinality;
    /// several keys are merged into a scratch register set and estimated, caches untouched.
    ///
    /// Refreshing the cache rewrites 8 bytes of the value in place, touches watchers and counts
    /// as a change, so the PFCOUNT is logged (its row is `.mayReplicate`), as Redis propagates
    /// it: the AOF then refreshes the cache on replay too.
    static func count(_ context: inout CommandContext) {
        if context.arguments.count > 2 {
            countUnion(&context)
            return
        }
        let key = context.key(1)
        context.withLockedShard(for: key) { shard, context in
            guard let (cached, computed) = readCardinality(&context, shard, key) else { return }
            if let cached {
                context.output.writeInteger(Int64(bitPattern: cached))
                return
            }
            guard let computed else {
                context.output.writeError(corrupted)
                return
            }
            _ = try? shard.mutateString(context.database, key, now: context.now, minimumCount: 0) { bytes in
                HyperLogLog.storeCardinality(&bytes, computed)
                return ((), true)
            }
            context.addChanges(1)
            context.output.writeInteger(Int64(bitPattern: computed))
        }
    }

    /// The cached cardinality of the HLL at `key`, or (nil, its estimate), or (nil, nil) for a
    /// corrupt one; nil after replying (0 for a missing key, or an error). The entry is released
    /// on return, so the cache update after it edits the value in place.
    static func readCardinality(_ context: inout CommandContext, _ shard: Shard,
                                _ key: Key) -> (cached: UInt64?, computed: UInt64?)? {
        guard let entry = shard.lookupRead(context.database, key, now: context.now) else {
            context.output.writeInteger(0)
            return nil
        }
        guard checkValue(entry.value, &context.output) else { return nil }
        guard case .string(let stored) = entry.value else { return nil }
        return stored.withUnsafeBytes { bytes -> (UInt64?, UInt64?) in
            if let cached = HyperLogLog.cachedCardinality(bytes) { return (cached, nil) }
            return (nil, HyperLogLog.count(bytes))
        }
    }

    /// PFCOUNT of several keys: the estimate of their union (missing keys are empty).
    static func countUnion(_ context: inout CommandContext) {
        let count = context.arguments.count
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 1))
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: HyperLogLog.registerCount) { maximum in
            maximum.initialize(repeating: 0)
            for index in 1..<count {
                let key = context.key(index)
                let shard = context.keyspace.shard(for: key)
                guard let entry = shard.lookupRead(context.database, key, now: context.now) else { continue }
                guard checkValue(entry.value, &context.output) else { return }
                guard case .string(let bytes) = entry.value else { return }
                if !bytes.withUnsafeBytes({ HyperLogLog.merge($0, into: maximum) }) {
                    context.output.writeError(corrupted)
                    return
                }
            }
            let estimate = HyperLogLog.count(registers: UnsafeBufferPointer(maximum))
            context.output.writeInteger(Int64(bitPattern: estimate))
        }
    }

    /// PFMERGE destkey [sourcekey ...]: the destination (itself one of the sources) gets the
    /// register-wise maximum; it turns dense when any source is dense, as in Redis.
    static func merge(_ context: inout CommandContext) {
        let count = context.arguments.count
        context.lockShards(context.shardMask(keysFrom: 1, through: count - 1))
        var maximum = [UInt8](repeating: 0, count: HyperLogLog.registerCount)
        var useDense = false
        for index in 1..<count {
            let key = context.key(index)
            let shard = context.keyspace.shard(for: key)
            guard let entry = shard.lookupRead(context.database, key, now: context.now) else { continue }
            guard checkValue(entry.value, &context.output) else { return }
            guard case .string(let bytes) = entry.value else { return }
            let merged = bytes.withUnsafeBytes { source in
                if HyperLogLog.isDense(source) { useDense = true }
                return maximum.withUnsafeMutableBufferPointer { HyperLogLog.merge(source, into: $0) }
            }
            if !merged {
                context.output.writeError(corrupted)
                return
            }
        }
        let destination = context.key(1)
        let shard = context.keyspace.shard(for: destination)
        let sparseMaxBytes = context.engine.hyperLogLogSparseMaxBytes
        do {
            let (corrupt, _) = try shard.mutateString(
                context.database, destination, now: context.now, minimumCount: 0
            ) { bytes -> (result: Bool, changed: Bool) in
                if bytes.isEmpty { bytes = HyperLogLog.makeEmpty() }
                if useDense && !HyperLogLog.sparseToDense(&bytes) { return (true, false) }
                for register in 0..<HyperLogLog.registerCount where maximum[register] != 0 {
                    if bytes[4] == 0 {
                        _ = HyperLogLog.denseSet(&bytes, register, maximum[register])
                    } else {
                        _ = HyperLogLog.sparseSet(&bytes, register, maximum[register], sparseMaxBytes: sparseMaxBytes)
                    }
                }
                HyperLogLog.invalidateCache(&bytes)
                return (false, true)
            }
            if corrupt {
                context.output.writeError(corrupted)
                return
            }
            context.addChanges(1)
            context.notify(.string, "pfadd", context.arguments[1])
            context.output.writeOK()
        } catch {
            context.output.writeKeyspaceError(error)
        }
    }
}
