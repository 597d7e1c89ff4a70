// swift-tools-version: 6.0
// Tally: a Redis-protocol-compatible counter store. No package dependencies by design:
// everything is built from the toolchain (stdlib, Synchronization, Glibc, Dispatch).
import PackageDescription

let package = Package(
    name: "Tally",
    products: [
        .executable(name: "tally-server", targets: ["tally-server"]),
        .executable(name: "tally-check-aof", targets: ["tally-check-aof"]),
    ],
    dependencies: [],
    targets: [
        .target(name: "CTallyShims"),
        .target(name: "TallyPlatform", dependencies: ["CTallyShims"]),
        .target(name: "TallyProtocol"),
        .target(name: "TallyKeyspace", dependencies: ["TallyProtocol"]),
        .target(
            name: "TallyPersistence",
            // TallyCommands: the AOF implements CommandLog and contributes CommandSpec rows (WAITAOF...).
            dependencies: ["TallyPlatform", "TallyKeyspace", "TallyProtocol", "TallyCommands"]
        ),
        .target(name: "TallyCommands", dependencies: ["TallyProtocol", "TallyKeyspace"]),
        .target(
            name: "TallyServer",
            dependencies: ["TallyPlatform", "TallyProtocol", "TallyKeyspace", "TallyCommands", "TallyPersistence"]
        ),
        .target(
            name: "TallyTestSupport",
            dependencies: ["TallyProtocol", "TallyKeyspace", "TallyCommands", "TallyPersistence", "TallyPlatform"]
        ),
        .executableTarget(name: "tally-server", dependencies: ["TallyServer"]),
        .executableTarget(name: "tally-check-aof", dependencies: ["TallyPersistence"]),
        .testTarget(name: "TallyProtocolTests", dependencies: ["TallyProtocol", "TallyTestSupport"]),
        .testTarget(name: "TallyKeyspaceTests", dependencies: ["TallyKeyspace", "TallyTestSupport"]),
        .testTarget(name: "TallyCommandsTests", dependencies: ["TallyCommands", "TallyTestSupport"]),
        .testTarget(name: "TallyPersistenceTests", dependencies: ["TallyPersistence", "TallyTestSupport"]),
        .testTarget(name: "TallyServerTests", dependencies: ["TallyServer", "TallyTestSupport"]),
        .testTarget(name: "TidyTests"),
    ],
    swiftLanguageModes: [.v6]
)
