import ArgumentParser

/// Benchmark harnesses for swift-swarm. Each prints a table of its figures.
@main
struct SwarmBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm-bench",
        abstract: "swift-swarm benchmarks",
        subcommands: [StoreBench.self, RaftBench.self, JoinBench.self, WALBench.self, ReplayBench.self, TraceVariantCommand.self, SchedulerBench.self, PluginCallBench.self]
    )
}
