import DequeModule
import Synchronization

/// What a watcher receives: object events, and a marker after each committed transaction.
public enum WatchMessage: Sendable, Equatable {
    case event(StoreEvent)
    /// All events of the transaction at this version were delivered.
    case commit(version: UInt64)
}

/// Which events a watcher wants. Empty sets and nil fields match everything.
public struct WatchFilter: Sendable {
    public var tables: Set<StoreTable> = []
    public var kinds: Set<StoreEvent.Kind> = []
    public var id: String?
    public var serviceID: String?
    public var nodeID: String?
    /// Whether to deliver ``WatchMessage/commit(version:)`` markers.
    public var commits = false

    public init(tables: Set<StoreTable> = [], kinds: Set<StoreEvent.Kind> = [], id: String? = nil,
                serviceID: String? = nil, nodeID: String? = nil, commits: Bool = false) {
        self.tables = tables
        self.kinds = kinds
        self.id = id
        self.serviceID = serviceID
        self.nodeID = nodeID
        self.commits = commits
    }

    func matches(_ e: StoreEvent) -> Bool {
        let o = e.object
        if !tables.isEmpty && !tables.contains(o.table) { return false }
        if !kinds.isEmpty && !kinds.contains(e.kind) { return false }
        if let id, o.id != id { return false }
        if let serviceID, o.serviceID != serviceID && e.old?.serviceID != serviceID { return false }
        if let nodeID, o.nodeID != nodeID && e.old?.nodeID != nodeID { return false }
        return true
    }
}

/// A stream of store events with a bounded queue. A watcher that falls more than `limit`
/// messages behind is closed with ``StoreError/watcherFellBehind(limit:)``: events are
/// never dropped silently, and the consumer knows to re-read the store and watch again.
public final class Watcher: AsyncSequence, Sendable {
    public typealias Element = WatchMessage

    struct State {
        var buffer: Deque<WatchMessage> = []
        var waiter: CheckedContinuation<WatchMessage?, any Error>?
        var failure: StoreError?
        var finished = false
    }

    public let filter: WatchFilter
    public let limit: Int
    private let state = Mutex(State())
    private let onCancel: @Sendable (Watcher) -> Void

    init(filter: WatchFilter, limit: Int, onCancel: @escaping @Sendable (Watcher) -> Void) {
        self.filter = filter
        self.limit = limit
        self.onCancel = onCancel
    }

    /// Queues a message. Returns false once the watcher is closed.
    func push(_ message: WatchMessage) -> Bool { push(contentsOf: CollectionOfOne(message)) }

    /// Queues messages under one lock (a transaction's events at once). Returns false
    /// when the watcher is finished, or has just been closed for falling behind.
    func push(contentsOf messages: some Collection<WatchMessage>) -> Bool {
        guard !messages.isEmpty else { return true }
        let (waiter, first, alive): (CheckedContinuation<WatchMessage?, any Error>?, WatchMessage?, Bool) = state.withLock { s in
            if s.finished { return (nil, nil, false) }
            // A waiting reader takes the first message at once; the rest must fit.
            if s.buffer.count + messages.count - (s.waiter == nil ? 0 : 1) > limit {
                s.failure = .watcherFellBehind(limit: limit)
                s.finished = true
                s.buffer.removeAll()
                defer { s.waiter = nil }
                return (s.waiter, nil, false)
            }
            if let w = s.waiter {
                s.waiter = nil
                s.buffer.append(contentsOf: messages.dropFirst())
                return (w, messages.first, true)
            }
            s.buffer.append(contentsOf: messages)
            return (nil, nil, true)
        }
        if let waiter {
            if let first { waiter.resume(returning: first) } else { waiter.resume(throwing: StoreError.watcherFellBehind(limit: limit)) }
        }
        return alive
    }

    func finish() {
        let waiter = state.withLock { s -> CheckedContinuation<WatchMessage?, any Error>? in
            s.finished = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Stops watching.
    public func cancel() {
        finish()
        onCancel(self)
    }

    /// The next message; nil once the watcher is finished or the waiting task is cancelled.
    func next() async throws -> WatchMessage? {
        try await withTaskCancellationHandler {
            try await waitNext()
        } onCancel: {
            cancel()
        }
    }

    private func waitNext() async throws -> WatchMessage? {
        if Task.isCancelled { return nil }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<WatchMessage?, any Error>) in
            let result: Result<WatchMessage?, StoreError>? = state.withLock { s in
                if let m = s.buffer.popFirst() { return .success(m) }
                if let f = s.failure { return .failure(f) }
                if s.finished { return .success(nil) }
                s.waiter = c
                return nil
            }
            if let result { c.resume(with: result.mapError { $0 as any Error }) }
        }
    }

    /// Takes every buffered message at once, so that an iterator can hand them out
    /// without a lock or a suspension each. Nil when nothing is buffered.
    func drain() throws(StoreError) -> Deque<WatchMessage>? {
        try state.withLock { s throws(StoreError) -> Deque<WatchMessage>? in
            if !s.buffer.isEmpty {
                defer { s.buffer = [] }
                return s.buffer
            }
            if let f = s.failure { throw f }
            return nil
        }
    }

    /// Hands out buffered messages in batches; it suspends only when none are buffered.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let watcher: Watcher
        var local: Deque<WatchMessage> = []

        public mutating func next() async throws -> WatchMessage? {
            if Task.isCancelled {
                watcher.cancel()
                return nil
            }
            if let m = local.popFirst() { return m }
            if let batch = try watcher.drain() {
                local = batch
                return local.popFirst()
            }
            return try await watcher.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(watcher: self) }
}
