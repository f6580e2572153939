import Foundation
import SwarmGPU
import SwarmPluginABI
import SwarmPluginHost

/// What one policy did with one seed's arrivals.
public struct ReplayRun: Sendable {
    public var policy: String
    public var seed: UInt64
    /// One record per pod: arrived %, allocated %, cluster fragmentation ratio %.
    public var arrivedPct: [Int]
    public var allocatedPct: [Double]
    public var fragPct: [Double]
    /// Pods that fit nowhere, by kind ("cpu", "share", "1-gpu", ...).
    public var failed: [String: Int]
    public var placed: Int
    public var seconds: Double
    /// Per-pod decision time (feasibility, scores and GPU choice), 99th percentile.
    public var p99DecisionSeconds: Double

    /// Mean allocation % at `x` % arrived (records at x, else within x ± 1), to 2 decimals.
    public func allocation(at x: Int) -> Double? { Self.mean(at: x, arrivedPct, allocatedPct).map { ($0 * 100).rounded(.toNearestOrEven) / 100 } }
    /// Mean fragmentation ratio % at `x` % arrived.
    public func fragmentation(at x: Int) -> Double? { Self.mean(at: x, arrivedPct, fragPct) }

    static func mean(at x: Int, _ arrived: [Int], _ values: [Double]) -> Double? {
        var sum = 0.0
        var n = 0
        for (a, v) in zip(arrived, values) where a == x { sum += v; n += 1 }
        if n == 0 {
            for (a, v) in zip(arrived, values) where abs(a - x) <= 1 { sum += v; n += 1 }
        }
        return n == 0 ? nil : sum / Double(n)
    }
}

/// Replays prepared arrivals onto the openb cluster with one strategy plugin, following
/// the FGD artifact's protocol (feasibility, one score per feasible node, ties to the
/// lowest rank, the strategy's GPU choice or the default one, no retries). The host keeps
/// a C view of every node and updates only the chosen node's after each placement;
/// nothing is serialised per call.
public final class ClusterReplay {
    let nodes: [TraceNode]
    let capacity: Int64
    /// NUL-terminated copies of every string the C views point to, freed on deinit.
    private var strings: [UnsafeMutablePointer<CChar>] = []
    private var interned: [String: swarm_str] = [:]

    /// Pods per scheduling tick: the strategy's `prepare` runs again every this many.
    public static let tickPods = 50

    public init(nodes: [TraceNode]) {
        self.nodes = nodes
        capacity = Workload.capacity(nodes)
    }

    deinit { for s in strings { free(s) } }

    func str(_ s: String) -> swarm_str {
        if let v = interned[s] { return v }
        let c = strdup(s)!
        strings.append(c)
        let v = swarm_str(data: c, len: s.utf8.count)
        interned[s] = v
        return v
    }

    /// Runs `strategy` over the arrivals; `progress` gets the fraction done now and then.
    public func run(policy: String, strategy: LoadedStrategy, workload: PreparedWorkload, typical: [WeightedShape],
                    seed: UInt64, progress: (Double) -> Void = { _ in }) -> ReplayRun {
        let n = nodes.count
        var state = nodes.map { GPUNodeState(cpuFree: $0.cpuMilli, memoryFree: $0.memoryMiB,
                                             gpuFree: [Int32](repeating: 1000, count: $0.gpus), model: $0.model) }
        // The C views: one array of nodes, one of all GPUs.
        let gpuTotal = nodes.reduce(0) { $0 + $1.gpus }
        let gpuViews = UnsafeMutablePointer<swarm_gpu_view>.allocate(capacity: max(1, gpuTotal))
        let nodeViews = UnsafeMutablePointer<swarm_node_view>.allocate(capacity: n)
        let nodePointers = UnsafeMutablePointer<UnsafePointer<swarm_node_view>?>.allocate(capacity: n)
        defer { gpuViews.deallocate(); nodeViews.deallocate(); nodePointers.deallocate() }
        var gpuBase = [Int](repeating: 0, count: n)
        var next = 0
        for (i, node) in nodes.enumerated() {
            gpuBase[i] = next
            for g in 0..<node.gpus {
                var v = swarm_gpu_view()
                v.struct_size = MemoryLayout<swarm_gpu_view>.size
                v.uuid = str("\(node.name)-gpu\(g)")
                v.index = UInt32(g)
                v.model = str(node.model)
                v.topology_group = str("")
                v.free_milli = 1000
                (gpuViews + next).initialize(to: v)
                next += 1
            }
            var v = swarm_node_view()
            v.struct_size = MemoryLayout<swarm_node_view>.size
            v.id = str(node.name)
            v.hostname = v.id
            v.os = str("linux")
            v.arch = str("x86_64")
            v.nano_cpus_total = node.cpuMilli * 1_000_000
            v.nano_cpus_free = v.nano_cpus_total
            v.memory_bytes_total = node.memoryMiB << 20
            v.memory_bytes_free = v.memory_bytes_total
            v.gpus = UnsafePointer(gpuViews + gpuBase[i])
            v.gpus_count = node.gpus
            (nodeViews + i).initialize(to: v)
            nodePointers[i] = UnsafePointer(nodeViews + i)
        }

        // The workload classes, and the cluster view, for prepare.
        let modelLists = typical.map { $0.shape.models.map { str($0) } }
        let modelBuffers = modelLists.map { list -> UnsafeMutablePointer<swarm_str> in
            let p = UnsafeMutablePointer<swarm_str>.allocate(capacity: max(1, list.count))
            for (i, s) in list.enumerated() { (p + i).initialize(to: s) }
            return p
        }
        defer { for p in modelBuffers { p.deallocate() } }
        let classes = typical.enumerated().map { i, w in
            swarm_workload_class(struct_size: MemoryLayout<swarm_workload_class>.size, nano_cpus: w.shape.cpu * 1_000_000,
                                 memory_bytes: w.shape.memory << 20, gpu_count: UInt32(w.shape.gpuCount),
                                 gpu_milli: UInt32(w.shape.gpuMilli), gpu_models: UnsafePointer(modelBuffers[i]),
                                 gpu_models_count: modelLists[i].count, weight: w.weight)
        }
        /// A scheduling "tick": the strategy sees the whole cluster as it is now.
        var tick: UInt64 = 0
        func prepare() {
            classes.withUnsafeBufferPointer { cls in
                var cluster = swarm_cluster_view(struct_size: MemoryLayout<swarm_cluster_view>.size, nodes: UnsafePointer(nodePointers),
                                                 nodes_count: n, workload: cls.baseAddress, workload_count: cls.count, seed: seed, tick: tick)
                strategy.prepare(&cluster)
            }
            tick += 1
        }
        prepare()

        // Fragmentation of each node, kept up to date for the chosen node only.
        var frag = state.map { GPUMath.fragmentation($0, typical) }
        var fragSum = frag.reduce(0, +)
        var allocated: Int64 = 0
        var arrived: Int64 = 0
        var run = ReplayRun(policy: policy, seed: seed, arrivedPct: [], allocatedPct: [], fragPct: [], failed: [:], placed: 0,
                            seconds: 0, p99DecisionSeconds: 0)
        let count = workload.arrivals.count
        run.arrivedPct.reserveCapacity(count)
        run.allocatedPct.reserveCapacity(count)
        run.fragPct.reserveCapacity(count)
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let clock = ContinuousClock()
        let started = clock.now
        var feasible: [Int] = []
        feasible.reserveCapacity(n)
        for (k, pod) in workload.arrivals.enumerated() {
            if k % 1000 == 0 { progress(Double(k) / Double(count)) }
            if k > 0 && k % Self.tickPods == 0 { prepare() }
            arrived += pod.demand
            let shape = pod.shape
            let t0 = clock.now
            feasible.removeAll(keepingCapacity: true)
            for i in 0..<n where GPUMath.fits(shape, state[i]) { feasible.append(i) }
            var chosen: Int?
            var gpus: [Int] = []
            if !feasible.isEmpty {
                let modelStrs = shape.models.map { str($0) }
                modelStrs.withUnsafeBufferPointer { models in
                    var task = swarm_task_view()
                    task.struct_size = MemoryLayout<swarm_task_view>.size
                    task.id = str(pod.name)
                    task.reserved_nano_cpus = pod.cpuMilli * 1_000_000
                    task.reserved_memory_bytes = pod.memoryMiB << 20
                    task.gpu_count = UInt32(pod.gpuCount)
                    task.gpu_milli = UInt32(pod.gpuMilli)
                    task.gpu_models = models.baseAddress
                    task.gpu_models_count = models.count
                    withUnsafePointer(to: &task) { tp in
                        if feasible.count == 1 {
                            chosen = feasible[0]
                        } else {
                            var best = -Double.infinity
                            for i in feasible {
                                let s = strategy.score(tp, nodePointers[i]!)
                                guard s.isFinite else { continue }
                                if chosen == nil || s > best || (s == best && workload.rank[i] < workload.rank[chosen!]) {
                                    best = s
                                    chosen = i
                                }
                            }
                        }
                        if let c = chosen, shape.gpuCount > 0 {
                            let proposed = strategy.assignDevices(tp, nodePointers[c]!).map { $0.map(Int.init) }
                            if let p = proposed, p.allSatisfy({ state[c].gpuFree[$0] >= shape.gpuMilli }) {
                                gpus = p
                            } else {
                                gpus = GPUMath.defaultGPUs(shape, state[c]) ?? []
                            }
                        }
                    }
                }
            }
            latencies.append((clock.now - t0).seconds)
            if let c = chosen {
                state[c] = GPUMath.placing(shape, on: state[c], gpus: gpus)
                nodeViews[c].nano_cpus_free = state[c].cpuFree * 1_000_000
                nodeViews[c].memory_bytes_free = state[c].memoryFree << 20
                nodeViews[c].tasks_total += 1
                for g in gpus { gpuViews[gpuBase[c] + g].free_milli = UInt32(state[c].gpuFree[g]) }
                if shape.gpuCount > 0 {
                    nodeViews[c].gpu_task_classes |= shape.isSharing ? SWARM_GPU_CLASS_SHARED : UInt32(1) << UInt32(min(shape.gpuCount, 31))
                }
                allocated += shape.demand
                let f = GPUMath.fragmentation(state[c], typical)
                fragSum += f - frag[c]
                frag[c] = f
                run.placed += 1
            } else {
                run.failed[pod.kind, default: 0] += 1
            }
            let free = Double(capacity - allocated)
            run.arrivedPct.append(Int((100 * Double(arrived) / Double(capacity)).rounded(.toNearestOrEven)))
            run.allocatedPct.append((10_000 * Double(allocated) / Double(capacity)).rounded(.toNearestOrEven) / 100)
            run.fragPct.append(free > 0 ? (10_000 * max(0, fragSum) / free).rounded(.toNearestOrEven) / 100 : 0)
        }
        run.seconds = (clock.now - started).seconds
        latencies.sort()
        run.p99DecisionSeconds = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        progress(1)
        return run
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
