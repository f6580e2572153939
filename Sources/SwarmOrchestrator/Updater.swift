import SwarmAPI

/// The rolling updater's decisions for one service, derived each pass from the store: how
/// many slots are being replaced, which dirty slots get their new task now, whether the
/// tasks of the update failed too often, and whether the update has finished.
///
/// A slot is *busy* while its new task has not yet started (and passed its health check,
/// if it has one), and for the update delay after that. At most `parallelism` slots are
/// busy at once (0: no limit). A task of the update that fails before it starts, or within
/// the monitor window after, counts as a failure; when failures exceed the allowed ratio of
/// the slots, the failure action applies (pause, continue, or roll back to the previous
/// spec). The update completes when no slot is dirty or busy and the last task's monitor
/// window has passed.
struct Updater {
    let service: SwarmService
    let now: Int64

    static let defaultMonitor: Int64 = 5_000_000_000

    var status: SwarmUpdateStatus { service.updateStatus }
    var rollingBack: Bool { status.state == .rollbackStarted || status.state == .rollbackPaused }
    var inProgress: Bool { status.state == .updating || status.state == .rollbackStarted }
    var paused: Bool { status.state == .paused || status.state == .rollbackPaused }

    /// The settings in force: the rollback settings while rolling back (the update
    /// settings when the spec has none).
    var config: SwarmUpdateConfig {
        rollingBack && service.spec.hasRollback ? service.spec.rollback : service.spec.update
    }

    var monitor: Int64 { config.monitor > 0 ? config.monitor : Self.defaultMonitor }

    /// Whether `task` belongs to the update in progress: made from the current template
    /// after the update started.
    func isPartOfUpdate(_ task: SwarmTask) -> Bool {
        task.spec == service.spec.task && task.meta.createdAt >= status.startedAt
    }

    /// Chooses the dirty slots that get their new task in this pass (indices into
    /// `plans`), and adds status changes (and wake-up times) to `pass`.
    func select(_ plans: [Reconciler.SlotPlan], tasks: [SwarmTask], pass: inout ServicePass) -> [Int] {
        let since = inProgress ? status.startedAt : 0
        var busy = 0
        for p in plans where p.slot.wanted {
            if p.created { busy += 1; continue }
            guard let t = p.current, !t.hasEnded, t.meta.createdAt >= since else { continue }
            if !Reconciler.settled(t) {
                busy += 1
            } else if t.runningSince + config.delay > now {
                busy += 1
                pass.wake(at: t.runningSince + config.delay)
            }
        }
        if inProgress, let failure = failureAction(plans, tasks: tasks) {
            pass.actions.append(failure)
            // Tasks that must move off their node still move; the update itself stops.
            return pick(plans, busy: busy) { $0 != .outdated }
        }
        let selected = pick(plans, busy: busy) { $0 != .outdated || !paused }
        if inProgress && selected.isEmpty && busy == 0 && !plans.contains(where: { $0.dirty != nil }) {
            finishIfMonitored(tasks, pass: &pass)
        }
        return selected
    }

    /// Dirty slots, in slot order, up to what parallelism allows.
    func pick(_ plans: [Reconciler.SlotPlan], busy: Int, where allowed: (Reconciler.Replacement) -> Bool) -> [Int] {
        let candidates = plans.indices.filter { i in plans[i].dirty.map { allowed($0.reason) } ?? false }
        let budget = config.parallelism == 0 ? candidates.count : max(0, Int(config.parallelism) - busy)
        return Array(candidates.prefix(budget))
    }

    /// The failure action, when the update's failed tasks exceed the allowed ratio.
    func failureAction(_ plans: [Reconciler.SlotPlan], tasks: [SwarmTask]) -> OrchestratorAction? {
        let failed = tasks.filter { t in
            isPartOfUpdate(t) && t.status.state.isFailure
                && (t.runningSince == 0 || t.status.timestamp - t.runningSince < monitor)
        }.sorted { ($0.status.timestamp, $0.id) < ($1.status.timestamp, $1.id) }
        guard let first = failed.first else { return nil }
        let slots = max(1, plans.filter { $0.slot.wanted }.count)
        guard Float(failed.count) / Float(slots) > config.maxFailureRatio else { return nil }
        let detail = first.status.err.isEmpty ? first.status.message : first.status.err
        let cause = "failure or early termination of task \(first.id) (\(detail))"
        var next = status
        next.completedAt = 0
        switch config.failureAction {
        case .continue:
            return nil
        case .rollback where !rollingBack && service.hasPreviousSpec:
            next.state = .rollbackStarted
            next.startedAt = now
            next.message = "update rolled back due to \(cause)"
            return .rollback(serviceID: service.id, specVersion: service.specVersion, next)
        default:
            next.state = rollingBack ? .rollbackPaused : .paused
            next.message = "\(rollingBack ? "rollback" : "update") paused due to \(cause)"
            return .setUpdateStatus(serviceID: service.id, specVersion: service.specVersion, next)
        }
    }

    /// Marks the update completed once every task of the update has been watched for the
    /// monitor window; until then, asks to be woken when the last window ends.
    func finishIfMonitored(_ tasks: [SwarmTask], pass: inout ServicePass) {
        let watchedUntil = tasks.filter { isPartOfUpdate($0) && $0.isRunnable && $0.runningSince > 0 }
            .map { $0.runningSince + monitor }.max() ?? 0
        if watchedUntil > now {
            pass.wake(at: watchedUntil)
            return
        }
        var done = status
        done.completedAt = now
        if rollingBack {
            done.state = .rollbackCompleted
            done.message = status.message.isEmpty ? "rollback completed" : "rollback completed: \(status.message)"
        } else {
            done.state = .completed
            done.message = "update completed"
        }
        pass.actions.append(.setUpdateStatus(serviceID: service.id, specVersion: service.specVersion, done))
    }
}
