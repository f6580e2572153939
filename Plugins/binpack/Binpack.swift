import SwarmGPU
import SwarmPluginKit

/// Most-allocated first, by dominant share: the node whose busiest resource (CPU, memory
/// or GPU) would be fullest after placing the task wins. Ties go to the node with less
/// free capacity in total, which keeps the large holes free for large tasks.
struct Binpack: Strategy {
    func score(task: TaskView, node: NodeView) -> Double? {
        func share(_ free: Double, _ total: Double, _ want: Double) -> Double {
            total > 0 ? min(1, max(0, (total - free + want) / total)) : 0
        }
        let cpu = share(Double(node.nanoCPUsFree), Double(node.nanoCPUsTotal), Double(task.reservedNanoCPUs))
        let mem = share(Double(node.memoryBytesFree), Double(node.memoryBytesTotal), Double(task.reservedMemoryBytes))
        var gpuFree = 0.0
        for i in 0..<node.gpuCount { gpuFree += Double(node.gpu(i).freeMilli) }
        let gpuTotal = Double(node.gpuCount * 1000)
        let gpu = share(gpuFree, gpuTotal, Double(task.gpuShape.demand))
        let dominant = max(cpu, mem, gpu)
        // Free capacity left, as a fraction of the node; always in 0...3.
        let left = (1 - cpu) + (1 - mem) + (gpuTotal > 0 ? 1 - gpu : 0)
        return dominant * 1000 - left
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "binpack", version: "1.0.0") { plugin in
        try plugin.register(strategy: Binpack(), as: "binpack")
    }
}
