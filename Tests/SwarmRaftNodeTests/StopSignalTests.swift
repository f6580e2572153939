import SwarmConcurrency
import Synchronization
import Testing

/// The one-shot stop signal that ends a peer sender's or a task runner's child task.
@Suite struct StopSignalTests {
    @Test func firingEndsABodyThatWouldRunForeverAndLaterWaitsReturnAtOnce() async {
        let signal = StopSignal()
        let ended = Mutex(false)
        async let served: Void = signal.run {
            // Would sleep for an hour: only cancellation ends it.
            try? await Task.sleep(for: .seconds(3600))
            ended.withLock { $0 = true }
        }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(!signal.isFired)
        signal.fire()
        await served
        #expect(ended.withLock { $0 }, "the body was cancelled and finished")
        #expect(signal.isFired)
        await signal.wait()  // returns at once once fired
    }

    @Test func aBodyThatReturnsEndsTheRunWithoutTheSignal() async {
        let signal = StopSignal()
        await signal.run {}
        #expect(!signal.isFired)
    }

    @Test func cancellingAWaitEndsIt() async {
        let signal = StopSignal()
        let waiting = Task { await signal.wait() }
        try? await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await waiting.value
        #expect(!signal.isFired)
    }
}
