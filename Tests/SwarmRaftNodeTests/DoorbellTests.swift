import SwarmConcurrency
import Testing

/// The doorbell the agent's status reporter waits on: it must work for every session, not
/// only the first (an `AsyncStream` ends for good once a consumer is cancelled).
@Suite struct DoorbellTests {
    @Test func aRingBeforeTheWaitIsKeptAndConsumedOnce() async {
        let bell = Doorbell()
        bell.ring()
        bell.ring()
        await bell.wait()  // returns at once: it rang
        let second = Task { await bell.wait(); return true }
        try? await Task.sleep(for: .milliseconds(50))
        bell.ring()
        #expect(await second.value)
    }

    @Test func aCancelledWaiterLeavesTheBellUsableForTheNextOne() async {
        let bell = Doorbell()
        for _ in 0..<3 {
            // A session's reporter waits, and its session ends (the task is cancelled).
            let session = Task { await bell.wait() }
            try? await Task.sleep(for: .milliseconds(20))
            session.cancel()
            await session.value
        }
        let next = Task { await bell.wait(); return !Task.isCancelled }
        try? await Task.sleep(for: .milliseconds(20))
        bell.ring()
        #expect(await next.value, "the next session's reporter is woken by a ring")
    }
}
