#if canImport(Glibc)
import Glibc
#endif
import SwarmAPI
import SwarmPluginABI
import SwarmScheduler

/// Adapts a strategy plugin to the placement engine's ``Scorer``: scores, prepares, chooses
/// GPUs and places groups through the plugin, handing it C views of the task and the nodes
/// (``CNodeView``, ``CTaskView``).
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
        engine.visitNodesInIDOrder { node in views.append(view(node, serviceID: "")) }
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

extension CNodeView {
    /// The view of a node as the scheduler accounts it, stamped with its description.
    convenience init(_ node: borrowing NodeInfo) {
        let genericKinds = node.genericFree.keys.sorted()
        self.init(NodeViewDescription(
            id: node.id, hostname: node.hostname, os: node.os, arch: node.arch, isManager: node.role == .manager,
            labels: node.labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
            engineLabels: node.engineLabels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
            gpus: node.gpus.map { .init(uuid: $0.uuid, index: $0.index, model: $0.model, memoryMiB: $0.memoryMiB, topologyGroup: $0.topologyGroup) },
            genericKinds: genericKinds), stamp: node.descriptionStamp)
    }

    /// Whether the view was made from the node's current description.
    func matches(_ node: NodeInfo) -> Bool { stamp == node.descriptionStamp }

    /// Brings the numbers up to date for a task of `serviceID`.
    func update(_ node: NodeInfo, serviceID: String) {
        setResources(nanoCPUsTotal: node.totalNanoCPUs, nanoCPUsFree: node.freeNanoCPUs,
                     memoryBytesTotal: node.totalMemoryBytes, memoryBytesFree: node.freeMemoryBytes)
        setTasks(total: node.taskCount, ofService: node.tasksByService[serviceID] ?? 0,
                 recentFailures: node.recentFailures[serviceID] ?? 0, gpuTaskClasses: node.gpuTaskClasses)
        for (i, g) in node.gpus.enumerated() { setGPUFree(i, milli: g.freeMilli) }
        for (i, kind) in genericKinds.enumerated() { setGenericFree(i, node.genericFree[kind] ?? 0) }
        let used = node.usedHostPorts
        setUsedHostPorts(used.isEmpty ? [] : used.sorted())
    }
}

extension CTaskView {
    /// The view of a task group's requirements.
    mutating func update(_ req: TaskRequirements) {
        update(serviceID: req.serviceID, serviceName: req.serviceName, runtime: req.runtime, nanoCPUs: req.nanoCPUs,
               memoryBytes: req.memoryBytes, gpuCount: req.gpuCount, gpuMilli: req.gpuMilli, gpuMinMemoryMiB: req.gpuMinMemoryMiB,
               gpuModels: req.gpuModels, generic: req.generic, maxReplicasPerNode: req.maxReplicasPerNode, hostPorts: req.hostPorts)
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
