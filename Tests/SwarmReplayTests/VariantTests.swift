import Foundation
import SwarmGPU
@testable import SwarmReplay
import Testing

struct TraceVariantTests {
    let nodes = traces + "/openb_node_list_gpu_node.csv"
    let source = traces + "/openb_pod_list_default.csv"

    func generate(_ weights: VariantWeights, count: Int? = nil, seed: UInt64 = 1, pods: String? = nil) throws -> [TracePod] {
        let text = try TraceVariant.generate(podsAt: pods ?? source, nodes: try Trace.nodes(path: nodes), weights: weights,
                                             count: count, seed: seed)
        let path = NSTemporaryDirectory() + "variant-\(UUID().uuidString.prefix(8)).csv"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try Trace.pods(path: path)
    }

    @Test func classSharesReachTheirWeightsAndRequestsComeFromTheSource() throws {
        let original = try Trace.pods(path: source)
        let shapes = Set(original.map { "\($0.cpuMilli)/\($0.memoryMiB)/\($0.gpuCount)/\($0.gpuMilli)" })
        let pods = try generate(VariantWeights(cpuOnly: 0.3, sharing: 0.6, multiGPU: 0.05, gpuSpec: 0.2), count: 20_000)
        #expect(pods.count == 20_000)
        let s = TraceVariant.shares(pods)
        // Binomial draws of 20,000 (14,000 GPU pods): 4 SD is under 0.015 for each share.
        #expect(abs(s.cpuOnly - 0.3) < 0.015 && abs(s.sharing - 0.6) < 0.015, "\(s)")
        #expect(abs(s.multiGPU - 0.05) < 0.01 && abs(s.gpuSpec - 0.2) < 0.015, "\(s)")
        // Every pod's requests are a source pod's; names are unique.
        #expect(pods.allSatisfy { shapes.contains("\($0.cpuMilli)/\($0.memoryMiB)/\($0.gpuCount)/\($0.gpuMilli)") })
        #expect(Set(pods.map(\.name)).count == pods.count)
        // Models drawn from the node list are models the cluster has, on nodes big enough.
        let cluster = try Trace.nodes(path: nodes)
        for p in pods where !p.models.isEmpty {
            #expect(p.models.count == 1 && cluster.contains { $0.model == p.models[0] && $0.gpus >= p.gpuCount }, "\(p)")
        }
    }

    @Test func unsetWeightsKeepTheSourcesSharesAndTheSeedRepeats() throws {
        let a = try generate(VariantWeights(), count: 20_000, seed: 7)
        let b = try generate(VariantWeights(), count: 20_000, seed: 7)
        let c = try generate(VariantWeights(), count: 20_000, seed: 8)
        #expect(a == b)
        #expect(a != c)
        let want = TraceVariant.shares(try Trace.pods(path: source))
        let got = TraceVariant.shares(a)
        #expect(abs(got.cpuOnly - want.cpuOnly) < 0.015 && abs(got.sharing - want.sharing) < 0.015 && abs(got.multiGPU - want.multiGPU) < 0.01)
    }

    @Test func badWeightsAndMissingClassesAreRefusedNamingTheParameter() throws {
        let multigpu20 = traces + "/openb_pod_list_multigpu20.csv"
        let onlyWhole = write("""
            name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec
            p1,1000,100,1,1000,
            p2,1000,100,0,0,
            """)
        defer { try? FileManager.default.removeItem(atPath: onlyWhole) }
        let cases: [(VariantWeights, Int?, String?, String)] = [
            (VariantWeights(sharing: 1.5), nil, nil, "--sharing 1.5 is outside 0...1"),
            (VariantWeights(cpuOnly: -0.1), nil, nil, "--cpu-only -0.1 is outside 0...1"),
            (VariantWeights(gpuSpec: .nan), nil, nil, "--gpu-spec nan is outside 0...1"),
            (VariantWeights(sharing: 0.7, multiGPU: 0.4), nil, nil, "add up to 1.1"),
            (VariantWeights(cpuOnly: 1), nil, nil, "--cpu-only 1 leaves no GPU pods"),
            (VariantWeights(), 0, nil, "--count 0 leaves no pods"),
            (VariantWeights(multiGPU: 0.1), nil, onlyWhole, "--multi-gpu asks for multi-GPU pods"),
            (VariantWeights(sharing: 0.2), nil, onlyWhole, "--sharing asks for GPU-sharing pods"),
            (VariantWeights(gpuSpec: 0.1), nil, multigpu20, "--gpu-spec needs the column gpu_spec"),
        ]
        for (weights, count, pods, message) in cases {
            #expect {
                _ = try TraceVariant.generate(podsAt: pods ?? source, nodes: try Trace.nodes(path: nodes), weights: weights,
                                              count: count, seed: 1)
            } throws: { error in
                "\(error)".contains(message)
            }
        }
        // Without a node list, a source that names no model has nothing to draw specs from.
        #expect {
            _ = try TraceVariant.generate(podsAt: source, nodes: nil, weights: VariantWeights(gpuSpec: 0.1), count: nil, seed: 1)
        } throws: { "\($0)".contains("pass --nodes") }
        // A garbled source stops at its line.
        let garbled = write("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,1000,100,1,1000\np2,x,100,0,0\n")
        defer { try? FileManager.default.removeItem(atPath: garbled) }
        #expect {
            _ = try TraceVariant.generate(podsAt: garbled, nodes: nil, weights: VariantWeights(), count: nil, seed: 1)
        } throws: { ($0 as? TraceError)?.line == 3 }
    }

    @Test func aListWithoutGPUPodsDoesNotHangTheTuneUp() throws {
        let nodes = [TraceNode(name: "a", cpuMilli: 8000, memoryMiB: 8192, gpus: 1, model: "T4")]
        let pods = [TracePod(name: "c", cpuMilli: 100, memoryMiB: 10, gpuCount: 0, gpuMilli: 0, spec: "")]
        let w = Workload.prepare(pods: pods, nodes: nodes, seed: 1)
        #expect(w.arrivals.count == 1 && w.totalDemand == 0)
    }

    func write(_ text: String) -> String {
        let path = NSTemporaryDirectory() + "trace-\(UUID().uuidString.prefix(8)).csv"
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

struct PairedTestTests {
    @Test func studentTMatchesTheTables() {
        // Two-sided critical values of t with 9 degrees of freedom (any statistics table).
        #expect(abs(PairedTest.twoSidedP(t: 2.262, df: 9) - 0.05) < 0.0005)
        #expect(abs(PairedTest.twoSidedP(t: 3.250, df: 9) - 0.01) < 0.0002)
        #expect(abs(PairedTest.twoSidedP(t: -1.833, df: 9) - 0.10) < 0.001)
        #expect(abs(PairedTest.twoSidedP(t: 1.96, df: 10_000) - 0.05) < 0.0005)
        #expect(PairedTest.twoSidedP(t: 0, df: 9) == 1)
        // I_x(a, b) for whole a, b is a binomial tail: I_0.5(2, 3) = (6 + 4 + 1) / 16.
        #expect(abs(PairedTest.regularizedIncompleteBeta(0.5, 2, 3) - 11.0 / 16) < 1e-12)
        #expect(abs(PairedTest.regularizedIncompleteBeta(0.9, 2, 3) - (1 - 0.0037)) < 1e-12)
    }

    func run(_ policy: String, _ seed: UInt64, _ alloc: Double) -> ReplayRun {
        ReplayRun(policy: policy, seed: seed, arrivedPct: [130], allocatedPct: [alloc], fragPct: [0], failed: [:], placed: 1,
                  seconds: 0, p99DecisionSeconds: 0)
    }

    @Test func pairsBySeedAndCountsSeedsAboveAndBelow() {
        // Seed 4 has only one policy and takes no part.
        let runs = [run("a", 1, 95.5), run("a", 2, 95.2), run("a", 3, 95.0), run("a", 4, 99),
                    run("b", 1, 95.0), run("b", 2, 95.0), run("b", 3, 95.1)]
        let c = PairedTest.compare(runs, "a", "b", measure: "alloc@130") { $0.allocation(at: 130) }
        #expect(c.differences.count == 3)
        let d = [0.5, 0.2, -0.1]
        for (x, y) in zip(c.differences, d) { #expect(abs(x - y) < 1e-9) }
        #expect(abs(c.mean - 0.2) < 1e-9 && abs(c.sd - 0.3) < 1e-9)
        #expect(c.above == 2 && c.below == 1)
        #expect(abs(c.t - 0.2 / (0.3 / 3.0.squareRoot())) < 1e-9)
        #expect(c.p > 0.3 && c.p < 0.5)
        // Identical runs: no difference and p = 1; one pair: no test.
        let same = PairedTest.compare(runs, "a", "a", measure: "x") { $0.allocation(at: 130) }
        #expect(same.mean == 0 && same.p == 1)
        #expect(PairedTest.test(mean: 1, sd: 1, n: 1).p.isNaN)
    }

    @Test func theComparisonGoesToTheCSVAndTheSVGPanel() {
        let runs = [run("a", 1, 95.5), run("a", 2, 95.2), run("b", 1, 95.0), run("b", 2, 95.0)]
        let c = PairedTest.compare(runs, "a", "b", measure: "alloc@130") { $0.allocation(at: 130) }
        let csv = ReplayReport.comparisonCSV([c]).split(separator: "\n")
        #expect(csv.count == 2 && csv[0].hasPrefix("measure,a,b,mean_a,mean_b,mean_diff"))
        #expect(csv[1].hasPrefix("alloc@130,a,b,95.3500,95.0000,0.3500,"))
        let plain = ReplayReport.allocationSVG(runs, title: "t")
        let svg = ReplayReport.allocationSVG(runs, title: "t", comparison: [c])
        #expect(!plain.contains("paired by seed") && svg.contains("a − b: mean allocation difference"))
        #expect(svg.contains("alloc@130: +0.35 (SD 0.21") && svg.contains("2 above / 0 below"))
        #expect(svg.hasSuffix("</svg>\n"))
    }
}

struct LeftoverTests {
    @Test func leftoverCapacityIsPutDownToItsCause() {
        let whole = WeightedShape(GPUTaskShape(cpu: 8000, memory: 100, gpuCount: 1, gpuMilli: 1000), weight: 0.5)
        let v100 = WeightedShape(GPUTaskShape(cpu: 1000, memory: 100, gpuCount: 1, gpuMilli: 500, models: ["V100M16"]), weight: 0.25)
        let cpu = WeightedShape(GPUTaskShape(cpu: 1000, gpuCount: 0, gpuMilli: 0), weight: 0.25)
        let w = [whole, v100, cpu]
        // A T4 with one whole GPU free but only 4 CPUs: the whole-GPU pod is short of CPU,
        // the V100 pod excluded; the CPU-only class takes no part.
        let n1 = GPUNodeState(cpuFree: 4000, memoryFree: 1000, gpuFree: [1000, 0], model: "T4")
        let b1 = Leftover.breakdown([n1], w)
        #expect(abs(b1["cpu"]! - 1000 * 2 / 3) < 1e-9 && abs(b1["model"]! - 1000 / 3) < 1e-9)
        // A V100 with 600 free on one GPU: the whole-GPU pod finds no GPU (fragmented), the
        // V100 pod fits (usable).
        let n2 = GPUNodeState(cpuFree: 64000, memoryFree: 1000, gpuFree: [600], model: "V100M16")
        let b2 = Leftover.breakdown([n2], w)
        #expect(abs(b2["fragmented"]! - 400) < 1e-9 && abs(b2["usable"]! - 200) < 1e-9)
        #expect(abs(Leftover.breakdown([n1, n2], w).values.reduce(0, +) - 1600) < 1e-9)
    }
}

struct FreePiecesTests {
    @Test func freeCapacityIsSortedByTheSizeOfItsPiece() {
        let a = GPUNodeState(cpuFree: 0, memoryFree: 0, gpuFree: [1000, 190, 0, 60], model: "V100M16")
        let b = GPUNodeState(cpuFree: 8000, memoryFree: 0, gpuFree: [530, 200, 99, 100], model: "T4")
        let p = FreePieces.breakdown([a, b])
        #expect(p["whole"] == 1000 && p["500-999"] == 530 && p["200-499"] == 200)
        #expect(p["100-199"] == 290 && p["1-99"] == 159)
        // Every free milli is in exactly one piece; a full GPU is in none.
        let total = [a, b].reduce(Int64(0)) { $0 + $1.gpuFreeTotal }
        #expect(p.values.reduce(0, +) == Double(total))
        #expect(FreePieces.size(ofFree: 0) == nil && Set(p.keys).isSubset(of: FreePieces.sizes))
    }
}
