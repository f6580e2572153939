import HashTreeCollections
import SwarmAPI
import SwiftProtobuf

/// What happened to one object in a committed transaction.
public struct StoreEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case created, updated, deleted }
    public var kind: Kind
    /// The object before the change (updates and deletions).
    public var old: AnyStoreObject?
    /// The object after the change (creations and updates).
    public var new: AnyStoreObject?

    /// The object as it is after the event (or was, for a deletion).
    public var object: AnyStoreObject { new ?? old! }
}

extension AnyStoreObject {
    func withMeta(_ change: (inout SwarmMeta) -> Void) -> AnyStoreObject {
        switch self {
        case .node(var o): change(&o.meta); return .node(o)
        case .service(var o): change(&o.meta); return .service(o)
        case .task(var o): change(&o.meta); return .task(o)
        case .cluster(var o): change(&o.meta); return .cluster(o)
        case .secret(var o): change(&o.meta); return .secret(o)
        case .config(var o): change(&o.meta); return .config(o)
        case .network(var o): change(&o.meta); return .network(o)
        }
    }

    var storeName: String? { base.storeName }
}

/// An update transaction. It reads a snapshot plus its own writes, and records the
/// changes as store actions. Nothing is visible to others until the transaction is
/// committed through the log and applied; a change based on an outdated version of an
/// object then fails with ``StoreError/sequenceConflict(_:id:expected:actual:)``.
///
/// Several changes to one object within a transaction collapse into one action.
public struct WriteTx: Sendable {
    struct Key: Hashable {
        var table: StoreTable
        var id: String
    }

    /// One recorded change: its action, its place in the transaction, its encoded size.
    struct Change {
        var seq: Int
        var action: SwarmStoreAction
        var size: Int
    }

    private(set) var state: StoreState
    let now: Int64
    /// A persistent map, so that copying a transaction (as ``MemoryStore/Batch`` does for
    /// each update) is O(1) and a change copies only its path.
    private(set) var changes: TreeDictionary<Key, Change> = [:]
    private var nextSeq = 0
    /// Encoded size of the actions.
    private(set) var byteSize = 0

    init(state: StoreState, now: Int64) {
        self.state = state
        self.now = now
    }

    /// A read view that includes this transaction's own writes.
    public var reader: ReadTx { ReadTx(state) }
    public var changeCount: Int { changes.count }

    public func get<T: StoreObject>(_ type: T.Type, id: String) -> T? { reader.get(type, id: id) }
    public func find<T: StoreObject>(_ type: T.Type, _ selector: Selector = .all) -> [T] { reader.find(type, selector) }

    /// Adds a new object. Its ID must be unused and its name, if the table has unique
    /// names, free.
    public mutating func create<T: StoreObject>(_ object: T) throws(StoreError) {
        guard !object.id.isEmpty else { throw .invalidObject("\(T.table.singular) has an empty ID") }
        if state[keyPath: T.tablePath].get(object.id) != nil { throw .exists(T.table, id: object.id) }
        try checkName(object, table: T.table)
        var o = object
        o.meta.version = 0
        o.meta.createdAt = now
        o.meta.updatedAt = now
        state.put(o.anyObject)
        let key = Key(table: T.table, id: o.id)
        if let removed = changes[key]?.action, removed.kind == .remove, let previous = AnyStoreObject(removed.target) {
            // Deleted and re-created in one transaction: store it as a replacement of the
            // version that was deleted.
            o.meta.version = previous.meta.version
            state.put(o.anyObject)
            record(key, kind: .update, o.anyObject)
        } else {
            record(key, kind: .create, o.anyObject)
        }
    }

    /// Replaces an object. `object.meta.version` must be the version the caller read.
    public mutating func update<T: StoreObject>(_ object: T) throws(StoreError) {
        guard let current = state[keyPath: T.tablePath].get(object.id) else { throw .notFound(T.table, id: object.id) }
        if object.meta.version != current.meta.version {
            throw .sequenceConflict(T.table, id: object.id, expected: object.meta.version, actual: current.meta.version)
        }
        try checkName(object, table: T.table)
        var o = object
        o.meta.createdAt = current.meta.createdAt
        o.meta.updatedAt = now
        state.put(o.anyObject)
        let key = Key(table: T.table, id: o.id)
        record(key, kind: changes[key]?.action.kind == .create ? .create : .update, o.anyObject)
    }

    /// Removes an object.
    public mutating func delete<T: StoreObject>(_ type: T.Type, id: String) throws(StoreError) {
        guard let current = state[keyPath: T.tablePath].get(id) else { throw .notFound(T.table, id: id) }
        state.remove(T.table, id: id)
        let key = Key(table: T.table, id: id)
        if let created = changes[key], created.action.kind == .create {
            byteSize -= created.size
            changes[key] = nil
        } else {
            record(key, kind: .remove, current.anyObject)
        }
    }

    private func checkName<T: StoreObject>(_ object: T, table: StoreTable) throws(StoreError) {
        guard let name = object.storeName else { return }
        if name.isEmpty { throw .invalidObject("\(table.singular) \(object.id) has an empty name") }
        if let owner = state.idForName(table, name), owner != object.id { throw .nameConflict(table, name: name) }
    }

    private mutating func record(_ key: Key, kind: SwarmStoreAction.Kind, _ object: AnyStoreObject) {
        var action = SwarmStoreAction()
        action.kind = kind
        action.target = object.actionTarget
        let size = (try? action.serializedBytes() as [UInt8])?.count ?? 0
        var seq = nextSeq
        if let previous = changes[key] {
            byteSize -= previous.size
            seq = previous.seq  // a collapsed change keeps its place
        } else {
            nextSeq += 1
        }
        byteSize += size
        changes[key] = Change(seq: seq, action: action, size: size)
    }

    /// The transaction as a log entry payload, its actions in the order first recorded.
    var request: SwarmInternalRaftRequest {
        var r = SwarmInternalRaftRequest()
        r.actions = changes.values.sorted { $0.seq < $1.seq }.map(\.action)
        return r
    }
}

/// Applies a committed transaction to a state, all or nothing. Deterministic: every
/// manager gets the same result for the same state, actions and index.
func applyActions(_ actions: [SwarmStoreAction], to base: StoreState, index: UInt64) throws(StoreError) -> (StoreState, [StoreEvent]) {
    var state = base
    var events: [StoreEvent] = []
    events.reserveCapacity(actions.count)
    for action in actions {
        guard let object = AnyStoreObject(action.target) else { throw .invalidObject("store action without an object") }
        let table = object.table
        let old = state.object(table, id: object.id)
        switch action.kind {
        case .create:
            if old != nil { throw .exists(table, id: object.id) }
            if let name = object.storeName, let owner = state.idForName(table, name), owner != object.id {
                throw .nameConflict(table, name: name)
            }
            let new = object.withMeta { $0.version = index }
            state.put(new)
            events.append(StoreEvent(kind: .created, old: nil, new: new))
        case .update:
            guard let old else { throw .notFound(table, id: object.id) }
            if old.meta.version != object.meta.version {
                throw .sequenceConflict(table, id: object.id, expected: object.meta.version, actual: old.meta.version)
            }
            if let name = object.storeName, let owner = state.idForName(table, name), owner != object.id {
                throw .nameConflict(table, name: name)
            }
            let new = object.withMeta {
                $0.version = index
                $0.createdAt = old.meta.createdAt
            }
            state.put(new)
            events.append(StoreEvent(kind: .updated, old: old, new: new))
        case .remove:
            guard let old else { throw .notFound(table, id: object.id) }
            state.remove(table, id: object.id)
            events.append(StoreEvent(kind: .deleted, old: old, new: nil))
        case .unknown, .UNRECOGNIZED:
            throw .invalidObject("unknown store action kind \(action.kind.rawValue)")
        }
    }
    state.version = index
    return (state, events)
}
