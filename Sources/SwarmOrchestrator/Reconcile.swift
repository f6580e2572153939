import SwarmAPI
import SwarmConstraints

/// The pure reconciliation of services: the store's state in, actions out. The shell
/// calls it when a service, one of its tasks, or a node changes, and when a wake-up time
/// it returned comes due.
///
/// Each slot (a replica number, or a node for global services) keeps one task made from
/// the service's current task template. A slot whose task was made from an older template
/// (or whose node no longer fits it) is *dirty*: the ``Updater`` decides which dirty slots
/// get their new task now, so that updates, constraint enforcement and rebalancing are
/// paced by the service's update policy. Everything the decisions depend on lives in the
/// store, so a new leader carries on where the old one stopped.
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

    /// A new task for `service` in `slot` (or on `nodeID`, for global services). A task
    /// that must wait (for a restart delay, or for its predecessor to stop) is made with
    /// desired state READY and released later.
    func makeTask(_ service: SwarmService, slot: UInt64, nodeID: String = "", startAfter: Int64 = 0,
                  afterPredecessors: Bool = false) -> SwarmTask {
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
        t.desiredState = startAfter > now || afterPredecessors ? .ready : .running
        return t
    }

    /// Why a running task is to be replaced by one the updater paces.
    public enum Replacement: Sendable, Equatable {
        /// Made from an older task template.
        case outdated
        /// Its node no longer satisfies its constraints or has no room for it.
        case misplaced
        /// A rebalance moves it.
        case rebalance
    }

    /// One slot's tasks and what the service wants of it.
    struct Slot {
        var slot: UInt64
        var nodeID: String
        var tasks: [SwarmTask]
        var wanted: Bool
        var mayCreate: Bool
    }

    /// A slot after the first phase: the actions it needs whatever the updater decides,
    /// its task made from the current template (if any), and the task that waits for the
    /// updater (if the slot is dirty).
    struct SlotPlan {
        var slot: Slot
        var actions: [OrchestratorAction] = []
        var current: SwarmTask?
        var created = false
        var dirty: (task: SwarmTask, reason: Replacement)?
    }

    /// Tasks the shell found out of place, by the reason to move them.
    public struct Moves: Sendable {
        public var misplaced: Set<String>
        public var rebalance: Set<String>
        public init(misplaced: Set<String> = [], rebalance: Set<String> = []) {
            self.misplaced = misplaced
            self.rebalance = rebalance
        }
    }

    /// Reconciles one service: its tasks and the nodes in, actions and a wake-up time out.
    public func reconcile(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode],
                          moves: Moves = Moves()) throws(PlacementError) -> ServicePass {
        let own = tasks.filter { $0.serviceID == service.id }
        let slots: [Slot]
        switch service.spec.mode {
        case .replicatedJob?, .globalJob?:
            return try reconcileJob(service, tasks: own, nodes: nodes)
        case .global?:
            slots = try globalSlots(service, tasks: own, nodes: nodes)
        case .replicated?, nil:
            slots = replicatedSlots(service, tasks: own)
        }
        var pass = ServicePass()
        let plans = slots.map { plan($0, service: service, nodes: nodes, moves: moves, pass: &pass) }
        let updater = Updater(service: service, now: now)
        let selected = updater.select(plans, tasks: own, pass: &pass)
        for i in selected { replace(plans[i], service: service, order: updater.config.order, pass: &pass) }
        for p in plans { pass.actions += p.actions }
        // Wake for delayed starts, existing or just created.
        for t in own where t.desiredState == .ready && t.startAfter > now { pass.wake(at: t.startAfter) }
        for case .create(let t) in pass.actions where t.startAfter > now { pass.wake(at: t.startAfter) }
        return pass
    }

    /// Replicated service: slots 1...replicas each keep one task; higher slots are removed.
    func replicatedSlots(_ service: SwarmService, tasks: [SwarmTask]) -> [Slot] {
        let replicas = service.spec.replicated.replicas
        let bySlot = Dictionary(grouping: tasks, by: \.slot)
        return Set(bySlot.keys).union(replicas > 0 ? Set(1...replicas) : []).sorted().map { slot in
            Slot(slot: slot, nodeID: "", tasks: bySlot[slot] ?? [], wanted: slot >= 1 && slot <= replicas, mayCreate: true)
        }
    }

    /// Global service: one task per node that is ready, active and satisfies the
    /// constraints. Paused nodes keep their task but get no new one.
    func globalSlots(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) throws(PlacementError) -> [Slot] {
        let constraints = try Constraint.parse(all: service.spec.task.placement.constraints)
        let byNode = Dictionary(grouping: tasks, by: \.nodeID)
        return Set(byNode.keys).union(nodes.keys).sorted().map { nodeID in
            let fit = fitness(nodeID, nodes)
            let satisfies = nodes[nodeID].map { n in constraints.allSatisfy { $0.matches(NodeFacts(n)) } } ?? false
            return Slot(slot: 0, nodeID: nodeID, tasks: byNode[nodeID] ?? [], wanted: fit != .gone && satisfies,
                        mayCreate: fit == .ok)
        }
    }

    /// Whether a task has started and passed its health check, if it has one.
    static func settled(_ t: SwarmTask) -> Bool {
        t.status.state == .running && (t.spec.healthcheck.test.isEmpty || t.status.health == .healthy)
    }

    /// Whether every other task of the slot has stopped (or will never start), so that
    /// a stop-first replacement may start.
    func predecessorsEnded(_ task: SwarmTask, in tasks: [SwarmTask], nodes: [String: SwarmNode]) -> Bool {
        tasks.allSatisfy { t in
            t.id == task.id || t.hasEnded || t.nodeID.isEmpty || fitness(t.nodeID, nodes) == .gone
        }
    }

    /// The first phase for one slot: removes unwanted tasks, moves tasks off nodes that
    /// are gone, applies the restart policy, keeps one occupant, and finds out whether the
    /// slot is dirty.
    func plan(_ slot: Slot, service: SwarmService, nodes: [String: SwarmNode], moves: Moves,
              pass: inout ServicePass) -> SlotPlan {
        var plan = SlotPlan(slot: slot)
        // Newest first: the task made last is the slot's current one.
        let occupying = slot.tasks.filter(\.isRunnable).sorted {
            ($0.meta.createdAt, $0.status.timestamp) > ($1.meta.createdAt, $1.status.timestamp)
        }
        guard slot.wanted else {
            plan.actions = occupying.map { .setDesired(taskID: $0.id, .remove) }
            return plan
        }
        var live: [SwarmTask] = []
        for t in occupying {
            if !t.nodeID.isEmpty, fitness(t.nodeID, nodes) == .gone {
                // Drained, down or removed node: move the task (not counted as a restart).
                plan.actions.append(.setDesired(taskID: t.id, .shutdown))
            } else {
                live.append(t)
            }
        }
        func reason(_ t: SwarmTask) -> Replacement? {
            if t.spec != service.spec.task { return .outdated }
            if moves.misplaced.contains(t.id) { return .misplaced }
            if moves.rebalance.contains(t.id) { return .rebalance }
            return nil
        }
        let fresh = live.filter { reason($0) == nil }
        let stale = live.filter { reason($0) != nil }
        if let current = fresh.first {
            plan.current = current
            // Until the current task is up, one running predecessor keeps the slot served
            // (a start-first replacement, or a task a rebalance is moving); the rest stop.
            let others = Array(fresh.dropFirst()) + stale
            let keep = Self.settled(current) ? nil : others.first { $0.status.state == .running }
            for other in others where other.id != keep?.id {
                plan.actions.append(.setDesired(taskID: other.id, .shutdown))
            }
            if current.hasEnded {
                restart(current, in: slot, service: service, plan: &plan)
            } else if current.desiredState == .ready && current.startAfter <= now
                && predecessorsEnded(current, in: slot.tasks, nodes: nodes) {
                plan.actions.append(.setDesired(taskID: current.id, .running))
            }
            return plan
        }
        for extra in stale.dropFirst() { plan.actions.append(.setDesired(taskID: extra.id, .shutdown)) }
        if let old = stale.first {
            if old.hasEnded {
                restart(old, in: slot, service: service, plan: &plan)
            } else if old.desiredState == .ready {
                // Never started: its replacement takes over its place (and its delay).
                plan.actions.append(.setDesired(taskID: old.id, .shutdown))
                create(makeTask(service, slot: slot.slot, nodeID: slot.nodeID, startAfter: old.startAfter), in: &plan)
            } else if slot.mayCreate, let why = reason(old) {
                plan.dirty = (old, why)
            }
            return plan
        }
        create(makeTask(service, slot: slot.slot, nodeID: slot.nodeID), in: &plan)
        return plan
    }

    func create(_ task: SwarmTask, in plan: inout SlotPlan) {
        guard plan.slot.mayCreate else { return }
        plan.actions.append(.create(task))
        plan.created = true
    }

    /// Applies the restart policy to a task that ended on its own.
    func restart(_ ended: SwarmTask, in slot: Slot, service: SwarmService, plan: inout SlotPlan) {
        let decision = RestartPolicy.decide(ended, policy: service.spec.task.restart, history: slot.tasks, now: now)
        guard decision.restart else { return }
        plan.actions.append(.setDesired(taskID: ended.id, .shutdown))
        create(makeTask(service, slot: slot.slot, nodeID: slot.nodeID, startAfter: decision.notBefore), in: &plan)
    }

    /// The second phase for a dirty slot the updater chose: stop-first shuts the old task
    /// down and makes a successor that starts once it has stopped; start-first starts the
    /// successor at once, and the first phase stops the old task once the successor runs.
    func replace(_ plan: SlotPlan, service: SwarmService, order: SwarmUpdateConfig.Order, pass: inout ServicePass) {
        guard let (old, _) = plan.dirty else { return }
        switch order {
        case .startFirst:
            pass.actions.append(.create(makeTask(service, slot: plan.slot.slot, nodeID: plan.slot.nodeID)))
        default:
            pass.actions.append(.setDesired(taskID: old.id, .shutdown))
            pass.actions.append(.create(makeTask(service, slot: plan.slot.slot, nodeID: plan.slot.nodeID,
                                                 afterPredecessors: true)))
        }
    }

    /// A removed service: every task is removed, its history too (the reaper deletes each
    /// once it has ended, and its node then releases what the executor kept, such as an
    /// exited container).
    public func serviceRemoved(tasks: [SwarmTask]) -> [OrchestratorAction] {
        tasks.filter { $0.desiredState != .remove }.map { .setDesired(taskID: $0.id, .remove) }
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
