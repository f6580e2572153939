#if canImport(Glibc)
import Glibc
#endif
import SwarmPluginABI

/// C memory for one string, freed with its owner.
final class CString {
    let ptr: UnsafeMutablePointer<CChar>
    let len: Int
    init(_ s: String) {
        ptr = strdup(s)
        len = strlen(ptr)
    }
    deinit { free(ptr) }
    var view: swarm_str { swarm_str(data: ptr, len: len) }
}

/// What a node's C view says that changes only with the node's description: its names,
/// labels, GPUs and the kinds of its generic resources.
public struct NodeViewDescription: Sendable {
    /// One GPU as the view describes it.
    public struct GPU: Sendable {
        public var uuid: String
        public var index: UInt32
        public var model: String
        public var memoryMiB: UInt64
        public var topologyGroup: String
        public init(uuid: String, index: UInt32, model: String, memoryMiB: UInt64, topologyGroup: String) {
            self.uuid = uuid
            self.index = index
            self.model = model
            self.memoryMiB = memoryMiB
            self.topologyGroup = topologyGroup
        }
    }

    public var id: String
    public var hostname: String
    public var os: String
    public var arch: String
    public var isManager: Bool
    /// In key order.
    public var labels: [(key: String, value: String)]
    /// In key order.
    public var engineLabels: [(key: String, value: String)]
    public var gpus: [GPU]
    /// The generic resource kinds, in the order ``CNodeView/setGenericFree(_:_:)`` counts them.
    public var genericKinds: [String]

    public init(id: String, hostname: String, os: String = "linux", arch: String = "x86_64", isManager: Bool = false,
                labels: [(key: String, value: String)] = [], engineLabels: [(key: String, value: String)] = [],
                gpus: [GPU] = [], genericKinds: [String] = []) {
        self.id = id
        self.hostname = hostname
        self.os = os
        self.arch = arch
        self.isManager = isManager
        self.labels = labels
        self.engineLabels = engineLabels
        self.gpus = gpus
        self.genericKinds = genericKinds
    }
}

/// A node's C view (`swarm_node_view`) with the memory its pointers refer to: the strings
/// of the node's description in one allocation, the labels, GPUs and generic resources in
/// arrays of C structs. The one builder of node views on the host side: the scheduler's
/// plugin scorer and filters and the trace replay all use it. The description is fixed
/// when the view is made; the numbers are set in place before each call.
public final class CNodeView {
    /// The node's strings, each followed by a NUL.
    private let text: UnsafeMutableBufferPointer<CChar>
    private let labels: UnsafeMutableBufferPointer<swarm_label>
    private let engineLabels: UnsafeMutableBufferPointer<swarm_label>
    private let gpus: UnsafeMutableBufferPointer<swarm_gpu_view>
    /// What is free of each generic resource kind (one discrete entry per kind).
    private let generic: UnsafeMutableBufferPointer<swarm_generic_resource>
    /// The node's used host ports (ABI 1.3); grown when the node publishes more than it
    /// has room for.
    private var ports: UnsafeMutableBufferPointer<UInt32>
    /// In its own allocation, so that its address is stable while the view lives.
    private let rawPointer = UnsafeMutablePointer<swarm_node_view>.allocate(capacity: 1)
    /// A caller's mark of the description the view was made from (the scheduler keeps its
    /// node's description stamp here).
    public let stamp: UInt64
    /// The generic resource kinds, in the order ``setGenericFree(_:_:)`` counts them.
    public let genericKinds: [String]

    public init(_ d: NodeViewDescription, stamp: UInt64 = 0) {
        self.stamp = stamp
        genericKinds = d.genericKinds
        var strings = [d.id, d.hostname, d.os, d.arch]
        for (k, v) in d.labels { strings += [k, v] }
        for (k, v) in d.engineLabels { strings += [k, v] }
        for g in d.gpus { strings += [g.uuid, g.model, g.topologyGroup] }
        strings += d.genericKinds
        text = .allocate(capacity: strings.reduce(0) { $0 + $1.utf8.count + 1 })
        var views: [swarm_str] = []
        views.reserveCapacity(strings.count)
        var offset = 0
        for var string in strings {
            let start = text.baseAddress! + offset
            let count = string.withUTF8 { utf8 in
                if let base = utf8.baseAddress { UnsafeMutableRawPointer(start).copyMemory(from: base, byteCount: utf8.count) }
                return utf8.count
            }
            text[offset + count] = 0
            views.append(swarm_str(data: start, len: count))
            offset += count + 1
        }
        var next = views.makeIterator()
        func take() -> swarm_str { next.next()! }
        rawPointer.initialize(to: swarm_node_view())
        labels = .allocate(capacity: max(1, d.labels.count))
        gpus = .allocate(capacity: max(1, d.gpus.count))
        engineLabels = .allocate(capacity: max(1, d.engineLabels.count))
        generic = .allocate(capacity: max(1, d.genericKinds.count))
        ports = .allocate(capacity: 4)
        let raw = rawPointer
        raw.pointee.struct_size = MemoryLayout<swarm_node_view>.size
        raw.pointee.id = take()
        raw.pointee.hostname = take()
        raw.pointee.os = take()
        raw.pointee.arch = take()
        for i in d.labels.indices { labels[i] = swarm_label(key: take(), value: take()) }
        for i in d.engineLabels.indices { engineLabels[i] = swarm_label(key: take(), value: take()) }
        raw.pointee.role = d.isManager ? SWARM_NODE_ROLE_MANAGER : SWARM_NODE_ROLE_WORKER
        raw.pointee.labels = UnsafePointer(labels.baseAddress)
        raw.pointee.labels_count = d.labels.count
        raw.pointee.engine_labels = UnsafePointer(engineLabels.baseAddress)
        raw.pointee.engine_labels_count = d.engineLabels.count
        for (i, g) in d.gpus.enumerated() {
            var v = swarm_gpu_view()
            v.struct_size = MemoryLayout<swarm_gpu_view>.size
            v.uuid = take()
            v.index = g.index
            v.model = take()
            v.memory_mib = g.memoryMiB
            v.topology_group = take()
            v.free_milli = 1000
            gpus[i] = v
        }
        raw.pointee.gpus = UnsafePointer(gpus.baseAddress)
        raw.pointee.gpus_count = d.gpus.count
        for i in d.genericKinds.indices {
            generic[i] = swarm_generic_resource(kind: take(), value: 0, named: swarm_str())
        }
        raw.pointee.generic_free = UnsafePointer(generic.baseAddress)
        raw.pointee.generic_free_count = d.genericKinds.count
        raw.pointee.used_host_ports = UnsafePointer(ports.baseAddress)
    }

    deinit {
        text.deallocate()
        generic.deallocate()
        ports.deallocate()
        labels.deallocate()
        engineLabels.deallocate()
        gpus.deallocate()
        rawPointer.deallocate()
    }

    /// CPU and memory, in total and free.
    @inline(__always)
    public func setResources(nanoCPUsTotal: Int64, nanoCPUsFree: Int64, memoryBytesTotal: Int64, memoryBytesFree: Int64) {
        rawPointer.pointee.nano_cpus_total = nanoCPUsTotal
        rawPointer.pointee.nano_cpus_free = nanoCPUsFree
        rawPointer.pointee.memory_bytes_total = memoryBytesTotal
        rawPointer.pointee.memory_bytes_free = memoryBytesFree
    }

    /// Tasks on the node, of the service being placed, its recent failures there, and the
    /// kinds of GPU tasks on the node (`SWARM_GPU_CLASS_*` bits).
    @inline(__always)
    public func setTasks(total: Int, ofService: Int, recentFailures: Int, gpuTaskClasses: UInt32) {
        rawPointer.pointee.tasks_total = UInt32(clamping: total)
        rawPointer.pointee.tasks_of_service = UInt32(clamping: ofService)
        rawPointer.pointee.recent_failures_of_service = UInt32(clamping: recentFailures)
        rawPointer.pointee.gpu_task_classes = gpuTaskClasses
    }

    /// What is free of the GPU at `position` (milli, 1000 = the whole GPU).
    @inline(__always)
    public func setGPUFree(_ position: Int, milli: Int32) { gpus[position].free_milli = UInt32(max(0, milli)) }

    /// What is free of the generic kind at `position` of the description's kinds.
    @inline(__always)
    public func setGenericFree(_ position: Int, _ value: Int64) { generic[position].value = value }

    /// The host-mode ports used on the node, in increasing order.
    public func setUsedHostPorts(_ sorted: [UInt32]) {
        if sorted.count > ports.count {
            ports.deallocate()
            ports = .allocate(capacity: 2 * sorted.count)
        }
        if !sorted.isEmpty { _ = ports.initialize(from: sorted) }
        rawPointer.pointee.used_host_ports = UnsafePointer(ports.baseAddress)
        rawPointer.pointee.used_host_ports_count = sorted.count
    }

    public func withPointer<R>(_ body: (UnsafePointer<swarm_node_view>) -> R) -> R {
        body(UnsafePointer(rawPointer))
    }

    /// The view's address, valid while this object lives.
    public var pointer: UnsafePointer<swarm_node_view> { UnsafePointer(rawPointer) }
}

/// A task's C view (`swarm_task_view`): its strings are copied into C memory only when
/// they change, its numbers are set on every update. The one builder of task views on the
/// host side.
public struct CTaskView {
    /// The strings the C copies were made from, to see cheaply whether they still match.
    private var strings: (id: String, serviceID: String, serviceName: String, runtime: String, models: [String],
                          generic: [String: Int64])?
    private var id: CString?
    private var serviceID: CString?
    private var serviceName: CString?
    private var runtime: CString?
    private var models: [CString] = []
    private var modelViews: [swarm_str] = []
    private var genericKinds: [CString] = []
    private var genericViews: [swarm_generic_resource] = []
    private var hostPorts: [UInt32] = []
    private var raw = swarm_task_view()

    public init() {}

    /// Sets every field of the view.
    public mutating func update(id: String = "", serviceID: String, serviceName: String, runtime: String, slot: UInt64 = 0,
                                nanoCPUs: Int64, memoryBytes: Int64, gpuCount: UInt32, gpuMilli: UInt32,
                                gpuMinMemoryMiB: UInt64 = 0, gpuModels: [String], generic: [String: Int64] = [:],
                                maxReplicasPerNode: UInt64 = 0, hostPorts: [UInt32] = []) {
        if strings?.id != id || strings?.serviceID != serviceID || strings?.serviceName != serviceName
            || strings?.runtime != runtime || strings?.models != gpuModels || strings?.generic != generic {
            if strings?.id != id { self.id = CString(id) }
            if strings?.serviceID != serviceID || strings?.serviceName != serviceName || strings?.runtime != runtime {
                self.serviceID = CString(serviceID)
                self.serviceName = CString(serviceName)
                self.runtime = CString(runtime)
            }
            if strings?.models != gpuModels {
                models = gpuModels.map(CString.init)
                modelViews = models.map(\.view)
            }
            if strings?.generic != generic {
                let kinds = generic.keys.sorted()
                genericKinds = kinds.map(CString.init)
                genericViews = zip(kinds, genericKinds).map { swarm_generic_resource(kind: $1.view, value: generic[$0] ?? 0, named: swarm_str()) }
            }
            strings = (id, serviceID, serviceName, runtime, gpuModels, generic)
        }
        raw.struct_size = MemoryLayout<swarm_task_view>.size
        raw.id = self.id!.view
        raw.service_id = self.serviceID!.view
        raw.service_name = self.serviceName!.view
        raw.runtime = self.runtime!.view
        raw.slot = slot
        raw.reserved_nano_cpus = nanoCPUs
        raw.reserved_memory_bytes = memoryBytes
        raw.gpu_count = gpuCount
        raw.gpu_milli = gpuMilli
        raw.gpu_min_memory_mib = gpuMinMemoryMiB
        raw.gpu_models_count = models.count
        raw.max_replicas_per_node = maxReplicasPerNode
        self.hostPorts = hostPorts
    }

    /// Calls `body` with the view; its array pointers are valid for the call only.
    public mutating func withPointer<R>(_ body: (UnsafePointer<swarm_task_view>) -> R) -> R {
        let (views, generic, ports) = (modelViews, genericViews, hostPorts)
        return views.withUnsafeBufferPointer { m in
            generic.withUnsafeBufferPointer { g in
                ports.withUnsafeBufferPointer { p in
                    raw.gpu_models = m.baseAddress
                    raw.generic = g.baseAddress
                    raw.generic_count = g.count
                    raw.host_ports = p.baseAddress
                    raw.host_ports_count = p.count
                    defer { (raw.gpu_models, raw.generic, raw.host_ports) = (nil, nil, nil) }
                    return withUnsafePointer(to: &raw, body)
                }
            }
        }
    }
}
