import Foundation
import Logging
import SwarmAPI
import SwarmConcurrency
import SwarmPluginHost
import SwiftProtobuf
import Synchronization

/// Drives one task through its executor: ACCEPTED, PREPARING, READY, STARTING, RUNNING,
/// then COMPLETE, FAILED or SHUTDOWN, reporting each state. States only move forward.
final class TaskRunner: Sendable {
    let task: SwarmTask
    let executor: ExecutorClient
    let workDir: String
    let report: @Sendable (String, SwarmTaskStatus) -> Void
    let logger: Logger
    private let state = Mutex<(reported: SwarmTaskState, stopRequested: Bool, removed: Bool)>((.assigned, false, false))
    /// Fired once ``stop()`` has asked the executor to stop the task; ``serve()`` then ends.
    private let stopped = StopSignal()

    init(task: SwarmTask, executor: ExecutorClient, workDir: String, logger: Logger,
         report: @escaping @Sendable (String, SwarmTaskStatus) -> Void) {
        self.task = task
        self.executor = executor
        self.workDir = workDir
        self.logger = logger
        self.report = report
    }

    var proto: [UInt8] { (try? task.serializedBytes()) ?? [] }

    func set(_ s: SwarmTaskState, _ message: String, exitCode: Int32 = 0, pid: Int32 = 0, err: String = "") {
        let advance = state.withLock { st -> Bool in
            guard st.reported.canMove(to: s) else { return false }
            st.reported = s
            return true
        }
        guard advance else { return }
        var status = SwarmTaskStatus()
        status.state = s
        status.message = message
        status.err = err
        status.exitCode = exitCode
        status.pid = pid
        status.timestamp = Int64(Date().timeIntervalSince1970 * 1e9)
        report(task.id, status)
    }

    var stopRequested: Bool { state.withLock { $0.stopRequested } }

    /// Starts (or, after a node restart, adopts) the task and follows it until it ends or
    /// ``stop()`` is called; the agent runs this as one of its child tasks.
    func serve() async { await stopped.run { await self.run() } }

    private func run() async {
        set(.accepted, "accepted")
        do {
            set(.preparing, "preparing")
            try executor.prepare(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
            set(.ready, "prepared")
            if stopRequested { set(.shutdown, "shut down before start"); return }
            set(.starting, "starting")
            try executor.start(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
            let pid = try executor.status(taskID: task.id).pid
            set(.running, "started", pid: pid)
            while true {
                let s = try executor.status(taskID: task.id)
                if s.exited {
                    if stopRequested {
                        set(.shutdown, "shut down", exitCode: s.exitCode, pid: s.pid)
                    } else if s.exitCode == 0 {
                        set(.complete, "finished", exitCode: 0, pid: s.pid)
                    } else {
                        set(.failed, "exited with code \(s.exitCode)", exitCode: s.exitCode, pid: s.pid,
                            err: "task exited with code \(s.exitCode)")
                    }
                    return
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        } catch is CancellationError {
            return
        } catch {
            if stopRequested { return }  // stop() reports the outcome
            logger.warning("task \(task.id): \(error)")
            set(.rejected, "executor refused the task", err: "\(error)")
        }
    }

    /// Stops the task (SIGTERM, then SIGKILL after the grace period).
    func stop() {
        state.withLock { $0.stopRequested = true }
        let grace = task.spec.process.stopGracePeriod > 0 ? task.spec.process.stopGracePeriod : 10_000_000_000
        do {
            try executor.shutdown(taskID: task.id, graceNanoseconds: grace)
        } catch {
            // Not started yet, or already gone: nothing left to stop.
        }
        stopped.fire()
        let code = (try? executor.status(taskID: task.id))?.exitCode ?? 0
        set(.shutdown, "shut down", exitCode: code)
    }

    /// Stops the task and releases everything the executor holds for it.
    func remove() {
        stop()
        try? executor.remove(taskID: task.id)
        state.withLock { $0.removed = true }
    }
}
