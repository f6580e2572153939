import Foundation
import SwarmAPI
import SwarmPluginHost
@testable import SwarmScheduler
import Testing

/// The example filters written in C and in Rust, built by the project's script, loaded by
/// name, and applied by the placement engine to real node and task views.
@Suite(.serialized) struct ExamplePluginTests {
    static func build() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let out = NSTemporaryDirectory() + "example-plugins-\(UUID().uuidString.prefix(8))"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent("scripts/build-example-plugins.sh").path, out]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "build-example-plugins.sh: \(log)")
        return out
    }

    @Test func cAndRustFiltersLoadByNameAndFilter() throws {
        let dir = try Self.build()
        let registry = PluginRegistry()
        let errors = registry.loadDirectory(dir)
        #expect(errors.isEmpty, "\(errors)")
        let records = Dictionary(uniqueKeysWithValues: registry.records.map { ($0.name, $0) })
        #expect(records["maintenance"]?.kind == .filter && records["maintenance"]?.abiMinor == 1)
        #expect(records["spare-nodes"]?.kind == .filter && records["spare-nodes"]?.version == "1.0.0")
        let maintenance = try #require(registry.filter("maintenance"))
        let spare = try #require(registry.filter("spare-nodes"))

        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("n1", labels: ["maintenance": "true"]))
        engine.setNode(PlacementTests.node("n2"))
        var spareNode = PlacementTests.node("n3")
        spareNode.description_p.hostname = "spare-3"
        engine.setNode(spareNode)
        engine.filters = PlacementFilter.pipeline + [.plugin("maintenance", maintenance), .plugin("spare-nodes", spare)]

        // Only n2 is neither under maintenance nor a spare.
        let (tasks, req) = PlacementTests.tasks(3)
        let r = engine.place(tasks, requirements: req, scorer: try PlacementTests.spread())
        #expect(Set(r.assignments.map(\.node)) == ["n2"])
        #expect(r.assignments.count == 3)

        // With no room on n2, the explanation names each plugin's reason.
        var full = PlacementTests.node("n2", cpus: 0)
        full.description_p.resources.nanoCpus = 0
        engine.setNode(full)
        let (more, req2) = PlacementTests.tasks(1, service: "other", cpus: 1)
        let r2 = engine.place(more, requirements: req2, scorer: try PlacementTests.spread())
        let why = r2.unplaced.first?.1 ?? ""
        #expect(why.contains("1 node under maintenance (filter maintenance)"), "\(why)")
        #expect(why.contains("kept free as spare nodes (filter spare-nodes)"), "\(why)")

        // A service named spare-... may use the spare node (n2 has no CPU left).
        var spareService = PlacementTests.tasks(1, service: "spare-batch", cpus: 1)
        spareService.1 = try TaskRequirements(serviceID: "spare-batch", serviceName: "spare-batch", spec: spareService.0[0].spec)
        let r3 = engine.place(spareService.0, requirements: spareService.1, scorer: try PlacementTests.spread())
        #expect(r3.assignments.map(\.node) == ["n3"])
    }
}

/// Declarative plugins: a C function and a manifest, called through libffi.
@Suite(.serialized) struct DeclarativePluginTests {
    @Test func manifestsLoadAndTheirFunctionsPlaceTasks() throws {
        let dir = try ExamplePluginTests.build()
        let registry = PluginRegistry()
        #expect(registry.loadDirectory(dir).isEmpty)
        let roomy = try #require(registry.strategy("roomy"))
        let gpuRoom = try #require(registry.filter("gpu-room"))
        #expect(roomy.record.file.hasSuffix("roomy.plugin.json") && roomy.record.version == "declarative")

        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("small", cpus: 4))
        engine.setNode(PlacementTests.node("big", cpus: 16))
        engine.setNode(PlacementTests.node("east", cpus: 2, labels: ["zone": "east"]))
        // roomy: the zone bonus wins first, then the most CPUs left.
        let (tasks, req) = PlacementTests.tasks(3, cpus: 1)
        let r = engine.place(tasks, requirements: req, scorer: PluginScorer(roomy))
        #expect(r.assignments.map(\.node) == ["east", "east", "big"])

        // gpu-room as a filter: no node has GPUs, so a GPU task is refused, a CPU task is not.
        engine.filters = PlacementFilter.pipeline + [.plugin("gpu-room", gpuRoom)]
        var spec = SwarmTaskSpec()
        spec.resources.gpu = .with { $0.count = 1; $0.milli = 500 }
        let gpuTask = SwarmTask.with { $0.id = "g1"; $0.serviceID = "gpu"; $0.spec = spec }
        let cpuTask = SwarmTask.with { $0.id = "c1"; $0.serviceID = "cpu" }
        let g = engine.place([gpuTask], requirements: try TaskRequirements(serviceID: "gpu", spec: spec), scorer: PluginScorer(roomy))
        let c = engine.place([cpuTask], requirements: try TaskRequirements(serviceID: "cpu", spec: SwarmTaskSpec()), scorer: PluginScorer(roomy))
        #expect(g.assignments.isEmpty && (g.unplaced["g1"] ?? "").contains("filter gpu-room"), "\(g.unplaced)")
        #expect(c.assignments.count == 1)
    }

    @Test func badManifestsAreRefusedWithTheirLine() throws {
        let dir = try ExamplePluginTests.build()
        let cases: [(String, Int, String)] = [
            ("""
             {
               "name": "bad1",
               "kind": "score",
               "library": "libswarm-declarative-examples.so",
               "function": "roomy_score",
               "args": ["node.cpu_free", "node.cpu_freee"]
             }
             """, 6, "unknown field \"node.cpu_freee\""),
            ("""
             {
               "name": "bad2",
               "kind": "score",
               "library": "libswarm-declarative-examples.so",
               "function": "roomy_score",
               "args": [
                 {"field": "node.memory_free", "type": "double"}
               ]
             }
             """, 7, "passed as int64, but the manifest declares double"),
            ("""
             {
               "name": "bad3",
               "kind": "filter",
               "library": "libswarm-declarative-examples.so",
               "function": "no_such_function",
               "args": []
             }
             """, 5, "missing symbol no_such_function"),
            ("""
             {
               "name": "bad4",
               "kind": "ranker",
               "library": "x.so", "function": "f", "args": []
             }
             """, 3, "kind \"ranker\" is not filter or score"),
            ("{ \"name\": \"bad5\", ", 1, "not valid JSON"),
        ]
        for (text, line, reason) in cases {
            let path = dir + "/bad-\(line).plugin.json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let registry = PluginRegistry()
            #expect {
                try registry.load(manifest: path)
            } throws: { error in
                let e = error as! PluginLoadError
                return e.file == "\(path):\(line)" && e.reason.contains(reason)
            }
            #expect(registry.records.isEmpty)
            try FileManager.default.removeItem(atPath: path)
        }
    }
}
