import Foundation
import SwarmAPI
import SwarmConstraints
import SwarmPluginHost
@testable import SwarmScheduler
import SwiftProtobuf
import Testing

@Suite struct ConstraintAndResourceParsingTests {
    @Test func parsesEveryKeyKind() throws {
        let cs = try Constraint.parse(all: ["node.id==abc", "node.hostname!=web1", "node.role==manager",
                                            "node.platform.os==linux", "node.platform.arch==x86_64",
                                            "node.labels.zone==east", "engine.labels.disk != ssd"])
        #expect(cs.map(\.description) == ["node.id==abc", "node.hostname!=web1", "node.role==manager",
                                          "node.platform.os==linux", "node.platform.arch==x86_64",
                                          "node.labels.zone==east", "engine.labels.disk!=ssd"])
    }

    @Test(arguments: [
        ("node.labels.zone=east", "expected an == or != operator"),
        ("color==red", "unknown key \"color\""),
        ("node.role==boss", "node.role must be manager or worker"),
        ("node.id==", "the value is empty"),
        ("node.labels.==x", "unknown key \"node.labels.\""),
    ])
    func malformedConstraintsAreRefusedWithTheReason(text: String, reason: String) {
        let error = #expect(throws: PlacementError.self) { try Constraint.parse(text) }
        #expect(error?.description.contains(reason) == true, "\(String(describing: error))")
        #expect(error?.description.contains(text) == true)
    }

    @Test func genericResourcesFollowSwarmKitSyntax() throws {
        let r = try GenericResources.parse("fpga=2,gpu=UUID1,gpu=UUID2")
        #expect(GenericResources.totals(r) == ["fpga": 2, "gpu": 2])
        #expect(r.filter { $0.kind == "gpu" }.map(\.named) == ["UUID1", "UUID2"])
        for bad in ["fpga", "fpga=0", "fpga=2,fpga=UUID", "=3", "gpu=", "fpga=2,,gpu=1"] {
            #expect(throws: PlacementError.self, "\(bad)") { try GenericResources.parse(bad) }
        }
    }
}

@Suite struct PlacementTests {
    static func node(_ id: String, cpus: Int64 = 4, memoryGiB: Int64 = 8, ready: Bool = true,
                     availability: SwarmNodeSpec.Availability = .active, labels: [String: String] = [:],
                     role: SwarmNodeSpec.Role = .worker, executors: [String] = ["process"]) -> SwarmNode {
        var n = SwarmNode()
        n.id = id
        n.role = role
        n.description_p.hostname = "host-\(id)"
        n.description_p.platform.os = "linux"
        n.description_p.platform.architecture = "x86_64"
        n.description_p.resources.nanoCpus = cpus * 1_000_000_000
        n.description_p.resources.memoryBytes = memoryGiB << 30
        n.description_p.plugins = executors.map { e in SwarmPluginDescription.with { $0.name = e; $0.kind = "executor" } }
        n.status.state = ready ? .ready : .down
        n.spec.availability = availability
        n.spec.annotations.labels = labels
        return n
    }

    static func tasks(_ count: Int, service: String = "svc", cpus: Int64 = 0, constraints: [String] = [],
                      maxReplicas: UInt64 = 0, port: UInt32 = 0) -> ([SwarmTask], TaskRequirements) {
        var spec = SwarmTaskSpec()
        spec.resources.reservations.nanoCpus = cpus * 1_000_000_000
        spec.placement.constraints = constraints
        spec.placement.maxReplicas = maxReplicas
        if port != 0 { spec.ports = [SwarmPortConfig.with { $0.publishedPort = port; $0.targetPort = port }] }
        let tasks = (0..<count).map { k in
            SwarmTask.with {
                $0.id = "\(service)-t\(k)"
                $0.serviceID = service
                $0.slot = UInt64(k + 1)
                $0.spec = spec
            }
        }
        return (tasks, try! TaskRequirements(serviceID: service, spec: spec))
    }

    /// A strategy plugin this package builds, loaded from next to the test binary.
    static func strategy(_ name: String) throws -> LoadedStrategy {
        let registry = PluginRegistry()
        let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        try registry.load(file: dir.appendingPathComponent("libswarm-\(name).so").path)
        return try #require(registry.strategy(name))
    }

    static func spread() throws -> PluginScorer { PluginScorer(try strategy("spread")) }

    static func perNode(_ r: PlacementResult) -> [String: Int] {
        Dictionary(grouping: r.assignments, by: \.node).mapValues(\.count)
    }

    @Test func spreadPluginSpreadsSixReplicasTwoPerNode() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2", "n3"] { engine.setNode(Self.node(id)) }
        let (tasks, req) = Self.tasks(6)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.unplaced.isEmpty)
        #expect(Self.perNode(r) == ["n1": 2, "n2": 2, "n3": 2])
        #expect(engine.nodes["n1"]?.tasksByService["svc"] == 2)
    }

    @Test func assignedTasksCarryTheStatusTheEngineIsGiven() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2"] { engine.setNode(Self.node(id)) }
        var (tasks, req) = Self.tasks(3)
        tasks[0].status.err = "from an earlier attempt"
        let status = SwarmTaskStatus.with { $0.state = .assigned; $0.message = "assigned by test"; $0.timestamp = 42 }
        var reported: [SwarmTask] = []
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread(), assignedStatus: status) { reported.append($1) }
        #expect(r.assignments.count == 3 && reported.count == 3)
        for t in reported {
            #expect(t.status == status, "the status is replaced whole")
            #expect(!t.nodeID.isEmpty && engine.nodes[t.nodeID]?.tasks[t.id]?.status.state == .assigned)
        }
        // Without one, the task keeps its status: the caller sets it.
        var extra = tasks[1]
        extra.id = "svc-extra"
        extra.status = .with { $0.state = .pending; $0.message = "waiting" }
        var plain: [SwarmTask] = []
        _ = engine.place([extra], requirements: req, scorer: try Self.spread()) { plain.append($1) }
        #expect(plain.count == 1 && plain[0].status == extra.status && !plain[0].nodeID.isEmpty)
    }

    @Test func spreadPrefersNodesWithFewerTasksOfTheService() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2", "n3"] { engine.setNode(Self.node(id)) }
        let (existing, _) = Self.tasks(2, service: "svc")
        for (k, t) in existing.enumerated() {
            var placed = t
            placed.nodeID = k == 0 ? "n1" : "n2"
            engine.taskAssigned(placed)
        }
        var (more, req) = Self.tasks(1, service: "svc")
        more[0].id = "svc-new"
        let r = engine.place(more, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.map(\.node) == ["n3"])
    }

    @Test func unplaceableTasksStayWithAnExplanation() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.node("n1", cpus: 1))
        engine.setNode(Self.node("n2", cpus: 1))
        engine.setNode(Self.node("n3", cpus: 8, ready: false))
        let (tasks, req) = Self.tasks(1, cpus: 2)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.isEmpty)
        #expect(r.unplaced["svc-t0"] == "no suitable node (insufficient resources on 2 nodes; 1 node not available)")
    }

    @Test func resourcesAreConsumedAsTasksArePlaced() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.node("n1", cpus: 1))
        engine.setNode(Self.node("n2", cpus: 2))
        engine.setNode(Self.node("n3", cpus: 4))
        let (tasks, req) = Self.tasks(10, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.count == 7)
        #expect(Self.perNode(r) == ["n1": 1, "n2": 2, "n3": 4])
        #expect(r.unplaced.count == 3)
        #expect(r.unplaced.values.allSatisfy { $0 == "no suitable node (insufficient resources on 3 nodes)" })
        #expect(engine.nodes["n3"]?.freeNanoCPUs == 0)
    }

    @Test func constraintsExecutorsAvailabilityAndLimits() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.node("east1", labels: ["zone": "east"]))
        engine.setNode(Self.node("east2", labels: ["zone": "east"], executors: ["docker"]))
        engine.setNode(Self.node("west", labels: ["zone": "west"]))
        engine.setNode(Self.node("drained", availability: .drain, labels: ["zone": "east"]))
        engine.setNode(Self.node("paused", availability: .pause, labels: ["zone": "east"]))
        let (tasks, req) = Self.tasks(3, constraints: ["node.labels.zone==east"], maxReplicas: 1)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.map(\.node) == ["east1"])
        #expect(r.unplaced.count == 2)
        #expect(r.unplaced["svc-t1"] == "no suitable node (2 nodes not available; runtime \"process\" not available on 1 node; scheduling constraints not satisfied on 1 node; max replicas per node reached on 1 node)")
    }

    @Test func hostPortsConflict() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.node("n1"))
        engine.setNode(Self.node("n2"))
        let (tasks, req) = Self.tasks(3, port: 8080)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.count == 2)
        #expect(r.unplaced.values.first?.contains("host-mode port already in use on 2 nodes") == true)
    }

    @Test func endedTasksReturnTheirResourcesAndRefreshKeepsAccounting() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.node("n1", cpus: 2))
        let (tasks, req) = Self.tasks(2, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: try Self.spread())
        #expect(r.assignments.count == 2)
        engine.setNode(Self.node("n1", cpus: 2, labels: ["new": "label"]))
        #expect(engine.nodes["n1"]?.freeNanoCPUs == 0, "refreshing a node keeps its tasks")
        var ended = tasks[0]
        ended.nodeID = "n1"
        engine.taskEnded(ended, failed: true)
        #expect(engine.nodes["n1"]?.freeNanoCPUs == 1_000_000_000)
        #expect(engine.nodes["n1"]?.recentFailures["svc"] == 1)
    }

    /// A scorer that misbehaves the way a buggy plugin might.
    struct Erratic: Scorer {
        func score(_ task: TaskRequirements, _ node: NodeInfo) -> Double? {
            switch node.id {
            case "nan": return .nan
            case "inf": return .infinity
            case "nil": return nil
            default: return 1
            }
        }
    }

    @Test func nonFiniteScoresSkipTheNodeInsteadOfFailing() {
        var engine = PlacementEngine()
        for id in ["nan", "inf", "nil", "ok"] { engine.setNode(Self.node(id)) }
        let (tasks, req) = Self.tasks(2)
        let r = engine.place(tasks, requirements: req, scorer: Erratic())
        #expect(r.assignments.map(\.node) == ["ok", "ok"])
        #expect(r.rejections["strategy"] == 3)
    }
}
