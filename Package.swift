// swift-tools-version: 6.0
// Tally: a Redis-protocol-compatible counter store. No package dependencies by design:
// everything is built from the toolchain (stdlib, Synchronization, Glibc, Dispatch).
import PackageDescription

/// Release builds skip dynamic exclusivity checks: the hot path's shared state is guarded by
/// shard mutexes or owned by one I/O thread, and the checks (swift_beginAccess + a TLS access
/// set per class-property access) were ~17% of a pipelined INCR's instructions under callgrind.
/// Debug builds, and so every test run, keep them and still catch overlapping accesses.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked", "-cross-module-optimization"], .when(configuration: .release)),
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
        // Debian's Lua 5.1 (liblua5.1-0-dev): headers through the module map, the library linked
        // statically from liblua5.1.a so tally-server needs no liblua5.1.so at run time.
        .systemLibrary(name: "CLua", path: "Sources/CLua"),
        // cmsgpack and struct, the Lua libraries Redis scripts have that Debian does not package.
        .target(name: "CLuaLibraries"),
        .target(name: "TallyPlatform", dependencies: ["CTallyShims"]),
        .target(name: "TallyProtocol", swiftSettings: hotPathSettings),
        .target(name: "TallyKeyspace", dependencies: ["TallyProtocol", "CTallyShims"], swiftSettings: hotPathSettings),
        .target(
            name: "TallyPersistence",
            // Not TallyCommands: the command rows call PersistenceControl and AOF loading replays
            // through a closure, both declared below the two modules (TallyKeyspace).
            dependencies: ["TallyPlatform", "TallyKeyspace", "TallyProtocol"],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TallyCommands", dependencies: ["TallyProtocol", "TallyKeyspace", "CLua", "CLuaLibraries"],
            swiftSettings: hotPathSettings,
            // Static archives, dependents first: Debian's lua-cjson and Lua BitOp (the cjson and bit
            // libraries Redis scripts use), then Lua itself.
            linkerSettings: [
                .linkedLibrary(":liblua5.1-cjson.a"), .linkedLibrary(":liblua5.1-bitop.a"),
                .linkedLibrary(":liblua5.1.a"), .linkedLibrary("m"), .linkedLibrary("dl"),
            ]
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
