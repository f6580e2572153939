import SwarmAPI

/// The restart decision for an ended task, derived from the slot's history in the store
/// (so it survives leader changes) rather than from memory.
public struct RestartDecision: Sendable, Equatable {
    public var restart: Bool
    /// Unix nanoseconds before which the replacement must not start.
    public var notBefore: Int64
}

public enum RestartPolicy {
    /// Decides whether `ended` (a task that stopped on its own) is replaced.
    /// `history` holds the slot's earlier tasks.
    public static func decide(_ ended: SwarmTask, policy: SwarmRestartPolicy, history: [SwarmTask], now: Int64) -> RestartDecision {
        switch policy.condition {
        case .none:
            return RestartDecision(restart: false, notBefore: 0)
        case .onFailure where !ended.status.state.isFailure:
            return RestartDecision(restart: false, notBefore: 0)
        default:
            break
        }
        if policy.maxAttempts > 0 {
            // Attempts are the slot's tasks that ended and were replaced (within the window).
            let restarted = history.filter { t in
                t.id != ended.id && t.hasEnded && !t.isRunnable
                    && (policy.window <= 0 || t.status.timestamp >= now - policy.window)
            }.count
            if restarted >= Int(policy.maxAttempts) { return RestartDecision(restart: false, notBefore: 0) }
        }
        return RestartDecision(restart: true, notBefore: ended.status.timestamp + max(0, policy.delay))
    }
}
