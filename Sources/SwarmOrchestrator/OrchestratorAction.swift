import SwarmAPI

/// What an orchestrator wants done, applied by its shell in one store transaction.
public enum OrchestratorAction: Sendable, Equatable {
    case create(SwarmTask)
    /// Moves a task's desired state forward (a task is never moved backwards).
    case setDesired(taskID: String, SwarmTaskState)
    case delete(taskID: String)
}
