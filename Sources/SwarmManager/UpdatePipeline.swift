import SwarmAPI
import SwarmStore

/// Writes a scheduler pass's task updates while the pass goes on. Updates are handed over
/// in chunks of one transaction each to a task that commits them in order, so placing
/// tasks (on one core) and committing earlier assignments (on another) overlap.
///
/// A task that changed since the pass read it, or is gone, is skipped without failing
/// its chunk; the next pass sees it anew. Any other failure (for example, leadership
/// lost in the middle of a pass) is returned by ``finish()``.
struct UpdatePipeline {
    private let continuation: AsyncStream<[SwarmTask]>.Continuation
    private let worker: Task<(any Error)?, Never>
    private var chunk: [SwarmTask] = []
    /// Every assignment handed over, to be checked against the store after a failure.
    private(set) var assignments: [SwarmTask] = []

    private let chunkSize: Int

    init(store: MemoryStore, chunkSize: Int = MemoryStore.maxChangesPerTransaction) {
        let (stream, continuation) = AsyncStream.makeStream(of: [SwarmTask].self)
        self.continuation = continuation
        self.chunkSize = chunkSize
        worker = Task {
            var failure: (any Error)?
            for await updates in stream where failure == nil && !Task.isCancelled {
                do {
                    try await store.batch { batch in
                        for u in updates {
                            try await batch.update { tx in
                                do throws(StoreError) { try tx.update(u) } catch .sequenceConflict, .notFound {}
                            }
                        }
                    }
                } catch {
                    failure = error
                }
            }
            return failure
        }
    }

    /// Queues one update; a full chunk is handed to the committing task at once.
    mutating func add(_ update: SwarmTask) {
        chunk.append(update)
        if update.status.state == .assigned { assignments.append(update) }
        if chunk.count >= chunkSize {
            continuation.yield(chunk)
            chunk = []
        }
    }

    /// Hands over what is left and waits until everything is committed. Returns the first
    /// failure, after which later chunks were not written.
    mutating func finish() async -> (any Error)? {
        if !chunk.isEmpty { continuation.yield(chunk) }
        chunk = []
        continuation.finish()
        let worker = worker
        return await withTaskCancellationHandler { await worker.value } onCancel: { worker.cancel() }
    }
}
