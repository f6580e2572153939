import Foundation
import SwarmAPI

/// Checks of the placement parts of a task spec that need no cluster state: what
/// `swarmctl` checks before it sends a spec, and the scheduler when it reads one.
public enum PlacementInput {
    /// The label key of a preference `spread=node.labels.KEY` (or `node.labels.KEY`).
    public static func spreadLabel(_ descriptor: String) throws(PlacementError) -> String {
        var d = descriptor.trimmingCharacters(in: .whitespaces)
        if d.hasPrefix("spread=") { d = String(d.dropFirst(7)) }
        guard d.hasPrefix("node.labels."), d.count > "node.labels.".count else {
            throw .malformedConstraint(descriptor, "a placement preference spreads over node.labels.KEY")
        }
        return String(d.dropFirst("node.labels.".count))
    }

    /// Checks a GPU request: a fraction (1...999 milli) is of one GPU only, and at most
    /// 1000 milli of each GPU can be asked for.
    public static func validate(gpu: SwarmGPURequest) throws(PlacementError) {
        if gpu.milli > 1000 { throw .impossibleGPURequest("\(gpu.milli) milli is more than a whole GPU (1000)") }
        if gpu.milli > 0 && gpu.milli < 1000 && gpu.count > 1 {
            throw .impossibleGPURequest("a fraction (\(gpu.milli) milli) can only be of one GPU, not \(gpu.count)")
        }
        if gpu.count == 0 && gpu.milli > 0 { throw .impossibleGPURequest("\(gpu.milli) milli of no GPU") }
    }
}
