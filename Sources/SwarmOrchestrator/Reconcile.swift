import SwarmAPI
import SwarmConstraints

/// The pure reconciliation of replicated and global services: the store's state in,
/// actions out. The shell calls it when a service, one of its tasks, or a node changes.
public struct Reconciler {
    /// Makes new task IDs; injected so that tests and simulations are deterministic.
    public var newID: () -> String
    public var now: Int64

    public init(now: Int64, newID: @escaping () -> String) {
        self.now = now
        self.newID = newID
    }

    /// Why a node cannot keep (or get) tasks.
    enum NodeFitness { case ok, paused, gone }

    func fitness(_ nodeID: String, _ nodes: [String: SwarmNode]) -> NodeFitness {
        guard let n = nodes[nodeID] else { return .gone }
        if n.status.state == .down || n.spec.availability == .drain { return .gone }
        if n.spec.availability == .pause { return .paused }
        return .ok
    }

    /// A new task for `service` in `slot` (or on `nodeID`, for global services).
    func makeTask(_ service: SwarmService, slot: UInt64, nodeID: String = "", startAfter: Int64 = 0) -> SwarmTask {
        var t = SwarmTask()
        t.id = newID()
        t.serviceID = service.id
        t.slot = slot
        t.nodeID = nodeID
        t.spec = service.spec.task
        t.specVersion = service.specVersion
        t.serviceAnnotations = service.spec.annotations
        t.status.state = .new
        t.status.timestamp = now
        t.status.message = "created"
        t.startAfter = startAfter
        t.desiredState = startAfter > now ? .ready : .running
        return t
    }

    /// Handles one slot (or one node, for global services): ends tasks on nodes that are
    /// gone, applies the restart policy to ended tasks, releases delayed restarts, and
    /// keeps exactly one task occupying the slot. `wanted` says whether the slot should
    /// exist; `makeReplacement` creates its new task.
    func reconcileSlot(_ tasks: [SwarmTask], service: SwarmService, nodes: [String: SwarmNode], wanted: Bool,
                       makeReplacement: (Int64) -> SwarmTask?) -> [OrchestratorAction] {
        var actions: [OrchestratorAction] = []
        var occupying = tasks.filter(\.isRunnable).sorted { $0.status.timestamp > $1.status.timestamp }
        if !wanted {
            return occupying.map { .setDesired(taskID: $0.id, .remove) }
        }
        // Keep one occupant; a second one (after a leader change, say) is shut down.
        for extra in occupying.dropFirst() { actions.append(.setDesired(taskID: extra.id, .shutdown)) }
        occupying = Array(occupying.prefix(1))
        guard let current = occupying.first else {
            if let t = makeReplacement(0) { actions.append(.create(t)) }
            return actions
        }
        if !current.nodeID.isEmpty, fitness(current.nodeID, nodes) == .gone {
            // Drained, down or removed node: move the task (not counted as a restart).
            actions.append(.setDesired(taskID: current.id, .shutdown))
            if let t = makeReplacement(0) { actions.append(.create(t)) }
            return actions
        }
        if current.hasEnded {
            let decision = RestartPolicy.decide(current, policy: service.spec.task.restart, history: tasks, now: now)
            if decision.restart {
                actions.append(.setDesired(taskID: current.id, .shutdown))
                if let t = makeReplacement(decision.notBefore) { actions.append(.create(t)) }
            }
            return actions
        }
        if current.desiredState == .ready && current.startAfter <= now {
            actions.append(.setDesired(taskID: current.id, .running))
        }
        return actions
    }

    /// Replicated service: slots 1...replicas each keep one task; higher slots are removed.
    public func reconcileReplicated(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) -> [OrchestratorAction] {
        let replicas = service.spec.replicated.replicas
        let bySlot = Dictionary(grouping: tasks.filter { $0.serviceID == service.id }, by: \.slot)
        var actions: [OrchestratorAction] = []
        for slot in Set(bySlot.keys).union(replicas > 0 ? Set(1...replicas) : []).sorted() {
            let wanted = slot >= 1 && slot <= replicas
            actions += reconcileSlot(bySlot[slot] ?? [], service: service, nodes: nodes, wanted: wanted) { startAfter in
                makeTask(service, slot: slot, startAfter: startAfter)
            }
        }
        return actions
    }

    /// Global service: one task per node that is ready, active and satisfies the
    /// constraints. Paused nodes keep their task but get no new one.
    public func reconcileGlobal(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) throws(PlacementError) -> [OrchestratorAction] {
        let constraints = try Constraint.parse(all: service.spec.task.placement.constraints)
        let byNode = Dictionary(grouping: tasks.filter { $0.serviceID == service.id }, by: \.nodeID)
        var actions: [OrchestratorAction] = []
        for nodeID in Set(byNode.keys).union(nodes.keys).sorted() {
            let fit = fitness(nodeID, nodes)
            let satisfies = nodes[nodeID].map { n in constraints.allSatisfy { $0.matches(NodeFacts(n)) } } ?? false
            let wanted = fit != .gone && satisfies
            let existing = byNode[nodeID] ?? []
            let mayCreate = fit == .ok
            actions += reconcileSlot(existing, service: service, nodes: nodes, wanted: wanted) { startAfter in
                mayCreate ? makeTask(service, slot: 0, nodeID: nodeID, startAfter: startAfter) : nil
            }
        }
        return actions
    }

    /// A removed service: every task that still occupies a slot is removed.
    public func serviceRemoved(tasks: [SwarmTask]) -> [OrchestratorAction] {
        tasks.filter(\.isRunnable).map { .setDesired(taskID: $0.id, .remove) }
    }

    /// Task history: per slot, keeps the `retention` newest ended tasks and deletes older
    /// ones; deletes removed tasks once they have ended.
    public func reap(tasks: [SwarmTask], retention: Int = 5) -> [OrchestratorAction] {
        var actions: [OrchestratorAction] = []
        let groups = Dictionary(grouping: tasks) { "\($0.serviceID)/\($0.slot == 0 ? $0.nodeID : String($0.slot))" }
        for key in groups.keys.sorted() {
            let group = groups[key]!
            for t in group where t.desiredState == .remove && t.hasEnded { actions.append(.delete(taskID: t.id)) }
            let dead = group.filter { !$0.isRunnable && $0.hasEnded && $0.desiredState != .remove }
                .sorted { $0.status.timestamp > $1.status.timestamp }
            for t in dead.dropFirst(max(0, retention)) { actions.append(.delete(taskID: t.id)) }
        }
        return actions
    }
}
