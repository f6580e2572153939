import SwarmRandom

/// The share of each pod class in a generated trace variant. `nil` keeps the source's.
public struct VariantWeights: Sendable, Equatable {
    /// CPU-only pods, as a share of all pods.
    public var cpuOnly: Double?
    /// Pods that share one GPU (one GPU, less than 1000 milli), as a share of GPU pods.
    public var sharing: Double?
    /// Pods that take two GPUs or more, as a share of GPU pods.
    public var multiGPU: Double?
    /// GPU pods that name the GPU models they accept (`gpu_spec`), as a share of GPU pods.
    public var gpuSpec: Double?

    public init(cpuOnly: Double? = nil, sharing: Double? = nil, multiGPU: Double? = nil, gpuSpec: Double? = nil) {
        self.cpuOnly = cpuOnly
        self.sharing = sharing
        self.multiGPU = multiGPU
        self.gpuSpec = gpuSpec
    }
}

/// A variant that cannot be made: which parameter, or which file and line, and why.
public struct VariantError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Generator of openb-style trace variants, made the way the published variants were: the
/// pods of a source trace (the default one) re-weighted by class.
///
/// Each output pod is a copy of a source pod, drawn uniformly from one class: CPU-only
/// with probability `cpuOnly`, otherwise a GPU pod, which is sharing with probability
/// `sharing`, multi-GPU with probability `multiGPU`, and a single whole GPU otherwise.
/// With `gpuSpec` set, a GPU pod names allowed models with that probability: a spec drawn
/// from the source's own (by frequency), or, when the source names none, one model drawn
/// from the node list, weighted by the GPUs of that model on nodes large enough for the
/// pod; otherwise its spec is cleared. Requests (CPU, memory, GPU) stay as the source pod
/// had them, so each class keeps the trace's own shapes. Pods are renamed in output order.
public enum TraceVariant {
    /// The source's class shares (CPU-only of all pods; the others of GPU pods).
    public static func shares(_ pods: [TracePod]) -> (cpuOnly: Double, sharing: Double, multiGPU: Double, gpuSpec: Double) {
        let gpu = pods.filter { $0.gpuCount > 0 }
        let g = Double(max(1, gpu.count))
        return (Double(pods.count - gpu.count) / Double(max(1, pods.count)),
                Double(gpu.filter { $0.kind == "share" }.count) / g,
                Double(gpu.filter { $0.gpuCount > 1 }.count) / g,
                Double(gpu.filter { !$0.models.isEmpty }.count) / g)
    }

    /// Generates `count` pods from the pod list at `path` as CSV text with the source's
    /// columns (and `gpu_spec`, added if it lacks one). `nodes` supplies models when the
    /// source names none.
    public static func generate(podsAt path: String, nodes: [TraceNode]?, weights: VariantWeights, count: Int?,
                                seed: UInt64) throws -> String {
        for (name, value) in [("--cpu-only", weights.cpuOnly), ("--sharing", weights.sharing),
                              ("--multi-gpu", weights.multiGPU), ("--gpu-spec", weights.gpuSpec)] {
            if let v = value, !(v >= 0 && v <= 1) { throw VariantError("\(name) \(v) is outside 0...1") }
        }
        let (header, rows) = try Trace.headerAndRows(path, required: Trace.podColumns)
        let pods = try Trace.pods(rows: rows, path: path)
        let source = shares(pods)
        let cpuOnly = weights.cpuOnly ?? source.cpuOnly
        let sharing = weights.sharing ?? source.sharing
        let multi = weights.multiGPU ?? source.multiGPU
        if sharing + multi > 1 + 1e-9 {
            throw VariantError("--sharing and --multi-gpu are shares of the GPU pods and add up to \(sharing + multi), over 1")
        }
        guard cpuOnly < 1 else {
            throw VariantError("--cpu-only 1 leaves no GPU pods: the replay fills the cluster's GPUs, so a variant needs some")
        }
        let total = count ?? pods.count
        guard total > 0 else { throw VariantError("--count \(total) leaves no pods") }

        // The classes and their pools of source rows.
        var pools: [String: [Int]] = [:]
        for (i, p) in pods.enumerated() {
            pools[p.gpuCount == 0 ? "cpu" : p.kind == "share" ? "share" : p.gpuCount == 1 ? "whole" : "multi", default: []].append(i)
        }
        let wholeShare = 1 - sharing - multi
        for (cls, share, name, what) in [("cpu", cpuOnly, "--cpu-only", "CPU-only pods (num_gpu 0)"),
                                         ("share", (1 - cpuOnly) * sharing, "--sharing", "GPU-sharing pods (num_gpu 1, gpu_milli under 1000)"),
                                         ("multi", (1 - cpuOnly) * multi, "--multi-gpu", "multi-GPU pods (num_gpu 2 or more)"),
                                         ("whole", (1 - cpuOnly) * wholeShare, "--sharing and --multi-gpu", "single whole-GPU pods")]
        where share > 0 && pools[cls] == nil {
            throw VariantError("\(name) asks for \(what), and \(path) has none to draw from")
        }

        // Where specs come from.
        var specPool: [String] = []
        if weights.gpuSpec.map({ $0 > 0 }) == true {
            guard header.contains("gpu_spec") else {
                throw VariantError("--gpu-spec needs the column gpu_spec, which \(path) lacks (header: \(header.joined(separator: ",")))")
            }
            specPool = pods.filter { $0.gpuCount > 0 && !$0.models.isEmpty }.map(\.spec)
            if specPool.isEmpty && (nodes ?? []).allSatisfy({ $0.gpus == 0 }) {
                throw VariantError("--gpu-spec: no pod in \(path) names a GPU model; pass --nodes to draw models from the node list")
            }
        }

        var rng = SplitMix64(seed: seed)
        func unit() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let outHeader = header.contains("gpu_spec") ? header : header + ["gpu_spec"]
        var out = outHeader.joined(separator: ",") + "\n"
        let width = max(4, String(total - 1).count)
        for k in 0..<total {
            let cls: String
            if unit() < cpuOnly {
                cls = "cpu"
            } else {
                let v = unit()
                cls = v < sharing ? "share" : v < sharing + multi ? "multi" : "whole"
            }
            let pool = pools[cls]!
            let index = pool[rng.below(pool.count)]
            var row = rows[index].1
            let pod = pods[index]
            row["name"] = "openb-pod-" + String(repeating: "0", count: max(0, width - String(k).count)) + String(k)
            if let p = weights.gpuSpec, pod.gpuCount > 0 {
                row["gpu_spec"] = unit() < p ? drawSpec(for: pod, specPool, nodes ?? [], &rng) : ""
            }
            out += outHeader.map { row[$0] ?? "" }.joined(separator: ",") + "\n"
        }
        return out
    }

    static func drawSpec(for pod: TracePod, _ pool: [String], _ nodes: [TraceNode], _ rng: inout SplitMix64) -> String {
        if !pool.isEmpty { return pool[rng.below(pool.count)] }
        var gpus: [String: Int] = [:]
        for n in nodes where n.gpus >= pod.gpuCount { gpus[n.model, default: 0] += n.gpus }
        let models = gpus.keys.sorted()
        let sum = gpus.values.reduce(0, +)
        guard sum > 0 else { return "" }
        var pick = rng.below(sum)
        for m in models {
            if pick < gpus[m]! { return m }
            pick -= gpus[m]!
        }
        return models.last!
    }
}
