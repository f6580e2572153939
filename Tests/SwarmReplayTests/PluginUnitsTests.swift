import SwarmGPU
import SwarmPluginHost
import SwarmPluginKit
import Testing

/// A plugin sees a node through the host's C view; the GPU arithmetic it does there must
/// use one set of units (milli-CPUs and bytes) for the node's state, its tasks and the
/// workload's demand.
struct PluginUnitsTests {
    @Test func aNodesShapeCapsTheDemandInTheUnitsOfItsState() {
        let view = CNodeView(NodeViewDescription(id: "n", hostname: "n", gpus: (0..<2).map { g in
            .init(uuid: "gpu\(g)", index: UInt32(g), model: "P100", memoryMiB: 0, topologyGroup: "")
        }))
        // 16 CPUs and 16 GiB for 2 GPUs; 12 of the CPUs and 12 GiB still free.
        view.setResources(nanoCPUsTotal: 16_000_000_000, nanoCPUsFree: 12_000_000_000,
                          memoryBytesTotal: 16 << 30, memoryBytesFree: 12 << 30)
        let node = NodeView(view.pointer)
        let demand = GPUMath.PerGPUDemand(cpu: 11_000, memory: Double(40 << 30))
        let capped = demand.capped(for: node)
        // 8 CPUs (in milli) and 8 GiB (in bytes) per GPU.
        #expect(capped == GPUMath.PerGPUDemand(cpu: 8_000, memory: Double(8 << 30)))
        // The node's free state is in the same units: 12 CPUs and 12 GiB feed 1.5 GPUs.
        #expect(node.gpuState.memoryFree == 12 << 30 && node.gpuState.cpuFree == 12_000)
        #expect(abs(capped.feedableGPUs(node.gpuState) - 1.5) < 1e-9)
    }
}
