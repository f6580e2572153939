import Foundation
import SwarmRaft
import SwarmTesting
import Testing

/// Seeded whole-cluster simulations. CI runs `SWARM_SIM_SEEDS` seeds (default 1,000);
/// set it higher for a long run, or set `SWARM_SIM_SEED` to replay one seed.
@Suite struct SimulationTests {
    static var seedRange: ClosedRange<UInt64> {
        let env = ProcessInfo.processInfo.environment
        if let one = env["SWARM_SIM_SEED"].flatMap(UInt64.init) { return one...one }
        let count = env["SWARM_SIM_SEEDS"].flatMap(UInt64.init) ?? 1000
        let first = env["SWARM_SIM_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        return first...(first + count - 1)
    }

    /// The seed range is split into four shards that run in parallel, each on its own
    /// thread so that the CPU-bound sweep never starves Swift's cooperative pool (which
    /// the multi-process tests need for their I/O).
    @Test(arguments: 0..<4)
    func seededSimulationsHoldSafetyAndLinearizability(shard: Int) async {
        let seeds = Self.seedRange.filter { Int($0 % 4) == shard }
        let result = await withCheckedContinuation { (done: CheckedContinuation<ShardResult, Never>) in
            let thread = Thread { done.resume(returning: Self.run(seeds)) }
            thread.stackSize = 8 << 20
            thread.start()
        }
        #expect(result.failures.isEmpty,
                "\(result.failures.count) seeds failed:\n\(result.failures.prefix(5).joined(separator: "\n"))")
        // The workload must actually exercise the cluster, or the sweep proves nothing.
        #expect(result.writes >= seeds.count * 5, "only \(result.writes) writes committed over \(seeds.count) seeds")
        #expect(result.reads >= seeds.count * 5, "only \(result.reads) reads completed over \(seeds.count) seeds")
        #expect(result.elections >= seeds.count, "only \(result.elections) elections over \(seeds.count) seeds")
    }

    struct ShardResult: Sendable {
        var failures: [String] = []
        var writes = 0
        var reads = 0
        var elections = 0
    }

    static func run(_ seeds: [UInt64]) -> ShardResult {
        var r = ShardResult()
        for seed in seeds {
            var sim = RaftSimulation(options: .derived(from: seed))
            let report = sim.run()
            r.writes += report.committedWrites
            r.reads += report.completedReads
            r.elections += report.elections
            if !report.passed {
                r.failures.append(report.violations.joined(separator: "\n")
                                  + "\n  replay: SWARM_SIM_SEED=\(seed) swift test --filter SimulationTests")
            }
        }
        return r
    }
}
