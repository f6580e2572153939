import SwarmAPI

/// Errors of store reads and writes. Every failed write leaves the store unchanged.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An object with this ID already exists.
    case exists(StoreTable, id: String)
    /// The unique name is taken by another object.
    case nameConflict(StoreTable, name: String)
    case notFound(StoreTable, id: String)
    /// The object changed since the version the caller read (optimistic concurrency).
    case sequenceConflict(StoreTable, id: String, expected: UInt64, actual: UInt64)
    /// No object matches the ID or name (prefix).
    case noMatch(StoreTable, String)
    /// More than one object matches the prefix.
    case ambiguous(StoreTable, String, matches: Int)
    case invalidObject(String)
    /// A watcher could not keep up and was closed; it must re-read and watch again.
    case watcherFellBehind(limit: Int)
    /// A serialized snapshot or transaction could not be decoded.
    case corrupt(String)

    public var description: String {
        switch self {
        case .exists(let t, let id): return "\(t.singular) \(id) already exists"
        case .nameConflict(let t, let name): return "\(t.singular) name \"\(name)\" is already in use"
        case .notFound(let t, let id): return "\(t.singular) \(id) not found"
        case .sequenceConflict(let t, let id, let expected, let actual):
            return "update out of sequence: \(t.singular) \(id) is at version \(actual), the update was based on \(expected)"
        case .noMatch(let t, let s): return "no \(t.singular) matches \"\(s)\""
        case .ambiguous(let t, let s, let n): return "\"\(s)\" is ambiguous: it matches \(n) \(t.rawValue)"
        case .invalidObject(let why): return "invalid object: \(why)"
        case .watcherFellBehind(let limit): return "watcher fell more than \(limit) events behind and was closed"
        case .corrupt(let why): return "corrupt store data: \(why)"
        }
    }
}

extension StoreTable {
    var singular: String { String(rawValue.dropLast()) }
}

/// How to select objects in ``ReadTx/find(_:_:)``.
public enum Selector: Sendable, Equatable {
    case all
    /// Exact name, case-insensitive.
    case name(String)
    case namePrefix(String)
    case idPrefix(String)
    /// A secondary index by name and key.
    case index(String, String)

    public static func service(_ id: String) -> Selector { .index("service", id) }
    public static func node(_ id: String) -> Selector { .index("node", id) }
    public static func slot(_ serviceID: String, _ slot: UInt64) -> Selector { .index("slot", "\(serviceID)/\(slot)") }
    public static func desiredState(_ state: SwarmTaskState) -> Selector { .index("desired-state", "\(state.rawValue)") }
    public static func role(_ role: SwarmNodeSpec.Role) -> Selector { .index("role", "\(role)") }
    public static func availability(_ a: SwarmNodeSpec.Availability) -> Selector { .index("availability", "\(a)") }
}

/// A read-only view of the store at one version. Taking one costs O(1) and never blocks
/// writers; it stays consistent however long it is held.
public struct ReadTx: Sendable {
    public let state: StoreState

    init(_ state: StoreState) { self.state = state }

    /// The Raft index of the last transaction this view includes.
    public var version: UInt64 { state.version }

    public func get<T: StoreObject>(_ type: T.Type, id: String) -> T? {
        T.get(id, in: state)
    }

    public func count<T: StoreObject>(_ type: T.Type) -> Int {
        state[keyPath: T.tablePath].count
    }

    /// Every object of a table, in no particular order: for callers that load a whole
    /// table and do not need ``find(_:_:)``'s sort by ID.
    public func all<T: StoreObject>(_ type: T.Type) -> [T] {
        state[keyPath: T.tablePath].all
    }

    /// The objects of a table that match the selector, sorted by ID.
    public func find<T: StoreObject>(_ type: T.Type, _ selector: Selector = .all) -> [T] {
        let table = state[keyPath: T.tablePath]
        var result: [T]
        switch selector {
        case .all:
            result = table.all
        case .name(let name):
            if let id = table.id(forName: name), let o = table.get(id) {
                result = [o]
            } else {
                result = table.all.filter { $0.lookupName?.lowercased() == name.lowercased() }
            }
        case .namePrefix(let prefix):
            let p = prefix.lowercased()
            result = table.all.filter { $0.lookupName?.lowercased().hasPrefix(p) == true }
        case .idPrefix(let prefix):
            if let exact = table.get(prefix) { return [exact] }
            result = table.all.filter { $0.id.hasPrefix(prefix) }
        case .index(let index, let key):
            result = table.ids(index: index, key: key).compactMap { table.get($0) }
        }
        result.sort { $0.id < $1.id }
        return result
    }

    /// Resolves a user-supplied reference: an exact ID, an exact name, then a unique ID
    /// prefix or a unique name prefix. Throws ``StoreError/noMatch(_:_:)`` or
    /// ``StoreError/ambiguous(_:_:matches:)``.
    public func lookup<T: StoreObject>(_ type: T.Type, _ reference: String) throws(StoreError) -> T {
        if let o = get(type, id: reference) { return o }
        let byName = find(type, .name(reference))
        if byName.count == 1 { return byName[0] }
        if byName.count > 1 { throw .ambiguous(T.table, reference, matches: byName.count) }
        let byID = find(type, .idPrefix(reference))
        if byID.count == 1 { return byID[0] }
        if byID.count > 1 { throw .ambiguous(T.table, reference, matches: byID.count) }
        let byPrefix = find(type, .namePrefix(reference))
        if byPrefix.count == 1 { return byPrefix[0] }
        if byPrefix.count > 1 { throw .ambiguous(T.table, reference, matches: byPrefix.count) }
        throw .noMatch(T.table, reference)
    }
}
