import Foundation
import SwarmGPU
import SwarmPluginHost
@testable import SwarmReplay
import Testing

let traces = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Benchmarks/traces/openb").path

struct TraceTests {
    func write(_ text: String) -> String {
        let path = NSTemporaryDirectory() + "trace-\(UUID().uuidString.prefix(8)).csv"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func readsColumnsByNameAndNormalisesGPURequests() throws {
        let path = write("""
            name,num_gpu,cpu_milli,memory_mib,gpu_milli,gpu_spec,qos
            p1,1,4000,1024,460,V100M16|V100M32|V100M32,LS
            p2,2,8000,2048,1200,,BE
            p3,0,2000,512,500,T4,LS
            p4,1,1000,10,0,,LS
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pods = try Trace.pods(path: path)
        #expect(pods.map(\.kind) == ["share", "2-gpu", "cpu", "cpu"])
        #expect(pods[0].models == ["V100M16", "V100M32"] && pods[0].gpuMilli == 460)
        #expect(pods[1].gpuMilli == 1000 && pods[1].demand == 2000)
        // The spec counts only for GPU pods.
        #expect(pods[2].models.isEmpty && pods[2].demand == 0)
    }

    @Test func badFilesStopWithTheLineThatIsWrong() throws {
        let cases: [(String, Int, String)] = [
            ("name,cpu_milli,memory_mib,num_gpu\np1,1,1,0\n", 1, "missing column \"gpu_milli\""),
            ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,0,0\np2,lots,1,0,0\n", 3, "cpu_milli: \"lots\" is not an integer"),
            ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,0,0\np2,1,1,0\n", 3, "4 fields, the header has 5"),
            ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1,1,99,0\n", 2, "num_gpu 99"),
            ("name,cpu_milli,memory_mib,num_gpu,gpu_milli\n", 1, "no pods"),
        ]
        for (text, line, reason) in cases {
            let path = write(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect {
                _ = try Trace.pods(path: path)
            } throws: { error in
                let e = error as! TraceError
                return e.line == line && e.reason.contains(reason) && e.description.hasPrefix(path)
            }
        }
        let nodes = write("sn,cpu_milli,memory_mib,gpu\nn1,1,1,1\n")
        defer { try? FileManager.default.removeItem(atPath: nodes) }
        #expect(throws: TraceError.self) { try Trace.nodes(path: nodes) }
    }

    @Test func theOpenbFilesReadAsTheProtocolDescribes() throws {
        let nodes = try Trace.nodes(path: traces + "/openb_node_list_gpu_node.csv")
        #expect(nodes.count == 1213)
        #expect(Workload.capacity(nodes) == 6_212_000)
        #expect(nodes.reduce(0) { $0 + $1.cpuMilli } == 107_018_000)
        #expect(Dictionary(grouping: nodes, by: \.model).mapValues(\.count) == ["G2": 549, "T4": 404, "P100": 134, "V100M16": 55, "G3": 39, "V100M32": 30, "A10": 2])
    }

    /// The protocol's language-independent check values: distinct keys → kept typical pods.
    @Test(arguments: [("default", 91, 35), ("gpushare40", 88, 36), ("multigpu20", 91, 38), ("gpuspec10", 249, 74), ("cpu050", 89, 35)])
    func typicalPodsMatchTheProtocol(workload: String, distinct: Int, kept: Int) throws {
        let pods = try Trace.pods(path: traces + "/openb_pod_list_\(workload).csv")
        #expect(Set(pods.map { "\($0.cpuMilli)/\($0.gpuMilli)/\($0.gpuCount)/\($0.spec)" }).count == distinct)
        let typical = Workload.typicalPods(pods)
        #expect(typical.count == kept)
        #expect(abs(typical.reduce(0) { $0 + $1.weight } - 1) < 1e-9)
        #expect(typical.map(\.weight) == typical.map(\.weight).sorted(by: >))
    }
}

struct WorkloadTests {
    @Test func preparationIsSeededAndTunesUpToTheTarget() throws {
        let nodes = try Trace.nodes(path: traces + "/openb_node_list_gpu_node.csv")
        let pods = try Trace.pods(path: traces + "/openb_pod_list_default.csv")
        let a = Workload.prepare(pods: pods, nodes: nodes, seed: 42)
        let b = Workload.prepare(pods: pods, nodes: nodes, seed: 42)
        let c = Workload.prepare(pods: pods, nodes: nodes, seed: 43)
        #expect(a.arrivals.map(\.name) == b.arrivals.map(\.name) && a.rank == b.rank)
        #expect(a.arrivals.map(\.name) != c.arrivals.map(\.name))
        // The originals come first, shuffled; copies follow.
        #expect(Set(a.arrivals.prefix(pods.count).map(\.name)) == Set(pods.map(\.name)))
        #expect(a.arrivals.prefix(pods.count).map(\.name) != pods.map(\.name).sorted())
        let target: Int64 = 8_075_600
        #expect(a.totalDemand <= target + 7000 && a.totalDemand > target - 8000)
        #expect(a.arrivals.reduce(0) { $0 + $1.demand } == a.totalDemand)
        #expect(Set(a.rank) == Set(0..<nodes.count))
    }
}

struct FragmentationTests {
    @Test func fragmentFollowsTheProtocol() {
        let node = GPUNodeState(cpuFree: 8000, memoryFree: 1 << 20, gpuFree: [1000, 300, 0, 600], model: "T4")
        let share400 = GPUTaskShape(cpu: 1000, gpuCount: 1, gpuMilli: 400)
        let whole2 = GPUTaskShape(cpu: 1000, gpuCount: 2, gpuMilli: 1000)
        let cpuOnly = GPUTaskShape(cpu: 1000, gpuCount: 0, gpuMilli: 0)
        let v100 = GPUTaskShape(cpu: 1000, gpuCount: 1, gpuMilli: 1000, models: ["V100M16"])
        let hungry = GPUTaskShape(cpu: 9000, gpuCount: 1, gpuMilli: 100)
        #expect(GPUMath.fragment(node, for: share400) == 300)   // fits: only the GPU too small
        #expect(GPUMath.fragment(node, for: whole2) == 1900)    // short of GPUs: all of it
        #expect(GPUMath.fragment(node, for: cpuOnly) == 1900)   // CPU-only: all of it
        #expect(GPUMath.fragment(node, for: v100) == 1900)      // wrong model: all of it
        #expect(GPUMath.fragment(node, for: hungry) == 1900)    // short of CPU: all of it
        let f = GPUMath.fragmentation(node, [WeightedShape(share400, weight: 0.5), WeightedShape(cpuOnly, weight: 0.5)])
        #expect(f == 0.5 * 300 + 0.5 * 1900)
        #expect(GPUMath.defaultGPUs(share400, node) == [3])     // best fit: 600 is the least that is enough
        #expect(GPUMath.defaultGPUs(GPUTaskShape(cpu: 0, gpuCount: 1, gpuMilli: 1000), node) == [0])
        #expect(GPUMath.defaultGPUs(whole2, node) == nil)
    }

    @Test func memoryAwareFragmentCountsATaskShortOfMemoryAsNotFitting() {
        let node = GPUNodeState(cpuFree: 8000, memoryFree: 4096, gpuFree: [1000, 300], model: "T4")
        let small = GPUTaskShape(cpu: 1000, memory: 2048, gpuCount: 1, gpuMilli: 500)
        let big = GPUTaskShape(cpu: 1000, memory: 8192, gpuCount: 1, gpuMilli: 500)
        // FGD's measure leaves memory out: both fit, only the 300 is too small.
        #expect(GPUMath.fragment(node, for: big) == 300)
        // Memory-aware: the big one cannot run here at all, so all 1,300 are lost to it.
        #expect(GPUMath.fragment(node, for: big, memory: true) == 1300)
        #expect(GPUMath.fragment(node, for: small, memory: true) == 300)
        let w = [WeightedShape(small, weight: 0.5), WeightedShape(big, weight: 0.5)]
        #expect(GPUMath.fragmentation(node, w, memory: true) == 0.5 * 300 + 0.5 * 1300)
        #expect(GPUMath.fragmentation(node, w) == 300)
    }
}

struct TypicalPodMemoryTests {
    @Test func aClassCarriesTheMedianMemoryOfItsPods() {
        func pod(_ name: String, _ mem: Int64, cpu: Int64 = 1000) -> TracePod {
            TracePod(name: name, cpuMilli: cpu, memoryMiB: mem, gpuCount: 1, gpuMilli: 500, spec: "")
        }
        // One class of four pods (memory is not part of the key) and one of one.
        let pods = [pod("a", 900), pod("b", 100), pod("c", 300), pod("d", 200), pod("e", 50, cpu: 2000)]
        let typical = Workload.typicalPods(pods, cover: 1)
        #expect(typical.count == 2)
        #expect(typical[0].weight == 0.8 && typical[0].pod.name == "a")
        #expect(typical[0].pod.memoryMiB == 200, "lower median of 100, 200, 300, 900")
        #expect(typical[1].pod.memoryMiB == 50)
    }

    @Test func hindsightWeighsTheClassesByTheArrivalsStillToCome() throws {
        func pod(_ name: String, cpu: Int64, count: Int, milli: Int32, spec: String = "", mem: Int64 = 100) -> TracePod {
            TracePod(name: name, cpuMilli: cpu, memoryMiB: mem, gpuCount: count, gpuMilli: milli, spec: spec)
        }
        let share = pod("s", cpu: 4000, count: 1, milli: 500)
        let whole = pod("w", cpu: 8000, count: 1, milli: 1000)
        let t4 = pod("t", cpu: 8000, count: 1, milli: 1000, spec: "T4")
        let typical = [WeightedShape(share.shape, weight: 0.5), WeightedShape(whole.shape, weight: 0.3),
                       WeightedShape(t4.shape, weight: 0.2)]
        // Memory is not part of a class; a pod of no class (2 GPUs) is left out.
        let arrivals = [share, whole, pod("s2", cpu: 4000, count: 1, milli: 500, mem: 9999), whole, t4,
                        pod("x", cpu: 8000, count: 2, milli: 1000), whole]
        let all = try #require(Workload.remainingWeights(typical, arrivals: arrivals[...]))
        let expected: [Double] = [2.0 / 6, 3.0 / 6, 1.0 / 6]
        #expect(all == expected)
        // From the fifth arrival on: one T4 pod and one whole-GPU pod; no sharing pod is left.
        let late = try #require(Workload.remainingWeights(typical, arrivals: arrivals[4...]))
        let lateExpected: [Double] = [0, 0.5, 0.5]
        #expect(late == lateExpected)
        #expect(Workload.remainingWeights(typical, arrivals: arrivals[5...5]) == nil, "only a pod of no class is left")
        #expect(Workload.remainingWeights(typical, arrivals: arrivals[7...]) == nil)
    }
}

struct ReplayRunTests {
    static let pluginDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path

    @Test func aReplayAccountsForEveryPodAndNeverOverAllocates() throws {
        let registry = PluginRegistry()
        // The build directory also holds dependencies' own libraries (a plain `swift build`
        // makes libGRDB-dynamic.so); only the project's plugins must load.
        let errors = registry.loadDirectory(Self.pluginDir).filter { $0.file.contains("libswarm-") }
        #expect(errors.isEmpty, "\(errors)")
        #expect(registry.strategy("gpu") != nil && registry.strategy("fgd") != nil)
        let nodes = [TraceNode(name: "a", cpuMilli: 8000, memoryMiB: 8192, gpus: 2, model: "T4"),
                     TraceNode(name: "b", cpuMilli: 8000, memoryMiB: 8192, gpus: 1, model: "V100M16")]
        func pod(_ name: String, _ cpu: Int64, _ count: Int, _ milli: Int32, _ spec: String = "") -> TracePod {
            TracePod(name: name, cpuMilli: cpu, memoryMiB: 100, gpuCount: count, gpuMilli: milli, spec: spec)
        }
        let arrivals = [pod("p1", 1000, 1, 500), pod("p2", 1000, 1, 500), pod("p3", 1000, 1, 1000, "V100M16"),
                        pod("p4", 1000, 2, 1000), pod("p5", 1000, 1, 1000), pod("p6", 1000, 1, 1000), pod("p7", 100, 0, 0)]
        let workload = PreparedWorkload(arrivals: arrivals, rank: [0, 1], totalDemand: arrivals.reduce(0) { $0 + $1.demand }, originals: 7)
        let typical = Workload.weightedShapes(Workload.typicalPods(arrivals, cover: 1))
        for policy in ["fgd", "best-fit", "gpu", "random", "dotprod", "gpu-packing", "gpu-clustering", "binpack"] {
            let strategy = try #require(registry.strategy(policy), "\(policy) is not loaded from \(Self.pluginDir)")
            let run = ClusterReplay(nodes: nodes).run(policy: policy, strategy: strategy, workload: workload, typical: typical, seed: 42)
            let hindsight = ClusterReplay(nodes: nodes).run(policy: policy, strategy: strategy, workload: workload, typical: typical,
                                                            seed: 42, hindsight: true)
            #expect(hindsight.placed + hindsight.failed.values.reduce(0, +) == arrivals.count)
            #expect(run.arrivedPct.count == arrivals.count)
            #expect(run.placed + run.failed.values.reduce(0, +) == arrivals.count)
            #expect(run.allocatedPct.allSatisfy { $0 <= 100 })
            #expect(run.allocatedPct == run.allocatedPct.sorted(), "allocation only grows")
            // The CPU-only pod always fits; three GPUs can take at most four of the GPU pods.
            #expect(run.failed["cpu"] == nil, "\(policy): \(run.failed)")
            #expect((4...5).contains(run.placed), "\(policy): placed \(run.placed)")
            #expect(run.allocatedPct.last! <= 100 && run.allocatedPct.last! >= 100.0 / 3, "\(policy): \(run.allocatedPct)")
            // Every milli-CPU is accounted for: placed pods' requests plus what is left free.
            let use = run.cpuUse
            #expect(use["CPU-only pods"] == 100, "\(policy): \(use)")
            #expect(abs(CPUUse.parts.reduce(0.0) { $0 + (use[$1] ?? 0) } - 16000) < 1e-9, "\(policy): \(use)")
            #expect(use["GPU pods"] == Double(1000 * (run.placed - 1)), "\(policy): \(use)")   // 1 CPU each
            #expect((run.firstFailureArrived != nil) == !run.failed.isEmpty)
            // The free pieces add up to the GPU capacity not allocated (3 GPUs).
            let freeMilli = 3000 * (1 - run.allocatedPct.last! / 100)
            #expect(abs(run.pieces.values.reduce(0, +) - freeMilli) < 1, "\(policy): \(run.pieces)")
            // A replay repeats exactly for the same seed.
            let again = ClusterReplay(nodes: nodes).run(policy: policy, strategy: strategy, workload: workload, typical: typical, seed: 42)
            #expect(again.allocatedPct == run.allocatedPct && again.fragPct == run.fragPct, "\(policy) is not repeatable")
        }
    }
}
