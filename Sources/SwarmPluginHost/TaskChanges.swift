import Synchronization

/// Where executors' change notices (ABI 1.5 `task_changed`) go: the runner of each task
/// watches its own task ID and is woken when its executor says the task's status changed.
/// Task IDs are unique across the cluster, so one table serves every executor.
public enum TaskChanges {
    private static let watchers = Mutex<[String: @Sendable () -> Void]>([:])

    /// Calls `handler` each time an executor says the status of `taskID` changed, until
    /// ``unwatch(_:)``. A second watch of the same task replaces the first.
    public static func watch(_ taskID: String, _ handler: @escaping @Sendable () -> Void) {
        watchers.withLock { $0[taskID] = handler }
    }

    public static func unwatch(_ taskID: String) {
        watchers.withLock { _ = $0.removeValue(forKey: taskID) }
    }

    /// Wakes the watcher of `taskID`, if any. Returns at once.
    public static func post(_ taskID: String) {
        let handler = watchers.withLock { $0[taskID] }
        handler?()
    }
}
