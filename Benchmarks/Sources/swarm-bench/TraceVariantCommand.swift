import ArgumentParser
import Foundation
import SwarmReplay

/// `swarm-bench trace-variant`: writes an openb-style variant of a pod list, re-weighted
/// by pod class (``TraceVariant``), for validating strategies on traces they were not
/// tuned on.
struct TraceVariantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace-variant",
        abstract: "Write an openb-style trace variant: the source's pods re-weighted by class")

    @Option(help: "Source pod list CSV (openb_pod_list_default.csv)") var pods: String
    @Option(help: "Node list CSV: models for --gpu-spec when the source names none") var nodes: String?
    @Option(help: "Share of CPU-only pods among all pods, 0...1 (default: the source's)") var cpuOnly: Double?
    @Option(help: "Share of GPU-sharing pods among GPU pods, 0...1 (default: the source's)") var sharing: Double?
    @Option(help: "Share of multi-GPU pods among GPU pods, 0...1 (default: the source's)") var multiGpu: Double?
    @Option(help: "Share of GPU pods that name the models they accept, 0...1 (default: keep each pod's own)") var gpuSpec: Double?
    @Option(help: "Pods to write (default: as many as the source has)") var count: Int?
    @Option(help: "Seed of the generator") var seed: UInt64 = 1
    @Option(help: "Output CSV") var out: String

    func run() throws {
        let text: String
        do {
            let nodeList = try nodes.map { path throws(TraceError) in try Trace.nodes(path: path) }
            text = try TraceVariant.generate(podsAt: pods, nodes: nodeList,
                                             weights: VariantWeights(cpuOnly: cpuOnly, sharing: sharing, multiGPU: multiGpu, gpuSpec: gpuSpec),
                                             count: count, seed: seed)
        } catch {
            throw ValidationError("\(error)")
        }
        try text.write(toFile: out, atomically: true, encoding: .utf8)
        let made = try Trace.pods(path: out)
        let s = TraceVariant.shares(made)
        print(String(format: "wrote %@: %d pods; CPU-only %.3f of pods; of GPU pods: sharing %.3f, multi-GPU %.3f, with a model spec %.3f",
                     out, made.count, s.cpuOnly, s.sharing, s.multiGPU, s.gpuSpec))
    }
}
