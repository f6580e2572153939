import SwarmPluginKit

/// SwarmKit's ranking: fewer recent failures of the service on the node first, then
/// fewer tasks of the service, then fewer tasks in total.
struct Spread: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        // Lexicographic order folded into one number (each count stays far below 2^20).
        let failures = Double(min(node.recentFailuresOfService, 1 << 20))
        let ofService = Double(min(node.tasksOfService, 1 << 20))
        let total = Double(min(node.tasksTotal, 1 << 20))
        return -(failures * 1_099_511_627_776 + ofService * 1_048_576 + total)
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "spread", version: "1.0.0") { plugin in
        try plugin.register(strategy: Spread(), as: "spread")
    }
}
