import SwarmAPI
import SwarmConstraints
/// A built-in placement filter: a check and the text that explains its rejections.
public struct PlacementFilter: Sendable {
    public let name: String
    let check: @Sendable (TaskRequirements, NodeInfo) -> Bool
    let explain: @Sendable (TaskRequirements, Int) -> String

    /// A filter from its name, its check, and the explanation for `n` rejected nodes.
    public init(name: String, check: @escaping @Sendable (TaskRequirements, NodeInfo) -> Bool,
                explain: @escaping @Sendable (TaskRequirements, Int) -> String) {
        self.name = name
        self.check = check
        self.explain = explain
    }

    public func passes(_ task: TaskRequirements, _ node: NodeInfo) -> Bool { check(task, node) }
    public func explanation(_ task: TaskRequirements, rejected: Int) -> String { explain(task, rejected) }

    static func nodes(_ n: Int) -> String { n == 1 ? "1 node" : "\(n) nodes" }

    /// Ready, active nodes only (paused and drained nodes take no new tasks).
    public static let ready = PlacementFilter(name: "ready", check: { _, n in
        n.ready && n.availability == .active
    }, explain: { _, n in "\(nodes(n)) not available" })

    public static let resources = PlacementFilter(name: "resources", check: { t, n in
        if t.nanoCPUs > n.freeNanoCPUs || t.memoryBytes > n.freeMemoryBytes { return false }
        for (kind, want) in t.generic where (n.genericFree[kind] ?? 0) < want { return false }
        return true
    }, explain: { _, n in "insufficient resources on \(nodes(n))" })

    public static let constraints = PlacementFilter(name: "constraints", check: { t, n in
        t.constraints.allSatisfy { $0.matches(n) }
    }, explain: { _, n in "scheduling constraints not satisfied on \(nodes(n))" })

    public static let executor = PlacementFilter(name: "executor", check: { t, n in
        n.executors.contains(t.runtime)
    }, explain: { t, n in "runtime \"\(t.runtime)\" not available on \(nodes(n))" })

    public static let maxReplicas = PlacementFilter(name: "max-replicas", check: { t, n in
        t.maxReplicasPerNode == 0 || UInt64(n.tasksByService[t.serviceID] ?? 0) < t.maxReplicasPerNode
    }, explain: { _, n in "max replicas per node reached on \(nodes(n))" })

    public static let hostPorts = PlacementFilter(name: "host-ports", check: { t, n in
        t.hostPorts.allSatisfy { !n.usedHostPorts.contains($0) }
    }, explain: { _, n in "host-mode port already in use on \(nodes(n))" })

    /// GPUs: enough of an allowed model, with the memory asked for, each with the share free.
    public static let gpus = PlacementFilter(name: "gpus", check: { t, n in n.gpusFit(t) },
                                             explain: { _, n in "insufficient GPUs on \(nodes(n))" })

    /// The built-in pipeline, in the order rejections are attributed.
    public static let pipeline: [PlacementFilter] = [ready, executor, resources, gpus, constraints, maxReplicas, hostPorts]
}
