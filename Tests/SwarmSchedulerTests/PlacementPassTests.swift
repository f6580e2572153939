import SwarmAPI
@testable import SwarmScheduler
import SwiftProtobuf
import Testing

/// The one pass that the scheduler and the dry run share.
@Suite struct PlacementPassTests {
    /// A strategy that counts its prepares and prefers nodes with fewer tasks.
    final class Counting: Scorer {
        var prepares: [[(TaskRequirements, Int)]] = []
        var wantsPrepare: Bool { true }
        func prepare(_ engine: inout PlacementEngine, workload: [(TaskRequirements, Int)]) { prepares.append(workload) }
        func score(_ task: TaskRequirements, _ node: NodeInfo) -> Double? { -Double(node.taskCount) }
    }

    static func task(_ id: String, service: String, slot: UInt64, version: UInt64 = 1, node: String = "",
                     strategy: String = "", filters: [String] = [], cpus: Int64 = 0) -> SwarmTask {
        .with {
            $0.id = id
            $0.serviceID = service
            $0.slot = slot
            $0.specVersion = version
            $0.nodeID = node
            $0.desiredState = .running
            $0.spec.strategy = strategy
            $0.spec.filters = filters
            $0.spec.resources.reservations.nanoCpus = cpus * 1_000_000_000
        }
    }

    struct Run {
        var assigned: [String: String] = [:]
        var pending: [String: String] = [:]
        var order: [String] = []
    }

    static func run(_ engine: inout PlacementEngine, _ tasks: [SwarmTask], strategies: [String: Counting],
                    filters: [String: PlacementFilter] = [:], defaults: PlacementPass.Defaults = .init(),
                    status: SwarmTaskStatus? = nil) -> (Run, PlacementPass.Report) {
        var run = Run()
        let report = PlacementPass.run(&engine, pending: tasks, defaults: defaults, assignedStatus: status,
                                       scorer: { strategies[$0] }, filter: { filters[$0] }) { outcome in
            switch outcome {
            case .assigned(let t):
                run.assigned[t.id] = t.nodeID
                run.order.append(t.id)
                if let status { #expect(t.status == status) }
            case .pending(let t, let why, _):
                run.pending[t.id] = why
                run.order.append(t.id)
            }
        }
        return (run, report)
    }

    @Test func groupsArePlacedInKeyOrderWithTheirStrategyPreparedOncePerPass() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2", "n3"] { engine.setNode(PlacementTests.node(id)) }
        let spread = Counting()
        let tasks = [
            Self.task("b2", service: "b", slot: 2), Self.task("a1", service: "a", slot: 1),
            Self.task("b1", service: "b", slot: 1), Self.task("a2", service: "a", slot: 2, version: 2),
        ]
        let status = SwarmTaskStatus.with { $0.state = .assigned; $0.message = "by the pass" }
        let (run, report) = Self.run(&engine, tasks, strategies: ["spread": spread], status: status)
        #expect(run.order == ["a1", "a2", "b1", "b2"], "groups by service then version, tasks by slot")
        #expect(run.assigned.count == 4 && run.pending.isEmpty)
        #expect(spread.prepares.count == 1 && report.prepared == ["spread"])
        // The workload is what waits: three groups, one task each but b's two.
        #expect(spread.prepares[0].map(\.1).sorted() == [1, 1, 2])
        #expect(engine.nodes.values.reduce(0) { $0 + $1.taskCount } == 4, "the engine accounts what it placed")
    }

    @Test func missingPluginsAndBadSpecsLeaveTasksPendingWithTheReason() throws {
        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("n1"))
        var bad = Self.task("bad", service: "c", slot: 1)
        bad.spec.placement.constraints = ["node.labels.zone"]
        let tasks = [
            Self.task("s1", service: "a", slot: 1, strategy: "nope"),
            Self.task("f1", service: "b", slot: 1, filters: ["missing"]),
            bad,
        ]
        let (run, _) = Self.run(&engine, tasks, strategies: ["spread": Counting()])
        #expect(run.pending["s1"] == "strategy \"nope\" is not loaded on this manager")
        #expect(run.pending["f1"] == "filter \"missing\" is not loaded on this manager")
        #expect(run.pending["bad"]?.hasPrefix("invalid placement:") == true, "\(run.pending)")
        #expect(run.assigned.isEmpty)
    }

    @Test func theClusterDefaultsApplyAndFiltersArePassedNotStored() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2"] { engine.setNode(PlacementTests.node(id)) }
        let onlyN2 = PlacementFilter(name: "only-n2", check: { _, n in n.id == "n2" }, explain: { _, n in "\(n) not n2" })
        let custom = Counting()
        let (run, _) = Self.run(&engine, [Self.task("t1", service: "a", slot: 1), Self.task("t2", service: "a", slot: 2)],
                                strategies: ["mine": custom], filters: ["only-n2": onlyN2],
                                defaults: .init(strategy: "mine", filters: ["only-n2"]))
        #expect(run.assigned == ["t1": "n2", "t2": "n2"])
        #expect(custom.prepares.count == 1)
        // The next placement without the defaults is not filtered: nothing was left behind.
        let plain = engine.place([Self.task("t3", service: "b", slot: 1)], requirements: try TaskRequirements(serviceID: "b", spec: SwarmTaskSpec()),
                                 scorer: Counting())
        #expect(plain.assignments.map(\.node) == ["n1"])
    }

    @Test func globalTasksNeedTheirNodesApprovalOnly() throws {
        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("n1"))
        engine.setNode(PlacementTests.node("small", cpus: 1))
        let tasks = [
            Self.task("g1", service: "g", slot: 0, node: "n1", cpus: 2),
            Self.task("g2", service: "g", slot: 0, node: "small", cpus: 2),
            Self.task("g3", service: "g", slot: 0, node: "gone", cpus: 2),
        ]
        let (run, _) = Self.run(&engine, tasks, strategies: ["spread": Counting()])
        #expect(run.assigned == ["g1": "n1"])
        #expect(run.pending["g2"] == "no suitable node (insufficient resources on 1 node)")
        #expect(run.pending["g3"] == nil && run.assigned["g3"] == nil, "a task whose node is gone gets no outcome")
    }

    @Test func aPassOnACopyDecidesWhatThePassOnTheEngineDecides() throws {
        var engine = PlacementEngine()
        for (k, id) in ["n1", "n2", "n3", "n4"].enumerated() { engine.setNode(PlacementTests.node(id, cpus: Int64(2 + k))) }
        engine.taskAssigned(Self.task("old", service: "x", slot: 1, node: "n4", cpus: 3))
        let tasks = (1...6).map { Self.task("t\($0)", service: "a", slot: UInt64($0), cpus: 1) }
        var copy = engine
        let (simulated, _) = Self.run(&copy, tasks, strategies: ["spread": Counting()])
        let before = engine.nodes.mapValues(\.taskCount)
        #expect(before == ["n1": 0, "n2": 0, "n3": 0, "n4": 1], "the copy's pass left the engine alone")
        let (real, _) = Self.run(&engine, tasks, strategies: ["spread": Counting()])
        #expect(simulated.assigned == real.assigned && simulated.pending == real.pending)
        #expect(real.assigned.count == 6)
    }
}
