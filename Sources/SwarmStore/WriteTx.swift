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
    /// The object with its metadata changed. Consuming: when the caller holds the only
    /// copy, the message is changed in place rather than copied.
    consuming func withMeta(_ change: (inout SwarmMeta) -> Void) -> AnyStoreObject {
        switch consume self {
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
/// The snapshot is never modified: the transaction's own writes live in a small overlay
/// (its changes) that reads consult first, so a write costs a map insert, not a copy of
/// the snapshot's paths. Several changes to one object within a transaction collapse into
/// one action.
public struct WriteTx: Sendable {
    struct Key: Hashable {
        var table: StoreTable
        var id: String
    }

    /// One recorded change: its action, its place in the transaction, its encoded size,
    /// and the object as the transaction now sees it (nil once removed).
    struct Change {
        var seq: Int
        var action: SwarmStoreAction
        var size: Int
        var object: AnyStoreObject?
    }

    struct NameKey: Hashable {
        var table: StoreTable
        var name: String
    }

    /// The snapshot the transaction reads under its own writes.
    let base: StoreState
    let now: Int64
    private(set) var changes: [Key: Change] = [:]
    /// Unique names whose owner the transaction changed ("" when the name became free).
    private var names: [NameKey: String] = [:]
    /// Keys in the order first recorded; a change's `seq` is its place here (a key that
    /// was dropped and recorded again appears twice, and only its current place counts).
    private var order: [Key] = []
    /// Encoded size of the actions.
    private(set) var byteSize = 0
    /// What a savepoint needs to undo.
    private var undo: Savepoint?

    struct Savepoint {
        var orderCount: Int
        var byteSize: Int
        var names: [NameKey: String]
        /// The change recorded for each key before its first touch after the savepoint.
        var saved: [Key: Change?] = [:]
    }

    init(state: StoreState, now: Int64) {
        self.base = state
        self.now = now
    }

    public var changeCount: Int { changes.count }

    /// Makes room for `count` changes.
    mutating func reserveCapacity(_ count: Int) {
        changes.reserveCapacity(count)
        order.reserveCapacity(count)
    }

    /// An object as this transaction sees it.
    public func get<T: StoreObject>(_ type: T.Type, id: String) -> T? {
        visible(T.self, id: id, changes[Key(table: T.table, id: id)])
    }

    /// The object as this transaction sees it, given the change recorded for it (looked up
    /// once by the caller).
    private func visible<T: StoreObject>(_ type: T.Type, id: String, _ change: Change?) -> T? {
        if let change { return change.object?.typed(T.self) }
        return T.get(id, in: base)
    }

    /// The objects that match the selector as this transaction sees them, sorted by ID.
    public func find<T: StoreObject>(_ type: T.Type, _ selector: Selector = .all) -> [T] {
        let fromBase = ReadTx(base).find(type, selector)
        let own = changes.filter { $0.key.table == T.table }
        if own.isEmpty { return fromBase }
        if case .idPrefix(let id) = selector, let exact = get(type, id: id) { return [exact] }
        var result = fromBase.filter { own[Key(table: T.table, id: $0.id)] == nil }
        for (_, change) in own {
            if let o = change.object?.typed(T.self), selector.matches(o) { result.append(o) }
        }
        result.sort { $0.id < $1.id }
        return result
    }

    /// Adds a new object. Its ID must be unused and its name, if the table has unique
    /// names, free.
    public mutating func create<T: StoreObject>(_ object: T) throws(StoreError) {
        guard !object.id.isEmpty else { throw .invalidObject("\(T.table.singular) has an empty ID") }
        let key = Key(table: T.table, id: object.id)
        let recorded = changes[key]
        if visible(T.self, id: object.id, recorded) != nil { throw .exists(T.table, id: object.id) }
        try checkName(object, table: T.table)
        var o = object
        o.meta.version = 0
        o.meta.createdAt = now
        o.meta.updatedAt = now
        save(key, recorded)
        if let removed = recorded?.action, removed.kind == .remove, let previous = AnyStoreObject(removed.target) {
            // Deleted and re-created in one transaction: store it as a replacement of the
            // version that was deleted.
            o.meta.version = previous.meta.version
            record(key, recorded, kind: .update, o.anyObject, now: o.anyObject)
        } else {
            record(key, recorded, kind: .create, o.anyObject, now: o.anyObject)
        }
        claimName(key, old: nil, new: o.storeName)
    }

    /// Replaces an object. `object.meta.version` must be the version the caller read.
    public mutating func update<T: StoreObject>(_ object: T) throws(StoreError) {
        let key = Key(table: T.table, id: object.id)
        let recorded = changes[key]
        guard let current = visible(T.self, id: object.id, recorded) else { throw .notFound(T.table, id: object.id) }
        if object.meta.version != current.meta.version {
            throw .sequenceConflict(T.table, id: object.id, expected: object.meta.version, actual: current.meta.version)
        }
        try checkName(object, table: T.table)
        var o = object
        o.meta.createdAt = current.meta.createdAt
        o.meta.updatedAt = now
        save(key, recorded)
        record(key, recorded, kind: recorded?.action.kind == .create ? .create : .update, o.anyObject, now: o.anyObject)
        claimName(key, old: current.storeName, new: o.storeName)
    }

    /// Removes an object.
    public mutating func delete<T: StoreObject>(_ type: T.Type, id: String) throws(StoreError) {
        let key = Key(table: T.table, id: id)
        let recorded = changes[key]
        guard let current = visible(T.self, id: id, recorded) else { throw .notFound(T.table, id: id) }
        save(key, recorded)
        if let created = recorded, created.action.kind == .create {
            byteSize -= created.size
            changes[key] = nil
        } else {
            record(key, recorded, kind: .remove, current.anyObject, now: nil)
        }
        claimName(key, old: current.storeName, new: nil)
    }

    // MARK: Savepoints

    /// Marks the current contents, so that ``rollbackToSavepoint()`` can undo what follows
    /// without the caller keeping a copy of the transaction (with a copy alive, the next
    /// write would copy the whole change map).
    mutating func setSavepoint() {
        undo = Savepoint(orderCount: order.count, byteSize: byteSize, names: names)
    }

    /// Undoes every change made since ``setSavepoint()`` and clears the savepoint.
    mutating func rollbackToSavepoint() {
        guard let point = undo else { return }
        undo = nil
        for (key, before) in point.saved { changes[key] = before }
        names = point.names
        order.removeLast(order.count - point.orderCount)
        byteSize = point.byteSize
    }

    /// Keeps the changes made since ``setSavepoint()`` and clears the savepoint.
    mutating func releaseSavepoint() { undo = nil }

    /// Remembers, for a savepoint, the change `recorded` for `key` before its first touch.
    private mutating func save(_ key: Key, _ recorded: Change?) {
        guard undo != nil, undo!.saved[key] == nil else { return }
        undo!.saved[key] = .some(recorded)
    }

    // MARK: Names

    private func owner(_ table: StoreTable, _ name: String) -> String? {
        if let owner = names[NameKey(table: table, name: name.lowercased())] { return owner.isEmpty ? nil : owner }
        return base.idForName(table, name)
    }

    private func checkName<T: StoreObject>(_ object: T, table: StoreTable) throws(StoreError) {
        guard let name = object.storeName else { return }
        if name.isEmpty { throw .invalidObject("\(table.singular) \(object.id) has an empty name") }
        if let owner = owner(table, name), owner != object.id { throw .nameConflict(table, name: name) }
    }

    private mutating func claimName(_ key: Key, old: String?, new: String?) {
        let oldName = old?.lowercased() ?? "", newName = new?.lowercased() ?? ""
        if oldName != newName, !oldName.isEmpty, owner(key.table, oldName) == key.id {
            names[NameKey(table: key.table, name: oldName)] = ""
        }
        if !newName.isEmpty { names[NameKey(table: key.table, name: newName)] = key.id }
    }

    /// Records the change for `key`, collapsing it with the one already `recorded`.
    private mutating func record(_ key: Key, _ recorded: Change?, kind: SwarmStoreAction.Kind, _ target: AnyStoreObject,
                                 now object: AnyStoreObject?) {
        var action = SwarmStoreAction()
        action.kind = kind
        action.target = target.actionTarget
        let size = action.encodedSize()
        var seq = order.count
        if let previous = recorded {
            byteSize -= previous.size
            seq = previous.seq  // a collapsed change keeps its place
        } else {
            order.append(key)
        }
        byteSize += size
        changes[key] = Change(seq: seq, action: action, size: size, object: object)
    }

    /// The transaction as a log entry payload, its actions in the order first recorded.
    var request: SwarmInternalRaftRequest {
        var r = SwarmInternalRaftRequest()
        r.actions = order.enumerated().compactMap { i, key in changes[key].flatMap { $0.seq == i ? $0.action : nil } }
        return r
    }
}

extension AnyStoreObject {
    func typed<T: StoreObject>(_ type: T.Type) -> T? {
        switch self {
        case .node(let o): return o as? T
        case .service(let o): return o as? T
        case .task(let o): return o as? T
        case .cluster(let o): return o as? T
        case .secret(let o): return o as? T
        case .config(let o): return o as? T
        case .network(let o): return o as? T
        }
    }
}

extension Selector {
    /// Whether one object is selected, as ``ReadTx/find(_:_:)`` would select it.
    func matches<T: StoreObject>(_ o: T) -> Bool {
        switch self {
        case .all: return true
        case .name(let name): return o.lookupName?.lowercased() == name.lowercased()
        case .namePrefix(let prefix): return o.lookupName?.lowercased().hasPrefix(prefix.lowercased()) == true
        case .idPrefix(let prefix): return o.id.hasPrefix(prefix)
        case .index(let index, let key): return T.indexes.first { $0.name == index }.map { $0.key(o) == key } == true
        }
    }
}

/// Applies a committed transaction to a state in place, all or nothing: when an action
/// fails, the ones before it are undone and the error is thrown. Deterministic: every
/// manager gets the same result for the same state, actions and index. Changing the state
/// in place (rather than a copy) means paths that no reader shares are not copied.
///
/// The objects are taken out of `actions` (their targets are left empty), so that an
/// object nothing else holds gets its new version in place rather than in a copy.
func applyActions(_ actions: inout [SwarmStoreAction], to state: inout StoreState, index: UInt64) throws(StoreError) -> [StoreEvent] {
    var events: [StoreEvent] = []
    events.reserveCapacity(actions.count)
    do throws(StoreError) {
        for i in actions.indices {
            let kind = actions[i].kind
            events.append(try applyAction(kind, actions[i].target.take(), to: &state, index: index))
        }
    } catch {
        for e in events.reversed() {
            if let old = e.old { state.put(old) } else { state.remove(e.object.table, id: e.object.id) }
        }
        throw error
    }
    state.version = index
    return events
}

private func applyAction(_ kind: SwarmStoreAction.Kind, _ target: consuming SwarmStoreAction.OneOf_Target?, to state: inout StoreState,
                         index: UInt64) throws(StoreError) -> StoreEvent {
    guard let object = AnyStoreObject(consume target) else { throw .invalidObject("store action without an object") }
    let table = object.table
    let old = state.object(table, id: object.id)
    switch kind {
    case .create:
        if old != nil { throw .exists(table, id: object.id) }
        if let name = object.storeName, let owner = state.idForName(table, name), owner != object.id {
            throw .nameConflict(table, name: name)
        }
        let new = object.withMeta { $0.version = index }
        state.put(new)
        return StoreEvent(kind: .created, old: nil, new: new)
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
        return StoreEvent(kind: .updated, old: old, new: new)
    case .remove:
        guard let old else { throw .notFound(table, id: object.id) }
        state.remove(table, id: object.id)
        return StoreEvent(kind: .deleted, old: old, new: nil)
    case .unknown, .UNRECOGNIZED:
        throw .invalidObject("unknown store action kind \(kind.rawValue)")
    }
}
