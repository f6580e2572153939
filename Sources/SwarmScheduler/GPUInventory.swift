import Foundation
import SwarmAPI
import SwiftProtobuf

/// A node's GPUs: discovered with `nvidia-smi`, or declared as named `gpu` generic
/// resources (`--generic-node-resources gpu=UUID1,gpu=UUID2`).
public enum GPUInventory {
    /// The query swarmd runs: `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`.
    public static let nvidiaSMIFields = "uuid,index,name,memory.total,pci.bus_id"

    /// Parses `nvidia-smi --query-gpu=uuid,index,name,memory.total,pci.bus_id
    /// --format=csv,noheader,nounits` output. The topology group is the PCI domain and bus
    /// prefix, so GPUs behind the same root complex group together. Lines that do not parse
    /// are skipped and reported.
    public static func parseNvidiaSMI(_ text: String) -> (gpus: [SwarmGPUDevice], problems: [String]) {
        var gpus: [SwarmGPUDevice] = []
        var problems: [String] = []
        for (n, raw) in text.split(separator: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            let f = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard f.count >= 4, !f[0].isEmpty, let index = UInt32(f[1]), let memory = UInt64(f[3]) else {
                problems.append("nvidia-smi line \(n + 1) not understood: \(line)")
                continue
            }
            gpus.append(.with {
                $0.uuid = f[0]
                $0.index = index
                $0.model = normalizedModel(f[2])
                $0.memoryMib = memory
                if f.count > 4 { $0.topologyGroup = String(f[4].split(separator: ":").prefix(2).joined(separator: ":")) }
            })
        }
        return (gpus.sorted { $0.index < $1.index }, problems)
    }

    /// "Tesla V100-SXM2-32GB" → "V100M32", "NVIDIA A10" → "A10": the short model names
    /// task requests use; unknown names are kept with spaces removed.
    public static func normalizedModel(_ name: String) -> String {
        let upper = name.uppercased()
        if upper.contains("V100") {
            if upper.contains("32") { return "V100M32" }
            return "V100M16"
        }
        for known in ["A100", "H100", "H200", "A10", "T4", "P100", "L4", "L40"] where upper.contains(known) {
            return known
        }
        return name.replacingOccurrences(of: "NVIDIA ", with: "").replacingOccurrences(of: " ", with: "")
    }

    /// GPUs declared as named `gpu` units, in order; the rest of the resources unchanged.
    public static func declared(_ resources: [SwarmGenericResource]) -> (gpus: [SwarmGPUDevice], rest: [SwarmGenericResource]) {
        var gpus: [SwarmGPUDevice] = []
        var rest: [SwarmGenericResource] = []
        for r in resources {
            if r.kind.lowercased() == "gpu" && !r.named.isEmpty {
                gpus.append(.with { $0.uuid = r.named; $0.index = UInt32(gpus.count) })
            } else {
                rest.append(r)
            }
        }
        return (gpus, rest)
    }
}
