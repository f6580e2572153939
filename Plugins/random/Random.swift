import SwarmGPU
import SwarmPluginKit
import SwarmRandom
import Synchronization

/// The openb baseline "Random": a uniformly random feasible node, and for a GPU fraction a
/// uniformly random GPU with enough free. Seeded by the cluster view, so a run repeats.
final class RandomStrategy: Strategy {
    private let rng = Mutex(SplitMix64(seed: 0x5EED))

    func next() -> UInt64 { rng.withLock { $0.next() } }

    var wantsPrepare: Bool { true }

    /// Seeds the generator at the start of a run (tick 0); later passes keep drawing.
    func prepare(cluster: ClusterView) {
        if cluster.tick == 0 { rng.withLock { $0 = SplitMix64(seed: cluster.seed ^ 0x5EED) } }
    }

    func score(task: TaskView, node: NodeView) -> Double? {
        Double(next() >> 11) / Double(1 << 53)
    }

    func assignDevices(task: TaskView, node: NodeView) -> [Int]? {
        let shape = task.gpuShape
        guard shape.isSharing else { return nil }
        let candidates = (0..<node.gpuCount).filter { Int32(node.gpu($0).freeMilli) >= shape.gpuMilli }
        guard !candidates.isEmpty else { return nil }
        return [candidates[Int(next() % UInt64(candidates.count))]]
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "random", version: "1.0.0") { plugin in
        try plugin.register(strategy: RandomStrategy(), as: "random")
    }
}
