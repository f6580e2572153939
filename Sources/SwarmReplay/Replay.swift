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
    /// The GPU milli still free at the end, by cause (``Leftover``).
    public var leftover: [String: Double] = [:]
    /// The GPU milli still free at the end, by the size of the piece it is in (``FreePieces``).
    public var pieces: [String: Double] = [:]
    /// Where the cluster's CPU went, in milli-CPUs at the end (``CPUUse``).
    public var cpuUse: [String: Double] = [:]
    /// Arrived % when the first pod fitted nowhere; nil when every pod fitted.
    public var firstFailureArrived: Int?

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
    /// With `hindsight`, the expected workload that `prepare` hands the strategy at each
    /// tick weighs the typical classes by the arrivals still to come in this run
    /// (``Workload/remainingWeights(_:arrivals:)``), knowledge no real scheduler has: it
    /// measures what a perfect forecast of the workload would be worth to a strategy.
    public func run(policy: String, strategy: LoadedStrategy, workload: PreparedWorkload, typical: [WeightedShape],
                    seed: UInt64, hindsight: Bool = false, progress: (Double) -> Void = { _ in }) -> ReplayRun {
        let n = nodes.count
        var state = nodes.map { GPUNodeState(cpuFree: $0.cpuMilli, memoryFree: $0.memoryMiB,
                                             gpuFree: [Int32](repeating: 1000, count: $0.gpus), model: $0.model) }
        // The C views, made by the host's one builder; only the chosen node's numbers are
        // set again after each placement.
        let views = nodes.map { node in
            let view = CNodeView(NodeViewDescription(id: node.name, hostname: node.name, gpus: (0..<node.gpus).map { g in
                .init(uuid: "\(node.name)-gpu\(g)", index: UInt32(g), model: node.model, memoryMiB: 0, topologyGroup: "")
            }))
            view.setResources(nanoCPUsTotal: node.cpuMilli * 1_000_000, nanoCPUsFree: node.cpuMilli * 1_000_000,
                              memoryBytesTotal: node.memoryMiB << 20, memoryBytesFree: node.memoryMiB << 20)
            return view
        }
        let nodePointers = UnsafeMutablePointer<UnsafePointer<swarm_node_view>?>.allocate(capacity: max(1, n))
        defer { nodePointers.deallocate() }
        for (i, view) in views.enumerated() { nodePointers[i] = view.pointer }
        var tasksOn = [Int](repeating: 0, count: n)
        var gpuClasses = [UInt32](repeating: 0, count: n)

        // The workload classes, and the cluster view, for prepare.
        let modelLists = typical.map { $0.shape.models.map { str($0) } }
        let modelBuffers = modelLists.map { list -> UnsafeMutablePointer<swarm_str> in
            let p = UnsafeMutablePointer<swarm_str>.allocate(capacity: max(1, list.count))
            for (i, s) in list.enumerated() { (p + i).initialize(to: s) }
            return p
        }
        defer { for p in modelBuffers { p.deallocate() } }
        var classes = typical.enumerated().map { i, w in
            swarm_workload_class(struct_size: MemoryLayout<swarm_workload_class>.size, nano_cpus: w.shape.cpu * 1_000_000,
                                 memory_bytes: w.shape.memory << 20, gpu_count: UInt32(w.shape.gpuCount),
                                 gpu_milli: UInt32(w.shape.gpuMilli), gpu_models: UnsafePointer(modelBuffers[i]),
                                 gpu_models_count: modelLists[i].count, weight: w.weight)
        }
        /// A scheduling "tick": the strategy sees the whole cluster as it is now.
        var tick: UInt64 = 0
        func prepare(from next: Int = 0) {
            if hindsight, let weights = Workload.remainingWeights(typical, arrivals: workload.arrivals[next...]) {
                for i in classes.indices { classes[i].weight = weights[i] }
            }
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
        var taskView = CTaskView()
        for (k, pod) in workload.arrivals.enumerated() {
            if k % 1000 == 0 { progress(Double(k) / Double(count)) }
            if k > 0 && k % Self.tickPods == 0 { prepare(from: k) }
            arrived += pod.demand
            let shape = pod.shape
            let t0 = clock.now
            feasible.removeAll(keepingCapacity: true)
            for i in 0..<n where GPUMath.fits(shape, state[i]) { feasible.append(i) }
            var chosen: Int?
            var gpus: [Int] = []
            if !feasible.isEmpty {
                taskView.update(id: pod.name, serviceID: "", serviceName: "", runtime: "", nanoCPUs: pod.cpuMilli * 1_000_000,
                                memoryBytes: pod.memoryMiB << 20, gpuCount: UInt32(pod.gpuCount), gpuMilli: UInt32(pod.gpuMilli),
                                gpuModels: shape.models)
                taskView.withPointer { tp in
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
            latencies.append((clock.now - t0).seconds)
            if let c = chosen {
                state[c] = GPUMath.placing(shape, on: state[c], gpus: gpus)
                let node = nodes[c]
                views[c].setResources(nanoCPUsTotal: node.cpuMilli * 1_000_000, nanoCPUsFree: state[c].cpuFree * 1_000_000,
                                      memoryBytesTotal: node.memoryMiB << 20, memoryBytesFree: state[c].memoryFree << 20)
                tasksOn[c] += 1
                if shape.gpuCount > 0 {
                    gpuClasses[c] |= shape.isSharing ? SWARM_GPU_CLASS_SHARED : UInt32(1) << UInt32(min(shape.gpuCount, 31))
                }
                views[c].setTasks(total: tasksOn[c], ofService: 0, recentFailures: 0, gpuTaskClasses: gpuClasses[c])
                for g in gpus { views[c].setGPUFree(g, milli: state[c].gpuFree[g]) }
                allocated += shape.demand
                let f = GPUMath.fragmentation(state[c], typical)
                fragSum += f - frag[c]
                frag[c] = f
                run.placed += 1
                run.cpuUse[shape.isCPUOnly ? "CPU-only pods" : "GPU pods", default: 0] += Double(shape.cpu)
            } else {
                run.failed[pod.kind, default: 0] += 1
                if run.firstFailureArrived == nil { run.firstFailureArrived = Int((100 * Double(arrived) / Double(capacity)).rounded()) }
            }
            let free = Double(capacity - allocated)
            run.arrivedPct.append(Int((100 * Double(arrived) / Double(capacity)).rounded(.toNearestOrEven)))
            run.allocatedPct.append((10_000 * Double(allocated) / Double(capacity)).rounded(.toNearestOrEven) / 100)
            run.fragPct.append(free > 0 ? (10_000 * max(0, fragSum) / free).rounded(.toNearestOrEven) / 100 : 0)
        }
        run.seconds = (clock.now - started).seconds
        run.leftover = Leftover.breakdown(state, typical)
        run.pieces = FreePieces.breakdown(state)
        for c in state { run.cpuUse[c.gpuFreeTotal > 0 ? "free, with GPUs" : "free, no GPU", default: 0] += Double(max(0, c.cpuFree)) }
        latencies.sort()
        run.p99DecisionSeconds = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        progress(1)
        return run
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
