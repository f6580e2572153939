import HashTreeCollections
import SwarmAPI

/// One table: objects by ID, the unique-name index and the secondary indexes. Every map is
/// a persistent hash trie, so copying a table is O(1) and a write copies only the path
/// to the changed entry.
public struct Table<Object: StoreObject>: Sendable {
    private(set) var byID: TreeDictionary<String, Object> = [:]
    /// Lower-cased unique name -> ID.
    private(set) var byName: TreeDictionary<String, String> = [:]
    /// One map per entry of `Object.indexes`: key -> IDs.
    private(set) var secondary: [TreeDictionary<String, TreeSet<String>>]

    init() {
        secondary = Array(repeating: [:], count: Object.indexes.count)
    }

    public var count: Int { byID.count }

    public func get(_ id: String) -> Object? { byID[id] }

    public var all: [Object] { Array(byID.values) }

    func id(forName name: String) -> String? { byName[name.lowercased()] }

    /// IDs filed under `key` in the index called `index`.
    func ids(index: String, key: String) -> TreeSet<String> {
        guard let k = Object.indexes.firstIndex(where: { $0.name == index }) else { return [] }
        return secondary[k][key] ?? []
    }

    /// Inserts or replaces an object; the caller has checked uniqueness.
    mutating func put(_ object: Object) {
        let old = byID.updateValue(object, forKey: object.id)
        // Only index entries whose keys changed are touched: an update that moves a task
        // to a node rewrites the node index alone, not the large per-service sets.
        if let old {
            let oldName = old.storeName?.lowercased() ?? ""
            let newName = object.storeName?.lowercased() ?? ""
            if oldName != newName, !oldName.isEmpty, byName[oldName] == old.id { byName[oldName] = nil }
        }
        if let name = object.storeName, !name.isEmpty { byName[name.lowercased()] = object.id }
        for (k, index) in Object.indexes.enumerated() {
            if let old, !index.mayDiffer(old, object) { continue }
            let newKey = index.key(object)
            let oldKey = old.flatMap(index.key)
            if oldKey == newKey { continue }
            if let oldKey { unfile(object.id, index: k, key: oldKey) }
            if let newKey { secondary[k][newKey, default: []].insert(object.id) }
        }
    }

    mutating func remove(_ id: String) {
        guard let old = byID.removeValue(forKey: id) else { return }
        unindex(old)
    }

    private mutating func unindex(_ old: Object) {
        if let name = old.storeName, !name.isEmpty, byName[name.lowercased()] == old.id {
            byName[name.lowercased()] = nil
        }
        for (k, index) in Object.indexes.enumerated() {
            if let key = index.key(old) { unfile(old.id, index: k, key: key) }
        }
    }

    private mutating func unfile(_ id: String, index k: Int, key: String) {
        secondary[k][key]?.remove(id)
        if secondary[k][key]?.isEmpty == true { secondary[k][key] = nil }
    }
}

/// The whole store at one version: a value, so holding it is a consistent snapshot.
public struct StoreState: Sendable {
    public internal(set) var nodes = Table<SwarmNode>()
    public internal(set) var services = Table<SwarmService>()
    public internal(set) var tasks = Table<SwarmTask>()
    public internal(set) var clusters = Table<SwarmCluster>()
    public internal(set) var secrets = Table<SwarmSecret>()
    public internal(set) var configs = Table<SwarmConfig>()
    public internal(set) var networks = Table<SwarmNetwork>()
    /// The Raft index of the last applied transaction.
    public internal(set) var version: UInt64 = 0

    init() {}

    func object(_ table: StoreTable, id: String) -> AnyStoreObject? {
        switch table {
        case .nodes: return nodes.get(id).map { .node($0) }
        case .services: return services.get(id).map { .service($0) }
        case .tasks: return tasks.get(id).map { .task($0) }
        case .clusters: return clusters.get(id).map { .cluster($0) }
        case .secrets: return secrets.get(id).map { .secret($0) }
        case .configs: return configs.get(id).map { .config($0) }
        case .networks: return networks.get(id).map { .network($0) }
        }
    }

    func idForName(_ table: StoreTable, _ name: String) -> String? {
        switch table {
        case .nodes: return nodes.id(forName: name)
        case .services: return services.id(forName: name)
        case .tasks: return tasks.id(forName: name)
        case .clusters: return clusters.id(forName: name)
        case .secrets: return secrets.id(forName: name)
        case .configs: return configs.id(forName: name)
        case .networks: return networks.id(forName: name)
        }
    }

    mutating func put(_ object: AnyStoreObject) {
        switch object {
        case .node(let o): nodes.put(o)
        case .service(let o): services.put(o)
        case .task(let o): tasks.put(o)
        case .cluster(let o): clusters.put(o)
        case .secret(let o): secrets.put(o)
        case .config(let o): configs.put(o)
        case .network(let o): networks.put(o)
        }
    }

    mutating func remove(_ table: StoreTable, id: String) {
        switch table {
        case .nodes: nodes.remove(id)
        case .services: services.remove(id)
        case .tasks: tasks.remove(id)
        case .clusters: clusters.remove(id)
        case .secrets: secrets.remove(id)
        case .configs: configs.remove(id)
        case .networks: networks.remove(id)
        }
    }

    /// Every object of every table.
    var allObjects: [AnyStoreObject] {
        nodes.all.map { .node($0) } + services.all.map { .service($0) } + tasks.all.map { .task($0) }
            + clusters.all.map { .cluster($0) } + secrets.all.map { .secret($0) }
            + configs.all.map { .config($0) } + networks.all.map { .network($0) }
    }
}
