import SwarmAPI

extension PlacementEngine {
    /// Places a group through the scorer's ``Scorer/placeGroup(_:count:feasible:)``: the
    /// nodes that pass the filters (in ID order) are offered once, and the answer is
    /// applied as a whole. It is not trusted: if any choice is out of range, or names a
    /// node that has no room left once the group's earlier tasks are on it, no task of
    /// the group is placed and each keeps the reason, so that a group decision (such as
    /// all-or-nothing placement) is never half applied. Tasks the strategy leaves out
    /// (nil) stay pending. Returns nil when the scorer declines the group, so that it is
    /// placed task by task.
    mutating func placeAsGroup(_ tasks: [SwarmTask], requirements req: TaskRequirements, scorer: some Scorer,
                               _ pass: Pass, onAssign: (Int, SwarmTask) -> Void) -> PlacementResult? {
        var result = PlacementResult()
        var feasible: [String] = []
        for id in orderedIDs() {
            guard let at = nodes.index(forKey: id) else { continue }
            if let failed = judge(at, req, scorer, pass, score: false).refusedBy {
                result.rejections[failed.name, default: 0] += 1
            } else {
                feasible.append(id)
            }
        }
        guard let answer = scorer.placeGroup(req, count: tasks.count, feasible: feasible.map { nodes[$0]! }) else { return nil }
        // Applied to a copy first; the engine changes only if every choice holds.
        var trial = self
        var assigned: [(Int, SwarmTask)] = []
        var refusal: String?
        for (position, task) in tasks.enumerated() where refusal == nil {
            guard position < answer.count, let k = answer[position] else {
                result.unplaced[task.id] = feasible.isEmpty ? explain(result.rejections, req, filters: pass.filters)
                    : "not placed: the strategy placed \(answer.prefix(tasks.count).compactMap { $0 }.count) of the group's \(tasks.count) tasks"
                continue
            }
            guard k >= 0, k < feasible.count, let at = trial.nodes.index(forKey: feasible[k]) else {
                refusal = "the strategy chose node \(k) of \(feasible.count) for task \(task.id)"
                continue
            }
            let fits = trial.judge(at, req, scorer, pass, score: false).refusedBy == nil
            if !fits || !trial.assign(task, position: position, to: at, req, scorer, pass, &result, { assigned.append(($0, $1)) }) {
                refusal = "the strategy chose node \(feasible[k]) for task \(task.id), which has no room left for it"
            }
        }
        if let refusal {
            var refused = PlacementResult()
            refused.rejections = result.rejections
            refused.rejections["strategy", default: 0] += 1
            for task in tasks { refused.unplaced[task.id] = "not placed: the group's placement was refused (\(refusal))" }
            refused.refusedAnswers = result.refusedAnswers + ["group placement refused: \(refusal)"]
            return refused
        }
        self = trial
        for (position, task) in assigned { onAssign(position, task) }
        return result
    }
}
