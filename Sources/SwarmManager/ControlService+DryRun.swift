import SwarmAPI
import SwarmPluginHost
import SwarmScheduler

extension ControlService {
    /// Places a would-be service's tasks on a copy of the cluster's current state, with the
    /// strategy and filters it names (or the cluster's), and reports where each would go
    /// or why it would wait. Nothing is stored.
    func dryRun(_ service: SwarmService) throws -> SwarmCreateServiceResponse {
        guard let plugins else { throw ControlError.unavailable("this manager cannot simulate placement") }
        let view = store.view()
        var engine = PlacementEngine()
        for n in view.find(SwarmNode.self) { engine.setNode(n) }
        for t in view.find(SwarmTask.self) where !t.nodeID.isEmpty && t.status.state.rawValue >= SwarmTaskState.assigned.rawValue
            && t.status.state.rawValue < SwarmTaskState.complete.rawValue {
            engine.taskAssigned(t)
        }
        let cluster = view.find(SwarmCluster.self).first
        let strategyName = service.spec.task.strategy.isEmpty ? (cluster?.spec.defaultStrategy.isEmpty == false ? cluster!.spec.defaultStrategy : "spread")
            : service.spec.task.strategy
        guard let strategy = plugins.strategy(strategyName) else {
            throw ControlError.invalidArgument("strategy \"\(strategyName)\" is not loaded on this manager")
        }
        var filters = PlacementFilter.pipeline
        for f in (cluster?.spec.defaultFilters ?? []) + service.spec.task.filters {
            guard let loaded = plugins.filter(f) else { throw ControlError.invalidArgument("filter \"\(f)\" is not loaded on this manager") }
            filters.append(.plugin(f, loaded))
        }
        engine.filters = filters
        let req: TaskRequirements
        do {
            req = try TaskRequirements(serviceID: service.id, serviceName: service.spec.annotations.name, spec: service.spec.task)
        } catch {
            throw ControlError.invalidArgument(error.description)
        }
        var tasks: [SwarmTask] = []
        if case .global? = service.spec.mode {
            // One task per node; the filters decide which nodes can take it.
            for (k, id) in engine.nodes.keys.sorted().enumerated() {
                tasks.append(.with { $0.id = "dry-\(k)"; $0.serviceID = service.id; $0.spec = service.spec.task; $0.nodeID = id })
            }
        } else {
            tasks = (0..<Int(service.spec.replicated.replicas)).map { k in
                .with { $0.id = "dry-\(k)"; $0.serviceID = service.id; $0.slot = UInt64(k + 1); $0.spec = service.spec.task }
            }
        }
        var placements: [SwarmDryRunPlacement] = []
        if case .global? = service.spec.mode {
            for t in tasks {
                let node = engine.nodes[t.nodeID]!
                let failed = filters.first { !$0.passes(req, node) }
                placements.append(.with {
                    $0.nodeID = node.id
                    $0.hostname = node.hostname
                    $0.reason = failed.map { "not eligible: \($0.explanation(req, rejected: 1))" } ?? ""
                })
            }
        } else {
            let result = engine.place(tasks, requirements: req, scorer: PluginScorer(strategy))
            let byTask = Dictionary(uniqueKeysWithValues: result.assignments.map { ($0.task, $0.node) })
            for t in tasks {
                placements.append(.with {
                    $0.slot = t.slot
                    if let n = byTask[t.id] {
                        $0.nodeID = n
                        $0.hostname = engine.nodes[n]?.hostname ?? ""
                        $0.gpus = result.gpus[t.id] ?? []
                    } else {
                        $0.reason = result.unplaced[t.id] ?? "no suitable node"
                    }
                })
            }
        }
        return .with {
            $0.service = service
            $0.placements = placements
        }
    }
}
