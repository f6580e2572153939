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

    /// The seed range is split into four shards that run in parallel.
    @Test(arguments: 0..<4)
    func seededSimulationsHoldSafetyAndLinearizability(shard: Int) {
        var failures: [String] = []
        var writes = 0
        var reads = 0
        var elections = 0
        let seeds = Self.seedRange.filter { Int($0 % 4) == shard }
        for seed in seeds {
            var sim = RaftSimulation(options: .derived(from: seed))
            let report = sim.run()
            writes += report.committedWrites
            reads += report.completedReads
            elections += report.elections
            if !report.passed {
                failures.append(report.violations.joined(separator: "\n")
                                + "\n  replay: SWARM_SIM_SEED=\(seed) swift test --filter SimulationTests")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) seeds failed:\n\(failures.prefix(5).joined(separator: "\n"))")
        // The workload must actually exercise the cluster, or the sweep proves nothing.
        #expect(writes >= seeds.count * 5, "only \(writes) writes committed over \(seeds.count) seeds")
        #expect(reads >= seeds.count * 5, "only \(reads) reads completed over \(seeds.count) seeds")
        #expect(elections >= seeds.count, "only \(elections) elections over \(seeds.count) seeds")
    }
}
