import SwarmAPI
import SwarmStore

/// Writes a scheduler pass's task updates while the pass goes on. Updates are handed over
/// in chunks of one transaction each to a task that commits them in order, so placing
/// tasks (on one core) and committing earlier assignments (on another) overlap. The first
/// chunks are small, so that the committing task starts early, and each is twice the last
/// up to a full transaction.
///
/// A task that changed since the pass read it, or is gone, is skipped without failing
/// its chunk, and ``finish()`` returns it, so that the pass gives back what it accounted
/// for it; the next pass sees the task anew. Any other failure (for example, leadership
/// lost in the middle of a pass) is returned by ``finish()`` too.
struct UpdatePipeline {
    private let continuation: AsyncStream<[SwarmTask]>.Continuation
    private let worker: Task<Outcome, Never>
    private var chunk: [SwarmTask] = []
    /// Every assignment handed over, to be checked against the store after a failure.
    private(set) var assignments: [SwarmTask] = []

    private let chunkSize: Int
    /// The size of the chunk being filled: small at first, so that committing starts
    /// early in a pass, then doubling up to `chunkSize`.
    private var fill: Int

    /// What the committing task reports at the end.
    struct Outcome {
        /// The first failure; later chunks were not written.
        var failure: (any Error)?
        /// Updates skipped because their task changed or is gone.
        var skipped: [SwarmTask] = []
    }

    init(store: MemoryStore, chunkSize: Int = MemoryStore.maxChangesPerTransaction, firstChunk: Int = 25) {
        let (stream, continuation) = AsyncStream.makeStream(of: [SwarmTask].self)
        self.continuation = continuation
        self.chunkSize = chunkSize
        fill = max(1, min(firstChunk, chunkSize))
        worker = Task {
            var outcome = Outcome()
            for await updates in stream where outcome.failure == nil && !Task.isCancelled {
                // An update that overflows a transaction is run again on the next one, so
                // a skip is remembered by position, once.
                var skipped = Set<Int>()
                do {
                    try await store.batch { batch in
                        for (k, u) in updates.enumerated() {
                            try await batch.update { tx in
                                do throws(StoreError) {
                                    try tx.update(u)
                                    skipped.remove(k)
                                } catch .sequenceConflict, .notFound {
                                    skipped.insert(k)
                                }
                            }
                        }
                    }
                } catch {
                    outcome.failure = error
                }
                outcome.skipped += skipped.sorted().map { updates[$0] }
            }
            return outcome
        }
    }

    /// Queues one update; a full chunk is handed to the committing task at once.
    mutating func add(_ update: SwarmTask) {
        chunk.append(update)
        if update.status.state == .assigned { assignments.append(update) }
        if chunk.count >= fill {
            continuation.yield(chunk)
            fill = min(2 * fill, chunkSize)
            chunk = []
            chunk.reserveCapacity(fill)
        }
    }

    /// Hands over what is left and waits until everything is committed.
    mutating func finish() async -> Outcome {
        if !chunk.isEmpty { continuation.yield(chunk) }
        chunk = []
        continuation.finish()
        let worker = worker
        return await withTaskCancellationHandler { await worker.value } onCancel: { worker.cancel() }
    }
}
