#if canImport(Glibc)
import Glibc
#endif
import SwarmPluginABI
import SwarmPluginHost

/// Scores through a strategy plugin, handing it C views of the task and the node.
///
/// The strings of a node's view are copied into C memory once per node and reused while
/// the node's description does not change; the numeric fields are written in place
/// before each call.
public final class PluginScorer: Scorer {
    public let strategy: LoadedStrategy
    private var views: [String: CNodeView] = [:]
    private var task = CTaskView()
    /// When set, the time spent inside the plugin is added up (for benchmarks).
    public var timed = false
    public private(set) var pluginCalls = 0
    public private(set) var pluginNanoseconds: UInt64 = 0

    public init(_ strategy: LoadedStrategy) { self.strategy = strategy }

    private var ticks: UInt64 = 0

    /// Starts a scheduling pass for a strategy that asked for `prepare` (ABI 1.1): hands
    /// it every node's view and the expected workload, the shapes of the tasks the cluster
    /// runs and waits to run, weighted by how many there are.
    ///
    /// The nodes are handed over in ID order, each read where the engine stores it.
    public var wantsPrepare: Bool { strategy.wantsPrepare }

    public func prepare(_ engine: inout PlacementEngine, workload: [(TaskRequirements, Int)]) {
        prepare(&engine, workload: workload, seed: 0)
    }

    /// ``prepare(_:workload:)`` with the seed the cluster view carries.
    public func prepare(_ engine: inout PlacementEngine, workload: [(TaskRequirements, Int)], seed: UInt64) {
        guard strategy.wantsPrepare else { return }
        var views: [CNodeView] = []
        views.reserveCapacity(engine.nodes.count)
        self.views.reserveCapacity(engine.nodes.count)
        for id in engine.orderedIDs() {
            guard let at = engine.nodes.index(forKey: id) else { continue }
            views.append(Self.view(self, &engine.nodes.values[at]))
        }
        let total = Double(max(1, workload.reduce(0) { $0 + $1.1 }))
        let modelStrings = workload.map { $0.0.gpuModels.map(CString.init) }
        let modelViews = modelStrings.map { $0.map(\.view) }
        var classes: [swarm_workload_class] = []
        for (k, (req, count)) in workload.enumerated() {
            var c = swarm_workload_class()
            c.struct_size = MemoryLayout<swarm_workload_class>.size
            c.nano_cpus = req.nanoCPUs
            c.memory_bytes = req.memoryBytes
            c.gpu_count = req.gpuCount
            c.gpu_milli = req.gpuMilli
            c.gpu_models_count = modelViews[k].count
            c.weight = Double(count) / total
            classes.append(c)
        }
        // Pointers into Swift arrays are only valid inside their closures: nest them.
        func withModels(_ k: Int, _ body: () -> Void) {
            if k == classes.count { return body() }
            modelViews[k].withUnsafeBufferPointer { m in
                classes[k].gpu_models = m.baseAddress
                withModels(k + 1, body)
            }
        }
        withExtendedLifetime((views, modelStrings)) {
            withModels(0) {
                let pointers: [UnsafePointer<swarm_node_view>?] = views.map(\.pointer)
                pointers.withUnsafeBufferPointer { np in
                    classes.withUnsafeBufferPointer { cp in
                        var cluster = swarm_cluster_view(struct_size: MemoryLayout<swarm_cluster_view>.size, nodes: np.baseAddress,
                                                         nodes_count: np.count, workload: cp.baseAddress, workload_count: cp.count,
                                                         seed: seed, tick: ticks)
                        strategy.prepare(&cluster)
                    }
                }
            }
        }
        ticks += 1
    }

    /// The view of a node read where it is stored (the dictionary's getter would copy it);
    /// nothing is changed.
    private static func view(_ scorer: PluginScorer, _ node: inout NodeInfo) -> CNodeView {
        scorer.view(node, serviceID: "")
    }

    /// The strategy's GPU choice for the task on the chosen node (ABI 1.1), if it has one.
    public func assignDevices(_ req: TaskRequirements, _ node: NodeInfo) -> [Int]? {
        let view = view(node, serviceID: req.serviceID)
        task.update(req)
        return task.withPointer { t in view.withPointer { n in strategy.assignDevices(t, n) } }?.map(Int.init)
    }

    public var placesGroups: Bool { strategy.wantsPlaceGroup }

    /// The plugin's placement of a whole group (ABI 1.2); positions outside `feasible`
    /// are passed on as they are, for the engine to refuse.
    public func placeGroup(_ req: TaskRequirements, count: Int, feasible: [NodeInfo]) -> [Int?]? {
        let nodeViews = feasible.map { view($0, serviceID: req.serviceID) }
        task.update(req)
        let answer = withExtendedLifetime(nodeViews) {
            task.withPointer { t in strategy.placeGroup(t, count: count, feasible: nodeViews.map { Optional($0.pointer) }) }
        }
        return answer?.map { $0 == -1 ? nil : Int($0) }
    }

    /// The node's C view, made when the node's description is new to this scorer, with its
    /// numbers brought up to date for a task of `serviceID`.
    private func view(_ node: NodeInfo, serviceID: String) -> CNodeView {
        let view: CNodeView
        if let cached = views[node.id], cached.matches(node) {
            view = cached
        } else {
            view = CNodeView(node)
            views[node.id] = view
        }
        view.update(node, serviceID: serviceID)
        return view
    }

    public func score(_ req: TaskRequirements, _ node: NodeInfo) -> Double? {
        let view = view(node, serviceID: req.serviceID)
        task.update(req)
        let s: Double
        if timed {
            let start = clock_gettime_nsec_np_monotonic()
            s = task.withPointer { t in view.withPointer { n in strategy.score(t, n) } }
            pluginNanoseconds &+= clock_gettime_nsec_np_monotonic() &- start
            pluginCalls += 1
        } else {
            s = task.withPointer { t in view.withPointer { n in strategy.score(t, n) } }
        }
        return s.isFinite ? s : nil
    }
}

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

/// A node's C view with the memory its pointers refer to: the strings of the node's
/// description in one allocation, the labels and GPUs in arrays of C structs.
final class CNodeView {
    /// The node's strings, each followed by a NUL.
    private let text: UnsafeMutableBufferPointer<CChar>
    private var labels: UnsafeMutableBufferPointer<swarm_label>
    private var engineLabels: UnsafeMutableBufferPointer<swarm_label>
    private var gpus: UnsafeMutableBufferPointer<swarm_gpu_view>
    /// What is free of each generic resource kind (one discrete entry per kind, in the
    /// order of `genericKinds`), rewritten by ``update(_:serviceID:)``.
    private var generic: UnsafeMutableBufferPointer<swarm_generic_resource>
    private let genericKinds: [String]
    /// The node's used host ports (ABI 1.3), rewritten by ``update(_:serviceID:)``; grown
    /// when the node publishes more than it has room for.
    private var ports: UnsafeMutableBufferPointer<UInt32>
    /// In its own allocation, so that its address is stable while the view lives.
    private let rawPointer = UnsafeMutablePointer<swarm_node_view>.allocate(capacity: 1)
    private var raw: swarm_node_view {
        get { rawPointer.pointee }
        _modify { yield &rawPointer.pointee }
    }
    /// The description the view was made from (``NodeInfo/descriptionStamp``).
    private let stamp: UInt64

    init(_ node: borrowing NodeInfo) {
        stamp = node.descriptionStamp
        let sortedLabels = node.labels.sorted { $0.key < $1.key }
        let sortedEngineLabels = node.engineLabels.sorted { $0.key < $1.key }
        var strings = [node.id, node.hostname, node.os, node.arch]
        for (k, v) in sortedLabels { strings += [k, v] }
        for (k, v) in sortedEngineLabels { strings += [k, v] }
        for g in node.gpus { strings += [g.uuid, g.model, g.topologyGroup] }
        genericKinds = node.genericFree.keys.sorted()
        strings += genericKinds
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
        labels = .allocate(capacity: max(1, node.labels.count))
        gpus = .allocate(capacity: max(1, node.gpus.count))
        engineLabels = .allocate(capacity: max(1, node.engineLabels.count))
        generic = .allocate(capacity: max(1, genericKinds.count))
        ports = .allocate(capacity: max(4, node.usedHostPorts.count))
        raw.struct_size = MemoryLayout<swarm_node_view>.size
        raw.id = take()
        raw.hostname = take()
        raw.os = take()
        raw.arch = take()
        for i in sortedLabels.indices { labels[i] = swarm_label(key: take(), value: take()) }
        for i in sortedEngineLabels.indices { engineLabels[i] = swarm_label(key: take(), value: take()) }
        raw.role = node.role == .manager ? SWARM_NODE_ROLE_MANAGER : SWARM_NODE_ROLE_WORKER
        raw.labels = UnsafePointer(labels.baseAddress)
        raw.labels_count = node.labels.count
        raw.engine_labels = UnsafePointer(engineLabels.baseAddress)
        raw.engine_labels_count = node.engineLabels.count
        for (i, g) in node.gpus.enumerated() {
            var v = swarm_gpu_view()
            v.struct_size = MemoryLayout<swarm_gpu_view>.size
            v.uuid = take()
            v.index = g.index
            v.model = take()
            v.memory_mib = g.memoryMiB
            v.topology_group = take()
            v.free_milli = UInt32(max(0, g.freeMilli))
            gpus[i] = v
        }
        raw.gpus = UnsafePointer(gpus.baseAddress)
        raw.gpus_count = node.gpus.count
        for (i, kind) in genericKinds.enumerated() {
            generic[i] = swarm_generic_resource(kind: take(), value: node.genericFree[kind] ?? 0, named: swarm_str())
        }
        raw.generic_free = UnsafePointer(generic.baseAddress)
        raw.generic_free_count = genericKinds.count
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

    /// Whether the view was made from the node's current description.
    func matches(_ node: NodeInfo) -> Bool { stamp == node.descriptionStamp }

    func update(_ node: NodeInfo, serviceID: String) {
        raw.nano_cpus_total = node.totalNanoCPUs
        raw.nano_cpus_free = node.freeNanoCPUs
        raw.memory_bytes_total = node.totalMemoryBytes
        raw.memory_bytes_free = node.freeMemoryBytes
        raw.tasks_total = UInt32(clamping: node.taskCount)
        raw.tasks_of_service = UInt32(clamping: node.tasksByService[serviceID] ?? 0)
        raw.recent_failures_of_service = UInt32(clamping: node.recentFailures[serviceID] ?? 0)
        raw.gpu_task_classes = node.gpuTaskClasses
        for (i, g) in node.gpus.enumerated() { gpus[i].free_milli = UInt32(max(0, g.freeMilli)) }
        for (i, kind) in genericKinds.enumerated() { generic[i].value = node.genericFree[kind] ?? 0 }
        let used = node.usedHostPorts
        if used.count > ports.count {
            ports.deallocate()
            ports = .allocate(capacity: 2 * used.count)
        }
        if !used.isEmpty { _ = ports.initialize(from: used.sorted()) }
        raw.used_host_ports = UnsafePointer(ports.baseAddress)
        raw.used_host_ports_count = used.count
    }

    func withPointer<R>(_ body: (UnsafePointer<swarm_node_view>) -> R) -> R {
        body(UnsafePointer(rawPointer))
    }

    /// The view's address, valid while this object lives.
    var pointer: UnsafePointer<swarm_node_view> { UnsafePointer(rawPointer) }
}

/// The task's C view, rebuilt only when the service changes.
struct CTaskView {
    /// The strings the C copies were made from, to see cheaply whether they still match
    /// (two spec versions of one service may differ in runtime or GPU models).
    private var strings: (serviceID: String, serviceName: String, runtime: String, models: [String], generic: [String: Int64])?
    private var serviceID: CString?
    private var serviceName: CString?
    private var runtime: CString?
    private var models: [CString] = []
    private var modelViews: [swarm_str] = []
    private var genericKinds: [CString] = []
    private var genericViews: [swarm_generic_resource] = []
    private var hostPorts: [UInt32] = []
    private var raw = swarm_task_view()

    mutating func update(_ req: TaskRequirements) {
        if strings?.serviceID != req.serviceID || strings?.serviceName != req.serviceName
            || strings?.runtime != req.runtime || strings?.models != req.gpuModels || strings?.generic != req.generic {
            strings = (req.serviceID, req.serviceName, req.runtime, req.gpuModels, req.generic)
            serviceID = CString(req.serviceID)
            serviceName = CString(req.serviceName)
            runtime = CString(req.runtime)
            models = req.gpuModels.map(CString.init)
            modelViews = models.map(\.view)
            let kinds = req.generic.keys.sorted()
            genericKinds = kinds.map(CString.init)
            genericViews = zip(kinds, genericKinds).map { swarm_generic_resource(kind: $1.view, value: req.generic[$0] ?? 0, named: swarm_str()) }
        }
        raw.gpu_count = req.gpuCount
        raw.gpu_milli = req.gpuMilli
        raw.gpu_min_memory_mib = req.gpuMinMemoryMiB
        raw.gpu_models_count = models.count
        raw.struct_size = MemoryLayout<swarm_task_view>.size
        raw.service_id = serviceID!.view
        raw.service_name = serviceName!.view
        raw.runtime = runtime!.view
        raw.reserved_nano_cpus = req.nanoCPUs
        raw.reserved_memory_bytes = req.memoryBytes
        raw.max_replicas_per_node = req.maxReplicasPerNode
        hostPorts = req.hostPorts
    }

    mutating func withPointer<R>(_ body: (UnsafePointer<swarm_task_view>) -> R) -> R {
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

@inline(__always) func clock_gettime_nsec_np_monotonic() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension PlacementFilter {
    /// A filter plugin as a step of the placement pipeline. Each check hands the plugin
    /// fresh C views of the task and the node; the plugin's explanation goes into the
    /// task's status.
    public static func plugin(_ name: String, _ filter: LoadedFilter) -> PlacementFilter {
        PlacementFilter(name: name, check: { req, node in
            let view = CNodeView(node)
            view.update(node, serviceID: req.serviceID)
            var task = CTaskView()
            task.update(req)
            return task.withPointer { t in view.withPointer { n in filter.check(t, n) } }
        }, explain: { _, rejected in
            "\(filter.explain(rejected: rejected)) (filter \(name))"
        })
    }
}
