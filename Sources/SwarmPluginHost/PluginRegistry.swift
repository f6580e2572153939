import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif
import SwarmPluginABI
import Synchronization

/// What a plugin registers.
public enum PluginKind: String, Sendable, CaseIterable {
    case filter, strategy, executor
}

/// One registered name, for `swarmctl plugin ls` and the node description.
public struct PluginRecord: Sendable, Equatable {
    public var name: String
    public var kind: PluginKind
    /// The plugin (library) that registered it, and its version.
    public var plugin: String
    public var version: String
    public var abiMajor: UInt32
    public var abiMinor: UInt32
    public var file: String
}

/// Why a plugin file was refused. The message always names the file.
public struct PluginLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var reason: String

    public var description: String { "plugin \(file): \(reason)" }
}

/// A registered strategy: the plugin's vtable, called without copying anything.
public struct LoadedStrategy: @unchecked Sendable {
    public let record: PluginRecord
    let ctx: UnsafeMutableRawPointer?
    let scoreFn: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_task_view>?, UnsafePointer<swarm_node_view>?) -> Double
    let prepareFn: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_cluster_view>?) -> Void)?
    let assignFn: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_task_view>?, UnsafePointer<swarm_node_view>?,
                                   UnsafeMutablePointer<UInt32>?, Int) -> Int32)?
    let placeGroupFn: (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<swarm_task_view>?, Int,
                                       UnsafePointer<UnsafePointer<swarm_node_view>?>?, Int, UnsafeMutablePointer<Int32>?) -> swarm_status)?

    init(record: PluginRecord, vtable: swarm_strategy_v1) {
        self.record = record
        ctx = vtable.ctx
        scoreFn = vtable.score!  // checked when registered
        // Fields a 1.0 plugin's smaller table lacks were zeroed when it was copied.
        prepareFn = vtable.prepare
        assignFn = vtable.assign_devices
        placeGroupFn = vtable.place_group
    }

    /// Whether the plugin places whole groups (ABI 1.2).
    public var wantsPlaceGroup: Bool { placeGroupFn != nil }

    /// The plugin's placement of a group: for each task a position in `feasible` (-1 for
    /// none), or nil when it declines the group or has no place_group.
    public func placeGroup(_ task: UnsafePointer<swarm_task_view>, count: Int,
                           feasible: [UnsafePointer<swarm_node_view>?]) -> [Int32]? {
        guard let placeGroupFn else { return nil }
        var out = [Int32](repeating: -1, count: count)
        let status = feasible.withUnsafeBufferPointer { nodes in
            out.withUnsafeMutableBufferPointer { o in placeGroupFn(ctx, task, count, nodes.baseAddress, nodes.count, o.baseAddress) }
        }
        return status == SWARM_OK ? out : nil
    }

    /// The plugin's score; non-finite values mean "skip this node".
    public func score(_ task: UnsafePointer<swarm_task_view>, _ node: UnsafePointer<swarm_node_view>) -> Double {
        scoreFn(ctx, task, node)
    }

    /// Whether the plugin wants ``prepare(_:)`` calls.
    public var wantsPrepare: Bool { prepareFn != nil }

    /// Hands the plugin the cluster view for the coming scheduling pass (ABI 1.1).
    public func prepare(_ cluster: UnsafePointer<swarm_cluster_view>) {
        prepareFn?(ctx, cluster)
    }

    /// The GPUs the plugin chooses for `task` on `node` (positions in the node's GPU list),
    /// or nil when it leaves the choice to the host, has no such function, or answers with
    /// something invalid: the wrong number of GPUs, an index out of range, or a repeat.
    public func assignDevices(_ task: UnsafePointer<swarm_task_view>, _ node: UnsafePointer<swarm_node_view>) -> [UInt32]? {
        guard let assignFn else { return nil }
        let want = Int(task.pointee.gpu_count)
        guard want > 0 else { return nil }
        var out = [UInt32](repeating: 0, count: max(want, 8))
        let n = out.withUnsafeMutableBufferPointer { assignFn(ctx, task, node, $0.baseAddress, $0.count) }
        guard n == want else { return nil }
        let chosen = Array(out.prefix(want))
        guard chosen.allSatisfy({ Int($0) < node.pointee.gpus_count }), Set(chosen).count == want else { return nil }
        return chosen
    }
}

public struct LoadedFilter: @unchecked Sendable {
    public let record: PluginRecord
    let vtable: swarm_filter_v1

    public func check(_ task: UnsafePointer<swarm_task_view>, _ node: UnsafePointer<swarm_node_view>) -> Bool {
        vtable.check!(vtable.ctx, task, node) != 0  // checked when registered
    }

    /// The plugin's explanation for `rejected` nodes, or a generic one.
    public func explain(rejected: Int) -> String {
        if let explain = vtable.explain, let text = explain(vtable.ctx, UInt32(clamping: rejected)) {
            return String(cString: text)
        }
        return "\(rejected) node\(rejected == 1 ? "" : "s") rejected by \(record.name)"
    }
}

public struct LoadedExecutor: @unchecked Sendable {
    public let record: PluginRecord
    let vtable: swarm_executor_v1
}

/// The plugins a node loaded, by kind and name. Loading happens at start-up; afterwards
/// the registry is only read.
public final class PluginRegistry: Sendable {
    struct State {
        var strategies: [String: LoadedStrategy] = [:]
        var filters: [String: LoadedFilter] = [:]
        var executors: [String: LoadedExecutor] = [:]
        var records: [PluginRecord] = []
        /// The library each strategy came from (for a private instance).
        var libraries: [String: PluginLibrary] = [:]
    }

    private let state = Mutex(State())
    /// Private strategy instances for simulations, by name; held while one runs.
    private let simulation = Mutex<[String: LoadedStrategy]>([:])
    /// Plugins' log lines go here, with the plugin's name in the metadata.
    let logger: Logger

    /// - Parameter logger: where plugins' log lines go; each carries the plugin's name as
    ///   `plugin` metadata.
    public init(logger: Logger = Logger(label: "swarm.plugins")) {
        self.logger = logger
    }

    public var records: [PluginRecord] { state.withLock { $0.records } }
    public func strategy(_ name: String) -> LoadedStrategy? { state.withLock { $0.strategies[name] } }
    public func filter(_ name: String) -> LoadedFilter? { state.withLock { $0.filters[name] } }
    public func executor(_ name: String) -> LoadedExecutor? { state.withLock { $0.executors[name] } }
    public func names(_ kind: PluginKind) -> [String] {
        state.withLock { s in
            switch kind {
            case .strategy: return s.strategies.keys.sorted()
            case .filter: return s.filters.keys.sorted()
            case .executor: return s.executors.keys.sorted()
            }
        }
    }

    /// Loads every `*.so` in `directory`, in name order. A file that fails is reported and
    /// skipped; the others are kept.
    @discardableResult
    public func loadDirectory(_ directory: String) -> [PluginLoadError] {
        guard let dir = opendir(directory) else {
            return [PluginLoadError(file: directory, reason: "cannot open plugin directory: \(String(cString: strerror(errno)))")]
        }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasSuffix(".so") || name.hasSuffix(".plugin.json") { names.append(name) }
        }
        closedir(dir)
        // Libraries that manifests name hold plain functions, not an entry point.
        let declared = Set(names.filter { $0.hasSuffix(".plugin.json") }.compactMap { m in
            (try? DeclarativePlugin.manifest(at: directory + "/" + m)).map { ($0.library as NSString).lastPathComponent }
        })
        var errors: [PluginLoadError] = []
        for name in names.sorted() where !declared.contains(name) {
            do {
                if name.hasSuffix(".plugin.json") {
                    try load(manifest: directory + "/" + name)
                } else {
                    try load(file: directory + "/" + name)
                }
            } catch {
                errors.append(error)
            }
        }
        return errors
    }

    /// Registers one filter or strategy that is not loaded through the entry point (a
    /// declarative plugin), refusing a name already taken.
    func install(_ record: PluginRecord, _ vtable: Staging.VTable) throws(PluginLoadError) {
        try state.withLock { s throws(PluginLoadError) in
            let taken: PluginRecord?
            switch vtable {
            case .strategy: taken = s.strategies[record.name]?.record
            case .filter: taken = s.filters[record.name]?.record
            case .executor: taken = s.executors[record.name]?.record
            }
            if let taken {
                throw PluginLoadError(file: record.file, reason: "duplicate \(record.kind.rawValue) name \"\(record.name)\" (already registered by \(taken.file))")
            }
            switch vtable {
            case .strategy(let v): s.strategies[record.name] = LoadedStrategy(record: record, vtable: v)
            case .filter(let v): s.filters[record.name] = LoadedFilter(record: record, vtable: v)
            case .executor(let v): s.executors[record.name] = LoadedExecutor(record: record, vtable: v)
            }
            s.records.append(record)
        }
    }

    /// Loads one plugin file. Nothing it registered is kept if any step fails.
    public func load(file: String) throws(PluginLoadError) {
        func fail(_ reason: String) -> PluginLoadError { PluginLoadError(file: file, reason: reason) }
        // Plugins are never unloaded, so the handle is deliberately kept open.
        guard let handle = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            throw fail("cannot load: \(dlerror().map { String(cString: $0) } ?? "unknown error")")
        }
        guard let symbol = dlsym(handle, SWARM_PLUGIN_ENTRY) else {
            throw fail("missing entry symbol \(SWARM_PLUGIN_ENTRY)")
        }
        let library = PluginLibrary(file: file, entry: unsafeBitCast(symbol, to: swarm_plugin_init_v1_fn.self), logger: logger)
        let staging = try library.initialize()
        try state.withLock { s throws(PluginLoadError) in
            for item in staging.items {
                let taken: PluginRecord?
                switch item.kind {
                case .strategy: taken = s.strategies[item.name]?.record
                case .filter: taken = s.filters[item.name]?.record
                case .executor: taken = s.executors[item.name]?.record
                }
                if let taken {
                    throw fail("duplicate \(item.kind.rawValue) name \"\(item.name)\" (already registered by \(taken.file))")
                }
            }
            for item in staging.items {
                let record = library.record(item)
                switch item.vtable {
                case .strategy(let v): s.strategies[item.name] = LoadedStrategy(record: record, vtable: v)
                case .filter(let v): s.filters[item.name] = LoadedFilter(record: record, vtable: v)
                case .executor(let v): s.executors[item.name] = LoadedExecutor(record: record, vtable: v)
                }
                s.records.append(record)
                if item.kind == .strategy { s.libraries[item.name] = library }
            }
        }
    }

    /// Why a strategy cannot be given to a simulation.
    public struct PrivateInstanceError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Runs `body` with an instance of the strategy `name` that the scheduler never calls,
    /// so that a simulation (a dry run) neither calls the live instance concurrently with
    /// the scheduler nor changes its state (a seeded generator, a prepared pass).
    ///
    /// - A strategy without `prepare` keeps no state between calls, and its `score` may be
    ///   called from several threads at once: the registered instance is used.
    /// - A strategy with `prepare` from a plugin built against ABI 1.4 or later gets a
    ///   private instance, made by calling the plugin's entry point again (the ABI's rule
    ///   for repeated initialisation), once, and kept for later simulations.
    /// - Any other strategy is refused with the reason.
    ///
    /// Simulations are serialised: `body` runs under the registry's simulation lock.
    public func withPrivateInstance<R>(ofStrategy name: String,
                                       _ body: (LoadedStrategy) throws -> R) throws -> R {
        guard let live = strategy(name) else {
            throw PrivateInstanceError(description: "strategy \"\(name)\" is not loaded on this manager")
        }
        if !live.wantsPrepare { return try simulation.withLock { _ in try body(live) } }
        return try simulation.withLock { instances in
            if let own = instances[name] { return try body(own) }
            guard let library = state.withLock({ $0.libraries[name] }),
                  live.record.abiMajor == UInt32(SWARM_PLUGIN_ABI_MAJOR), live.record.abiMinor >= 4 else {
                throw PrivateInstanceError(description: "strategy \"\(name)\" keeps state between calls and its plugin (ABI \(live.record.abiMajor).\(live.record.abiMinor)) cannot make a second instance; rebuild it against swarm_plugin.h 1.4 or later to simulate it")
            }
            let staging: Staging
            do {
                staging = try library.initialize()
            } catch {
                throw PrivateInstanceError(description: "strategy \"\(name)\": a second initialisation failed: \(error)")
            }
            guard let item = staging.items.first(where: { $0.kind == .strategy && $0.name == name }),
                  case .strategy(let v) = item.vtable else {
                throw PrivateInstanceError(description: "strategy \"\(name)\": a second initialisation did not register it again")
            }
            let own = LoadedStrategy(record: library.record(item), vtable: v)
            instances[name] = own
            return try body(own)
        }
    }
}

/// One plugin file, kept for the life of the process (plugins are never unloaded): its
/// entry point, the host table handed to it, and the logger its log lines go to. The host
/// table and its context stay valid for good, so that a plugin may log at any time.
final class PluginLibrary: @unchecked Sendable {
    let file: String
    let entry: swarm_plugin_init_v1_fn
    /// Named after the file until the plugin says its name.
    private let loggerBox: Mutex<Logger>
    var logger: Logger { loggerBox.withLock { $0 } }
    private(set) var info = swarm_plugin_info()
    /// The registrations of the initialisation in progress (entry points are called under
    /// `lock`, one at a time).
    private var staging: Staging?
    private let lock = NSLock()
    private let host = UnsafeMutablePointer<swarm_host_v1>.allocate(capacity: 1)

    init(file: String, entry: swarm_plugin_init_v1_fn, logger: Logger) {
        self.file = file
        self.entry = entry
        var logger = logger
        logger[metadataKey: "plugin"] = "\((file as NSString).lastPathComponent)"
        loggerBox = Mutex(logger)
        var h = swarm_host_v1()
        h.struct_size = MemoryLayout<swarm_host_v1>.size
        h.abi_major = UInt32(SWARM_PLUGIN_ABI_MAJOR)
        h.abi_minor = UInt32(SWARM_PLUGIN_ABI_MINOR)
        h.register_filter = { ctx, name, vtable in
            PluginLibrary.from(ctx).add(.filter, name, vtable.map { .filter(Staging.copyTable($0, into: swarm_filter_v1())) })
        }
        // Each table is copied only as far as the plugin's struct_size says: a table built
        // against an older header is shorter, and the fields it lacks stay zero (NULL).
        h.register_strategy = { ctx, name, vtable in
            PluginLibrary.from(ctx).add(.strategy, name, vtable.map { .strategy(Staging.copyTable($0, into: swarm_strategy_v1())) })
        }
        h.register_executor = { ctx, name, vtable in
            PluginLibrary.from(ctx).add(.executor, name, vtable.map { .executor(Staging.copyTable($0, into: swarm_executor_v1())) })
        }
        h.log = { ctx, level, message in
            guard let message else { return }
            PluginLibrary.from(ctx).log(level, String(cString: message))
        }
        h.task_changed = { _, id in
            TaskChanges.post(String(decoding: UnsafeRawBufferPointer(start: id.data, count: id.len), as: UTF8.self))
        }
        host.initialize(to: h)
        host.pointee.host_ctx = Unmanaged.passRetained(self).toOpaque()  // kept for good
    }

    static func from(_ ctx: UnsafeMutableRawPointer?) -> PluginLibrary {
        Unmanaged<PluginLibrary>.fromOpaque(ctx!).takeUnretainedValue()
    }

    func add(_ kind: PluginKind, _ name: UnsafePointer<CChar>?, _ vtable: Staging.VTable?) -> swarm_status {
        guard let staging else {
            log(SWARM_LOG_WARNING, "registered a \(kind.rawValue) outside its entry point; ignored")
            return SWARM_ERR_INVALID
        }
        return staging.add(kind, name, vtable)
    }

    func log(_ level: Int32, _ message: String) {
        switch level {
        case SWARM_LOG_DEBUG: logger.debug("\(message)")
        case SWARM_LOG_INFO: logger.info("\(message)")
        case SWARM_LOG_WARNING: logger.warning("\(message)")
        default: logger.error("\(message)")
        }
    }

    func record(_ item: Staging.Item) -> PluginRecord {
        PluginRecord(name: item.name, kind: item.kind, plugin: info.name.map { String(cString: $0) } ?? file,
                     version: info.version.map { String(cString: $0) } ?? "unknown",
                     abiMajor: info.abi_major, abiMinor: info.abi_minor, file: file)
    }

    /// Calls the entry point and checks what it registered. The error text of a failed
    /// init is the plugin's, copied at once (the ABI's rule for returned strings).
    func initialize() throws(PluginLoadError) -> Staging {
        func fail(_ reason: String) -> PluginLoadError { PluginLoadError(file: file, reason: reason) }
        lock.lock()
        defer { lock.unlock() }
        let current = Staging()
        staging = current
        defer { staging = nil }
        var info = swarm_plugin_info()
        info.struct_size = MemoryLayout<swarm_plugin_info>.size
        var errorText: UnsafePointer<CChar>?
        let status = entry(host, &info, &errorText)
        let why = errorText.map { String(cString: $0) }

        let hostMajor = UInt32(SWARM_PLUGIN_ABI_MAJOR)
        if info.abi_major != 0 && info.abi_major != hostMajor {
            throw fail("built for plugin ABI \(info.abi_major).\(info.abi_minor), but this host speaks \(hostMajor).\(SWARM_PLUGIN_ABI_MINOR); rebuild it against this swarm_plugin.h")
        }
        // A plugin that passes on the host's refusal of a registration fails with the
        // host's reason, unless it gave its own.
        if status != SWARM_OK { throw fail("initialisation failed: \(why ?? current.problems.first ?? "status \(status)")") }
        if info.abi_major == 0 { throw fail("did not declare its ABI version in swarm_plugin_info") }
        if let problem = current.problems.first { throw fail(problem) }
        self.info = info
        if let name = info.name { loggerBox.withLock { $0[metadataKey: "plugin"] = "\(String(cString: name))" } }
        return current
    }
}

/// Registrations collected during one plugin's init, committed only if it succeeds.
final class Staging {
    enum VTable {
        case strategy(swarm_strategy_v1)
        case filter(swarm_filter_v1)
        case executor(swarm_executor_v1)
    }

    struct Item {
        var kind: PluginKind
        var name: String
        var vtable: VTable
    }

    var items: [Item] = []
    var problems: [String] = []

    /// A copy of the plugin's table, as far as its `struct_size` reaches (and no further
    /// than the host's own table): fields the plugin's header did not have stay zero.
    /// The copy keeps the plugin's `struct_size`, for ``validate(_:)``.
    static func copyTable<T>(_ table: UnsafePointer<T>, into empty: T) -> T {
        var copy = empty
        let declared = UnsafeRawPointer(table).load(as: Int.self)
        let size = max(0, min(declared, MemoryLayout<T>.size))
        withUnsafeMutableBytes(of: &copy) { dst in
            dst.baseAddress!.copyMemory(from: UnsafeRawPointer(table), byteCount: size)
            if size < MemoryLayout<Int>.size { dst.storeBytes(of: declared, as: Int.self) }
        }
        return copy
    }

    func add(_ kind: PluginKind, _ rawName: UnsafePointer<CChar>?, _ vtable: VTable?) -> swarm_status {
        guard let rawName, let vtable else {
            problems.append("registered a \(kind.rawValue) without a name or vtable")
            return SWARM_ERR_INVALID
        }
        let name = String(cString: rawName)
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F || c == 0x2E
        }
        guard !name.isEmpty, name.utf8.count <= 64, allowed else {
            problems.append("invalid \(kind.rawValue) name \"\(name)\" (use 1-64 of a-z 0-9 - _ .)")
            return SWARM_ERR_INVALID
        }
        if let problem = Self.validate(vtable) {
            problems.append("\(kind.rawValue) \"\(name)\": \(problem)")
            return SWARM_ERR_INVALID
        }
        if items.contains(where: { $0.kind == kind && $0.name == name }) {
            problems.append("duplicate \(kind.rawValue) name \"\(name)\" within the plugin")
            return SWARM_ERR_DUPLICATE
        }
        items.append(Item(kind: kind, name: name, vtable: vtable))
        return SWARM_OK
    }

    /// The smallest tables the host accepts: ABI 1.0's, up to the last function that is
    /// not optional (`score`, `check`, `remove`). Tables are copied by their own
    /// `struct_size`, so a table built against any 1.x header loads.
    static let strategyV10Size = MemoryLayout<swarm_strategy_v1>.offset(of: \swarm_strategy_v1.score)! + MemoryLayout<UnsafeRawPointer>.size
    static let filterV10Size = MemoryLayout<swarm_filter_v1>.offset(of: \swarm_filter_v1.check)! + MemoryLayout<UnsafeRawPointer>.size
    static let executorV10Size = MemoryLayout<swarm_executor_v1>.offset(of: \swarm_executor_v1.remove)! + MemoryLayout<UnsafeRawPointer>.size

    static func validate(_ vtable: VTable) -> String? {
        switch vtable {
        case .strategy(let v):
            if v.struct_size < Self.strategyV10Size { return "vtable struct_size \(v.struct_size) is too small (at least \(Self.strategyV10Size))" }
            if v.score == nil { return "no score function" }
        case .filter(let v):
            if v.struct_size < Self.filterV10Size { return "vtable struct_size \(v.struct_size) is too small (at least \(Self.filterV10Size))" }
            if v.check == nil { return "no check function" }
        case .executor(let v):
            if v.struct_size < Self.executorV10Size { return "vtable struct_size \(v.struct_size) is too small (at least \(Self.executorV10Size))" }
            if v.prepare == nil || v.start == nil || v.status == nil || v.shutdown == nil || v.terminate == nil || v.remove == nil {
                return "missing executor functions"
            }
        }
        return nil
    }
}
