import Foundation
import SwarmAPI
import Testing

/// What a container task's spec asks of the engine, its health, and what happens behind
/// the node's back, on the test dockerd.
extension DockerTests {
    @Test func mountsUserPortsAndStopSignalReachTheEngine() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        let run = String(Int.random(in: 100_000...999_999))
        let (name, data) = ("spec\(run)", "\(c.root)/data")
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: data)
        let created = try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args=sh", "--args=-c",
                                "--args", "id -u > /data/uid-$SWARM_TASK_SLOT; df /scratch | tail -1 > /data/df-$SWARM_TASK_SLOT; sleep 600",
                                "--mount", "type=bind,source=\(data),target=/data",
                                "--mount", "type=tmpfs,target=/scratch,tmpfs-size=8MiB",
                                "--mount", "type=volume,source=vol\(run),target=/vol,readonly",
                                "--user", "4321", "--publish", "18\(run.prefix(3)):80", "--stop-signal", "SIGINT",
                                "--replicas", "2")
        #expect(created.status == 0, "\(created.output)")
        // One node: the second replica cannot publish the same port there.
        try await c.waitFor("one container running, the other task pending on the port", seconds: 60) {
            let tasks = await c.tasks().filter { $0.serviceAnnotations.name == name }
            return (try? Self.containers(service: name, all: false).count) == 1
                && tasks.contains { $0.status.state == .pending && $0.status.message.contains("port") }
        }
        let id = try #require(try Self.containers(service: name).first)
        let inspect = try Self.docker("inspect", "--format",
                                      "{{.Config.User}}|{{.Config.StopSignal}}|{{json .HostConfig.PortBindings}}|{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}",
                                      id).output
        #expect(inspect.hasPrefix("4321|SIGINT|"), "\(inspect)")
        #expect(inspect.contains("\"HostPort\":\"18\(run.prefix(3))\""), "\(inspect)")
        for mount in ["bind:/data:true", "volume:/vol:false"] { #expect(inspect.contains(mount), "\(inspect)") }
        let tmpfs = try Self.docker("inspect", "--format", "{{json .HostConfig.Mounts}}", id).output
        #expect(tmpfs.contains("\"Type\":\"tmpfs\"") && tmpfs.contains("8388608"), "\(tmpfs)")
        // The container wrote through the bind mount, as the user it was given, with its tmpfs mounted.
        try await c.waitFor("the container's files on the host", seconds: 30) {
            (try? String(contentsOfFile: "\(data)/uid-1", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "4321"
                || (try? String(contentsOfFile: "\(data)/uid-2", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "4321"
        }
        let df = (try? FileManager.default.contentsOfDirectory(atPath: data))?.first { $0.hasPrefix("df-") }
        let tmpfsLine = try String(contentsOfFile: "\(data)/\(try #require(df))", encoding: .utf8)
        #expect(tmpfsLine.contains("tmpfs") || tmpfsLine.contains("8192"), "\(tmpfsLine)")
        // Bad mounts and ports are refused with the reason, and nothing is stored.
        for bad in [["--mount", "type=bind,source=relative,target=/x"], ["--mount", "type=tmpfs,source=/a,target=/x"],
                    ["--mount", "type=bind,source=/a"], ["--publish", "80"], ["--publish", "published=80,target=80,mode=ingress"],
                    ["--publish", "70000:80"]] {
            let out = try c.ctl(["service", "create", "--name", "bad\(run)", "--image", Self.image] + bad)
            #expect(out.status != 0 && !out.output.isEmpty, "\(bad): \(out.output)")
        }
        let mountOnProcess = try c.ctl("service", "create", "--name", "bad\(run)", "--command", "/bin/true", "--mount", "type=tmpfs,target=/x")
        #expect(mountOnProcess.status != 0 && mountOnProcess.output.contains("container tasks"), "\(mountOnProcess.output)")
        #expect(!(try c.ctl("service", "ls").output.contains("bad\(run)")))
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        _ = try Self.docker("volume", "rm", "vol\(run)")
        #expect(c.terminate("manager") == 0)
    }

    /// The engine runs the health check; its verdicts reach the task, and an unhealthy
    /// container is stopped and replaced.
    @Test func theEnginesHealthCheckDecidesATasksHealth() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        let name = "health\(Int.random(in: 100_000...999_999))"
        let created = try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args=sh", "--args=-c",
                                "--args", "touch /tmp/ok; sleep 600", "--health-cmd", "test -f /tmp/ok",
                                "--health-interval", "1s", "--health-retries", "1", "--stop-grace-period", "1s")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("the task healthy", seconds: 60) {
            await c.tasks().contains { $0.serviceAnnotations.name == name && $0.status.state == .running && $0.status.health == .healthy }
        }
        let first = try #require(try Self.containers(service: name, all: false).first)
        #expect(try Self.docker("exec", first, "rm", "/tmp/ok").ok)
        try await c.waitFor("the task failed as unhealthy, and a new one healthy", seconds: 60) {
            let tasks = await c.tasks().filter { $0.serviceAnnotations.name == name }
            return tasks.contains { $0.status.state == .failed && $0.status.message.contains("unhealthy") }
                && tasks.contains { $0.isRunnable && $0.status.state == .running && $0.status.health == .healthy }
        }
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        #expect(c.terminate("manager") == 0)
    }

    /// A container removed behind the node's back ends its task (the events stream says
    /// so at once), and the restart policy replaces it.
    @Test func aContainerRemovedBehindTheNodesBackIsReplaced() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        let name = "behind\(Int.random(in: 100_000...999_999))"
        #expect(try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args", "sleep 600").status == 0)
        try await c.waitFor("the container running", seconds: 60) { (try? Self.containers(service: name, all: false).count) == 1 }
        let first = try #require(try Self.containers(service: name).first)
        #expect(try Self.docker("rm", "-f", first).ok)
        try await c.waitFor("the task failed and a new container runs", seconds: 60) {
            let failed = await c.tasks().contains { $0.serviceAnnotations.name == name && $0.status.state == .failed }
            let now = (try? Self.containers(service: name, all: false)) ?? []
            return failed && now.count == 1 && !first.hasPrefix(now[0])
        }
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        #expect(c.terminate("manager") == 0)
    }

    /// As with processes: 20 containers that ignore SIGTERM stop together, in about one
    /// grace period, not one after another.
    @Test func removingContainersThatIgnoreSIGTERMTakesAboutOneGracePeriod() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        let name = "stubborn\(Int.random(in: 100_000...999_999))"
        #expect(try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args=sh", "--args=-c",
                          "--args", "trap '' TERM; while true; do sleep 1; done", "--replicas", "20",
                          "--stop-grace-period", "2s").status == 0)
        try await c.waitFor("20 containers running", seconds: 120) { (try? Self.containers(service: name, all: false).count) == 20 }
        let started = Date()
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("every container gone", seconds: 120) { (try? Self.containers(service: name).isEmpty) == true }
        let took = Date().timeIntervalSince(started)
        // One at a time this would take 20 grace periods (40 s).
        #expect(took < 15, "20 containers with a 2 s grace period took \(took) s to go")
        #expect(c.terminate("manager") == 0)
    }

    /// A node killed with kill -9 and restarted after its tasks moved elsewhere stops and
    /// removes its stale containers, and the cluster keeps exactly its replicas.
    @Test func containersTheClusterMovedAwayAreRemovedWhenTheNodeReturns() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        let token = try await c.readyCluster().joinTokens.worker
        #expect(try c.ctl("cluster", "update", "default", "--heartbeat-period", "1s").status == 0)
        try c.start("w1", ["--join-addr", c.managerAddr, "--join-token", token], environment: ["DOCKER_HOST": Self.host])
        try await c.waitFor("two READY nodes", seconds: 30) { await c.nodes().filter { $0.status.state == .ready }.count == 2 }
        let name = "moved\(Int.random(in: 100_000...999_999))"
        #expect(try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args", "sleep 600",
                          "--replicas", "2", "--stop-grace-period", "1s").status == 0)
        let w1 = try #require(await c.nodes().first { $0.description_p.hostname == "w1" }).id
        let running = { () async -> [SwarmTask] in
            await c.tasks().filter { $0.serviceAnnotations.name == name && $0.isRunnable && $0.status.state == .running }
        }
        try await c.waitFor("one container on each node", seconds: 60) {
            await running().filter { $0.nodeID == w1 }.count == 1 && (try? Self.containers(service: name, all: false).count) == 2
        }
        let onW1 = try Self.docker("ps", "-q", "--filter", "label=com.swift-swarm.node.id=\(w1)",
                                   "--filter", "label=com.swift-swarm.service.name=\(name)").output
            .split(separator: "\n").map(String.init)
        #expect(onW1.count == 1)
        c.kill9("w1")
        try await c.waitFor("w1 DOWN and its task running elsewhere", seconds: 60) {
            let r = await running()
            return r.count == 2 && !r.contains { $0.nodeID == w1 } && (try? Self.containers(service: name, all: false).count) == 3
        }
        try c.start("w1", ["--join-addr", c.managerAddr, "--join-token", token], environment: ["DOCKER_HOST": Self.host])
        try await c.waitFor("the stale container gone, two left", seconds: 60) {
            (try? Self.containers(service: name).count) == 2
                && (try? Self.containers(service: name).contains { id in onW1.contains { $0.hasPrefix(id) || id.hasPrefix($0) } }) == false
        }
        #expect(await running().count == 2)
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        for n in ["w1", "manager"] { #expect(c.terminate(n) == 0) }
    }
}

