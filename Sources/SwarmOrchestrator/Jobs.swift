import SwarmAPI
import SwarmConstraints

/// Jobs: tasks that run to completion once.
///
/// A replicated job has slots 1...total completions; each slot is done when one of its
/// tasks completes, and at most `max concurrent` slots run at once. A global job runs one
/// task to completion on each node that fits. A failed task is retried under the restart
/// policy (condition `any` means `on-failure`: a completed task is never run again). A
/// change to the task template, such as `service update --force`, runs the job again:
/// tasks made from the earlier template no longer count.
extension Reconciler {
    /// The job's settings with SwarmKit's defaults: max concurrent 0 means 1, total
    /// completions 0 means max concurrent.
    public static func jobShape(_ job: SwarmReplicatedJob) -> (maxConcurrent: UInt64, total: UInt64) {
        let concurrent = max(1, job.maxConcurrent)
        return (concurrent, job.totalCompletions == 0 ? concurrent : job.totalCompletions)
    }

    /// How many of a job's slots (or nodes) have completed in the current run, and how
    /// many must: for `service inspect`'s "7/10 completed".
    public static func jobProgress(_ service: SwarmService, tasks: [SwarmTask]) -> (completed: Int, total: Int?) {
        let done = Set(tasks.filter { $0.serviceID == service.id && $0.spec == service.spec.task && $0.status.state == .complete }
            .map { $0.slot == 0 ? $0.nodeID : String($0.slot) })
        if case .replicatedJob(let job)? = service.spec.mode { return (done.count, Int(jobShape(job).total)) }
        return (done.count, nil)
    }

    func reconcileJob(_ service: SwarmService, tasks: [SwarmTask], nodes: [String: SwarmNode]) throws(PlacementError) -> ServicePass {
        var pass = ServicePass()
        var policy = service.spec.task.restart
        if policy.condition == .any { policy.condition = .onFailure }
        // Tasks of an earlier run stop.
        let current = tasks.filter { $0.spec == service.spec.task }
        for t in tasks where t.isRunnable && t.spec != service.spec.task && !t.hasEnded {
            pass.actions.append(.setDesired(taskID: t.id, .shutdown))
        }
        var slots: [Slot]
        var limit = Int.max
        if case .replicatedJob(let job)? = service.spec.mode {
            let shape = Self.jobShape(job)
            limit = Int(shape.maxConcurrent)
            let bySlot = Dictionary(grouping: current, by: \.slot)
            slots = Set(bySlot.keys).union(1...shape.total).sorted().map { slot in
                Slot(slot: slot, nodeID: "", tasks: bySlot[slot] ?? [], wanted: slot <= shape.total, mayCreate: true)
            }
        } else {
            let constraints = try Constraint.parse(all: service.spec.task.placement.constraints)
            let byNode = Dictionary(grouping: current, by: \.nodeID)
            slots = Set(byNode.keys).union(nodes.keys).sorted().map { nodeID in
                let fit = fitness(nodeID, nodes)
                let satisfies = nodes[nodeID].map { n in constraints.allSatisfy { $0.matches(NodeFacts(n)) } } ?? false
                // A node that has already run the job keeps its slot even if it stops fitting.
                let ran = (byNode[nodeID] ?? []).contains { $0.status.state == .complete }
                return Slot(slot: 0, nodeID: nodeID, tasks: byNode[nodeID] ?? [], wanted: ran || (fit != .gone && satisfies),
                            mayCreate: fit == .ok)
            }
        }
        var active = 0
        var waiting: [Slot] = []
        for slot in slots {
            let occupying = slot.tasks.filter(\.isRunnable).sorted { $0.status.timestamp > $1.status.timestamp }
            if !slot.wanted {
                pass.actions += occupying.filter { !$0.hasEnded }.map { .setDesired(taskID: $0.id, .remove) }
                continue
            }
            if slot.tasks.contains(where: { $0.status.state == .complete }) { continue }
            for extra in occupying.dropFirst() { pass.actions.append(.setDesired(taskID: extra.id, .shutdown)) }
            guard let task = occupying.first else {
                waiting.append(slot)
                continue
            }
            if !task.nodeID.isEmpty && fitness(task.nodeID, nodes) == .gone && !task.hasEnded {
                pass.actions.append(.setDesired(taskID: task.id, .shutdown))
                waiting.append(slot)
            } else if task.hasEnded {
                let decision = RestartPolicy.decide(task, policy: policy, history: slot.tasks, now: now)
                guard decision.restart else { continue }  // the slot has failed for good
                pass.actions.append(.setDesired(taskID: task.id, .shutdown))
                if slot.mayCreate {
                    let next = makeTask(service, slot: slot.slot, nodeID: slot.nodeID, startAfter: decision.notBefore)
                    pass.actions.append(.create(next))
                    if next.startAfter > now { pass.wake(at: next.startAfter) }
                    active += 1
                }
            } else {
                active += 1
                if task.desiredState == .ready {
                    if task.startAfter <= now { pass.actions.append(.setDesired(taskID: task.id, .running)) }
                    else { pass.wake(at: task.startAfter) }
                }
            }
        }
        for slot in waiting.prefix(max(0, limit - active)) where slot.mayCreate {
            pass.actions.append(.create(makeTask(service, slot: slot.slot, nodeID: slot.nodeID)))
        }
        return pass
    }
}
