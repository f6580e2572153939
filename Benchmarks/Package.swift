// swift-tools-version: 6.1
// Benchmarks live in their own package so that the main build stays lean.
//   swift run -c release --package-path Benchmarks swarm-bench store
//   swift run -c release --package-path Benchmarks swarm-bench raft --managers 3 --concurrency 256 --payload 128
import PackageDescription

let package = Package(
    name: "swift-swarm-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-swarm", path: "../"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    ],
    targets: [
        .executableTarget(
            name: "swarm-bench",
            dependencies: [
                .product(name: "SwarmStore", package: "swift-swarm"),
                .product(name: "SwarmAPI", package: "swift-swarm"),
                .product(name: "SwarmRPC", package: "swift-swarm"),
                .product(name: "SwarmRaft", package: "swift-swarm"),
                .product(name: "SwarmRaftNode", package: "swift-swarm"),
                .product(name: "SwarmReplay", package: "swift-swarm"),
                .product(name: "SwarmManager", package: "swift-swarm"),
                .product(name: "SwarmScheduler", package: "swift-swarm"),
                .product(name: "SwarmPluginHost", package: "swift-swarm"),
                .product(name: "SwarmGPU", package: "swift-swarm"),
                .product(name: "SwarmCA", package: "swift-swarm"),
                .product(name: "SwarmClient", package: "swift-swarm"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
