/// A fragmentation measure that also counts the GPUs a node's CPU and memory cannot feed.
///
/// FGD (``GPUMath/fragmentation(_:_:memory:)``) asks of each typical pod whether one more
/// of it fits a node. A node with eight free GPUs and CPU for one more pod passes that test
/// for every class, yet seven of its GPUs can never be used: whatever arrives next needs
/// CPU too. CPU-heavy pods placed on GPU nodes cause exactly this, and FGD does not see it
/// until the last pod's worth of CPU is gone.
///
/// This measure keeps FGD's per-class test (with memory) and adds what the node can feed:
/// its free CPU and memory feed free GPUs at the workload's mean CPU and memory per GPU
/// (``PerGPUDemand``), or less where the cluster or the node itself has less to give per
/// GPU. GPU capacity beyond what they can feed is counted as fragment for every GPU class
/// that would otherwise use it, in proportion. A node whose CPU keeps pace with its GPUs
/// scores exactly as under FGD.
extension GPUMath {
    /// The workload's mean CPU (milli) and memory per whole GPU of demand, over its GPU
    /// classes: Σ weight × request / Σ weight × GPUs.
    public struct PerGPUDemand: Sendable, Equatable {
        public var cpu: Double
        public var memory: Double

        public init(cpu: Double, memory: Double) {
            self.cpu = cpu
            self.memory = memory
        }

        public init(_ workload: [WeightedShape]) {
            var gpus = 0.0, cpu = 0.0, memory = 0.0
            for w in workload where !w.shape.isCPUOnly {
                gpus += w.weight * Double(w.shape.demand) / 1000
                cpu += w.weight * Double(w.shape.cpu)
                memory += w.weight * Double(w.shape.memory)
            }
            self.init(cpu: gpus > 0 ? cpu / gpus : 0, memory: gpus > 0 ? memory / gpus : 0)
        }

        /// What the CPU-only classes of `workload` ask per whole GPU that its GPU classes
        /// ask: Σ weight × request over the CPU-only classes / Σ weight × GPUs over the GPU
        /// classes. CPU-only pods arrive alongside GPU pods and take their share of the free
        /// CPU and memory.
        public static func cpuOnly(_ workload: [WeightedShape]) -> PerGPUDemand {
            var gpus = 0.0, cpu = 0.0, memory = 0.0
            for w in workload {
                if w.shape.isCPUOnly {
                    cpu += w.weight * Double(w.shape.cpu)
                    memory += w.weight * Double(w.shape.memory)
                } else {
                    gpus += w.weight * Double(w.shape.demand) / 1000
                }
            }
            return PerGPUDemand(cpu: gpus > 0 ? cpu / gpus : 0, memory: gpus > 0 ? memory / gpus : 0)
        }

        /// The lesser, per resource, of this demand and the GPU pods' share of what the
        /// cluster has left per free GPU (free CPU and memory over free GPUs, on nodes with
        /// free GPU capacity). CPU-only pods (`cpuOnly`, see ``cpuOnly(_:)``) take their
        /// share of that too, so GPU pods can count on `demand / (demand + cpuOnly)` of it.
        /// When CPU or memory binds cluster-wide, not every free GPU can be fed wherever
        /// pods go; only stranding beyond the cluster's own ratio is a placement's doing.
        public func limited(by nodes: [GPUNodeState], besides cpuOnly: PerGPUDemand = .init(cpu: 0, memory: 0)) -> PerGPUDemand {
            var cpuFree = 0.0, memoryFree = 0.0, gpus = 0.0
            for n in nodes {
                let free = Double(n.gpuFreeTotal) / 1000
                guard free > 0 else { continue }
                cpuFree += Double(max(0, n.cpuFree))
                memoryFree += Double(max(0, n.memoryFree))
                gpus += free
            }
            guard gpus > 0 else { return self }
            func share(_ own: Double, _ other: Double, _ free: Double) -> Double {
                own > 0 ? min(own, free / gpus * own / (own + max(0, other))) : own
            }
            return PerGPUDemand(cpu: share(cpu, cpuOnly.cpu, cpuFree), memory: share(memory, cpuOnly.memory, memoryFree))
        }

        /// The lesser, per resource, of this demand and what the node was built with per
        /// GPU. A node with less CPU per GPU than the workload's mean (16 CPUs for 2 GPUs,
        /// against some 11 per GPU) is not stranded by its shape: the pods with little CPU
        /// can use all of its GPUs. Only what placements do to it counts.
        public func capped(cpuTotal: Int64, memoryTotal: Int64, gpus: Int) -> PerGPUDemand {
            guard gpus > 0 else { return self }
            return PerGPUDemand(cpu: min(cpu, Double(cpuTotal) / Double(gpus)), memory: min(memory, Double(memoryTotal) / Double(gpus)))
        }

        /// Whether this demand asks for more CPU or more memory per GPU than `capacity`
        /// offers.
        public func exceeds(_ capacity: PerGPUDemand) -> Bool { cpu > capacity.cpu || memory > capacity.memory }

        /// What a cluster has in all per GPU: its CPU (milli) and memory over its GPUs, on
        /// every node (a node without GPUs adds CPU and memory, no GPUs). Zero when it has
        /// no GPUs.
        public static func capacity(cpuTotal: Double, memoryTotal: Double, gpus: Double) -> PerGPUDemand {
            gpus > 0 ? PerGPUDemand(cpu: cpuTotal / gpus, memory: memoryTotal / gpus) : PerGPUDemand(cpu: 0, memory: 0)
        }

        /// How many whole GPUs the node's free CPU and memory can feed (its GPU count at
        /// most).
        public func feedableGPUs(_ node: GPUNodeState) -> Double {
            var feedable = Double(node.gpuFree.count)
            if cpu > 0 { feedable = min(feedable, Double(max(0, node.cpuFree)) / cpu) }
            if memory > 0 { feedable = min(feedable, Double(max(0, node.memoryFree)) / memory) }
            return feedable
        }
    }

    /// The free GPU milli of `node` that `task` could not use: FGD's fragment (with
    /// memory), and, when the pod fits but the node can feed only `feedable` GPUs, the
    /// share of its usable GPU capacity beyond them.
    public static func strandedFragment(_ node: GPUNodeState, for task: GPUTaskShape, feedable: Double) -> Double {
        let total = node.gpuFreeTotal
        if total == 0 { return 0 }
        if task.isCPUOnly || !task.allows(model: node.model) { return Double(total) }
        var enough = 0
        var small: Int64 = 0
        for f in node.gpuFree {
            if f >= task.gpuMilli { enough += 1 } else { small += Int64(f) }
        }
        guard enough >= task.gpuCount, node.cpuFree >= task.cpu, node.memoryFree >= task.memory else { return Double(total) }
        let usable = Double(total - small)
        let usableGPUs = usable / 1000
        if feedable >= usableGPUs { return Double(small) }
        return Double(small) + usable * (usableGPUs - feedable) / usableGPUs
    }

    /// Expected stranded fragment of a node over the workload: Σ weight × fragment.
    public static func strandedFragmentation(_ node: GPUNodeState, _ workload: [WeightedShape], perGPU: PerGPUDemand) -> Double {
        let feedable = perGPU.feedableGPUs(node)
        var f = 0.0
        for w in workload { f += w.weight * strandedFragment(node, for: w.shape, feedable: feedable) }
        return f
    }
}
