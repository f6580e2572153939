import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SwarmAPI
import Testing

/// Promotion and demotion of a real worker process, and the manager's metrics endpoint.
@Suite(.serialized) struct RoleTests {
    @Test func promoteDemoteAndMetrics() async throws {
        let c = try SwarmdCluster()
        let metricsPort = SwarmdCluster.freePort()
        try c.startManager(["--listen-metrics", "127.0.0.1:\(metricsPort)"])
        try await c.waitFor("the manager's control socket", seconds: 30) {
            (try? await c.control { try await $0.getCluster(.with { $0.clusterID = "default" }) }) != nil
        }
        let token = try await c.control { try await $0.getCluster(.with { $0.clusterID = "default" }) }.cluster.joinTokens.worker
        try c.startWorker("w1", token: token, port: SwarmdCluster.freePort())
        try await c.waitFor("two READY nodes", seconds: 30) {
            await c.nodes().filter { $0.status.state == .ready }.count == 2
        }
        let marker = String(Int.random(in: 100_000_000...999_999_999))
        #expect(try c.ctl("service", "create", "--name", "keep", "--command", "/bin/sleep", "--args", marker, "--replicas", "2").status == 0)
        try await c.waitFor("2 processes", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).count == 2 }
        let pids = SwarmdCluster.pids(matching: ["/bin/sleep", marker])

        // Promote: w1 joins the managers and serves the control API itself.
        #expect(try c.ctl("node", "promote", "w1").status == 0)
        func w1() async -> SwarmNode? { await c.nodes().first { $0.description_p.hostname == "w1" } }
        try await c.waitFor("w1 to be a reachable manager", seconds: 40) {
            guard let n = await w1() else { return false }
            return n.role == .manager && n.managerStatus.raftID != 0 && n.managerStatus.reachability == .reachable
        }
        let w1Socket = "\(c.root)/w1/swarmd.sock"
        try await c.waitFor("w1's control socket", seconds: 20) { FileManager.default.fileExists(atPath: w1Socket) }
        let viaW1 = try c.ctl("node", "ls", "--socket", w1Socket)
        #expect(viaW1.status == 0 && viaW1.output.contains("Leader") && viaW1.output.contains("Reachable"), "\(viaW1.output)")

        // Demote: w1 leaves the managers and goes on as a worker.
        #expect(try c.ctl("node", "demote", "w1").status == 0)
        try await c.waitFor("w1 to be a worker again", seconds: 40) {
            guard let n = await w1() else { return false }
            return n.role == .worker && n.status.state == .ready && !FileManager.default.fileExists(atPath: w1Socket)
        }
        // The tasks ran through both role changes undisturbed.
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", marker]) == pids)
        #expect(c.isRunning("w1"))
        // Demoting the last manager is refused.
        let last = try c.ctl("node", "demote", "manager")
        #expect(last.status != 0 && last.output.contains("last manager"), "\(last.output)")

        // Metrics in the Prometheus text format.
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metricsPort)/metrics")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("swarm_raft_is_leader 1"), "\(text)")
        #expect(text.contains("swarm_nodes{state=\"ready\"} 2"), "\(text)")
        #expect(text.contains("swarm_tasks{state=\"running\"} 2"), "\(text)")

        #expect(try c.ctl("service", "rm", "keep").status == 0)
        try await c.waitFor("no process left", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).isEmpty }
        for name in ["w1", "manager"] { #expect(c.terminate(name) == 0, "\(name)\n\(c.logTail(name))") }
    }
}
