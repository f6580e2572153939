import SwarmGPU

/// Where the cluster's CPU went by the end of a replay: to CPU-only pods, to GPU pods,
/// or left free on nodes with free GPU capacity, or on nodes without. When CPU runs out
/// before the GPUs do, GPU allocation is decided by how much CPU went to GPU pods.
public enum CPUUse {
    /// The parts, in report order.
    public static let parts = ["CPU-only pods", "GPU pods", "free, with GPUs", "free, no GPU"]
}

/// Why the GPU capacity that is still free at the end of a replay went unused.
///
/// Each node's free GPU milli is shared out over the typical GPU pods by their weights
/// (CPU-only pods cannot use a GPU, so they take no part), and each share is put down to
/// what stops that pod from using it:
/// - `fragmented`: the node's free GPUs are too small or too few for the pod's request
///   (and any free milli on GPUs smaller than its per-GPU share, when it does fit);
/// - `model`: the pod's spec excludes the node's model;
/// - `cpu`, `memory`, `cpu+memory`: the GPUs would do, but the node is short of CPU, of
///   memory, or of both;
/// - `usable`: the pod fits; the capacity was free only because no such pod came.
///
/// The figures are expectations over the workload, in milli, like FGD's fragmentation
/// measure, of which `fragmented` + `model` + the CPU part are the terms.
public enum Leftover {
    /// The causes, in report order.
    public static let causes = ["fragmented", "model", "cpu", "memory", "cpu+memory", "usable"]

    /// One node's free GPU milli by cause.
    public static func node(_ node: GPUNodeState, _ workload: [WeightedShape], into out: inout [String: Double]) {
        let total = Double(node.gpuFreeTotal)
        guard total > 0 else { return }
        let gpuClasses = workload.filter { !$0.shape.isCPUOnly }
        let weightSum = gpuClasses.reduce(0) { $0 + $1.weight }
        guard weightSum > 0 else { out["fragmented", default: 0] += total; return }
        for w in gpuClasses {
            let t = w.shape
            let share = total * w.weight / weightSum
            if !t.allows(model: node.model) { out["model", default: 0] += share; continue }
            var enough = 0
            var small: Int64 = 0
            for f in node.gpuFree { if f >= t.gpuMilli { enough += 1 } else { small += Int64(f) } }
            guard enough >= t.gpuCount else { out["fragmented", default: 0] += share; continue }
            let piece = share * Double(small) / total
            out["fragmented", default: 0] += piece
            let cpuShort = t.cpu > node.cpuFree, memoryShort = t.memory > node.memoryFree
            let cause = cpuShort && memoryShort ? "cpu+memory" : cpuShort ? "cpu" : memoryShort ? "memory" : "usable"
            out[cause, default: 0] += share - piece
        }
    }

    /// Free GPU milli by cause over the whole cluster.
    public static func breakdown(_ nodes: [GPUNodeState], _ workload: [WeightedShape]) -> [String: Double] {
        var out: [String: Double] = [:]
        for n in nodes { node(n, workload, into: &out) }
        return out
    }
}

/// The GPU capacity still free at the end of a replay, by the size of the piece it is in:
/// GPUs wholly free, and GPUs partly used, by how much they have free. A piece can only be
/// used by a pod whose per-GPU share fits it; on the openb traces pods of under 200 milli
/// are about 3 % of the GPU-sharing pods, so once those few have been placed, capacity in
/// pieces under 200 milli stays free whatever the placement.
public enum FreePieces {
    /// The piece sizes, in report order: the free milli of a GPU, as a range.
    public static let sizes = ["whole", "500-999", "200-499", "100-199", "1-99"]

    /// The piece size a GPU with `free` milli free falls in; nil when it has none.
    public static func size(ofFree free: Int32) -> String? {
        switch free {
        case 1000...: "whole"
        case 500...: "500-999"
        case 200...: "200-499"
        case 100...: "100-199"
        case 1...: "1-99"
        default: nil
        }
    }

    /// Free GPU milli by piece size over the whole cluster.
    public static func breakdown(_ nodes: [GPUNodeState]) -> [String: Double] {
        var out: [String: Double] = [:]
        for n in nodes {
            for f in n.gpuFree {
                if let s = size(ofFree: f) { out[s, default: 0] += Double(f) }
            }
        }
        return out
    }
}
