import SwarmAPI

/// What an orchestrator wants done, applied by its shell in one store transaction.
public enum OrchestratorAction: Sendable, Equatable {
    case create(SwarmTask)
    /// Moves a task's desired state forward (a task is never moved backwards).
    case setDesired(taskID: String, SwarmTaskState)
    case delete(taskID: String)
    /// Records a service's update status, if the service is still at `specVersion`.
    case setUpdateStatus(serviceID: String, specVersion: UInt64, SwarmUpdateStatus)
    /// Returns a service to its previous spec (the current one becomes the previous one),
    /// if it is still at `specVersion`, and records `status`.
    case rollback(serviceID: String, specVersion: UInt64, SwarmUpdateStatus)
    /// Records that the rebalance a service's spec asked for (its counter) has finished.
    case markRebalanced(serviceID: String, UInt64)
}

/// The outcome of reconciling one service.
public struct ServicePass: Sendable, Equatable {
    public var actions: [OrchestratorAction] = []
    /// The earliest Unix time (nanoseconds) at which the service must be looked at again
    /// without any event: a delayed start, the end of an update delay or monitor window.
    public var wake: Int64?

    public init(actions: [OrchestratorAction] = [], wake: Int64? = nil) {
        self.actions = actions
        self.wake = wake
    }

    mutating func wake(at time: Int64) { wake = min(wake ?? .max, time) }
}
