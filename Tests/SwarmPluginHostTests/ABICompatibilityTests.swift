import Foundation
import Logging
import SwarmPluginABI
@testable import SwarmPluginHost
import Synchronization
import Testing

/// The ABI's append-only rule, its one rule for strings a plugin returns, private strategy
/// instances, and plugin log lines, each with real C plugins compiled here or plugins this
/// package builds.
@Suite struct ABICompatibilityTests {
    /// Registers tables that end where the plugin's struct_size says, right before a page
    /// the process may not read: a host that copied a whole host-sized table would fault.
    static let shortTables = """
        #include <stddef.h>
        #include <string.h>
        #include <sys/mman.h>
        #include <unistd.h>
        #include "swarm_plugin.h"

        static void *at_page_end(const void *table, size_t size) {
            long page = sysconf(_SC_PAGESIZE);
            char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mem == MAP_FAILED) return NULL;
            mprotect(mem + page, page, PROT_NONE);
            char *dst = mem + page - size;
            memcpy(dst, table, size);
            mprotect(mem, page, PROT_READ);
            return dst;
        }

        static int32_t check(void *ctx, const swarm_task_view *t, const swarm_node_view *n) { return n->tasks_total < 3; }

        static _Thread_local char message[64];
        static swarm_status refuse(void *ctx, const swarm_exec_task *t, char **error) {
            strcpy(message, "no room for this task");
            *error = message;
            return SWARM_ERR_FAILED;
        }
        static swarm_status ok(void *ctx, const swarm_exec_task *t, char **error) { return SWARM_OK; }
        static swarm_status status(void *ctx, swarm_str id, swarm_exec_status *out, char **error) { out->exited = 1; out->exit_code = 7; return SWARM_OK; }
        static swarm_status shut(void *ctx, swarm_str id, int64_t grace, char **error) { return SWARM_OK; }
        static swarm_status by_id(void *ctx, swarm_str id, char **error) { return SWARM_OK; }

        swarm_status swarm_plugin_init_v1(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error) {
            info->abi_major = SWARM_PLUGIN_ABI_MAJOR;
            info->abi_minor = 0;
            info->name = "short-tables";
            info->version = "1.0";
            /* A filter from before explain, an executor from before free_error. */
            size_t fsize = offsetof(swarm_filter_v1, explain);
            swarm_filter_v1 f = {fsize, NULL, check, NULL};
            const swarm_filter_v1 *fp = at_page_end(&f, fsize);
            size_t esize = offsetof(swarm_executor_v1, free_error);
            swarm_executor_v1 e = {esize, NULL, refuse, ok, status, shut, by_id, by_id, NULL};
            const swarm_executor_v1 *ep = at_page_end(&e, esize);
            if (!fp || !ep) { *error = "mmap failed"; return SWARM_ERR_FAILED; }
            swarm_status s = host->register_filter(host->host_ctx, "short-filter", fp);
            if (s != SWARM_OK) return s;
            return host->register_executor(host->host_ctx, "short-executor", ep);
        }
        """

    @Test func filtersAndExecutorsBuiltAgainstShorterTablesLoadAndWork() throws {
        let dir = PluginHostTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let so = try PluginHostTests.compileC(Self.shortTables, name: "short", in: dir)
        let registry = PluginRegistry()
        try registry.load(file: so)
        let filter = try #require(registry.filter("short-filter"))
        #expect(registry.records.first { $0.name == "short-filter" }?.abiMinor == 0)
        // check works; explain, which the table does not have, falls back to the host's text.
        var node = swarm_node_view()
        node.struct_size = MemoryLayout<swarm_node_view>.size
        var task = swarm_task_view()
        task.struct_size = MemoryLayout<swarm_task_view>.size
        node.tasks_total = 1
        #expect(withUnsafePointer(to: task) { t in withUnsafePointer(to: node) { filter.check(t, $0) } })
        node.tasks_total = 5
        #expect(!withUnsafePointer(to: task) { t in withUnsafePointer(to: node) { filter.check(t, $0) } })
        #expect(filter.explain(rejected: 2) == "2 nodes rejected by short-filter")

        // The executor's error string is the plugin's: copied, and not freed (no free_error).
        let executor = ExecutorClient(try #require(registry.executor("short-executor")))
        #expect(throws: ExecutorCallError(executor: "short-executor", operation: "prepare", message: "no room for this task")) {
            try executor.prepare(taskID: "t1", serviceID: "s1", workDir: dir, taskProto: [])
        }
        try executor.start(taskID: "t1", serviceID: "s1", workDir: dir, taskProto: [])
        #expect(try executor.status(taskID: "t1") == ExecutorTaskStatus(exited: true, exitCode: 7, pid: 0))
        // ABI 1.5's fields read as absent: polled, always available, no health.
        #expect(!executor.notifies && executor.unavailable() == nil)
    }

    /// An executor of ABI 1.5: it says why it cannot run tasks, reports the engine's
    /// health with a note, and tells the host when a task changed (from its own thread).
    @Test func anExecutorOf15NotifiesReportsHealthAndAvailability() async throws {
        let source = """
            #include "swarm_plugin.h"
            #include <pthread.h>
            #include <string.h>
            static const swarm_host_v1 *the_host;
            static swarm_status ok(void *ctx, const swarm_exec_task *t, char **error) { return SWARM_OK; }
            static swarm_status status(void *ctx, swarm_str id, swarm_exec_status *out, char **error) {
                out->health = SWARM_HEALTH_UNHEALTHY;
                strcpy(out->message, "no pong");
                return SWARM_OK;
            }
            static swarm_status shut(void *ctx, swarm_str id, int64_t grace, char **error) { return SWARM_OK; }
            static swarm_status by_id(void *ctx, swarm_str id, char **error) { return SWARM_OK; }
            static void *later(void *arg) {
                swarm_str id = {"t-15", 4};
                the_host->task_changed(the_host->host_ctx, id);
                return NULL;
            }
            static swarm_status start(void *ctx, const swarm_exec_task *t, char **error) {
                pthread_t thread;
                pthread_create(&thread, NULL, later, NULL);
                pthread_detach(thread);
                return SWARM_OK;
            }
            static swarm_status available(void *ctx, char **error) {
                static char why[] = "the engine is asleep";
                *error = why;
                return SWARM_ERR_FAILED;
            }
            swarm_status swarm_plugin_init_v1(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error) {
                info->abi_major = SWARM_PLUGIN_ABI_MAJOR; info->abi_minor = 5; info->name = "new"; info->version = "1";
                the_host = host;
                swarm_executor_v1 e = {sizeof(swarm_executor_v1), NULL, ok, start, status, shut, by_id, by_id, NULL,
                                       available, SWARM_EXEC_NOTIFIES};
                return host->register_executor(host->host_ctx, "new-executor", &e);
            }
            """
        let dir = PluginHostTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = PluginRegistry()
        try registry.load(file: try PluginHostTests.compileC(source, name: "new15", in: dir))
        let executor = ExecutorClient(try #require(registry.executor("new-executor")))
        #expect(executor.notifies)
        #expect(executor.unavailable() == "the engine is asleep")
        let status = try executor.status(taskID: "t-15")
        #expect(status.health == Int32(SWARM_HEALTH_UNHEALTHY) && status.message == "no pong" && !status.exited)
        let (noticed, notice) = AsyncStream.makeStream(of: Void.self)
        TaskChanges.watch("t-15") { notice.yield() }
        defer { TaskChanges.unwatch("t-15") }
        try executor.start(taskID: "t-15", serviceID: "s", workDir: dir, taskProto: [])
        var it = noticed.makeAsyncIterator()
        #expect(await it.next() != nil, "the plugin's thread woke the watcher")
    }

    @Test func tablesShorterThanTheFirstVersionAreRefusedWithTheSizes() throws {
        let dir = PluginHostTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = PluginHostTests.plugin("""
            swarm_filter_v1 f = {offsetof(swarm_filter_v1, check), NULL, check, NULL};
            return host->register_filter(host->host_ctx, "tiny", &f);
            """, extra: """
            #include <stddef.h>
            static int32_t check(void *ctx, const swarm_task_view *t, const swarm_node_view *n) { return 1; }
            """)
        let registry = PluginRegistry()
        let error = #expect(throws: PluginLoadError.self) { try registry.load(file: try PluginHostTests.compileC(source, name: "tiny", in: dir)) }
        #expect(error?.reason.contains("filter \"tiny\": vtable struct_size 16 is too small (at least 24)") == true, "\(String(describing: error))")
        #expect(registry.filter("tiny") == nil)
    }

    /// A strategy from this package's build, in a registry of its own.
    static func builtStrategy(_ name: String, _ registry: PluginRegistry = PluginRegistry()) throws -> (PluginRegistry, LoadedStrategy) {
        try registry.load(file: PluginHostTests.buildDir.appendingPathComponent("libswarm-\(name).so").path)
        return (registry, try #require(registry.strategy(name)))
    }

    /// `count` scores from `strategy` (random ignores the views it is given).
    static func scores(_ strategy: LoadedStrategy, _ count: Int) -> [Double] {
        var task = swarm_task_view()
        task.struct_size = MemoryLayout<swarm_task_view>.size
        var node = swarm_node_view()
        node.struct_size = MemoryLayout<swarm_node_view>.size
        return (0..<count).map { _ in withUnsafePointer(to: task) { t in withUnsafePointer(to: node) { strategy.score(t, $0) } } }
    }

    @Test func aPrivateInstanceLeavesTheLiveOnesStateAlone() throws {
        let (_, alone) = try Self.builtStrategy("random")
        let expected = Self.scores(alone, 6)
        #expect(Set(expected).count == 6, "random draws differ")

        let (registry, live) = try Self.builtStrategy("random")
        var seen = Self.scores(live, 3)
        let simulated = try registry.withPrivateInstance(ofStrategy: "random") { own in Self.scores(own, 5) }
        seen += Self.scores(live, 3)
        #expect(seen == expected, "the simulation did not advance the live instance's generator")
        #expect(simulated == Array(expected.prefix(5)), "the private instance starts from its own seed")
        // The private instance is kept, and goes on from where it stopped.
        let again = try registry.withPrivateInstance(ofStrategy: "random") { own in Self.scores(own, 1) }
        let (_, fresh) = try Self.builtStrategy("random")
        #expect(again == [Self.scores(fresh, 6)[5]])
    }

    @Test func aStatefulStrategyFromAnOlderPluginIsNotSimulated() throws {
        let dir = PluginHostTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = """
            #include "swarm_plugin.h"
            static double score(void *ctx, const swarm_task_view *t, const swarm_node_view *n) { return 1; }
            static void prepare(void *ctx, const swarm_cluster_view *c) {}
            swarm_status swarm_plugin_init_v1(const swarm_host_v1 *host, swarm_plugin_info *info, const char **error) {
                info->abi_major = 1; info->abi_minor = 3; info->name = "old"; info->version = "1";
                swarm_strategy_v1 s = {sizeof(swarm_strategy_v1), 0, score, prepare, 0, 0};
                return host->register_strategy(host->host_ctx, "old-stateful", &s);
            }
            """
        let registry = PluginRegistry()
        try registry.load(file: try PluginHostTests.compileC(source, name: "old", in: dir))
        let error = #expect(throws: PluginRegistry.PrivateInstanceError.self) {
            try registry.withPrivateInstance(ofStrategy: "old-stateful") { _ in }
        }
        #expect(error?.description.contains("rebuild it against swarm_plugin.h 1.4") == true)
        #expect(throws: PluginRegistry.PrivateInstanceError.self) { try registry.withPrivateInstance(ofStrategy: "nope") { _ in } }
        // spread keeps no state: the registered instance serves simulations.
        let (spreadRegistry, spread) = try Self.builtStrategy("spread")
        let used = try spreadRegistry.withPrivateInstance(ofStrategy: "spread") { $0.record }
        #expect(used == spread.record)
    }

    /// Log lines captured in memory.
    final class Captured: LogHandler, @unchecked Sendable {
        let lines = Mutex<[(Logger.Level, String, String)]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let plugin = (event.metadata?["plugin"] ?? metadata["plugin"]).map { "\($0)" } ?? ""
            lines.withLock { $0.append((event.level, "\(event.message)", plugin)) }
        }
    }

    @Test func pluginLogLinesGoThroughTheHostsLoggerWithThePluginsName() throws {
        let dir = PluginHostTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let source = PluginHostTests.plugin("""
            saved = host;
            host->log(host->host_ctx, SWARM_LOG_WARNING, "starting up");
            swarm_filter_v1 f = {sizeof(swarm_filter_v1), NULL, check, NULL};
            return host->register_filter(host->host_ctx, "chatty", &f);
            """, extra: """
            static const swarm_host_v1 *saved;
            static int32_t check(void *ctx, const swarm_task_view *t, const swarm_node_view *n) {
                saved->log(saved->host_ctx, SWARM_LOG_ERROR, "checked a node");
                return 1;
            }
            """)
        let captured = Captured()
        let registry = PluginRegistry(logger: Logger(label: "test.plugins") { _ in captured })
        try registry.load(file: try PluginHostTests.compileC(source, name: "chatty", in: dir))
        // After init, the plugin still holds the host table and logs through it.
        var node = swarm_node_view()
        node.struct_size = MemoryLayout<swarm_node_view>.size
        var task = swarm_task_view()
        task.struct_size = MemoryLayout<swarm_task_view>.size
        let filter = try #require(registry.filter("chatty"))
        _ = withUnsafePointer(to: task) { t in withUnsafePointer(to: node) { filter.check(t, $0) } }
        let got = captured.lines.withLock { $0 }
        #expect(got.count == 2)
        #expect(got.first?.0 == .warning && got.first?.1 == "starting up" && got.first?.2 == "chatty.so")
        #expect(got.last?.0 == .error && got.last?.1 == "checked a node" && got.last?.2 == "test")
    }
}
