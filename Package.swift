// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-swarm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SwarmRaft", targets: ["SwarmRaft"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        .target(name: "SwarmRaft"),
        .target(name: "SwarmTesting", dependencies: ["SwarmRaft"]),
        .executableTarget(name: "swarm-sim", dependencies: ["SwarmRaft", "SwarmTesting"]),
        .testTarget(name: "SwarmRaftTests", dependencies: ["SwarmRaft", "SwarmTesting"]),
    ],
    swiftLanguageModes: [.v6]
)
