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
}
