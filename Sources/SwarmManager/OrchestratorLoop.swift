import Foundation
import Logging
import SwarmAPI
import SwarmOrchestrator
import SwarmStore

/// The leader's orchestrator: watches services, tasks and nodes, runs the pure
/// ``Reconciler`` for the services an event touches, and writes its actions in batches.
/// Also wakes up for delayed restarts and trims task history.
public final class OrchestratorLoop: Sendable {
    let store: MemoryStore
    let logger: Logger
    let clock: @Sendable () -> Int64
    /// Where a service's tasks would go if it were placed now (tasks per node), for
    /// rebalancing; nil when it cannot be worked out.
    let rebalanceTargets: @Sendable (SwarmService, ReadTx) -> [String: Int]?

    /// - Parameter rebalanceTargets: the target of a rebalance (see ``Rebalancer``); the
    ///   default never rebalances.
    public init(store: MemoryStore, logger: Logger = Logger(label: "swarm.orchestrator"),
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) },
                rebalanceTargets: @escaping @Sendable (SwarmService, ReadTx) -> [String: Int]? = { _, _ in nil }) {
        self.store = store
        self.logger = logger
        self.clock = clock
        self.rebalanceTargets = rebalanceTargets
    }

    enum Work: Sendable {
        case services(Set<String>, removed: Set<String>)
        case all
        /// A node joined, or became ready or active again.
        case nodeAvailable
    }

    /// Runs until cancelled (when leadership is lost). Store events and timer wake-ups feed
    /// one queue, so reconciliation passes never overlap.
    public func run() async {
        let (work, queue) = AsyncStream.makeStream(of: Work.self)
        let store = self.store
        let logger = self.logger
        let watch = Task {
            while !Task.isCancelled {
                let watcher = store.watch(WatchFilter(tables: [.services, .tasks, .nodes, .clusters], commits: true))
                queue.yield(.all)
                do {
                    var dirty: Set<String> = []
                    var removed: Set<String> = []
                    for try await message in watcher {
                        switch message {
                        case .event(let e):
                            switch e.object {
                            case .service(let s):
                                if e.kind == .deleted { removed.insert(s.id) } else { dirty.insert(s.id) }
                            case .task(let t):
                                if e.kind != .deleted { dirty.insert(t.serviceID) }
                            case .node(let n):
                                dirty.formUnion(store.view().find(SwarmService.self).map(\.id))
                                if Self.becameAvailable(n, was: e.old?.node) { queue.yield(.nodeAvailable) }
                            case .cluster:
                                dirty.formUnion(store.view().find(SwarmService.self).map(\.id))
                            default:
                                break
                            }
                        case .commit:
                            if !dirty.isEmpty || !removed.isEmpty { queue.yield(.services(dirty, removed: removed)) }
                            dirty = []
                            removed = []
                        }
                    }
                } catch {
                    logger.warning("orchestrator watch closed (\(error)); re-reading the store")
                }
            }
        }
        var timer: Task<Void, Never>?
        /// When the timer fires; a pass over some services must not push back a wake-up
        /// another service asked for earlier.
        var timerAt: Int64 = 0
        await withTaskCancellationHandler {
            for await item in work {
                let next: Int64?
                switch item {
                case .all:
                    next = await reconcile(services: Set(store.view().find(SwarmService.self).map(\.id)), removed: [])
                case .services(let dirty, let removed):
                    next = await reconcile(services: dirty, removed: removed)
                case .nodeAvailable:
                    await autoRebalance()
                    next = nil
                }
                let now = clock()
                if let next, timerAt <= now || next < timerAt {
                    // Wake when the earliest delayed start, update delay or monitor window ends.
                    timer?.cancel()
                    timerAt = next
                    let delay = max(0, next - now)
                    timer = Task {
                        try? await Task.sleep(for: .nanoseconds(delay + 1_000_000))
                        if !Task.isCancelled { queue.yield(.all) }
                    }
                }
            }
        } onCancel: {
            watch.cancel()
            queue.finish()
        }
        timer?.cancel()
        watch.cancel()
    }

    /// Whether a node event makes a node available for tasks: it joined ready, or became
    /// ready or active again.
    static func becameAvailable(_ node: SwarmNode, was old: SwarmNode?) -> Bool {
        let available = { (n: SwarmNode) in n.status.state == .ready && n.spec.availability == .active }
        return available(node) && !(old.map(available) ?? false)
    }

    /// With the cluster's auto-rebalance on, asks for a rebalance of every replicated
    /// service, as `service update --rebalance` does.
    func autoRebalance() async {
        guard store.view().find(SwarmCluster.self).first?.spec.orchestration.autoRebalance == true else { return }
        do {
            try await store.batch { batch in
                for s in store.view().find(SwarmService.self) {
                    guard case .replicated? = s.spec.mode else { continue }
                    try await batch.update { tx in
                        guard var s = tx.get(SwarmService.self, id: s.id) else { return }
                        s.spec.rebalance += 1
                        try tx.update(s)
                    }
                }
            }
        } catch {
            logger.debug("auto-rebalance not requested: \(error)")
        }
    }

    /// The tasks of `service` to move for the rebalance it asked for (none when none is
    /// asked for); records a finished rebalance in `actions`.
    func rebalanceMoves(_ service: SwarmService, tasks: [SwarmTask], view: ReadTx, actions: inout [OrchestratorAction]) -> Set<String> {
        guard service.spec.rebalance > service.updateStatus.rebalanced, case .replicated? = service.spec.mode,
              let targets = rebalanceTargets(service, view) else { return [] }
        let surplus = Rebalancer.surplus(service, tasks: tasks, targets: targets)
        if surplus.isEmpty && Rebalancer.isSettled(service, tasks: tasks) {
            actions.append(.markRebalanced(serviceID: service.id, service.spec.rebalance))
        }
        return surplus
    }

    /// Reconciles the given services; returns the earliest time at which one of them must
    /// be looked at again (a delayed start, an update delay or monitor window), if any.
    @discardableResult
    func reconcile(services: Set<String>, removed: Set<String>) async -> Int64? {
        let view = store.view()
        let now = clock()
        let reconciler = Reconciler(now: now) { Identifiers.make() }
        let nodes = Dictionary(uniqueKeysWithValues: view.find(SwarmNode.self).map { ($0.id, $0) })
        let retention = Int(view.find(SwarmCluster.self).first?.spec.orchestration.taskHistoryRetentionLimit ?? 5)
        // The enforcer looks at one node at a time: only the nodes that hold the tasks of
        // the services in this pass are read, not every task of the cluster.
        let touched = Set(services.flatMap { view.find(SwarmTask.self, .service($0)).map(\.nodeID) }).subtracting([""])
        let misplaced = ConstraintEnforcer.misplaced(tasks: touched.flatMap { view.find(SwarmTask.self, .node($0)) }, nodes: nodes)
        var actions: [OrchestratorAction] = []
        var nextWake: Int64?
        for id in services.sorted() {
            let tasks = view.find(SwarmTask.self, .service(id))
            guard let service = view.get(SwarmService.self, id: id) else {
                actions += reconciler.serviceRemoved(tasks: tasks) + reconciler.reap(tasks: tasks, retention: retention)
                continue
            }
            let moves = Reconciler.Moves(misplaced: misplaced,
                                         rebalance: rebalanceMoves(service, tasks: tasks, view: view, actions: &actions))
            do {
                let pass = try reconciler.reconcile(service, tasks: tasks, nodes: nodes, moves: moves)
                actions += pass.actions
                if let wake = pass.wake { nextWake = min(nextWake ?? .max, wake) }
            } catch {
                logger.error("service \(service.spec.annotations.name): \(error)")
            }
            actions += reconciler.reap(tasks: tasks, retention: retention)
        }
        for id in removed.sorted() { actions += reconciler.serviceRemoved(tasks: view.find(SwarmTask.self, .service(id))) }
        guard !actions.isEmpty else { return nextWake }
        do {
            try await store.batch { batch in
                for action in actions {
                    try await batch.update { tx in
                        switch action {
                        case .create(let t):
                            try tx.create(t)
                        case .setDesired(let id, let state):
                            guard var t = tx.get(SwarmTask.self, id: id), t.desiredState.rawValue < state.rawValue else { return }
                            t.desiredState = state
                            try tx.update(t)
                        case .delete(let id):
                            if tx.get(SwarmTask.self, id: id) != nil { try tx.delete(SwarmTask.self, id: id) }
                        case .setUpdateStatus(let id, let version, let status):
                            guard var s = tx.get(SwarmService.self, id: id), s.specVersion == version else { return }
                            s.updateStatus = status
                            try tx.update(s)
                        case .markRebalanced(let id, let counter):
                            guard var s = tx.get(SwarmService.self, id: id), s.updateStatus.rebalanced < counter else { return }
                            s.updateStatus.rebalanced = counter
                            try tx.update(s)
                        case .rollback(let id, let version, let status):
                            guard var s = tx.get(SwarmService.self, id: id), s.specVersion == version, s.hasPreviousSpec else { return }
                            (s.spec, s.previousSpec) = (s.previousSpec, s.spec)
                            s.specVersion += 1
                            s.updateStatus = status
                            try tx.update(s)
                        }
                    }
                }
            }
        } catch {
            // A conflict means the world moved on; the next event reconciles again.
            logger.debug("orchestrator batch not applied: \(error)")
        }
        return nextWake
    }
}
