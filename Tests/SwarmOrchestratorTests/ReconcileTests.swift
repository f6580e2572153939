import SwarmAPI
import SwarmConstraints
@testable import SwarmOrchestrator
import SwiftProtobuf
import Testing

extension Reconciler {
    /// The actions of one pass over a replicated service.
    func reconcileReplicated(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) -> [OrchestratorAction] {
        (try? reconcile(service, tasks: tasks, nodes: nodes).actions) ?? []
    }

    /// The actions of one pass over a global service.
    func reconcileGlobal(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) throws(PlacementError) -> [OrchestratorAction] {
        try reconcile(service, tasks: tasks, nodes: nodes).actions
    }
}

@Suite struct ReconcileTests {
    static let sec: Int64 = 1_000_000_000

    static func service(replicas: UInt64? = 3, restart: SwarmRestartPolicy.Condition = .any, delay: Int64 = 0,
                        maxAttempts: UInt64 = 0, window: Int64 = 0, constraints: [String] = []) -> SwarmService {
        var s = SwarmService()
        s.id = "svc"
        s.specVersion = 1
        s.spec.annotations.name = "web"
        if let replicas { s.spec.replicated.replicas = replicas } else { s.spec.global = SwarmGlobalService() }
        s.spec.task.restart.condition = restart
        s.spec.task.restart.delay = delay
        s.spec.task.restart.maxAttempts = maxAttempts
        s.spec.task.restart.window = window
        s.spec.task.placement.constraints = constraints
        return s
    }

    static func node(_ id: String, state: SwarmNodeStatus.State = .ready, availability: SwarmNodeSpec.Availability = .active,
                     labels: [String: String] = [:]) -> SwarmNode {
        SwarmNode.with {
            $0.id = id
            $0.status.state = state
            $0.spec.availability = availability
            $0.spec.annotations.labels = labels
        }
    }

    /// Applies actions the way the shell's transaction would.
    static func apply(_ actions: [OrchestratorAction], to tasks: [SwarmTask]) -> [SwarmTask] {
        var byID = Dictionary(uniqueKeysWithValues: tasks.map { ($0.id, $0) })
        for a in actions {
            switch a {
            case .create(let t): byID[t.id] = t
            case .setDesired(let id, let s): byID[id]?.desiredState = s
            case .delete(let id): byID[id] = nil
            case .setUpdateStatus, .rollback, .markRebalanced: break
            }
        }
        return byID.values.sorted { $0.id < $1.id }
    }

    final class IDs {
        var n = 0
        func next() -> String { n += 1; return "t\(n)" }
    }

    func reconciler(_ now: Int64 = 100 * sec, _ ids: IDs) -> Reconciler { Reconciler(now: now) { ids.next() } }

    /// Marks every task running on `node` (as the scheduler and agent would).
    static func run(_ tasks: [SwarmTask], on node: String = "n1") -> [SwarmTask] {
        tasks.map { t in
            var t = t
            if t.isRunnable && t.status.state == .new {
                t.status.state = .running
                if t.nodeID.isEmpty { t.nodeID = node }
            }
            return t
        }
    }

    static func occupied(_ tasks: [SwarmTask]) -> [UInt64] { tasks.filter(\.isRunnable).map(\.slot).sorted() }

    @Test func createsOneTaskPerSlotAndIsIdempotent() {
        let ids = IDs()
        let r = reconciler(100 * Self.sec, ids)
        var tasks = Self.apply(r.reconcileReplicated(Self.service(), tasks: [], nodes: [:]), to: [])
        #expect(Self.occupied(tasks) == [1, 2, 3])
        #expect(tasks.allSatisfy { $0.desiredState == .running && $0.status.state == .new && $0.specVersion == 1 })
        tasks = Self.run(tasks)
        #expect(r.reconcileReplicated(Self.service(), tasks: tasks, nodes: ["n1": Self.node("n1")]).isEmpty)
    }

    @Test func scalesUpAndDown() {
        let ids = IDs()
        let r = reconciler(100 * Self.sec, ids)
        let nodes = ["n1": Self.node("n1")]
        var tasks = Self.run(Self.apply(r.reconcileReplicated(Self.service(replicas: 3), tasks: [], nodes: nodes), to: []))
        tasks = Self.apply(r.reconcileReplicated(Self.service(replicas: 6), tasks: tasks, nodes: nodes), to: tasks)
        #expect(Self.occupied(tasks) == [1, 2, 3, 4, 5, 6])
        tasks = Self.run(tasks)
        let down = r.reconcileReplicated(Self.service(replicas: 3), tasks: tasks, nodes: nodes)
        #expect(down.count == 3 && down.allSatisfy { if case .setDesired(_, .remove) = $0 { true } else { false } })
        tasks = Self.apply(down, to: tasks)
        #expect(Self.occupied(tasks) == [1, 2, 3])
    }

    @Test func failedTaskIsReplacedInItsSlotAfterTheDelay() {
        let ids = IDs()
        let nodes = ["n1": Self.node("n1")]
        let svc = Self.service(replicas: 1, delay: 5 * Self.sec)
        var tasks = Self.run(Self.apply(reconciler(100 * Self.sec, ids).reconcileReplicated(svc, tasks: [], nodes: nodes), to: []))
        tasks[0].status.state = .failed
        tasks[0].status.timestamp = 101 * Self.sec
        let now = 102 * Self.sec
        tasks = Self.apply(reconciler(now, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes), to: tasks)
        let replacement = tasks.first { $0.isRunnable }!
        #expect(replacement.slot == 1 && replacement.id != "t1")
        #expect(replacement.desiredState == .ready, "waits for the restart delay")
        #expect(replacement.startAfter == 106 * Self.sec)
        #expect(tasks.first { $0.id == "t1" }?.desiredState == .shutdown)
        // Nothing changes before the delay; after it the task may start.
        #expect(reconciler(105 * Self.sec, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes).isEmpty)
        let later = reconciler(106 * Self.sec, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes)
        #expect(later == [.setDesired(taskID: replacement.id, .running)])
    }

    @Test func restartConditionsAreHonoured() {
        let nodes = ["n1": Self.node("n1")]
        for (condition, state, restarts) in [(SwarmRestartPolicy.Condition.onFailure, SwarmTaskState.complete, false),
                                             (.onFailure, .failed, true), (.none, .failed, false), (.any, .complete, true)] {
            let ids = IDs()
            let svc = Self.service(replicas: 1, restart: condition)
            var tasks = Self.run(Self.apply(reconciler(100 * Self.sec, ids).reconcileReplicated(svc, tasks: [], nodes: nodes), to: []))
            tasks[0].status.state = state
            tasks = Self.apply(reconciler(101 * Self.sec, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes), to: tasks)
            #expect((tasks.count == 2) == restarts, "\(condition) after \(state)")
            // A slot left alone stays alone on later passes.
            let again = reconciler(102 * Self.sec, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes)
            #expect(again.isEmpty, "\(condition) after \(state) must settle")
        }
    }

    @Test func maxAttemptsWithinTheWindowStopRestarts() {
        let ids = IDs()
        let nodes = ["n1": Self.node("n1")]
        let svc = Self.service(replicas: 1, maxAttempts: 2, window: 60 * Self.sec)
        var now = 100 * Self.sec
        var tasks = Self.run(Self.apply(reconciler(now, ids).reconcileReplicated(svc, tasks: [], nodes: nodes), to: []))
        var replacements = 0
        for _ in 0..<4 {
            now += Self.sec
            tasks = tasks.map { var t = $0; if t.isRunnable { t.status.state = .failed; t.status.timestamp = now }; return t }
            let actions = reconciler(now, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes)
            replacements += actions.filter { if case .create = $0 { true } else { false } }.count
            tasks = Self.run(Self.apply(actions, to: tasks))
        }
        #expect(replacements == 2)
        // Outside the window the old attempts no longer count.
        let muchLater = reconciler(now + 120 * Self.sec, ids).reconcileReplicated(svc, tasks: tasks, nodes: nodes)
        #expect(muchLater.contains { if case .create = $0 { true } else { false } })
    }

    @Test func tasksLeaveDrainedAndDownNodesButStayOnPausedOnes() {
        let ids = IDs()
        let r = reconciler(100 * Self.sec, ids)
        var tasks = Self.apply(r.reconcileReplicated(Self.service(replicas: 3), tasks: [], nodes: [:]), to: [])
        for (k, node) in ["drained", "down", "paused"].enumerated() {
            tasks[k].nodeID = node
            tasks[k].status.state = .running
        }
        let nodes = ["drained": Self.node("drained", availability: .drain), "down": Self.node("down", state: .down),
                     "paused": Self.node("paused", availability: .pause)]
        let actions = r.reconcileReplicated(Self.service(replicas: 3), tasks: tasks, nodes: nodes)
        tasks = Self.apply(actions, to: tasks)
        #expect(tasks.filter { $0.desiredState == .shutdown }.map(\.nodeID).sorted() == ["down", "drained"])
        let fresh = tasks.filter { $0.isRunnable && $0.nodeID.isEmpty }
        #expect(fresh.map(\.slot).sorted() == [1, 2], "replacements wait for the scheduler in the same slots")
        #expect(tasks.contains { $0.nodeID == "paused" && $0.isRunnable })
    }

    @Test func globalServiceFollowsEligibleNodes() throws {
        let ids = IDs()
        let r = reconciler(100 * Self.sec, ids)
        let svc = Self.service(replicas: nil, constraints: ["node.labels.gpu!=none"])
        var nodes = ["a": Self.node("a"), "b": Self.node("b", availability: .pause), "c": Self.node("c", availability: .drain),
                     "d": Self.node("d", labels: ["gpu": "none"])]
        var tasks = try Self.apply(r.reconcileGlobal(svc, tasks: [], nodes: nodes), to: [])
        #expect(tasks.map(\.nodeID) == ["a"], "paused, drained and constrained-out nodes get no task")
        tasks = Self.run(tasks)
        nodes["e"] = Self.node("e")
        tasks = try Self.apply(r.reconcileGlobal(svc, tasks: tasks, nodes: nodes), to: tasks)
        #expect(tasks.filter(\.isRunnable).map(\.nodeID).sorted() == ["a", "e"])
        tasks = Self.run(tasks)
        nodes["a"] = Self.node("a", availability: .drain)
        nodes["e"] = nil
        let actions = try r.reconcileGlobal(svc, tasks: tasks, nodes: nodes)
        tasks = Self.apply(actions, to: tasks)
        #expect(tasks.filter(\.isRunnable).isEmpty, "drained and removed nodes lose their tasks")
        #expect(throws: PlacementError.self) { try r.reconcileGlobal(Self.service(replicas: nil, constraints: ["bad"]), tasks: [], nodes: nodes) }
    }

    @Test func reaperKeepsFiveEndedTasksPerSlot() {
        var tasks: [SwarmTask] = []
        for k in 0..<8 {
            tasks.append(SwarmTask.with {
                $0.id = "old\(k)"
                $0.serviceID = "svc"
                $0.slot = 1
                $0.desiredState = .shutdown
                $0.status.state = .failed
                $0.status.timestamp = Int64(k)
            })
        }
        tasks.append(SwarmTask.with { $0.id = "live"; $0.serviceID = "svc"; $0.slot = 1; $0.desiredState = .running; $0.status.state = .running })
        tasks.append(SwarmTask.with { $0.id = "gone"; $0.serviceID = "svc"; $0.slot = 2; $0.desiredState = .remove; $0.status.state = .shutdown })
        tasks.append(SwarmTask.with { $0.id = "stopping"; $0.serviceID = "svc"; $0.slot = 3; $0.desiredState = .remove; $0.status.state = .running })
        let actions = Reconciler(now: 0) { "x" }.reap(tasks: tasks)
        let deleted = Set(actions.compactMap { if case .delete(let id) = $0 { id } else { nil } })
        #expect(deleted == ["old0", "old1", "old2", "gone"])
    }

    @Test func removedServiceRemovesEveryTaskItsHistoryToo() {
        let tasks = [SwarmTask.with { $0.id = "a"; $0.desiredState = .running },
                     SwarmTask.with { $0.id = "b"; $0.desiredState = .shutdown; $0.status.state = .shutdown },
                     SwarmTask.with { $0.id = "c"; $0.desiredState = .remove }]
        let r = Reconciler(now: 0) { "x" }
        #expect(r.serviceRemoved(tasks: tasks) == [.setDesired(taskID: "a", .remove), .setDesired(taskID: "b", .remove)])
        // Once removed and ended, the reaper deletes them.
        var removed = tasks.map { t in var t = t; t.desiredState = .remove; return t }
        removed[0].status.state = .shutdown
        #expect(Set(r.reap(tasks: removed).compactMap { if case .delete(let id) = $0 { id } else { nil } }) == ["a", "b"])
    }

    @Test func statesOnlyMoveForward() {
        #expect(SwarmTaskState.new.canMove(to: .pending))
        #expect(SwarmTaskState.running.canMove(to: .failed))
        #expect(!SwarmTaskState.running.canMove(to: .starting))
        #expect(!SwarmTaskState.complete.canMove(to: .failed))
        #expect(!SwarmTaskState.running.canMove(to: .running))
    }
}
