import Foundation
import Logging
import SwarmAPI
import SwarmPluginHost
import SwarmScheduler
import SwarmStore
import SwiftProtobuf
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
                if t.holdsResources {
                    state.engine.taskAssigned(t)
                    state.accounted.insert(t.id)
                } else if t.isWaitingForNode {
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
            state.pending[t.id] = e.kind != .deleted && t.isWaitingForNode ? t : nil
            let holds = e.kind != .deleted && t.holdsResources
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

    func scorer(_ name: String, _ scorers: inout [String: PluginScorer]) -> PluginScorer? {
        if let s = scorers[name] { return s }
        guard let strategy = plugins.strategy(name) else { return nil }
        let s = PluginScorer(strategy)
        s.timed = timePluginCalls
        scorers[name] = s
        return s
    }

    func schedule(_ state: inout State) async {
        // No read view is held across the pass: a commit applied while a view shares the
        // store's maps must copy the paths it changes.
        let pending = Array(state.pending.values)
        guard !pending.isEmpty else { return }
        let cluster = store.view().all(SwarmCluster.self).first
        let defaults = PlacementPass.Defaults(strategy: cluster?.spec.defaultStrategy ?? "spread",
                                              filters: cluster?.spec.defaultFilters ?? [])
        let assignedStatus = Self.assignedStatus(at: Int64(Date().timeIntervalSince1970 * 1e9))
        var updates = UpdatePipeline(store: store)
        // Each decision is queued for commit as soon as it is made.
        var scorers = state.scorers
        var accounted = state.accounted
        let report = PlacementPass.run(&state.engine, pending: pending, defaults: defaults, assignedStatus: assignedStatus,
                                       scorer: { name in scorer(name, &scorers) },
                                       filter: { name in plugins.filter(name).map { .plugin(name, $0) } }) { outcome in
            switch outcome {
            case .assigned(let t):
                accounted.insert(t.id)
                updates.add(t)
            case .pending(let t, let why, let rejections):
                // A task that already says why it waits is not written again.
                if t.status.message != why || t.status.state != .pending { updates.add(pendingUpdate(t, why, rejections: rejections)) }
            }
        }
        state.scorers = scorers
        state.accounted = accounted
        // A plugin's bad answers are contained (the engine chose, or nothing was placed)
        // and logged, a few per pass and strategy.
        for (name, answers) in Dictionary(grouping: report.refusedAnswers, by: \.strategy) {
            for a in answers.prefix(3) { logger.warning("strategy \"\(name)\": \(a.answer)") }
            if answers.count > 3 { logger.warning("strategy \"\(name)\": \(answers.count - 3) more refused answers in this pass") }
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

    /// The status of a task the scheduler assigns.
    static func assignedStatus(at now: Int64) -> SwarmTaskStatus {
        .with {
            $0.state = .assigned
            $0.message = "scheduler assigned task to node"
            $0.timestamp = now
        }
    }

    func pendingUpdate(_ t: SwarmTask, _ why: String, rejections: [String: Int] = [:]) -> SwarmTask {
        var u = t
        u.status.state = .pending
        u.status.message = why
        u.status.rejections = rejections.mapValues { UInt32(clamping: $0) }
        return u
    }
}
