import SwarmAPI
@testable import SwarmAgent
import SwiftProtobuf
import Testing

/// The agent's decisions without gRPC, threads or processes: assignments in, actions out.
@Suite struct AgentCoreTests {
    static func task(_ id: String, desired: SwarmTaskState = .running, state: SwarmTaskState = .assigned,
                     runtime: String = "process") -> SwarmTask {
        .with {
            $0.id = id
            $0.desiredState = desired
            $0.status.state = state
            $0.spec.process.command = "/bin/true"
            if runtime != "process" { $0.spec.runtimeName = runtime }
        }
    }

    static func change(_ t: SwarmTask, remove: Bool = false) -> SwarmAssignmentChange {
        .with { $0.task = t; $0.action = remove ? .remove : .update }
    }

    @Test func assignedTasksStartOnceAndStopWhenTheirDesiredStateMoves() {
        var core = AgentCore(recovered: [:], executors: ["process"])
        let a = Self.task("a")
        #expect(core.handle(.assignments(complete: true, [Self.change(a)])) == [.start(a)])
        #expect(core.handle(.assignments(complete: false, [Self.change(a)])).isEmpty, "a task is started once")
        #expect(core.handle(.assignments(complete: false, [Self.change(Self.task("a", desired: .shutdown))])) == [.stop(taskID: "a")])
        #expect(core.handle(.assignments(complete: false, [Self.change(Self.task("a", desired: .remove))])) == [.remove(taskID: "a")])
        #expect(core.runners.isEmpty)
        // The database forgets it once its runner has released it.
        #expect(core.handle(.removed(taskID: "a")) == [.forget(taskID: "a")])
    }

    @Test func aCompleteSetRemovesWhatItNoLongerLists() {
        var core = AgentCore(recovered: [:], executors: ["process"])
        _ = core.handle(.assignments(complete: true, [Self.change(Self.task("a")), Self.change(Self.task("b"))]))
        #expect(core.runners == ["a", "b"])
        let actions = core.handle(.assignments(complete: true, [Self.change(Self.task("b")), Self.change(Self.task("c"))]))
        #expect(actions == [.remove(taskID: "a"), .start(Self.task("c"))], "removals come before new starts")
        #expect(core.handle(.assignments(complete: false, [Self.change(Self.task("b"), remove: true)])) == [.remove(taskID: "b")])
    }

    @Test func tasksFromBeforeARestartAreAdoptedOrCleanedUp() {
        let running = TaskDB.Record(task: Self.task("keep"), status: .with { $0.state = .running }, reported: true)
        let ended = TaskDB.Record(task: Self.task("done"), status: .with { $0.state = .complete }, reported: false)
        let moved = TaskDB.Record(task: Self.task("moved"), status: .with { $0.state = .running }, reported: true)
        let stopped = TaskDB.Record(task: Self.task("stopped"), status: .with { $0.state = .running }, reported: true)
        var core = AgentCore(recovered: ["keep": running, "done": ended, "moved": moved, "stopped": stopped], executors: ["process"])
        let actions = core.handle(.assignments(complete: true, [
            Self.change(Self.task("keep", state: .running)),
            Self.change(Self.task("done", state: .running)),
            Self.change(Self.task("stopped", desired: .shutdown, state: .running)),
        ]))
        #expect(actions.contains(.start(Self.task("keep", state: .running))), "a task still assigned is adopted")
        #expect(!actions.contains { if case .start(let t) = $0 { t.id == "done" } else { false } }, "an ended task is not run again")
        #expect(actions.contains(.cleanUpLeftover(moved.task)) && actions.contains(.forget(taskID: "moved")),
                "a task the cluster moved elsewhere is stopped and forgotten")
        #expect(actions.contains(.cleanUpLeftover(stopped.task)))
        #expect(actions.contains { if case .report("stopped", let s) = $0 { s.state == .shutdown } else { false } })
        #expect(core.recovered.isEmpty)
    }

    @Test func anUnknownExecutorIsRejectedAndShutdownStopsEverything() {
        var core = AgentCore(recovered: [:], executors: ["process"])
        let actions = core.handle(.assignments(complete: true, [Self.change(Self.task("d", runtime: "docker")), Self.change(Self.task("p"))]))
        #expect(actions.count == 2)
        guard case .report("d", let status) = actions[0] else { Issue.record("\(actions)"); return }
        #expect(status.state == .rejected && status.err.contains("executor \"docker\" is not loaded"))
        #expect(core.handle(.shutdown) == [.stop(taskID: "p")])
    }
}
