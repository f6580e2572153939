import SwarmAPI

/// The task life cycle. States only move forward: NEW, PENDING, ASSIGNED, ACCEPTED,
/// PREPARING, READY, STARTING, RUNNING, then one terminal state.
public enum TaskLifecycle {
    /// States a task ends in.
    public static let terminal: Set<SwarmTaskState> = [.complete, .shutdown, .failed, .rejected, .remove, .orphaned]

    public static func isTerminal(_ s: SwarmTaskState) -> Bool { s.rawValue >= SwarmTaskState.complete.rawValue }

    /// Whether an observed state may follow `from`: strictly forward, never out of a
    /// terminal state.
    public static func canMove(from: SwarmTaskState, to: SwarmTaskState) -> Bool {
        !isTerminal(from) && to.rawValue > from.rawValue
    }

    /// Whether the task ended badly (restart condition on-failure counts these).
    public static func failed(_ s: SwarmTaskState) -> Bool { s == .failed || s == .rejected }
}

/// What an orchestrator wants done, applied by its shell in one store transaction.
public enum OrchestratorAction: Sendable, Equatable {
    case create(SwarmTask)
    /// Moves a task's desired state forward (a task is never moved backwards).
    case setDesired(taskID: String, SwarmTaskState)
    case delete(taskID: String)
}

extension SwarmTask {
    /// Whether the task still occupies its slot: its desired state is at most RUNNING.
    var occupiesSlot: Bool { desiredState.rawValue <= SwarmTaskState.running.rawValue }
    var hasEnded: Bool { TaskLifecycle.isTerminal(status.state) }
}
