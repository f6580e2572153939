import SwarmAPI
import SwarmConstraints
import SwarmPluginHost
import SwarmScheduler
import SwarmStore
import SwiftProtobuf

extension ControlService {
    /// Places a would-be service's tasks on a copy of the cluster (``DryPlacement``), and
    /// reports where each would go or why it would wait. Nothing is stored.
    func dryRun(_ service: SwarmService) throws -> SwarmCreateServiceResponse {
        guard let plugins else { throw ControlError.unavailable("this manager cannot simulate placement") }
        let dry = try DryPlacement(service, view: store.view(), plugins: plugins)
        let (tasks, outcomes, engine) = (dry.tasks, dry.outcomes, dry.engine)
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
