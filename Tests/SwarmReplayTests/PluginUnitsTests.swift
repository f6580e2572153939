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

    @Test func aClustersCapacityPerGPUIsInTheUnitsOfItsNodes() {
        func node(_ id: String, gpus: Int, cpus: Int64, gib: Int64) -> CNodeView {
            let view = CNodeView(NodeViewDescription(id: id, hostname: id, gpus: (0..<gpus).map { g in
                .init(uuid: "\(id)-gpu\(g)", index: UInt32(g), model: "G2", memoryMiB: 0, topologyGroup: "")
            }))
            view.setResources(nanoCPUsTotal: cpus * 1_000_000_000, nanoCPUsFree: 0, memoryBytesTotal: gib << 30, memoryBytesFree: 0)
            return view
        }
        // 96 CPUs, 64 GiB and 8 GPUs, plus a node without GPUs (32 CPUs, 64 GiB): 16 CPUs and
        // 16 GiB per GPU, whatever is free.
        let views = [node("a", gpus: 8, cpus: 96, gib: 64), node("b", gpus: 0, cpus: 32, gib: 64)]
        let capacity = GPUMath.PerGPUDemand.capacity(of: views.map { NodeView($0.pointer) })
        #expect(capacity == GPUMath.PerGPUDemand(cpu: 16_000, memory: Double(16 << 30)))
        #expect(GPUMath.PerGPUDemand.capacity(of: [NodeView(views[1].pointer)]) == GPUMath.PerGPUDemand(cpu: 0, memory: 0))
    }
}
