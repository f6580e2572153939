import ArgumentParser
import Foundation
import GRPCCore
import SwarmAPI
import SwarmClient

/// How long a node takes to join: from the start of a `swarmd` worker process (which
/// makes its key, checks the manager against its token, gets its certificate through a
/// CSR, and opens its session over mutual TLS) to its node being READY in the store.
/// One manager and the workers are real `swarmd` processes on loopback.
struct JoinBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "join", abstract: "Benchmark the time for a node to join, from start to READY")

    @Option(help: "Workers to join, one after another")
    var trials = 5

    @Option(help: "Path of the swarmd binary (build it with `swift build -c release --product swarmd`)")
    var swarmd = "../.build/release/swarmd"

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: swarmd) else {
            throw ValidationError("\(swarmd) not found; build it with `swift build -c release --product swarmd` in the repository root")
        }
        let root = NSTemporaryDirectory() + "swarm-bench-join-\(UUID().uuidString.prefix(8))"
        var processes: [Process] = []
        defer {
            for p in processes { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: root)
        }
        let port = 21000 + Int.random(in: 0..<20000)
        let socket = "\(root)/manager/swarmd.sock"
        func start(_ name: String, _ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: swarmd)
            p.arguments = ["-d", "\(root)/\(name)", "--hostname", name, "--log-level", "warning"] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            processes.append(p)
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try start("manager", ["--listen-remote-api", "127.0.0.1:\(port)", "--listen-control-api", socket])
        var token = ""
        let deadline = Date().addingTimeInterval(30)
        while token.isEmpty {
            token = (try? await withControlClient("unix:\(socket)") { try await $0.getCluster(.with { $0.clusterID = "default" }) })?.cluster.joinTokens.worker ?? ""
            if token.isEmpty {
                guard Date() < deadline else { throw ValidationError("the manager did not come up within 30 s") }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        var times: [Double] = []
        for trial in 0..<trials {
            let name = "w\(trial)"
            let t0 = ContinuousClock.now
            try start(name, ["--join-addr", "127.0.0.1:\(port)", "--join-token", token, "--listen-remote-api", "127.0.0.1:\(port + 1 + trial)"])
            while true {
                let nodes = (try? await withControlClient("unix:\(socket)") { try await $0.listNodes(.init()) })?.nodes ?? []
                if nodes.contains(where: { $0.description_p.hostname == name && $0.status.state == .ready }) { break }
                if seconds(ContinuousClock.now - t0) > 60 { throw ValidationError("\(name) was not READY within 60 s") }
                try await Task.sleep(for: .milliseconds(5))
            }
            let t = seconds(ContinuousClock.now - t0)
            times.append(t)
            print("  join \(trial + 1): \(ms(t))")
        }
        let sorted = times.sorted()
        print("join (swarmd worker start to READY, over mutual TLS): median \(ms(sorted[sorted.count / 2])), min \(ms(sorted.first!)), max \(ms(sorted.last!)) over \(times.count) joins")
    }
}
