import SwarmAPI
@testable import SwarmAgent
import SwarmPluginABI
import SwarmPluginHost
import Testing

/// A running task's decisions without executors or threads: what the executor says, stop
/// requests and health verdicts in; stops, reports and the end out.
@Suite struct TaskFollowerTests {
    static func running(health: Int32 = 0, message: String = "") -> TaskFollower.Event {
        .observed(ExecutorTaskStatus(exited: false, exitCode: 0, pid: 7, health: health, message: message))
    }
    static func exited(_ code: Int32, message: String = "") -> TaskFollower.Event {
        .observed(ExecutorTaskStatus(exited: true, exitCode: code, pid: 7, message: message))
    }
    static func states(_ actions: [TaskFollower.Action]) -> [SwarmTaskState] {
        actions.compactMap { if case .report(let r) = $0 { return r.state } else { return nil } }
    }

    @Test func anExitEndsTheTaskCompleteOrFailedWithItsCode() {
        var f = TaskFollower(probing: false)
        #expect(f.handle(Self.running()).isEmpty)
        #expect(f.handle(Self.exited(0)) == [.report(.init(state: .complete, message: "finished", health: .none)), .finish])
        #expect(f.handle(Self.exited(0)).isEmpty, "nothing after the end")
        var g = TaskFollower(probing: false)
        let failed = g.handle(Self.exited(3, message: "OOM-killed"))
        #expect(failed == [.report(.init(state: .failed, message: "exited with code 3 (OOM-killed)",
                                          err: "task exited with code 3 (OOM-killed)", exitCode: 3, health: .none)), .finish])
    }

    @Test func aStopIsAskedForOnceAndItsEndIsReportedAsShutdown() {
        var f = TaskFollower(probing: false)
        #expect(f.handle(.stopRequested) == [.shutdown])
        #expect(f.handle(.stopRequested).isEmpty, "one shutdown")
        #expect(f.handle(.shutdownReturned).isEmpty)
        #expect(Self.states(f.handle(Self.exited(137))) == [.shutdown])
        // An executor that could not make the task die: the runner says so and moves on.
        var g = TaskFollower(probing: false)
        _ = g.handle(.stopRequested)
        #expect(g.handle(Self.running()).isEmpty, "still waiting for the shutdown call")
        _ = g.handle(.shutdownReturned)
        let gaveUp = g.handle(Self.running())
        #expect(Self.states(gaveUp) == [.shutdown] && gaveUp.last == .finish)
    }

    @Test func theEnginesHealthVerdictsAreReportedAndUnhealthyStopsTheTask() {
        var f = TaskFollower(probing: false)
        #expect(Self.states(f.handle(Self.running(health: Int32(SWARM_HEALTH_STARTING)))) == [.running])
        #expect(f.handle(Self.running(health: Int32(SWARM_HEALTH_STARTING))).isEmpty, "a verdict is reported once")
        let healthy = f.handle(Self.running(health: Int32(SWARM_HEALTH_HEALTHY)))
        #expect(healthy == [.report(.init(state: .running, message: "healthy", health: .healthy))])
        let sick = f.handle(Self.running(health: Int32(SWARM_HEALTH_UNHEALTHY), message: "no pong"))
        #expect(sick == [.report(.init(state: .running, message: "unhealthy: no pong", health: .unhealthy)), .shutdown])
        _ = f.handle(.shutdownReturned)
        let end = f.handle(Self.exited(137))
        #expect(end.first == .report(.init(state: .failed, message: "unhealthy: no pong", err: "task unhealthy: no pong",
                                           exitCode: 137, health: .unhealthy)))
    }

    @Test func theAgentsOwnProbeStartsTheTaskStartingAndAStopComesBeforeALaterVerdict() {
        var f = TaskFollower(probing: true)
        #expect(f.health == .starting)
        #expect(Self.states(f.handle(.probed(.healthy, failure: ""))) == [.running])
        #expect(f.handle(.stopRequested) == [.shutdown])
        // Unhealthy while already stopping: reported, but no second shutdown.
        #expect(f.handle(.probed(.unhealthy, failure: "x")) == [.report(.init(state: .running, message: "unhealthy: x", health: .unhealthy))])
        _ = f.handle(.shutdownReturned)
        #expect(Self.states(f.handle(Self.exited(0))) == [.shutdown], "the stop came first")
    }
}
