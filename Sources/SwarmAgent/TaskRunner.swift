import Foundation
import Logging
import SwarmAPI
import SwarmConcurrency
import SwarmPluginHost
import SwiftProtobuf
import Synchronization

/// Drives one task through its executor: ACCEPTED, PREPARING, READY, STARTING, RUNNING,
/// then COMPLETE, FAILED or SHUTDOWN, reporting each state. States only move forward.
final class TaskRunner: Sendable {
    let task: SwarmTask
    let executorTask: SwarmTask
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
        /// Verdicts of the agent's own health check, for ``follow(probing:)``.
        var verdicts: [TaskFollower.Event] = []
    }
    /// Wakes ``follow()``: a stop or removal was asked for, the health check changed its
    /// mind, or the executor said the task's status changed (ABI 1.5 notices).
    private let wake = Doorbell()
    /// Fired by ``remove()`` only.
    private let removal = StopSignal()

    /// - Parameter executorTask: the task as the executor gets it (with the data of its
    ///   secrets and configs); `task` is what the agent records and reports on.
    init(task: SwarmTask, executorTask: SwarmTask? = nil, executor: ExecutorClient, workDir: String, logger: Logger,
         report: @escaping @Sendable (String, SwarmTaskStatus) -> Void) {
        self.task = task
        self.executorTask = executorTask ?? task
        self.executor = executor
        self.workDir = workDir
        self.logger = logger
        self.report = report
    }

    var proto: [UInt8] { (try? executorTask.serializedBytes()) ?? [] }

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
            guard let probe else { return try await follow(probing: false) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await self.monitorHealth(probe) }
                try await self.follow(probing: true)
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

    /// Follows the running task until it ends, with the decisions left to a
    /// ``TaskFollower``: this loop feeds it stop requests, health verdicts and what the
    /// executor says, and performs what it returns. An executor that sends change notices
    /// (ABI 1.5) is asked for the task's status when it says something changed (and every
    /// 10 s as a safety net); an older one is polled every 100 ms.
    private func follow(probing: Bool) async throws {
        let (notifies, wake, id) = (executor.notifies, wake, task.id)
        if notifies { TaskChanges.watch(id) { wake.ring() } }
        defer { if notifies { TaskChanges.unwatch(id) } }
        var follower = TaskFollower(probing: probing)
        var stopFed = false
        while true {
            // The agent ending (its task cancelled) stops the tasks, as a node shut down
            // on purpose does.
            if Task.isCancelled { state.withLock { $0.stopRequested = true } }
            var events = state.withLock { st -> [TaskFollower.Event] in
                defer { st.verdicts = [] }
                return st.verdicts
            }
            if !stopFed && stopRequested {
                stopFed = true
                events.append(.stopRequested)
            }
            for event in events {
                if try await perform(follower.handle(event), &follower) { return }
            }
            // Asked after the stop (if any) returned, so that it says how the stop ended.
            if try await perform(follower.handle(.observed(try executor.status(taskID: id))), &follower) { return }
            await wake.wait(upTo: notifies ? .seconds(10) : .milliseconds(100))
        }
    }

    /// Performs a follower's actions; returns true once the task is finished.
    private func perform(_ actions: [TaskFollower.Action], _ follower: inout TaskFollower) async throws -> Bool {
        for action in actions {
            switch action {
            case .shutdown:
                let (executor, id, grace) = (executor, task.id, gracePeriod)
                // SIGTERM, then SIGKILL after the grace period, off the cooperative pool.
                try? await ExecutorThreads.run("stop \(id)") { try executor.shutdown(taskID: id, graceNanoseconds: grace) }
                _ = follower.handle(.shutdownReturned)
            case .report(let r):
                let pid = state.withLock { st -> Int32 in
                    st.health = r.health
                    return st.pid
                }
                if r.state == .running {
                    // A change of health: the same state again, which set() would drop.
                    var status = SwarmTaskStatus()
                    status.state = .running
                    status.message = r.message
                    status.pid = pid
                    status.health = r.health
                    status.timestamp = Self.now()
                    report(task.id, status)
                    if r.health == .unhealthy { logger.info("task \(task.id) is \(r.message); stopping it") }
                } else {
                    set(r.state, r.message, exitCode: r.exitCode, pid: pid, err: r.err)
                }
            case .finish:
                return true
            }
        }
        return false
    }

    /// The health check of a process task (the docker executor leaves it to the engine,
    /// and reports the engine's verdict in its status).
    var healthProbe: HealthProbe? {
        guard !task.spec.healthcheck.test.isEmpty, case .process(let p)? = task.spec.runtime else { return nil }
        return HealthProbe(task.spec.healthcheck, env: p.env, directory: p.dir.isEmpty ? workDir : p.dir)
    }

    /// Runs the health check every interval and hands each change of verdict to
    /// ``follow(probing:)``, which reports it (and stops an unhealthy task).
    private func monitorHealth(_ probe: HealthProbe) async {
        let config = task.spec.healthcheck
        var tracker = HealthTracker(config, startedAt: Self.now())
        while (try? await Task.sleep(for: .nanoseconds(config.interval))) != nil {
            let failure = await probe.check()
            let before = tracker.health
            let health = tracker.record(healthy: failure == nil, at: Self.now())
            if health == before { continue }
            state.withLock { $0.verdicts.append(.probed(health, failure: failure ?? "health check failed")) }
            wake.ring()
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

