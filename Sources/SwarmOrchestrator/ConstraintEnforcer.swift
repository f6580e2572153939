import SwarmAPI
import SwarmConstraints

/// Finds replicated tasks that no longer fit their node, so that the reconciler moves
/// them (paced by the service's update policy): the node's labels or role no longer
/// satisfy the task's constraints, or the node's CPU or memory shrank below what its tasks
/// reserve. In the second case the tasks placed last are moved first.
///
/// Global services are not covered here: their slots follow the nodes that fit.
public enum ConstraintEnforcer {
    public static func misplaced(tasks: [SwarmTask], nodes: [String: SwarmNode]) -> Set<String> {
        var out: Set<String> = []
        var parsed: [[String]: [Constraint]] = [:]
        let placed = tasks.filter { $0.slot > 0 && $0.isRunnable && !$0.hasEnded && !$0.nodeID.isEmpty }
        for (nodeID, onNode) in Dictionary(grouping: placed, by: \.nodeID) {
            guard let node = nodes[nodeID] else { continue }
            let facts = NodeFacts(node)
            var keep: [SwarmTask] = []
            for t in onNode {
                let expressions = t.spec.placement.constraints
                if parsed[expressions] == nil { parsed[expressions] = (try? Constraint.parse(all: expressions)) ?? [] }
                if parsed[expressions]!.allSatisfy({ $0.matches(facts) }) { keep.append(t) } else { out.insert(t.id) }
            }
            let capacity = node.description_p.resources
            var cpu: Int64 = 0
            var memory: Int64 = 0
            for t in keep.sorted(by: { ($0.meta.createdAt, $0.id) < ($1.meta.createdAt, $1.id) }) {
                let r = t.spec.resources.reservations
                cpu += r.nanoCpus
                memory += r.memoryBytes
                if (capacity.nanoCpus > 0 && r.nanoCpus > 0 && cpu > capacity.nanoCpus)
                    || (capacity.memoryBytes > 0 && r.memoryBytes > 0 && memory > capacity.memoryBytes) {
                    out.insert(t.id)
                    cpu -= r.nanoCpus
                    memory -= r.memoryBytes
                }
            }
        }
        return out
    }
}
