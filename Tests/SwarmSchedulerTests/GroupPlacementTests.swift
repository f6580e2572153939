import Foundation
import SwarmAPI
import SwarmConstraints
import SwarmPluginABI
import SwarmPluginHost
@testable import SwarmScheduler
import SwiftProtobuf
import Testing

/// Group placement (`place_group`, ABI 1.2): the engine offers the feasible nodes once and
/// applies the strategy's answer as a whole, or not at all.
@Suite struct GroupPlacementTests {
    typealias P = PlacementTests

    /// Answers with fixed positions (nil: leave the task out); nil declines the group.
    struct Fixed: Scorer {
        var answer: [Int?]?
        var placesGroups: Bool { true }
        func score(_ task: TaskRequirements, _ node: NodeInfo) -> Double? { node.id == "n3" ? 10 : 1 }
        func placeGroup(_ task: TaskRequirements, count: Int, feasible: [NodeInfo]) -> [Int?]? { answer }
    }

    static func engine(cpus: Int64 = 4) -> PlacementEngine {
        var engine = PlacementEngine()
        for id in ["n1", "n2", "n3"] { engine.setNode(P.node(id, cpus: cpus)) }
        engine.setNode(P.node("down", ready: false))
        return engine
    }

    @Test func theAnswerIsAppliedWithTheFeasibleNodesInIDOrder() {
        var engine = Self.engine()
        let (tasks, req) = P.tasks(4, cpus: 1)
        var reported: [Int] = []
        // The node that is down is filtered out: positions 0, 1, 2 are n1, n2, n3.
        let r = engine.place(tasks, requirements: req, scorer: Fixed(answer: [2, 2, 0, nil])) { position, _ in reported.append(position) }
        #expect(r.assignments.map(\.node) == ["n3", "n3", "n1"])
        #expect(reported == [0, 1, 2])
        #expect(r.unplaced[tasks[3].id]?.contains("placed 3 of the group's 4 tasks") == true)
        #expect(r.rejections.values.reduce(0, +) == 1)
        #expect(engine.nodes["n3"]?.freeNanoCPUs == 2_000_000_000)
    }

    @Test(arguments: [[0, 7, 1], [0, -3, 1], [1, 1, 1, 1, 1]])
    func anInvalidOrOverfullAnswerPlacesNothing(answer: [Int]) {
        var engine = Self.engine()
        let before = engine.nodes.mapValues(\.freeNanoCPUs)
        let (tasks, req) = P.tasks(answer.count, cpus: 1)
        var reported = 0
        let r = engine.place(tasks, requirements: req, scorer: Fixed(answer: answer.map { $0 })) { _, _ in reported += 1 }
        #expect(r.assignments.isEmpty)
        #expect(reported == 0)
        #expect(r.unplaced.count == tasks.count)
        #expect(r.unplaced.values.allSatisfy { $0.contains("the group's placement was refused") })
        #expect(r.refusedAnswers.count == 1 && r.refusedAnswers[0].contains("group placement refused"), "\(r.refusedAnswers)")
        #expect(engine.nodes.mapValues(\.freeNanoCPUs) == before)
        #expect(engine.nodes.values.allSatisfy { $0.taskCount == 0 })
    }

    @Test func aDeclinedGroupIsPlacedTaskByTaskWithScores() {
        var engine = Self.engine()
        let (tasks, req) = P.tasks(2, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: Fixed(answer: nil))
        #expect(r.assignments.map(\.node) == ["n3", "n3"])
    }

    static func gang() throws -> PluginScorer {
        let gang = try P.strategy("gang")
        #expect(gang.wantsPlaceGroup)
        #expect(gang.record.abiMinor == UInt32(SWARM_PLUGIN_ABI_MINOR))
        return PluginScorer(gang)
    }

    @Test func theGangPluginPlacesAWholeGroupOnAsFewNodesAsItCan() throws {
        var engine = PlacementEngine()
        engine.setNode(P.node("n1", cpus: 3))
        engine.setNode(P.node("n2", cpus: 4))
        engine.setNode(P.node("n3", cpus: 4))
        let (tasks, req) = P.tasks(6, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: try Self.gang())
        #expect(r.unplaced.isEmpty)
        // Roomiest first, ties in ID order: n2 takes 4, n3 the other 2; n1 stays empty.
        #expect(P.perNode(r) == ["n2": 4, "n3": 2])
    }

    @Test func theGangPluginLeavesAGroupThatDoesNotFitPendingAsAWhole() throws {
        var engine = PlacementEngine()
        for id in ["n1", "n2"] { engine.setNode(P.node(id, cpus: 4)) }
        let (tasks, req) = P.tasks(9, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: try Self.gang())
        #expect(r.assignments.isEmpty)
        #expect(r.unplaced.count == 9)
        #expect(r.unplaced.values.allSatisfy { $0.contains("placed 0 of the group's 9 tasks") })
        #expect(engine.nodes.values.allSatisfy { $0.taskCount == 0 })
        // Eight fit, so a group of eight is placed in full.
        let (eight, req8) = P.tasks(8, service: "other", cpus: 1)
        let placed = engine.place(eight, requirements: req8, scorer: try Self.gang())
        #expect(P.perNode(placed) == ["n1": 4, "n2": 4])
    }

    @Test func theGangPluginPlansAroundReplicaLimitsPortsAndGenericResources() throws {
        var engine = PlacementEngine()
        for (id, cpus) in [("n1", Int64(8)), ("n2", 4), ("n3", 4)] {
            var node = P.node(id, cpus: cpus)
            node.description_p.resources.generic = try GenericResources.parse(id == "n3" ? "fpga=1" : "fpga=4")
            engine.setNode(node)
        }
        // At most two per node: the roomiest node (n1) alone would take all four.
        let (capped, cappedReq) = P.tasks(4, service: "capped", cpus: 1, maxReplicas: 2)
        let r1 = engine.place(capped, requirements: cappedReq, scorer: try Self.gang())
        #expect(r1.unplaced.isEmpty, "\(r1.unplaced)")
        #expect(P.perNode(r1) == ["n1": 2, "n2": 2])
        // One port, three tasks: one per node.
        let (ported, portedReq) = P.tasks(3, service: "ported", cpus: 1, port: 8080)
        let r2 = engine.place(ported, requirements: portedReq, scorer: try Self.gang())
        #expect(r2.unplaced.isEmpty, "\(r2.unplaced)")
        #expect(P.perNode(r2) == ["n1": 1, "n2": 1, "n3": 1])
        // Two FPGAs each: n3 has one, so five such tasks (n1 and n2 hold two each) do not
        // fit, and the group waits whole; four do.
        var spec = SwarmTaskSpec()
        spec.resources.reservations.generic = try GenericResources.parse("fpga=2")
        let fpga = (0..<5).map { k in SwarmTask.with { $0.id = "f\(k)"; $0.serviceID = "fpga"; $0.spec = spec } }
        let fpgaReq = try TaskRequirements(serviceID: "fpga", spec: spec)
        let r3 = engine.place(fpga, requirements: fpgaReq, scorer: try Self.gang())
        #expect(r3.assignments.isEmpty && r3.unplaced.count == 5)
        let r4 = engine.place(Array(fpga.prefix(4)), requirements: fpgaReq, scorer: try Self.gang())
        #expect(r4.unplaced.isEmpty, "\(r4.unplaced)")
        #expect(P.perNode(r4) == ["n1": 2, "n2": 2])
    }

    /// Chooses GPUs that do not exist, or the same GPU twice.
    struct BadDevices: Scorer {
        var answer: [Int]
        func score(_ task: TaskRequirements, _ node: NodeInfo) -> Double? { 1 }
        func assignDevices(_ task: TaskRequirements, _ node: NodeInfo) -> [Int]? { answer }
    }

    @Test(arguments: [[7], [0, 0], [-1]])
    func aBadGPUChoiceIsReplacedByTheEnginesAndReported(answer: [Int]) throws {
        var engine = PlacementEngine()
        engine.setNode(GPUPlacementTests.gpuNode("n1", [("GPU-a", "T4", 16_000), ("GPU-b", "T4", 16_000)]))
        let (tasks, req) = try GPUPlacementTests.gpuTasks("g", 1, gpus: UInt32(max(1, answer.count)), milli: 1000)
        let r = engine.place(tasks, requirements: req, scorer: BadDevices(answer: answer))
        #expect(r.assignments.count == 1)
        #expect(r.gpus[tasks[0].id]?.map(\.uuid) == Array(["GPU-a", "GPU-b"].prefix(max(1, answer.count))))
        #expect(r.refusedAnswers.count == 1 && r.refusedAnswers[0].contains("do not fit"), "\(r.refusedAnswers)")
    }
}
