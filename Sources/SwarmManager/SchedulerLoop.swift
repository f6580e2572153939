import Foundation
import Logging
import SwarmAPI
import SwarmPluginHost
import SwarmScheduler
import SwarmStore
import Synchronization

/// The leader's scheduler: keeps a ``PlacementEngine`` in step with the store, and after
/// each batch of commits places the pending tasks, grouped by service and spec version,
/// with the strategy the service names (or the cluster default), writing assignments in
/// batches. Tasks that fit nowhere stay PENDING with the explanation in their status.
public final class SchedulerLoop: Sendable {
    let store: MemoryStore
    let plugins: PluginRegistry
    let logger: Logger
    let timePluginCalls: Bool
    private let pluginTime = Mutex<(calls: Int, nanoseconds: UInt64)>((0, 0))

    /// - Parameter timePluginCalls: add up the time spent in strategy plugins (benchmarks).
    public init(store: MemoryStore, plugins: PluginRegistry, timePluginCalls: Bool = false,
                logger: Logger = Logger(label: "swarm.scheduler")) {
        self.store = store
        self.plugins = plugins
        self.timePluginCalls = timePluginCalls
        self.logger = logger
    }

    /// Strategy plugin calls so far and the time spent in them (when timed).
    public var pluginCallTime: (calls: Int, nanoseconds: UInt64) { pluginTime.withLock { $0 } }

    struct State {
        var engine = PlacementEngine()
        var scorers: [String: PluginScorer] = [:]
        /// Tasks the engine counts against their node.
        var accounted: Set<String> = []
        /// Tasks waiting for a node, as the watch last delivered them, so that a pass
        /// neither scans nor re-reads the task table.
        var pending: [String: SwarmTask] = [:]
    }

    /// Events the scheduler's watch may hold before it is closed (and the store re-read).
    static let watchLimit = 2_000_000

    static func isPending(_ t: SwarmTask) -> Bool {
        t.desiredState == .running && t.status.state.rawValue < SwarmTaskState.assigned.rawValue
    }

    static func holdsResources(_ t: SwarmTask) -> Bool {
        !t.nodeID.isEmpty && t.status.state.rawValue >= SwarmTaskState.assigned.rawValue
            && t.status.state.rawValue < SwarmTaskState.complete.rawValue
    }

    /// Runs until cancelled (when leadership is lost).
    public func run() async {
        while !Task.isCancelled {
            var state = State()
            // A pass commits its own assignments while the watch is not read, so the watch
            // must hold a pass's worth of events (one per task) without falling behind.
            let (view, watcher) = store.viewAndWatch(WatchFilter(tables: [.nodes, .tasks], commits: true), limit: Self.watchLimit)
            let nodes = view.all(SwarmNode.self)
            state.engine.reserveCapacity(nodes.count)
            for n in nodes { state.engine.setNode(n) }
            for t in view.all(SwarmTask.self) {
                if Self.holdsResources(t) {
                    state.engine.taskAssigned(t)
                    state.accounted.insert(t.id)
                } else if Self.isPending(t) {
                    state.pending[t.id] = t
                }
            }
            await schedule(&state)
            do {
                var changed = false
                for try await message in watcher {
                    switch message {
                    case .event(let e):
                        changed = true
                        track(e, &state)
                    case .commit:
                        if changed { await schedule(&state) }
                        changed = false
                    }
                }
            } catch {
                logger.warning("scheduler watch closed (\(error)); re-reading the store")
            }
        }
    }

    func track(_ e: StoreEvent, _ state: inout State) {
        switch e.object {
        case .node(let n):
            if e.kind == .deleted { state.engine.removeNode(n.id) } else { state.engine.setNode(n) }
        case .task(let t):
            state.pending[t.id] = e.kind != .deleted && Self.isPending(t) ? t : nil
            let holds = e.kind != .deleted && Self.holdsResources(t)
            if holds && !state.accounted.contains(t.id) {
                state.engine.taskAssigned(t)
                state.accounted.insert(t.id)
            } else if !holds && state.accounted.contains(t.id) {
                let old = e.old?.task ?? t
                state.engine.taskEnded(old, failed: t.status.state == .failed || t.status.state == .rejected)
                state.accounted.remove(t.id)
            }
        default:
            break
        }
    }

    func scorer(_ name: String, _ state: inout State) -> PluginScorer? {
        if let s = state.scorers[name] { return s }
        guard let strategy = plugins.strategy(name) else { return nil }
        let s = PluginScorer(strategy)
        s.timed = timePluginCalls
        state.scorers[name] = s
        return s
    }

    func schedule(_ state: inout State) async {
        // No read view is held across the pass: a commit applied while a view shares the
        // store's maps must copy the paths it changes.
        let pending = Array(state.pending.values)
        guard !pending.isEmpty else { return }
        let cluster = store.view().all(SwarmCluster.self).first
        let defaultStrategy = cluster?.spec.defaultStrategy ?? "spread"
        let defaultFilters = cluster?.spec.defaultFilters ?? []
        let assignedStatus = Self.assignedStatus(at: Int64(Date().timeIntervalSince1970 * 1e9))
        state.engine.assignedStatus = assignedStatus
        defer {
            state.engine.filters = PlacementFilter.pipeline
            state.engine.assignedStatus = nil
        }
        let groups = Dictionary(grouping: pending) { GroupKey(serviceID: $0.serviceID, specVersion: $0.specVersion) }
        var updates = UpdatePipeline(store: store)
        var prepared: Set<String> = []
        for key in groups.keys.sorted() {
            // Sorted by slot then ID, on keys read once (not through the messages' getters
            // at every comparison).
            let tasks = groups[key]!.map { (slot: $0.slot, id: $0.id, task: $0) }
                .sorted { ($0.slot, $0.id) < ($1.slot, $1.id) }.map(\.task)
            let first = tasks[0]
            let name = first.spec.strategy.isEmpty ? (defaultStrategy.isEmpty ? "spread" : defaultStrategy) : first.spec.strategy
            let req: TaskRequirements
            do {
                req = try TaskRequirements(serviceID: first.serviceID, serviceName: first.serviceAnnotations.name, spec: first.spec)
            } catch {
                for t in tasks { updates.add(pendingUpdate(t, "invalid placement: \(error)")) }
                continue
            }
            guard let scorer = scorer(name, &state) else {
                for t in tasks { updates.add(pendingUpdate(t, "strategy \"\(name)\" is not loaded on this manager")) }
                continue
            }
            if scorer.strategy.wantsPrepare && prepared.insert(name).inserted {
                let workload = Self.workload(state, pending: groups)
                scorer.prepare(&state.engine, workload: workload)
            }
            // Filter plugins: the cluster's defaults, then the service's own.
            var pluginFilters: [PlacementFilter] = []
            var missing: String?
            for f in defaultFilters + first.spec.filters where !pluginFilters.contains(where: { $0.name == f }) {
                guard let loaded = plugins.filter(f) else { missing = f; break }
                pluginFilters.append(.plugin(f, loaded))
            }
            if let missing {
                for t in tasks { updates.add(pendingUpdate(t, "filter \"\(missing)\" is not loaded on this manager")) }
                continue
            }
            state.engine.filters = PlacementFilter.pipeline + pluginFilters
            // Global tasks come pre-assigned to their node; they only need its approval.
            let (preassigned, free) = (tasks.filter { !$0.nodeID.isEmpty }, tasks.filter { $0.nodeID.isEmpty })
            for t in preassigned {
                guard let node = state.engine.nodes[t.nodeID] else { continue }
                if let failed = state.engine.filters.first(where: { !$0.passes(req, node) }) {
                    updates.add(pendingUpdate(t, "no suitable node (\(failed.explanation(req, rejected: 1)))"))
                } else {
                    state.engine.taskAssigned(t)
                    state.accounted.insert(t.id)
                    updates.add(assignedUpdate(t, assignedStatus))
                }
            }
            if free.isEmpty { continue }
            // Each assignment is queued for commit as soon as it is made.
            var placed = [Bool](repeating: false, count: free.count)
            let result = state.engine.place(free, requirements: req, scorer: scorer) { position, assigned in
                placed[position] = true
                updates.add(assigned)
            }
            // A plugin's bad answers are contained (the engine chose, or nothing was placed)
            // and logged, a few per pass.
            for why in result.refusedAnswers.prefix(3) { logger.warning("strategy \"\(name)\": \(why)") }
            if result.refusedAnswers.count > 3 {
                logger.warning("strategy \"\(name)\": \(result.refusedAnswers.count - 3) more refused answers in this pass")
            }
            for (position, t) in free.enumerated() {
                if placed[position] {
                    state.accounted.insert(t.id)
                } else if let why = result.unplaced[t.id], t.status.message != why {
                    updates.add(pendingUpdate(t, why, rejections: result.rejections))
                }
            }
        }
        if timePluginCalls {
            let (calls, nanos) = state.scorers.values.reduce((0, UInt64(0))) { ($0.0 + $1.pluginCalls, $0.1 + $1.pluginNanoseconds) }
            pluginTime.withLock { $0 = (calls, nanos) }
        }
        let outcome = await updates.finish()
        // Assignments the store refused, or did not get, are given back to their nodes;
        // the tasks are placed again after the next commit if they still wait.
        for u in outcome.skipped where u.status.state == .assigned && state.accounted.contains(u.id) {
            state.engine.taskEnded(u)
            state.accounted.remove(u.id)
        }
        guard let error = outcome.failure else { return }
        logger.debug("scheduler updates not fully applied: \(error)")
        let view = store.view()
        for u in updates.assignments where state.accounted.contains(u.id) && view.get(SwarmTask.self, id: u.id)?.nodeID != u.nodeID {
            state.engine.taskEnded(u)
            state.accounted.remove(u.id)
        }
    }

    /// The cluster's expected workload for strategies that ask for it: the shape of each
    /// service's tasks, running or waiting, weighted by how many there are.
    static func workload(_ state: State, pending: [GroupKey: [SwarmTask]]) -> [(TaskRequirements, Int)] {
        var counts: [GroupKey: (SwarmTask, Int)] = [:]
        for node in state.engine.nodes.values {
            for t in node.tasks.values { counts[GroupKey(serviceID: t.serviceID, specVersion: t.specVersion), default: (t, 0)].1 += 1 }
        }
        for (key, tasks) in pending { counts[key, default: (tasks[0], 0)].1 += tasks.count }
        return counts.keys.sorted().compactMap { key in
            let (t, n) = counts[key]!
            return (try? TaskRequirements(serviceID: t.serviceID, serviceName: t.serviceAnnotations.name, spec: t.spec)).map { ($0, n) }
        }
    }

    /// The tasks of one service at one spec version are placed together.
    struct GroupKey: Hashable, Comparable {
        var serviceID: String
        var specVersion: UInt64
        static func < (a: GroupKey, b: GroupKey) -> Bool { (a.serviceID, a.specVersion) < (b.serviceID, b.specVersion) }
    }

    /// The status of a task the scheduler assigns.
    static func assignedStatus(at now: Int64) -> SwarmTaskStatus {
        .with {
            $0.state = .assigned
            $0.message = "scheduler assigned task to node"
            $0.timestamp = now
        }
    }

    /// A task that came with its node (a global one), as assigned. The status is replaced
    /// whole, as SwarmKit's scheduler does.
    func assignedUpdate(_ t: SwarmTask, _ status: SwarmTaskStatus) -> SwarmTask {
        var u = t
        u.status = status
        return u
    }

    func pendingUpdate(_ t: SwarmTask, _ why: String, rejections: [String: Int] = [:]) -> SwarmTask {
        var u = t
        u.status.state = .pending
        u.status.message = why
        u.status.rejections = rejections.mapValues { UInt32(clamping: $0) }
        return u
    }
}
