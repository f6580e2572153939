import Foundation
import SwarmAPI
import SwarmConstraints
import SwarmGPU
import Synchronization

/// What the scheduler tracks about a node: its description, what is still free, and the
/// tasks on it. Updated incrementally as tasks are assigned and end.
public struct NodeInfo: Sendable {
    public var id: String
    public var hostname: String
    public var os: String
    public var arch: String
    public var role: SwarmNodeSpec.Role
    public var labels: [String: String]
    public var engineLabels: [String: String]
    public var ready: Bool
    public var availability: SwarmNodeSpec.Availability
    public var totalNanoCPUs: Int64
    public var totalMemoryBytes: Int64
    public var freeNanoCPUs: Int64
    public var freeMemoryBytes: Int64
    /// Free units of each generic resource kind.
    public var genericFree: [String: Int64]
    /// Executor plugins the node reported: a few names, so a list (a scan of one or two
    /// strings is cheaper than hashing the name a filter looks for).
    public var executors: [String]
    /// Identifies this node's description: a new stamp is drawn whenever a ``NodeInfo`` is
    /// made from a node message, and tasks coming and going keep it. Caches of what the
    /// description alone determines (a plugin's C view of the labels and strings) compare
    /// stamps instead of every field.
    public let descriptionStamp: UInt64
    /// Active tasks on the node, by ID.
    public private(set) var tasks: [String: SwarmTask] = [:]
    public private(set) var tasksByService: [String: Int] = [:]
    public var recentFailures: [String: Int] = [:]
    public private(set) var usedHostPorts: Set<UInt32> = []
    /// The node's GPUs with what is free of each (1000 milli = the whole GPU).
    public private(set) var gpus: [GPUSlot] = []
    /// How many GPU tasks of each kind run here (SWARM_GPU_CLASS_SHARED, or 1 << k for k
    /// whole GPUs), for strategies that group GPU tasks by kind.
    public private(set) var gpuTaskKinds: [UInt32: Int] = [:]

    /// One GPU of a node, as the scheduler accounts it.
    public struct GPUSlot: Sendable, Equatable {
        public var uuid: String
        public var index: UInt32
        public var model: String
        public var memoryMiB: UInt64
        public var topologyGroup: String
        public var freeMilli: Int32
    }

    /// The kinds of GPU tasks present, as the bits of swarm_node_view.gpu_task_classes.
    public var gpuTaskClasses: UInt32 { gpuTaskKinds.keys.reduce(0) { $0 | $1 } }

    static func gpuKind(_ task: SwarmTask) -> UInt32? {
        let g = task.spec.resources.gpu
        return gpuKind(count: g.count, milli: g.milli)
    }

    static func gpuKind(count: UInt32, milli: UInt32) -> UInt32? {
        guard count > 0 else { return nil }
        return count == 1 && milli > 0 && milli < 1000 ? 1 : UInt32(1) << min(count, 31)
    }

    private static let stamps = Atomic<UInt64>(0)

    public init(node: SwarmNode) {
        // Each nested message is read once: a getter of a message copies what it returns.
        let description = node.description_p
        let spec = node.spec
        let resources = description.resources
        let platform = description.platform
        descriptionStamp = Self.stamps.wrappingAdd(1, ordering: .relaxed).newValue
        id = node.id
        hostname = description.hostname
        os = platform.os
        arch = platform.architecture
        role = node.role
        labels = spec.annotations.labels
        engineLabels = description.engineLabels
        ready = node.status.state == .ready
        availability = spec.availability
        totalNanoCPUs = resources.nanoCpus
        totalMemoryBytes = resources.memoryBytes
        freeNanoCPUs = totalNanoCPUs
        freeMemoryBytes = totalMemoryBytes
        genericFree = resources.generic.isEmpty ? [:] : GenericResources.totals(resources.generic)
        var executors: [String] = []
        // Only the executors that can run tasks now (a docker engine that answers).
        for p in description.plugins where p.kind == "executor" && p.unavailable.isEmpty && !executors.contains(p.name) {
            executors.append(p.name)
        }
        self.executors = executors
        gpus = description.gpus.isEmpty ? [] : description.gpus.map {
            GPUSlot(uuid: $0.uuid, index: $0.index, model: $0.model, memoryMiB: $0.memoryMib, topologyGroup: $0.topologyGroup, freeMilli: 1000)
        }
    }

    /// Whether the GPUs can serve `req`: enough of an allowed model, with the memory asked
    /// for, each with at least the share asked for free (``GPUMath/enoughGPUs(_:milli:gpus:free:eligible:)``).
    public func gpusFit(_ req: TaskRequirements) -> Bool {
        guard req.gpuCount > 0 else { return true }
        return GPUMath.enoughGPUs(Int(req.gpuCount), milli: Int32(req.gpuMilli), gpus: gpus.count, free: { gpus[$0].freeMilli },
                                  eligible: { eligible(gpus[$0], req) })
    }

    /// Positions of the GPUs that could take one share of `req`.
    public func candidateGPUs(_ req: TaskRequirements) -> [Int] {
        GPUMath.candidates(milli: Int32(req.gpuMilli), gpus: gpus.count, free: { gpus[$0].freeMilli },
                           eligible: { eligible(gpus[$0], req) })
    }

    /// A GPU of an allowed model, with the memory asked for.
    private func eligible(_ g: GPUSlot, _ req: TaskRequirements) -> Bool {
        g.memoryMiB >= req.gpuMinMemoryMiB && (req.gpuModels.isEmpty || req.gpuModels.contains(g.model))
    }

    /// The host's GPU choice (``GPUMath/defaultChoice(_:milli:candidates:free:)``): best fit
    /// for a fraction, the lowest-indexed free GPUs for whole ones.
    public func defaultGPUs(_ req: TaskRequirements) -> [Int]? {
        GPUMath.defaultChoice(Int(req.gpuCount), milli: Int32(req.gpuMilli), candidates: candidateGPUs(req)) { gpus[$0].freeMilli }
    }

    /// Accounts for a task that runs (or will run) on this node.
    public mutating func add(_ task: SwarmTask) {
        let spec = task.spec
        let r = spec.resources.reservations
        add(task, nanoCPUs: r.nanoCpus, memoryBytes: r.memoryBytes,
            generic: r.generic.isEmpty ? [:] : GenericResources.totals(r.generic),
            hostPorts: spec.ports.lazy.map(\.publishedPort).filter { $0 != 0 },
            gpuKind: Self.gpuKind(count: spec.resources.gpu.count, milli: spec.resources.gpu.milli))
    }

    /// Accounts for a task whose spec `req` was read from (the placement engine reads a
    /// group's spec once, not each task's).
    mutating func add(_ task: SwarmTask, _ req: TaskRequirements) {
        add(task, nanoCPUs: req.nanoCPUs, memoryBytes: req.memoryBytes, generic: req.generic, hostPorts: req.hostPorts,
            gpuKind: Self.gpuKind(count: req.gpuCount, milli: req.gpuMilli))
    }

    private mutating func add(_ task: SwarmTask, nanoCPUs: Int64, memoryBytes: Int64, generic: [String: Int64],
                              hostPorts: some Sequence<UInt32>, gpuKind: UInt32?) {
        guard tasks[task.id] == nil else { return }
        tasks[task.id] = task
        tasksByService[task.serviceID, default: 0] += 1
        freeNanoCPUs -= nanoCPUs
        freeMemoryBytes -= memoryBytes
        for (kind, n) in generic { genericFree[kind, default: 0] -= n }
        for p in hostPorts { usedHostPorts.insert(p) }
        for g in task.assignedGpus {
            if let i = gpus.firstIndex(where: { $0.uuid == g.uuid }) { gpus[i].freeMilli -= Int32(g.milli) }
        }
        if let k = gpuKind { gpuTaskKinds[k, default: 0] += 1 }
    }

    /// Returns a task's resources when it ends or leaves the node.
    public mutating func remove(_ task: SwarmTask) {
        guard let task = tasks.removeValue(forKey: task.id) else { return }
        tasksByService[task.serviceID, default: 1] -= 1
        if tasksByService[task.serviceID] == 0 { tasksByService[task.serviceID] = nil }
        let r = task.spec.resources.reservations
        freeNanoCPUs += r.nanoCpus
        freeMemoryBytes += r.memoryBytes
        for (kind, n) in GenericResources.totals(r.generic) { genericFree[kind, default: 0] += n }
        for p in task.spec.ports where p.publishedPort != 0 { usedHostPorts.remove(p.publishedPort) }
        for g in task.assignedGpus {
            if let i = gpus.firstIndex(where: { $0.uuid == g.uuid }) { gpus[i].freeMilli += Int32(g.milli) }
        }
        if let k = Self.gpuKind(task) {
            gpuTaskKinds[k, default: 1] -= 1
            if gpuTaskKinds[k] == 0 { gpuTaskKinds[k] = nil }
        }
    }

    public var taskCount: Int { tasks.count }
}

/// What the tasks of one service (and spec version) need from a node.
public struct TaskRequirements: Sendable {
    public var serviceID: String
    public var serviceName: String
    public var nanoCPUs: Int64
    public var memoryBytes: Int64
    public var generic: [String: Int64]
    public var constraints: [Constraint]
    /// The executor the tasks need ("process", "docker", ...).
    public var runtime: String
    /// 0 means no limit.
    public var maxReplicasPerNode: UInt64
    public var hostPorts: [UInt32]
    /// GPUs per task, and the share of each in milli (1000 for whole GPUs).
    public var gpuCount: UInt32
    public var gpuMilli: UInt32
    public var gpuMinMemoryMiB: UInt64
    public var gpuModels: [String]
    /// Node label keys to spread over, outermost first (placement preferences).
    public var spreadLabels: [String]

    /// Reads the requirements from a task spec; malformed constraints are an error.
    public init(serviceID: String, serviceName: String = "", spec: SwarmTaskSpec) throws(PlacementError) {
        self.serviceID = serviceID
        self.serviceName = serviceName
        nanoCPUs = spec.resources.reservations.nanoCpus
        memoryBytes = spec.resources.reservations.memoryBytes
        generic = GenericResources.totals(spec.resources.reservations.generic)
        constraints = try Constraint.parse(all: spec.placement.constraints)
        runtime = spec.executorName
        maxReplicasPerNode = spec.placement.maxReplicas
        hostPorts = spec.ports.map(\.publishedPort).filter { $0 != 0 }
        try PlacementInput.validate(gpu: spec.resources.gpu)
        gpuCount = spec.resources.gpu.count
        gpuMilli = spec.resources.gpu.count == 0 ? 0 : (spec.resources.gpu.milli == 0 ? 1000 : spec.resources.gpu.milli)
        gpuMinMemoryMiB = spec.resources.gpu.minMemoryMib
        gpuModels = spec.resources.gpu.models
        var labels: [String] = []
        for p in spec.placement.preferences { labels.append(try PlacementInput.spreadLabel(p.spread)) }
        spreadLabels = labels
    }
}

extension NodeInfo: ConstraintTarget {
    public var isManager: Bool { role == .manager }
}
