import SwarmGPU
import SwarmRandom

/// The replay's one RNG: every random choice of a seed's preparation draws from it.
public typealias ReplayRNG = SplitMix64

/// One seed's replay input (protocol §3): the arrival list (shuffled originals, then
/// tune-up copies) and the node rank used to break score ties.
public struct PreparedWorkload: Sendable {
    public var arrivals: [TracePod]
    /// rank[i] is node i's position in the tie-break order (lower wins).
    public var rank: [Int]
    /// GPU milli of all arrivals.
    public var totalDemand: Int64
    public var originals: Int
}

public enum Workload {
    /// Total GPU capacity of the cluster in milli.
    public static func capacity(_ nodes: [TraceNode]) -> Int64 { nodes.reduce(0) { $0 + Int64($1.gpus) * 1000 } }

    /// Sorts, shuffles, tunes the workload up to `tune` × capacity and draws the node rank.
    public static func prepare(pods: [TracePod], nodes: [TraceNode], seed: UInt64, tune: Double = 1.3) -> PreparedWorkload {
        var rng = ReplayRNG(seed: seed)
        let sorted = pods.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        var arrivals = sorted
        // Fisher–Yates.
        if arrivals.count > 1 {
            for i in stride(from: arrivals.count - 1, to: 0, by: -1) { arrivals.swapAt(i, rng.below(i + 1)) }
        }
        let target = Int64((Double(capacity(nodes)) * tune).rounded())
        var demand = sorted.reduce(0) { $0 + $1.demand }
        // Copies drawn with replacement from the sorted originals; the stop test uses the
        // candidate's per-GPU milli (the artifact's quirk), the total its full demand.
        // (A list without GPU pods has nothing to tune up: every draw would add 0.)
        let tunable = sorted.contains { $0.gpuMilli > 0 }
        while tunable {
            let candidate = sorted[rng.below(sorted.count)]
            if demand + Int64(candidate.gpuMilli) > target { break }
            arrivals.append(candidate)
            demand += candidate.demand
        }
        // Node rank: a uniform permutation of the nodes in name order.
        let byName = nodes.indices.sorted { nodes[$0].name.utf8.lexicographicallyPrecedes(nodes[$1].name.utf8) }
        var order = byName
        if order.count > 1 {
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        }
        var rank = [Int](repeating: 0, count: nodes.count)
        for (position, node) in order.enumerated() { rank[node] = position }
        return PreparedWorkload(arrivals: arrivals, rank: rank, totalDemand: demand, originals: pods.count)
    }

    /// The typical pods of the original list (protocol §4): shapes keyed by (CPU, per-GPU
    /// milli, GPU count, spec string), most frequent first, the shortest prefix that covers
    /// 95 % of the pods, with weights that add up to 1. Each class is represented by its
    /// first pod in list order, with the median memory request of the class.
    public static func typicalPods(_ pods: [TracePod], cover: Double = 0.95) -> [(pod: TracePod, weight: Double)] {
        struct Key: Hashable, Comparable {
            var cpu: Int64, milli: Int32, count: Int, spec: String
            static func < (a: Key, b: Key) -> Bool {
                (a.cpu, a.milli, a.count) != (b.cpu, b.milli, b.count) ? (a.cpu, a.milli, a.count) < (b.cpu, b.milli, b.count)
                    : a.spec.utf8.lexicographicallyPrecedes(b.spec.utf8)
            }
        }
        var counts: [Key: (Int, TracePod)] = [:]
        var memories: [Key: [Int64]] = [:]
        for p in pods {
            let k = Key(cpu: p.cpuMilli, milli: p.gpuMilli, count: p.gpuCount, spec: p.spec)
            counts[k, default: (0, p)].0 += 1
            memories[k, default: []].append(p.memoryMiB)
        }
        // Memory is not part of the key: a class carries the median of its pods' requests
        // (the lower one of an even count).
        for (k, m) in memories { counts[k]!.1.memoryMiB = m.sorted()[(m.count - 1) / 2] }
        // By count descending, then by key descending.
        let ordered = counts.sorted { a, b in a.value.0 != b.value.0 ? a.value.0 > b.value.0 : b.key < a.key }
        var kept: [(TracePod, Int)] = []
        var covered = 0
        for (_, v) in ordered {
            kept.append((v.1, v.0))
            covered += v.0
            if Double(covered) >= cover * Double(pods.count) { break }
        }
        return kept.map { ($0.0, Double($0.1) / Double(covered)) }
    }

    /// The typical classes weighted by `arrivals` (hindsight: the pods still to arrive in a
    /// run), for `swarm-bench replay --hindsight`: each class's share of the arrivals that
    /// belong to a class (same CPU, GPU count, per-GPU milli and allowed models; memory is
    /// not part of a class). The weights add up to 1; a class with none left weighs 0. Nil
    /// when no arrival belongs to a class, so that the caller keeps the weights it has.
    public static func remainingWeights(_ typical: [WeightedShape], arrivals: ArraySlice<TracePod>) -> [Double]? {
        struct Key: Hashable { var cpu: Int64, count: Int, milli: Int32, models: [String] }
        func key(_ s: GPUTaskShape) -> Key { Key(cpu: s.cpu, count: s.gpuCount, milli: s.gpuMilli, models: s.models) }
        var index: [Key: Int] = [:]
        for (i, c) in typical.enumerated() where index[key(c.shape)] == nil { index[key(c.shape)] = i }
        var counts = [Double](repeating: 0, count: typical.count)
        for pod in arrivals { if let i = index[key(pod.shape)] { counts[i] += 1 } }
        let total = counts.reduce(0, +)
        return total > 0 ? counts.map { $0 / total } : nil
    }

    /// The typical pods as weighted shapes (memory in MiB, as the replay accounts it).
    public static func weightedShapes(_ typical: [(pod: TracePod, weight: Double)]) -> [WeightedShape] {
        typical.map { WeightedShape($0.pod.shape, weight: $0.weight) }
    }
}
