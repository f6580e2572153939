import Foundation
import NIOCore
import NIOHTTP1
import SwarmAPI
import SwarmPluginKit
import SwarmTaskFiles
import SwiftProtobuf
import Synchronization

/// Runs a task as a Docker container through the Engine API: pulls the image if it is
/// missing, creates the container (named `swarm-<task ID>`, configured by
/// ``ContainerConfig``), starts it, copies its output to the task's log files
/// (``ContainerLogs``), follows it through the engine's events stream (``EngineEvents``)
/// and tells the host of its exit and health changes, stops it with its stop signal and
/// grace period, and removes it. After a restart of the node, `prepare` finds an existing
/// container by its name and adopts it; an adopted container is never started again.
final class DockerExecutor: Executor {
    let engine: DockerEngine
    let events: EngineEvents
    /// Tasks whose container a previous run of the node made.
    private let adopted = Mutex<Set<String>>([])
    /// The work directory of each task, to remove its secret and config files with it.
    private let workDirs = Mutex<[String: String]>([:])

    init(engine: DockerEngine, notifier: TaskNotifier) {
        self.engine = engine
        events = EngineEvents(engine: engine, notifier: notifier)
    }

    var notifies: Bool { true }

    func unavailable() -> String? { engine.unreachable() }

    static func name(_ taskID: String) -> String { "swarm-\(taskID)" }

    func container(_ taskID: String) throws -> EngineEvents.Container {
        guard let c = events.container(taskID) else { throw ExecutorError("task \(taskID) has no container") }
        return c
    }

    func prepare(_ task: ExecTask) throws {
        let t: SwarmTask
        do { t = try SwarmTask(serializedBytes: task.taskProto) } catch {
            throw ExecutorError("task \(task.taskID) does not decode: \(error)")
        }
        guard case .container(let spec)? = t.spec.runtime, !spec.image.isEmpty else {
            throw ExecutorError("task \(task.taskID) has no container image")
        }
        try FileManager.default.createDirectory(atPath: task.workDir, withIntermediateDirectories: true)
        // Secrets and configs: files on a tmpfs private to the task, bound into the container.
        let files: TaskFiles.Written
        do { files = try TaskFiles.write(t, workDir: task.workDir) } catch {
            TaskFiles.remove(workDir: task.workDir, taskID: t.id)
            throw ExecutorError("task \(task.taskID): \(error)")
        }
        // From here on the files go with the task, even if the container is never made.
        workDirs.withLock { $0[t.id] = task.workDir }
        // From here on no exit of the container can be missed.
        try events.awaitConnected()
        let health: ExecHealth = t.spec.healthcheck.test.isEmpty ? .none : .starting
        // Adopt the container a previous run of the node made.
        let (status, data) = try call { try engine.call(.GET, "/containers/\(Self.name(t.id))/json") }
        if status == 200, let id = DockerEngine.object(data)["Id"] as? String {
            events.follow(t.id, .init(id: id, health: health))
            adopted.withLock { _ = $0.insert(t.id) }
            events.inspect(t.id)  // it may have exited, or be healthy already
            return
        }
        try call { try engine.ensureImage(spec.image) }
        let created = try call {
            try engine.expect([201], .POST, "/containers/create", query: [("name", Self.name(t.id))],
                              json: ContainerConfig.body(t, spec, files: files))
        }
        guard let id = DockerEngine.object(created)["Id"] as? String else {
            throw ExecutorError("the engine created no container for task \(t.id)")
        }
        events.follow(t.id, .init(id: id, health: health))
    }

    func start(_ task: ExecTask) throws {
        let id = try container(task.taskID).id
        if !adopted.withLock({ $0.contains(task.taskID) }) {
            try call { try engine.expect([204, 304], .POST, "/containers/\(id)/start") }
        }
        // The pid, once: for `task inspect`, not to follow the container.
        if let (status, data) = try? engine.call(.GET, "/containers/\(id)/json"), status == 200,
           let pid = (DockerEngine.object(data)["State"] as? [String: Any])?["Pid"] as? Int {
            events.setPid(task.taskID, Int32(pid))
        }
        // After a restart of the node, output already copied is not copied again.
        let copied = (try? FileManager.default.attributesOfItem(atPath: task.workDir + "/stdout.log")[.modificationDate] as? Date)
        ContainerLogs.follow(engine, container: id, workDir: task.workDir, since: copied.map { Int($0.timeIntervalSince1970) } ?? 0)
    }

    /// What the events stream last said: never a call to the engine.
    func status(taskID: String) throws -> ExecStatus {
        let c = try container(taskID)
        return ExecStatus(exited: c.exit != nil, exitCode: c.exit ?? 0, pid: c.pid, health: c.health, message: c.message)
    }

    func shutdown(taskID: String, graceNanoseconds: Int64) throws {
        guard let c = events.container(taskID), c.exit == nil else { return }
        let seconds = max(0, Int((graceNanoseconds + 999_999_999) / 1_000_000_000))
        try call {
            try engine.expect([204, 304, 404], .POST, "/containers/\(c.id)/stop", query: [("t", String(seconds))],
                              timeout: .seconds(Int64(seconds) + 30))
        }
        settle(taskID)
    }

    func terminate(taskID: String) throws {
        guard let c = events.container(taskID), c.exit == nil else { return }
        try call { try engine.expect([204, 404, 409], .POST, "/containers/\(c.id)/kill") }
        settle(taskID)
    }

    /// After the engine stopped a container, its `die` event may still be on its way:
    /// wait for it briefly, then ask the engine once.
    private func settle(_ taskID: String) {
        if !events.waitForExit(taskID, upTo: 5) { events.inspect(taskID) }
    }

    func remove(taskID: String) throws {
        let id = events.container(taskID)?.id ?? Self.name(taskID)
        events.forget(taskID)
        adopted.withLock { _ = $0.remove(taskID) }
        try call { try engine.expect([204, 404], .DELETE, "/containers/\(id)", query: [("force", "true")]) }
        if let dir = workDirs.withLock({ $0.removeValue(forKey: taskID) }) { TaskFiles.remove(workDir: dir, taskID: taskID) }
    }

    /// Runs an engine call, turning its failure into the executor's error.
    @discardableResult
    func call<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as DockerEngine.Failure { throw ExecutorError(e.message) }
    }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "docker", version: "0.1.0") { plugin in
        // DOCKER_HOST (swarmd's --docker-host sets it), else the engine's default socket.
        let engine = DockerEngine(host: ProcessInfo.processInfo.environment["DOCKER_HOST"])
        // Registered even when the engine does not answer: the node then reports the
        // executor unavailable (the host asks `available` every few seconds), and the
        // scheduler places no container task here until the engine answers.
        if let failure = engine.unreachable() { plugin.log("the docker engine does not answer yet: \(failure)") }
        try plugin.register(executor: DockerExecutor(engine: engine, notifier: plugin.notifier), as: "docker")
    }
}
