import SwarmPluginABI
#if canImport(Glibc)
import Glibc
#endif

/// What an executor receives for a task.
public struct ExecTask: Sendable {
    public let taskID: String
    public let serviceID: String
    /// A directory for the task's logs and files, created by the host.
    public let workDir: String
    /// The task as `swarm.v1.Task` protobuf bytes.
    public let taskProto: [UInt8]
}

/// A task's health as an executor sees it (ABI 1.5).
public enum ExecHealth: Int32, Sendable {
    /// The executor runs no health check of its own.
    case none = 0
    case starting = 1
    case healthy = 2
    case unhealthy = 3
}

/// What an executor says about a task.
public struct ExecStatus: Sendable, Equatable {
    public var exited: Bool
    public var exitCode: Int32
    public var pid: Int32
    /// The health from the executor's own check (a container engine's), ABI 1.5.
    public var health: ExecHealth
    /// Why the task is unhealthy, or a note on how it ended; at most 255 bytes reach the host.
    public var message: String

    public init(exited: Bool, exitCode: Int32, pid: Int32, health: ExecHealth = .none, message: String = "") {
        self.exited = exited
        self.exitCode = exitCode
        self.pid = pid
        self.health = health
        self.message = message
    }
}

/// Tells the host that a task's status changed, so that it calls `status` again (ABI 1.5).
/// Valid for the life of the process; callable from any thread.
public struct TaskNotifier: Sendable {
    nonisolated(unsafe) let host: SwarmHost?

    /// Whether the host listens (a host older than ABI 1.5 does not).
    public var isListening: Bool { host != nil }

    /// Tells the host that the status of `taskID` changed.
    public func changed(_ taskID: String) {
        guard let host, let notify = host.pointee.task_changed else { return }
        taskID.withCString { notify(host.pointee.host_ctx, swarm_str(data: $0, len: strlen($0))) }
    }
}

/// An error an executor reports to the host.
public struct ExecutorError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A task runtime. Calls for one task never overlap; calls for different tasks may.
public protocol Executor: Sendable {
    /// Gets everything ready; also called again after a restart of the node, when it
    /// should adopt a task that is still running.
    func prepare(_ task: ExecTask) throws
    func start(_ task: ExecTask) throws
    /// The current state, without blocking.
    func status(taskID: String) throws -> ExecStatus
    /// Asks the task to stop; forces it after `graceNanoseconds`.
    func shutdown(taskID: String, graceNanoseconds: Int64) throws
    func terminate(taskID: String) throws
    func remove(taskID: String) throws
    /// Nil when the executor can run tasks now, otherwise why not (ABI 1.5). May block for
    /// a few seconds. Always available by default.
    func unavailable() -> String?
    /// Whether the executor tells the host of every change of a started task's status
    /// through a ``TaskNotifier`` (ABI 1.5), so that the host need not poll. False by default.
    var notifies: Bool { get }
}

extension Executor {
    public func unavailable() -> String? { nil }
    public var notifies: Bool { false }
}

final class ExecutorBox {
    let executor: any Executor
    init(_ e: any Executor) { executor = e }
    static func from(_ ctx: UnsafeMutableRawPointer?) -> any Executor {
        Unmanaged<ExecutorBox>.fromOpaque(ctx!).takeUnretainedValue().executor
    }
}

extension swarm_exec_task {
    var swift: ExecTask {
        ExecTask(taskID: task_id.string, serviceID: service_id.string, workDir: work_dir.string,
                 taskProto: task_proto_len > 0 ? Array(UnsafeBufferPointer(start: task_proto, count: task_proto_len)) : [])
    }
}

/// Runs `body`, turning a thrown error into SWARM_ERR_FAILED and a message for the host.
func report(_ errorOut: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ body: () throws -> Void) -> swarm_status {
    do {
        try body()
        return SWARM_OK
    } catch {
        errorOut?.pointee = strdup("\(error)")
        return SWARM_ERR_FAILED
    }
}

extension PluginRegistrar {
    /// Registers `executor` under `name`.
    public func register(executor: some Executor, as name: String) throws {
        var v = swarm_executor_v1()
        v.struct_size = MemoryLayout<swarm_executor_v1>.size
        v.ctx = Unmanaged.passRetained(ExecutorBox(executor)).toOpaque()
        v.prepare = { ctx, task, err in report(err) { try ExecutorBox.from(ctx).prepare(task!.pointee.swift) } }
        v.start = { ctx, task, err in report(err) { try ExecutorBox.from(ctx).start(task!.pointee.swift) } }
        v.status = { ctx, id, out, err in
            report(err) {
                // An older host passes a shorter struct: write only as far as it reaches.
                var raw = try ExecutorBox.from(ctx).status(taskID: id.string).raw
                let size = min(out!.pointee.struct_size, MemoryLayout<swarm_exec_status>.size)
                raw.struct_size = size
                withUnsafeBytes(of: &raw) { UnsafeMutableRawPointer(out!).copyMemory(from: $0.baseAddress!, byteCount: size) }
            }
        }
        v.shutdown = { ctx, id, grace, err in report(err) { try ExecutorBox.from(ctx).shutdown(taskID: id.string, graceNanoseconds: grace) } }
        v.terminate = { ctx, id, err in report(err) { try ExecutorBox.from(ctx).terminate(taskID: id.string) } }
        v.remove = { ctx, id, err in report(err) { try ExecutorBox.from(ctx).remove(taskID: id.string) } }
        v.free_error = { _, text in free(text) }
        v.available = { ctx, err in
            report(err) { if let why = ExecutorBox.from(ctx).unavailable() { throw ExecutorError(why) } }
        }
        v.flags = executor.notifies && notifier.isListening ? UInt64(SWARM_EXEC_NOTIFIES) : 0
        let status = name.withCString { host.pointee.register_executor(host.pointee.host_ctx, $0, &v) }
        if status != SWARM_OK { throw RegistrationError(name: name, status: status) }
    }
}

extension ExecStatus {
    var raw: swarm_exec_status {
        var s = swarm_exec_status()
        s.struct_size = MemoryLayout<swarm_exec_status>.size
        s.exited = exited ? 1 : 0
        s.exit_code = exitCode
        s.pid = pid
        s.health = health.rawValue
        withUnsafeMutableBytes(of: &s.message) { buffer in
            let bytes = Array(message.utf8.prefix(buffer.count - 1))
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return s
    }
}
