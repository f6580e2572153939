import Foundation
import SwarmAPI
import SwarmConstraints
import SwarmPluginABI
import SwarmPluginHost
@testable import SwarmScheduler
import SwiftProtobuf
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
        defer { try? FileManager.default.removeItem(atPath: dir) }   // the loaded libraries stay mapped
        let registry = PluginRegistry()
        let errors = registry.loadDirectory(dir)
        #expect(errors.isEmpty, "\(errors)")
        let records = Dictionary(uniqueKeysWithValues: registry.records.map { ($0.name, $0) })
        // The C filter declares the header's version; the Rust one was written for 1.1 and
        // still loads on a newer minor version.
        #expect(records["maintenance"]?.kind == .filter && records["maintenance"]?.abiMinor == UInt32(SWARM_PLUGIN_ABI_MINOR))
        #expect(records["spare-nodes"]?.kind == .filter && records["spare-nodes"]?.version == "1.0.0")
        #expect(records["spare-nodes"]?.abiMinor == 1)
        let maintenance = try #require(registry.filter("maintenance"))
        let spare = try #require(registry.filter("spare-nodes"))

        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("n1", labels: ["maintenance": "true"]))
        engine.setNode(PlacementTests.node("n2"))
        var spareNode = PlacementTests.node("n3")
        spareNode.description_p.hostname = "spare-3"
        engine.setNode(spareNode)
        let filters = PlacementFilter.pipeline + [.plugin("maintenance", maintenance), .plugin("spare-nodes", spare)]

        // Only n2 is neither under maintenance nor a spare.
        let (tasks, req) = PlacementTests.tasks(3)
        let r = engine.place(tasks, requirements: req, scorer: try PlacementTests.spread(), filters: filters)
        #expect(Set(r.assignments.map(\.node)) == ["n2"])
        #expect(r.assignments.count == 3)

        // With no room on n2, the explanation names each plugin's reason.
        var full = PlacementTests.node("n2", cpus: 0)
        full.description_p.resources.nanoCpus = 0
        engine.setNode(full)
        let (more, req2) = PlacementTests.tasks(1, service: "other", cpus: 1)
        let r2 = engine.place(more, requirements: req2, scorer: try PlacementTests.spread(), filters: filters)
        let why = r2.unplaced.first?.1 ?? ""
        #expect(why.contains("1 node under maintenance (filter maintenance)"), "\(why)")
        #expect(why.contains("kept free as spare nodes (filter spare-nodes)"), "\(why)")

        // A service named spare-... may use the spare node (n2 has no CPU left).
        var spareService = PlacementTests.tasks(1, service: "spare-batch", cpus: 1)
        spareService.1 = try TaskRequirements(serviceID: "spare-batch", serviceName: "spare-batch", spec: spareService.0[0].spec)
        let r3 = engine.place(spareService.0, requirements: spareService.1, scorer: try PlacementTests.spread(), filters: filters)
        #expect(r3.assignments.map(\.node) == ["n3"])
    }
}

/// Declarative plugins: a C function and a manifest, called through libffi.
@Suite(.serialized) struct DeclarativePluginTests {
    @Test func manifestsLoadAndTheirFunctionsPlaceTasks() throws {
        let dir = try ExamplePluginTests.build()
        defer { try? FileManager.default.removeItem(atPath: dir) }
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

        // gpu-room as a filter (ahead of the built-in ones, so that it is the one that says
        // no): no node has GPUs, so a GPU task is refused, a CPU task is not.
        let filters = [.plugin("gpu-room", gpuRoom)] + PlacementFilter.pipeline
        var spec = SwarmTaskSpec()
        spec.resources.gpu = .with { $0.count = 1; $0.milli = 500 }
        let gpuTask = SwarmTask.with { $0.id = "g1"; $0.serviceID = "gpu"; $0.spec = spec }
        let cpuTask = SwarmTask.with { $0.id = "c1"; $0.serviceID = "cpu" }
        let g = engine.place([gpuTask], requirements: try TaskRequirements(serviceID: "gpu", spec: spec), scorer: PluginScorer(roomy),
                             filters: filters)
        let c = engine.place([cpuTask], requirements: try TaskRequirements(serviceID: "cpu", spec: SwarmTaskSpec()), scorer: PluginScorer(roomy),
                             filters: filters)
        #expect(g.assignments.isEmpty && (g.unplaced["g1"] ?? "").contains("filter gpu-room"), "\(g.unplaced)")
        #expect(c.assignments.count == 1)
    }

    @Test func aScorerSeesANodesNewLabels() throws {
        let dir = try ExamplePluginTests.build()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = PluginRegistry()
        #expect(registry.loadDirectory(dir).isEmpty)
        // One scorer across passes, as the scheduler keeps it: its C view of a node must
        // follow the node's description when the zone label moves to another node.
        let scorer = PluginScorer(try #require(registry.strategy("roomy")))
        var engine = PlacementEngine()
        engine.setNode(PlacementTests.node("small", cpus: 4))
        engine.setNode(PlacementTests.node("east", cpus: 2, labels: ["zone": "east"]))
        let (first, req) = PlacementTests.tasks(1, cpus: 1)
        #expect(engine.place(first, requirements: req, scorer: scorer).assignments.map(\.node) == ["east"])
        engine.setNode(PlacementTests.node("small", cpus: 4, labels: ["zone": "east"]))
        engine.setNode(PlacementTests.node("east", cpus: 2))
        let second = [SwarmTask.with { $0.id = "second"; $0.serviceID = first[0].serviceID; $0.spec = first[0].spec }]
        #expect(engine.place(second, requirements: req, scorer: scorer).assignments.map(\.node) == ["small"])
    }

    @Test func badManifestsAreRefusedWithTheirLine() throws {
        let dir = try ExamplePluginTests.build()
        defer { try? FileManager.default.removeItem(atPath: dir) }
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

/// GPU accounting in the placement engine: fractions share a GPU, whole GPUs are exclusive,
/// models and memory are respected, units come back when a task ends.
struct GPUPlacementTests {
    static func gpuNode(_ id: String, _ gpus: [(String, String, UInt64)]) -> SwarmNode {
        var n = PlacementTests.node(id, cpus: 32, memoryGiB: 64)
        n.description_p.gpus = gpus.enumerated().map { i, g in
            SwarmGPUDevice.with { $0.uuid = g.0; $0.index = UInt32(i); $0.model = g.1; $0.memoryMib = g.2 }
        }
        return n
    }

    static func gpuTasks(_ service: String, _ count: Int, gpus: UInt32, milli: UInt32, models: [String] = []) throws -> ([SwarmTask], TaskRequirements) {
        var spec = SwarmTaskSpec()
        spec.resources.gpu = .with { $0.count = gpus; $0.milli = milli; $0.models = models }
        let tasks = (0..<count).map { k in SwarmTask.with { $0.id = "\(service)-\(k)"; $0.serviceID = service; $0.spec = spec } }
        return (tasks, try TaskRequirements(serviceID: service, spec: spec))
    }

    @Test func fractionsShareWholeGPUsAreExclusiveAndUnitsReturn() throws {
        var engine = PlacementEngine()
        engine.setNode(Self.gpuNode("n1", [("GPU-a", "T4", 16_000), ("GPU-b", "T4", 16_000)]))
        let scorer = try PlacementTests.spread()

        // Two halves go to the same GPU (best fit), leaving the other whole.
        let (halves, halfReq) = try Self.gpuTasks("half", 2, gpus: 1, milli: 500)
        let r1 = engine.place(halves, requirements: halfReq, scorer: scorer)
        #expect(r1.assignments.count == 2)
        #expect(Set(r1.gpus.values.flatMap { $0.map(\.uuid) }) == ["GPU-a"])
        #expect(engine.nodes["n1"]!.gpus.map(\.freeMilli) == [0, 1000])

        // One whole GPU fits; a second does not, and the reason is the GPUs.
        let (wholes, wholeReq) = try Self.gpuTasks("whole", 2, gpus: 1, milli: 1000)
        let r2 = engine.place(wholes, requirements: wholeReq, scorer: scorer)
        #expect(r2.assignments.count == 1 && r2.gpus[r2.assignments[0].task]?.map(\.uuid) == ["GPU-b"])
        #expect(r2.unplaced.values.first?.contains("insufficient GPUs on 1 node") == true, "\(r2.unplaced)")

        // A task that ends gives its share back.
        var ended = halves[0]
        ended.nodeID = "n1"
        ended.assignedGpus = r1.gpus[halves[0].id]!
        engine.taskEnded(ended)
        #expect(engine.nodes["n1"]!.gpus.map(\.freeMilli) == [500, 0])

        // Models and memory: a V100-only task fits nowhere; a node refresh keeps accounting.
        let (v100, v100Req) = try Self.gpuTasks("v100", 1, gpus: 1, milli: 200, models: ["V100M32"])
        #expect(engine.place(v100, requirements: v100Req, scorer: scorer).assignments.isEmpty)
        engine.setNode(Self.gpuNode("n1", [("GPU-a", "T4", 16_000), ("GPU-b", "T4", 16_000)]))
        #expect(engine.nodes["n1"]!.gpus.map(\.freeMilli) == [500, 0])
    }

    /// A strategy written with the kit exports `prepare` only when it says it has one, so
    /// that the host builds no cluster view per pass for strategies that ignore it.
    @Test func kitStrategiesExportPrepareOnlyWhenTheyUseIt() throws {
        let registry = PluginRegistry()
        let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for name in ["spread", "binpack", "gpu", "fgd"] {
            try registry.load(file: dir.appendingPathComponent("libswarm-\(name).so").path)
        }
        #expect(try #require(registry.strategy("spread")).wantsPrepare == false)
        #expect(try #require(registry.strategy("binpack")).wantsPrepare == false)
        #expect(try #require(registry.strategy("gpu")).wantsPrepare == true)
        #expect(try #require(registry.strategy("fgd")).wantsPrepare == true)
    }

    /// The `gpu` strategy plugin of this build, loaded by file.
    static func gpuScorer() throws -> PluginScorer {
        let registry = PluginRegistry()
        let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        try registry.load(file: dir.appendingPathComponent("libswarm-gpu.so").path)
        return PluginScorer(try #require(registry.strategy("gpu")))
    }

    @Test func theGPUStrategyPluginChoosesDevicesThroughTheABI() throws {
        let gpu = try Self.gpuScorer()
        var engine = PlacementEngine()
        engine.setNode(Self.gpuNode("n1", [("GPU-a", "A10", 24_000), ("GPU-b", "A10", 24_000), ("GPU-c", "A10", 24_000)]))
        let (tasks, req) = try Self.gpuTasks("frac", 3, gpus: 1, milli: 300)
        // As the scheduler does each pass: the cluster and its workload (these tasks).
        gpu.prepare(&engine, workload: [(req, 3)])
        let r = engine.place(tasks, requirements: req, scorer: gpu)
        #expect(r.assignments.count == 3)
        // The first two fractions share a GPU; the third does not squeeze in there, which
        // would leave a 100-milli sliver no such task can use, and takes a fresh GPU.
        let uuids = { (id: String) in r.gpus[id]?.map(\.uuid) ?? [] }
        #expect(uuids("frac-0") == ["GPU-a"] && uuids("frac-1") == ["GPU-a"], "\(r.gpus)")
        #expect(uuids("frac-2") == ["GPU-b"], "\(r.gpus)")
        // A node without GPUs: a GPU task cannot go there; a CPU-only task prefers it to
        // any GPU node (at most 50 there, the sigmoid's midpoint in 100 steps).
        let cpuOnly = NodeInfo(node: PlacementTests.node("plain", cpus: 8))
        let cpuReq = try TaskRequirements(serviceID: "cpu", spec: SwarmTaskSpec())
        #expect(try #require(gpu.score(cpuReq, cpuOnly)) > 50)
        #expect(gpu.score(req, cpuOnly) == nil)
    }

    @Test func theGPUStrategySpreadsCPUOnlyTasksOverNodesWithoutGPUs() throws {
        let gpu = try Self.gpuScorer()
        var engine = PlacementEngine()
        engine.setNode(Self.gpuNode("a-gpu", [("GPU-a", "A10", 24_000), ("GPU-b", "A10", 24_000)]))
        for name in ["b-plain", "c-plain", "d-plain"] { engine.setNode(PlacementTests.node(name, cpus: 8)) }
        let spec = SwarmTaskSpec()
        let req = try TaskRequirements(serviceID: "web", spec: spec)
        let tasks = (0..<6).map { i in SwarmTask.with { $0.id = "web-\(i)"; $0.serviceID = "web"; $0.spec = spec } }
        gpu.prepare(&engine, workload: [(req, 6)])
        let r = engine.place(tasks, requirements: req, scorer: gpu)
        #expect(r.assignments.count == 6)
        // Two on each node without GPUs (ties would otherwise all go to the first node by
        // ID), none on the GPU node, which sorts first.
        var perNode: [String: Int] = [:]
        for (_, node) in r.assignments { perNode[node, default: 0] += 1 }
        #expect(perNode == ["b-plain": 2, "c-plain": 2, "d-plain": 2], "\(perNode)")
    }
}

struct GPUInventoryTests {
    @Test func nvidiaSMIOutputAndDeclaredGPUs() {
        let text = """
            GPU-6f1c1b5e-aaaa, 1, Tesla V100-SXM2-32GB, 32510, 00000000:1B:00.0
            GPU-0b9e22a1-bbbb, 0, NVIDIA A10, 23028, 00000000:3D:00.0
            this is not a gpu line
            """
        let (gpus, problems) = GPUInventory.parseNvidiaSMI(text)
        #expect(gpus.map(\.uuid) == ["GPU-0b9e22a1-bbbb", "GPU-6f1c1b5e-aaaa"])
        #expect(gpus.map(\.model) == ["A10", "V100M32"])
        #expect(gpus.map(\.memoryMib) == [23028, 32510])
        #expect(gpus.map(\.topologyGroup) == ["00000000:3D", "00000000:1B"])
        #expect(problems.count == 1 && problems[0].contains("line 3"))

        let declared = GPUInventory.declared(try! GenericResources.parse("fpga=2,gpu=GPU-x,gpu=GPU-y"))
        #expect(declared.gpus.map(\.uuid) == ["GPU-x", "GPU-y"] && declared.gpus.map(\.index) == [0, 1])
        #expect(declared.rest.map(\.kind) == ["fpga"])
    }
}

/// Placement preferences: SwarmKit's decision tree over node labels.
struct PlacementPreferenceTests {
    static func tasks(_ n: Int, prefs: [String]) throws -> ([SwarmTask], TaskRequirements) {
        var spec = SwarmTaskSpec()
        spec.placement.preferences = prefs.map { p in .with { $0.spread = p } }
        let tasks = (0..<n).map { k in SwarmTask.with { $0.id = "t\(k)"; $0.serviceID = "svc"; $0.spec = spec } }
        return (tasks, try TaskRequirements(serviceID: "svc", spec: spec))
    }

    @Test func tasksSpreadEvenlyOverLabelValuesThenOverNodes() throws {
        var engine = PlacementEngine()
        for (id, zone, rack) in [("a1", "a", "r1"), ("a2", "a", "r1"), ("a3", "a", "r2"), ("a4", "a", "r2"), ("b1", "b", "r1"), ("c1", "c", "r1")] {
            engine.setNode(PlacementTests.node(id, labels: ["zone": zone, "rack": rack]))
        }
        let zoneOf = Dictionary(uniqueKeysWithValues: engine.nodes.map { ($0.key, $0.value.labels["zone"]!) })
        let (tasks, req) = try Self.tasks(6, prefs: ["node.labels.zone"])
        var e1 = engine
        let r = e1.place(tasks, requirements: req, scorer: try PlacementTests.spread())
        let perZone = Dictionary(grouping: r.assignments, by: { zoneOf[$0.node]! }).mapValues(\.count)
        #expect(perZone == ["a": 2, "b": 2, "c": 2])
        // Within zone a the strategy spreads over its nodes.
        #expect(Set(r.assignments.filter { zoneOf[$0.node] == "a" }.map(\.node)).count == 2)

        // Two levels: zones first, then racks inside zone a.
        let (more, req2) = try Self.tasks(9, prefs: ["node.labels.zone", "node.labels.rack"])
        var e2 = engine
        let r2 = e2.place(more, requirements: req2, scorer: try PlacementTests.spread())
        let inA = r2.assignments.filter { zoneOf[$0.node] == "a" }.map { engine.nodes[$0.node]!.labels["rack"]! }
        #expect(inA.count == 3 && Set(inA) == ["r1", "r2"])
        #expect(throws: PlacementError.self) { try Self.tasks(1, prefs: ["node.hostname"]) }
    }
}
