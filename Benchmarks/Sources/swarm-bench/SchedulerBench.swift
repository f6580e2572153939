import ArgumentParser
import Foundation
import SwarmAPI
import SwarmManager
import SwarmPluginHost
import SwarmStore

/// `swarm-bench scheduler`: the shapes of SwarmKit's scheduler benchmark. N READY nodes
/// (every third with a label and an extra plugin that a constraint can match), M pending
/// one-off tasks already in the store; the time runs from the scheduler's start until every
/// assignment is committed to the store.
struct SchedulerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scheduler", abstract: "Scheduler throughput on SwarmKit's benchmark shapes")

    @Option(help: "READY nodes") var nodes = 1000
    @Option(help: "Pending tasks") var tasks = 1000
    @Option(help: "Strategy plugin") var strategy = "spread"
    @Flag(help: "Tasks carry a constraint that every third node meets") var constraint = false
    @Option(help: "Directory of plugin .so files (default: $SWARM_PLUGIN_DIR, else the main package's .build/release)") var pluginDir: String?
    @Flag(help: "Also measure the time spent inside the strategy plugin (adds two clock reads per call)") var timePlugin = false
    @Option(help: "Runs, each on a fresh store; the figures are those of the median run") var runs = 1
    @Option(help: "GPUs on every node (declared, model A10); with it each task asks for one share of --gpu-milli") var gpus = 0
    @Option(help: "Each task's share of one GPU, in milli (1-1000), when --gpus is given") var gpuMilli = 500

    func validate() throws {
        guard (0...64).contains(gpus) else { throw ValidationError("--gpus must be 0...64, not \(gpus)") }
        guard (1...1000).contains(gpuMilli) else { throw ValidationError("--gpu-milli must be 1...1000, not \(gpuMilli)") }
        if gpus > 0 && nodes * gpus * (1000 / gpuMilli) < tasks {
            throw ValidationError("\(nodes) nodes × \(gpus) GPUs hold only \(nodes * gpus * (1000 / gpuMilli)) shares of \(gpuMilli) milli, fewer than --tasks \(tasks)")
        }
    }

    struct Run {
        var seconds: Double
        var perNode: [String: Int]
        var pluginTime: (calls: Int, nanoseconds: UInt64)
    }

    /// One timed run on a fresh store.
    func runOnce(_ registry: PluginRegistry) async throws -> Run {
        let store = MemoryStore()
        let n = nodes, m = tasks, name = strategy, constrained = constraint, gpuCount = gpus, milli = UInt32(gpuMilli)
        try await store.batch { batch in
            for i in 0..<n {
                try await batch.update { tx in
                    var node = SwarmNode()
                    node.id = String(format: "node%07d", i)
                    node.status.state = .ready
                    node.spec.availability = .active
                    node.description_p.hostname = node.id
                    node.description_p.platform = .with { $0.os = "linux"; $0.architecture = "x86_64" }
                    node.description_p.resources = .with { $0.nanoCpus = 64_000_000_000; $0.memoryBytes = 256 << 30 }
                    node.description_p.plugins = [.with { $0.name = "process"; $0.kind = "executor" }]
                    node.description_p.gpus = (0..<gpuCount).map { g in
                        SwarmGPUDevice.with { $0.uuid = "GPU-\(i)-\(g)"; $0.index = UInt32(g); $0.model = "A10"; $0.memoryMib = 24_576 }
                    }
                    if i % 3 == 0 {
                        node.spec.annotations.labels = ["extra": "yes"]
                        node.description_p.plugins.append(.with { $0.name = "extra"; $0.kind = "executor" })
                    }
                    try tx.create(node)
                }
            }
            for i in 0..<m {
                try await batch.update { tx in
                    var t = SwarmTask()
                    t.id = String(format: "task%08d", i)
                    t.serviceID = "bench"
                    t.serviceAnnotations.name = "bench"
                    t.desiredState = .running
                    t.status.state = .pending
                    t.specVersion = 1
                    t.spec.process.command = "/bin/true"
                    t.spec.strategy = name
                    t.spec.resources.reservations.nanoCpus = 1_000_000
                    if gpuCount > 0 { t.spec.resources.gpu = .with { $0.count = 1; $0.milli = milli } }
                    if constrained { t.spec.placement.constraints = ["node.labels.extra==yes"] }
                    try tx.create(t)
                }
            }
        }
        let watcher = store.watch(WatchFilter(tables: [.tasks]), limit: 2 * m + 1000)
        let loop = SchedulerLoop(store: store, plugins: registry, timePluginCalls: timePlugin)
        let clock = ContinuousClock()
        let start = clock.now
        let scheduler = Task { await loop.run() }
        var assigned = 0
        for try await message in watcher {
            if case .event(let e) = message, let t = e.new?.task, t.status.state == .assigned, e.old?.task?.status.state != .assigned {
                assigned += 1
                if assigned == m { break }
            }
        }
        let elapsed = (clock.now - start)
        scheduler.cancel()
        watcher.cancel()
        // The loop still has its own pass's events to read; it must be gone before the
        // next run starts, or it competes with it.
        await scheduler.value
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let perNode = Dictionary(grouping: store.view().all(SwarmTask.self), by: \.nodeID).mapValues(\.count)
        return Run(seconds: seconds, perNode: perNode, pluginTime: loop.pluginCallTime)
    }

    func run() async throws {
        let registry = PluginRegistry()
        let dir = pluginDir ?? ReplayBench.defaultPluginDir()
        for e in registry.loadDirectory(dir) { FileHandle.standardError.write(Data("warning: \(e)\n".utf8)) }
        guard registry.strategy(strategy) != nil else {
            throw ValidationError("unknown strategy \"\(strategy)\" (loaded from \(dir): \(registry.names(.strategy).joined(separator: ", ")))")
        }
        var results: [Run] = []
        for _ in 0..<max(1, runs) { results.append(try await runOnce(registry)) }
        let sorted = results.sorted { $0.seconds < $1.seconds }
        let run = sorted[sorted.count / 2]
        let (n, m, name, constrained, seconds, perNode, pluginTime) = (nodes, tasks, strategy, constraint, run.seconds, run.perNode, run.pluginTime)
        if results.count > 1 {
            print(String(format: "runs: %d, seconds min %.4f, median %.4f, max %.4f", results.count, sorted[0].seconds, run.seconds, sorted.last!.seconds))
        }
        if gpus > 0 { print("every node has \(gpus) GPUs; every task asks for \(gpuMilli) milli of one") }
        print("nodes  tasks   strategy  constraint  seconds   placements/s  tasks/node (min-max)  plugin calls  plugin share")
        print(String(format: "%-6d %-7d %-9@ %-11@ %-9.3f %-13.0f %-21@ %-13d %@", n, m, name as NSString, (constrained ? "yes" : "no") as NSString,
                     seconds, Double(m) / seconds, "\(perNode.values.min() ?? 0)-\(perNode.values.max() ?? 0)" as NSString,
                     pluginTime.calls, (timePlugin ? String(format: "%.1f %%", 100 * Double(pluginTime.nanoseconds) / 1e9 / seconds) : "(use --time-plugin)") as NSString))
        print(String(format: "placements/s: %.0f", Double(m) / seconds))
    }
}
