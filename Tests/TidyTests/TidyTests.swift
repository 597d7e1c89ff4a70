// TidyTests: the style rules of STYLE.md, enforced as a test (like TigerBeetle's tidy.zig).
import Foundation
import XCTest

/// Walks Sources/ and fails on banned imports and APIs, and on over-long lines.
final class TidyTests: XCTestCase {
    /// Targets on the request path: no Foundation there (it costs startup, allocations and bridging).
    private let hotPathTargets = ["TallyProtocol", "TallyKeyspace", "TallyCommands", "TallyServer", "TallyPlatform"]
    /// Executables, test helpers and tests may print; library code logs through the server's logger.
    private let printAllowed = ["tally-server", "tally-check-aof", "TallyTestSupport"]
    private let lineLengthMax = 120

    private var sourcesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
    }

    private func swiftFiles() throws -> [(target: String, path: String, lines: [Substring])] {
        var files: [(String, String, [Substring])] = []
        let root = sourcesDirectory
        guard let walker = FileManager.default.enumerator(atPath: root.path) else {
            XCTFail("cannot list \(root.path)")
            return []
        }
        for case let relative as String in walker where relative.hasSuffix(".swift") {
            let target = String(relative.split(separator: "/").first ?? "")
            let text = try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
            files.append((target, relative, text.split(separator: "\n", omittingEmptySubsequences: false)))
        }
        return files
    }

    func testSourcesExist() throws {
        XCTAssertGreaterThan(try swiftFiles().count, 10, "tidy found too few files; is the path right?")
    }

    func testNoFoundationOnTheHotPath() throws {
        for file in try swiftFiles() where hotPathTargets.contains(file.target) {
            for (number, line) in file.lines.enumerated() where line.hasPrefix("import Foundation") {
                XCTFail("\(file.path):\(number + 1): Foundation is banned in \(file.target)")
            }
        }
    }

    func testNoForceTryOrPrintInLibraries() throws {
        for file in try swiftFiles() where !printAllowed.contains(file.target) {
            for (number, line) in file.lines.enumerated() {
                let code = line.split(separator: "//", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                if code.contains("try!") { XCTFail("\(file.path):\(number + 1): try! is banned, handle the error") }
                if code.range(of: #"(^|[^A-Za-z_.])print\("#, options: .regularExpression) != nil {
                    XCTFail("\(file.path):\(number + 1): print( is banned in libraries, use the logger")
                }
            }
        }
    }

    func testLineLength() throws {
        for file in try swiftFiles() {
            for (number, line) in file.lines.enumerated() where line.count > lineLengthMax {
                XCTFail("\(file.path):\(number + 1): \(line.count) columns, limit is \(lineLengthMax)")
            }
        }
    }

    func testEveryFileHasAHeaderComment() throws {
        for file in try swiftFiles() {
            guard let first = file.lines.first else { continue }
            XCTAssertTrue(first.hasPrefix("//"), "\(file.path): first line should say what the file is for")
        }
    }
}
