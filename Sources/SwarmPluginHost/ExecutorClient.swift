#if canImport(Glibc)
import Glibc
#endif
import SwarmPluginABI

/// An error returned by an executor plugin, with the plugin's message.
public struct ExecutorCallError: Error, Sendable, Equatable, CustomStringConvertible {
    public var executor: String
    public var operation: String
    public var message: String
    public var description: String { "\(executor) \(operation): \(message)" }
}

/// The state an executor reports for a task.
public struct ExecutorTaskStatus: Sendable, Equatable {
    public var exited: Bool
    public var exitCode: Int32
    public var pid: Int32
    /// One of `SWARM_HEALTH_*`: the executor's own health check (ABI 1.5; NONE from an
    /// older plugin, or when it runs none).
    public var health: Int32 = 0
    /// Why the task is unhealthy, or a note on how it ended (ABI 1.5).
    public var message: String = ""

    public init(exited: Bool, exitCode: Int32, pid: Int32, health: Int32 = 0, message: String = "") {
        self.exited = exited
        self.exitCode = exitCode
        self.pid = pid
        self.health = health
        self.message = message
    }
}

/// Calls an executor plugin: builds the C task view and turns error strings into Swift
/// errors (copying them, then handing them back through the plugin's free_error, when it has one).
public struct ExecutorClient: Sendable {
    public let executor: LoadedExecutor

    public init(_ executor: LoadedExecutor) { self.executor = executor }

    var name: String { executor.record.name }

    private func check(_ op: String, _ call: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> swarm_status) throws(ExecutorCallError) {
        var error: UnsafeMutablePointer<CChar>?
        let status = call(&error)
        if status == SWARM_OK { return }
        let message = error.map { String(cString: $0) } ?? "status \(status)"
        // The string is the plugin's: copied above, then handed back if the table has
        // free_error (else it stays valid until the next call on this thread).
        if let error, let release = executor.vtable.free_error { release(executor.vtable.ctx, error) }
        throw ExecutorCallError(executor: name, operation: op, message: message)
    }

    private func withTask<R>(taskID: String, serviceID: String, workDir: String, proto: [UInt8],
                             _ body: (UnsafePointer<swarm_exec_task>) -> R) -> R {
        taskID.withCString { id in
            serviceID.withCString { svc in
                workDir.withCString { dir in
                    proto.withUnsafeBufferPointer { bytes in
                        var t = swarm_exec_task()
                        t.struct_size = MemoryLayout<swarm_exec_task>.size
                        t.task_id = swarm_str(data: id, len: strlen(id))
                        t.service_id = swarm_str(data: svc, len: strlen(svc))
                        t.work_dir = swarm_str(data: dir, len: strlen(dir))
                        t.task_proto = bytes.baseAddress
                        t.task_proto_len = bytes.count
                        return withUnsafePointer(to: &t, body)
                    }
                }
            }
        }
    }

    public func prepare(taskID: String, serviceID: String, workDir: String, taskProto: [UInt8]) throws(ExecutorCallError) {
        let v = executor.vtable
        try check("prepare") { err in withTask(taskID: taskID, serviceID: serviceID, workDir: workDir, proto: taskProto) { v.prepare(v.ctx, $0, err) } }
    }

    public func start(taskID: String, serviceID: String, workDir: String, taskProto: [UInt8]) throws(ExecutorCallError) {
        let v = executor.vtable
        try check("start") { err in withTask(taskID: taskID, serviceID: serviceID, workDir: workDir, proto: taskProto) { v.start(v.ctx, $0, err) } }
    }

    private func withID<R>(_ id: String, _ body: (swarm_str) -> R) -> R {
        id.withCString { body(swarm_str(data: $0, len: strlen($0))) }
    }

    public func status(taskID: String) throws(ExecutorCallError) -> ExecutorTaskStatus {
        let v = executor.vtable
        var out = swarm_exec_status()
        out.struct_size = MemoryLayout<swarm_exec_status>.size
        try check("status") { err in withID(taskID) { v.status(v.ctx, $0, &out, err) } }
        // An older plugin leaves the 1.5 fields zero: no health, no message.
        let message = withUnsafeBytes(of: &out.message) { raw in
            let bytes = raw.prefix(while: { $0 != 0 })
            return String(decoding: bytes, as: UTF8.self)
        }
        return ExecutorTaskStatus(exited: out.exited != 0, exitCode: out.exit_code, pid: out.pid,
                                  health: out.health, message: message)
    }

    /// Whether the executor tells the host of every change of a started task's status
    /// (ABI 1.5), so that its tasks are followed without polling.
    public var notifies: Bool { executor.vtable.flags & UInt64(SWARM_EXEC_NOTIFIES) != 0 }

    /// Nil when the executor can run tasks now, otherwise why not. An executor without
    /// `available` (older than ABI 1.5, or always able) is available. May block for a few
    /// seconds: call it off the cooperative pool.
    public func unavailable() -> String? {
        let v = executor.vtable
        guard let available = v.available else { return nil }
        do {
            try check("available") { err in available(v.ctx, err) }
            return nil
        } catch {
            return error.message
        }
    }

    public func shutdown(taskID: String, graceNanoseconds: Int64) throws(ExecutorCallError) {
        let v = executor.vtable
        try check("shutdown") { err in withID(taskID) { v.shutdown(v.ctx, $0, graceNanoseconds, err) } }
    }

    public func terminate(taskID: String) throws(ExecutorCallError) {
        let v = executor.vtable
        try check("terminate") { err in withID(taskID) { v.terminate(v.ctx, $0, err) } }
    }

    public func remove(taskID: String) throws(ExecutorCallError) {
        let v = executor.vtable
        try check("remove") { err in withID(taskID) { v.remove(v.ctx, $0, err) } }
    }
}
