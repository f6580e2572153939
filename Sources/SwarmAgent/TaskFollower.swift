import SwarmAPI
import SwarmPluginABI
import SwarmPluginHost

/// A running task's decisions, as a pure state machine: what the executor says of the
/// task, stop requests and health verdicts in; stop it, report a status, or finish, out.
/// ``TaskRunner`` is the shell: it waits for the executor's change notices (or its timer
/// when the executor sends none), performs the actions, and feeds the results back.
public struct TaskFollower: Sendable {
    public enum Event: Sendable, Equatable {
        /// The executor's answer to `status`.
        case observed(ExecutorTaskStatus)
        /// The managers (or the agent ending) asked for the task to stop.
        case stopRequested
        /// The executor's shutdown call returned (it waited out the grace period, or the
        /// task ended sooner).
        case shutdownReturned
        /// The agent's own health check (for process tasks) changed its verdict.
        case probed(SwarmTaskStatus.Health, failure: String)
    }

    /// A status to report, without its time (the shell stamps it).
    public struct Report: Sendable, Equatable {
        public var state: SwarmTaskState
        public var message: String
        public var err = ""
        public var exitCode: Int32 = 0
        public var health: SwarmTaskStatus.Health
    }

    public enum Action: Sendable, Equatable {
        /// Ask the executor to stop the task (SIGTERM, SIGKILL after the grace period).
        case shutdown
        case report(Report)
        /// The task has ended and its last state was reported: stop following it.
        case finish
    }

    public private(set) var health: SwarmTaskStatus.Health
    private var stopRequested = false
    private var shuttingDown = false
    private var shutdownReturned = false
    /// Why the task was found unhealthy; it is being stopped for that.
    private var unhealthy: String?
    /// The executor's own verdict last seen (`SWARM_HEALTH_*`).
    private var executorHealth = Int32(SWARM_HEALTH_NONE)
    private var finished = false

    /// `probing`: the agent runs the task's health check itself, so it starts as STARTING.
    public init(probing: Bool) {
        health = probing ? .starting : .none
    }

    public mutating func handle(_ event: Event) -> [Action] {
        guard !finished else { return [] }
        switch event {
        case .stopRequested:
            stopRequested = true
            return beginShutdown()
        case .shutdownReturned:
            shutdownReturned = true
            return []
        case .probed(let verdict, let failure):
            return healthChanged(verdict, failure: failure)
        case .observed(let s):
            var actions: [Action] = []
            if s.health != executorHealth, let verdict = SwarmTaskStatus.Health(executor: s.health) {
                executorHealth = s.health
                actions += healthChanged(verdict, failure: s.message.isEmpty ? "health check failed" : s.message)
            }
            if s.exited {
                finished = true
                return actions + [.report(ending(s)), .finish]
            }
            if shutdownReturned {
                // The executor gave up on it (it did not die after SIGKILL): say so.
                finished = true
                return actions + [.report(Report(state: .shutdown, message: "shut down (the executor could not confirm the end)",
                                                 health: health)), .finish]
            }
            return actions
        }
    }

    private mutating func beginShutdown() -> [Action] {
        guard !shuttingDown else { return [] }
        shuttingDown = true
        return [.shutdown]
    }

    private mutating func healthChanged(_ verdict: SwarmTaskStatus.Health, failure: String) -> [Action] {
        guard verdict != health else { return [] }
        health = verdict
        let message = verdict == .healthy ? "healthy" : verdict == .unhealthy ? "unhealthy: \(failure)" : "health: starting"
        var actions: [Action] = [.report(Report(state: .running, message: message, health: verdict))]
        if verdict == .unhealthy && unhealthy == nil && !shuttingDown {
            // An unhealthy task is stopped; it then ends FAILED, and its restart policy
            // applies. (One already being stopped ends as its stop request said.)
            unhealthy = failure
            actions += beginShutdown()
        }
        return actions
    }

    /// How the task ended: unhealthy, stopped on request, finished, or failed.
    private func ending(_ s: ExecutorTaskStatus) -> Report {
        if let reason = unhealthy {
            return Report(state: .failed, message: "unhealthy: \(reason)", err: "task unhealthy: \(reason)",
                          exitCode: s.exitCode, health: health)
        }
        if stopRequested { return Report(state: .shutdown, message: "shut down", exitCode: s.exitCode, health: health) }
        if s.exitCode == 0 { return Report(state: .complete, message: "finished", health: health) }
        let note = s.message.isEmpty ? "" : " (\(s.message))"
        return Report(state: .failed, message: "exited with code \(s.exitCode)\(note)",
                      err: "task exited with code \(s.exitCode)\(note)", exitCode: s.exitCode, health: health)
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
