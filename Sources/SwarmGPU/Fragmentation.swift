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
        return enoughGPUs(task.gpuCount, milli: task.gpuMilli, gpus: node.gpuFree.count) { node.gpuFree[$0] }
    }

    /// The host's default GPU choice on a node of one model (see
    /// ``defaultChoice(_:milli:candidates:free:)``); `[]` for a CPU-only task.
    public static func defaultGPUs(_ task: GPUTaskShape, _ node: GPUNodeState) -> [Int]? {
        if task.isCPUOnly { return [] }
        let c = candidates(milli: task.gpuMilli, gpus: node.gpuFree.count) { node.gpuFree[$0] }
        return defaultChoice(task.gpuCount, milli: task.gpuMilli, candidates: c) { node.gpuFree[$0] }
    }

    // The GPU fit and the default choice, written once for the scheduler (whose GPUs
    // each have a model and memory) and for the strategies and the replay (one model per
    // node): GPUs are positions 0..<gpus, `free` gives each one's free milli, and
    // `eligible` any further condition on a GPU (model, memory).

    /// Whether at least `count` GPUs have `milli` free and are eligible (counted, nothing
    /// allocated).
    @inlinable
    public static func enoughGPUs(_ count: Int, milli: Int32, gpus: Int, free: (Int) -> Int32,
                                  eligible: (Int) -> Bool = { _ in true }) -> Bool {
        if count <= 0 { return true }
        var enough = 0
        for i in 0..<gpus where free(i) >= milli && eligible(i) {
            enough += 1
            if enough >= count { return true }
        }
        return false
    }

    /// The GPUs (positions) that could take one share of `milli`.
    @inlinable
    public static func candidates(milli: Int32, gpus: Int, free: (Int) -> Int32,
                                  eligible: (Int) -> Bool = { _ in true }) -> [Int] {
        (0..<gpus).filter { free($0) >= milli && eligible($0) }
    }

    /// The host's default choice among `candidates` for `count` shares of `milli`: best
    /// fit for a fraction of one GPU (the least free that is enough, the lowest position on
    /// ties), the lowest-positioned candidates for whole GPUs; nil when there are too few.
    public static func defaultChoice(_ count: Int, milli: Int32, candidates: [Int], free: (Int) -> Int32) -> [Int]? {
        guard count > 0, candidates.count >= count else { return nil }
        if count == 1 && milli < 1000 {
            var best = candidates[0]
            for i in candidates.dropFirst() where free(i) < free(best) { best = i }
            return [best]
        }
        return Array(candidates.prefix(count))
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
