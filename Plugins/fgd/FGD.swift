import SwarmGPU
import SwarmPluginKit
import Synchronization

/// The openb baseline "FGD" (fragmentation gradient descent, Weng et al., ATC'23): place
/// the task where it increases the expected GPU fragmentation least. The score is
/// ⌊100·σ(Δ/1000)⌋ with Δ = fragmentation before − after; a fraction is tried on every GPU
/// with room and goes to the lowest-indexed GPU that reaches the node's integer best.
final class FGD: Strategy {
    private let workload = Mutex<[WeightedShape]>([])

    var wantsPrepare: Bool { true }

    func prepare(cluster: ClusterView) {
        let w = cluster.workload.map(\.weightedShape)
        workload.withLock { $0 = w }
    }

    func integerScore(_ delta: Double) -> Int { Int((100 * GPUMath.sigmoid(delta / 1000)).rounded(.down)) }

    /// The score of each GPU choice for a fraction, or of the single default choice.
    func choices(_ t: GPUTaskShape, _ n: GPUNodeState) -> [(gpus: [Int], score: Int)] {
        let w = workload.withLock { $0 }
        let before = GPUMath.fragmentation(n, w)
        if t.isSharing {
            return n.gpuFree.indices.filter { n.gpuFree[$0] >= t.gpuMilli }.map { g in
                ([g], integerScore(before - GPUMath.fragmentation(GPUMath.placing(t, on: n, gpus: [g]), w)))
            }
        }
        guard let gpus = GPUMath.defaultGPUs(t, n) else { return [] }
        return [(gpus, integerScore(before - GPUMath.fragmentation(GPUMath.placing(t, on: n, gpus: gpus), w)))]
    }

    func score(task: TaskView, node: NodeView) -> Double? {
        choices(task.gpuShape, node.gpuState).map(\.score).max().map(Double.init)
    }

    func assignDevices(task: TaskView, node: NodeView) -> [Int]? {
        let options = choices(task.gpuShape, node.gpuState)
        guard let best = options.map(\.score).max() else { return nil }
        return options.first { $0.score == best }?.gpus
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "fgd", version: "1.0.0") { plugin in
        try plugin.register(strategy: FGD(), as: "fgd")
    }
}
