import SwarmAPI
import SwarmConstraints
import SwarmPluginHost
import SwarmScheduler
import SwarmStore
import SwiftProtobuf

extension ControlService {
    /// Places a would-be service's tasks with the scheduler's own pass
    /// (``PlacementPass``), on a copy of the cluster's current state, with the strategy and
    /// filters it names (or the cluster's), and reports where each would go or why it
    /// would wait. Nothing is stored, and the scheduler's strategy instances are never
    /// called: the pass gets an instance of its own (``PluginRegistry/withPrivateInstance(ofStrategy:_:)``).
    func dryRun(_ service: SwarmService) throws -> SwarmCreateServiceResponse {
        guard let plugins else { throw ControlError.unavailable("this manager cannot simulate placement") }
        let view = store.view()
        var engine = PlacementEngine()
        for n in view.find(SwarmNode.self) { engine.setNode(n) }
        for t in view.find(SwarmTask.self) where !t.nodeID.isEmpty && t.holdsResources {
            engine.taskAssigned(t)
        }
        let cluster = view.find(SwarmCluster.self).first
        let defaults = PlacementPass.Defaults(strategy: cluster?.spec.defaultStrategy ?? "spread",
                                              filters: cluster?.spec.defaultFilters ?? [])
        let strategyName = PlacementPass.strategyName(service.spec.task, defaults: defaults)
        for f in defaults.filters + service.spec.task.filters where plugins.filter(f) == nil {
            throw ControlError.invalidArgument("filter \"\(f)\" is not loaded on this manager")
        }
        do {
            _ = try TaskRequirements(serviceID: service.id, serviceName: service.spec.annotations.name, spec: service.spec.task)
        } catch {
            throw ControlError.invalidArgument(error.description)
        }
        var tasks: [SwarmTask] = []
        if case .global? = service.spec.mode {
            // One task per node; the filters decide which nodes can take it.
            for (k, id) in engine.nodes.keys.sorted().enumerated() {
                tasks.append(.with {
                    $0.id = "dry-\(k)"; $0.serviceID = service.id; $0.serviceAnnotations = service.spec.annotations
                    $0.spec = service.spec.task; $0.nodeID = id; $0.desiredState = .running
                })
            }
        } else {
            tasks = (0..<Int(service.spec.replicated.replicas)).map { k in
                .with {
                    $0.id = "dry-\(k)"; $0.serviceID = service.id; $0.serviceAnnotations = service.spec.annotations
                    $0.slot = UInt64(k + 1); $0.spec = service.spec.task; $0.desiredState = .running
                }
            }
        }
        var outcomes: [String: PlacementPass.Outcome] = [:]
        do {
            try plugins.withPrivateInstance(ofStrategy: strategyName) { strategy in
                let scorer = PluginScorer(strategy)
                _ = PlacementPass.run(&engine, pending: tasks, defaults: defaults, assignedStatus: nil,
                                      scorer: { $0 == strategyName ? scorer : nil },
                                      filter: { name in plugins.filter(name).map { .plugin(name, $0) } }) { outcome in
                    switch outcome {
                    case .assigned(let t), .pending(let t, _, _): outcomes[t.id] = outcome
                    }
                }
            }
        } catch let error as PluginRegistry.PrivateInstanceError {
            throw ControlError.invalidArgument(error.description)
        }
        let placements = tasks.map { t in
            SwarmDryRunPlacement.with {
                $0.slot = t.slot
                switch outcomes[t.id] {
                case .assigned(let a)?:
                    $0.nodeID = a.nodeID
                    $0.hostname = engine.nodes[a.nodeID]?.hostname ?? ""
                    $0.gpus = a.assignedGpus
                case .pending(_, let why, _)?:
                    $0.nodeID = t.nodeID
                    $0.hostname = engine.nodes[t.nodeID]?.hostname ?? ""
                    $0.reason = why
                case nil:
                    $0.nodeID = t.nodeID
                    $0.reason = "no suitable node"
                }
            }
        }
        return .with {
            $0.service = service
            $0.placements = placements
        }
    }
}
