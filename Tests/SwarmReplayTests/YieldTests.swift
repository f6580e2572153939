import SwarmGPU
import Testing

struct YieldTests {
    // Two GPU classes and a CPU-only one; the GPU classes ask 7,500 milli-CPUs per GPU on
    // the mean: (0.5 × 3,000 + 0.5 × 12,000) / (0.5 + 0.5).
    static let efficient = GPUTaskShape(cpu: 3000, memory: 400, gpuCount: 1, gpuMilli: 1000)
    static let hungry = GPUTaskShape(cpu: 12000, memory: 100, gpuCount: 1, gpuMilli: 1000)
    static let cpuOnly = GPUTaskShape(cpu: 8000, memory: 1000, gpuCount: 0, gpuMilli: 0)
    static let workload = [WeightedShape(efficient, weight: 0.5), WeightedShape(hungry, weight: 0.5), WeightedShape(cpuOnly, weight: 1)]

    @Test func eachGPUClassIsWeighedByItsGPUsPerCPURelativeToTheMean() {
        let w = GPUMath.weightedByYield(Self.workload, cpu: true, memory: false)
        #expect(w.map(\.shape) == Self.workload.map(\.shape))
        #expect(abs(w[0].weight - 0.5 * 7500 / 3000) < 1e-12)    // 2.5 times as many GPUs per CPU
        #expect(abs(w[1].weight - 0.5 * 7500 / 12000) < 1e-12)   // 0.625 times
        #expect(w[2].weight == 1, "a CPU-only class brings no GPU and keeps its weight")
        // A sharing class is judged per GPU of its demand: 1,500 milli-CPUs for half a GPU
        // is 3,000 per GPU.
        let share = WeightedShape(GPUTaskShape(cpu: 1500, gpuCount: 1, gpuMilli: 500), weight: 1)
        let mean = GPUMath.PerGPUDemand([share, WeightedShape(Self.hungry, weight: 1)]).cpu   // 13,500 / 1.5
        #expect(mean == 9000)
        #expect(GPUMath.weightedByYield([share], cpu: true, memory: false)[0].weight == 1, "its own mean")
        #expect(abs(GPUMath.weightedByYield([share, WeightedShape(Self.hungry, weight: 1)], cpu: true, memory: false)[0].weight - 3) < 1e-12)
    }

    @Test func memoryCountsWhenItBindsAndTheLesserFactorWhenBothDo() {
        // Memory per GPU on the mean: (0.5 × 400 + 0.5 × 100) / 1 = 250.
        let byMemory = GPUMath.weightedByYield(Self.workload, cpu: false, memory: true)
        #expect(abs(byMemory[0].weight - 0.5 * 250 / 400) < 1e-12)
        #expect(abs(byMemory[1].weight - 0.5 * 250 / 100) < 1e-12)
        let both = GPUMath.weightedByYield(Self.workload, cpu: true, memory: true)
        #expect(abs(both[0].weight - 0.5 * 250 / 400) < 1e-12, "memory's 0.625 is less than CPU's 2.5")
        #expect(abs(both[1].weight - 0.5 * 7500 / 12000) < 1e-12, "CPU's 0.625 is less than memory's 2.5")
        // Nothing binds, or the GPU classes ask nothing of what binds: weights unchanged.
        #expect(GPUMath.weightedByYield(Self.workload, cpu: false, memory: false) == Self.workload)
        let free = [WeightedShape(GPUTaskShape(cpu: 0, gpuCount: 1, gpuMilli: 1000), weight: 1), WeightedShape(Self.cpuOnly, weight: 1)]
        #expect(GPUMath.weightedByYield(free, cpu: true, memory: false) == free)
    }

    @Test func aHoleIsKeptForTheClassThatMakesMoreOfTheCPU() {
        // A 2-CPU pod for one GPU, to place on X (13 CPUs, 2 GPUs) or Y (5 CPUs, 2 GPUs),
        // with three classes equally likely: itself, 3.5 CPUs and 12 CPUs per GPU.
        let pod = GPUTaskShape(cpu: 2000, gpuCount: 1, gpuMilli: 1000)
        let small = GPUTaskShape(cpu: 3500, gpuCount: 1, gpuMilli: 1000)
        let big = GPUTaskShape(cpu: 12000, gpuCount: 1, gpuMilli: 1000)
        let fgd = [pod, small, big].map { WeightedShape($0, weight: 1.0 / 3) }
        let x = GPUNodeState(cpuFree: 13000, memoryFree: 1 << 30, gpuFree: [1000, 1000], model: "G2")
        let y = GPUNodeState(cpuFree: 5000, memoryFree: 1 << 30, gpuFree: [1000, 1000], model: "G2")
        func growth(_ n: GPUNodeState, _ w: [WeightedShape]) -> Double {
            GPUMath.fragmentation(GPUMath.placing(pod, on: n, gpus: [0]), w, memory: true) - GPUMath.fragmentation(n, w, memory: true)
        }
        // On X the 12-CPU class stops fitting (+1,000 of it); on Y the 3.5-CPU class stops
        // fitting (+1,000) and the 12-CPU class, which did not fit, loses 1,000 it could not
        // use anyway. FGD's measure grows less on Y and closes the small class's hole.
        #expect(abs(growth(x, fgd) - 1000.0 / 3) < 1e-9)
        #expect(abs(growth(y, fgd) - 0) < 1e-9)
        // Weighed by GPUs per CPU (mean 17,500 / 3 per GPU), the measure grows less on X:
        // the hole kept on Y is one the 3.5-CPU class turns into GPUs at 3.4 times the
        // 12-CPU class's rate.
        let yield = GPUMath.weightedByYield(fgd, cpu: true, memory: false)
        let mean = 17500.0 / 3
        #expect(abs(growth(x, yield) - 1000.0 / 3 * mean / 12000) < 1e-9)
        #expect(abs(growth(y, yield) - 1000.0 / 3 * (mean / 3500 - mean / 12000)) < 1e-9)
        #expect(growth(x, yield) < growth(y, yield))
    }

    @Test func theRegimeWeighsByYieldWhereCPULimitsTheGPUs() {
        // GPU classes as above (7,500 milli-CPUs per GPU on the mean, 250 bytes); the
        // CPU-only class asks 8,000 per GPU of their demand (weight 1 × 8,000 / 1 GPU).
        let mean = GPUMath.PerGPUDemand(Self.workload)
        let yieldByCPU = GPUMath.weightedByYield(Self.workload, cpu: true, memory: false)
        // Beyond the line: 8,000 CPU-only milli-CPUs per GPU against 7,999 in all.
        let beyond = GPUMath.Regime(Self.workload, capacity: .init(cpu: 7_999, memory: 1_048_576), limited: mean)
        #expect(!beyond.stranding)
        #expect(beyond.classes == yieldByCPU, "weighed by CPU from the start, whatever is left")
        // Below it (16,000 per GPU in all): stranding, and the counts' weights while the
        // cluster's share per free GPU covers the mean ...
        let roomy = GPUMath.Regime(Self.workload, capacity: .init(cpu: 16_000, memory: 1_048_576), limited: mean)
        #expect(roomy.stranding && roomy.classes == Self.workload)
        // ... weighed by CPU once it is less than the mean, by memory once memory is.
        let short = GPUMath.Regime(Self.workload, capacity: .init(cpu: 16_000, memory: 1_048_576),
                                   limited: .init(cpu: 7_000, memory: mean.memory))
        #expect(short.stranding && short.classes == yieldByCPU)
        let shortOfMemory = GPUMath.Regime(Self.workload, capacity: .init(cpu: 16_000, memory: 1_048_576),
                                           limited: .init(cpu: mean.cpu, memory: 200))
        #expect(shortOfMemory.classes == GPUMath.weightedByYield(Self.workload, cpu: false, memory: true))
        // Beyond the line in memory only: weighed by memory.
        let memoryBound = GPUMath.Regime(Self.workload, capacity: .init(cpu: 16_000, memory: 999), limited: mean)
        #expect(!memoryBound.stranding && memoryBound.classes == GPUMath.weightedByYield(Self.workload, cpu: false, memory: true))
    }
}
