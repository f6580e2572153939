/// The expected workload of a cluster whose GPUs are limited by CPU (or memory).
///
/// FGD weighs each typical pod by how often it arrives. When the CPU-only classes alone
/// ask for more CPU per GPU of GPU demand than the cluster has in all per GPU
/// (``GPUMath/PerGPUDemand/exceeds(_:)``), CPU runs out before the GPUs do whatever the
/// placement, and how many GPUs end up allocated depends on how many GPUs the CPU left to
/// GPU pods buys: a class asking 3 CPUs per GPU allocates four GPUs with the CPU that one
/// GPU of a 12-CPU-per-GPU class takes. Keeping a hole usable for a class is then worth
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
