import SwarmRaft
import Foundation
import SwarmTesting

/// Runs seeded Raft simulations outside the test runner, for long sweeps:
/// `swift run -c release swarm-sim FIRST [COUNT]`.
let args = CommandLine.arguments.dropFirst()
let first = args.first.flatMap(UInt64.init) ?? 1
let count = args.dropFirst().first.flatMap(UInt64.init) ?? 1
var failed = 0
for seed in first..<(first + count) {
    var sim = RaftSimulation(options: .derived(from: seed))
    let r = sim.run()
    if !r.passed {
        failed += 1
        print(r.violations.joined(separator: "\n"))
        print("  replay: swift run swarm-sim \(seed)")
    } else if count <= 20 {
        print("seed \(seed): ok, \(r.committedWrites) writes, \(r.completedReads) reads, \(r.elections) elections, \(r.crashes) crashes, \(r.snapshotsSent) snapshots, final index \(r.finalIndex)")
    }
}
print("\(count - UInt64(failed)) passed, \(failed) failed")
if failed > 0 { exit(1) }
