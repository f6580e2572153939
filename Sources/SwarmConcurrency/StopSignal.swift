import Synchronization

/// A one-shot signal that a long-lived child task waits for: ``fire()`` once, and every
/// ``wait()`` returns (as does a wait whose task is cancelled).
public final class StopSignal: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Whether ``fire()`` has been called.
    public var isFired: Bool { state.withLock { $0.fired } }

    /// Fires the signal: every wait, present and future, returns.
    public func fire() {
        let waiters = state.withLock { s in
            s.fired = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }

    /// Returns once the signal has fired, or the waiting task is cancelled.
    public func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.fired || Task.isCancelled { return true }
                    s.waiters.append(c)
                    return false
                }
                if now { c.resume() }
            }
        } onCancel: {
            let waiters = state.withLock { s in
                defer { s.waiters = [] }
                return s.waiters
            }
            for w in waiters { w.resume() }
        }
    }

    /// Returns once the signal has fired, or after `timeout`, or when the waiting task is
    /// cancelled, whichever comes first.
    public func wait(upTo timeout: Duration) async {
        if isFired { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Runs `body` until it returns or the signal fires, whichever comes first; the other
    /// is cancelled (so a body blocked in a call that honours cancellation ends).
    public func run(_ body: @escaping @Sendable () async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await body() }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
    }
}
