import SwarmGPU
import SwarmPluginKit

/// The openb baseline "BestFit": the node with the least CPU and GPU left after placing
/// the task wins. GPUs: the host's best fit.
struct BestFit: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        let n = node.gpuState
        let t = task.gpuShape
        let left = 0.5 * Double(n.cpuFree - t.cpu) / 128_000 + 0.5 * Double(n.gpuFreeTotal - t.demand) / 8000
        return (100 * (1 - left)).rounded(.down)
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "best-fit", version: "1.0.0") { plugin in
        try plugin.register(strategy: BestFit(), as: "best-fit")
    }
}
