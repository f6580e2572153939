import ArgumentParser
import Foundation
import SwarmPluginHost
import SwarmReplay

/// `swarm-bench replay`: replays an openb trace with strategy plugins side by side, over
/// a range of seeds, as the FGD artifact did (`shared/benchmarks/openb-protocol.md`).
struct ReplayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "replay", abstract: "Replay an openb GPU trace with strategy plugins")

    @Option(help: "Node list CSV (openb_node_list_gpu_node.csv)") var nodes: String
    @Option(help: "Pod list CSV (openb_pod_list_*.csv)") var pods: String
    @Option(help: "Strategy plugins, comma-separated, loaded by name (default: the --compare pair, else gpu,fgd,best-fit,gpu-packing,gpu-clustering,dotprod,random)")
    var policies: String?
    @Option(help: "Two policies, A,B: A − B paired by seed (mean, SD, t-test) at 100 % and 130 % arrived and for the fragmentation at 90 %")
    var compare: String?
    @Option(help: "Seeds: a range (42-51) or a comma-separated list") var seeds = "42-51"
    @Option(help: "Output directory for summary.csv, curves.csv and allocation.svg") var out = "replay-out"
    @Option(help: "Directory of plugin .so files (default: $SWARM_PLUGIN_DIR, else the main package's .build/release)") var pluginDir: String?
    @Option(help: "Workload tuned up to this multiple of GPU capacity") var tune = 1.3
    @Flag(help: "Hand each strategy the typical classes weighted by the arrivals still to come (a perfect forecast no real scheduler has), to measure what knowing the future workload is worth")
    var hindsight = false

    func comparePair() throws -> (String, String)? {
        guard let compare else { return nil }
        let two = compare.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard two.count == 2, !two[0].isEmpty, !two[1].isEmpty, two[0] != two[1] else {
            throw ValidationError("--compare takes two different policies, A,B (got \"\(compare)\")")
        }
        return (two[0], two[1])
    }

    func parseSeeds() throws -> [UInt64] {
        if let dash = seeds.firstIndex(of: "-"), let a = UInt64(seeds[..<dash]), let b = UInt64(seeds[seeds.index(after: dash)...]), a <= b {
            return Array(a...b)
        }
        let list = seeds.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty else { throw ValidationError("--seeds must be a range like 42-51 or a list like 42,43") }
        return list
    }

    static func defaultPluginDir() -> String {
        if let env = ProcessInfo.processInfo.environment["SWARM_PLUGIN_DIR"] { return env }
        // Benchmarks/.build/<triple>/release/swarm-bench → <repo>/.build/release
        var url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        for _ in 0..<5 { url.deleteLastPathComponent() }
        return url.appendingPathComponent(".build/release").path
    }

    func run() async throws {
        let seedList = try parseSeeds()
        let traceNodes: [TraceNode]
        let tracePods: [TracePod]
        do {
            traceNodes = try Trace.nodes(path: nodes)
            tracePods = try Trace.pods(path: pods)
        } catch {
            throw ValidationError("\(error)")
        }
        let registry = PluginRegistry()
        let dir = pluginDir ?? Self.defaultPluginDir()
        for e in registry.loadDirectory(dir) { FileHandle.standardError.write(Data("warning: \(e)\n".utf8)) }
        let pair = try comparePair()
        let names = (policies ?? pair.map { "\($0.0),\($0.1)" } ?? "gpu,fgd,best-fit,gpu-packing,gpu-clustering,dotprod,random")
            .split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        if let (a, b) = pair, !names.contains(a) || !names.contains(b) {
            throw ValidationError("--compare \(a),\(b): both must be among --policies (\(names.joined(separator: ",")))")
        }
        var strategies: [(String, LoadedStrategy)] = []
        for name in names {
            guard let s = registry.strategy(name) else {
                throw ValidationError("unknown strategy \"\(name)\" (loaded from \(dir): \(registry.names(.strategy).joined(separator: ", ")))")
            }
            strategies.append((name, s))
        }
        let typical = Workload.typicalPods(tracePods)
        let shapes = Workload.weightedShapes(typical)
        let capacity = Workload.capacity(traceNodes)
        FileHandle.standardError.write(Data("""
            \(traceNodes.count) nodes, \(capacity / 1000) GPUs; \(tracePods.count) pods, \(typical.count) typical shapes; \
            seeds \(seedList.map(String.init).joined(separator: ",")); policies \(names.joined(separator: ","))\n
            """.utf8))
        guard tracePods.contains(where: { $0.demand > 0 }) else {
            throw ValidationError("\(pods): no pod asks for a GPU, so there is no GPU workload to replay")
        }
        let replay = ClusterReplay(nodes: traceNodes)
        var runs: [ReplayRun] = []
        let total = seedList.count * strategies.count
        for seed in seedList {
            let prepared = Workload.prepare(pods: tracePods, nodes: traceNodes, seed: seed, tune: tune)
            for (name, strategy) in strategies {
                let done = runs.count
                let r = replay.run(policy: name, strategy: strategy, workload: prepared, typical: shapes, seed: seed, hindsight: hindsight) { f in
                    let line = "\r[\(done + 1)/\(total)] seed \(seed) \(name.padding(toLength: 16, withPad: " ", startingAt: 0)) " + String(format: "%5.1f%%", f * 100)
                    FileHandle.standardError.write(Data(line.utf8))
                }
                runs.append(r)
            }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try ReplayReport.summaryCSV(runs).write(toFile: out + "/summary.csv", atomically: true, encoding: .utf8)
        try ReplayReport.curvesCSV(runs).write(toFile: out + "/curves.csv", atomically: true, encoding: .utf8)
        var comparison: [PairedComparison] = []
        if let (a, b) = pair {
            comparison = [
                PairedTest.compare(runs, a, b, measure: "alloc@100") { $0.allocation(at: 100) },
                PairedTest.compare(runs, a, b, measure: "alloc@130") { $0.allocation(at: 130) },
                PairedTest.compare(runs, a, b, measure: "frag@90") { $0.fragmentation(at: 90) },
            ]
            try ReplayReport.comparisonCSV(comparison).write(toFile: out + "/compare.csv", atomically: true, encoding: .utf8)
        }
        let title = "\(URL(fileURLWithPath: pods).deletingPathExtension().lastPathComponent), seeds \(seeds)"
            + (hindsight ? ", hindsight workload" : "")
        try ReplayReport.allocationSVG(runs, title: title, comparison: comparison)
            .write(toFile: out + "/allocation.svg", atomically: true, encoding: .utf8)

        func pad(_ s: String, _ n: Int) -> String { s.padding(toLength: max(n, s.count), withPad: " ", startingAt: 0) }
        if hindsight { print("hindsight: each strategy was handed the classes weighted by the arrivals still to come") }
        print(pad("policy", 16) + pad("alloc@100 %", 16) + pad("alloc@130 %", 16) + pad("frag@90 %", 16)
              + pad("failed pods per seed, by kind", 52) + pad("placements/s", 14) + "p99 decision")
        for (name, _) in strategies {
            let mine = runs.filter { $0.policy == name }
            let a100 = ReplayReport.meanSD(mine.compactMap { $0.allocation(at: 100) })
            let a130 = ReplayReport.meanSD(mine.compactMap { $0.allocation(at: 130) })
            let f90 = ReplayReport.meanSD(mine.compactMap { $0.fragmentation(at: 90) })
            var failed: [String: Int] = [:]
            for r in mine { for (k, v) in r.failed { failed[k, default: 0] += v } }
            let failedText = failed.keys.sorted().map { "\($0):\(failed[$0]! / max(1, mine.count))" }.joined(separator: " ")
            let rate = Double(mine.reduce(0) { $0 + $1.arrivedPct.count }) / max(1e-9, mine.reduce(0) { $0 + $1.seconds })
            let p99 = mine.map(\.p99DecisionSeconds).max() ?? 0
            func pm(_ v: (mean: Double, sd: Double)) -> String { pad(String(format: "%.2f ± %.2f", v.mean, v.sd), 16) }
            print(pad(name, 16) + pm(a100) + pm(a130) + pm(f90) + pad(failedText, 52)
                  + pad(String(format: "%.0f", rate), 14) + String(format: "%.1f µs", p99 * 1e6))
        }
        // Free GPU milli at the end, split by `keys`, as GPUs per seed.
        func gpuTable(_ title: String, _ keys: [String], _ part: (ReplayRun) -> [String: Double]) {
            print("\n" + title)
            print(pad("policy", 16) + keys.map { pad($0, 12) }.joined() + "total")
            for (name, _) in strategies {
                let mine = runs.filter { $0.policy == name }
                func gpus(_ milli: Double) -> String { pad(String(format: "%.1f", milli / 1000 / Double(max(1, mine.count))), 12) }
                let sums = keys.map { k in mine.reduce(0.0) { $0 + (part($1)[k] ?? 0) } }
                print(pad(name, 16) + sums.map(gpus).joined() + gpus(sums.reduce(0, +)))
            }
        }
        gpuTable("GPUs left free at the end, by cause (mean per seed; see docs/openb-replay.md)", Leftover.causes, \.leftover)
        gpuTable("GPUs left free at the end, by the free milli of the GPU they are on (mean per seed)", FreePieces.sizes, \.pieces)
        print("\nCPUs at the end (mean per seed), and arrived % at the first failure")
        print(pad("policy", 16) + CPUUse.parts.map { pad($0, 17) }.joined() + "first failure")
        for (name, _) in strategies {
            let mine = runs.filter { $0.policy == name }
            let cells = CPUUse.parts.map { p in pad(String(format: "%.0f", mine.reduce(0.0) { $0 + ($1.cpuUse[p] ?? 0) } / 1000 / Double(max(1, mine.count))), 17) }
            let first = mine.compactMap(\.firstFailureArrived)
            print(pad(name, 16) + cells.joined() + (first.isEmpty ? "none" : String(format: "%.1f %%", Double(first.reduce(0, +)) / Double(first.count))))
        }
        if let c = comparison.first {
            print("\ncompare \(c.a) − \(c.b), paired by seed (n = \(c.differences.count))")
            print(pad("measure", 12) + pad(c.a, 10) + pad(c.b, 10) + pad("diff", 9) + pad("SD", 8) + pad("t", 9) + pad("p", 11) + "above/below")
            for c in comparison {
                print(pad(c.measure, 12) + pad(String(format: "%.2f", c.meanA), 10) + pad(String(format: "%.2f", c.meanB), 10)
                      + pad(String(format: "%+.2f", c.mean), 9) + pad(String(format: "%.2f", c.sd), 8) + pad(String(format: "%.2f", c.t), 9)
                      + pad(String(format: "%.2g", c.p), 11) + "\(c.above)/\(c.below)")
            }
        }
        print("wrote \(out)/summary.csv, \(out)/curves.csv, \(out)/allocation.svg")
    }
}
