// tally-check-aof: redis-check-aof for Tally's AOF (manifest or single file); --fix cuts the last file.
//
// Usage: tally-check-aof [--fix|--truncate-to-timestamp <t>] [--yes] <file.manifest|file.aof>
// Tally's CRC64 marks (AOFMarks.swift) are verified: corruption before a good mark is reported
// with its offset and never "fixed"; a torn tail after the last good mark is what --fix cuts.
// --truncate-to-timestamp cuts the last file at its first `#TS:` line later than <t>, as
// redis-check-aof does (only the last file; an earlier file with a later #TS is an error).
// Exit status as redis-check-aof: 0 when every file is valid (or was fixed), 1 otherwise.
// --fix asks "Continue? [y/N]" like redis-check-aof. When standard input is not a terminal the
// answer is read from it if a line is there; at end of input (e.g. </dev/null, cron jobs) the
// fix proceeds without asking. --yes skips the question altogether.
import Glibc
import TallyPersistence

func fail(_ message: String) -> Never {
    print(message)
    exit(1)
}

/// The parsed command line and the checker; top-level state stays out of main-actor globals.
struct CheckAOFTool {
    var fix = false
    var assumeYes = false
    var toTimestamp: Int64?
    let storage = PosixStorage()
    // RDB bases and preambles are validated by the RDB reader (structure, LZF, CRC64); the
    // checker then checks any RESP tail from where the RDB part ended.
    let checker = AOFChecker(
        storage: PosixStorage(),
        rdbReader: { storage, path in
            try loadRDBFile(storage, path: path, options: RDBLoadOptions(databaseCount: 1 << 16)) { _, _, _ in }
                .endOffset
        },
        output: { print($0) })


func confirm() -> Bool {
    if assumeYes { return true }
    print("Continue? [y/N]: ", terminator: "")
    fflush(nil)
    guard let answer = readLine() else { return isatty(0) == 0 }
    return answer.first == "y" || answer.first == "Y"
}


// Checks one file; fixes it when allowed; returns true if it is (now) valid.
func checkAndMaybeFix(path: String, name: String, fixable: Bool) -> Bool {
    let result: AOFCheckResult
    do {
        result = try checker.check(path: path, displayName: name)
    } catch {
        fail("Cannot check \(path): \(error)")
    }
    if result.isValid { return true }
    if let offset = result.corruptOffset {
        print("AOF \(name) is corrupt at offset \(offset) (before a good integrity mark): truncation would drop "
            + "acknowledged writes, so it is not fixable by --fix.")
        return false
    }
    guard fix else {
        print("AOF \(name) is not valid. Use the --fix option to try fixing it.")
        return false
    }
    guard fixable else {
        print("AOF \(name) is not the last file and cannot be fixed by truncation.")
        return false
    }
    print(
        "This will shrink the AOF \(name) from \(result.size) bytes, with \(result.size - result.validUpTo) bytes, "
            + "to \(result.validUpTo) bytes")
    guard confirm() else {
        print("Aborting...")
        return false
    }
    do {
        try checker.truncate(path: path, to: result.validUpTo)
    } catch {
        fail("Failed to truncate AOF \(name): \(error)")
    }
    print("Successfully truncated AOF \(name)")
    return true
}

// --truncate-to-timestamp for one file: cut at the first later #TS line (last file only), or
// check it is valid and say nothing was cut. Exits on the errors redis-check-aof exits on.
func truncateToTimestamp(path: String, name: String, isLast: Bool, seconds: Int64) -> Bool {
    let cut: AOFTimestampCut
    do {
        let rdbBytes = try checker.rdbPreambleBytes(path: path)
        cut = try checker.timestampCut(path: path, rdbBytes: rdbBytes, after: seconds)
    } catch {
        fail("Cannot check \(path): \(error)")
    }
    switch cut {
    case .invalidAnnotation:
        fail("Invalid timestamp annotation")
    case .nothingBefore:
        fail("AOF \(path) has nothing before timestamp \(seconds), aborting...")
    case .at(let offset):
        guard isLast else {
            print("Failed to truncate AOF \(path) to timestamp \(seconds) to offset \(offset) because it is not "
                + "the last file.")
            fail("If you insist, please delete all files after this file according to the manifest file and "
                + "delete the corresponding records in manifest file manually. Then re-run tally-check-aof.")
        }
        // What stays must be intact: damage before the cut point is not hidden by cutting.
        let result: AOFCheckResult
        do {
            result = try checker.check(path: path, displayName: name)
        } catch {
            fail("Cannot check \(path): \(error)")
        }
        if let corrupt = result.corruptOffset, corrupt < offset {
            fail("AOF \(name) is corrupt at offset \(corrupt), before the cut point \(offset); aborting...")
        }
        if result.validUpTo < offset {
            fail("AOF \(name) is not valid before offset \(offset). Use the --fix option first.")
        }
        do { try checker.truncate(path: path, to: offset) } catch {
            fail("Failed to truncate AOF \(name) to timestamp \(seconds)")
        }
        print("Successfully truncated AOF \(name) to timestamp \(seconds)")
        return true
    case .none:
        let result: AOFCheckResult
        do {
            result = try checker.check(path: path, displayName: name)
        } catch {
            fail("Cannot check \(path): \(error)")
        }
        guard result.isValid else {
            print("AOF \(name) is not valid. Use the --fix option to try fixing it.")
            return false
        }
        print("Truncate nothing in AOF \(name) to timestamp \(seconds)")
        print("AOF \(name) is valid")
        return true
    }
}

func check(path: String, name: String, isLast: Bool) -> Bool {
    if let toTimestamp { return truncateToTimestamp(path: path, name: name, isLast: isLast, seconds: toTimestamp) }
    return checkAndMaybeFix(path: path, name: name, fixable: isLast)
}

func run(_ target: String) -> Int32 {
if target.hasSuffix(".manifest") {
    print("Start checking Multi Part AOF")
    let directory = target.lastIndex(of: "/").map { String(target[..<$0]) } ?? "."
    let manifest: AOFManifest
    do {
        let file = try storage.openForReading(target)
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try chunk.withUnsafeMutableBytes { raw in try storage.read(file, into: raw) }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        storage.close(file)
        manifest = try AOFManifest.parse(bytes, path: target)
    } catch {
        fail("Invalid AOF manifest: \(error)")
    }
    let files = manifest.loadOrder
    if files.isEmpty { fail("Invalid AOF manifest: no base or incr files") }
    for (index, info) in files.enumerated() {
        let path = directory + "/" + info.name
        guard storage.exists(path) else { fail("AOF file \(info.name) listed in the manifest is missing") }
        print(info.type == .base ? "Start to check BASE AOF." : "Start to check INCR AOF \(info.name).")
        if !check(path: path, name: info.name, isLast: index == files.count - 1) { return 1 }
        if toTimestamp == nil { print("\(info.type == .base ? "BASE" : "INCR") AOF \(info.name) is valid") }
    }
    print("All AOF files and manifest are valid")
} else {
    print("Start checking Old-Style AOF")
    guard check(path: target, name: target, isLast: true) else { return 1 }
    if toTimestamp == nil { print("AOF \(target) is valid") }
}
return 0
}
}

let usage = "Usage: tally-check-aof [--fix|--truncate-to-timestamp $timestamp] [--yes] <file.manifest|file.aof>"
var tool = CheckAOFTool()
var target: String?
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--fix": tool.fix = true
    case "--yes", "-y": tool.assumeYes = true
    case "--truncate-to-timestamp":
        guard let text = arguments.popFirst() else { fail(usage) }
        guard let seconds = Int64(text) else { fail("Invalid timestamp, aborting...") }
        tool.toTimestamp = seconds
    default:
        if argument.hasPrefix("--") || target != nil { fail(usage) }
        target = argument
    }
}
if tool.fix && tool.toTimestamp != nil { fail(usage) }
guard let target else { fail(usage) }
exit(tool.run(target))
