import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SwarmAPI
import GRPCCore
import SwarmCA
import Testing

/// Promotion and demotion of a real worker process, and the manager's metrics endpoint.
@Suite(.serialized) struct RoleTests {
    @Test func promoteDemoteAndMetrics() async throws {
        let c = try SwarmdCluster()
        let metricsPort = SwarmdCluster.freePort()
        try c.startManager(["--listen-metrics", "127.0.0.1:\(metricsPort)"])
        let token = try await c.readyCluster().joinTokens.worker
        // A wrong token (this cluster's root, another secret): the node refuses to start,
        // says why, and learns nothing.
        let wrong = String(token.dropLast(25)) + "0000000000000000000000000"
        try c.startWorker("intruder", token: wrong)
        try await c.waitFor("the intruder to give up", seconds: 20) { !c.isRunning("intruder") }
        #expect(c.logTail("intruder").contains("refused the join: invalid join token"), "\(c.logTail("intruder"))")
        #expect(!FileManager.default.fileExists(atPath: "\(c.root)/intruder/certificates/swarm-node.crt"))
        #expect(await c.nodes().allSatisfy { $0.description_p.hostname != "intruder" })
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
        // w1 now holds a manager certificate; kept here to try once w1 is demoted.
        let managerCert = try SecurityProbe.copyCertificates(of: "\(c.root)/w1", to: "\(c.root)/w1-as-manager")
        #expect(managerCert.identity.role == .manager)
        let viaW1 = try c.ctl("node", "ls", "--socket", w1Socket)
        #expect(viaW1.status == 0 && viaW1.output.contains("Leader") && viaW1.output.contains("Reachable"), "\(viaW1.output)")
        // w1 is not the leader: its control calls are forwarded, the leader's errors with them.
        let missing = try c.ctl("service", "inspect", "no-such-service", "--socket", w1Socket)
        #expect(missing.status != 0 && missing.output.contains("no-such-service not found"), "\(missing.output)")

        // Demote: w1 leaves the managers and goes on as a worker.
        #expect(try c.ctl("node", "demote", "w1").status == 0)
        try await c.waitFor("w1 to be a worker again", seconds: 40) {
            guard let n = await w1() else { return false }
            return n.role == .worker && n.status.state == .ready && !FileManager.default.fileExists(atPath: w1Socket)
        }
        // The demoted node's manager certificate no longer calls the Raft API, and w1 moved
        // to a worker's certificate.
        let refused = await SecurityProbe.raftStatus(c.managerAddr, .mutualTLS(managerCert))
        #expect(refused?.code == .permissionDenied && refused?.message.contains("demoted") == true, "\(String(describing: refused))")
        try await c.waitFor("w1's worker certificate", seconds: 30) {
            (try? NodeCredentials.load(directory: "\(c.root)/w1/certificates"))??.identity.role == .worker
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

/// GPUs declared on a real swarmd node: whole-GPU tasks get distinct GPUs, see them in
/// NVIDIA_VISIBLE_DEVICES and CUDA_VISIBLE_DEVICES, and a task beyond the GPUs waits.
@Suite(.serialized) struct GPUNodeTests {
    @Test func declaredGPUsAreAssignedOncePerTask() async throws {
        let c = try SwarmdCluster()
        try c.startManager(["--generic-node-resources", "gpu=GPU-aaa,gpu=GPU-bbb"])
        try await c.waitFor("a READY node with two GPUs", seconds: 30) {
            await c.nodes().first.map { $0.status.state == .ready && $0.description_p.gpus.count == 2 } ?? false
        }
        let script = "echo gpus=$NVIDIA_VISIBLE_DEVICES cuda=$CUDA_VISIBLE_DEVICES docker=$DOCKER_RESOURCE_GPU; sleep 60"
        let created = try c.ctl("service", "create", "--name", "trainer", "--command", "/bin/sh", "--args=-c", "--args", script,
                                "--gpus", "1", "--replicas", "3")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("2 running tasks and 1 pending for want of a GPU", seconds: 30) {
            let t = await c.tasks()
            return t.filter { $0.status.state == .running }.count == 2
                && t.contains { $0.status.state == .pending && $0.status.message.contains("insufficient GPUs") }
        }
        let running = await c.tasks().filter { $0.status.state == .running }
        #expect(Set(running.flatMap { $0.assignedGpus.map(\.uuid) }) == ["GPU-aaa", "GPU-bbb"])
        try await Task.sleep(for: .milliseconds(500))
        let logs = try c.ctl("service", "logs", "trainer").output
        #expect(logs.contains("gpus=GPU-aaa cuda=0 docker=GPU-aaa") && logs.contains("gpus=GPU-bbb cuda=1 docker=GPU-bbb"), "\(logs)")
        // Units come back when tasks end: scale to 1, then to 2, and the new task gets the
        // GPU the stopped one held.
        #expect(try c.ctl("service", "update", "trainer", "--replicas", "1").status == 0)
        try await c.waitFor("1 running task", seconds: 30) {
            let t = await c.tasks().filter { $0.desiredState == .running }
            return t.count == 1 && t[0].status.state == .running
        }
        #expect(try c.ctl("service", "update", "trainer", "--replicas", "2").status == 0)
        try await c.waitFor("2 running tasks on both GPUs again", seconds: 30) {
            let r = await c.tasks().filter { $0.desiredState == .running && $0.status.state == .running }
            return r.count == 2 && Set(r.flatMap { $0.assignedGpus.map(\.uuid) }) == ["GPU-aaa", "GPU-bbb"]
        }
        #expect(try c.ctl("service", "rm", "trainer").status == 0)
        try await c.waitFor("no task process left", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sh", "-c", script]).isEmpty }
        #expect(c.terminate("manager") == 0)
    }

    /// A node with `nvidia-smi` reports the GPUs it lists (model, memory, topology group),
    /// in place of the declared ones. The tool here is a script on PATH that answers the
    /// query swarmd must send, and fails on any other.
    @Test func gpusAreDiscoveredWithNvidiaSMI() async throws {
        let c = try SwarmdCluster()
        let bin = c.root + "/fake-bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let tool = """
            #!/bin/sh
            [ "$1" = "--query-gpu=uuid,index,name,memory.total,pci.bus_id" ] && [ "$2" = "--format=csv,noheader,nounits" ] || exit 3
            echo "GPU-1111, 1, NVIDIA A100-SXM4-40GB, 40960, 00000000:0F:00.0"
            echo "GPU-0000, 0, NVIDIA A100-SXM4-40GB, 40960, 00000000:07:00.0"
            echo "garbled line"
            """
        #expect(FileManager.default.createFile(atPath: bin + "/nvidia-smi", contents: Data(tool.utf8), attributes: [.posixPermissions: 0o755]))
        let path = bin + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        try c.startManager(["--generic-node-resources", "gpu=GPU-declared"], environment: ["PATH": path])
        try await c.waitFor("a READY node with the discovered GPUs", seconds: 30) {
            await c.nodes().first.map { $0.status.state == .ready && $0.description_p.gpus.count == 2 } ?? false
        }
        let gpus = try #require(await c.nodes().first).description_p.gpus
        #expect(gpus.map(\.uuid) == ["GPU-0000", "GPU-1111"])
        #expect(gpus.map(\.index) == [0, 1])
        #expect(gpus.allSatisfy { $0.model == "A100" && $0.memoryMib == 40960 })
        #expect(gpus.map(\.topologyGroup) == ["00000000:07", "00000000:0F"])
        #expect(c.terminate("manager") == 0)
    }
}
