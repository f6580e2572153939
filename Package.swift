// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "swift-swarm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SwarmAPI", targets: ["SwarmAPI"]),
        .library(name: "SwarmRPC", targets: ["SwarmRPC"]),
        .library(name: "SwarmStore", targets: ["SwarmStore"]),
        .library(name: "SwarmRaft", targets: ["SwarmRaft"]),
        .library(name: "SwarmRaftNode", targets: ["SwarmRaftNode"]),
        .library(name: "SwarmPluginKit", targets: ["SwarmPluginKit"]),
        // Plugins: each a shared library the host loads by name at start-up.
        .library(name: "swarm-spread", type: .dynamic, targets: ["SwarmSpreadPlugin"]),
        .library(name: "swarm-process", type: .dynamic, targets: ["SwarmProcessPlugin"]),
        .library(name: "swarm-docker", type: .dynamic, targets: ["SwarmDockerPlugin"]),
        .library(name: "swarm-binpack", type: .dynamic, targets: ["SwarmBinpackPlugin"]),
        .library(name: "swarm-gang", type: .dynamic, targets: ["SwarmGangPlugin"]),
        .library(name: "swarm-random", type: .dynamic, targets: ["SwarmRandomPlugin"]),
        .library(name: "swarm-dotprod", type: .dynamic, targets: ["SwarmDotProdPlugin"]),
        .library(name: "swarm-gpu-clustering", type: .dynamic, targets: ["SwarmGpuClusteringPlugin"]),
        .library(name: "swarm-gpu-packing", type: .dynamic, targets: ["SwarmGpuPackingPlugin"]),
        .library(name: "swarm-best-fit", type: .dynamic, targets: ["SwarmBestFitPlugin"]),
        .library(name: "swarm-fgd", type: .dynamic, targets: ["SwarmFGDPlugin"]),
        .library(name: "swarm-gpu", type: .dynamic, targets: ["SwarmGPUPlugin"]),
        .library(name: "SwarmPluginHost", targets: ["SwarmPluginHost"]),
        .library(name: "SwarmGPU", targets: ["SwarmGPU"]),
        .library(name: "SwarmReplay", targets: ["SwarmReplay"]),
        .library(name: "SwarmManager", targets: ["SwarmManager"]),
        .library(name: "SwarmScheduler", targets: ["SwarmScheduler"]),
        .library(name: "SwarmConstraints", targets: ["SwarmConstraints"]),
        .library(name: "SwarmClient", targets: ["SwarmClient"]),
        .library(name: "SwarmCA", targets: ["SwarmCA"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        // Protocol definitions (proto/) and the committed generated code (Generated/).
        .target(
            name: "SwarmAPI",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["proto"]
        ),
        // Generated gRPC service code (kept apart so that plugins can link SwarmAPI alone).
        .target(
            name: "SwarmRPC",
            dependencies: [
                "SwarmAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        .target(
            name: "SwarmStore",
            dependencies: [
                "SwarmAPI",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // The certificate authority and the nodes' TLS: root CA, node certificates, CSRs,
        // join tokens, chain checks, and the mutual-TLS settings of servers and clients.
        .target(
            name: "SwarmCA",
            dependencies: [
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        // The pure Raft core: no I/O, no clock, no dependencies.
        // A seeded generator, the one dependency of the pure Raft core and the GPU maths.
        .target(name: "SwarmRandom"),
        // Small structured-concurrency helpers (a one-shot stop signal for child tasks).
        .target(name: "SwarmConcurrency"),
        .target(name: "SwarmRaft", dependencies: ["SwarmRandom"]),
        // The Raft shell: durable storage, transport, proposals and the apply loop.
        .target(
            name: "SwarmRaftNode",
            dependencies: ["SwarmConcurrency", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmRaft", "SwarmStore", "SwarmAPI", "SwarmRPC", "SwarmCA",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The plugin ABI: include/swarm_plugin.h is all that plugins and the host share.
        .target(name: "SwarmPluginABI"),
        // Loads plugin files, checks the ABI, and registers filters, strategies, executors by name;
        // builds the C views of nodes and tasks; adapts plugins to the placement engine.
        .target(
            name: "SwarmPluginHost",
            dependencies: ["SwarmPluginABI", "SwarmScheduler", "SwarmAPI", "CFFI", .product(name: "Logging", package: "swift-log")]
        ),
        // libffi (Debian libffi-dev): the host calls declarative plugins' functions through it.
        .systemLibrary(name: "CFFI", pkgConfig: "libffi", providers: [.apt(["libffi-dev"])]),
        // The Swift SDK for plugin authors.
        .target(name: "SwarmPluginKit", dependencies: ["SwarmPluginABI", "SwarmGPU"]),
        .target(name: "SwarmSpreadPlugin", dependencies: ["SwarmPluginKit"], path: "Plugins/spread"),
        // Strategies: binpack, the GPU-aware "gpu", and the openb baselines it is measured against.
        .target(name: "SwarmBinpackPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/binpack"),
        // All-or-nothing group placement through place_group (ABI 1.2).
        .target(name: "SwarmGangPlugin", dependencies: ["SwarmPluginKit"], path: "Plugins/gang"),
        .target(name: "SwarmRandomPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU", "SwarmRandom"], path: "Plugins/random"),
        .target(name: "SwarmDotProdPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/dotprod"),
        .target(name: "SwarmGpuClusteringPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/gpu-clustering"),
        .target(name: "SwarmGpuPackingPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/gpu-packing"),
        .target(name: "SwarmBestFitPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/best-fit"),
        .target(name: "SwarmFGDPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/fgd"),
        .target(name: "SwarmGPUPlugin", dependencies: ["SwarmPluginKit", "SwarmGPU"], path: "Plugins/gpu"),
        // GPU-sharing arithmetic (fits, GPU choice, FGD fragmentation), pure.
        .target(name: "SwarmGPU", dependencies: ["SwarmRandom"]),
        .target(name: "SwarmProcessSupport", path: "Plugins/process-support"),
        .target(name: "SwarmProcessPlugin", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmPluginKit", "SwarmAPI", "SwarmProcessSupport",
                                                           "SwarmPluginLogs", "SwarmTaskFiles"],
                path: "Plugins/process"),
        // Task output to rotated log files, for the executors.
        .target(name: "SwarmPluginLogs", path: "Plugins/logs"),
        // A task's secrets and configs as files on a private tmpfs, for the executors.
        .target(name: "SwarmTaskFiles", dependencies: ["SwarmAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf")], path: "Plugins/task-files"),
        // The docker executor: Docker Engine API over its unix socket.
        .target(name: "SwarmDockerPlugin", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmPluginKit", "SwarmAPI",
                                                          .product(name: "AsyncHTTPClient", package: "async-http-client"),
                                                          .product(name: "NIOCore", package: "swift-nio"),
                                                          .product(name: "NIOHTTP1", package: "swift-nio"), "SwarmPluginLogs", "SwarmTaskFiles"],
                path: "Plugins/docker"),
        // Placement constraints (SwarmKit's expressions) and placement input errors, pure: what
        // the orchestrator needs of placement, without the scheduler.
        .target(name: "SwarmConstraints", dependencies: ["SwarmAPI"]),
        // Filters, node accounting, the placement engine and the one placement pass: pure, with
        // no dependency on the plugin host, the ABI or libffi (the host adapts plugins to it).
        .target(
            name: "SwarmScheduler",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmAPI", "SwarmConstraints", "SwarmGPU",
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        // Replicated and global reconciliation, restart policy, task history (pure).
        .target(name: "SwarmOrchestrator", dependencies: ["SwarmAPI", "SwarmConstraints"]),
        // The manager: the control API, cluster bootstrap, the dispatcher and log broker, and the
        // leader's loops (orchestrators, scheduler).
        .target(
            name: "SwarmManager",
            dependencies: ["SwarmRaft", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmAPI", "SwarmRPC", "SwarmStore", "SwarmRaftNode", "SwarmScheduler", "SwarmConstraints",
                "SwarmOrchestrator",
                "SwarmPluginHost", "SwarmCA", .product(name: "X509", package: "swift-certificates"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The worker side: sessions, heartbeats, assignments, task runners over executor plugins.
        .target(
            name: "SwarmAgent",
            dependencies: ["SwarmConcurrency", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmAPI", "SwarmRPC", "SwarmPluginHost", "SwarmPluginABI", "SwarmCA",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The openb trace replay (FGD's protocol): traces, workload preparation, metrics.
        .target(name: "SwarmReplay", dependencies: ["SwarmGPU", "SwarmRandom", "SwarmPluginHost", "SwarmPluginABI"]),
        // Seeded cluster simulator and linearizability checker used by the tests.
        .target(name: "SwarmTesting", dependencies: ["SwarmRaft", "SwarmRandom"]),
        .executableTarget(name: "swarm-sim", dependencies: ["SwarmRaft", "SwarmTesting"]),
        // The client side of the control API: the connection helper over the generated client.
        .target(
            name: "SwarmClient",
            dependencies: [
                "SwarmAPI", "SwarmRPC", "SwarmCA",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        // The CLI: the client module and the placement input checks, nothing of the manager.
        .executableTarget(
            name: "swarmctl",
            dependencies: [
                "SwarmClient", "SwarmRPC", "SwarmAPI", "SwarmConstraints", "SwarmOrchestrator", "SwarmCA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "swarmd",
            dependencies: [.product(name: "UnixSignals", package: "swift-service-lifecycle"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), "SwarmConstraints", "SwarmRaft", "SwarmStore", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmManager", "SwarmAgent", "SwarmRaftNode", "SwarmPluginHost", "SwarmScheduler", "SwarmAPI", "SwarmCA", "SwarmRPC", "SwarmConcurrency",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "swarm-raftd",
            dependencies: [
                "SwarmRaftNode", "SwarmAPI", "SwarmRPC", "SwarmCA", "SwarmManager",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SwarmRaftTests", dependencies: ["SwarmRaft", "SwarmTesting"]),
        .testTarget(name: "SwarmStoreTests", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmStore", "SwarmAPI"]),
        .testTarget(name: "SwarmRaftNodeTests", dependencies: ["SwarmConcurrency", "SwarmAPI", "SwarmStore", "SwarmCA", .product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "GRPCCore", package: "grpc-swift-2"), .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"), "SwarmRaftNode", "SwarmRaft", "SwarmRPC", "SwarmTesting"]),
        .testTarget(
            name: "SwarmPluginHostTests",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmPluginHost", "SwarmPluginABI", "SwarmAPI", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SwarmManagerTests",
            dependencies: ["SwarmClient", "SwarmPluginHost", "SwarmStore", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmManager", "SwarmAgent", "SwarmAPI", "SwarmRPC", "SwarmRaftNode", "SwarmCA",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        .testTarget(name: "SwarmReplayTests", dependencies: ["SwarmReplay", "SwarmGPU", "SwarmPluginHost", "SwarmPluginKit"]),
        .testTarget(name: "SwarmAgentTests", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), .product(name: "GRDB", package: "GRDB.swift"), "SwarmAgent", "SwarmAPI", "SwarmManager", "SwarmPluginABI", "SwarmPluginHost"]),
        // Real swarmd and swarmctl processes on loopback.
        .testTarget(
            name: "SwarmdTests",
            dependencies: ["SwarmClient", .product(name: "SwiftProtobuf", package: "swift-protobuf"), 
                "SwarmManager", "SwarmAPI", "SwarmRPC", "SwarmTesting", "SwarmCA",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        .testTarget(name: "SwarmOrchestratorTests", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmOrchestrator", "SwarmConstraints", "SwarmAPI"]),
        .testTarget(
            name: "SwarmSchedulerTests",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf"), "SwarmScheduler", "SwarmConstraints", "SwarmPluginHost", "SwarmPluginABI", "SwarmAPI"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Release builds of the targets on the store and scheduling hot paths leave out the run-time
// exclusivity checks: every read of a protobuf message's field goes through its storage
// class, and those checks were about 15 % of the time of committing task updates. Debug
// builds (the test suite) keep them, so a violation still traps there. Tools version 6.2
// lets packages that depend on this one by version accept the flag.
let uncheckedInRelease: Set<String> = ["SwarmAPI", "SwarmStore", "SwarmScheduler", "SwarmManager", "SwarmPluginHost"]
for target in package.targets where uncheckedInRelease.contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? [])
        + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
}

// The upcoming-feature settings that swift-nio and grpc-swift use, on every Swift target.
for target in package.targets where target.type != .system && !["SwarmPluginABI", "SwarmProcessSupport", "CFFI"].contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}

// CI (CI=true) builds this package's Swift targets with warnings as errors, so that no
// warning is left behind; a developer can run `CI=true scripts/test.sh` to see the same.
if Context.environment["CI"] == "true" {
    let cTargets: Set<String> = ["SwarmPluginABI", "SwarmProcessSupport", "CFFI"]
    for target in package.targets where target.type != .system && !cTargets.contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
    }
}
