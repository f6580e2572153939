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

public struct ExecStatus: Sendable, Equatable {
    public var exited: Bool
    public var exitCode: Int32
    public var pid: Int32

    public init(exited: Bool, exitCode: Int32, pid: Int32) {
        self.exited = exited
        self.exitCode = exitCode
        self.pid = pid
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
            report(err) { out!.pointee = try ExecutorBox.from(ctx).status(taskID: id.string).raw }
        }
        v.shutdown = { ctx, id, grace, err in report(err) { try ExecutorBox.from(ctx).shutdown(taskID: id.string, graceNanoseconds: grace) } }
        v.terminate = { ctx, id, err in report(err) { try ExecutorBox.from(ctx).terminate(taskID: id.string) } }
        v.remove = { ctx, id, err in report(err) { try ExecutorBox.from(ctx).remove(taskID: id.string) } }
        v.free_error = { _, text in free(text) }
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
        return s
    }
}
