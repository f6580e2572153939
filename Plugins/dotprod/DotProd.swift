import SwarmGPU
import SwarmPluginKit

/// The openb baseline "DotProd" (Tetris-like, inverted): the smallest dot product of the
/// node's free (CPU, GPU) vector with the task's demand wins. GPUs: the host's best fit.
struct DotProd: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        let n = node.gpuState
        let t = task.gpuShape
        let free = (Double(n.cpuFree) / 128_000, Double(n.gpuFreeTotal) / 8000)
        let demand = (Double(t.cpu) / 128_000, Double(t.demand) / 8000)
        return (100 * (1 - 0.5 * (free.0 * demand.0 + free.1 * demand.1))).rounded(.down)
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "dotprod", version: "1.0.0") { plugin in
        try plugin.register(strategy: DotProd(), as: "dotprod")
    }
}
