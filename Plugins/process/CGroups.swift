#if canImport(Glibc)
import Glibc
#endif
import SwarmAPI

/// CPU and memory limits through cgroups, v2 when the unified hierarchy has the
/// controllers, otherwise v1. Best effort: a node without writable cgroups runs the task
/// without limits (and returns no cgroup directories).
enum CGroups {
    static let root = "/sys/fs/cgroup"

    /// Moves `pid` into a per-task cgroup with the limits; returns the directories made.
    static func apply(pid: pid_t, taskID: String, limits: SwarmResources) -> [String] {
        guard limits.nanoCpus > 0 || limits.memoryBytes > 0 else { return [] }
        if let v2 = v2Controllers(), v2.contains("memory") || v2.contains("cpu") {
            let dir = "\(root)/swarm-\(taskID)"
            guard mkdir(dir, 0o755) == 0 || errno == EEXIST else { return [] }
            if limits.memoryBytes > 0 { writeFile("\(dir)/memory.max", "\(limits.memoryBytes)") }
            if limits.nanoCpus > 0 { writeFile("\(dir)/cpu.max", "\(limits.nanoCpus / 10_000) 100000") }
            writeFile("\(dir)/cgroup.procs", "\(pid)")
            return [dir]
        }
        var made: [String] = []
        if limits.memoryBytes > 0, access("\(root)/memory", W_OK) == 0 {
            let dir = "\(root)/memory/swarm-\(taskID)"
            if mkdir(dir, 0o755) == 0 || errno == EEXIST {
                writeFile("\(dir)/memory.limit_in_bytes", "\(limits.memoryBytes)")
                writeFile("\(dir)/cgroup.procs", "\(pid)")
                made.append(dir)
            }
        }
        if limits.nanoCpus > 0, access("\(root)/cpu", W_OK) == 0 {
            let dir = "\(root)/cpu/swarm-\(taskID)"
            if mkdir(dir, 0o755) == 0 || errno == EEXIST {
                writeFile("\(dir)/cpu.cfs_period_us", "100000")
                writeFile("\(dir)/cpu.cfs_quota_us", "\(limits.nanoCpus / 10_000)")
                writeFile("\(dir)/cgroup.procs", "\(pid)")
                made.append(dir)
            }
        }
        return made
    }

    /// The controllers of a real cgroup v2 root, or nil on a v1 node.
    static func v2Controllers() -> Set<String>? {
        guard let text = ProcessExecutor.readText("\(root)/cgroup.controllers") else { return nil }
        return Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    static func writeFile(_ path: String, _ value: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = value.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
