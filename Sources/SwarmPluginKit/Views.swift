import SwarmPluginABI

extension swarm_str {
    /// The view as a Swift string (copies).
    var string: String {
        guard let data, len > 0 else { return "" }
        return data.withMemoryRebound(to: UInt8.self, capacity: len) {
            String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self)
        }
    }

    /// Compares without copying.
    func equals(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { u in
            guard u.count == len else { return false }
            guard let data, len > 0 else { return true }
            return memcmp(data, u.baseAddress!, len) == 0
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A GPU of a node, as a strategy sees it.
public struct GPUView {
    let raw: swarm_gpu_view
    public var uuid: String { raw.uuid.string }
    public var index: UInt32 { raw.index }
    public var model: String { raw.model.string }
    public var memoryMiB: UInt64 { raw.memory_mib }
    public var topologyGroup: String { raw.topology_group.string }
    /// What is still free of this GPU, in milli-units (1000 = all of it).
    public var freeMilli: UInt32 { raw.free_milli }
}

/// What a filter or strategy sees of a node. Valid only during the call it was passed to.
public struct NodeView {
    let raw: UnsafePointer<swarm_node_view>

    public init(_ raw: UnsafePointer<swarm_node_view>) { self.raw = raw }

    public var id: String { raw.pointee.id.string }
    public var hostname: String { raw.pointee.hostname.string }
    public var os: String { raw.pointee.os.string }
    public var architecture: String { raw.pointee.arch.string }
    public var isManager: Bool { raw.pointee.role == SWARM_NODE_ROLE_MANAGER }
    public var nanoCPUsTotal: Int64 { raw.pointee.nano_cpus_total }
    public var nanoCPUsFree: Int64 { raw.pointee.nano_cpus_free }
    public var memoryBytesTotal: Int64 { raw.pointee.memory_bytes_total }
    public var memoryBytesFree: Int64 { raw.pointee.memory_bytes_free }
    public var tasksTotal: UInt32 { raw.pointee.tasks_total }
    public var tasksOfService: UInt32 { raw.pointee.tasks_of_service }
    public var recentFailuresOfService: UInt32 { raw.pointee.recent_failures_of_service }

    /// The kinds of GPU tasks already on the node (ABI 1.1; empty from an older host).
    public var gpuTaskClasses: GPUTaskClasses {
        let end = MemoryLayout<swarm_node_view>.offset(of: \swarm_node_view.gpu_task_classes)! + 4
        return raw.pointee.struct_size >= end ? GPUTaskClasses(rawValue: raw.pointee.gpu_task_classes) : []
    }

    /// The host-mode ports already published on the node, in increasing order (ABI 1.3;
    /// empty from an older host).
    public var usedHostPorts: [UInt32] {
        let end = MemoryLayout<swarm_node_view>.offset(of: \swarm_node_view.used_host_ports_count)! + MemoryLayout<Int>.size
        let n = raw.pointee
        guard n.struct_size >= end, let ports = n.used_host_ports else { return [] }
        return Array(UnsafeBufferPointer(start: ports, count: n.used_host_ports_count))
    }

    /// The number of GPUs, and one of them, without building an array.
    public var gpuCount: Int { raw.pointee.gpus_count }
    public func gpu(_ i: Int) -> GPUView { GPUView(raw: raw.pointee.gpus[i]) }

    /// Free milli of each GPU, in index order.
    public var gpuFree: [UInt32] {
        let n = raw.pointee
        return (0..<n.gpus_count).map { n.gpus[$0].free_milli }
    }

    /// The node label `key`, if set.
    public func label(_ key: String) -> String? {
        let n = raw.pointee
        for i in 0..<n.labels_count where n.labels[i].key.equals(key) { return n.labels[i].value.string }
        return nil
    }

    public func engineLabel(_ key: String) -> String? {
        let n = raw.pointee
        for i in 0..<n.engine_labels_count where n.engine_labels[i].key.equals(key) { return n.engine_labels[i].value.string }
        return nil
    }

    public var gpus: [GPUView] {
        let n = raw.pointee
        return (0..<n.gpus_count).map { GPUView(raw: n.gpus[$0]) }
    }

    /// Free units of a discrete generic resource (named units count one each).
    public func genericFree(_ kind: String) -> Int64 {
        let n = raw.pointee
        var total: Int64 = 0
        for i in 0..<n.generic_free_count where n.generic_free[i].kind.equals(kind) {
            total += n.generic_free[i].named.len > 0 ? 1 : n.generic_free[i].value
        }
        return total
    }
}

/// What a filter or strategy sees of the task being placed.
public struct TaskView {
    let raw: UnsafePointer<swarm_task_view>

    public init(_ raw: UnsafePointer<swarm_task_view>) { self.raw = raw }

    public var id: String { raw.pointee.id.string }
    public var serviceID: String { raw.pointee.service_id.string }
    public var serviceName: String { raw.pointee.service_name.string }
    public var slot: UInt64 { raw.pointee.slot }
    public var reservedNanoCPUs: Int64 { raw.pointee.reserved_nano_cpus }
    public var reservedMemoryBytes: Int64 { raw.pointee.reserved_memory_bytes }
    public var gpuCount: UInt32 { raw.pointee.gpu_count }
    public var gpuMilli: UInt32 { raw.pointee.gpu_milli }
    public var gpuMinMemoryMiB: UInt64 { raw.pointee.gpu_min_memory_mib }
    public var gpuModels: [String] {
        let t = raw.pointee
        return (0..<t.gpu_models_count).map { t.gpu_models[$0].string }
    }
    public var runtime: String { raw.pointee.runtime.string }

    /// Units of each generic resource kind the task asks for (named units count one each).
    public var genericRequests: [String: Int64] {
        let t = raw.pointee
        var asked: [String: Int64] = [:]
        for i in 0..<t.generic_count {
            asked[t.generic[i].kind.string, default: 0] += t.generic[i].named.len > 0 ? 1 : t.generic[i].value
        }
        return asked
    }

    /// Whether the host's view has the ABI 1.3 fields.
    private var hasPortsAndReplicas: Bool {
        raw.pointee.struct_size >= MemoryLayout<swarm_task_view>.offset(of: \swarm_task_view.host_ports_count)! + MemoryLayout<Int>.size
    }

    /// The most tasks of the service one node may run, 0 for no limit (ABI 1.3; 0 from an
    /// older host).
    public var maxReplicasPerNode: UInt64 { hasPortsAndReplicas ? raw.pointee.max_replicas_per_node : 0 }

    /// The host-mode ports the task publishes (ABI 1.3; empty from an older host).
    public var hostPorts: [UInt32] {
        let t = raw.pointee
        guard hasPortsAndReplicas, let ports = t.host_ports else { return [] }
        return Array(UnsafeBufferPointer(start: ports, count: t.host_ports_count))
    }

    /// Whether `node` can take one more of these tasks as far as the per-node replica
    /// limit and host ports go (the host checks both again on the answer).
    public func fitsLimits(_ node: NodeView) -> Bool {
        if maxReplicasPerNode > 0 && UInt64(node.tasksOfService) >= maxReplicasPerNode { return false }
        let ports = hostPorts
        return ports.isEmpty || Set(ports).isDisjoint(with: node.usedHostPorts)
    }
}

/// The kinds of GPU tasks on a node: fractional ("shared") tasks, and tasks with k whole GPUs.
public struct GPUTaskClasses: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let shared = GPUTaskClasses(rawValue: SWARM_GPU_CLASS_SHARED)
    /// Tasks with `k` whole GPUs (1...31).
    public static func whole(_ k: Int) -> GPUTaskClasses { GPUTaskClasses(rawValue: 1 << UInt32(min(max(k, 1), 31))) }
}

/// One class of task in the cluster's expected workload, with its weight.
public struct WorkloadClass: Sendable, Hashable {
    public var nanoCPUs: Int64
    public var memoryBytes: Int64
    public var gpuCount: UInt32
    public var gpuMilli: UInt32
    /// Allowed GPU models; empty means any.
    public var gpuModels: [String]
    public var weight: Double

    public init(nanoCPUs: Int64, memoryBytes: Int64 = 0, gpuCount: UInt32, gpuMilli: UInt32, gpuModels: [String] = [], weight: Double) {
        self.nanoCPUs = nanoCPUs
        self.memoryBytes = memoryBytes
        self.gpuCount = gpuCount
        self.gpuMilli = gpuMilli
        self.gpuModels = gpuModels
        self.weight = weight
    }
}

/// What a strategy sees of the whole cluster in ``Strategy/prepare(cluster:)``. Valid only
/// during that call.
public struct ClusterView {
    let raw: UnsafePointer<swarm_cluster_view>

    public init(_ raw: UnsafePointer<swarm_cluster_view>) { self.raw = raw }

    public var nodeCount: Int { raw.pointee.nodes_count }
    public func node(_ i: Int) -> NodeView { NodeView(raw.pointee.nodes[i]!) }
    public var seed: UInt64 { raw.pointee.seed }
    /// The pass number within the run, from 0.
    public var tick: UInt64 {
        let end = MemoryLayout<swarm_cluster_view>.offset(of: \swarm_cluster_view.tick)! + 8
        return raw.pointee.struct_size >= end ? raw.pointee.tick : 0
    }

    /// The expected workload (copied, so that it can be kept).
    public var workload: [WorkloadClass] {
        let c = raw.pointee
        return (0..<c.workload_count).map { i in
            let w = c.workload[i]
            return WorkloadClass(nanoCPUs: w.nano_cpus, memoryBytes: w.memory_bytes, gpuCount: w.gpu_count, gpuMilli: w.gpu_milli,
                                 gpuModels: (0..<w.gpu_models_count).map { w.gpu_models[$0].string }, weight: w.weight)
        }
    }
}

import SwarmGPU

extension NodeView {
    /// The node as GPU arithmetic sees it: free CPU in milli-CPUs, free memory in bytes,
    /// free milli per GPU, and the model of its GPUs.
    public var gpuState: GPUNodeState {
        let n = raw.pointee
        var free: [Int32] = []
        free.reserveCapacity(n.gpus_count)
        for i in 0..<n.gpus_count { free.append(Int32(n.gpus[i].free_milli)) }
        return GPUNodeState(cpuFree: n.nano_cpus_free / 1_000_000, memoryFree: n.memory_bytes_free, gpuFree: free,
                            model: n.gpus_count > 0 ? n.gpus[0].model.string : "")
    }
}

extension GPUMath.PerGPUDemand {
    /// This demand capped at what `node` was built with per GPU
    /// (``GPUMath/PerGPUDemand/capped(cpuTotal:memoryTotal:gpus:)``), in the units of
    /// ``NodeView/gpuState``: milli-CPUs and bytes.
    public func capped(for node: NodeView) -> GPUMath.PerGPUDemand {
        capped(cpuTotal: node.nanoCPUsTotal / 1_000_000, memoryTotal: node.memoryBytesTotal, gpus: node.gpuCount)
    }

    /// What `nodes` have in all per GPU (``GPUMath/PerGPUDemand/capacity(cpuTotal:memoryTotal:gpus:)``),
    /// in the units of ``NodeView/gpuState``: milli-CPUs and bytes.
    public static func capacity(of nodes: [NodeView]) -> GPUMath.PerGPUDemand {
        var cpu = 0.0, memory = 0.0, gpus = 0.0
        for n in nodes {
            cpu += Double(n.nanoCPUsTotal / 1_000_000)
            memory += Double(n.memoryBytesTotal)
            gpus += Double(n.gpuCount)
        }
        return capacity(cpuTotal: cpu, memoryTotal: memory, gpus: gpus)
    }
}

extension TaskView {
    /// The task as GPU arithmetic sees it (CPU in milli-CPUs, memory in bytes).
    public var gpuShape: GPUTaskShape {
        GPUTaskShape(cpu: reservedNanoCPUs / 1_000_000, memory: reservedMemoryBytes, gpuCount: Int(gpuCount),
                     gpuMilli: Int32(min(gpuMilli == 0 && gpuCount > 0 ? 1000 : gpuMilli, 1000)), models: gpuModels)
    }
}

extension WorkloadClass {
    /// The class as GPU arithmetic sees it.
    public var weightedShape: WeightedShape {
        WeightedShape(GPUTaskShape(cpu: nanoCPUs / 1_000_000, memory: memoryBytes, gpuCount: Int(gpuCount),
                                   gpuMilli: Int32(min(gpuMilli, 1000)), models: gpuModels), weight: weight)
    }
}
