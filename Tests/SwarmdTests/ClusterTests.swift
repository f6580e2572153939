import Foundation
import GRPCCore
import SwarmAPI
import SwarmRPC
import SwiftProtobuf
import Testing

/// One manager and two workers, each a real `swarmd` process, driven with `swarmctl`: the
/// tasks of a service are real child processes, spread 2/2/2, scaled, moved off a drained
/// node and off a killed one, never duplicated when a worker restarts, and all gone when
/// the service is removed.
@Suite(.serialized) struct ClusterTests {
    @Test func walkingCluster() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        _ = try await c.readyCluster()
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

/// Logs, labels and constraints, placement explanations and bad input, through swarmctl
/// against a manager and one worker.
@Suite(.serialized) struct ClusterFeatureTests {
    @Test func logsLabelsExplanationsAndErrors() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        let token = try await c.readyCluster().joinTokens.worker
        try c.startWorker("w1", token: token)
        try await c.waitFor("two READY nodes", seconds: 30) {
            await c.nodes().filter { $0.status.state == .ready }.count == 2
        }

        // Labels, then a constraint that only the labelled node meets.
        #expect(try c.ctl("node", "update", "--label-add", "zone=east", "--label-add", "tier=2", "w1").status == 0)
        #expect(try c.ctl("node", "update", "--label-rm", "tier", "w1").status == 0)
        let w1 = try await c.control { try await $0.getNode(.with { $0.nodeID = "w1" }) }.node
        #expect(w1.spec.annotations.labels == ["zone": "east"])
        let marker = "m\(Int.random(in: 100_000...999_999))"
        let script = "echo hello-\(marker); echo oops-\(marker) >&2; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
        let created = try c.ctl("service", "create", "--name", "talker", "--command", "/bin/sh", "--args=-c", "--args", script,
                                "--replicas", "2", "--constraint", "node.labels.zone==east")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("2 running tasks on w1", seconds: 30) {
            let r = await c.tasks().filter { $0.status.state == .running }
            return r.count == 2 && r.allSatisfy { $0.nodeID == w1.id }
        }
        try await Task.sleep(for: .milliseconds(800))

        // A dry run shows where tasks would go, and why not, and creates nothing.
        let servicesBefore = try await c.control { try await $0.listServices(.init()) }.services.count
        let dry = try c.ctl("service", "create", "--name", "dry", "--command", "/bin/true", "--replicas", "3",
                            "--constraint", "node.labels.zone==east", "--dry-run")
        let dryRows = dry.output.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(dry.status == 0 && dryRows.filter { $0.count >= 2 && $0[1] == "w1" }.count == 3, "\(dry.output)")
        #expect(dry.output.contains("3 of 3 tasks would be placed; nothing was created"), "\(dry.output)")
        let dryBig = try c.ctl("service", "create", "--name", "dry", "--command", "/bin/true", "--reserve-memory", "64TiB", "--dry-run")
        #expect(dryBig.output.contains("insufficient resources on 2 nodes") && dryBig.output.contains("0 of 1 tasks"), "\(dryBig.output)")
        #expect(try await c.control { try await $0.listServices(.init()) }.services.count == servicesBefore)

        // service logs: every task's output, stdout and stderr, prefixed with its name.
        let logs = try c.ctl("service", "logs", "talker")
        #expect(logs.status == 0, "\(logs.output)")
        let lines = logs.output.split(separator: "\n")
        #expect(lines.filter { $0.hasSuffix("| hello-\(marker)") && $0.hasPrefix("talker.") }.count == 2, "\(logs.output)")
        #expect(lines.filter { $0.hasSuffix("| oops-\(marker)") }.count == 2, "\(logs.output)")
        #expect(lines.contains { $0.hasSuffix("| tick-2") }, "\(logs.output)")

        // task logs --tail 1: the last line of each stream, no prefix.
        let task = await c.tasks().first { $0.status.state == .running }!
        let tail = try c.ctl("task", "logs", "--tail", "1", String(task.id.prefix(10)))
        let tailLines = tail.output.split(separator: "\n")
        #expect(tailLines.count == 2 && tailLines.contains("oops-\(marker)") && tailLines.contains { $0.hasPrefix("tick-") }, "\(tail.output)")

        // --follow keeps printing what the task writes later.
        let follow = try c.start(swarmctl: ["task", "logs", "--follow", "--tail", "1", task.id])
        try await Task.sleep(for: .seconds(2))
        kill(follow.process.processIdentifier, SIGTERM)
        _ = SwarmdCluster.reap(follow.process)
        let followed = String(decoding: follow.output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let ticks = followed.split(separator: "\n").compactMap { $0.hasPrefix("tick-") ? Int($0.dropFirst(5)) : nil }
        #expect(ticks.count >= 4, "followed output: \(followed)")
        #expect(ticks == ticks.sorted() && Set(ticks).count == ticks.count, "followed output: \(followed)")

        // A task that fits nowhere stays pending, and task inspect says why.
        let big = try c.ctl("service", "create", "--name", "huge", "--command", "/bin/sleep", "--args", "60", "--reserve-memory", "64TiB")
        #expect(big.status == 0, "\(big.output)")
        try await c.waitFor("the huge task to be pending with an explanation", seconds: 20) {
            await c.tasks().contains { $0.serviceAnnotations.name == "huge" && $0.status.state == .pending && !$0.status.rejections.isEmpty }
        }
        let pending = await c.tasks().first { $0.serviceAnnotations.name == "huge" }!
        let inspect = try c.ctl("task", "inspect", pending.id)
        #expect(inspect.output.contains("insufficient resources on 2 nodes"), "\(inspect.output)")
        #expect(inspect.output.contains("PENDING"), "\(inspect.output)")

        // Bad input: clear errors, a non-zero status, and nothing stored.
        let before = try await c.control { try await $0.listServices(.init()) }.services.count
        for (args, message) in [
            (["service", "create", "--name", "bad1", "--command", "/bin/true", "--replicas=-1"], "must not be negative"),
            (["service", "create", "--name", "bad2", "--command", "/bin/true", "--constraint", "node.labels.zone=east"], "constraint"),
            (["service", "create", "--name", "bad3", "--command", "/bin/true", "--strategy", "nosuch"], "nosuch"),
            (["service", "create", "--name", "bad4", "--command", "/bin/true", "--reserve-memory", "lots"], "invalid size"),
            (["service", "create", "--name", "bad5", "--command", "/bin/true", "--generic-resource", "gpu"], "gpu"),
            (["service", "create", "--name", "talker", "--command", "/bin/true"], "already in use"),
            (["service", "create", "--name", "bad6", "--command", "/bin/true", "--gpus", "2", "--gpu-milli", "500"], "can only be of one GPU"),
            (["service", "create", "--name", "bad7", "--command", "/bin/true", "--gpu-milli", "1500"], "more than a whole GPU"),
            (["service", "create", "--name", "bad8", "--command", "/bin/true", "--filter", "nosuchfilter"], "unknown filter"),
            (["service", "inspect", "nosuchservice"], "not found"),
            (["node", "demote", "manager"], "last manager"),
            (["cluster", "update", "--heartbeat-period", "soon"], "invalid duration"),
            (["cluster", "update", "--default-filter", "nosuchfilter"], "unknown filter \"nosuchfilter\""),
            (["cluster", "update", "--default-strategy", "nosuch"], "unknown strategy"),
        ] {
            let r = try c.ctl(args)
            #expect(r.status != 0, "\(args) succeeded: \(r.output)")
            #expect(r.output.contains(message), "\(args): \(r.output)")
        }
        #expect(try await c.control { try await $0.listServices(.init()) }.services.count == before)

        // kill -9 the worker and restart it at once (well within the heartbeat timeout): it
        // adopts its running tasks (same processes, none started twice), and their output,
        // held in the FIFOs meanwhile, keeps flowing into the logs.
        let shells = SwarmdCluster.pids(matching: ["/bin/sh", "-c", script])
        #expect(shells.count == 2)
        c.kill9("w1")
        try await Task.sleep(for: .milliseconds(500))
        try c.startWorker("w1", token: token)
        try await c.waitFor("w1 back with its tasks adopted", seconds: 30) {
            let r = await c.tasks().filter { $0.status.state == .running && $0.desiredState == .running && $0.serviceAnnotations.name == "talker" }
            return r.count == 2 && c.logTail("w1", lines: 200).contains("recovered 2 task(s)")
        }
        try await Task.sleep(for: .seconds(1))
        #expect(SwarmdCluster.pids(matching: ["/bin/sh", "-c", script]) == shells)
        let lastTick = { (text: String) in text.split(separator: "\n").compactMap { l in l.split(separator: "tick-").last.flatMap { Int($0) } }.max() ?? -1 }
        let tickBefore = lastTick(logs.output)
        let after = try c.ctl("task", "logs", task.id)
        #expect(lastTick(after.output) > tickBefore + 5, "\(after.output.suffix(300))")

        #expect(try c.ctl("service", "rm", "talker").status == 0)
        try await c.waitFor("the talker processes to stop", seconds: 20) {
            SwarmdCluster.pids(matching: ["/bin/sh", "-c", script]).isEmpty
        }
        for name in ["w1", "manager"] { #expect(c.terminate(name) == 0, "\(name)\n\(c.logTail(name))") }
    }
}
