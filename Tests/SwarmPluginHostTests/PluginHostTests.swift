import Foundation
import SwarmPluginABI
@testable import SwarmPluginHost
import Testing

/// Loads real shared libraries: the `spread` plugin built from Plugins/ by SwiftPM, and C
/// plugins compiled here with the system C compiler against swarm_plugin.h.
@Suite struct PluginHostTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var buildDir: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// Compiles `source` into `<dir>/<name>.so`.
    static func compileC(_ source: String, name: String, in dir: String) throws -> String {
        let c = "\(dir)/\(name).c"
        let so = "\(dir)/\(name).so"
        try source.write(toFile: c, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["cc", "-shared", "-fPIC", "-O1", "-I", repo.path + "/Sources/SwarmPluginABI/include", "-o", so, c]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "cc failed for \(name)")
        return so
    }

    static func tempDir() -> String {
        let d = NSTemporaryDirectory() + "swarm-plugins-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// A C plugin whose init does `body` (with `host`, `info` and `error` in scope).
    static func plugin(_ body: String, extra: String = "") -> String {
        """
        #include <math.h>
        #include <string.h>
        #include "swarm_plugin.h"
        \(extra)
        swarm_status swarm_plugin_init_v1(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error) {
            info->abi_major = SWARM_PLUGIN_ABI_MAJOR;
            info->abi_minor = SWARM_PLUGIN_ABI_MINOR;
            info->name = "test";
            info->version = "0.1";
            \(body)
        }
        """
    }

    static let zoneFilter = """
        static int32_t check(void *ctx, const swarm_task_view *t, const swarm_node_view *n) {
            for (size_t i = 0; i < n->labels_count; i++) {
                if (n->labels[i].key.len == 4 && memcmp(n->labels[i].key.data, "zone", 4) == 0)
                    return n->labels[i].value.len == 1 && n->labels[i].value.data[0] == 'a';
            }
            return 0;
        }
        static const char *explain(void *ctx, uint32_t rejected) { return "not in zone a"; }
        """

    func withNode(tasksOfService: UInt32, total: UInt32, failures: UInt32 = 0, zone: String? = nil,
                  _ body: (UnsafePointer<swarm_node_view>) -> Void) {
        let key = strdup("zone")!
        let value = strdup(zone ?? "")!
        defer { free(key); free(value) }
        var label = swarm_label(key: swarm_str(data: key, len: 4), value: swarm_str(data: value, len: strlen(value)))
        withUnsafePointer(to: &label) { labelPtr in
            var n = swarm_node_view()
            n.struct_size = MemoryLayout<swarm_node_view>.size
            n.tasks_of_service = tasksOfService
            n.tasks_total = total
            n.recent_failures_of_service = failures
            if zone != nil {
                n.labels = labelPtr
                n.labels_count = 1
            }
            withUnsafePointer(to: &n) { body($0) }
        }
    }

    func withTask(_ body: (UnsafePointer<swarm_task_view>) -> Void) {
        var t = swarm_task_view()
        t.struct_size = MemoryLayout<swarm_task_view>.size
        withUnsafePointer(to: &t) { body($0) }
    }

    @Test func swiftSpreadPluginLoadsAndRanksLikeSwarmKit() throws {
        let registry = PluginRegistry()
        let file = Self.buildDir.appendingPathComponent("libswarm-spread.so").path
        try registry.load(file: file)
        let spread = try #require(registry.strategy("spread"))
        #expect(spread.record == PluginRecord(name: "spread", kind: .strategy, plugin: "spread", version: "1.0.0",
                                              abiMajor: UInt32(SWARM_PLUGIN_ABI_MAJOR), abiMinor: UInt32(SWARM_PLUGIN_ABI_MINOR),
                                              file: file))
        var scores: [String: Double] = [:]
        withTask { task in
            withNode(tasksOfService: 2, total: 5) { scores["a"] = spread.score(task, $0) }
            withNode(tasksOfService: 1, total: 10) { scores["b"] = spread.score(task, $0) }
            withNode(tasksOfService: 1, total: 3) { scores["c"] = spread.score(task, $0) }
            withNode(tasksOfService: 0, total: 0, failures: 1) { scores["d"] = spread.score(task, $0) }
        }
        let ranked = scores.sorted { $0.value > $1.value }.map(\.key)
        #expect(ranked == ["c", "b", "a", "d"], "fewer failures, then fewer of the service, then fewer in total")
    }

    @Test func cFilterLoadsByNameAndExplains() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            static swarm_filter_v1 f = { sizeof(swarm_filter_v1), 0, check, explain };
            return host->register_filter(host->host_ctx, "zone-a", &f);
            """, extra: Self.zoneFilter), name: "zone", in: dir)
        let registry = PluginRegistry()
        try registry.load(file: so)
        let filter = try #require(registry.filter("zone-a"))
        var results: [Bool] = []
        withTask { task in
            withNode(tasksOfService: 0, total: 0, zone: "a") { results.append(filter.check(task, $0)) }
            withNode(tasksOfService: 0, total: 0, zone: "b") { results.append(filter.check(task, $0)) }
            withNode(tasksOfService: 0, total: 0) { results.append(filter.check(task, $0)) }
        }
        #expect(results == [true, false, false])
        #expect(filter.explain(rejected: 2) == "not in zone a")
        #expect(registry.names(.filter) == ["zone-a"])
    }

    /// A plugin built against ABI 1.0 has a shorter strategy table (it ends after score):
    /// the host accepts it, reads no further than its struct_size, and sees no prepare or
    /// assign_devices.
    @Test func anABI10StrategyTableStillLoads() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            swarm_strategy_v1 s;
            memset(&s, 0xAB, sizeof s);  /* garbage past the 1.0 fields must not be read */
            s.struct_size = offsetof(swarm_strategy_v1, score) + sizeof(void *);
            s.ctx = 0;
            s.score = score;
            info->abi_minor = 0;
            return host->register_strategy(host->host_ctx, "old", &s);
            """, extra: "#include <string.h>\nstatic double score(void *c, const swarm_task_view *t, const swarm_node_view *n) { return 7; }"),
            name: "old", in: dir)
        let registry = PluginRegistry()
        try registry.load(file: so)
        let old = try #require(registry.strategy("old"))
        #expect(!old.wantsPrepare)
        #expect(old.record.abiMinor == 0)
    }

    /// place_group (ABI 1.2) through the C boundary: the host reads the plugin's answer,
    /// and SWARM_DECLINED means "no answer".
    @Test func aCPlaceGroupAnswersOrDeclines() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            swarm_strategy_v1 s = {0};
            s.struct_size = sizeof s;
            s.score = score;
            s.place_group = place_group;
            return host->register_strategy(host->host_ctx, "pairs", &s);
            """, extra: """
            static double score(void *c, const swarm_task_view *t, const swarm_node_view *n) { return 1; }
            /* Two tasks per node, last node first; declines groups larger than twice the nodes. */
            static swarm_status place_group(void *c, const swarm_task_view *t, size_t count,
                                            const swarm_node_view *const *nodes, size_t n, int32_t *out) {
                if (count > 2 * n) return SWARM_DECLINED;
                for (size_t i = 0; i < count; i++) out[i] = (int32_t)(n - 1 - i / 2);
                return SWARM_OK;
            }
            """), name: "pairs", in: dir)
        let registry = PluginRegistry()
        try registry.load(file: so)
        let pairs = try #require(registry.strategy("pairs"))
        #expect(pairs.wantsPlaceGroup)
        var task = swarm_task_view()
        task.struct_size = MemoryLayout<swarm_task_view>.size
        var node = swarm_node_view()
        node.struct_size = MemoryLayout<swarm_node_view>.size
        withUnsafePointer(to: &node) { n in
            withUnsafePointer(to: &task) { t in
                #expect(pairs.placeGroup(t, count: 5, feasible: [n, n, n]) == [2, 2, 1, 1, 0])
                #expect(pairs.placeGroup(t, count: 7, feasible: [n, n, n]) == nil)
            }
        }
    }

    @Test func wrongMajorVersionIsRefusedNamingTheFile() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            static swarm_strategy_v1 s = { sizeof(swarm_strategy_v1), 0, score };
            host->register_strategy(host->host_ctx, "future", &s);
            info->abi_major = SWARM_PLUGIN_ABI_MAJOR + 1;
            return SWARM_OK;
            """, extra: "static double score(void *c, const swarm_task_view *t, const swarm_node_view *n) { return 1; }"),
            name: "future", in: dir)
        let registry = PluginRegistry()
        let error = #expect(throws: PluginLoadError.self) { try registry.load(file: so) }
        #expect(error?.file == so)
        #expect(error?.description.contains("built for plugin ABI \(SWARM_PLUGIN_ABI_MAJOR + 1).\(SWARM_PLUGIN_ABI_MINOR)") == true)
        #expect(registry.strategy("future") == nil, "nothing from a refused plugin is kept")
    }

    @Test func missingEntrySymbolIsRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC("int not_the_entry(void) { return 0; }", name: "noentry", in: dir)
        let error = #expect(throws: PluginLoadError.self) { try PluginRegistry().load(file: so) }
        #expect(error?.description == "plugin \(so): missing entry symbol swarm_plugin_init_v1")
    }

    @Test func failingInitIsRefusedWithThePluginsMessage() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            *error = "no GPU driver found";
            return SWARM_ERR_FAILED;
            """), name: "failing", in: dir)
        let error = #expect(throws: PluginLoadError.self) { try PluginRegistry().load(file: so) }
        #expect(error?.description == "plugin \(so): initialisation failed: no GPU driver found")
    }

    @Test func duplicateNameIsRefusedAndTheFirstKept() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = PluginRegistry()
        try registry.load(file: Self.buildDir.appendingPathComponent("libswarm-spread.so").path)
        let so = try Self.compileC(Self.plugin("""
            static swarm_strategy_v1 s = { sizeof(swarm_strategy_v1), 0, score };
            return host->register_strategy(host->host_ctx, "spread", &s);
            """, extra: "static double score(void *c, const swarm_task_view *t, const swarm_node_view *n) { return 42; }"),
            name: "impostor", in: dir)
        let error = #expect(throws: PluginLoadError.self) { try registry.load(file: so) }
        #expect(error?.description.contains("duplicate strategy name \"spread\" (already registered by") == true)
        #expect(registry.strategy("spread")?.record.plugin == "spread")
    }

    @Test func invalidRegistrationsAreRefused() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try Self.compileC(Self.plugin("""
            static swarm_strategy_v1 s = { sizeof(swarm_strategy_v1), 0, 0 };
            host->register_strategy(host->host_ctx, "no-score", &s);
            return SWARM_OK;
            """), name: "invalid", in: dir)
        let error = #expect(throws: PluginLoadError.self) { try PluginRegistry().load(file: so) }
        #expect(error?.description.contains("strategy \"no-score\": no score function") == true)
        let badName = try Self.compileC(Self.plugin("""
            static swarm_filter_v1 f = { sizeof(swarm_filter_v1), 0, check, explain };
            host->register_filter(host->host_ctx, "Bad Name!", &f);
            return SWARM_OK;
            """, extra: Self.zoneFilter), name: "badname", in: dir)
        let nameError = #expect(throws: PluginLoadError.self) { try PluginRegistry().load(file: badName) }
        #expect(nameError?.description.contains("invalid filter name \"Bad Name!\"") == true)
    }

    @Test func directoryLoadKeepsGoodPluginsAndReportsEveryBadOne() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try Self.compileC(Self.plugin("""
            static swarm_filter_v1 f = { sizeof(swarm_filter_v1), 0, check, explain };
            return host->register_filter(host->host_ctx, "zone-a", &f);
            """, extra: Self.zoneFilter), name: "a-good", in: dir)
        _ = try Self.compileC(Self.plugin("return SWARM_ERR_FAILED;"), name: "b-failing", in: dir)
        try Data("not an ELF file".utf8).write(to: URL(fileURLWithPath: "\(dir)/c-garbage.so"))
        try FileManager.default.copyItem(atPath: Self.buildDir.appendingPathComponent("libswarm-spread.so").path,
                                         toPath: "\(dir)/d-spread.so")
        let registry = PluginRegistry()
        let errors = registry.loadDirectory(dir)
        #expect(errors.map(\.file).sorted() == ["\(dir)/b-failing.so", "\(dir)/c-garbage.so"])
        #expect(errors.first { $0.file.hasSuffix("c-garbage.so") }?.reason.hasPrefix("cannot load") == true)
        #expect(registry.names(.filter) == ["zone-a"])
        #expect(registry.names(.strategy) == ["spread"])
        #expect(registry.records.map(\.name).sorted() == ["spread", "zone-a"])
    }
}
