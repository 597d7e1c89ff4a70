// HyperLogLogDebugCommands: PFDEBUG GETREG|DECODE|ENCODING|TODENSE and PFSELFTEST (hyperloglog.c).
import TallyKeyspace
import TallyProtocol

/// The HyperLogLog debugging rows: what Redis's own HLL tests use to look inside a value.
enum HyperLogLogDebugCommands {
    static var specs: [CommandSpec] {
        [
            command("pfdebug", 3, [.write, .denyOOM, .admin], keys: (2, 2, 1),
                    "@write @hyperloglog @admin @slow @dangerous", debug),
            command("pfselftest", 1, [.admin], "@hyperloglog @admin @slow @dangerous", selfTest),
        ]
    }

    /// PFDEBUG subcommand key. GETREG and TODENSE turn a sparse value dense, which counts as a
    /// change (so the command is logged and replay converts it too), as in Redis.
    static func debug(_ context: inout CommandContext) {
        let key = context.key(2)
        context.withLockedShard(for: key) { shard, context in
            guard let entry = shard.lookup(context.database, key, now: context.now) else {
                return context.output.writeError("ERR The specified key does not exist")
            }
            guard HyperLogLogCommands.checkValue(entry.value, &context.output),
                  case .string(let stored) = entry.value else { return }
            let sparse = stored[4] == 1
            if context.arguments.matches(1, "getreg") || context.arguments.matches(1, "todense") {
                var converted = false
                if sparse {
                    let corrupt = (try? shard.mutateString(context.database, key, now: context.now, minimumCount: 0) {
                        bytes -> (result: Bool, changed: Bool) in
                        let ok = HyperLogLog.sparseToDense(&bytes)
                        return (!ok, ok)
                    })?.0 ?? true
                    if corrupt { return context.output.writeError(HyperLogLogCommands.corrupted) }
                    context.addChanges(1)
                    converted = true
                }
                if context.arguments.matches(1, "todense") { return context.output.writeInteger(converted ? 1 : 0) }
                guard case .string(let dense)? = shard.lookup(context.database, key, now: context.now)?.value else {
                    return context.output.writeError(HyperLogLogCommands.corrupted)
                }
                context.output.writeArrayHeader(HyperLogLog.registerCount)
                dense.withUnsafeBytes { bytes in
                    for register in 0..<HyperLogLog.registerCount {
                        context.output.writeInteger(Int64(HyperLogLog.denseRegister(bytes, register)))
                    }
                }
            } else if context.arguments.matches(1, "decode") {
                guard sparse else { return context.output.writeError("ERR HLL encoding is not sparse") }
                context.output.writeBulkString(Array(decodeSparse(stored).utf8))
            } else if context.arguments.matches(1, "encoding") {
                context.output.writeSimpleString(sparse ? "sparse" : "dense")
            } else {
                context.output.writeError(Array(
                    "ERR Unknown PFDEBUG subcommand '\(String(decoding: context.arguments[1], as: UTF8.self))'".utf8))
            }
        }
    }

    /// The opcodes of a sparse value as PFDEBUG DECODE prints them: `z:len` (ZERO), `Z:len`
    /// (XZERO), `v:value,len` (VAL), space-separated.
    static func decodeSparse(_ stored: [UInt8]) -> String {
        var words: [String] = []
        stored.withUnsafeBytes { bytes in
            var position = HyperLogLog.headerBytes
            while position < bytes.count {
                let op = bytes[position]
                if HyperLogLog.isZero(op) {
                    words.append("z:\(HyperLogLog.zeroLength(op))")
                    position += 1
                } else if HyperLogLog.isExtendedZero(op) {
                    guard position + 1 < bytes.count else { break }
                    words.append("Z:\(HyperLogLog.extendedZeroLength(bytes, position))")
                    position += 2
                } else {
                    words.append("v:\(HyperLogLog.valueOf(op)),\(HyperLogLog.valueLength(op))")
                    position += 1
                }
            }
        }
        return words.joined(separator: " ")
    }

    /// PFSELFTEST: the checks Redis runs on its own implementation, run on Tally's. First, every
    /// 6-bit dense register keeps a random value without disturbing its neighbours (1000
    /// rounds); then 10M distinct elements go into a dense and a sparse value side by side,
    /// and at 1, 10, 100... the two must agree, the sparse one must still be sparse while
    /// small, and the estimate must be within 6 standard errors (exact at 10).
    static func selfTest(_ context: inout CommandContext) {
        var random = SystemRandomNumberGenerator()
        var dense = HyperLogLog.makeEmpty()
        guard HyperLogLog.sparseToDense(&dense) else {
            return context.output.writeError("ERR TESTFAILED could not build a dense value")
        }
        var expected = [UInt8](repeating: 0, count: HyperLogLog.registerCount)
        for _ in 0..<1000 {
            for register in 0..<HyperLogLog.registerCount {
                expected[register] = UInt8.random(in: 0...63, using: &random)
                HyperLogLog.setDenseRegister(&dense, register, expected[register])
            }
            let mismatch = dense.withUnsafeBytes { bytes in
                (0..<HyperLogLog.registerCount).first { HyperLogLog.denseRegister(bytes, $0) != expected[$0] }
            }
            if let register = mismatch {
                let actual = dense.withUnsafeBytes { HyperLogLog.denseRegister($0, register) }
                return context.output.writeError(Array(
                    "ERR TESTFAILED Register \(register) should be \(expected[register]) but is \(actual)".utf8))
            }
        }
        for register in 0..<HyperLogLog.registerCount { HyperLogLog.setDenseRegister(&dense, register, 0) }
        var sparse = HyperLogLog.makeEmpty()
        let sparseMaxBytes = context.engine.hyperLogLogSparseMaxBytes
        let relativeError = 1.04 / Double(HyperLogLog.registerCount).squareRoot()
        let seed = random.next()
        var checkpoint: UInt64 = 1
        for index in UInt64(1)...10_000_000 {
            var element = index ^ seed
            withUnsafeBytes(of: &element) { bytes in
                _ = HyperLogLog.add(&dense, bytes, sparseMaxBytes: sparseMaxBytes)
                _ = HyperLogLog.add(&sparse, bytes, sparseMaxBytes: sparseMaxBytes)
            }
            guard index == checkpoint else { continue }
            if index < UInt64(sparseMaxBytes / 2) && sparse[4] != 1 {
                return context.output.writeError("ERR TESTFAILED sparse encoding not used")
            }
            let denseCount = dense.withUnsafeBytes(HyperLogLog.count) ?? 0
            if denseCount != sparse.withUnsafeBytes(HyperLogLog.count) ?? 0 {
                return context.output.writeError("ERR TESTFAILED dense/sparse disagree")
            }
            let error = denseCount > checkpoint ? denseCount - checkpoint : checkpoint - denseCount
            let allowed = index == 10 ? 1 : UInt64((relativeError * 6 * Double(checkpoint)).rounded(.up))
            if error > allowed {
                return context.output.writeError(Array(
                    "ERR TESTFAILED Too big error. card:\(checkpoint) abserr:\(error)".utf8))
            }
            checkpoint *= 10
        }
        context.output.writeOK()
    }
}
