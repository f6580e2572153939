import SwarmPluginABI

/// A scheduling strategy: ranks the nodes that passed the filters. Higher is better;
/// return `nil` to leave a node out. `score` may be called from several threads at once.
public protocol Strategy: Sendable {
    func score(task: TaskView, node: NodeView) -> Double?
    /// Called once per scheduling pass, before its scores, with the whole cluster and its
    /// expected workload (ABI 1.1), when ``wantsPrepare`` is true. Never concurrent with
    /// `score`.
    func prepare(cluster: ClusterView)
    /// Whether the host should call ``prepare(cluster:)``. False by default, so that a
    /// strategy without one costs the host nothing per pass; set it where you implement it.
    var wantsPrepare: Bool { get }
    /// The GPUs (positions in `node.gpus`) the task gets on the node chosen for it, or nil
    /// for the host's choice: best fit for a fraction, lowest-indexed free GPUs for whole
    /// ones (ABI 1.1).
    func assignDevices(task: TaskView, node: NodeView) -> [Int]?
    /// Places a whole group of `count` tasks like `task` at once (ABI 1.2), for decisions
    /// that concern the group, such as all-or-nothing placement: for each task, a position
    /// in `nodes` (the nodes that passed the filters, in ID order) or nil to leave it
    /// pending. Return nil to let the host place the group task by task with `score`.
    /// Called only when ``wantsPlaceGroup`` is true.
    func placeGroup(task: TaskView, count: Int, nodes: [NodeView]) -> [Int?]?
    /// Whether the host should call ``placeGroup(task:count:nodes:)``. False by default.
    var wantsPlaceGroup: Bool { get }
}

extension Strategy {
    public func prepare(cluster: ClusterView) {}
    public var wantsPrepare: Bool { false }
    public func assignDevices(task: TaskView, node: NodeView) -> [Int]? { nil }
    public func placeGroup(task: TaskView, count: Int, nodes: [NodeView]) -> [Int?]? { nil }
    public var wantsPlaceGroup: Bool { false }
}

/// A scheduling filter. Called from several threads at once.
public protocol Filter: Sendable {
    func check(task: TaskView, node: NodeView) -> Bool
    /// Why `rejected` nodes were turned down, for the task's status.
    func explain(rejected: Int) -> String
}

/// The pointer types of the entry point, so that a plugin's `@_cdecl` function can be
/// written without naming C types:
///
///     @_cdecl("swarm_plugin_init_v1")
///     public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
///         SwarmPlugin.initialize(host, info, error, name: "spread", version: "1.0.0") { plugin in
///             try plugin.register(strategy: Spread(), as: "spread")
///         }
///     }
public typealias SwarmHost = UnsafePointer<swarm_host_v1>
public typealias SwarmPluginInfo = UnsafeMutablePointer<swarm_plugin_info>
public typealias SwarmInitError = UnsafeMutablePointer<UnsafePointer<CChar>?>

/// A registration the host refused.
public struct RegistrationError: Error, CustomStringConvertible {
    public let name: String
    public let status: Int32
    public var description: String { "the host refused \"\(name)\" (status \(status))" }
}

/// Registers a plugin's filters and strategies with the host.
public struct PluginRegistrar {
    let host: SwarmHost

    /// Registers `strategy` under `name`.
    public func register(strategy: some Strategy, as name: String) throws {
        let box = Unmanaged.passRetained(StrategyBox(strategy)).toOpaque()  // plugins are never unloaded
        var v = swarm_strategy_v1()
        v.struct_size = MemoryLayout<swarm_strategy_v1>.size
        v.ctx = box
        v.score = { ctx, task, node in
            let s = Unmanaged<StrategyBox>.fromOpaque(ctx!).takeUnretainedValue().strategy
            return s.score(task: TaskView(task!), node: NodeView(node!)) ?? .nan
        }
        if strategy.wantsPrepare {
            v.prepare = { ctx, cluster in
                let s = Unmanaged<StrategyBox>.fromOpaque(ctx!).takeUnretainedValue().strategy
                s.prepare(cluster: ClusterView(cluster!))
            }
        }
        v.assign_devices = { ctx, task, node, out, capacity in
            let s = Unmanaged<StrategyBox>.fromOpaque(ctx!).takeUnretainedValue().strategy
            guard let chosen = s.assignDevices(task: TaskView(task!), node: NodeView(node!)), chosen.count <= capacity else { return -1 }
            for (i, g) in chosen.enumerated() { out![i] = UInt32(clamping: g) }
            return Int32(chosen.count)
        }
        if strategy.wantsPlaceGroup {
            v.place_group = { ctx, task, count, feasible, feasibleCount, out in
                let s = Unmanaged<StrategyBox>.fromOpaque(ctx!).takeUnretainedValue().strategy
                let nodes = (0..<feasibleCount).map { NodeView(feasible![$0]!) }
                guard let answer = s.placeGroup(task: TaskView(task!), count: count, nodes: nodes) else { return SWARM_DECLINED }
                for i in 0..<count { out![i] = i < answer.count ? answer[i].map { Int32(clamping: $0) } ?? -1 : -1 }
                return SWARM_OK
            }
        }
        let status = name.withCString { host.pointee.register_strategy(host.pointee.host_ctx, $0, &v) }
        if status != SWARM_OK { throw RegistrationError(name: name, status: status) }
    }

    /// Registers `filter` under `name`.
    public func register(filter: some Filter, as name: String) throws {
        let box = Unmanaged.passRetained(FilterBox(filter)).toOpaque()
        var v = swarm_filter_v1()
        v.struct_size = MemoryLayout<swarm_filter_v1>.size
        v.ctx = box
        v.check = { ctx, task, node in
            let f = Unmanaged<FilterBox>.fromOpaque(ctx!).takeUnretainedValue().filter
            return f.check(task: TaskView(task!), node: NodeView(node!)) ? 1 : 0
        }
        v.explain = { ctx, rejected in
            let box = Unmanaged<FilterBox>.fromOpaque(ctx!).takeUnretainedValue()
            return box.explanation(box.filter.explain(rejected: Int(rejected)))
        }
        let status = name.withCString { host.pointee.register_filter(host.pointee.host_ctx, $0, &v) }
        if status != SWARM_OK { throw RegistrationError(name: name, status: status) }
    }

    /// Tells the host that a task's status changed (ABI 1.5); a no-op with an older host.
    /// An executor keeps it to report exits and health changes as they happen.
    public var notifier: TaskNotifier {
        let end = MemoryLayout<swarm_host_v1>.offset(of: \swarm_host_v1.task_changed)! + MemoryLayout<Int>.size
        let listens = host.pointee.struct_size >= end && host.pointee.task_changed != nil
        return TaskNotifier(host: listens ? host : nil)
    }

    /// Writes a line to the host's log.
    public func log(_ message: String) {
        message.withCString { host.pointee.log(host.pointee.host_ctx, SWARM_LOG_INFO, $0) }
    }
}

/// The entry point's body, for plugins written in Swift.
public enum SwarmPlugin {
    /// Fills in the plugin's description and runs `register`. Returns the status the
    /// entry point must return; a thrown error becomes a failed init with its message.
    public static func initialize(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ errorOut: SwarmInitError?,
                                  name: StaticString, version: StaticString,
                                  _ register: (PluginRegistrar) throws -> Void) -> Int32 {
        guard let host, let info else { return SWARM_ERR_INVALID }
        info.pointee.abi_major = UInt32(SWARM_PLUGIN_ABI_MAJOR)
        info.pointee.abi_minor = UInt32(SWARM_PLUGIN_ABI_MINOR)
        info.pointee.name = UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
        info.pointee.version = UnsafeRawPointer(version.utf8Start).assumingMemoryBound(to: CChar.self)
        guard host.pointee.abi_major == UInt32(SWARM_PLUGIN_ABI_MAJOR) else { return SWARM_ERR_VERSION }
        do {
            try register(PluginRegistrar(host: host))
            return SWARM_OK
        } catch {
            // The message must outlive this call: keep it for good (init runs once).
            let text = strdup("\(error)")
            errorOut?.pointee = UnsafePointer(text)
            return SWARM_ERR_FAILED
        }
    }
}

final class StrategyBox {
    let strategy: any Strategy
    init(_ s: any Strategy) { strategy = s }
}

final class FilterBox: @unchecked Sendable {
    let filter: any Filter
    init(_ f: any Filter) { filter = f }

    /// Per-thread buffer for explain's result, valid until the next call on that thread.
    func explanation(_ text: String) -> UnsafePointer<CChar>? {
        let key = Self.key
        if let old = pthread_getspecific(key) { free(old) }
        let copy = strdup(text)
        pthread_setspecific(key, copy)
        return UnsafePointer(copy)
    }

    static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { free($0) }
        return k
    }()
}

#if canImport(Glibc)
import Glibc
#endif
