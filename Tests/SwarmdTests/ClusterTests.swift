import Foundation
import GRPCCore
import SwarmAPI
import Testing

/// One manager and two workers, each a real `swarmd` process, driven with `swarmctl`: the
/// tasks of a service are real child processes, spread 2/2/2, scaled, moved off a drained
/// node and off a killed one, never duplicated when a worker restarts, and all gone when
/// the service is removed.
@Suite(.serialized) struct ClusterTests {
    @Test func walkingCluster() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        try await c.waitFor("the manager's control socket", seconds: 30) {
            (try? await c.control { try await $0.getCluster(.with { $0.clusterID = "default" }) }) != nil
        }
        // Short heartbeats so that a dead worker is noticed within seconds.
        let updated = try c.ctl("cluster", "update", "default", "--heartbeat-period", "1s")
        #expect(updated.status == 0, "\(updated.output)")
        let cluster = try await c.control { try await $0.getCluster(.with { $0.clusterID = "default" }) }.cluster
        #expect(cluster.spec.dispatcher.heartbeatPeriod == 1_000_000_000)
        let token = cluster.joinTokens.worker
        #expect(token.hasPrefix("SWMTKN-"))

        try c.startWorker("w1", token: token)
        try c.startWorker("w2", token: token)
        try await c.waitFor("three READY nodes", seconds: 30) {
            let nodes = await c.nodes()
            return nodes.count == 3 && nodes.allSatisfy { $0.status.state == .ready }
        }
        let byName = Dictionary(uniqueKeysWithValues: await c.nodes().map { ($0.description_p.hostname, $0.id) })
        let nodeLs = try c.ctl("node", "ls")
        for name in ["manager", "w1", "w2"] { #expect(nodeLs.output.contains(name), "\(nodeLs.output)") }

        // A marker argument no other process on the machine has.
        let marker = String(Int.random(in: 100_000_000...999_999_999))
        let argv = ["/bin/sleep", marker]
        let created = try c.ctl("service", "create", "--name", "sleeper", "--command", "/bin/sleep", "--args", marker, "--replicas", "6")
        #expect(created.status == 0, "\(created.output)")

        func running() async -> [SwarmTask] {
            await c.tasks().filter { $0.desiredState == .running && $0.status.state == .running }
        }
        func perNode(_ tasks: [SwarmTask]) -> [String: Int] {
            Dictionary(grouping: tasks, by: \.nodeID).mapValues(\.count)
        }
        try await c.waitFor("6 running tasks, 2 per node, 6 processes", seconds: 40) {
            let r = await running()
            return r.count == 6 && perNode(r).values.allSatisfy { $0 == 2 } && perNode(r).count == 3
                && SwarmdCluster.pids(matching: argv).count == 6
        }
        // The reported PIDs are the real processes.
        let pids = Set(await running().map(\.status.pid))
        #expect(pids == Set(SwarmdCluster.pids(matching: argv)))

        // Scale down to 3: three processes stop.
        #expect(try c.ctl("service", "update", "sleeper", "--replicas", "3").status == 0)
        try await c.waitFor("3 running tasks and 3 processes", seconds: 30) {
            await running().count == 3 && SwarmdCluster.pids(matching: argv).count == 3
        }

        // Drain w1: its tasks move to the other two nodes.
        #expect(try c.ctl("node", "drain", "w1").status == 0)
        try await c.waitFor("no task left on the drained node", seconds: 30) {
            let r = await running()
            return r.count == 3 && perNode(r)[byName["w1"]!] == nil && SwarmdCluster.pids(matching: argv).count == 3
        }
        #expect(try c.ctl("node", "activate", "w1").status == 0)

        // kill -9 w2: after the heartbeat timeout it is DOWN and its tasks run elsewhere.
        let onW2 = await running().filter { $0.nodeID == byName["w2"]! }
        #expect(!onW2.isEmpty)
        c.kill9("w2")
        try await c.waitFor("w2 DOWN and its tasks rescheduled", seconds: 30) {
            let down = await c.nodes().first { $0.id == byName["w2"]! }?.status.state == .down
            let r = await running()
            return down && r.count == 3 && perNode(r)[byName["w2"]!] == nil
        }
        // The killed worker's processes outlive it (as containers outlive a dead engine).
        #expect(SwarmdCluster.pids(matching: argv).count == 3 + onW2.count)

        // Restart w2 on the same state: it stops its stale processes and duplicates nothing.
        try c.startWorker("w2", token: token)
        try await c.waitFor("w2 READY again with exactly 3 processes in the cluster", seconds: 30) {
            let ready = await c.nodes().first { $0.id == byName["w2"]! }?.status.state == .ready
            return ready && SwarmdCluster.pids(matching: argv).count == 3
        }
        try await Task.sleep(for: .seconds(2))
        #expect(SwarmdCluster.pids(matching: argv).count == 3)
        #expect(await running().count == 3)

        // Remove the service: every process is gone.
        #expect(try c.ctl("service", "rm", "sleeper").status == 0)
        try await c.waitFor("no process left", seconds: 30) { SwarmdCluster.pids(matching: argv).isEmpty }

        // SIGTERM shuts every node down cleanly.
        for name in ["w1", "w2", "manager"] {
            #expect(c.terminate(name) == 0, "\(name) exit status\n\(c.logTail(name))")
        }
    }
}
