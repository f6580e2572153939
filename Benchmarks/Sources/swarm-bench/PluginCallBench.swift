import ArgumentParser
import Foundation
import SwarmAPI
import SwarmPluginHost
import SwarmScheduler

/// `swarm-bench plugin-call`: the cost of one strategy call through the plugin vtable and
/// through a declarative (libffi) plugin, on the same node and task views.
struct PluginCallBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugin-call", abstract: "Cost per call: vtable plugin against declarative plugin")

    @Option(help: "Directory of the built plugins (default: the main package's .build/release)") var pluginDir: String?
    @Option(help: "Directory of the example plugins (scripts/build-example-plugins.sh; default: <repo>/.build/example-plugins)") var exampleDir: String?
    @Option(help: "Calls per strategy") var calls = 2_000_000

    func run() throws {
        let registry = PluginRegistry()
        let main = pluginDir ?? ReplayBench.defaultPluginDir()
        let examples = exampleDir ?? URL(fileURLWithPath: main).deletingLastPathComponent().appendingPathComponent("example-plugins").path
        for e in registry.loadDirectory(main) + registry.loadDirectory(examples) { FileHandle.standardError.write(Data("warning: \(e)\n".utf8)) }
        var n = SwarmNode()
        n.id = "node-1"
        n.status.state = .ready
        n.description_p.hostname = "node-1"
        n.description_p.resources = .with { $0.nanoCpus = 16_000_000_000; $0.memoryBytes = 64 << 30 }
        n.spec.annotations.labels = ["zone": "east"]
        let node = NodeInfo(node: n)
        var spec = SwarmTaskSpec()
        spec.resources.reservations.nanoCpus = 1_000_000_000
        let req = try TaskRequirements(serviceID: "svc", serviceName: "svc", spec: spec)
        print("strategy   kind          ns/call")
        for (name, kind) in [("spread", "vtable (Swift)"), ("binpack", "vtable (Swift)"), ("roomy", "declarative")] {
            guard let s = registry.strategy(name) else {
                print("\(name): not loaded (build the examples with scripts/build-example-plugins.sh)")
                continue
            }
            let scorer = PluginScorer(s)
            var sink = 0.0
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<calls { sink += scorer.score(req, node) ?? 0 }
            let d = clock.now - start
            let ns = (Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9) / Double(calls)
            print(String(format: "%-10@ %-13@ %7.1f", name as NSString, kind as NSString, ns) + (sink.isNaN ? " " : ""))
        }
    }
}
