/// The expected workload of a cluster whose GPUs are limited by CPU (or memory).
///
/// FGD weighs each typical pod by how often it arrives. When CPU runs out before the GPUs
/// do (whatever the placement when the CPU-only classes alone ask for more CPU per GPU of
/// GPU demand than the cluster has in all per GPU, ``GPUMath/PerGPUDemand/exceeds(_:)``;
/// or once the cluster's free CPU per free GPU falls short of what GPU pods ask), how many
/// GPUs end up allocated depends on how many GPUs the CPU left to GPU pods buys: a class
/// asking 3 CPUs per GPU allocates four GPUs with the CPU that one GPU of a
/// 12-CPU-per-GPU class takes. Keeping a hole usable for a class is then worth
/// what the class makes of the scarce resource, so each GPU class is weighed by its GPUs
/// per CPU relative to the workload's mean: a class asking half the mean CPU per GPU
/// counts twice, one asking twice the mean counts half. Holes stay open for the classes
/// that turn CPU into GPUs best, and the CPU-hungry ones are the ones that stop fitting.
extension GPUMath {
    /// `workload` with each GPU class's weight multiplied by the workload's mean CPU (and
    /// memory) per GPU over the class's own, for the resources that bind (`cpu`,
    /// `memory`; with both, the lesser of the two factors). CPU-only classes keep their
    /// weight (they bring no GPU); with neither resource binding, `workload` is returned
    /// unchanged, and so is every class when the GPU classes ask nothing of the resources
    /// that bind. A class asking nothing of a resource is counted as asking one unit (one
    /// milli-CPU, one byte) per GPU.
    public static func weightedByYield(_ workload: [WeightedShape], cpu: Bool, memory: Bool) -> [WeightedShape] {
        guard cpu || memory else { return workload }
        let mean = PerGPUDemand(workload)
        return workload.map { w in
            guard !w.shape.isCPUOnly, w.shape.demand > 0 else { return w }
            let gpus = Double(w.shape.demand) / 1000
            var factor = Double.infinity
            if cpu && mean.cpu > 0 { factor = min(factor, mean.cpu / (max(1, Double(w.shape.cpu)) / gpus)) }
            if memory && mean.memory > 0 { factor = min(factor, mean.memory / (max(1, Double(w.shape.memory)) / gpus)) }
            return factor.isFinite ? WeightedShape(w.shape, weight: w.weight * factor) : w
        }
    }
}

extension GPUMath {
    /// How the `gpu` strategy measures a workload on a cluster: whether it counts stranded
    /// GPUs, and the classes it weighs.
    public struct Regime: Sendable, Equatable {
        /// The classes, weighed by yield where CPU or memory limits the GPUs.
        public var classes: [WeightedShape]
        /// Whether stranding is measured (false beyond the line, where the CPU-only
        /// classes alone ask more per GPU than the cluster has).
        public var stranding: Bool

        /// The regime for `workload` on a cluster with `capacity` per GPU in all
        /// (``PerGPUDemand/capacity(cpuTotal:memoryTotal:gpus:)``) and `limited`, the GPU
        /// classes' mean demand limited to their share of what the cluster has left per
        /// free GPU (``PerGPUDemand/limited(by:besides:)``).
        ///
        /// Beyond the line (the CPU-only classes' demand per GPU exceeds `capacity`)
        /// stranding is not measured and the classes are weighed by yield in the resources
        /// that the CPU-only classes outgrow. Below it stranding is measured, and the
        /// classes are weighed by yield in a resource while the cluster limits it (`limited`
        /// below the mean).
        public init(_ workload: [WeightedShape], capacity: PerGPUDemand, limited: PerGPUDemand) {
            let cpuOnly = PerGPUDemand.cpuOnly(workload)
            let mean = PerGPUDemand(workload)
            stranding = !cpuOnly.exceeds(capacity)
            classes = stranding
                ? weightedByYield(workload, cpu: limited.cpu < mean.cpu, memory: limited.memory < mean.memory)
                : weightedByYield(workload, cpu: cpuOnly.cpu > capacity.cpu, memory: cpuOnly.memory > capacity.memory)
        }
    }
}
