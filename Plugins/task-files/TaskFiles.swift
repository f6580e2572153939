import Foundation
import SwarmAPI
#if canImport(Glibc)
import Glibc
#endif

/// A task's secrets and configs as files, for the executors: each kind in a directory of
/// its own under the task's work directory, on a tmpfs mounted there for the task (mode
/// 0700, so that only the node's owner and the task see it, and nothing reaches a disk).
/// Secret files have mode 0400, config files 0444. Where a tmpfs cannot be mounted (no
/// CAP_SYS_ADMIN), the directory is made under /dev/shm instead, also a tmpfs.
public enum TaskFiles {
    /// Where a task's files are, and the environment entries that name them.
    public struct Written: Sendable, Equatable {
        public var secretsDir: String?
        public var configsDir: String?

        public init(secretsDir: String? = nil, configsDir: String? = nil) {
            self.secretsDir = secretsDir
            self.configsDir = configsDir
        }
        public var environment: [String] {
            (secretsDir.map { ["SWARM_SECRETS_DIR=\($0)"] } ?? []) + (configsDir.map { ["SWARM_CONFIGS_DIR=\($0)"] } ?? [])
        }
    }

    /// Writes the data the task carries (``SwarmTask/dependencies``) under the targets its
    /// spec names. Writing again (after a restart of the node) replaces the files.
    public static func write(_ task: SwarmTask, workDir: String) throws -> Written {
        var written = Written()
        let secrets = Dictionary(task.dependencies.secrets.map { ($0.id, $0.data) }) { a, _ in a }
        let configs = Dictionary(task.dependencies.configs.map { ($0.id, $0.data) }) { a, _ in a }
        if !task.spec.secrets.isEmpty {
            let dir = try directory(workDir, "secrets", taskID: task.id)
            for ref in task.spec.secrets {
                guard let data = secrets[ref.secretID] else { throw TaskFilesError("the data of secret \(ref.secretName) did not reach the executor") }
                try file(dir, ref.target, data, mode: 0o400)
            }
            written.secretsDir = dir
        }
        if !task.spec.configs.isEmpty {
            let dir = try directory(workDir, "configs", taskID: task.id)
            for ref in task.spec.configs {
                guard let data = configs[ref.configID] else { throw TaskFilesError("the data of config \(ref.configName) did not reach the executor") }
                try file(dir, ref.target, data, mode: 0o444)
            }
            written.configsDir = dir
        }
        return written
    }

    /// Removes the task's files (and unmounts their tmpfs). Safe to call more than once.
    public static func remove(workDir: String, taskID: String) {
        for kind in ["secrets", "configs"] {
            let dir = workDir + "/" + kind
            if isMountPoint(dir) { umount2(dir, Int32(MNT_DETACH)) }
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: fallback(kind, taskID))
        }
    }

    static func fallback(_ kind: String, _ taskID: String) -> String { "/dev/shm/swarm-\(taskID)-\(kind)" }

    /// The directory for `kind`: a tmpfs mounted at `<workDir>/<kind>`, or else a 0700
    /// directory under /dev/shm.
    static func directory(_ workDir: String, _ kind: String, taskID: String) throws -> String {
        let dir = workDir + "/" + kind
        if isMountPoint(dir) { return dir }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if mount("tmpfs", dir, "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=0700,size=4m") == 0 { return dir }
        rmdir(dir)
        let shm = fallback(kind, taskID)
        try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(shm, 0o700)
        return shm
    }

    static func file(_ dir: String, _ name: String, _ data: Data, mode: mode_t) throws {
        let path = dir + "/" + name
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw TaskFilesError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { buf -> Bool in
            var done = 0
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        guard ok else { throw TaskFilesError("cannot write \(path): errno \(errno)") }
        fchmod(fd, mode)
    }

    /// Whether `path` is a mount point (its device differs from its parent's).
    static func isMountPoint(_ path: String) -> Bool {
        var a = stat(), b = stat()
        guard stat(path, &a) == 0, stat(path + "/..", &b) == 0 else { return false }
        return a.st_dev != b.st_dev
    }
}

/// A task's files could not be written.
public struct TaskFilesError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
