import Foundation
import Logging
import SwarmAPI
import SwarmConcurrency
import SwarmPluginABI
import SwarmPluginHost
import SwiftProtobuf
import Synchronization

/// Drives one task through its executor: ACCEPTED, PREPARING, READY, STARTING, RUNNING,
/// then COMPLETE, FAILED or SHUTDOWN, reporting each state. States only move forward.
final class TaskRunner: Sendable {
    let task: SwarmTask
    let executor: ExecutorClient
    let workDir: String
    let report: @Sendable (String, SwarmTaskStatus) -> Void
    let logger: Logger
    private let state = Mutex(RunnerState())
    struct RunnerState {
        var reported: SwarmTaskState = .assigned
        var stopRequested = false
        var removed = false
        var pid: Int32 = 0
        var health: SwarmTaskStatus.Health = .none
        /// Set when the health check failed and the runner stopped the task.
        var unhealthy: String?
    }
    /// Wakes ``follow()``: a stop or removal was asked for, the health check changed its
    /// mind, or the executor said the task's status changed (ABI 1.5 notices).
    private let wake = Doorbell()
    /// Fired by ``remove()`` only.
    private let removal = StopSignal()

    init(task: SwarmTask, executor: ExecutorClient, workDir: String, logger: Logger,
         report: @escaping @Sendable (String, SwarmTaskStatus) -> Void) {
        self.task = task
        self.executor = executor
        self.workDir = workDir
        self.logger = logger
        self.report = report
    }

    var proto: [UInt8] { (try? task.serializedBytes()) ?? [] }

    func set(_ s: SwarmTaskState, _ message: String, exitCode: Int32 = 0, pid: Int32 = 0, err: String = "") {
        let health = state.withLock { st -> SwarmTaskStatus.Health? in
            guard st.reported.canMove(to: s) else { return nil }
            st.reported = s
            return st.health
        }
        guard let health else { return }
        var status = SwarmTaskStatus()
        status.health = health
        status.state = s
        status.message = message
        status.err = err
        status.exitCode = exitCode
        status.pid = pid
        status.timestamp = Self.now()
        report(task.id, status)
    }

    var stopRequested: Bool { state.withLock { $0.stopRequested } }

    /// Starts (or, after a node restart, adopts) the task and follows it until it ends or
    /// is stopped; then waits until the agent removes the task (or the agent ends). The agent runs this as one of its child tasks, one per task, so tasks
    /// start and stop at their own pace and concurrently. Every executor call that can
    /// block runs on a thread of its own (``ExecutorThreads``).
    func serve() async {
        await run()
        // The task has ended (or was stopped); the runner stays until the task is removed
        // (or the agent ends), so that removal releases what the executor keeps for it.
        await removal.wait()
        if state.withLock({ $0.removed }) {
            let (executor, id) = (executor, task.id)
            try? await ExecutorThreads.run("remove \(id)") { try executor.remove(taskID: id) }
        }
        finished.fire()
    }

    /// Fired when ``serve()`` ends: the task has stopped (and, after ``remove()``, the
    /// executor has released it).
    let finished = StopSignal()

    private func run() async {
        set(.accepted, "accepted")
        let (executor, task, workDir, proto) = (executor, task, workDir, proto)
        do {
            set(.preparing, "preparing")
            try await ExecutorThreads.run("prepare \(task.id)") {
                try executor.prepare(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
            }
            set(.ready, "prepared")
            if stopRequested || Task.isCancelled { set(.shutdown, "shut down before start"); return }
            set(.starting, "starting")
            try await ExecutorThreads.run("start \(task.id)") {
                try executor.start(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
            }
            let pid = try executor.status(taskID: task.id).pid
            let probe = healthProbe
            state.withLock {
                $0.pid = pid
                if probe != nil { $0.health = .starting }
            }
            set(.running, "started", pid: pid)
            guard let probe else { return try await follow() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.monitorHealth(probe) }
                try await self.follow()
                group.cancelAll()
            }
        } catch is CancellationError {
            return
        } catch {
            if stopRequested {
                set(.shutdown, "shut down")
                return
            }
            logger.warning("task \(task.id): \(error)")
            set(.rejected, "executor refused the task", err: "\(error)")
        }
    }

    /// Follows the running task until it exits, or until a stop is asked for (then
    /// stops it), and reports how it ended. An executor that sends change notices (ABI
    /// 1.5) is asked for the task's status when it says something changed (and every 10 s
    /// as a safety net); an older one is polled every 100 ms.
    private func follow() async throws {
        let (notifies, wake, id) = (executor.notifies, wake, task.id)
        if notifies { TaskChanges.watch(id) { wake.ring() } }
        defer { if notifies { TaskChanges.unwatch(id) } }
        var stopping = false
        var engineHealth = Int32(SWARM_HEALTH_NONE)
        while true {
            // The agent ending (its task cancelled) stops the tasks, as a node shut down
            // on purpose does.
            if Task.isCancelled { state.withLock { $0.stopRequested = true } }
            if !stopping && stopRequested {
                stopping = true
                let (executor, grace) = (executor, gracePeriod)
                // SIGTERM, then SIGKILL after the grace period, off the cooperative pool.
                try? await ExecutorThreads.run("stop \(id)") { try executor.shutdown(taskID: id, graceNanoseconds: grace) }
            }
            let s = try executor.status(taskID: id)
            // The executor's own health check (a container engine's), reported like ours.
            if s.health != engineHealth, let health = SwarmTaskStatus.Health(executor: s.health) {
                engineHealth = s.health
                healthChanged(health, failure: s.message.isEmpty ? "health check failed" : s.message, pid: s.pid)
                continue
            }
            if s.exited {
                if let reason = state.withLock({ $0.unhealthy }) {
                    set(.failed, "unhealthy: \(reason)", exitCode: s.exitCode, pid: s.pid, err: "task unhealthy: \(reason)")
                } else if stopRequested {
                    set(.shutdown, "shut down", exitCode: s.exitCode, pid: s.pid)
                } else if s.exitCode == 0 {
                    set(.complete, "finished", exitCode: 0, pid: s.pid)
                } else {
                    let note = s.message.isEmpty ? "" : " (\(s.message))"
                    set(.failed, "exited with code \(s.exitCode)\(note)", exitCode: s.exitCode, pid: s.pid,
                        err: "task exited with code \(s.exitCode)\(note)")
                }
                return
            }
            if stopping {
                // The executor gave up on it (it did not die after SIGKILL): say so.
                set(.shutdown, "shut down (the executor could not confirm the end)", pid: s.pid)
                return
            }
            await wake.wait(upTo: notifies ? .seconds(10) : .milliseconds(100))
        }
    }

    /// Reports a change of health; an unhealthy task is stopped (it then ends FAILED, and
    /// its restart policy applies).
    private func healthChanged(_ health: SwarmTaskStatus.Health, failure: String, pid: Int32) {
        state.withLock { st in
            st.health = health
            if health == .unhealthy && st.unhealthy == nil {
                st.unhealthy = failure
                st.stopRequested = true
            }
        }
        var status = SwarmTaskStatus()
        status.state = .running
        status.message = health == .healthy ? "healthy" : health == .unhealthy ? "unhealthy: \(failure)" : "health: starting"
        status.pid = pid
        status.health = health
        status.timestamp = Self.now()
        report(task.id, status)
        if health == .unhealthy {
            logger.info("task \(task.id) is unhealthy (\(failure)); stopping it")
            wake.ring()
        }
    }

    /// The health check of a process task (the docker executor leaves it to the engine,
    /// and reports the engine's verdict in its status).
    var healthProbe: HealthProbe? {
        guard !task.spec.healthcheck.test.isEmpty, case .process(let p)? = task.spec.runtime else { return nil }
        return HealthProbe(task.spec.healthcheck, env: p.env, directory: p.dir.isEmpty ? workDir : p.dir)
    }

    /// Runs the health check every interval and reports each change of health; once the
    /// task is unhealthy, ``follow()`` stops it.
    private func monitorHealth(_ probe: HealthProbe) async {
        let config = task.spec.healthcheck
        var tracker = HealthTracker(config, startedAt: Self.now())
        while (try? await Task.sleep(for: .nanoseconds(config.interval))) != nil {
            let failure = await probe.check()
            let before = tracker.health
            let health = tracker.record(healthy: failure == nil, at: Self.now())
            if health == before { continue }
            healthChanged(health, failure: failure ?? "health check failed", pid: state.withLock { $0.pid })
            if health == .unhealthy { return }
        }
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

    /// The spec's stop grace period (process or container), 10 s when it sets none.
    var gracePeriod: Int64 {
        let grace: Int64
        switch task.spec.runtime {
        case .process(let p)?: grace = p.stopGracePeriod
        case .container(let c)?: grace = c.stopGracePeriod
        case nil: grace = 0
        }
        return grace > 0 ? grace : 10_000_000_000
    }

    /// Asks for the task to be stopped (SIGTERM, then SIGKILL after the grace period).
    /// Returns at once; the runner stops the task and reports SHUTDOWN.
    func stop() {
        state.withLock { $0.stopRequested = true }
        wake.ring()
    }

    /// Asks for the task to be stopped and everything the executor holds for it released.
    func remove() {
        state.withLock {
            $0.stopRequested = true
            $0.removed = true
        }
        wake.ring()
        removal.fire()
    }
}

extension SwarmTaskStatus.Health {
    /// The task health for an executor's `SWARM_HEALTH_*`; nil for NONE or an unknown value.
    init?(executor value: Int32) {
        switch value {
        case Int32(SWARM_HEALTH_STARTING): self = .starting
        case Int32(SWARM_HEALTH_HEALTHY): self = .healthy
        case Int32(SWARM_HEALTH_UNHEALTHY): self = .unhealthy
        default: return nil
        }
    }
}
