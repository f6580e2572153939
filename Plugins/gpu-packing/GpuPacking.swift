import SwarmGPU
import SwarmPluginKit

/// The openb baseline "GpuPacking": tight fits on partly used GPUs first, then free GPUs
/// on used nodes, then idle nodes, smallest first. CPU-only tasks score 0 everywhere.
struct GpuPacking: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        let t = task.gpuShape
        if t.isCPUOnly { return 0 }
        let free = node.gpuState.gpuFree
        let g = free.count
        if free.allSatisfy({ $0 == 1000 }) { return Double(max(33 - g, g)) }
        // GPUs by ascending free (stable by index); the first gpuCount with enough.
        let order = free.indices.sorted { (free[$0], $0) < (free[$1], $1) }
        let chosen = order.filter { free[$0] >= t.gpuMilli }.prefix(t.gpuCount)
        let unused = chosen.filter { free[$0] == 1000 }.count
        if unused > 0 { return Double(max(50 - unused, 33)) }
        let sum = chosen.reduce(0) { $0 + Int(free[$1]) * 100 / 1000 }
        return Double(max(100 - sum / 10, 50))
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "gpu-packing", version: "1.0.0") { plugin in
        try plugin.register(strategy: GpuPacking(), as: "gpu-packing")
    }
}
