import Foundation
import SwarmAPI
@testable import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import SwarmStore
import SwiftProtobuf
import Testing

/// The orchestrator and the scheduler on a one-manager cluster, with worker nodes written
/// into the store as the dispatcher would register them.
@Suite(.serialized) struct LeaderLoopTests {
    final class Cluster: @unchecked Sendable {
        let node: RaftNode
        let components: Task<Void, Never>
        let stateDir = NSTemporaryDirectory() + "swarm-leader-\(UUID().uuidString)"

        init() async throws {
            var config = RaftNodeConfig(stateDir: stateDir,
                                        advertiseAddr: "127.0.0.1:1")
            config.tickInterval = .milliseconds(10)
            node = try RaftNode(config: config)
            let registry = PluginRegistry()
            let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            try registry.load(file: dir.appendingPathComponent("libswarm-spread.so").path)
            node.start()
            let leader = LeaderComponents(node: node, plugins: registry)
            components = Task { await leader.run() }
            for await isLeader in node.leadershipChanges() where isLeader { break }
        }

        var store: MemoryStore { node.store }

        func stop() {
            components.cancel()
            node.stop()
            try? FileManager.default.removeItem(atPath: stateDir)
        }

        func addNode(_ id: String, labels: [String: String] = [:]) async throws {
            try await store.update { tx in
                try tx.create(SwarmNode.with {
                    $0.id = id
                    $0.description_p.hostname = id
                    $0.description_p.resources.nanoCpus = 4_000_000_000
                    $0.description_p.resources.memoryBytes = 8 << 30
                    $0.description_p.plugins = [SwarmPluginDescription.with { $0.name = "process"; $0.kind = "executor" }]
                    $0.status.state = .ready
                    $0.spec.annotations.labels = labels
                })
            }
        }

        func createService(_ name: String, replicas: UInt64? = 6, constraints: [String] = []) async throws -> String {
            let id = Identifiers.make()
            try await store.update { tx in
                try tx.create(SwarmService.with {
                    $0.id = id
                    $0.specVersion = 1
                    $0.spec.annotations.name = name
                    if let replicas { $0.spec.replicated.replicas = replicas } else { $0.spec.global = SwarmGlobalService() }
                    $0.spec.task.process.command = "/bin/sleep"
                    $0.spec.task.placement.constraints = constraints
                })
            }
            return id
        }

        func tasks(_ service: String) -> [SwarmTask] {
            store.view().find(SwarmTask.self, .service(service)).filter { $0.desiredState == .running }
        }

        func waitFor(_ what: String, _ check: () -> Bool) async throws {
            for _ in 0..<500 {
                if check() { return }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("timed out waiting for \(what)")
        }
    }

    static func perNode(_ tasks: [SwarmTask]) -> [String: Int] {
        Dictionary(grouping: tasks.filter { $0.status.state == .assigned }, by: \.nodeID).mapValues(\.count)
    }

    @Test func replicasAreCreatedAssignedAndSpreadThenScaledAndMovedOnDrain() async throws {
        let c = try await Cluster()
        defer { c.stop() }
        for n in ["n1", "n2", "n3"] { try await c.addNode(n) }
        let svc = try await c.createService("web")
        try await c.waitFor("6 assigned tasks") { Self.perNode(c.tasks(svc)) == ["n1": 2, "n2": 2, "n3": 2] }
        #expect(Set(c.tasks(svc).map(\.slot)) == Set(1...6))

        try await c.store.update { tx in
            var s = tx.get(SwarmService.self, id: svc)!
            s.spec.replicated.replicas = 3
            s.specVersion += 1
            try tx.update(s)
        }
        try await c.waitFor("3 tasks left") { c.tasks(svc).count == 3 }

        try await c.store.update { tx in
            var n = tx.get(SwarmNode.self, id: "n1")!
            n.spec.availability = .drain
            try tx.update(n)
        }
        try await c.waitFor("nothing on the drained node") {
            let t = c.tasks(svc)
            return t.count == 3 && t.allSatisfy { $0.nodeID != "n1" && $0.status.state == .assigned }
        }
    }

    @Test func globalServiceRunsOnEveryEligibleNode() async throws {
        let c = try await Cluster()
        defer { c.stop() }
        try await c.addNode("a", labels: ["role": "edge"])
        try await c.addNode("b", labels: ["role": "edge"])
        try await c.addNode("c", labels: ["role": "core"])
        let svc = try await c.createService("agent", replicas: nil, constraints: ["node.labels.role==edge"])
        try await c.waitFor("one task per edge node") { Self.perNode(c.tasks(svc)) == ["a": 1, "b": 1] }
        try await c.addNode("d", labels: ["role": "edge"])
        try await c.waitFor("the new node gets a task") { Self.perNode(c.tasks(svc)) == ["a": 1, "b": 1, "d": 1] }
    }

    @Test func unplaceableTasksStayPendingWithTheReason() async throws {
        let c = try await Cluster()
        defer { c.stop() }
        try await c.addNode("n1", labels: ["zone": "west"])
        let svc = try await c.createService("east-only", replicas: 2, constraints: ["node.labels.zone==east"])
        try await c.waitFor("pending with an explanation") {
            let t = c.tasks(svc)
            return t.count == 2 && t.allSatisfy {
                $0.status.state == .pending
                    && $0.status.message == "no suitable node (scheduling constraints not satisfied on 1 node)"
            }
        }
        #expect(c.tasks(svc).first?.status.rejections["constraints"] == 1)
        // A matching node arrives: the tasks are placed.
        try await c.addNode("n2", labels: ["zone": "east"])
        try await c.waitFor("placed on the new node") { Self.perNode(c.tasks(svc)) == ["n2": 2] }
    }
}
