import SwarmAPI
import SwiftProtobuf

/// The tables of the store.
public enum StoreTable: String, Sendable, CaseIterable, Hashable {
    case nodes, services, tasks, clusters, secrets, configs, networks
}

/// A secondary index: a name and the key an object is filed under (nil: not filed).
public struct StoreIndex<Object>: Sendable {
    public let name: String
    let key: @Sendable (Object) -> String?
    /// Whether two versions of an object may be filed differently: a cheap comparison of
    /// the fields the key is made of, so that an update that leaves them alone does not
    /// build the key twice.
    let mayDiffer: @Sendable (Object, Object) -> Bool

    public init(_ name: String, mayDiffer: @escaping @Sendable (Object, Object) -> Bool = { _, _ in true },
                key: @escaping @Sendable (Object) -> String?) {
        self.name = name
        self.key = key
        self.mayDiffer = mayDiffer
    }
}

/// An object that can live in the store: a protobuf message with an ID and ``SwarmMeta``.
public protocol StoreObject: SwiftProtobuf.Message, Sendable {
    static var table: StoreTable { get }
    static var tablePath: WritableKeyPath<StoreState, Table<Self>> { get }
    /// The object with this ID in a state: direct access, for the hot read path (a key
    /// path lookup costs several times more).
    static func get(_ id: String, in state: StoreState) -> Self?
    /// Secondary indexes beyond ID and name.
    static var indexes: [StoreIndex<Self>] { get }
    var id: String { get set }
    var meta: SwarmMeta { get set }
    /// The unique name of the object, or nil for tables without unique names (tasks).
    var storeName: String? { get }
    /// The name used for lookups by name and name prefix (defaults to `storeName`).
    var lookupName: String? { get }
    var anyObject: AnyStoreObject { get }
}

extension StoreObject {
    public static var indexes: [StoreIndex<Self>] { [] }
    public var lookupName: String? { storeName }
}

/// Any stored object, as carried by events and store actions.
public enum AnyStoreObject: Sendable, Equatable {
    case node(SwarmNode)
    case service(SwarmService)
    case task(SwarmTask)
    case cluster(SwarmCluster)
    case secret(SwarmSecret)
    case config(SwarmConfig)
    case network(SwarmNetwork)

    public var table: StoreTable {
        switch self {
        case .node: return .nodes
        case .service: return .services
        case .task: return .tasks
        case .cluster: return .clusters
        case .secret: return .secrets
        case .config: return .configs
        case .network: return .networks
        }
    }

    public var id: String { base.id }
    public var meta: SwarmMeta { base.meta }
    var base: any StoreObject {
        switch self {
        case .node(let o): return o
        case .service(let o): return o
        case .task(let o): return o
        case .cluster(let o): return o
        case .secret(let o): return o
        case .config(let o): return o
        case .network(let o): return o
        }
    }

    /// The service an object belongs to (the service itself, or a task's service).
    public var serviceID: String? {
        switch self {
        case .service(let s): return s.id
        case .task(let t): return t.serviceID
        default: return nil
        }
    }

    /// The node an object belongs to (the node itself, or a task's node).
    public var nodeID: String? {
        switch self {
        case .node(let n): return n.id
        case .task(let t): return t.nodeID.isEmpty ? nil : t.nodeID
        default: return nil
        }
    }

    public var node: SwarmNode? { if case .node(let o) = self { return o } else { return nil } }
    public var service: SwarmService? { if case .service(let o) = self { return o } else { return nil } }
    public var task: SwarmTask? { if case .task(let o) = self { return o } else { return nil } }
    public var cluster: SwarmCluster? { if case .cluster(let o) = self { return o } else { return nil } }

    init?(_ target: consuming SwarmStoreAction.OneOf_Target?) {
        switch consume target {
        case .node(let o): self = .node(o)
        case .service(let o): self = .service(o)
        case .task(let o): self = .task(o)
        case .cluster(let o): self = .cluster(o)
        case .secret(let o): self = .secret(o)
        case .config(let o): self = .config(o)
        case .network(let o): self = .network(o)
        case nil: return nil
        }
    }

    var actionTarget: SwarmStoreAction.OneOf_Target {
        switch self {
        case .node(let o): return .node(o)
        case .service(let o): return .service(o)
        case .task(let o): return .task(o)
        case .cluster(let o): return .cluster(o)
        case .secret(let o): return .secret(o)
        case .config(let o): return .config(o)
        case .network(let o): return .network(o)
        }
    }
}

extension SwarmNode: StoreObject {
    public static var table: StoreTable { .nodes }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmNode>> { \.nodes }
    public static func get(_ id: String, in state: StoreState) -> SwarmNode? { state.nodes.get(id) }
    public static let indexes: [StoreIndex<SwarmNode>] = [
        StoreIndex("role", mayDiffer: { $0.role != $1.role }) { "\($0.role)" },
        StoreIndex("availability", mayDiffer: { $0.spec.availability != $1.spec.availability }) { "\($0.spec.availability)" },
    ]
    /// Node names need not be unique (two machines may share a hostname).
    public var storeName: String? { nil }
    /// Nodes are found by their spec name, or else their hostname.
    public var lookupName: String? {
        spec.annotations.name.isEmpty ? description_p.hostname : spec.annotations.name
    }
    public var anyObject: AnyStoreObject { .node(self) }
}

extension SwarmService: StoreObject {
    public static var table: StoreTable { .services }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmService>> { \.services }
    public static func get(_ id: String, in state: StoreState) -> SwarmService? { state.services.get(id) }
    public var storeName: String? { spec.annotations.name }
    public var anyObject: AnyStoreObject { .service(self) }
}

extension SwarmTask: StoreObject {
    public static var table: StoreTable { .tasks }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmTask>> { \.tasks }
    public static func get(_ id: String, in state: StoreState) -> SwarmTask? { state.tasks.get(id) }
    public static let indexes: [StoreIndex<SwarmTask>] = [
        StoreIndex("service", mayDiffer: { $0.serviceID != $1.serviceID }) { $0.serviceID },
        StoreIndex("node", mayDiffer: { $0.nodeID != $1.nodeID }) { $0.nodeID.isEmpty ? nil : $0.nodeID },
        StoreIndex("slot", mayDiffer: { $0.serviceID != $1.serviceID || $0.slot != $1.slot }) {
            $0.serviceID.isEmpty ? nil : "\($0.serviceID)/\($0.slot)"
        },
        StoreIndex("desired-state", mayDiffer: { $0.desiredState != $1.desiredState }) { "\($0.desiredState.rawValue)" },
    ]
    public var storeName: String? { nil }
    public var anyObject: AnyStoreObject { .task(self) }
}

extension SwarmCluster: StoreObject {
    public static var table: StoreTable { .clusters }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmCluster>> { \.clusters }
    public static func get(_ id: String, in state: StoreState) -> SwarmCluster? { state.clusters.get(id) }
    public var storeName: String? { spec.annotations.name }
    public var anyObject: AnyStoreObject { .cluster(self) }
}

extension SwarmSecret: StoreObject {
    public static var table: StoreTable { .secrets }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmSecret>> { \.secrets }
    public static func get(_ id: String, in state: StoreState) -> SwarmSecret? { state.secrets.get(id) }
    public var storeName: String? { annotations.name }
    public var anyObject: AnyStoreObject { .secret(self) }
}

extension SwarmConfig: StoreObject {
    public static var table: StoreTable { .configs }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmConfig>> { \.configs }
    public static func get(_ id: String, in state: StoreState) -> SwarmConfig? { state.configs.get(id) }
    public var storeName: String? { annotations.name }
    public var anyObject: AnyStoreObject { .config(self) }
}

extension SwarmNetwork: StoreObject {
    public static var table: StoreTable { .networks }
    public static var tablePath: WritableKeyPath<StoreState, Table<SwarmNetwork>> { \.networks }
    public static func get(_ id: String, in state: StoreState) -> SwarmNetwork? { state.networks.get(id) }
    public var storeName: String? { annotations.name }
    public var anyObject: AnyStoreObject { .network(self) }
}
