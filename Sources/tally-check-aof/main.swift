// tally-check-aof: redis-check-aof for Tally's AOF (manifest or single file); --fix cuts the last file.
//
// Usage: tally-check-aof [--fix] [--yes] <file.manifest|file.aof>
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
        if !checkAndMaybeFix(path: path, name: info.name, fixable: index == files.count - 1) { return 1 }
        print("\(info.type == .base ? "BASE" : "INCR") AOF \(info.name) is valid")
    }
    print("All AOF files and manifest are valid")
} else {
    print("Start checking Old-Style AOF")
    guard checkAndMaybeFix(path: target, name: target, fixable: true) else { return 1 }
    print("AOF \(target) is valid")
}
return 0
}
}

var tool = CheckAOFTool()
var target: String?
for argument in CommandLine.arguments.dropFirst() {
    switch argument {
    case "--fix": tool.fix = true
    case "--yes", "-y": tool.assumeYes = true
    default:
        if argument.hasPrefix("--") || target != nil {
            fail("Usage: tally-check-aof [--fix] [--yes] <file.manifest|file.aof>")
        }
        target = argument
    }
}
guard let target else { fail("Usage: tally-check-aof [--fix] [--yes] <file.manifest|file.aof>") }
exit(tool.run(target))
