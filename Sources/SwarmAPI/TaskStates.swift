/// The task state predicates, written once for every module: the scheduler, the
/// orchestrators, the dispatcher, the agent and `swarmctl` all ask these.
///
/// States only move forward: NEW, PENDING, ASSIGNED, ACCEPTED, PREPARING, READY, STARTING,
/// RUNNING, then one terminal state (COMPLETE, SHUTDOWN, FAILED, REJECTED, REMOVE,
/// ORPHANED).
extension SwarmTaskState {
    /// A state the task ends in: COMPLETE or any later state.
    public var isTerminal: Bool { rawValue >= SwarmTaskState.complete.rawValue }

    /// ASSIGNED up to RUNNING: the task is on a node and has not ended.
    public var isActive: Bool { rawValue >= SwarmTaskState.assigned.rawValue && !isTerminal }

    /// Before ASSIGNED: the task has no node yet.
    public var isUnassigned: Bool { rawValue < SwarmTaskState.assigned.rawValue }

    /// An end that went badly (what restart condition on-failure counts).
    public var isFailure: Bool { self == .failed || self == .rejected }

    /// Whether an observed state may follow this one: strictly forward, never out of a
    /// terminal state.
    public func canMove(to next: SwarmTaskState) -> Bool { !isTerminal && next.rawValue > rawValue }
}

extension SwarmTask {
    /// Whether the orchestrator still wants the task to run: its desired state is at most
    /// RUNNING (so it occupies its slot).
    public var isRunnable: Bool { desiredState.rawValue <= SwarmTaskState.running.rawValue }

    /// Whether the task has ended (its observed state is terminal).
    public var hasEnded: Bool { status.state.isTerminal }

    /// Whether the task waits for the scheduler: desired RUNNING and not yet assigned.
    public var isWaitingForNode: Bool { desiredState == .running && status.state.isUnassigned }

    /// Whether the task counts against its node's resources: on a node and active.
    public var holdsResources: Bool { !nodeID.isEmpty && status.state.isActive }
}
