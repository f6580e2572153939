import SwarmPluginKit

/// All-or-nothing placement for groups that are useless in part (a distributed training
/// job, an MPI world): a service's tasks are placed only if every one of them fits at
/// once, and then on as few nodes as possible, the roomiest first. A group that does not
/// fit stays pending as a whole, rather than holding resources with some of its tasks.
///
/// Room on a node counts CPU, memory, generic resources and GPUs (whole GPUs, or shares of
/// one), the service's per-node replica limit, and host ports (a task that publishes one
/// fits once per node, and not at all where the port is taken). One task at a time
/// (`score`) is binpack-like, for the rare caller that bypasses group placement.
struct Gang: Strategy {
    var wantsPlaceGroup: Bool { true }

    /// How many tasks like `task` the node can take.
    static func room(_ task: TaskView, _ node: NodeView) -> Int {
        var n = Int.max
        if task.reservedNanoCPUs > 0 { n = min(n, Int(max(0, node.nanoCPUsFree) / task.reservedNanoCPUs)) }
        if task.reservedMemoryBytes > 0 { n = min(n, Int(max(0, node.memoryBytesFree) / task.reservedMemoryBytes)) }
        for (kind, want) in task.genericRequests where want > 0 { n = min(n, Int(max(0, node.genericFree(kind)) / want)) }
        if task.maxReplicasPerNode > 0 { n = min(n, max(0, Int(task.maxReplicasPerNode) - Int(node.tasksOfService))) }
        if !task.hostPorts.isEmpty { n = min(n, task.fitsLimits(node) ? 1 : 0) }
        if task.gpuCount > 0 {
            let models = task.gpuModels
            let usable = node.gpus.filter {
                $0.memoryMiB >= task.gpuMinMemoryMiB && (models.isEmpty || models.contains($0.model))
            }
            if task.gpuCount == 1 && task.gpuMilli < 1000 {
                n = min(n, usable.reduce(0) { $0 + Int($1.freeMilli / max(1, task.gpuMilli)) })
            } else {
                n = min(n, usable.filter { $0.freeMilli >= 1000 }.count / Int(task.gpuCount))
            }
        }
        return n == Int.max ? 1 << 20 : n
    }

    func placeGroup(task: TaskView, count: Int, nodes: [NodeView]) -> [Int?]? {
        // Roomiest first (ties: the order given), so the group spans as few nodes as it can.
        let rooms = nodes.map { Self.room(task, $0) }
        let order = rooms.indices.sorted { (rooms[$0], -$0) > (rooms[$1], -$1) }
        guard rooms.reduce(0, { $0 + min($1, count) }) >= count else {
            return Array(repeating: nil, count: count)  // the group does not fit: none of it
        }
        var placement: [Int?] = []
        for k in order where placement.count < count {
            placement += Array(repeating: k, count: min(rooms[k], count - placement.count))
        }
        return placement
    }

    func score(task: TaskView, node: NodeView) -> Double? {
        Self.room(task, node) > 0 ? -Double(Self.room(task, node)) : nil
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "gang", version: "1.0.0") { plugin in
        try plugin.register(strategy: Gang(), as: "gang")
    }
}
