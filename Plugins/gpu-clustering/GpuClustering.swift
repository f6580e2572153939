import SwarmGPU
import SwarmPluginKit

/// The openb baseline "GpuClustering": put GPU tasks with tasks of their own kind (shared
/// fraction, or k whole GPUs), fuller nodes first. CPU-only tasks score 0 everywhere.
struct GpuClustering: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        let t = task.gpuShape
        if t.isCPUOnly { return 0 }
        let own: GPUTaskClasses = t.isSharing ? .shared : .whole(t.gpuCount)
        let present = node.gpuTaskClasses
        let base: Int
        if present == own { base = 75 } else if present.contains(own) { base = 50 } else if present.isEmpty { base = 25 } else { base = 0 }
        let used = 8000 - Int(node.gpuState.gpuFreeTotal)
        return Double(base + 25 * used / 8000)
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "gpu-clustering", version: "1.0.0") { plugin in
        try plugin.register(strategy: GpuClustering(), as: "gpu-clustering")
    }
}
