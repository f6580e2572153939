import SwarmAPI
import SwarmConstraints
@testable import SwarmOrchestrator
import SwiftProtobuf
import Testing

/// A deterministic cluster for the pure reconciler: the store (a service and its tasks),
/// a clock, and an agent that starts and stops tasks one step after they are asked to.
struct Sim {
    static let sec: Int64 = 1_000_000_000
    var service: SwarmService
    var tasks: [String: SwarmTask] = [:]
    var nodes: [String: SwarmNode]
    var now: Int64 = 100 * sec
    var ids = 0
    /// Commands (first argument) that fail as soon as they start.
    var failing: Set<String> = []
    /// Commands whose health check fails.
    var unhealthy: Set<String> = []
    var moves = Reconciler.Moves()
    /// Every task created, in order.
    var created: [SwarmTask] = []

    init(replicas: UInt64?, nodes: [String] = ["n1"], update: SwarmUpdateConfig = SwarmUpdateConfig()) {
        service = SwarmService()
        service.id = "svc"
        service.specVersion = 1
        service.spec.annotations.name = "web"
        if let replicas { service.spec.replicated.replicas = replicas } else { service.spec.global = SwarmGlobalService() }
        service.spec.task.process.command = "/bin/sleep"
        service.spec.task.process.args = ["1111"]
        service.spec.update = update
        self.nodes = Dictionary(uniqueKeysWithValues: nodes.map { id in
            (id, SwarmNode.with { $0.id = id; $0.status.state = .ready })
        })
    }

    var running: [SwarmTask] { tasks.values.filter { $0.status.state == .running }.sorted { $0.slot < $1.slot } }
    var runnable: [SwarmTask] { tasks.values.filter(\.isRunnable) }

    /// One reconciliation pass, applied as the shell would.
    @discardableResult
    mutating func pass() throws -> ServicePass {
        var next = 0
        let base = ids
        let r = Reconciler(now: now) { next += 1; return "t\(base + next)" }
        let pass = try r.reconcile(service, tasks: Array(tasks.values), nodes: nodes, moves: moves)
        ids += next
        for action in pass.actions {
            switch action {
            case .create(var t):
                t.meta.createdAt = now
                tasks[t.id] = t
                created.append(t)
            case .setDesired(let id, let state):
                if let t = tasks[id], t.desiredState.rawValue < state.rawValue { tasks[id]!.desiredState = state }
            case .delete(let id):
                tasks[id] = nil
            case .setUpdateStatus(_, let version, let status):
                if service.specVersion == version { service.updateStatus = status }
            case .markRebalanced(_, let counter):
                service.updateStatus.rebalanced = counter
            case .rollback(_, let version, let status):
                if service.specVersion == version {
                    (service.spec, service.previousSpec) = (service.previousSpec, service.spec)
                    service.specVersion += 1
                    service.updateStatus = status
                }
            }
        }
        return pass
    }

    /// The scheduler and the agents: new tasks that may run are placed and started (or
    /// fail); tasks asked to stop stop; health checks run.
    mutating func agents() {
        let nodeIDs = nodes.keys.sorted()
        for id in tasks.keys.sorted() {
            var t = tasks[id]!
            defer { tasks[id] = t }
            if t.hasEnded { continue }
            if t.desiredState.rawValue > SwarmTaskState.running.rawValue {
                t.status.state = t.nodeID.isEmpty ? .shutdown : .shutdown
                t.status.timestamp = now
                continue
            }
            guard t.desiredState == .running else { continue }
            if t.status.state == .new {
                // The scheduler places the task; its agent starts it on the next step.
                if t.nodeID.isEmpty {
                    // Spread: the node with the fewest live tasks.
                    let load = Dictionary(grouping: tasks.values.filter { $0.isRunnable && !$0.nodeID.isEmpty }, by: \.nodeID)
                    t.nodeID = nodeIDs.min { (load[$0]?.count ?? 0, $0) < (load[$1]?.count ?? 0, $1) }!
                }
                t.status.state = .assigned
                t.status.timestamp = now
            } else if t.status.state == .assigned {
                t.status.state = .running
                t.status.timestamp = now
                t.runningSince = now
                if !t.spec.healthcheck.test.isEmpty { t.status.health = .starting }
            } else if t.status.state == .running {
                if failing.contains(t.spec.process.args.first ?? "") {
                    t.status.state = .failed
                    t.status.err = "exited with code 1"
                    t.status.timestamp = now
                } else if !t.spec.healthcheck.test.isEmpty {
                    t.status.health = unhealthy.contains(t.spec.process.args.first ?? "") ? .unhealthy : .healthy
                    if t.status.health == .unhealthy {
                        t.status.state = .failed
                        t.status.timestamp = now
                    }
                }
            }
        }
    }

    /// Updates the service's spec as the control API does.
    mutating func update(_ change: (inout SwarmServiceSpec) -> Void) {
        var spec = service.spec
        change(&spec)
        service.previousSpec = service.spec
        service.spec = spec
        service.specVersion += 1
        service.updateStatus.state = .updating
        service.updateStatus.startedAt = now
        service.updateStatus.message = "update in progress"
    }

    /// Runs passes and agent steps, one second apart, until `done` or `limit` steps.
    mutating func run(steps limit: Int, until done: (Sim) -> Bool = { _ in false }, each: (Sim) -> Void = { _ in }) throws {
        for _ in 0..<limit {
            try pass()
            each(self)
            agents()
            each(self)
            now += Sim.sec
            if done(self) { return }
        }
    }
}

@Suite struct UpdaterTests {
    static func config(parallelism: UInt64, delay: Int64 = 0, order: SwarmUpdateConfig.Order = .stopFirst,
                       action: SwarmUpdateConfig.FailureAction = .pause) -> SwarmUpdateConfig {
        .with {
            $0.parallelism = parallelism
            $0.delay = delay
            $0.order = order
            $0.failureAction = action
            $0.monitor = 3 * Sim.sec
        }
    }

    /// Slots whose task is not the service's current template and running.
    static func inTransition(_ sim: Sim) -> Int {
        let slots = Set(1...sim.service.spec.replicated.replicas)
        let done = Set(sim.running.filter { $0.spec == sim.service.spec.task && $0.isRunnable }.map(\.slot))
        let old = Set(sim.running.filter { $0.spec != sim.service.spec.task }.map(\.slot))
        return slots.subtracting(done).subtracting(old).count + old.intersection(done).count
    }

    @Test func rollingUpdateKeepsToParallelismAndReplacesEveryTask() throws {
        var sim = Sim(replicas: 6, nodes: ["n1", "n2", "n3"], update: Self.config(parallelism: 2, delay: 2 * Sim.sec))
        try sim.run(steps: 5)
        #expect(sim.running.count == 6)
        sim.update { $0.task.process.args = ["2222"] }
        var most = 0
        try sim.run(steps: 60, until: { $0.service.updateStatus.state == .completed }) { most = max(most, Self.inTransition($0)) }
        #expect(most <= 2 && most > 0, "at most 2 slots are replaced at once (saw \(most))")
        #expect(sim.service.updateStatus.state == .completed)
        #expect(sim.running.count == 6 && sim.running.allSatisfy { $0.spec.process.args == ["2222"] })
        #expect(sim.runnable.count == 6)
        let updated = sim.created.filter { $0.spec.process.args == ["2222"] }
        #expect(updated.count == 6 && Set(updated.map(\.slot)).count == 6, "each slot is replaced exactly once")
    }

    @Test func replicaCountAloneTouchesNoRunningTask() throws {
        var sim = Sim(replicas: 3)
        try sim.run(steps: 3)
        let before = Set(sim.running.map(\.id))
        sim.service.spec.replicated.replicas = 4
        sim.service.specVersion += 1
        try sim.run(steps: 3)
        #expect(before.isSubset(of: Set(sim.running.map(\.id))) && sim.running.count == 4)
    }

    @Test func forceReplacesEveryTask() throws {
        var sim = Sim(replicas: 3, update: Self.config(parallelism: 0))
        try sim.run(steps: 3)
        let before = Set(sim.running.map(\.id))
        sim.update { $0.task.forceUpdate += 1 }
        try sim.run(steps: 20, until: { $0.service.updateStatus.state == .completed })
        #expect(sim.running.count == 3 && Set(sim.running.map(\.id)).isDisjoint(with: before))
    }

    @Test func failedUpdateRollsBack() throws {
        var sim = Sim(replicas: 4, update: Self.config(parallelism: 1, action: .rollback))
        sim.failing = ["bad"]
        try sim.run(steps: 3)
        sim.update { $0.task.process.args = ["bad"] }
        try sim.run(steps: 60, until: { $0.service.updateStatus.state == .rollbackCompleted })
        #expect(sim.service.updateStatus.state == .rollbackCompleted)
        #expect(sim.service.updateStatus.message.contains("rolled back due to failure"))
        #expect(sim.service.spec.task.process.args == ["1111"])
        #expect(sim.running.count == 4 && sim.running.allSatisfy { $0.spec.process.args == ["1111"] })
        let badSlots = Set(sim.created.filter { $0.spec.process.args == ["bad"] }.map(\.slot))
        #expect(badSlots.count < 4, "the update stops at the first failure (it reached slots \(badSlots.sorted()))")
    }

    @Test func failedUpdatePausesAndAnotherUpdateResumes() throws {
        var sim = Sim(replicas: 4, update: Self.config(parallelism: 1))
        sim.failing = ["bad"]
        try sim.run(steps: 3)
        sim.update { $0.task.process.args = ["bad"] }
        try sim.run(steps: 20, until: { $0.service.updateStatus.state == .paused })
        #expect(sim.service.updateStatus.state == .paused)
        #expect(sim.service.updateStatus.message.contains("paused due to failure"))
        let oldRunning = sim.running.filter { $0.spec.process.args == ["1111"] }.count
        try sim.run(steps: 10)
        #expect(sim.running.filter { $0.spec.process.args == ["1111"] }.count == oldRunning, "a paused update replaces nothing")
        sim.update { $0.task.process.args = ["3333"] }
        try sim.run(steps: 60, until: { $0.service.updateStatus.state == .completed })
        #expect(sim.service.updateStatus.state == .completed)
        #expect(sim.running.count == 4 && sim.running.allSatisfy { $0.spec.process.args == ["3333"] })
    }

    @Test func startFirstStartsTheNewTaskBeforeStoppingTheOld() throws {
        var sim = Sim(replicas: 2, update: Self.config(parallelism: 1, order: .startFirst))
        sim.service.spec.task.healthcheck = .with { $0.test = ["CMD", "true"]; $0.interval = Sim.sec }
        try sim.run(steps: 4)
        #expect(sim.running.count == 2 && sim.running.allSatisfy { $0.status.health == .healthy })
        sim.update { $0.task.process.args = ["2222"] }
        var fewest = 2
        try sim.run(steps: 40, until: { $0.service.updateStatus.state == .completed }) { s in
            fewest = min(fewest, s.running.filter { $0.status.health == .healthy }.count)
        }
        #expect(fewest >= 2, "never fewer than 2 healthy running tasks")
        #expect(sim.running.count == 2 && sim.running.allSatisfy { $0.spec.process.args == ["2222"] })
    }

    @Test func anUnhealthyTaskFailsTheUpdate() throws {
        var sim = Sim(replicas: 2, update: Self.config(parallelism: 1, order: .startFirst, action: .rollback))
        sim.service.spec.task.healthcheck = .with { $0.test = ["CMD", "true"]; $0.interval = Sim.sec }
        sim.unhealthy = ["sick"]
        try sim.run(steps: 4)
        sim.update { $0.task.process.args = ["sick"] }
        try sim.run(steps: 40, until: { $0.service.updateStatus.state == .rollbackCompleted })
        #expect(sim.service.updateStatus.state == .rollbackCompleted)
        #expect(sim.running.count == 2 && sim.running.allSatisfy { $0.spec.process.args == ["1111"] })
    }

    @Test func aNewReconcilerContinuesAnUpdateWithoutRedoingSlots() throws {
        // Every pass uses a new Reconciler with no memory, as after a leader change.
        var sim = Sim(replicas: 5, update: Self.config(parallelism: 1, delay: 3 * Sim.sec))
        try sim.run(steps: 3)
        sim.update { $0.task.process.args = ["2222"] }
        try sim.run(steps: 6)
        let halfway = sim.created.filter { $0.spec.process.args == ["2222"] }.count
        #expect(halfway > 0 && halfway < 5)
        try sim.run(steps: 60, until: { $0.service.updateStatus.state == .completed })
        let updated = sim.created.filter { $0.spec.process.args == ["2222"] }
        #expect(updated.count == 5 && Set(updated.map(\.slot)) == [1, 2, 3, 4, 5])
    }

    @Test func misplacedTasksMoveWithPacing() throws {
        var sim = Sim(replicas: 4, nodes: ["n1", "n2"], update: Self.config(parallelism: 1))
        sim.service.spec.task.placement.constraints = ["node.labels.zone==east"]
        for id in ["n1", "n2"] { sim.nodes[id]!.spec.annotations.labels = ["zone": "east"] }
        try sim.run(steps: 3)
        sim.nodes["n2"]!.spec.annotations.labels = [:]
        let onN2 = Set(sim.running.filter { $0.nodeID == "n2" }.map(\.id))
        #expect(!onN2.isEmpty)
        let misplaced = ConstraintEnforcer.misplaced(tasks: Array(sim.tasks.values), nodes: sim.nodes)
        #expect(misplaced == onN2)
        sim.moves = Reconciler.Moves(misplaced: misplaced)
        try sim.pass()
        #expect(sim.tasks.values.filter { onN2.contains($0.id) && !$0.isRunnable }.count == 1, "one at a time")
    }

    @Test func nodeShrinkEvictsTheNewestTasks() {
        var node = SwarmNode.with { $0.id = "n"; $0.status.state = .ready }
        node.description_p.resources.memoryBytes = 300
        let tasks = (1...3).map { k in
            SwarmTask.with {
                $0.id = "t\(k)"; $0.slot = UInt64(k); $0.nodeID = "n"; $0.desiredState = .running; $0.status.state = .running
                $0.meta.createdAt = Int64(k)
                $0.spec.resources.reservations.memoryBytes = 100
            }
        }
        #expect(ConstraintEnforcer.misplaced(tasks: tasks, nodes: ["n": node]).isEmpty)
        node.description_p.resources.memoryBytes = 150
        #expect(ConstraintEnforcer.misplaced(tasks: tasks, nodes: ["n": node]) == ["t2", "t3"])
    }

    @Test func jobRunsToTotalCompletionsWithinMaxConcurrent() throws {
        var sim = Sim(replicas: nil)
        sim.service.spec.replicatedJob = .with { $0.totalCompletions = 10; $0.maxConcurrent = 3 }
        var most = 0
        for _ in 0..<40 {
            try sim.pass()
            most = max(most, sim.tasks.values.filter { $0.isRunnable && !$0.hasEnded }.count)
            sim.agents()
            // Every running task completes one step after it started (slot 4 fails once).
            for (id, t) in sim.tasks where t.status.state == .running && t.runningSince < sim.now {
                let fail = t.slot == 4 && !sim.tasks.values.contains { $0.slot == 4 && $0.status.state == .failed }
                sim.tasks[id]!.status.state = fail ? .failed : .complete
                sim.tasks[id]!.status.timestamp = sim.now
            }
            sim.now += Sim.sec
        }
        #expect(most <= 3 && most > 0)
        #expect(Reconciler.jobProgress(sim.service, tasks: Array(sim.tasks.values)) == (10, 10))
        #expect(sim.created.filter { $0.slot == 4 }.count == 2, "the failed slot is retried")
        // --force runs it again.
        sim.service.spec.task.forceUpdate += 1
        try sim.pass()
        #expect(Reconciler.jobProgress(sim.service, tasks: Array(sim.tasks.values)).completed == 0)
        #expect(sim.runnable.filter { !$0.hasEnded }.count == 3)
    }

    @Test func globalJobRunsOncePerNode() throws {
        var sim = Sim(replicas: nil, nodes: ["a", "b", "c"])
        sim.service.spec.globalJob = SwarmGlobalJob()
        for _ in 0..<5 {
            try sim.pass()
            sim.agents()
            for (id, t) in sim.tasks where t.status.state == .running { sim.tasks[id]!.status.state = .complete }
            sim.now += Sim.sec
        }
        #expect(sim.created.map(\.nodeID).sorted() == ["a", "b", "c"])
        #expect(Reconciler.jobProgress(sim.service, tasks: Array(sim.tasks.values)) == (3, nil))
    }

    @Test func rebalanceMovesTheSurplusOfCrowdedNodesOnly() throws {
        var sim = Sim(replicas: 6, nodes: ["a", "b"], update: Self.config(parallelism: 1, order: .startFirst))
        try sim.run(steps: 3)
        #expect(Dictionary(grouping: sim.running, by: \.nodeID).mapValues(\.count) == ["a": 3, "b": 3])
        let targets = ["a": 2, "b": 2, "c": 2]
        let surplus = Rebalancer.surplus(sim.service, tasks: Array(sim.tasks.values), targets: targets)
        #expect(surplus.count == 2)
        #expect(Set(sim.running.filter { surplus.contains($0.id) }.map(\.nodeID)) == ["a", "b"])
        #expect(Rebalancer.surplus(sim.service, tasks: Array(sim.tasks.values), targets: ["a": 2, "b": 2]).isEmpty,
                "a target that does not place every replica moves nothing")
        #expect(Rebalancer.isSettled(sim.service, tasks: Array(sim.tasks.values)))
        sim.moves = Reconciler.Moves(rebalance: surplus)
        try sim.pass()
        #expect(sim.created.count == 7, "one replacement at a time, started before its predecessor stops")
        #expect(sim.runnable.count == 7)
    }

    @Test func rebalanceRecomputedEachPassConvergesWithoutDroppingARunningTask() throws {
        var sim = Sim(replicas: 6, nodes: ["a", "b"], update: Self.config(parallelism: 2, order: .startFirst))
        try sim.run(steps: 3)
        sim.nodes["c"] = SwarmNode.with { $0.id = "c"; $0.status.state = .ready }
        var fewest = 6
        for _ in 0..<20 {
            // As the shell does: the surplus is worked out again on every pass.
            sim.moves = Reconciler.Moves(rebalance: Rebalancer.surplus(sim.service, tasks: Array(sim.tasks.values),
                                                                       targets: ["a": 2, "b": 2, "c": 2]))
            try sim.pass()
            fewest = min(fewest, sim.running.filter(\.isRunnable).count)
            sim.agents()
            fewest = min(fewest, sim.running.filter(\.isRunnable).count)
            sim.now += Sim.sec
        }
        #expect(fewest == 6)
        #expect(Dictionary(grouping: sim.running, by: \.nodeID).mapValues(\.count) == ["a": 2, "b": 2, "c": 2])
        #expect(Rebalancer.isSettled(sim.service, tasks: Array(sim.tasks.values)))
    }

    @Test func globalServiceUpdatesOneNodeAtATime() throws {
        var sim = Sim(replicas: nil, nodes: ["a", "b", "c"], update: Self.config(parallelism: 1, delay: 2 * Sim.sec))
        try sim.run(steps: 4)
        #expect(sim.running.count == 3)
        sim.update { $0.task.process.args = ["2222"] }
        var most = 0
        try sim.run(steps: 40, until: { $0.service.updateStatus.state == .completed }) { s in
            let up = Set(s.running.filter { $0.spec == s.service.spec.task }.map(\.nodeID))
            let old = Set(s.running.filter { $0.spec != s.service.spec.task }.map(\.nodeID))
            most = max(most, 3 - up.union(old).count)
        }
        #expect(most <= 1, "one node at a time is without its task (saw \(most))")
        #expect(sim.service.updateStatus.state == .completed)
        #expect(Set(sim.running.filter { $0.spec.process.args == ["2222"] }.map(\.nodeID)) == ["a", "b", "c"])
        #expect(sim.runnable.count == 3)
    }
}
