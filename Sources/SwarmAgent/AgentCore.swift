import SwarmAPI
import SwiftProtobuf

/// The agent's decisions about its tasks, as a pure state machine: events in (the tasks
/// recovered from the local database, assignment messages, runners that finished, the
/// agent ending), actions out (start, stop or remove a task, clean up a leftover, report a
/// status, forget a task). It knows nothing of gRPC, threads or executors; ``Agent`` is
/// the shell that performs its actions, and unit tests drive it directly.
public struct AgentCore: Sendable {
    public enum Event: Sendable {
        /// An assignments message: a complete set (everything assigned to the node), or
        /// incremental changes.
        case assignments(complete: Bool, [SwarmAssignmentChange])
        /// A removed task's runner has ended: the task has stopped and was released.
        case removed(taskID: String)
        /// The agent is ending (the node shuts down on purpose).
        case shutdown
    }

    public enum Action: Sendable, Equatable {
        /// Record the task and run it (or adopt it, after a restart).
        case start(SwarmTask)
        case stop(taskID: String)
        /// Stop the task and release what the executor holds for it.
        case remove(taskID: String)
        /// A task from before a restart that must not run: stop whatever is left of it.
        case cleanUpLeftover(SwarmTask)
        case report(taskID: String, SwarmTaskStatus)
        /// Drop the task from the local database.
        case forget(taskID: String)
    }

    /// Tasks with a runner (running, or ended and not yet removed).
    public private(set) var runners: Set<String> = []
    /// Tasks recorded before this process started that no assignment has mentioned yet.
    public private(set) var recovered: [String: TaskDB.Record]
    /// The executors this node loaded.
    let executors: Set<String>

    public init(recovered: [String: TaskDB.Record], executors: Set<String>) {
        self.recovered = recovered
        self.executors = executors
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case .assignments(let complete, let changes):
            var actions: [Action] = []
            if complete {
                let listed = Set(changes.map(\.task.id))
                for id in runners.sorted() where !listed.contains(id) { actions += remove(id) }
                // Tasks from before a restart that are no longer assigned here must stop.
                for id in recovered.keys.sorted() where !listed.contains(id) {
                    let record = recovered.removeValue(forKey: id)!
                    actions += [.cleanUpLeftover(record.task), .forget(taskID: id)]
                }
            }
            for change in changes {
                actions += change.action == .remove ? remove(change.task.id) : apply(change.task)
            }
            return actions
        case .removed(let id):
            return runners.contains(id) ? [] : [.forget(taskID: id)]
        case .shutdown:
            return runners.sorted().map { .stop(taskID: $0) }
        }
    }

    mutating func remove(_ id: String) -> [Action] {
        guard runners.remove(id) != nil else { return [.forget(taskID: id)] }
        return [.remove(taskID: id)]
    }

    /// One assigned task, as the managers now want it.
    mutating func apply(_ task: SwarmTask) -> [Action] {
        let known = recovered.removeValue(forKey: task.id)
        if !task.isRunnable {
            if runners.contains(task.id) {
                return task.desiredState == .remove ? remove(task.id) : [.stop(taskID: task.id)]
            }
            var actions: [Action] = [.cleanUpLeftover(known?.task ?? task)]
            if let known, known.status.map({ $0.state.isActive }) ?? true {
                actions.append(.report(taskID: task.id, .with { $0.state = .shutdown; $0.message = "stopped after the node restarted" }))
            }
            return actions
        }
        guard task.desiredState == .running, !runners.contains(task.id) else { return [] }
        // A task the node saw end before a restart is not run again.
        if let status = known?.status, status.state.isTerminal { return [] }
        guard task.status.state.isActive else { return [] }
        let runtime = task.spec.executorName
        guard executors.contains(runtime) else {
            return [.report(taskID: task.id, .with { $0.state = .rejected; $0.err = "executor \"\(runtime)\" is not loaded on this node" })]
        }
        runners.insert(task.id)
        return [.start(task)]
    }
}
