#if canImport(Glibc)
import Glibc
#endif
import SwarmAPI
import SwarmPluginKit
import SwarmPluginLogs
import SwarmTaskFiles
import SwarmProcessSupport
import SwiftProtobuf
import Synchronization

/// Runs a task's command as a child process in its own process group, with stdout and
/// stderr copied to rotated log files in the task's work directory, and CPU and memory
/// limits applied through cgroups where the node allows it.
final class ProcessExecutor: Executor {

    final class Running: @unchecked Sendable {
        let pid: pid_t
        let workDir: String
        let adopted: Bool
        var exit: Int32?
        var cgroups: [String] = []
        init(pid: pid_t, workDir: String, adopted: Bool) {
            self.pid = pid
            self.workDir = workDir
            self.adopted = adopted
        }
    }

    struct Prepared {
        var spec: SwarmProcessSpec
        var limits: SwarmResources
        var env: [String]
        var workDir: String
    }

    private let prepared = Mutex<[String: Prepared]>([:])
    private let running = Mutex<[String: Running]>([:])
    /// Tells the host of each exit as it happens.
    let exits: ExitWatcher

    init(notifier: TaskNotifier) { exits = ExitWatcher(notifier: notifier) }

    var notifies: Bool { true }

    func prepare(_ task: ExecTask) throws {
        let t: SwarmTask
        do { t = try SwarmTask(serializedBytes: task.taskProto) } catch {
            throw ExecutorError("task \(task.taskID) does not decode: \(error)")
        }
        guard case .process(let spec)? = t.spec.runtime, !spec.command.isEmpty else {
            throw ExecutorError("task \(task.taskID) has no process command")
        }
        try makeDirectory(task.workDir)
        // Who the task is, as SwarmKit's templates expose it; the spec's own env wins.
        var env = ["SWARM_TASK_ID=\(t.id)", "SWARM_TASK_SLOT=\(t.slot)", "SWARM_SERVICE_ID=\(t.serviceID)",
                   "SWARM_SERVICE_NAME=\(t.serviceAnnotations.name)", "SWARM_NODE_ID=\(t.nodeID)"] + spec.env
        if !t.assignedGpus.isEmpty {
            let ids = t.assignedGpus.map(\.uuid).joined(separator: ",")
            env += ["NVIDIA_VISIBLE_DEVICES=\(ids)", "CUDA_VISIBLE_DEVICES=\(t.assignedGpus.map { String($0.index) }.joined(separator: ","))",
                    "DOCKER_RESOURCE_GPU=\(ids)"]
        }
        for (kind, units) in Dictionary(grouping: t.assignedGenericResources, by: \.kind) {
            let value = units.map { $0.named.isEmpty ? String($0.value) : $0.named }.joined(separator: ",")
            env.append("DOCKER_RESOURCE_\(kind.uppercased())=\(value)")
        }
        // Secrets and configs as files on a tmpfs private to the task.
        do { env += try TaskFiles.write(t, workDir: task.workDir).environment } catch {
            throw ExecutorError("task \(task.taskID): \(error)")
        }
        prepared.withLock { $0[task.taskID] = Prepared(spec: spec, limits: t.spec.resources.limits, env: env, workDir: task.workDir) }
        // After a node restart the process may still be running: adopt it, never start a twin.
        if running.withLock({ $0[task.taskID] }) == nil, let pid = Self.livePid(in: task.workDir) {
            running.withLock { $0[task.taskID] = Running(pid: pid, workDir: task.workDir, adopted: true) }
            let dir = task.workDir
            exits.watch(taskID: task.taskID, pid: pid) { Self.livePid(in: dir) != nil }
            // Resume copying its output: it waited in the FIFOs while no one read them.
            for stream in ["stdout", "stderr"] { startCopier(workDir: task.workDir, stream: stream) }
        }
    }

    func start(_ task: ExecTask) throws {
        guard let p = prepared.withLock({ $0[task.taskID] }) else { throw ExecutorError("task \(task.taskID) was not prepared") }
        if running.withLock({ $0[task.taskID] }) != nil { return }  // already started (or adopted)
        let out = try openOutput(p.workDir, "stdout")
        let err = try openOutput(p.workDir, "stderr")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        posix_spawn_file_actions_adddup2(&actions, err.write, 2)
        if !p.spec.dir.isEmpty { swarm_spawn_addchdir(&actions, p.spec.dir) }
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attr, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        let argv = [p.spec.command] + p.spec.args
        let env = Self.merged(Self.baseEnvironment() + p.env)
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cargv in
            withCStrings(env) { cenv in
                posix_spawnp(&pid, p.spec.command, &actions, &attr, cargv, cenv)
            }
        }
        close(out.write)
        close(err.write)
        guard rc == 0 else {
            close(out.read)
            close(err.read)
            throw ExecutorError("cannot start \(p.spec.command): \(String(cString: strerror(rc)))")
        }
        let r = Running(pid: pid, workDir: p.workDir, adopted: false)
        r.cgroups = CGroups.apply(pid: pid, taskID: task.taskID, limits: p.limits)
        running.withLock { $0[task.taskID] = r }
        let child = pid
        exits.watch(taskID: task.taskID, pid: child) { Self.isRunning(child) }
        Self.writePidFile(pid: pid, in: p.workDir)
        LogCopier.start(from: out.read, to: p.workDir + "/stdout.log")
        LogCopier.start(from: err.read, to: p.workDir + "/stderr.log")
    }

    func status(taskID: String) throws -> ExecStatus {
        guard let r = running.withLock({ $0[taskID] }) else { throw ExecutorError("task \(taskID) is not running here") }
        if let code = r.exit { return ExecStatus(exited: true, exitCode: code, pid: r.pid) }
        if r.adopted {
            // Not our child: we can see that it is gone, but not its exit code.
            if Self.livePid(in: r.workDir) == nil {
                r.exit = -1
                TaskFiles.remove(workDir: r.workDir, taskID: taskID)
                return ExecStatus(exited: true, exitCode: -1, pid: r.pid)
            }
            return ExecStatus(exited: false, exitCode: 0, pid: r.pid)
        }
        var st: Int32 = 0
        let w = waitpid(r.pid, &st, WNOHANG)
        if w == r.pid {
            let code: Int32 = (st & 0x7F) == 0 ? (st >> 8) & 0xFF : 128 + (st & 0x7F)
            r.exit = code
            unlink(r.workDir + "/pid")
            // The task has ended: its secrets go with it.
            TaskFiles.remove(workDir: r.workDir, taskID: taskID)
            return ExecStatus(exited: true, exitCode: code, pid: r.pid)
        }
        return ExecStatus(exited: false, exitCode: 0, pid: r.pid)
    }

    func shutdown(taskID: String, graceNanoseconds: Int64) throws {
        guard let r = running.withLock({ $0[taskID] }) else { return }
        if try status(taskID: taskID).exited { return }
        kill(-r.pid, SIGTERM)
        let deadline = Self.now() + max(0, graceNanoseconds)
        while Self.now() < deadline {
            if try status(taskID: taskID).exited { return }
            usleep(20_000)
        }
        try terminate(taskID: taskID)
    }

    func terminate(taskID: String) throws {
        guard let r = running.withLock({ $0[taskID] }) else { return }
        if try status(taskID: taskID).exited { return }
        kill(-r.pid, SIGKILL)
        for _ in 0..<250 {
            if try status(taskID: taskID).exited { return }
            usleep(20_000)
        }
        throw ExecutorError("process group \(r.pid) of task \(taskID) did not die after SIGKILL")
    }

    func remove(taskID: String) throws {
        try terminate(taskID: taskID)
        if let r = running.withLock({ $0.removeValue(forKey: taskID) }) {
            for dir in r.cgroups { rmdir(dir) }
        }
        if let p = prepared.withLock({ $0[taskID] }) { TaskFiles.remove(workDir: p.workDir, taskID: taskID) }
        prepared.withLock { _ = $0.removeValue(forKey: taskID) }
    }

    // MARK: Helpers

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// KEY=VALUE entries with one entry per key, the last given winning (getenv would
    /// return the first).
    static func merged(_ entries: [String]) -> [String] {
        var order: [Substring] = []
        var values: [Substring: String] = [:]
        for e in entries {
            let key = e.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
            if values[key] == nil { order.append(key) }
            values[key] = e
        }
        return order.map { values[$0]! }
    }

    static func baseEnvironment() -> [String] {
        ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    }

    /// Whether a child runs (it exists and is not a zombie waiting to be reaped).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// The pid file holds "pid starttime", so a recycled pid is not mistaken for the task.
    static func writePidFile(pid: pid_t, in dir: String) {
        let text = "\(pid) \(startTime(pid) ?? 0)\n"
        let fd = open(dir + "/pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = text.withCString { write(fd, $0, strlen($0)) }
        fsync(fd)
        close(fd)
    }

    static func livePid(in dir: String) -> pid_t? {
        guard let text = readText(dir + "/pid") else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, let pid = pid_t(parts[0]), let start = UInt64(parts[1]) else { return nil }
        guard kill(pid, 0) == 0, startTime(pid) == start else { return nil }
        // A zombie is gone for our purposes.
        if let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")"),
           stat[stat.index(close, offsetBy: 2)] == "Z" { return nil }
        return pid
    }

    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buf, buf.count)
        return n > 0 ? String(decoding: buf[..<n], as: UTF8.self) : nil
    }

    /// The task's end of its output FIFO (`<stream>.pipe` in the work directory). The task
    /// holds it open for reading and writing, so that it never gets SIGPIPE: while the
    /// node is down its output waits in the FIFO (and the task blocks once it is full),
    /// and the restarted node resumes copying it to the log files.
    ///
    /// The read end is opened first: a FIFO's contents vanish when its last descriptor
    /// closes, so a task that writes and exits at once must find a reader there.
    func openOutput(_ workDir: String, _ stream: String) throws -> (read: Int32, write: Int32) {
        let path = "\(workDir)/\(stream).pipe"
        unlink(path)
        guard mkfifo(path, 0o600) == 0 else { throw ExecutorError("mkfifo \(path): \(String(cString: strerror(errno)))") }
        let reader = swarm_open_fifo_reader(path)
        guard reader >= 0 else { throw ExecutorError("open \(path): \(String(cString: strerror(errno)))") }
        let writer = open(path, O_RDWR | O_CLOEXEC)
        guard writer >= 0 else {
            close(reader)
            throw ExecutorError("open \(path): \(String(cString: strerror(errno)))")
        }
        return (reader, writer)
    }

    /// Copies a task's FIFO into its rotated log file, until the task and its children
    /// have all closed it.
    func startCopier(workDir: String, stream: String) {
        let fd = swarm_open_fifo_reader("\(workDir)/\(stream).pipe")
        guard fd >= 0 else { return }
        LogCopier.start(from: fd, to: "\(workDir)/\(stream).log")
    }

    func makeDirectory(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw ExecutorError("cannot create \(current): \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var c: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    c.append(nil)
    defer { for p in c { free(p) } }
    return c.withUnsafeBufferPointer { body($0.baseAddress!) }
}

@_cdecl("swarm_plugin_init_v1")
public func swarmPluginInit(_ host: SwarmHost?, _ info: SwarmPluginInfo?, _ error: SwarmInitError?) -> Int32 {
    SwarmPlugin.initialize(host, info, error, name: "process", version: "1.0.0") { plugin in
        try plugin.register(executor: ProcessExecutor(notifier: plugin.notifier), as: "process")
    }
}
