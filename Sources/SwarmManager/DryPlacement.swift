import SwarmAPI
import SwarmConstraints
import SwarmPluginHost
import SwarmScheduler
import SwarmStore
import SwiftProtobuf

/// Places a service's tasks with the scheduler's own pass (``PlacementPass``) on a copy
/// of the cluster's current state, with the strategy and filters the service names (or
/// the cluster's). Nothing is stored, and the scheduler's strategy instances are never
/// called: the pass gets an instance of its own
/// (``PluginRegistry/withPrivateInstance(ofStrategy:_:)``).
///
/// Used by dry runs (where would a new service go) and by rebalancing (where would this
/// service go if it were placed now, without its own tasks).
struct DryPlacement {
    /// The would-be tasks, by slot (or one per node, for global services).
    var tasks: [SwarmTask] = []
    var outcomes: [String: PlacementPass.Outcome] = [:]
    var engine = PlacementEngine()

    /// - Parameter withoutOwnTasks: leave the service's existing tasks out of the copy.
    init(_ service: SwarmService, view: ReadTx, plugins: PluginRegistry, withoutOwnTasks: Bool = false) throws(ControlError) {
        for n in view.find(SwarmNode.self) { engine.setNode(n) }
        for t in view.find(SwarmTask.self) where !t.nodeID.isEmpty && t.holdsResources {
            if withoutOwnTasks && t.serviceID == service.id { continue }
            engine.taskAssigned(t)
        }
        let cluster = view.find(SwarmCluster.self).first
        let defaults = PlacementPass.Defaults(strategy: cluster?.spec.defaultStrategy ?? "spread",
                                              filters: cluster?.spec.defaultFilters ?? [])
        let strategyName = PlacementPass.strategyName(service.spec.task, defaults: defaults)
        for f in defaults.filters + service.spec.task.filters where plugins.filter(f) == nil {
            throw .invalidArgument("filter \"\(f)\" is not loaded on this manager")
        }
        do {
            _ = try TaskRequirements(serviceID: service.id, serviceName: service.spec.annotations.name, spec: service.spec.task)
        } catch {
            throw .invalidArgument(error.description)
        }
        if case .global? = service.spec.mode {
            // One task per node; the filters decide which nodes can take it.
            for (k, id) in engine.nodes.keys.sorted().enumerated() {
                tasks.append(Self.task(service, k, slot: 0, nodeID: id))
            }
        } else {
            tasks = (0..<Int(service.spec.replicated.replicas)).map { k in Self.task(service, k, slot: UInt64(k + 1), nodeID: "") }
        }
        var outcomes: [String: PlacementPass.Outcome] = [:]
        var engine = self.engine
        let pending = tasks
        do {
            try plugins.withPrivateInstance(ofStrategy: strategyName) { strategy in
                let scorer = PluginScorer(strategy)
                _ = PlacementPass.run(&engine, pending: pending, defaults: defaults, assignedStatus: nil,
                                      scorer: { $0 == strategyName ? scorer : nil },
                                      filter: { name in plugins.filter(name).map { .plugin(name, $0) } }) { outcome in
                    switch outcome {
                    case .assigned(let t), .pending(let t, _, _): outcomes[t.id] = outcome
                    }
                }
            }
        } catch let error as PluginRegistry.PrivateInstanceError {
            throw .invalidArgument(error.description)
        } catch {
            throw .unavailable("\(error)")
        }
        self.outcomes = outcomes
        self.engine = engine
    }

    static func task(_ service: SwarmService, _ k: Int, slot: UInt64, nodeID: String) -> SwarmTask {
        .with {
            $0.id = "dry-\(k)"; $0.serviceID = service.id; $0.serviceAnnotations = service.spec.annotations
            $0.slot = slot; $0.spec = service.spec.task; $0.nodeID = nodeID; $0.desiredState = .running
        }
    }

    /// How many of the tasks each node would get.
    var countsByNode: [String: Int] {
        var counts: [String: Int] = [:]
        for case .assigned(let t)? in tasks.map({ outcomes[$0.id] }) { counts[t.nodeID, default: 0] += 1 }
        return counts
    }
}
