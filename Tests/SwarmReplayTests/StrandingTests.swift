import SwarmGPU
import Testing

struct StrandingTests {
    @Test func gpusTheNodesCPUCannotFeedAreStranded() {
        // Four whole GPUs free, CPU for two 8-CPU pods.
        let node = GPUNodeState(cpuFree: 16000, memoryFree: 1 << 20, gpuFree: [1000, 1000, 1000, 1000], model: "G2")
        let pod = GPUTaskShape(cpu: 8000, gpuCount: 1, gpuMilli: 1000)
        let perGPU = GPUMath.PerGPUDemand([WeightedShape(pod, weight: 1)])
        #expect(perGPU == GPUMath.PerGPUDemand(cpu: 8000, memory: 0))
        #expect(perGPU.feedableGPUs(node) == 2)
        // FGD: one pod fits, so nothing is lost. Here: two of the four GPUs cannot be fed.
        #expect(GPUMath.fragment(node, for: pod) == 0)
        #expect(GPUMath.strandedFragment(node, for: pod, feedable: 2) == 2000)
        #expect(GPUMath.strandedFragmentation(node, [WeightedShape(pod, weight: 1)], perGPU: perGPU) == 2000)
        // Enough CPU for every free GPU: exactly FGD's fragment.
        #expect(GPUMath.strandedFragment(node, for: pod, feedable: 4) == 0)
        // As in FGD: too-small GPUs, a CPU-only pod, another model, a pod that does not fit.
        let partial = GPUNodeState(cpuFree: 16000, memoryFree: 1 << 20, gpuFree: [1000, 300, 600], model: "T4")
        let share = GPUTaskShape(cpu: 1000, gpuCount: 1, gpuMilli: 500)
        #expect(GPUMath.strandedFragment(partial, for: share, feedable: 5) == 300)
        #expect(GPUMath.strandedFragment(partial, for: GPUTaskShape(cpu: 1000, gpuCount: 0, gpuMilli: 0), feedable: 5) == 1900)
        #expect(GPUMath.strandedFragment(partial, for: GPUTaskShape(cpu: 1000, gpuCount: 1, gpuMilli: 500, models: ["G2"]), feedable: 5) == 1900)
        #expect(GPUMath.strandedFragment(partial, for: GPUTaskShape(cpu: 20000, gpuCount: 1, gpuMilli: 500), feedable: 5) == 1900)
        #expect(GPUMath.strandedFragment(partial, for: GPUTaskShape(cpu: 1000, memory: 1 << 21, gpuCount: 1, gpuMilli: 500), feedable: 5) == 1900)
        // 1.6 GPUs' worth usable, one fed: 0.6 of the 1,600 is stranded.
        #expect(abs(GPUMath.strandedFragment(partial, for: share, feedable: 1) - (300 + 600)) < 1e-9)
    }

    @Test func theMeanDemandPerGPUComesFromTheGPUClassesOnly() {
        let w = [WeightedShape(GPUTaskShape(cpu: 2000, memory: 100, gpuCount: 1, gpuMilli: 500), weight: 0.4),
                 WeightedShape(GPUTaskShape(cpu: 8000, memory: 400, gpuCount: 2, gpuMilli: 1000), weight: 0.4),
                 WeightedShape(GPUTaskShape(cpu: 64000, memory: 9999, gpuCount: 0, gpuMilli: 0), weight: 0.2)]
        // GPUs: 0.4 × 0.5 + 0.4 × 2 = 1.0; CPU 0.4 × 2000 + 0.4 × 8000 = 4000; memory 200.
        let d = GPUMath.PerGPUDemand(w)
        #expect(abs(d.cpu - 4000) < 1e-9 && abs(d.memory - 200) < 1e-9)
        // Memory can be what limits; the GPU count caps the answer.
        let node = GPUNodeState(cpuFree: 40000, memoryFree: 300, gpuFree: [1000, 1000, 1000, 1000], model: "T4")
        #expect(abs(d.feedableGPUs(node) - 1.5) < 1e-9)
        #expect(GPUMath.PerGPUDemand(cpu: 1, memory: 0).feedableGPUs(node) == 4)
        #expect(GPUMath.PerGPUDemand([]) == GPUMath.PerGPUDemand(cpu: 0, memory: 0))
    }

    @Test func whenTheClusterRunsShortTheRequirementIsWhatItHasLeftPerFreeGPU() {
        let d = GPUMath.PerGPUDemand(cpu: 12000, memory: 1000)
        // 4 free GPUs with 24 CPUs between them (a node with no free GPU does not count):
        // 6 CPUs per free GPU, and memory is plentiful.
        let nodes = [GPUNodeState(cpuFree: 16000, memoryFree: 9000, gpuFree: [1000, 1000, 0], model: "G2"),
                     GPUNodeState(cpuFree: 8000, memoryFree: 9000, gpuFree: [500, 500], model: "T4"),
                     GPUNodeState(cpuFree: 96000, memoryFree: 9000, gpuFree: [0, 0], model: "G2")]
        #expect(d.limited(by: nodes) == GPUMath.PerGPUDemand(cpu: 8000, memory: 1000))
        // Enough everywhere: unchanged; no free GPU at all: unchanged.
        let rich = [GPUNodeState(cpuFree: 96000, memoryFree: 99000, gpuFree: [1000], model: "G2")]
        #expect(d.limited(by: rich) == d)
        #expect(d.limited(by: [nodes[2]]) == d)
    }

    @Test func cpuOnlyPodsTakeTheirShareOfWhatTheClusterHasLeft() {
        let gpuPod = WeightedShape(GPUTaskShape(cpu: 8000, memory: 400, gpuCount: 1, gpuMilli: 1000), weight: 0.5)
        let cpuPod = WeightedShape(GPUTaskShape(cpu: 16000, memory: 100, gpuCount: 0, gpuMilli: 0), weight: 0.5)
        let w = [gpuPod, cpuPod]
        // Per GPU of demand (0.5 GPUs): GPU pods ask 8 CPUs and 400 memory, CPU-only pods
        // 16 CPUs and 100 memory.
        let d = GPUMath.PerGPUDemand(w), o = GPUMath.PerGPUDemand.cpuOnly(w)
        #expect(d == GPUMath.PerGPUDemand(cpu: 8000, memory: 400) && o == GPUMath.PerGPUDemand(cpu: 16000, memory: 100))
        // 2 free GPUs, 36 CPUs and 1,000 memory: 18 CPUs per free GPU, of which GPU pods can
        // count on 8 / (8 + 16) = 6; memory 500 per GPU, of which 400 / 500 = 400.
        let nodes = [GPUNodeState(cpuFree: 36000, memoryFree: 1000, gpuFree: [1000, 1000], model: "G2")]
        let limited = d.limited(by: nodes, besides: o)
        #expect(abs(limited.cpu - 6000) < 1e-9 && abs(limited.memory - 400) < 1e-9)
        // Without CPU-only pods in the workload, the whole 18 is there: the demand stands.
        #expect(d.limited(by: nodes, besides: .cpuOnly([gpuPod])) == d)
        #expect(GPUMath.PerGPUDemand.cpuOnly([cpuPod]) == GPUMath.PerGPUDemand(cpu: 0, memory: 0))
    }

    @Test func aNodeBuiltWithLessCPUPerGPUIsNotStrandedByItsShape() {
        let d = GPUMath.PerGPUDemand(cpu: 11000, memory: 1000)
        // 16 CPUs for 2 GPUs: fed at 8 per GPU, so a fresh node feeds both GPUs...
        let capped = d.capped(cpuTotal: 16000, memoryTotal: 1 << 20, gpus: 2)
        #expect(capped == GPUMath.PerGPUDemand(cpu: 8000, memory: 1000))
        let fresh = GPUNodeState(cpuFree: 16000, memoryFree: 1 << 20, gpuFree: [1000, 1000], model: "P100")
        #expect(capped.feedableGPUs(fresh) == 2 && d.feedableGPUs(fresh) < 2)
        let small = WeightedShape(GPUTaskShape(cpu: 4000, gpuCount: 1, gpuMilli: 1000), weight: 1)
        #expect(GPUMath.strandedFragmentation(fresh, [small], perGPU: capped) == 0)
        #expect(GPUMath.strandedFragmentation(fresh, [small], perGPU: d) > 0)
        // ...but a pod that leaves 4 CPUs for its last GPU strands half of it.
        let after = GPUNodeState(cpuFree: 4000, memoryFree: 1 << 20, gpuFree: [0, 1000], model: "P100")
        #expect(abs(GPUMath.strandedFragmentation(after, [small], perGPU: capped) - 500) < 1e-9)
        // A node with more per GPU than the workload asks, or without GPUs: unchanged.
        #expect(d.capped(cpuTotal: 96000, memoryTotal: 1 << 20, gpus: 8) == d)
        #expect(d.capped(cpuTotal: 8000, memoryTotal: 100, gpus: 0) == d)
    }

    @Test func cpuOnlyClassesOutgrowAClusterWithLessPerGPUThanTheyAsk() {
        // 2 nodes: 96 CPUs and 8 GPUs, 32 CPUs and no GPU: 16 CPUs per GPU in all.
        let capacity = GPUMath.PerGPUDemand.capacity(cpuTotal: 128_000, memoryTotal: 800, gpus: 8)
        #expect(capacity == GPUMath.PerGPUDemand(cpu: 16_000, memory: 100))
        #expect(GPUMath.PerGPUDemand.capacity(cpuTotal: 128_000, memoryTotal: 800, gpus: 0) == GPUMath.PerGPUDemand(cpu: 0, memory: 0))
        // One GPU pod (1 GPU) for each CPU-only pod: the CPU-only pods ask their CPU per GPU.
        let gpuPod = WeightedShape(GPUTaskShape(cpu: 8000, memory: 10, gpuCount: 1, gpuMilli: 1000), weight: 0.5)
        func cpuOnly(_ cpu: Int64, _ memory: Int64) -> GPUMath.PerGPUDemand {
            .cpuOnly([gpuPod, WeightedShape(GPUTaskShape(cpu: cpu, memory: memory, gpuCount: 0, gpuMilli: 0), weight: 0.5)])
        }
        #expect(!cpuOnly(16_000, 100).exceeds(capacity))
        #expect(cpuOnly(16_001, 100).exceeds(capacity))
        #expect(cpuOnly(8_000, 101).exceeds(capacity))
        #expect(!GPUMath.PerGPUDemand.cpuOnly([gpuPod]).exceeds(capacity))
    }
}
