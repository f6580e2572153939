import Foundation
import SwarmAPI
import SwiftProtobuf
import Synchronization

/// Replicates store transactions. The Raft node implements it: it proposes the request,
/// waits until the entry is applied to the local store with ``MemoryStore/apply(_:index:)``
/// and returns the index, or throws the error that applying produced.
public protocol StoreProposer: Sendable {
    func propose(_ request: SwarmInternalRaftRequest) async throws -> UInt64
}

/// The cluster's in-memory state: typed tables with indexes, snapshot reads, optimistic
/// update transactions, watches and whole-store snapshots.
///
/// Every write goes through ``update(_:)``: the transaction's actions are handed to the
/// proposer (the Raft log) and take effect when ``apply(_:index:)`` runs on each manager.
/// Without a proposer (unit tests, tools) transactions are applied at once.
public final class MemoryStore: Sendable {
    /// SwarmKit's limits for one transaction in a batch.
    public static let maxChangesPerTransaction = 200
    public static let maxTransactionBytes = 1_572_864
    /// Default bound of a watcher's queue.
    public static let defaultWatchLimit = 10_000

    struct Inner {
        var state = StoreState()
        var watchers: [ObjectIdentifier: Watcher] = [:]
    }

    private let inner = Mutex(Inner())
    private let proposer: (any StoreProposer)?
    private let clock: @Sendable () -> Int64

    /// - Parameters:
    ///   - proposer: replicates transactions; nil applies them locally at once.
    ///   - clock: Unix time in nanoseconds for `created_at`/`updated_at`.
    public init(proposer: (any StoreProposer)? = nil,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }) {
        self.proposer = proposer
        self.clock = clock
    }

    // MARK: Reads

    /// A consistent snapshot of the whole store (O(1)).
    public func view() -> ReadTx { ReadTx(inner.withLock { $0.state }) }

    public func view<R>(_ body: (ReadTx) throws -> R) rethrows -> R { try body(view()) }

    public var version: UInt64 { inner.withLock { $0.state.version } }

    // MARK: Writes

    /// Runs `body` in a transaction and commits it. Returns what `body` returned. The
    /// transaction fails as a whole, with nothing applied, if `body` throws or if another
    /// transaction changed an object it updates.
    @discardableResult
    public func update<R: Sendable>(_ body: (inout WriteTx) throws -> R) async throws -> R {
        var tx: WriteTx? = WriteTx(state: view().state, now: clock())
        let result = try body(&tx!)
        if tx!.changeCount > 0 { _ = try await commit(&tx) }
        return result
    }

    /// Commits a transaction and consumes it: it is released before the commit is applied,
    /// so that its snapshot does not hold on to the maps the commit changes.
    func commit(_ tx: inout WriteTx?) async throws -> UInt64 {
        guard var request = tx.take()?.request else { return view().version }
        request.id = UInt64.random(in: 1...UInt64.max)
        if let proposer { return try await proposer.propose(request) }
        let index = inner.withLock { $0.state.version + 1 }
        try apply(consume request, index: index).get()
        return index
    }

    /// Applies a committed transaction at a log index. Called by the Raft apply loop on
    /// every manager, in log order. On failure nothing changes (the version still moves to
    /// `index`, since the entry was consumed).
    @discardableResult
    public func apply(_ request: consuming SwarmInternalRaftRequest, index: UInt64) -> Result<Void, StoreError> {
        // Moved out of the request: when the caller handed over the only copy, the objects
        // are changed in place as they are applied.
        var actions: [SwarmStoreAction] = []
        swap(&actions, &request.actions)
        return inner.withLock { inner -> Result<Void, StoreError> in
            do throws(StoreError) {
                let events = try applyActions(&actions, to: &inner.state, index: index)
                publish(events, version: index, to: &inner)
                return .success(())
            } catch {
                inner.state.version = max(inner.state.version, index)
                return .failure(error)
            }
        }
    }

    /// Records that a log entry carrying no store change was applied at `index`.
    public func advanceVersion(to index: UInt64) {
        inner.withLock { $0.state.version = max($0.state.version, index) }
    }

    // MARK: Batches

    /// Groups many small updates into transactions that stay under
    /// ``maxChangesPerTransaction`` changes and ``maxTransactionBytes``. Returns the number
    /// of transactions committed. Each `batch.update` body may be run twice (when it
    /// overflows the current transaction it is re-run on a fresh one), so it must only
    /// act through its transaction.
    @discardableResult
    public func batch(_ body: (Batch) async throws -> Void) async throws -> Int {
        let batch = Batch(store: self)
        try await body(batch)
        try await batch.flush()
        return batch.committed
    }

    /// See ``MemoryStore/batch(_:)``.
    public final class Batch {
        let store: MemoryStore
        var tx: WriteTx?
        var committed = 0

        init(store: MemoryStore) { self.store = store }

        public func update(_ body: (inout WriteTx) throws -> Void) async throws {
            // The open transaction is taken out of `tx` while `body` runs, so that it is
            // the only reference to its maps and writes change them in place; a savepoint
            // undoes `body` when it throws or overflows the transaction.
            guard var current = tx.take() else {
                var fresh = freshTransaction()
                try body(&fresh)
                tx = fresh
                return
            }
            let before = current.changeCount
            current.setSavepoint()
            do {
                try body(&current)
            } catch {
                current.rollbackToSavepoint()
                tx = current
                throw error
            }
            let over = current.changeCount > MemoryStore.maxChangesPerTransaction
                || current.byteSize > MemoryStore.maxTransactionBytes
            if over && before > 0 {
                current.rollbackToSavepoint()
                tx = consume current
                try await flush()
                var fresh = freshTransaction()
                try body(&fresh)
                tx = fresh
            } else {
                current.releaseSavepoint()
                tx = consume current
            }
        }

        /// A transaction with room for a batch's worth of changes (growing the change map
        /// one doubling at a time rehashes every key each time).
        private func freshTransaction() -> WriteTx {
            var tx = WriteTx(state: store.view().state, now: store.clock())
            tx.reserveCapacity(MemoryStore.maxChangesPerTransaction)
            return tx
        }

        func flush() async throws {
            guard let count = tx?.changeCount, count > 0 else { return }
            _ = try await store.commit(&tx)
            committed += 1
        }
    }

    // MARK: Watches

    /// Watches events from now on.
    public func watch(_ filter: WatchFilter = WatchFilter(), limit: Int = MemoryStore.defaultWatchLimit) -> Watcher {
        viewAndWatch(filter, limit: limit).1
    }

    /// A snapshot and a watcher that delivers every event after it, taken atomically.
    public func viewAndWatch(_ filter: WatchFilter = WatchFilter(), limit: Int = MemoryStore.defaultWatchLimit) -> (ReadTx, Watcher) {
        let watcher = Watcher(filter: filter, limit: limit) { [weak self] w in
            _ = self?.inner.withLock { $0.watchers.removeValue(forKey: ObjectIdentifier(w)) }
        }
        let state = inner.withLock { inner in
            inner.watchers[ObjectIdentifier(watcher)] = watcher
            return inner.state
        }
        return (ReadTx(state), watcher)
    }

    public var watcherCount: Int { inner.withLock { $0.watchers.count } }

    private func publish(_ events: [StoreEvent], version: UInt64, to inner: inout Inner) {
        var closed: [ObjectIdentifier] = []
        for (key, watcher) in inner.watchers {
            var messages = events.filter { watcher.filter.matches($0) }.map(WatchMessage.event)
            if watcher.filter.commits { messages.append(.commit(version: version)) }
            if !watcher.push(contentsOf: messages) { closed.append(key) }
        }
        for key in closed { inner.watchers[key] = nil }
    }

    // MARK: Snapshots

    /// The whole store as a message.
    public func snapshot() -> SwarmStoreSnapshot { Self.snapshot(of: view()) }

    /// A read view as a snapshot message; safe to call from any thread while writes go on.
    public static func snapshot(of view: ReadTx) -> SwarmStoreSnapshot {
        let s = view.state
        var snap = SwarmStoreSnapshot()
        snap.nodes = s.nodes.all.sorted { $0.id < $1.id }
        snap.services = s.services.all.sorted { $0.id < $1.id }
        snap.tasks = s.tasks.all.sorted { $0.id < $1.id }
        snap.clusters = s.clusters.all.sorted { $0.id < $1.id }
        snap.secrets = s.secrets.all.sorted { $0.id < $1.id }
        snap.configs = s.configs.all.sorted { $0.id < $1.id }
        snap.networks = s.networks.all.sorted { $0.id < $1.id }
        return snap
    }

    /// The whole store as bytes, for a Raft snapshot.
    public func serializedSnapshot() throws -> [UInt8] {
        try snapshot().serializedBytes()
    }

    /// Replaces the whole store with a snapshot taken at `version`. Watchers receive the
    /// differences as ordinary events.
    public func restore(_ bytes: [UInt8], version: UInt64) throws(StoreError) {
        let snap: SwarmStoreSnapshot
        do {
            snap = try SwarmStoreSnapshot(serializedBytes: bytes)
        } catch {
            throw .corrupt("store snapshot does not decode: \(error)")
        }
        restore(snap, version: version)
    }

    public func restore(_ snap: SwarmStoreSnapshot, version: UInt64) {
        var state = StoreState()
        for o in snap.nodes { state.nodes.put(o) }
        for o in snap.services { state.services.put(o) }
        for o in snap.tasks { state.tasks.put(o) }
        for o in snap.clusters { state.clusters.put(o) }
        for o in snap.secrets { state.secrets.put(o) }
        for o in snap.configs { state.configs.put(o) }
        for o in snap.networks { state.networks.put(o) }
        state.version = version
        inner.withLock { inner in
            let events = diff(from: inner.state, to: state)
            inner.state = state
            publish(events, version: version, to: &inner)
        }
    }

    private func diff(from old: StoreState, to new: StoreState) -> [StoreEvent] {
        var events: [StoreEvent] = []
        for o in new.allObjects {
            if let before = old.object(o.table, id: o.id) {
                if before != o { events.append(StoreEvent(kind: .updated, old: before, new: o)) }
            } else {
                events.append(StoreEvent(kind: .created, old: nil, new: o))
            }
        }
        for o in old.allObjects where new.object(o.table, id: o.id) == nil {
            events.append(StoreEvent(kind: .deleted, old: o, new: nil))
        }
        return events
    }
}
