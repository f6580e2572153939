import Foundation
import SwarmAPI
import SwarmRPC
import SwiftProtobuf
import Testing

/// Rolling updates, rollback, pause and resume, start-first with health checks, jobs and
/// constraint enforcement, on real `swarmd` processes running real child processes.
@Suite(.serialized) struct UpdateTests {
    /// A manager and one worker, both READY.
    static func cluster() async throws -> SwarmdCluster {
        let c = try SwarmdCluster()
        try c.startManager()
        let token = try await c.readyCluster().joinTokens.worker
        try c.startWorker("w1", token: token)
        try await c.waitFor("two READY nodes", seconds: 30) {
            let nodes = await c.nodes()
            return nodes.count == 2 && nodes.allSatisfy { $0.status.state == .ready }
        }
        return c
    }

    static func marker() -> String { String(Int.random(in: 100_000_000...999_999_999)) }

    static func service(_ c: SwarmdCluster, _ name: String) async throws -> SwarmService {
        try await c.control { try await $0.getService(.with { $0.serviceID = name }) }.service
    }

    static func serviceTasks(_ c: SwarmdCluster, _ id: String) async -> [SwarmTask] {
        await c.tasks().filter { $0.serviceID == id }
    }

    @Test func rollingUpdateRollbackPauseAndResume() async throws {
        let c = try await Self.cluster()
        let (m1, m2, m3) = (Self.marker(), Self.marker(), Self.marker())
        #expect(try c.ctl("service", "create", "--name", "web", "--command", "/bin/sleep", "--args", m1, "--replicas", "6").status == 0)
        try await c.waitFor("6 processes of the first spec", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", m1]).count == 6 }
        let id = try await Self.service(c, "web").id

        // Parallelism 2, delay 3 s: never more than 2 slots without a running task, and at
        // least 6 s in which inspect shows the update running.
        let update = try c.ctl("service", "update", "web", "--args", m2, "--update-parallelism", "2", "--update-delay", "3s")
        #expect(update.status == 0, "\(update.output)")
        var most = 0
        var sawUpdating = false
        try await c.waitFor("the update to complete", seconds: 90) {
            // Inspect first: on a loaded machine one round of these checks can take seconds.
            let inspect = (try? c.ctl("service", "inspect", "web").output) ?? ""
            if inspect.contains("UPDATING") { sawUpdating = true }
            let tasks = await Self.serviceTasks(c, id)
            let runningSlots = Set(tasks.filter { $0.status.state == .running && $0.isRunnable }.map(\.slot))
            most = max(most, 6 - runningSlots.count)
            return inspect.contains("COMPLETED") && SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count == 6
        }
        #expect(sawUpdating, "inspect shows the update while it runs")
        #expect(most <= 2, "at most 2 slots are replaced at once (saw \(most))")
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count == 6)
        try await c.waitFor("no process of the first spec", seconds: 15) { SwarmdCluster.pids(matching: ["/bin/sleep", m1]).isEmpty }
        let updated = await Self.serviceTasks(c, id).filter { $0.spec.process.args == [m2] }
        #expect(updated.count == 6 && Set(updated.map(\.slot)) == [1, 2, 3, 4, 5, 6], "each slot updated once")

        // A command that exits 1, with rollback on failure.
        let bad = try c.ctl("service", "update", "web", "--command", "/bin/false", "--update-parallelism", "1",
                            "--update-delay", "0s", "--update-failure-action", "rollback", "--update-monitor", "3s")
        #expect(bad.status == 0, "\(bad.output)")
        try await c.waitFor("the rollback to complete", seconds: 90) {
            (try? await Self.service(c, "web"))?.updateStatus.state == .rollbackCompleted
        }
        let rolledBack = try await Self.service(c, "web")
        #expect(rolledBack.spec.task.process.command == "/bin/sleep")
        #expect(rolledBack.updateStatus.message.contains("rolled back due to failure"), "\(rolledBack.updateStatus.message)")
        let inspect = try c.ctl("service", "inspect", "web").output
        #expect(inspect.contains("ROLLBACK_COMPLETED") && inspect.contains("rolled back due to failure"), "\(inspect)")
        try await c.waitFor("6 processes of the restored spec", seconds: 30) {
            let tasks = await Self.serviceTasks(c, id).filter(\.isRunnable)
            return SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count == 6
                && tasks.count == 6 && tasks.allSatisfy { $0.spec.process.command == "/bin/sleep" && $0.status.state == .running }
        }

        // The same with pause: the update stops, then another update resumes it.
        #expect(try c.ctl("service", "update", "web", "--command", "/bin/false", "--update-failure-action", "pause").status == 0)
        try await c.waitFor("the update to pause", seconds: 60) { (try? await Self.service(c, "web"))?.updateStatus.state == .paused }
        let paused = try await Self.service(c, "web")
        #expect(paused.updateStatus.message.contains("paused due to failure"), "\(paused.updateStatus.message)")
        let left = SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count
        #expect(left >= 3, "the update paused after its first failures (\(left) old tasks left)")
        try await Task.sleep(for: .seconds(3))
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count == left, "a paused update replaces no more tasks")
        #expect(try c.ctl("service", "update", "web", "--command", "/bin/sleep", "--args", m3).status == 0)
        try await c.waitFor("the resumed update to complete", seconds: 90) {
            (try? await Self.service(c, "web"))?.updateStatus.state == .completed
                && SwarmdCluster.pids(matching: ["/bin/sleep", m3]).count == 6
        }
        // A manual rollback returns to the spec before the last update: here the failing
        // one, so the rollback itself pauses (the rollback failure action's default).
        #expect(try c.ctl("service", "rollback", "web").status == 0)
        try await c.waitFor("the manual rollback to pause", seconds: 60) {
            (try? await Self.service(c, "web"))?.updateStatus.state == .rollbackPaused
        }
        let back = try await Self.service(c, "web")
        #expect(back.spec.task.process.command == "/bin/false")
        #expect(back.updateStatus.message.contains("rollback paused due to failure"), "\(back.updateStatus.message)")

        #expect(try c.ctl("service", "rm", "web").status == 0)
        try await c.waitFor("no task process left", seconds: 30) {
            [m1, m2, m3].allSatisfy { SwarmdCluster.pids(matching: ["/bin/sleep", $0]).isEmpty }
        }
    }

    @Test func startFirstWaitsForHealthAndUnhealthyTasksRestart() async throws {
        let c = try await Self.cluster()
        let (m1, m2) = (Self.marker(), Self.marker())
        let flag = "\(c.root)/sick"
        let created = try c.ctl("service", "create", "--name", "hc", "--command", "/bin/sleep", "--args", m1, "--replicas", "2",
                                "--health-cmd", "test ! -e \(flag)", "--health-interval", "300ms", "--health-retries", "2")
        #expect(created.status == 0, "\(created.output)")
        let id = try await Self.service(c, "hc").id
        try await c.waitFor("2 healthy tasks", seconds: 30) {
            await Self.serviceTasks(c, id).filter { $0.status.state == .running && $0.status.health == .healthy }.count == 2
        }
        let ls = try c.ctl("task", "ls", "--service", "hc").output
        #expect(ls.contains("HEALTHY"), "\(ls)")

        #expect(try c.ctl("service", "update", "hc", "--args", m2, "--update-order", "start-first").status == 0)
        try await c.waitFor("the start-first update to complete", seconds: 60) {
            (try? await Self.service(c, "hc"))?.updateStatus.state == .completed
        }
        let tasks = await Self.serviceTasks(c, id)
        for slot: UInt64 in [1, 2] {
            let old = try #require(tasks.first { $0.slot == slot && $0.spec.process.args == [m1] })
            let new = try #require(tasks.first { $0.slot == slot && $0.spec.process.args == [m2] })
            #expect(new.status.health == .healthy)
            // The new task's last report (HEALTHY) came before the old one was stopped.
            #expect(new.status.timestamp <= old.status.timestamp, "slot \(slot): new healthy at \(new.status.timestamp), old stopped at \(old.status.timestamp)")
            #expect(old.status.state == .shutdown)
        }

        // The check starts failing: the tasks are failed and restarted.
        let before = Set(await Self.serviceTasks(c, id).filter(\.isRunnable).map(\.id))
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        try await c.waitFor("both unhealthy tasks to fail", seconds: 30) {
            await Self.serviceTasks(c, id).filter { before.contains($0.id) && $0.status.state == .failed && $0.status.message.contains("unhealthy") }.count == 2
        }
        try FileManager.default.removeItem(atPath: flag)
        try await c.waitFor("2 new healthy tasks", seconds: 30) {
            let live = await Self.serviceTasks(c, id).filter { $0.isRunnable && $0.status.health == .healthy && $0.status.state == .running }
            return live.count == 2 && Set(live.map(\.id)).isDisjoint(with: before)
        }
        #expect(try c.ctl("service", "rm", "hc").status == 0)
    }

    @Test func jobsRunToCompletion() async throws {
        let c = try await Self.cluster()
        let created = try c.ctl("service", "create", "--name", "batch", "--mode", "replicated-job", "--command", "/bin/sleep",
                                "--args", "0.4", "--total-completions", "10", "--max-concurrent", "3")
        #expect(created.status == 0, "\(created.output)")
        let id = try await Self.service(c, "batch").id
        var most = 0
        try await c.waitFor("10 completions", seconds: 60) {
            let tasks = await Self.serviceTasks(c, id)
            most = max(most, tasks.filter { $0.status.state.isActive }.count)
            return tasks.filter { $0.status.state == .complete }.count == 10
        }
        #expect(most <= 3, "at most 3 tasks at once (saw \(most))")
        let inspect = try c.ctl("service", "inspect", "batch").output
        #expect(inspect.contains("10/10 completed"), "\(inspect)")
        try await Task.sleep(for: .seconds(1))
        #expect(await Self.serviceTasks(c, id).count == 10, "a finished job starts nothing more")
        // --force runs it again.
        #expect(try c.ctl("service", "update", "batch", "--force").status == 0)
        try await c.waitFor("10 completions of the second run", seconds: 60) {
            let forced = (try? await Self.service(c, "batch"))?.spec.task.forceUpdate == 1
            return forced && (try? c.ctl("service", "inspect", "batch").output.contains("10/10 completed")) == true
        }
        let runs = await Self.serviceTasks(c, id).filter { $0.status.state == .complete && $0.spec.forceUpdate == 1 }
        #expect(Set(runs.map(\.slot)).count == 10)

        #expect(try c.ctl("service", "create", "--name", "once", "--mode", "global-job", "--command", "/bin/true").status == 0)
        let once = try await Self.service(c, "once").id
        try await c.waitFor("one completion per node", seconds: 30) {
            let done = await Self.serviceTasks(c, once).filter { $0.status.state == .complete }
            return done.count == 2 && Set(done.map(\.nodeID)).count == 2
        }
        let rejected = try c.ctl("service", "create", "--name", "bad", "--mode", "replicated-job", "--replicas", "2", "--command", "/bin/true")
        #expect(rejected.status != 0 && rejected.output.contains("--replicas applies to replicated services only"), "\(rejected.output)")
    }

    @Test func removingANeededLabelMovesTheTask() async throws {
        let c = try await Self.cluster()
        let w1 = try #require(await c.nodes().first { $0.description_p.hostname == "w1" })
        #expect(try c.ctl("node", "update", w1.id, "--label-add", "zone=east").status == 0)
        let m = Self.marker()
        #expect(try c.ctl("service", "create", "--name", "east", "--command", "/bin/sleep", "--args", m,
                          "--constraint", "node.labels.zone==east").status == 0)
        let id = try await Self.service(c, "east").id
        try await c.waitFor("the task running on w1", seconds: 30) {
            await Self.serviceTasks(c, id).contains { $0.nodeID == w1.id && $0.status.state == .running }
        }
        #expect(try c.ctl("node", "update", w1.id, "--label-rm", "zone").status == 0)
        try await c.waitFor("the task moved off w1 and waiting for a node that fits", seconds: 30) {
            let tasks = await Self.serviceTasks(c, id)
            return tasks.contains { $0.nodeID == w1.id && $0.status.state == .shutdown }
                && tasks.contains { $0.isRunnable && $0.status.state == .pending }
        }
        try await c.waitFor("the process gone", seconds: 15) { SwarmdCluster.pids(matching: ["/bin/sleep", m]).isEmpty }
    }

    @Test func badUpdateInputIsRefusedAndChangesNothing() async throws {
        let c = try await Self.cluster()
        #expect(try c.ctl("service", "create", "--name", "web", "--command", "/bin/sleep", "--args", Self.marker()).status == 0)
        let before = try await Self.service(c, "web")
        let cases: [([String], String)] = [
            (["--update-parallelism=-1"], "must not be negative"),
            (["--update-failure-action", "explode"], "must be pause, continue or rollback"),
            (["--update-order", "sideways"], "must be stop-first or start-first"),
            (["--update-max-failure-ratio", "1.5"], "between 0 and 1"),
            (["--health-cmd", "true", "--health-interval", "0s"], "health interval must be positive"),
        ]
        for (flags, message) in cases {
            let r = try c.ctl(["service", "update", "web"] + flags)
            #expect(r.status != 0 && r.output.contains(message), "\(flags): \(r.output)")
        }
        // An image with a command is a container task, never a host process in disguise.
        let marker = String(Int.random(in: 100_000_000...999_999_999))
        let image = try c.ctl("service", "create", "--name", "img", "--image", "busybox", "--command", "sleep", "--args", marker)
        #expect(image.status == 0, "\(image.output)")
        let img = try await Self.service(c, "img")
        #expect(img.spec.task.executorName == "docker" && img.spec.task.container.command == ["sleep"])
        try await Task.sleep(for: .seconds(1))
        #expect(SwarmdCluster.pids(matching: ["sleep", marker]).isEmpty, "no host process")
        #expect(try c.ctl("service", "rm", "img").status == 0)
        let rollback = try c.ctl("service", "rollback", "web")
        #expect(rollback.status != 0 && rollback.output.contains("no previous spec"), "\(rollback.output)")
        let after = try await Self.service(c, "web")
        #expect(after.meta.version == before.meta.version && after.spec == before.spec)
    }

    /// Running tasks of a service per node, sorted.
    static func spread(_ c: SwarmdCluster, _ id: String) async -> [Int] {
        let running = await Self.serviceTasks(c, id).filter { $0.isRunnable && $0.status.state == .running }
        return Dictionary(grouping: running, by: \.nodeID).values.map(\.count).sorted()
    }

    @Test func rebalanceSpreadsOntoANewNodeWithoutDroppingBelowTheReplicaCount() async throws {
        let c = try await Self.cluster()
        let m = Self.marker()
        #expect(try c.ctl("service", "create", "--name", "web", "--command", "/bin/sleep", "--args", m, "--replicas", "6",
                          "--update-order", "start-first").status == 0)
        let id = try await Self.service(c, "web").id
        try await c.waitFor("6 tasks spread 3/3", seconds: 30) { await Self.spread(c, id) == [3, 3] }
        let token = try await c.readyCluster().joinTokens.worker
        try c.startWorker("w2", token: token)
        try await c.waitFor("three READY nodes", seconds: 30) { await c.nodes().filter { $0.status.state == .ready }.count == 3 }
        try await Task.sleep(for: .seconds(1))
        #expect(await Self.spread(c, id) == [3, 3], "nothing moves without a rebalance")

        #expect(try c.ctl("service", "update", "web", "--rebalance").status == 0)
        var fewest = 6
        try await c.waitFor("a 2/2/2 spread and the rebalance done", seconds: 60) {
            let running = await Self.serviceTasks(c, id).filter { $0.status.state == .running }.count
            fewest = min(fewest, running)
            let done = (try? await Self.service(c, "web")).map { $0.updateStatus.rebalanced == $0.spec.rebalance } ?? false
            return await Self.spread(c, id) == [2, 2, 2] && done
        }
        #expect(fewest >= 6, "never fewer than 6 running tasks (saw \(fewest))")
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", m]).count == 6)
        let inspect = try c.ctl("service", "inspect", "web").output
        #expect(inspect.split(separator: "\n").contains { $0.hasPrefix("Rebalance ") && $0.hasSuffix(": done") }, "\(inspect)")

        // With auto-rebalance on, a joining node is used without asking.
        #expect(try c.ctl("cluster", "update", "default", "--auto-rebalance", "true").status == 0)
        try c.startWorker("w3", token: token)
        try await c.waitFor("6 tasks over 4 nodes", seconds: 60) { await Self.spread(c, id) == [1, 1, 2, 2] }
        let refused = try c.ctl("service", "create", "--name", "g", "--mode", "global", "--command", "/bin/true")
        #expect(refused.status == 0)
        let globalRebalance = try c.ctl("service", "update", "g", "--rebalance")
        #expect(globalRebalance.status != 0 && globalRebalance.output.contains("replicated services only"), "\(globalRebalance.output)")
    }

    @Test func aNewLeaderFinishesAnUpdateWithoutRedoingSlots() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        let tokens = try await c.readyCluster().joinTokens
        for name in ["m2", "m3"] { try c.startWorker(name, token: tokens.manager, port: SwarmdCluster.freePort()) }
        try c.startWorker("w1", token: tokens.worker)
        try await c.waitFor("three reachable managers and a READY worker", seconds: 60) {
            let nodes = await c.nodes()
            return nodes.filter { $0.role == .manager && $0.managerStatus.reachability == .reachable }.count == 3
                && nodes.contains { $0.description_p.hostname == "w1" && $0.status.state == .ready }
        }
        // Tasks run on the worker only, so that killing a manager kills no task.
        for n in await c.nodes() where n.role == .manager {
            #expect(try c.ctl("node", "update", n.id, "--availability", "drain").status == 0)
        }
        let (m1, m2) = (Self.marker(), Self.marker())
        #expect(try c.ctl("service", "create", "--name", "web", "--command", "/bin/sleep", "--args", m1, "--replicas", "4").status == 0)
        try await c.waitFor("4 processes", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", m1]).count == 4 }
        let id = try await Self.service(c, "web").id
        #expect(try c.ctl("service", "update", "web", "--args", m2, "--update-parallelism", "1", "--update-delay", "3s").status == 0)
        try await c.waitFor("the first slot updated", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count >= 1 }
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count < 4, "the update is still going when the leader dies")

        c.kill9("manager")
        c.controlSocket = "\(c.root)/m2/swarmd.sock"
        var emptiest = 4
        try await c.waitFor("the update completed under a new leader", seconds: 90) {
            let live = await Self.serviceTasks(c, id).filter(\.isRunnable)
            if !live.isEmpty { emptiest = min(emptiest, Set(live.map(\.slot)).count) }
            return (try? await Self.service(c, "web"))?.updateStatus.state == .completed
                && SwarmdCluster.pids(matching: ["/bin/sleep", m2]).count == 4
        }
        #expect(emptiest == 4, "no slot was ever left without a task")
        let updated = await Self.serviceTasks(c, id).filter { $0.spec.process.args == [m2] }
        #expect(updated.count == 4 && Set(updated.map(\.slot)) == [1, 2, 3, 4], "each slot updated exactly once: \(updated.map(\.slot))")
        try await c.waitFor("no process of the old spec", seconds: 15) { SwarmdCluster.pids(matching: ["/bin/sleep", m1]).isEmpty }
        #expect(try c.ctl("service", "rm", "web").status == 0)
        try await c.waitFor("no task process left", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", m2]).isEmpty }
        for name in ["w1", "m3", "m2"] { #expect(c.terminate(name) == 0, "\(name)\n\(c.logTail(name))") }
    }
}
