import Foundation
import SwarmAPI
import SwarmRPC
import SwiftProtobuf
import Testing

/// The docker executor on a real dockerd that `scripts/test.sh` starts for the tests
/// (`SWARM_TEST_DOCKER_HOST`, with the image `SWARM_TEST_IMAGE` made by `docker import`,
/// so that nothing reaches a registry).
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["SWARM_TEST_DOCKER_HOST"] != nil,
                             "needs the dockerd that scripts/test.sh starts"))
struct DockerTests {
    static let host = ProcessInfo.processInfo.environment["SWARM_TEST_DOCKER_HOST"] ?? ""
    static let image = ProcessInfo.processInfo.environment["SWARM_TEST_IMAGE"] ?? "swarm-test:1"

    /// `docker` against the test engine: its output, and whether it succeeded.
    static func docker(_ args: String...) throws -> (ok: Bool, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["docker"] + args
        p.environment = ProcessInfo.processInfo.environment.merging(["DOCKER_HOST": host]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        let status = SwarmdCluster.reap(p)
        return (status == 0, String(decoding: data, as: UTF8.self))
    }

    /// Containers of a service, by the label the executor puts on them.
    static func containers(service: String, all: Bool = true) throws -> [String] {
        let out = try docker("ps", all ? "-aq" : "-q", "--filter", "label=com.swift-swarm.service.name=\(service)").output
        return out.split(separator: "\n").map(String.init)
    }

    @Test func containersRunWithTheirLimitsReportExitCodesAndLeaveNothingBehind() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        // Names of this run only: the engine may hold containers of other runs.
        let run = String(Int.random(in: 100_000...999_999))
        let (box, three, missing) = ("box\(run)", "three\(run)", "missing\(run)")
        try await c.waitFor("the docker executor offered", seconds: 30) {
            (try? c.ctl("plugin", "ls").output.contains("docker")) == true
        }
        let created = try c.ctl("service", "create", "--name", box, "--image", Self.image, "--args=sh", "--args=-c",
                                "--args", "echo hello-$SWARM_TASK_SLOT; echo oops >&2; sleep 600",
                                "--replicas", "3", "--limit-memory", "64MiB", "--limit-cpu", "0.5")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("3 containers running", seconds: 60) { (try? Self.containers(service: box, all: false).count) == 3 }
        let first = try #require(try Self.containers(service: box).first)
        let limits = try Self.docker("inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", first).output
        #expect(limits.trimmingCharacters(in: .whitespacesAndNewlines) == "67108864 500000000", "\(limits)")
        let labels = try Self.docker("inspect", "--format", "{{index .Config.Labels \"com.swift-swarm.task.id\"}}", first).output
        let tasks = await c.tasks()
        #expect(tasks.contains { $0.id == labels.trimmingCharacters(in: .whitespacesAndNewlines) }, "labelled with its task")

        // A container that exits 3: the task FAILED with exit code 3.
        #expect(try c.ctl("service", "create", "--name", three, "--image", Self.image, "--args=sh", "--args=-c",
                          "--args", "exit 3", "--restart-condition", "none").status == 0)
        try await c.waitFor("the task failed with exit code 3", seconds: 60) {
            await c.tasks().contains { $0.serviceAnnotations.name == three && $0.status.state == .failed && $0.status.exitCode == 3 }
        }
        // A missing image (pulling it cannot reach a registry): REJECTED with the reason.
        #expect(try c.ctl("service", "create", "--name", missing, "--image", "swarm-no-such-image:9",
                          "--restart-condition", "none").status == 0)
        try await c.waitFor("the task rejected with the pull's message", seconds: 60) {
            await c.tasks().contains { $0.serviceAnnotations.name == missing && $0.status.state == .rejected
                && $0.status.err.contains("swarm-no-such-image") }
        }
        // Container output reaches the log broker, both streams.
        try await c.waitFor("every container's output in service logs", seconds: 30) {
            let out = (try? c.ctl("service", "logs", box).output) ?? ""
            return ["hello-1", "hello-2", "hello-3", "oops"].allSatisfy { out.contains($0) }
        }

        for s in [box, three, missing] { #expect(try c.ctl("service", "rm", s).status == 0) }
        try await c.waitFor("no container left", seconds: 60) {
            [box, three, missing].allSatisfy { (try? Self.containers(service: $0).isEmpty) == true }
        }
        #expect(c.terminate("manager") == 0)
    }

    /// SwarmKit's walkthrough with an image: create, scale to 6 over 3 nodes (2/2/2),
    /// update to a second tag, drain a node, remove: no container is left.
    @Test func theWalkthroughWithAnImage() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        let token = try await c.readyCluster().joinTokens.worker
        for name in ["w1", "w2"] {
            try c.start(name, ["--join-addr", c.managerAddr, "--join-token", token], environment: ["DOCKER_HOST": Self.host])
        }
        try await c.waitFor("three READY nodes", seconds: 30) { await c.nodes().filter { $0.status.state == .ready }.count == 3 }
        #expect(try Self.docker("tag", Self.image, "swarm-test:walk2").ok)
        let name = "walk\(Int.random(in: 100_000...999_999))"
        #expect(try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args", "sleep 600",
                          "--stop-grace-period", "1s", "--replicas", "3").status == 0)
        #expect(try c.ctl("service", "update", name, "--replicas", "6").status == 0)
        let running = { () async -> [SwarmTask] in
            await c.tasks().filter { $0.serviceAnnotations.name == name && $0.isRunnable && $0.status.state == .running }
        }
        try await c.waitFor("6 containers spread 2/2/2", seconds: 60) {
            let t = await running()
            return t.count == 6 && Dictionary(grouping: t, by: \.nodeID).values.map(\.count).sorted() == [2, 2, 2]
                && (try? Self.containers(service: name, all: false).count) == 6
        }
        #expect(try c.ctl("service", "update", name, "--image", "swarm-test:walk2", "--update-parallelism", "2").status == 0)
        try await c.waitFor("every container on the second tag", seconds: 90) {
            let t = await running()
            let images = (try? Self.containers(service: name, all: false).map {
                try Self.docker("inspect", "--format", "{{.Config.Image}}", $0).output.trimmingCharacters(in: .whitespacesAndNewlines)
            }) ?? []
            return t.count == 6 && t.allSatisfy { $0.spec.container.image == "swarm-test:walk2" }
                && images.count == 6 && images.allSatisfy { $0 == "swarm-test:walk2" }
        }
        let w1 = try #require(await c.nodes().first { $0.description_p.hostname == "w1" })
        #expect(try c.ctl("node", "update", w1.id, "--availability", "drain").status == 0)
        try await c.waitFor("6 containers, none on the drained node", seconds: 60) {
            let t = await running()
            return t.count == 6 && !t.contains { $0.nodeID == w1.id } && (try? Self.containers(service: name, all: false).count) == 6
        }
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        for n in ["w1", "w2", "manager"] { #expect(c.terminate(n) == 0) }
    }

    @Test func containersAreAdoptedAfterKill9AndNotDuplicated() async throws {
        let c = try SwarmdCluster()
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        let name = "adopt\(Int.random(in: 100_000...999_999))"
        #expect(try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args", "sleep 600", "--replicas", "2").status == 0)
        try await c.waitFor("2 containers running", seconds: 60) { (try? Self.containers(service: name, all: false).count) == 2 }
        let before = Set(try Self.containers(service: name))
        c.kill9("manager")
        #expect(Set(try Self.containers(service: name, all: false)) == before, "the containers outlive the node")
        try c.startManager(environment: ["DOCKER_HOST": Self.host])
        try await c.waitFor("both tasks running again", seconds: 60) {
            await c.tasks().filter { $0.serviceAnnotations.name == name && $0.isRunnable && $0.status.state == .running }.count == 2
        }
        try await Task.sleep(for: .seconds(2))
        #expect(Set(try Self.containers(service: name)) == before, "adopted, none duplicated")
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        #expect(c.terminate("manager") == 0)
    }

    /// A node reports whether its engine answers; the scheduler places container tasks
    /// only where it does, and follows the engine coming and going (here its socket path
    /// is a link made and removed under the running node).
    @Test func containerTasksGoOnlyWhereTheEngineAnswers() async throws {
        let c = try SwarmdCluster()
        let link = "\(c.root)/engine.sock"
        // --docker-host wins over DOCKER_HOST.
        try c.startManager(["--docker-host", "unix://\(link)"], environment: ["DOCKER_HOST": Self.host])
        _ = try await c.readyCluster()
        try await c.waitFor("docker reported unavailable", seconds: 30) {
            (try? c.ctl("plugin", "ls").output)?.contains("unavailable") == true
        }
        let name = "later\(Int.random(in: 100_000...999_999))"
        let created = try c.ctl("service", "create", "--name", name, "--image", Self.image, "--args", "sleep 600")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("the task pending for want of an engine", seconds: 30) {
            await c.tasks().contains { $0.serviceAnnotations.name == name && $0.status.state == .pending
                && $0.status.message.contains("runtime \"docker\" not available") }
        }
        // The engine appears: the task runs.
        let socket = Self.host.replacingOccurrences(of: "unix://", with: "")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: socket)
        try await c.waitFor("the container running once the engine answers", seconds: 60) {
            (try? Self.containers(service: name, all: false).count) == 1
        }
        // It goes away: the node says so, and what runs keeps running.
        try FileManager.default.removeItem(atPath: link)
        try await c.waitFor("docker reported unavailable again", seconds: 30) {
            (try? c.ctl("plugin", "ls").output)?.contains("unavailable") == true
        }
        #expect(await c.tasks().contains { $0.serviceAnnotations.name == name && $0.status.state == .running })
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: socket)
        #expect(try c.ctl("service", "rm", name).status == 0)
        try await c.waitFor("no container left", seconds: 60) { (try? Self.containers(service: name).isEmpty) == true }
        #expect(c.terminate("manager") == 0)
    }

    @Test func aDockerHostThatIsNotAUnixSocketIsRefused() throws {
        let p = Process()
        p.executableURL = SwarmdCluster.binDir.appendingPathComponent("swarmd")
        p.arguments = ["-d", NSTemporaryDirectory() + "swarmd-bad-\(UUID().uuidString.prefix(8))", "--docker-host", "tcp://127.0.0.1:2375"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(SwarmdCluster.reap(p) != 0)
        #expect(out.contains("--docker-host tcp://127.0.0.1:2375: give the engine's unix socket"), "\(out)")
    }
}
