import SwarmAPI

/// One scheduling pass, pure: the tasks waiting for a node in, a decision per task out.
///
/// The scheduler runs it on its engine after each batch of commits; a dry run runs it on a
/// copy of the engine, with strategy instances of its own. Both therefore place tasks the
/// same way: grouped by service and spec version (groups in key order, tasks by slot then
/// ID), each group with the strategy its spec names (else the cluster's default, else
/// `spread`), prepared once per pass when it asks for it, and with the built-in filters
/// followed by the cluster's and the service's filter plugins.
public enum PlacementPass {
    /// The tasks of one service at one spec version are placed together.
    public struct GroupKey: Hashable, Comparable, Sendable {
        public var serviceID: String
        public var specVersion: UInt64
        public init(serviceID: String, specVersion: UInt64) {
            self.serviceID = serviceID
            self.specVersion = specVersion
        }
        public static func < (a: GroupKey, b: GroupKey) -> Bool { (a.serviceID, a.specVersion) < (b.serviceID, b.specVersion) }
    }

    /// What the pass decided for one task.
    public enum Outcome: Sendable {
        /// The task as assigned: its node, its GPUs, and the assigned status when one was
        /// given.
        case assigned(SwarmTask)
        /// The task stays where it is, with the reason and the nodes each filter rejected.
        case pending(SwarmTask, reason: String, rejections: [String: Int])
    }

    /// The cluster's defaults for services that name no strategy or filters.
    public struct Defaults: Sendable {
        public var strategy: String
        public var filters: [String]
        public init(strategy: String = "spread", filters: [String] = []) {
            self.strategy = strategy
            self.filters = filters
        }
    }

    /// What the caller may want to log or count.
    public struct Report: Sendable {
        /// Strategy answers the engine refused, by strategy name.
        public var refusedAnswers: [(strategy: String, answer: String)] = []
        /// The strategies prepared in this pass.
        public var prepared: [String] = []
    }

    /// The strategy a task spec uses.
    public static func strategyName(_ spec: SwarmTaskSpec, defaults: Defaults) -> String {
        spec.strategy.isEmpty ? (defaults.strategy.isEmpty ? "spread" : defaults.strategy) : spec.strategy
    }

    /// Places `pending` on `engine`, reporting each decision through `onOutcome` as soon as
    /// it is made (assignments first, so that a caller can write them while the rest of a
    /// group is placed). Tasks that came with their node (global ones) only need its
    /// approval; one whose node is gone gets no outcome.
    ///
    /// - Parameters:
    ///   - scorer: the strategy of a name, or nil when none is loaded.
    ///   - filter: the filter plugin of a name, or nil when none is loaded.
    ///   - assignedStatus: the status assigned tasks get (replacing theirs whole); nil
    ///     leaves their status as it is.
    public static func run(_ engine: inout PlacementEngine, pending: [SwarmTask], defaults: Defaults,
                           assignedStatus: SwarmTaskStatus?,
                           scorer: (String) -> (any Scorer)?, filter: (String) -> PlacementFilter?,
                           onOutcome: (Outcome) -> Void) -> Report {
        var report = Report()
        guard !pending.isEmpty else { return report }
        let groups = Dictionary(grouping: pending) { GroupKey(serviceID: $0.serviceID, specVersion: $0.specVersion) }
        var prepared: Set<String> = []
        for key in groups.keys.sorted() {
            // Sorted by slot then ID, on keys read once (not through the messages' getters
            // at every comparison).
            let tasks = groups[key]!.map { (slot: $0.slot, id: $0.id, task: $0) }
                .sorted { ($0.slot, $0.id) < ($1.slot, $1.id) }.map(\.task)
            let first = tasks[0]
            func wait(_ why: String) { for t in tasks { onOutcome(.pending(t, reason: why, rejections: [:])) } }
            let name = strategyName(first.spec, defaults: defaults)
            let req: TaskRequirements
            do {
                req = try TaskRequirements(serviceID: first.serviceID, serviceName: first.serviceAnnotations.name, spec: first.spec)
            } catch {
                wait("invalid placement: \(error)")
                continue
            }
            guard let strategy = scorer(name) else {
                wait("strategy \"\(name)\" is not loaded on this manager")
                continue
            }
            if strategy.wantsPrepare && prepared.insert(name).inserted {
                strategy.prepare(&engine, workload: workload(engine, pending: groups))
                report.prepared.append(name)
            }
            // Filter plugins: the cluster's defaults, then the service's own.
            var filters = PlacementFilter.pipeline
            var names: [String] = []
            var missing: String?
            for f in defaults.filters + first.spec.filters where !names.contains(f) {
                guard let loaded = filter(f) else { missing = f; break }
                names.append(f)
                filters.append(loaded)
            }
            if let missing {
                wait("filter \"\(missing)\" is not loaded on this manager")
                continue
            }
            let (preassigned, free) = (tasks.filter { !$0.nodeID.isEmpty }, tasks.filter { $0.nodeID.isEmpty })
            for t in preassigned {
                guard let node = engine.nodes[t.nodeID] else { continue }
                if let failed = filters.first(where: { !$0.passes(req, node) }) {
                    onOutcome(.pending(t, reason: "no suitable node (\(failed.explanation(req, rejected: 1)))", rejections: [failed.name: 1]))
                } else {
                    var assigned = t
                    if let assignedStatus { assigned.status = assignedStatus }
                    engine.taskAssigned(assigned)
                    onOutcome(.assigned(assigned))
                }
            }
            if free.isEmpty { continue }
            var placed = [Bool](repeating: false, count: free.count)
            let result = engine.place(free, requirements: req, scorer: strategy, filters: filters, assignedStatus: assignedStatus) {
                position, assigned in
                placed[position] = true
                onOutcome(.assigned(assigned))
            }
            report.refusedAnswers += result.refusedAnswers.map { (name, $0) }
            for (position, t) in free.enumerated() where !placed[position] {
                onOutcome(.pending(t, reason: result.unplaced[t.id] ?? "no suitable node", rejections: result.rejections))
            }
        }
        return report
    }

    /// The cluster's expected workload for strategies that ask for it: the shape of each
    /// service's tasks, running or waiting, weighted by how many there are.
    static func workload(_ engine: PlacementEngine, pending: [GroupKey: [SwarmTask]]) -> [(TaskRequirements, Int)] {
        var counts: [GroupKey: (SwarmTask, Int)] = [:]
        for node in engine.nodes.values {
            for t in node.tasks.values { counts[GroupKey(serviceID: t.serviceID, specVersion: t.specVersion), default: (t, 0)].1 += 1 }
        }
        for (key, tasks) in pending { counts[key, default: (tasks[0], 0)].1 += tasks.count }
        return counts.keys.sorted().compactMap { key in
            let (t, n) = counts[key]!
            return (try? TaskRequirements(serviceID: t.serviceID, serviceName: t.serviceAnnotations.name, spec: t.spec)).map { ($0, n) }
        }
    }
}
