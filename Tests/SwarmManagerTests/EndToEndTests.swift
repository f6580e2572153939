import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmClient
import SwarmAgent
import SwarmAPI
@testable import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf
import Testing

/// A manager and two agents in one process, over real gRPC on loopback, with the real
/// spread and process plugins running real child processes.
@Suite(.serialized) struct EndToEndTests {
    static let pluginDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

    static func registry(_ files: [String]) throws -> PluginRegistry {
        let r = PluginRegistry()
        for f in files { try r.load(file: pluginDir.appendingPathComponent(f).path) }
        return r
    }

    final class Cluster: @unchecked Sendable {
        let node: RaftNode
        let server: GRPCServer<HTTP2ServerTransport.Posix>
        var tasks: [Task<Void, Never>] = []
        var addr = ""
        let root = NSTemporaryDirectory() + "swarm-e2e-\(UUID().uuidString)"

        init(agents: Int) async throws {
            var config = RaftNodeConfig(stateDir: root + "/manager", advertiseAddr: "127.0.0.1:1")
            config.tickInterval = .milliseconds(10)
            node = try RaftNode(config: config)
            let plugins = try EndToEndTests.registry(["libswarm-spread.so"])
            let dispatcher = Dispatcher(node: node)
            let control = ControlService(node: node) { SpecValidation(strategies: Set(plugins.names(.strategy)), runtimes: ["process"]) }
            server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                                services: [dispatcher, control],
            interceptorPipeline: LeaderInterceptor.pipeline(node))
            let s = server
            // Not among `tasks`: cancelling `serve()` while agents still open streams traps in
            // NIO (an inbound stream dropped unfinished); a graceful shutdown lets it end.
            Task { try? await s.serve() }
            addr = "127.0.0.1:\(try await server.listeningAddress?.ipv4?.port ?? 0)"
            node.start()
            let leader = LeaderComponents(node: node, plugins: plugins, dispatcher: dispatcher)
            tasks.append(Task { await leader.run() })
            for await isLeader in node.leadershipChanges() where isLeader { break }
            var token = ""
            for _ in 0..<200 {
                if let c = node.store.view().find(SwarmCluster.self).first { token = c.joinTokens.worker; break }
                try await Task.sleep(for: .milliseconds(10))
            }
            for k in 1...agents {
                let executors = try EndToEndTests.registry(["libswarm-process.so"])
                var description = SwarmNodeDescription()
                description.hostname = "worker-\(k)"
                description.resources.nanoCpus = 4_000_000_000
                description.resources.memoryBytes = 8 << 30
                description.plugins = executors.records.map { r in SwarmPluginDescription.with { $0.name = r.name; $0.kind = r.kind.rawValue } }
                let agent = try Agent(config: .init(nodeID: "worker-\(k)", stateDir: "\(root)/worker-\(k)", managers: [addr],
                                                joinToken: token, description: description), plugins: executors)
                tasks.append(Task { await agent.run() })
            }
        }

        func stop() {
            for t in tasks { t.cancel() }
            node.stop()
            server.beginGracefulShutdown()   // ends `serve()` once the agents' connections close
            try? FileManager.default.removeItem(atPath: root)
        }

        func control<R: Sendable>(_ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
            try await withControlClient(addr, body)
        }

        func tasks(of service: String) -> [SwarmTask] {
            node.store.view().find(SwarmTask.self, .service(service))
        }

        func waitFor(_ what: String, seconds: Int = 20, _ check: () -> Bool) async throws {
            for _ in 0..<(seconds * 20) {
                if check() { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("timed out waiting for \(what)")
            throw CancellationError()
        }
    }

    static func alive(_ pid: Int32) -> Bool {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(close, offsetBy: 2)] != "Z"
    }

    @Test func serviceRunsRealProcessesSpreadOverWorkersAndRemovalStopsThem() async throws {
        let c = try await Cluster(agents: 2)
        defer { c.stop() }
        try await c.waitFor("both workers to register") { c.node.store.view().find(SwarmNode.self).filter { $0.status.state == .ready }.count == 2 }
        let service = try await c.control {
            try await $0.createService(.with {
                $0.spec.annotations.name = "sleeper"
                $0.spec.replicated.replicas = 4
                $0.spec.task.process.command = "/bin/sleep"
                $0.spec.task.process.args = ["30"]
                $0.spec.task.process.stopGracePeriod = 2_000_000_000
            })
        }.service
        try await c.waitFor("4 running tasks") { c.tasks(of: service.id).filter { $0.status.state == .running }.count == 4 }
        let running = c.tasks(of: service.id).filter { $0.status.state == .running }
        #expect(Dictionary(grouping: running, by: \.nodeID).mapValues(\.count) == ["worker-1": 2, "worker-2": 2])
        let pids = running.map(\.status.pid)
        #expect(pids.allSatisfy(Self.alive), "each task is a live process")

        _ = try await c.control { try await $0.removeService(.with { $0.serviceID = "sleeper" }) }
        try await c.waitFor("every process to be gone") { !pids.contains(where: Self.alive) }
        try await c.waitFor("the tasks to be cleaned up") { c.tasks(of: service.id).isEmpty }
    }

    @Test func failingTaskReportsItsExitCode() async throws {
        let c = try await Cluster(agents: 1)
        defer { c.stop() }
        try await c.waitFor("the worker to register") { c.node.store.view().find(SwarmNode.self).count == 1 }
        let service = try await c.control {
            try await $0.createService(.with {
                $0.spec.annotations.name = "fails"
                $0.spec.replicated.replicas = 1
                $0.spec.task.process.command = "/bin/sh"
                $0.spec.task.process.args = ["-c", "exit 3"]
                $0.spec.task.restart.condition = .none
            })
        }.service
        try await c.waitFor("the task to fail") { c.tasks(of: service.id).first?.status.state == .failed }
        let t = try #require(c.tasks(of: service.id).first)
        #expect(t.status.exitCode == 3 && t.status.err == "task exited with code 3")
        #expect(c.tasks(of: service.id).count == 1, "restart condition none: no replacement")
    }
}
