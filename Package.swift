// swift-tools-version: 6.0
// Tally: a Redis-protocol-compatible counter store. No package dependencies by design:
// everything is built from the toolchain (stdlib, Synchronization, Glibc, Dispatch).
import PackageDescription

/// Release builds skip dynamic exclusivity checks: the hot path's shared state is guarded by
/// shard mutexes or owned by one I/O thread, and the checks (swift_beginAccess + a TLS access
/// set per class-property access) were ~17% of a pipelined INCR's instructions under callgrind.
/// Debug builds, and so every test run, keep them and still catch overlapping accesses.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

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
        .target(name: "TallyProtocol", swiftSettings: hotPathSettings),
        .target(name: "TallyKeyspace", dependencies: ["TallyProtocol"], swiftSettings: hotPathSettings),
        .target(
            name: "TallyPersistence",
            // Not TallyCommands: the command rows call PersistenceControl and AOF loading replays
            // through a closure, both declared below the two modules (TallyKeyspace).
            dependencies: ["TallyPlatform", "TallyKeyspace", "TallyProtocol"],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TallyCommands", dependencies: ["TallyProtocol", "TallyKeyspace"], swiftSettings: hotPathSettings
        ),
        .target(
            name: "TallyServer",
            dependencies: ["TallyPlatform", "TallyProtocol", "TallyKeyspace", "TallyCommands", "TallyPersistence"],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TallyTestSupport",
            dependencies: ["TallyProtocol", "TallyKeyspace", "TallyCommands", "TallyPersistence", "TallyPlatform"]
        ),
        .executableTarget(name: "tally-server", dependencies: ["TallyServer"], swiftSettings: hotPathSettings),
        .executableTarget(name: "tally-check-aof", dependencies: ["TallyPersistence"]),
        .testTarget(name: "TallyProtocolTests", dependencies: ["TallyProtocol", "TallyTestSupport"]),
        .testTarget(name: "TallyKeyspaceTests", dependencies: ["TallyKeyspace", "TallyTestSupport"]),
        .testTarget(name: "TallyCommandsTests", dependencies: ["TallyCommands", "TallyPersistence", "TallyTestSupport"]),
        .testTarget(name: "TallyPersistenceTests", dependencies: ["TallyPersistence", "TallyTestSupport"]),
        .testTarget(name: "TallyServerTests", dependencies: ["TallyServer", "TallyTestSupport"]),
        .testTarget(name: "TidyTests"),
    ],
    swiftLanguageModes: [.v6]
)
