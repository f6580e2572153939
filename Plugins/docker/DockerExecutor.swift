import Foundation
import NIOCore
import NIOHTTP1
import SwarmAPI
import SwarmPluginKit
import SwiftProtobuf
import Synchronization

/// Runs a task as a Docker container through the Engine API: pulls the image if it is
/// missing, creates the container (named `swarm-<task ID>`, labelled with the task,
/// service, slot and node) with the spec's command, args, env, directory, CPU and memory
/// limits and reservations, GPUs and stop grace period, starts it, copies its output to
/// the task's log files (``ContainerLogs``), reports its exit code, stops it with the grace
/// period and removes it. After a restart of the node, `prepare` finds an existing
/// container by its name and adopts it.
final class DockerExecutor: Executor {
    let engine: DockerEngine
    /// Container IDs by task.
    private let containers = Mutex<[String: String]>([:])
    /// Tasks whose container a previous run of the node made: never started again (one
    /// that exited while the node was down reports its exit instead).
    private let adopted = Mutex<Set<String>>([])

    init(engine: DockerEngine) { self.engine = engine }

    static func name(_ taskID: String) -> String { "swarm-\(taskID)" }

    func container(_ taskID: String) throws -> String {
        guard let id = containers.withLock({ $0[taskID] }) else { throw ExecutorError("task \(taskID) has no container") }
        return id
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
        // Adopt the container a previous run of the node made.
        let (status, data) = try call { try engine.call(.GET, "/containers/\(Self.name(t.id))/json") }
        if status == 200, let id = DockerEngine.object(data)["Id"] as? String {
            containers.withLock { $0[t.id] = id }
            adopted.withLock { _ = $0.insert(t.id) }
            return
        }
        try call { try engine.ensureImage(spec.image) }
        let created = try call {
            try engine.expect([201], .POST, "/containers/create", query: [("name", Self.name(t.id))], json: Self.createBody(t, spec))
        }
        guard let id = DockerEngine.object(created)["Id"] as? String else {
            throw ExecutorError("the engine created no container for task \(t.id)")
        }
        containers.withLock { $0[t.id] = id }
    }

    /// The body of `POST /containers/create` for a task.
    static func createBody(_ t: SwarmTask, _ spec: SwarmContainerSpec) -> [String: Any] {
        var env = ["SWARM_TASK_ID=\(t.id)", "SWARM_TASK_SLOT=\(t.slot)", "SWARM_SERVICE_ID=\(t.serviceID)",
                   "SWARM_SERVICE_NAME=\(t.serviceAnnotations.name)", "SWARM_NODE_ID=\(t.nodeID)"]
        var host: [String: Any] = [:]
        let limits = t.spec.resources.limits
        let reservations = t.spec.resources.reservations
        if limits.nanoCpus > 0 { host["NanoCpus"] = limits.nanoCpus }
        if limits.memoryBytes > 0 { host["Memory"] = limits.memoryBytes }
        if reservations.memoryBytes > 0 { host["MemoryReservation"] = reservations.memoryBytes }
        if reservations.nanoCpus > 0 { host["CpuShares"] = max(2, Int(reservations.nanoCpus * 1024 / 1_000_000_000)) }
        if !t.assignedGpus.isEmpty {
            let ids = t.assignedGpus.map(\.uuid)
            host["DeviceRequests"] = [["Driver": "nvidia", "DeviceIDs": ids, "Capabilities": [["gpu"]]]]
            env += ["NVIDIA_VISIBLE_DEVICES=\(ids.joined(separator: ","))"]
        }
        var labels = spec.labels
        labels["com.swift-swarm.task.id"] = t.id
        labels["com.swift-swarm.service.id"] = t.serviceID
        labels["com.swift-swarm.service.name"] = t.serviceAnnotations.name
        labels["com.swift-swarm.task.slot"] = String(t.slot)
        labels["com.swift-swarm.node.id"] = t.nodeID
        var body: [String: Any] = ["Image": spec.image, "Env": env + spec.env, "Labels": labels, "HostConfig": host]
        if !spec.command.isEmpty { body["Entrypoint"] = spec.command }
        if !spec.args.isEmpty { body["Cmd"] = spec.args }
        if !spec.dir.isEmpty { body["WorkingDir"] = spec.dir }
        if spec.stopGracePeriod > 0 { body["StopTimeout"] = max(1, Int(spec.stopGracePeriod / 1_000_000_000)) }
        return body
    }

    func start(_ task: ExecTask) throws {
        let id = try container(task.taskID)
        if !adopted.withLock({ $0.contains(task.taskID) }) {
            try call { try engine.expect([204, 304], .POST, "/containers/\(id)/start") }
        }
        // After a restart of the node, output already copied is not copied again.
        let copied = (try? FileManager.default.attributesOfItem(atPath: task.workDir + "/stdout.log")[.modificationDate] as? Date)
        ContainerLogs.follow(engine, container: id, workDir: task.workDir, since: copied.map { Int($0.timeIntervalSince1970) } ?? 0)
    }

    func status(taskID: String) throws -> ExecStatus {
        let id = try container(taskID)
        let (status, data) = try call { try engine.call(.GET, "/containers/\(id)/json") }
        if status == 404 { throw ExecutorError("the container of task \(taskID) is gone (removed behind the node's back)") }
        guard status == 200 else { throw ExecutorError(DockerEngine.message(data, status: status)) }
        let state = DockerEngine.object(data)["State"] as? [String: Any] ?? [:]
        let running = (state["Running"] as? Bool ?? false) || (state["Restarting"] as? Bool ?? false)
        let started = (state["StartedAt"] as? String).map { !$0.hasPrefix("0001-") } ?? false
        return ExecStatus(exited: started && !running, exitCode: Int32(state["ExitCode"] as? Int ?? 0),
                          pid: Int32(state["Pid"] as? Int ?? 0))
    }

    func shutdown(taskID: String, graceNanoseconds: Int64) throws {
        guard let id = containers.withLock({ $0[taskID] }) else { return }
        let seconds = max(0, Int((graceNanoseconds + 999_999_999) / 1_000_000_000))
        try call {
            try engine.expect([204, 304, 404], .POST, "/containers/\(id)/stop", query: [("t", String(seconds))],
                              timeout: .seconds(Int64(seconds) + 30))
        }
    }

    func terminate(taskID: String) throws {
        guard let id = containers.withLock({ $0[taskID] }) else { return }
        try call { try engine.expect([204, 404, 409], .POST, "/containers/\(id)/kill") }
    }

    func remove(taskID: String) throws {
        let id = containers.withLock { $0.removeValue(forKey: taskID) } ?? Self.name(taskID)
        adopted.withLock { _ = $0.remove(taskID) }
        try call { try engine.expect([204, 404], .DELETE, "/containers/\(id)", query: [("force", "true")]) }
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
        // A node whose engine does not answer does not offer the executor, so the
        // scheduler places no container task on it.
        if let failure = engine.unreachable() {
            plugin.log("not offering the docker executor: \(failure)")
            return
        }
        try plugin.register(executor: DockerExecutor(engine: engine), as: "docker")
    }
}
