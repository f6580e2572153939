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
        if spec.mode == nil { throw .invalidArgument("service mode is not set (replicated or global)") }
        try validate(spec.task)
        if spec.update.delay < 0 { throw .invalidArgument("update delay must not be negative") }
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
        if task.restart.delay < 0 || task.restart.window < 0 {
            throw .invalidArgument("restart delay and window must not be negative")
        }
    }
}
