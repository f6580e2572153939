/// GPU-sharing arithmetic shared by the GPU-aware strategies and the trace replay: the
/// node and task shapes, GPU choice within a node, and FGD's fragmentation measure
/// (Weng et al., "Beware of Fragmentation", USENIX ATC'23). Pure values, no I/O.

/// A node's free resources as GPU strategies see them.
public struct GPUNodeState: Sendable, Equatable {
    /// Free CPU, in milli-CPUs.
    public var cpuFree: Int64
    public var memoryFree: Int64
    /// Free milli of each GPU (1000 = a whole free GPU), by index.
    public var gpuFree: [Int32]
    public var model: String

    public init(cpuFree: Int64, memoryFree: Int64, gpuFree: [Int32], model: String) {
        self.cpuFree = cpuFree
        self.memoryFree = memoryFree
        self.gpuFree = gpuFree
        self.model = model
    }

    /// Free GPU milli in total.
    public var gpuFreeTotal: Int64 { gpuFree.reduce(0) { $0 + Int64($1) } }
}

/// A task shape: CPU, memory, GPUs (count and per-GPU milli) and the allowed models.
public struct GPUTaskShape: Sendable, Hashable {
    public var cpu: Int64
    public var memory: Int64
    public var gpuCount: Int
    /// Per-GPU milli; 1000 for whole GPUs.
    public var gpuMilli: Int32
    /// Allowed models; empty means any.
    public var models: [String]

    public init(cpu: Int64, memory: Int64 = 0, gpuCount: Int, gpuMilli: Int32, models: [String] = []) {
        self.cpu = cpu
        self.memory = memory
        self.gpuCount = gpuCount
        self.gpuMilli = gpuCount == 0 ? 0 : gpuMilli
        self.models = models
    }

    public var isCPUOnly: Bool { gpuCount == 0 }
    public var isSharing: Bool { gpuCount == 1 && gpuMilli < 1000 }
    /// GPU milli in total.
    public var demand: Int64 { Int64(gpuCount) * Int64(gpuMilli) }

    public func allows(model: String) -> Bool { isCPUOnly || models.isEmpty || models.contains(model) }
}

/// A task shape with its weight in the expected workload.
public struct WeightedShape: Sendable, Hashable {
    public var shape: GPUTaskShape
    public var weight: Double
    public init(_ shape: GPUTaskShape, weight: Double) {
        self.shape = shape
        self.weight = weight
    }
}

public enum GPUMath {
    /// Whether `task` fits `node`: CPU, memory, model, and enough GPUs with enough free.
    public static func fits(_ task: GPUTaskShape, _ node: GPUNodeState) -> Bool {
        guard task.cpu <= node.cpuFree, task.memory <= node.memoryFree else { return false }
        if task.isCPUOnly { return true }
        guard task.allows(model: node.model) else { return false }
        var enough = 0
        for f in node.gpuFree where f >= task.gpuMilli { enough += 1 }
        return enough >= task.gpuCount
    }

    /// The host's default GPU choice: best fit for a fraction (least free that is still
    /// enough, lowest index on ties), the lowest-indexed fully free GPUs otherwise.
    public static func defaultGPUs(_ task: GPUTaskShape, _ node: GPUNodeState) -> [Int]? {
        if task.isCPUOnly { return [] }
        if task.gpuCount == 1 && task.gpuMilli < 1000 {
            var best: Int?
            for (i, f) in node.gpuFree.enumerated() where f >= task.gpuMilli {
                if best == nil || f < node.gpuFree[best!] { best = i }
            }
            return best.map { [$0] }
        }
        let free = node.gpuFree.indices.filter { node.gpuFree[$0] >= task.gpuMilli }
        return free.count >= task.gpuCount ? Array(free.prefix(task.gpuCount)) : nil
    }

    /// The node after `task` takes `gpus`.
    public static func placing(_ task: GPUTaskShape, on node: GPUNodeState, gpus: [Int]) -> GPUNodeState {
        var n = node
        n.cpuFree -= task.cpu
        n.memoryFree -= task.memory
        for g in gpus { n.gpuFree[g] -= task.gpuMilli }
        return n
    }

    /// How much of the node's free GPU milli `task` could not use (FGD's fragment):
    /// all of it for CPU-only tasks, for a model the task excludes, or when the task does
    /// not fit; otherwise only the GPUs with less free than the task's share.
    /// With `memory`, a task short of memory on the node counts as not fitting too (FGD
    /// leaves memory out).
    public static func fragment(_ node: GPUNodeState, for task: GPUTaskShape, memory: Bool = false) -> Int64 {
        let total = node.gpuFreeTotal
        if task.isCPUOnly || !task.allows(model: node.model) { return total }
        var enough = 0
        var small: Int64 = 0
        for f in node.gpuFree {
            if f >= task.gpuMilli { enough += 1 } else { small += Int64(f) }
        }
        if enough >= task.gpuCount && node.cpuFree >= task.cpu && (!memory || node.memoryFree >= task.memory) { return small }
        return total
    }

    /// Expected fragment of a node over the workload: Σ weight × fragment.
    public static func fragmentation(_ node: GPUNodeState, _ workload: [WeightedShape], memory: Bool = false) -> Double {
        var f = 0.0
        for w in workload { f += w.weight * Double(fragment(node, for: w.shape, memory: memory)) }
        return f
    }

    /// The logistic function.
    public static func sigmoid(_ x: Double) -> Double { 1 / (1 + _exp(-x)) }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _exp(_ x: Double) -> Double { Glibc.exp(x) }
#else
import Foundation
@inline(__always) func _exp(_ x: Double) -> Double { Foundation.exp(x) }
#endif
