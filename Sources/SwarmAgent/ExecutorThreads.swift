import Foundation

/// Runs an executor's blocking calls (prepare, start, shutdown, remove) on a thread of
/// their own, so that a call that waits (a grace period, an image pull) never holds one of
/// the few threads of Swift's cooperative pool, and calls for different tasks overlap.
enum ExecutorThreads {
    static func run<R: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<R, any Error>) in
            let thread = Thread { c.resume(with: Result { try body() }) }
            thread.name = name
            thread.start()
        }
    }
}
