import HeapModule
import SwarmAPI
import SwiftProtobuf

/// Ranks feasible nodes. Higher is better; nil or a non-finite value leaves the node out.
public protocol Scorer {
    func score(_ task: TaskRequirements, _ node: NodeInfo) -> Double?
    /// The GPUs (positions in `node.gpus`) a task gets on the node chosen for it, or nil
    /// for the engine's choice. An answer that does not fit is ignored.
    func assignDevices(_ task: TaskRequirements, _ node: NodeInfo) -> [Int]?
    /// Whether the scorer places whole groups through ``placeGroup(_:count:feasible:)``.
    var placesGroups: Bool { get }
    /// Places a whole group at once, for decisions that concern the group (gang
    /// placement): for each of the `count` tasks, a position in `feasible` or nil (not
    /// placed). Nil instead of an answer lets the engine place the group task by task.
    func placeGroup(_ task: TaskRequirements, count: Int, feasible: [NodeInfo]) -> [Int?]?
    /// Whether the scorer wants ``prepare(_:workload:)`` before its first score of a pass.
    var wantsPrepare: Bool { get }
    /// Starts a pass: the scorer sees every node (in ID order) and the expected workload,
    /// the shape of each service's tasks with how many there are. Called at most once per
    /// pass, before any score; it changes nothing in the engine.
    func prepare(_ engine: inout PlacementEngine, workload: [(TaskRequirements, Int)])
}

extension Scorer {
    public var wantsPrepare: Bool { false }
    public func prepare(_ engine: inout PlacementEngine, workload: [(TaskRequirements, Int)]) {}
    public func assignDevices(_ task: TaskRequirements, _ node: NodeInfo) -> [Int]? { nil }
    public var placesGroups: Bool { false }
    public func placeGroup(_ task: TaskRequirements, count: Int, feasible: [NodeInfo]) -> [Int?]? { nil }
}

/// The outcome of placing a group of tasks.
public struct PlacementResult: Sendable {
    /// Task ID -> node ID, in the order the tasks were given.
    public var assignments: [(task: String, node: String)] = []
    /// Task ID -> why it could not be placed.
    public var unplaced: [String: String] = [:]
    /// Filter name -> nodes it rejected.
    public var rejections: [String: Int] = [:]
    /// Task ID -> the GPUs it was given.
    public var gpus: [String: [SwarmAssignedGPU]] = [:]
    /// Answers from the strategy plugin that were refused (GPU choices that do not fit, a
    /// group placement that does not hold), for the caller to log.
    public var refusedAnswers: [String] = []
}

/// The pure placement core: node state in, assignments out. No clock, no I/O.
///
/// Placement of a group (tasks of one service and spec version) filters every node once,
/// then takes the best node from a heap for each task, re-scoring only the node that just
/// received a task: O(n) for the first pass and O(log n) per task.
public struct PlacementEngine: Sendable {
    public internal(set) var nodes: [String: NodeInfo] = [:]
    private var sortedIDs: [String]?

    public init() {}

    /// Adds or refreshes a node, keeping the tasks already accounted on it.
    public mutating func setNode(_ node: SwarmNode) {
        if let at = nodes.index(forKey: node.id) {
            var info = NodeInfo(node: node)
            let old = nodes.values[at]
            for task in old.tasks.values.sorted(by: { $0.id < $1.id }) { info.add(task) }
            info.recentFailures = old.recentFailures
            nodes.values[at] = info
        } else {
            sortedIDs = nil
            nodes[node.id] = NodeInfo(node: node)
        }
    }

    /// Makes room for `count` nodes (before loading a whole cluster).
    public mutating func reserveCapacity(_ count: Int) { nodes.reserveCapacity(count) }

    public mutating func removeNode(_ id: String) {
        if nodes.removeValue(forKey: id) != nil { sortedIDs = nil }
    }

    /// The node IDs in order, kept until a node comes or goes.
    mutating func orderedIDs() -> [String] {
        if let ids = sortedIDs { return ids }
        let ids = nodes.keys.sorted()
        sortedIDs = ids
        return ids
    }

    /// Calls `body` with every node in ID order, each read where the engine stores it (the
    /// dictionary's getter would copy it: a retain and a release of each of its tables).
    public mutating func visitNodesInIDOrder(_ body: (borrowing NodeInfo) -> Void) {
        for id in orderedIDs() {
            guard let at = nodes.index(forKey: id) else { continue }
            Self.visit(&nodes.values[at], body)
        }
    }

    private static func visit(_ node: inout NodeInfo, _ body: (borrowing NodeInfo) -> Void) { body(node) }

    /// Accounts for a task assigned to a node (on start-up, or by another scheduler pass).
    public mutating func taskAssigned(_ task: SwarmTask) {
        guard !task.nodeID.isEmpty else { return }
        nodes[task.nodeID]?.add(task)
    }

    /// Returns a task's resources to its node when it ends.
    public mutating func taskEnded(_ task: SwarmTask, failed: Bool = false) {
        guard !task.nodeID.isEmpty else { return }
        nodes[task.nodeID]?.remove(task)
        if failed { nodes[task.nodeID]?.recentFailures[task.serviceID, default: 0] += 1 }
    }

    struct Candidate: Comparable {
        var score: Double
        var node: String
        // Higher score first; on ties the lower node ID, so results are deterministic.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.score != b.score ? a.score < b.score : a.node > b.node
        }
    }

    /// Places `tasks` (all with `requirements`), updating node state for each assignment.
    ///
    /// - Parameters:
    ///   - filters: the filters a node must pass, in the order rejections are attributed
    ///     (the built-in pipeline, then any plugin filters).
    ///   - assignedStatus: when given, the status an assigned task gets along with its node
    ///     (replacing its status whole), so that the task is changed once, not once here
    ///     and again by the caller.
    ///   - onAssign: called with each task's position in `tasks` and the task as assigned
    ///     (node and GPUs set) as soon as it is placed, so that a caller can start writing
    ///     assignments while the rest of the group is being placed.
    public mutating func place(_ tasks: [SwarmTask], requirements req: TaskRequirements, scorer: some Scorer,
                               filters: [PlacementFilter] = PlacementFilter.pipeline, assignedStatus: SwarmTaskStatus? = nil,
                               onAssign: (Int, SwarmTask) -> Void = { _, _ in }) -> PlacementResult {
        let pass = Pass(filters: filters, assignedStatus: assignedStatus)
        if scorer.placesGroups, let grouped = placeAsGroup(tasks, requirements: req, scorer: scorer, pass, onAssign: onAssign) {
            return grouped
        }
        var result = PlacementResult()
        // One heap per branch of the preference tree (a single branch without preferences).
        let levels = req.spreadLabels
        func branch(_ node: NodeInfo) -> [String] { levels.map { node.labels[$0] ?? "" } }
        var heaps: [[String]: Heap<Candidate>] = [:]
        // Tasks of the service under each prefix of the tree, to keep the branches even.
        var counts: [[String]: Int] = [:]
        if !levels.isEmpty {
            for node in nodes.values {
                let b = branch(node)
                let c = node.tasksByService[req.serviceID] ?? 0
                for k in 0...b.count { counts[Array(b.prefix(k)), default: 0] += c }
            }
        }
        /// SwarmKit's decision tree: at each level the value with the fewest tasks of the
        /// service (then the smallest value) among branches that still have nodes.
        func chooseBranch() -> [String]? {
            if levels.isEmpty { return heaps[[]]?.isEmpty == false ? [] : nil }
            var prefix: [String] = []
            for level in 0..<levels.count {
                var options = Set<String>()
                for (b, h) in heaps where !h.isEmpty && Array(b.prefix(level)) == prefix { options.insert(b[level]) }
                guard let v = options.min(by: { (counts[prefix + [$0]] ?? 0, $0) < (counts[prefix + [$1]] ?? 0, $1) }) else { return nil }
                prefix.append(v)
            }
            return prefix
        }
        // In node ID order, so that a strategy with state of its own (a seeded random one)
        // sees the same calls on every run; each node is borrowed through its index rather
        // than copied (a copy costs a retain and release of each of its tables).
        for id in orderedIDs() {
            guard let at = nodes.index(forKey: id) else { continue }
            let verdict = judge(at, req, scorer, pass)
            if let failed = verdict.refusedBy {
                result.rejections[failed.name, default: 0] += 1
                continue
            }
            guard let s = verdict.score, s.isFinite else {
                result.rejections["strategy", default: 0] += 1
                continue
            }
            let key = levels.isEmpty ? [] : branch(nodes.values[at])
            heaps[key, default: Heap()].insert(Candidate(score: s, node: nodes.keys[at]))
        }
        var explanation: String?
        for (position, task) in tasks.enumerated() {
            var placed = false
            while let path = chooseBranch(), let best = heaps[path]!.popMax() {
                // The node is read through its index (borrowed, not copied) and changed in
                // place: a NodeInfo copy costs a retain and release of each of its tables.
                guard let at = nodes.index(forKey: best.node) else { continue }
                // No filter needs to run again here: a node is put back in the heap only
                // after it was judged anew, as it is after its last assignment.
                guard assign(task, position: position, to: at, req, scorer, pass, &result, onAssign) else { continue }
                let verdict = judge(at, req, scorer, pass)
                if verdict.refusedBy == nil, let s = verdict.score, s.isFinite {
                    heaps[path]!.insert(Candidate(score: s, node: best.node))
                }
                if !levels.isEmpty { for k in 0...path.count { counts[Array(path.prefix(k)), default: 0] += 1 } }
                placed = true
                break
            }
            if !placed {
                // Every node now refuses this group; explain with the nodes as they are.
                if explanation == nil {
                    var now: [String: Int] = [:]
                    for node in nodes.values {
                        if let failed = filters.first(where: { !$0.passes(req, node) }) { now[failed.name, default: 0] += 1 }
                    }
                    now["strategy"] = result.rejections["strategy"]
                    explanation = explain(now, req, filters: filters)
                }
                result.unplaced[task.id] = explanation
            }
        }
        return result
    }

    /// The filters and the assigned status of one ``place(_:requirements:scorer:filters:assignedStatus:onAssign:)``.
    struct Pass {
        var filters: [PlacementFilter]
        var assignedStatus: SwarmTaskStatus?
    }

    /// What ``judge(_:_:_:_:score:)`` found: the first filter that refuses the node, else the
    /// strategy's score (nil when it leaves the node out, or when not asked for).
    struct Verdict {
        var refusedBy: PlacementFilter?
        var score: Double?
    }

    /// Runs the filters, then the strategy, on the node at `at` where it is stored. The node
    /// is reached through the dictionary's modify accessor, not its getter, because the
    /// getter returns a copy (a retain and a release of each of the node's tables, several
    /// times per node with a filter pipeline). Nothing is changed.
    mutating func judge(_ at: Dictionary<String, NodeInfo>.Index, _ req: TaskRequirements, _ scorer: some Scorer,
                        _ pass: Pass, score: Bool = true) -> Verdict {
        Self.judge(&nodes.values[at], pass.filters, req, scorer, score)
    }

    private static func judge(_ node: inout NodeInfo, _ filters: [PlacementFilter], _ req: TaskRequirements,
                              _ scorer: some Scorer, _ score: Bool) -> Verdict {
        for f in filters where !f.passes(req, node) { return Verdict(refusedBy: f) }
        return Verdict(score: score ? scorer.score(req, node) : nil)
    }

    /// Gives `task` to the node at `at`: chooses its GPUs (the scorer's choice when it is a
    /// valid one, else the engine's), accounts it on the node and reports it. False when
    /// the node has no GPUs left for it.
    mutating func assign(_ task: SwarmTask, position: Int, to at: Dictionary<String, NodeInfo>.Index, _ req: TaskRequirements,
                         _ scorer: some Scorer, _ pass: Pass, _ result: inout PlacementResult,
                         _ onAssign: (Int, SwarmTask) -> Void) -> Bool {
        var assigned = task
        assigned.nodeID = nodes.keys[at]
        if let status = pass.assignedStatus { assigned.status = status }
        if req.gpuCount > 0 {
            let chosen = nodes.values[at]
            let candidates = Set(chosen.candidateGPUs(req))
            var devices = scorer.assignDevices(req, chosen)
            if let d = devices, d.count != Int(req.gpuCount) || Set(d).count != d.count || !d.allSatisfy(candidates.contains) {
                // An answer that does not fit: the engine chooses.
                result.refusedAnswers.append("GPUs \(d) for task \(task.id) on node \(chosen.id) do not fit its request")
                devices = nil
            }
            guard let picked = devices ?? chosen.defaultGPUs(req) else { return false }
            assigned.assignedGpus = picked.map { i in
                SwarmAssignedGPU.with { $0.uuid = chosen.gpus[i].uuid; $0.index = chosen.gpus[i].index; $0.milli = req.gpuMilli }
            }
            result.gpus[task.id] = assigned.assignedGpus
        }
        // Changed in place: a NodeInfo copy costs a retain and release of each of its tables.
        nodes.values[at].add(assigned, req)
        result.assignments.append((task.id, assigned.nodeID))
        onAssign(position, assigned)
        return true
    }

    /// "no suitable node (insufficient resources on 2 nodes; 1 node not available)": the
    /// reasons by how many nodes they cover, most first.
    public func explain(_ rejections: [String: Int], _ req: TaskRequirements,
                        filters: [PlacementFilter] = PlacementFilter.pipeline) -> String {
        var parts: [(count: Int, order: Int, text: String)] = []
        for (k, f) in filters.enumerated() {
            if let n = rejections[f.name], n > 0 { parts.append((n, k, f.explanation(req, rejected: n))) }
        }
        if let n = rejections["strategy"], n > 0 {
            parts.append((n, filters.count, "rejected by the strategy on \(PlacementFilter.nodes(n))"))
        }
        if nodes.isEmpty { return "no suitable node (no nodes in the cluster)" }
        parts.sort { $0.count != $1.count ? $0.count > $1.count : $0.order < $1.order }
        return parts.isEmpty ? "no suitable node" : "no suitable node (\(parts.map(\.text).joined(separator: "; ")))"
    }
}

