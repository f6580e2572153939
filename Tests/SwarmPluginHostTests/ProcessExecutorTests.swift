import Foundation
import SwarmAPI
@testable import SwarmPluginHost
import SwiftProtobuf
import Testing

/// The `process` executor plugin, loaded from its .so, running real child processes.
@Suite(.serialized) struct ProcessExecutorTests {
    static let registry: PluginRegistry = {
        let r = PluginRegistry()
        let dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        try! r.load(file: dir.appendingPathComponent("libswarm-process.so").path)
        return r
    }()

    static var executor: ExecutorClient { ExecutorClient(registry.executor("process")!) }

    static func task(_ id: String, _ command: String, _ args: [String] = [], env: [String] = [], dir: String = "",
                     memoryLimit: Int64 = 0) -> [UInt8] {
        var t = SwarmTask()
        t.id = id
        t.serviceID = "svc"
        t.spec.process = SwarmProcessSpec.with {
            $0.command = command
            $0.args = args
            $0.env = env
            $0.dir = dir
        }
        t.spec.resources.limits.memoryBytes = memoryLimit
        return try! t.serializedBytes()
    }

    static func workDir(_ id: String) -> String { NSTemporaryDirectory() + "swarm-exec-\(UUID().uuidString)/\(id)" }

    static func run(_ id: String, _ proto: [UInt8], workDir: String) throws {
        try executor.prepare(taskID: id, serviceID: "svc", workDir: workDir, taskProto: proto)
        try executor.start(taskID: id, serviceID: "svc", workDir: workDir, taskProto: proto)
    }

    static func waitExit(_ id: String, seconds: Double = 10) throws -> ExecutorTaskStatus {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let s = try executor.status(taskID: id)
            if s.exited { return s }
            usleep(20_000)
        }
        return try executor.status(taskID: id)
    }

    static func readLog(_ path: String) -> String {
        // The copier thread may still be flushing the last bytes.
        for _ in 0..<50 {
            if let s = try? String(contentsOfFile: path, encoding: .utf8), !s.isEmpty { return s }
            usleep(20_000)
        }
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    /// Processes of a process group that are still alive (zombies awaiting their reaper
    /// do not count).
    static func liveMembers(ofGroup pgid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            return fields.count > 2 && fields[0] != "Z" && Int32(fields[2]) == pgid
        }
    }

    @Test func runsTheCommandWithArgsEnvAndDirAndReportsTheExitCode() throws {
        let dir = Self.workDir("t1")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try Self.run("t1", Self.task("t1", "/bin/sh", ["-c", "echo out:$FOO; pwd; echo id:$SWARM_TASK_ID; echo path:$PATH; echo err >&2; exit 3"],
                                     env: ["FOO=bar", "PATH=/custom:/bin:/usr/bin"], dir: "/tmp"), workDir: dir)
        let s = try Self.waitExit("t1")
        #expect(s.exited && s.exitCode == 3)
        let out = Self.readLog(dir + "/stdout.log")
        #expect(out.contains("out:bar") && out.contains("/tmp"))
        // The task knows its ID; the spec's PATH replaces the default one.
        #expect(out.contains("id:t1\n") && out.contains("path:/custom:/bin:/usr/bin\n"), "\(out)")
        #expect(Self.readLog(dir + "/stderr.log").contains("err"))
        try Self.executor.remove(taskID: "t1")
    }

    @Test func shutdownSendsTermThenKillToTheWholeProcessGroup() throws {
        let dir = Self.workDir("t2")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        // Ignores SIGTERM and has a child of its own.
        try Self.run("t2", Self.task("t2", "/bin/sh", ["-c", "trap '' TERM; sleep 30 & while true; do sleep 0.05; done"]),
                     workDir: dir)
        usleep(200_000)
        let pid = try Self.executor.status(taskID: "t2").pid
        let started = Date()
        try Self.executor.shutdown(taskID: "t2", graceNanoseconds: 300_000_000)
        let s = try Self.executor.status(taskID: "t2")
        #expect(s.exited && s.exitCode == 128 + 9, "killed after the grace period")
        #expect(Date().timeIntervalSince(started) >= 0.3)
        usleep(100_000)
        #expect(Self.liveMembers(ofGroup: pid).isEmpty, "no process of the group survives")
        try Self.executor.remove(taskID: "t2")

        let dir3 = Self.workDir("t3")
        defer { try? FileManager.default.removeItem(atPath: (dir3 as NSString).deletingLastPathComponent) }
        try Self.run("t3", Self.task("t3", "sleep", ["30"]), workDir: dir3)
        try Self.executor.shutdown(taskID: "t3", graceNanoseconds: 5_000_000_000)
        #expect(try Self.executor.status(taskID: "t3").exitCode == 128 + 15, "a well-behaved task stops on SIGTERM")
        try Self.executor.remove(taskID: "t3")
    }

    @Test func badTasksFailWithClearErrors() throws {
        let dir = Self.workDir("bad")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        let noCommand = #expect(throws: ExecutorCallError.self) {
            try Self.executor.prepare(taskID: "bad", serviceID: "svc", workDir: dir, taskProto: try SwarmTask().serializedBytes())
        }
        #expect(noCommand?.description == "process prepare: task bad has no process command")
        let garbage = #expect(throws: ExecutorCallError.self) {
            try Self.executor.prepare(taskID: "bad", serviceID: "svc", workDir: dir, taskProto: [0xFF, 0xFF, 0x01])
        }
        #expect(garbage?.message.contains("does not decode") == true)
        let missing = #expect(throws: ExecutorCallError.self) {
            try Self.run("bad2", Self.task("bad2", "/no/such/binary"), workDir: dir)
        }
        #expect(missing?.message.contains("cannot start /no/such/binary") == true)
        #expect(throws: ExecutorCallError.self) { _ = try Self.executor.status(taskID: "never-started") }
    }

    @Test func aRunningProcessIsAdoptedNotStartedTwice() throws {
        let dir = Self.workDir("t4")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // A process left running by an earlier incarnation of the node, with its pid file.
        let orphan = Process()
        orphan.executableURL = URL(fileURLWithPath: "/bin/sleep")
        orphan.arguments = ["30"]
        try orphan.run()
        let pid = orphan.processIdentifier
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let start = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")[19]
        try "\(pid) \(start)\n".write(toFile: dir + "/pid", atomically: true, encoding: .utf8)

        try Self.run("t4", Self.task("t4", "sleep", ["30"]), workDir: dir)
        let s = try Self.executor.status(taskID: "t4")
        #expect(s.pid == pid && !s.exited, "the existing process is adopted")
        try Self.executor.terminate(taskID: "t4")
        orphan.waitUntilExit()
        #expect(try Self.executor.status(taskID: "t4").exited)
        try Self.executor.remove(taskID: "t4")
    }

    @Test func logsRotate() throws {
        let dir = Self.workDir("t5")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try Self.run("t5", Self.task("t5", "/bin/sh", ["-c", "head -c 25000000 /dev/zero | tr '\\\\0' x"]), workDir: dir)
        #expect(try Self.waitExit("t5").exitCode == 0)
        usleep(300_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("stdout.log") }.sorted()
        #expect(files == ["stdout.log", "stdout.log.1", "stdout.log.2"])
        for f in files {
            let size = try FileManager.default.attributesOfItem(atPath: dir + "/" + f)[.size] as? Int ?? 0
            #expect(size <= 10 << 20)
        }
        try Self.executor.remove(taskID: "t5")
    }

    @Test func memoryLimitGoesIntoACgroupWhereWritable() throws {
        guard access("/sys/fs/cgroup/memory", W_OK) == 0 || access("/sys/fs/cgroup/cgroup.controllers", R_OK) == 0 else {
            return  // no writable cgroup hierarchy on this node; the task runs unlimited
        }
        let dir = Self.workDir("t6")
        defer { try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent) }
        try Self.run("t6", Self.task("t6", "sleep", ["30"], memoryLimit: 64 << 20), workDir: dir)
        let pid = try Self.executor.status(taskID: "t6").pid
        let v1 = "/sys/fs/cgroup/memory/swarm-t6"
        let v2 = "/sys/fs/cgroup/swarm-t6"
        let limit = (try? String(contentsOfFile: v1 + "/memory.limit_in_bytes", encoding: .utf8))
            ?? (try? String(contentsOfFile: v2 + "/memory.max", encoding: .utf8)) ?? ""
        #expect(limit.trimmingCharacters(in: .whitespacesAndNewlines) == "\(64 << 20)")
        let procs = (try? String(contentsOfFile: v1 + "/cgroup.procs", encoding: .utf8))
            ?? (try? String(contentsOfFile: v2 + "/cgroup.procs", encoding: .utf8)) ?? ""
        #expect(procs.split(separator: "\n").contains("\(pid)"))
        try Self.executor.remove(taskID: "t6")
        #expect(!FileManager.default.fileExists(atPath: v1) && !FileManager.default.fileExists(atPath: v2), "removed with the task")
    }
}
