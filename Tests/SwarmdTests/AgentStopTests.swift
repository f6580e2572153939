import Foundation
import SwarmAPI
import Testing

/// The agent stops tasks concurrently, each at its own pace, with the executor's waits
/// off Swift's cooperative pool: removing a service of tasks that ignore SIGTERM takes
/// about one grace period, not one per task.
@Suite(.serialized) struct AgentStopTests {
    @Test func removingTasksThatIgnoreSIGTERMTakesAboutOneGracePeriod() async throws {
        let c = try SwarmdCluster()
        try c.startManager()
        _ = try await c.readyCluster()
        let marker = String(Int.random(in: 100_000_000...999_999_999))
        let created = try c.ctl("service", "create", "--name", "stubborn", "--command", "/bin/sh", "--args=-c",
                                "--args", "trap '' TERM; sleep \(marker)", "--replicas", "20", "--stop-grace-period", "2s")
        #expect(created.status == 0, "\(created.output)")
        try await c.waitFor("20 processes that ignore SIGTERM", seconds: 60) {
            SwarmdCluster.pids(matching: ["sleep", marker]).count == 20
        }
        let started = Date()
        #expect(try c.ctl("service", "rm", "stubborn").status == 0)
        try await c.waitFor("every process gone", seconds: 60) { SwarmdCluster.pids(matching: ["sleep", marker]).isEmpty }
        let took = Date().timeIntervalSince(started)
        // One at a time this took 20 grace periods (40 s).
        #expect(took < 8, "20 tasks with a 2 s grace period took \(took) s to stop")
        // And the node keeps serving: a new task starts at once.
        #expect(try c.ctl("service", "create", "--name", "after", "--command", "/bin/sleep", "--args", marker).status == 0)
        try await c.waitFor("the next task running", seconds: 15) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).count == 1 }
        #expect(c.terminate("manager") == 0)
        #expect(SwarmdCluster.pids(matching: ["/bin/sleep", marker]).isEmpty, "a node shut down on purpose stops its tasks")
    }
}
