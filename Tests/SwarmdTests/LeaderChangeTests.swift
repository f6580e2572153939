import Foundation
import SwarmAPI
import Testing

/// GPU units are accounted from the replicated store, so a new leader's scheduler knows
/// which ones are taken: after the leader dies, no GPU is given out twice.
@Suite(.serialized) struct LeaderChangeTests {
    @Test func aNewLeaderDoesNotGiveOutTakenGPUs() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        let tokens = try await c.readyCluster().joinTokens
        for name in ["m2", "m3"] { try c.startWorker(name, token: tokens.manager, port: SwarmdCluster.freePort()) }
        try c.start("gpu-node", ["--join-addr", c.managerAddr, "--join-token", tokens.worker,
                                 "--generic-node-resources", "gpu=GPU-aaa,gpu=GPU-bbb"])
        try await c.waitFor("three reachable managers and a READY node with two GPUs", seconds: 60) {
            let nodes = await c.nodes()
            return nodes.filter { $0.role == .manager && $0.managerStatus.reachability == .reachable }.count == 3
                && nodes.contains { $0.status.state == .ready && $0.description_p.gpus.count == 2 }
        }
        let marker = String(Int.random(in: 100_000_000...999_999_999))
        #expect(try c.ctl("service", "create", "--name", "first", "--command", "/bin/sleep", "--args", marker, "--gpus", "1").status == 0)
        try await c.waitFor("the first GPU task running", seconds: 30) {
            await c.tasks().contains { $0.status.state == .running && $0.assignedGpus.count == 1 }
        }
        let firstGPU = try #require(await c.tasks().first { $0.status.state == .running }?.assignedGpus.first?.uuid)

        // The leader dies; the other two managers elect a new one.
        c.kill9("manager")
        c.controlSocket = "\(c.root)/m2/swarmd.sock"
        try await c.waitFor("a new leader", seconds: 60) {
            await c.nodes().contains { $0.role == .manager && $0.managerStatus.leader && $0.description_p.hostname != "manager" }
        }
        // Two more one-GPU tasks: one gets the GPU that is left, the other must wait.
        #expect(try c.ctl("service", "create", "--name", "second", "--command", "/bin/sleep", "--args", marker, "--gpus", "1",
                          "--replicas", "2").status == 0)
        try await c.waitFor("one more GPU task running and one waiting for a GPU", seconds: 60) {
            let t = await c.tasks().filter { $0.desiredState == .running }
            return t.filter { $0.status.state == .running }.count == 2
                && t.contains { $0.status.state == .pending && $0.status.message.contains("insufficient GPUs") }
        }
        let running = await c.tasks().filter { $0.desiredState == .running && $0.status.state == .running }
        #expect(Set(running.flatMap { $0.assignedGpus.map(\.uuid) }) == ["GPU-aaa", "GPU-bbb"])
        #expect(running.contains { $0.assignedGpus.map(\.uuid) == [firstGPU] })
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", marker]).count == 2)

        for s in ["first", "second"] { #expect(try c.ctl("service", "rm", s).status == 0) }
        try await c.waitFor("no task process left", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).isEmpty }
        for name in ["gpu-node", "m3", "m2"] { #expect(c.terminate(name) == 0, "\(name)\n\(c.logTail(name))") }
    }
}
