import Foundation
import SwarmAPI

/// Counts a task's health check results, as Docker does: failures within the start period
/// do not count (but a success ends it), and `retries` consecutive failures after it make
/// the task unhealthy. Pure: results and times in, health out.
struct HealthTracker: Sendable {
    let retries: Int
    let startPeriodEnds: Int64
    private(set) var failures = 0
    private(set) var health: SwarmTaskStatus.Health = .starting
    private var started = false

    init(_ config: SwarmHealthConfig, startedAt: Int64) {
        retries = config.retries == 0 ? 3 : Int(config.retries)
        startPeriodEnds = startedAt + config.startPeriod
    }

    /// Records one check; returns the new health.
    mutating func record(healthy: Bool, at now: Int64) -> SwarmTaskStatus.Health {
        if healthy {
            failures = 0
            started = true
            health = .healthy
        } else if started || now >= startPeriodEnds {
            failures += 1
            if failures >= retries { health = .unhealthy }
        }
        return health
    }
}

/// Runs a process task's health check command: `["CMD", argv...]`, `["CMD-SHELL", "..."]`
/// (through /bin/sh -c), or a bare argv; in the task's directory, with its environment.
struct HealthProbe: Sendable {
    let argv: [String]
    let environment: [String: String]
    let directory: String
    let timeout: Duration

    init(_ config: SwarmHealthConfig, env: [String], directory: String) {
        switch config.test.first {
        case "CMD": argv = Array(config.test.dropFirst())
        case "CMD-SHELL": argv = ["/bin/sh", "-c", config.test.dropFirst().joined(separator: " ")]
        default: argv = config.test
        }
        var merged = ProcessInfo.processInfo.environment
        for kv in env {
            let parts = kv.split(separator: "=", maxSplits: 1)
            merged[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        environment = merged
        self.directory = directory
        let t = config.timeout > 0 ? config.timeout : config.interval
        timeout = .nanoseconds(max(t, 1_000_000))
    }

    /// Runs the check once; nil when it passed, else why it failed.
    func check() async -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: argv[0].contains("/") ? argv[0] : "/usr/bin/env")
        process.arguments = argv[0].contains("/") ? Array(argv.dropFirst()) : argv
        process.environment = environment
        if FileManager.default.fileExists(atPath: directory) {
            process.currentDirectoryURL = URL(fileURLWithPath: directory)
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let exit: AsyncStream<Int32>
        let done: AsyncStream<Int32>.Continuation
        (exit, done) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { p in
            done.yield(p.terminationStatus)
            done.finish()
        }
        do {
            try process.run()
        } catch {
            return "health check could not start: \(error.localizedDescription)"
        }
        let pid = process.processIdentifier
        let timeout = self.timeout
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                // Kills the check when it runs too long; says whether it did.
                guard (try? await Task.sleep(for: timeout)) != nil else { return false }
                kill(pid, SIGKILL)
                return true
            }
            var code: Int32 = -1
            for await c in exit { code = c }
            group.cancelAll()
            let killed = await group.next() ?? false
            if code == 0 && !killed { return nil }
            return killed ? "health check timed out after \(timeout)" : "health check exited with code \(code)"
        }
    }
}
