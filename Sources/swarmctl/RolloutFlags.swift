import ArgumentParser
import SwarmAPI

/// How a service's tasks are replaced: the `--update-*` and `--rollback-*` flags, and the
/// health check. On `service update`, only the flags given change the spec.
struct RolloutFlags: ParsableArguments {
    @Option(help: "Tasks updated at once in a rolling update (0: all at once; default 1)") var updateParallelism: Int?
    @Option(help: "Delay after each task is updated, e.g. 10s") var updateDelay: String?
    @Option(help: "stop-first (default) or start-first") var updateOrder: String?
    @Option(help: "On too many failed tasks: pause (default), continue or rollback") var updateFailureAction: String?
    @Option(help: "How long after it starts a task's failure counts against the update (default 5s)") var updateMonitor: String?
    @Option(help: "Share of tasks (0 to 1) that may fail during an update (default 0)") var updateMaxFailureRatio: Float?
    @Option(help: "Tasks rolled back at once (0: all at once; default 1)") var rollbackParallelism: Int?
    @Option(help: "Delay after each task is rolled back") var rollbackDelay: String?
    @Option(help: "stop-first (default) or start-first") var rollbackOrder: String?
    @Option(help: "On too many failed tasks during a rollback: pause (default) or continue") var rollbackFailureAction: String?
    @Option(help: "How long after it starts a task's failure counts against the rollback (default 5s)") var rollbackMonitor: String?
    @Option(help: "Share of tasks (0 to 1) that may fail during a rollback (default 0)") var rollbackMaxFailureRatio: Float?

    @Option(help: "Health check command, run with /bin/sh -c in the task's environment") var healthCmd: String?
    @Option(help: "Time between health checks (default 30s)") var healthInterval: String?
    @Option(help: "Time one health check may take (default 30s)") var healthTimeout: String?
    @Option(help: "Consecutive failures that make a task unhealthy (default 3)") var healthRetries: Int?
    @Option(help: "Time after start in which failed checks do not count (default 0s)") var healthStartPeriod: String?
    @Flag(help: "Remove the health check") var noHealthcheck = false

    /// The defaults `service create` starts from, as Docker's CLI sets them.
    static func defaults(_ spec: inout SwarmServiceSpec) {
        for keyPath in [\SwarmServiceSpec.update, \SwarmServiceSpec.rollback] {
            spec[keyPath: keyPath].parallelism = 1
            spec[keyPath: keyPath].monitor = 5_000_000_000
        }
    }

    func apply(to spec: inout SwarmServiceSpec) throws {
        try apply(&spec.update, "update", updateParallelism, updateDelay, updateOrder, updateFailureAction, updateMonitor, updateMaxFailureRatio)
        try apply(&spec.rollback, "rollback", rollbackParallelism, rollbackDelay, rollbackOrder, rollbackFailureAction, rollbackMonitor,
                  rollbackMaxFailureRatio)
        var h = spec.task.healthcheck
        if noHealthcheck {
            if healthCmd != nil { throw ValidationError("--no-healthcheck and --health-cmd contradict each other") }
            spec.task.clearHealthcheck()
            return
        }
        if let healthCmd {
            h.test = ["CMD-SHELL", healthCmd]
            if h.interval == 0 { h.interval = 30_000_000_000 }
            if h.timeout == 0 { h.timeout = 30_000_000_000 }
            if h.retries == 0 { h.retries = 3 }
        }
        // A zero interval is sent as given, so that the manager refuses it.
        if let healthInterval { h.interval = try quantity(Quantities.duration, healthInterval) }
        if let healthTimeout { h.timeout = try quantity(Quantities.duration, healthTimeout) }
        if let healthStartPeriod { h.startPeriod = try quantity(Quantities.duration, healthStartPeriod) }
        if let healthRetries {
            guard healthRetries >= 0 else { throw ValidationError("--health-retries must not be negative") }
            h.retries = UInt32(healthRetries)
        }
        if h != SwarmHealthConfig() { spec.task.healthcheck = h }
    }

    func apply(_ u: inout SwarmUpdateConfig, _ what: String, _ parallelism: Int?, _ delay: String?, _ order: String?,
               _ action: String?, _ monitor: String?, _ ratio: Float?) throws {
        if let parallelism {
            guard parallelism >= 0 else { throw ValidationError("--\(what)-parallelism must not be negative") }
            u.parallelism = UInt64(parallelism)
        }
        if let delay { u.delay = try quantity(Quantities.duration, delay) }
        if let monitor { u.monitor = try quantity(Quantities.duration, monitor) }
        if let ratio { u.maxFailureRatio = ratio }
        if let order {
            switch order {
            case "stop-first": u.order = .stopFirst
            case "start-first": u.order = .startFirst
            default: throw ValidationError("--\(what)-order must be stop-first or start-first, not \"\(order)\"")
            }
        }
        if let action {
            switch action {
            case "pause": u.failureAction = .pause
            case "continue": u.failureAction = .continue
            case "rollback" where what == "update": u.failureAction = .rollback
            default:
                throw ValidationError("--\(what)-failure-action must be pause, continue\(what == "update" ? " or rollback" : ""), not \"\(action)\"")
            }
        }
    }
}

/// The job flags of `service create`.
struct JobFlags: ParsableArguments {
    @Option(help: "Completions a replicated job needs (default: --max-concurrent)") var totalCompletions: Int?
    @Option(help: "Tasks of a replicated job that run at once (default 1)") var maxConcurrent: Int?

    func apply(to spec: inout SwarmServiceSpec) throws {
        guard totalCompletions != nil || maxConcurrent != nil else { return }
        guard case .replicatedJob(var job)? = spec.mode else {
            throw ValidationError("--total-completions and --max-concurrent apply to --mode replicated-job only")
        }
        if let totalCompletions {
            guard totalCompletions >= 0 else { throw ValidationError("--total-completions must not be negative") }
            job.totalCompletions = UInt64(totalCompletions)
        }
        if let maxConcurrent {
            guard maxConcurrent >= 0 else { throw ValidationError("--max-concurrent must not be negative") }
            job.maxConcurrent = UInt64(maxConcurrent)
        }
        spec.replicatedJob = job
    }
}
