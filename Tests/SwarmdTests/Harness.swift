import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmClient
import SwarmAPI
import SwarmManager
import SwarmRPC
import SwarmTesting
import SwiftProtobuf
import Testing

/// Real `swarmd` processes on loopback, driven with `swarmctl` and the control API.
final class SwarmdCluster: @unchecked Sendable {
    let root = NSTemporaryDirectory() + "swarmd-it-\(UUID().uuidString.prefix(8))"
    var processes: [String: Process] = [:]
    let managerPort = SwarmdCluster.freePort()

    static let binDir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

    /// The control socket swarmctl and the control client use: the first manager's,
    /// unless a test points it at another manager (after a leader change).
    lazy var controlSocket = "\(root)/manager/swarmd.sock"
    var managerAddr: String { "127.0.0.1:\(managerPort)" }

    init() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// Starts the first manager, which bootstraps the cluster.
    func startManager(_ extra: [String] = [], environment: [String: String] = [:]) throws {
        try start("manager", ["--listen-remote-api", managerAddr, "--listen-control-api", controlSocket] + extra, environment: environment)
    }

    /// The cluster object, once the manager's control API answers (waiting up to 30 s).
    func readyCluster() async throws -> SwarmCluster {
        try await waitFor("the manager's control socket", seconds: 30) {
            (try? await control { try await $0.getCluster(.with { $0.clusterID = "default" }) }) != nil
        }
        return try await control { try await $0.getCluster(.with { $0.clusterID = "default" }) }.cluster
    }

    /// Starts (or restarts, on the same state directory) a worker. `port` is its remote
    /// API, used once it is promoted.
    func startWorker(_ name: String, token: String, port: Int? = nil) throws {
        let listen = port.map { ["--listen-remote-api", "127.0.0.1:\($0)"] } ?? []
        try start(name, ["--join-addr", managerAddr, "--join-token", token] + listen)
    }

    /// Starts a swarmd process; `environment` is laid over this process's own.
    func start(_ name: String, _ extra: [String], environment: [String: String] = [:]) throws {
        let p = Process()
        p.executableURL = Self.binDir.appendingPathComponent("swarmd")
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.arguments = ["-d", "\(root)/\(name)", "--hostname", name, "--log-level", "debug"] + extra
        let log = "\(root)/\(name).log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        processes[name] = p
    }

    func kill9(_ name: String) {
        guard let p = processes.removeValue(forKey: name) else { return }
        kill(p.processIdentifier, SIGKILL)
        _ = Self.reap(p)
    }

    /// SIGTERM, and the exit status (-1 if it did not exit within 30 s).
    func terminate(_ name: String) -> Int32 {
        guard let p = processes.removeValue(forKey: name) else { return -1 }
        kill(p.processIdentifier, SIGTERM)
        return Self.reap(p, seconds: 30)
    }

    /// Waits for a child to exit and returns its exit status (128 + signal when killed).
    /// Foundation's `waitUntilExit` can miss the exit of a child inside an async test, so
    /// the child is reaped here unless Foundation already did.
    static func reap(_ p: Process, seconds: Double = 10) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if !p.isRunning { return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus }
            var st: Int32 = 0
            if waitpid(p.processIdentifier, &st, WNOHANG) == p.processIdentifier {
                return (st & 0x7F) == 0 ? (st >> 8) & 0xFF : 128 + (st & 0x7F)
            }
            usleep(20_000)
        }
        return -1
    }

    func isRunning(_ name: String) -> Bool { processes[name]?.isRunning ?? false }

    /// The last lines of a node's log, for failure messages.
    func logTail(_ name: String, lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: "\(root)/\(name).log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// Runs swarmctl against the manager's control socket.
    @discardableResult
    func ctl(_ args: String...) throws -> (status: Int32, output: String) { try ctl(args) }

    /// Runs swarmctl; one that has not finished within `seconds` is killed (its status is
    /// then 137), so that a call that hangs fails the wait it is in instead of stalling it.
    @discardableResult
    func ctl(_ args: [String], seconds: Double = 20) throws -> (status: Int32, output: String) {
        let (p, pipe) = try start(swarmctl: args)
        let pid = p.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: watchdog)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        // Cancelled before the child is reaped, so that the watchdog can never signal a
        // process that has since taken its PID.
        watchdog.cancel()
        return (Self.reap(p), String(decoding: data, as: UTF8.self))
    }

    /// Starts swarmctl without waiting for it (for `--follow`).
    func start(swarmctl args: [String]) throws -> (process: Process, output: Pipe) {
        let p = Process()
        p.executableURL = Self.binDir.appendingPathComponent("swarmctl")
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["SWARM_SOCKET": controlSocket]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        return (p, pipe)
    }

    func control<R: Sendable>(_ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        try await withControlClient("unix:\(controlSocket)", body)
    }

    func nodes() async -> [SwarmNode] {
        (try? await control { try await $0.listNodes(.init()) }.nodes) ?? []
    }

    func tasks() async -> [SwarmTask] {
        (try? await control { try await $0.listTasks(.init()) }.tasks) ?? []
    }

    deinit {
        for p in processes.values { kill(p.processIdentifier, SIGKILL); _ = Self.reap(p) }
        if ProcessInfo.processInfo.environment["SWARM_KEEP_TEST_STATE"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    static func freePort() -> Int { LoopbackPort.free() }

    /// PIDs of live processes whose command line is exactly `argv`.
    static func pids(matching argv: [String]) -> [Int32] {
        let want = argv.joined(separator: "\0") + "\0"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            // Zombies have an empty command line and are not counted.
            return String(decoding: data, as: UTF8.self) == want
        }.sorted()
    }

    /// Polls `check` every 100 ms until it holds; records an issue naming `what` otherwise.
    func waitFor(_ what: String, seconds: Double, _ check: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await check() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let logs = processes.keys.sorted().map { name in
            let p = processes[name]!
            let exit = p.isRunning ? "" : " (exited: \(p.terminationReason == .uncaughtSignal ? "signal" : "status") \(p.terminationStatus))"
            return "--- \(name)\(exit) ---\n\(logTail(name, lines: 15))"
        }.joined(separator: "\n")
        Issue.record("timed out after \(seconds) s waiting for \(what)\n\(logs)")
        throw CancellationError()
    }
}
