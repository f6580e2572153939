import SwarmAPI

/// Rebalancing: moves a replicated service's tasks toward where its strategy would put
/// them if the service were placed now. The shell finds the target (how many tasks each
/// node would get, from a dry placement of the whole service without its own tasks); this
/// picks the tasks to move, which the reconciler then replaces with the update policy's
/// pacing. The scheduler places each replacement with the same strategy, so the service
/// converges on the target.
public enum Rebalancer {
    /// Each slot's current task (made from the current template and placed), the newest
    /// when a start-first replacement overlaps its predecessor.
    static func currentTasks(_ service: SwarmService, _ tasks: [SwarmTask]) -> [SwarmTask] {
        let live = tasks.filter { $0.serviceID == service.id && $0.isRunnable && !$0.hasEnded && $0.spec == service.spec.task }
        return Dictionary(grouping: live, by: \.slot).values.compactMap { group in
            group.max { ($0.meta.createdAt, $0.id) < ($1.meta.createdAt, $1.id) }
        }
    }

    /// The tasks to move so that no node holds more of the service's tasks than `targets`
    /// gives it: on each node over its target, the tasks of the highest slots. Empty when
    /// the target does not place every replica (moving would then lose tasks).
    public static func surplus(_ service: SwarmService, tasks: [SwarmTask], targets: [String: Int]) -> Set<String> {
        guard case .replicated(let r)? = service.spec.mode, targets.values.reduce(0, +) == Int(r.replicas) else { return [] }
        let placed = currentTasks(service, tasks).filter { !$0.nodeID.isEmpty && $0.slot >= 1 && $0.slot <= r.replicas }
        var out: Set<String> = []
        for (node, onNode) in Dictionary(grouping: placed, by: \.nodeID) {
            let extra = onNode.count - (targets[node] ?? 0)
            guard extra > 0 else { continue }
            for t in onNode.sorted(by: { $0.slot > $1.slot }).prefix(extra) { out.insert(t.id) }
        }
        return out
    }

    /// Whether every slot runs one task of the current template and nothing else is
    /// starting or stopping: a rebalance with no surplus left has then finished.
    public static func isSettled(_ service: SwarmService, tasks: [SwarmTask]) -> Bool {
        guard case .replicated(let r)? = service.spec.mode else { return true }
        let live = tasks.filter { $0.serviceID == service.id && $0.isRunnable }
        return live.count == Int(r.replicas) && live.allSatisfy { $0.status.state == .running && $0.spec == service.spec.task }
    }
}
