import SwarmAPI
import SwarmConstraints
import SwarmScheduler

/// Errors of the control API, each mapped to a gRPC status code by the service.
public enum ControlError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidArgument(String)
    case notFound(String)
    case failedPrecondition(String)
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m), .notFound(let m), .failedPrecondition(let m), .unavailable(let m): return m
        }
    }
}

/// Checks user-written specs before anything is stored.
public struct SpecValidation: Sendable {
    /// Strategy plugins the managers loaded.
    public var strategies: Set<String>
    /// Executors the cluster knows: the managers' own plus those the nodes report.
    public var runtimes: Set<String>
    /// Filter plugins the managers loaded.
    public var filters: Set<String>

    public init(strategies: Set<String>, runtimes: Set<String>, filters: Set<String> = []) {
        self.strategies = strategies
        self.runtimes = runtimes
        self.filters = filters
    }

    /// Refuses filter plugin names that no manager loaded.
    public func validate(filters names: [String]) throws(ControlError) {
        for name in names where !filters.contains(name) {
            throw .invalidArgument("unknown filter \"\(name)\" (loaded: \(filters.isEmpty ? "none" : filters.sorted().joined(separator: ", ")))")
        }
    }

    static func validName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        let alnum = { (c: Unicode.Scalar) in (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") }
        return alnum(first) && name.unicodeScalars.allSatisfy { alnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }


    public func validate(_ spec: SwarmServiceSpec) throws(ControlError) {
        let name = spec.annotations.name
        if name.isEmpty { throw .invalidArgument("service name must not be empty") }
        if !Self.validName(name) {
            throw .invalidArgument("service name \"\(name)\" is invalid: use up to 63 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        if spec.mode == nil { throw .invalidArgument("service mode is not set (replicated, global, replicated-job or global-job)") }
        try validate(spec.task)
        try validate(spec.update, "update")
        try validate(spec.rollback, "rollback")
        if spec.rollback.failureAction == .rollback {
            throw .invalidArgument("a rollback's failure action must be pause or continue, not rollback")
        }
    }

    /// The mode's name, as `swarmctl --mode` spells it.
    public static func modeName(_ mode: SwarmServiceSpec.OneOf_Mode?) -> String {
        switch mode {
        case .replicated?: return "replicated"
        case .global?: return "global"
        case .replicatedJob?: return "replicated-job"
        case .globalJob?: return "global-job"
        case nil: return "unset"
        }
    }

    func validate(_ u: SwarmUpdateConfig, _ what: String) throws(ControlError) {
        if u.delay < 0 { throw .invalidArgument("\(what) delay must not be negative") }
        if u.monitor < 0 { throw .invalidArgument("\(what) monitor must not be negative") }
        if !(u.maxFailureRatio >= 0 && u.maxFailureRatio <= 1) {
            throw .invalidArgument("\(what) max failure ratio must be between 0 and 1, not \(u.maxFailureRatio)")
        }
        if case .UNRECOGNIZED(let n) = u.failureAction {
            throw .invalidArgument("unknown \(what) failure action \(n) (pause, continue or rollback)")
        }
        if case .UNRECOGNIZED(let n) = u.order {
            throw .invalidArgument("unknown \(what) order \(n) (stop-first or start-first)")
        }
    }

    func validate(health h: SwarmHealthConfig) throws(ControlError) {
        if h.test.isEmpty {
            if h.interval != 0 || h.timeout != 0 || h.retries != 0 || h.startPeriod != 0 {
                throw .invalidArgument("health check settings given without a health command")
            }
            return
        }
        if h.test.first == "NONE" { throw .invalidArgument("health command NONE: leave the health check out instead") }
        if (h.test.first == "CMD" || h.test.first == "CMD-SHELL") && h.test.count < 2 {
            throw .invalidArgument("health command \(h.test[0]) needs a command after it")
        }
        if h.interval <= 0 { throw .invalidArgument("health interval must be positive") }
        if h.timeout < 0 || h.startPeriod < 0 { throw .invalidArgument("health timeout and start period must not be negative") }
    }

    public func validate(_ task: SwarmTaskSpec) throws(ControlError) {
        switch task.runtime {
        case .process(let p)? where p.command.isEmpty:
            throw .invalidArgument("the task has no command")
        case .container(let c)? where c.image.isEmpty:
            throw .invalidArgument("the task has no image")
        case nil:
            throw .invalidArgument("the task has neither a command nor an image")
        default:
            break
        }
        let runtime = task.executorName
        if !runtimes.contains(runtime) {
            throw .invalidArgument("unknown runtime \"\(runtime)\" (known: \(runtimes.sorted().joined(separator: ", ")))")
        }
        try validate(filters: task.filters)
        if !task.strategy.isEmpty && !strategies.contains(task.strategy) {
            throw .invalidArgument(PlacementError.unknownStrategy(task.strategy, available: strategies.sorted()).description)
        }
        do {
            _ = try Constraint.parse(all: task.placement.constraints)
        } catch {
            throw .invalidArgument(error.description)
        }
        for (what, r) in [("reservation", task.resources.reservations), ("limit", task.resources.limits)] {
            if r.nanoCpus < 0 || r.memoryBytes < 0 { throw .invalidArgument("CPU and memory \(what)s must not be negative") }
            for g in r.generic where g.kind.isEmpty || g.value <= 0 {
                throw .invalidArgument("malformed generic resource \(what) \"\(g.kind)=\(g.named.isEmpty ? String(g.value) : g.named)\"")
            }
        }
        do {
            try PlacementInput.validate(gpu: task.resources.gpu)
            for p in task.placement.preferences { _ = try PlacementInput.spreadLabel(p.spread) }
        } catch {
            throw .invalidArgument(error.description)
        }
        try validate(health: task.healthcheck)
        do throws(ContainerOptions.ParseError) {
            try ContainerOptions.validate(task.ports)
            if case .container(let c)? = task.runtime {
                var targets = Set<String>()
                for m in c.mounts {
                    try ContainerOptions.validate(m)
                    if !targets.insert(m.target).inserted { throw ContainerOptions.ParseError("two mounts at \(m.target)") }
                }
            }
        } catch {
            throw .invalidArgument(error.description)
        }
        if task.restart.delay < 0 || task.restart.window < 0 {
            throw .invalidArgument("restart delay and window must not be negative")
        }
    }
}
