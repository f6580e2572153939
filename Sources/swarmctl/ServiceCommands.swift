import ArgumentParser
import Foundation
import SwarmAPI
import SwarmConstraints
import SwarmOrchestrator
import SwarmRPC
import SwiftProtobuf

struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Manage services",
        subcommands: [Create.self, List.self, Inspect.self, Update.self, Rollback.self, Remove.self, Logs.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a service")
        @OptionGroup var conn: Connection
        @Option(help: "Service name") var name: String
        @Option(help: "replicated, global, replicated-job or global-job") var mode = "replicated"
        @Flag(help: "Show where the tasks would go, and why, without creating anything") var dryRun = false
        @OptionGroup var flags: ServiceFlags
        @OptionGroup var container: ContainerFlags
        @OptionGroup var data: DataFlags
        @OptionGroup var rollout: RolloutFlags
        @OptionGroup var job: JobFlags

        func run() async throws {
            var spec = SwarmServiceSpec()
            spec.annotations.name = name
            switch mode {
            case "replicated": spec.replicated.replicas = 1
            case "global": spec.global = SwarmGlobalService()
            case "replicated-job": spec.replicatedJob = SwarmReplicatedJob()
            case "global-job": spec.globalJob = SwarmGlobalJob()
            default: throw ValidationError("--mode must be replicated, global, replicated-job or global-job")
            }
            guard flags.command != nil || flags.image != nil else {
                throw ValidationError("give --command (process executor) or --image (docker executor)")
            }
            RolloutFlags.defaults(&spec)
            try flags.apply(to: &spec)
            try container.apply(to: &spec)
            try data.apply(to: &spec)
            try rollout.apply(to: &spec)
            try job.apply(to: &spec)
            let dry = dryRun
            let response = try await conn.call { try await $0.createService(.with { $0.spec = spec; $0.dryRun = dry }) }
            if !dry { return print(response.service.id) }
            if conn.isJSON { return try json(response.placements) }
            table(["Slot", "Node", "GPUs", "Reason"], response.placements.map { p in
                [p.slot == 0 ? "-" : String(p.slot), p.hostname.isEmpty ? p.nodeID : p.hostname,
                 p.gpus.map(\.uuid).joined(separator: ","), p.reason]
            })
            let placed = response.placements.filter { $0.reason.isEmpty }.count
            print("\(placed) of \(response.placements.count) tasks would be placed; nothing was created")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a service's spec")
        @OptionGroup var conn: Connection
        @Argument(help: "Service ID or name (or a unique prefix)") var service: String
        @OptionGroup var flags: ServiceFlags
        @OptionGroup var container: ContainerFlags
        @OptionGroup var data: DataFlags
        @OptionGroup var rollout: RolloutFlags
        @Flag(help: "Replace every task even if nothing else changed (runs a job again)") var force = false
        @Flag(help: "Move tasks toward where the service's strategy would place them now, paced by the update settings") var rebalance = false

        func run() async throws {
            var s = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service
            try flags.apply(to: &s.spec)
            try container.apply(to: &s.spec)
            try data.apply(to: &s.spec)
            try rollout.apply(to: &s.spec)
            if force { s.spec.task.forceUpdate += 1 }
            if rebalance {
                guard case .replicated? = s.spec.mode else { throw ValidationError("--rebalance applies to replicated services only") }
                s.spec.rebalance += 1
            }
            let (id, version, spec) = (s.id, s.meta.version, s.spec)
            _ = try await conn.call { try await $0.updateService(.with { $0.serviceID = id; $0.serviceVersion = version; $0.spec = spec }) }
            print(id)
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Return a service to its previous spec, with its rollback settings")
        @OptionGroup var conn: Connection
        @Argument(help: "Service ID or name (or a unique prefix)") var service: String

        func run() async throws {
            let s = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service
            let (id, version) = (s.id, s.meta.version)
            _ = try await conn.call { try await $0.updateService(.with { $0.serviceID = id; $0.serviceVersion = version; $0.rollback = true }) }
            print(id)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List services")
        @OptionGroup var conn: Connection
        func run() async throws {
            let services = try await conn.call { try await $0.listServices(.init()) }.services
            let tasks = try await conn.call { try await $0.listTasks(.init()) }.tasks
            if conn.isJSON { return try json(services) }
            table(["ID", "Name", "Image", "Replicas"], services.map { s in
                let running = tasks.filter { $0.serviceID == s.id && $0.status.state == .running }.count
                let count: String
                switch s.spec.mode {
                case .global?: count = "\(running)/global"
                case .replicatedJob?, .globalJob?: count = Inspect.jobProgress(s, tasks)
                default: count = "\(running)/\(s.spec.replicated.replicas)"
                }
                return [s.id, s.spec.annotations.name, Self.image(s.spec.task), count]
            })
        }

        static func image(_ t: SwarmTaskSpec) -> String {
            if case .container(let c)? = t.runtime { return c.image }
            return t.process.command
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a service and its tasks")
        @OptionGroup var conn: Connection
        @Argument(help: "Service ID or name (or a unique prefix)") var service: String
        func run() async throws {
            let s = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service
            let tasks = try await conn.call { try await $0.listTasks(.with { $0.serviceIds = [s.id] }) }.tasks
            let nodes = try await conn.call { try await $0.listNodes(.init()) }.nodes
            if conn.isJSON { return try json([s]) }
            let t = s.spec.task
            var rows: [(String, String)] = [("ID", s.id), ("Name", s.spec.annotations.name)]
            switch s.spec.mode {
            case .global?: rows.append(("Mode", "GLOBAL"))
            case .replicatedJob(let job)?:
                let shape = Reconciler.jobShape(job)
                rows += [("Mode", "REPLICATED_JOB"), ("Max concurrent", String(shape.maxConcurrent)), ("Progress", Self.jobProgress(s, tasks))]
            case .globalJob?: rows += [("Mode", "GLOBAL_JOB"), ("Progress", Self.jobProgress(s, tasks))]
            default: rows += [("Mode", "REPLICATED"), ("Replicas", String(s.spec.replicated.replicas))]
            }
            rows.append(("Runtime", t.executorName))
            if case .container(let c)? = t.runtime {
                rows.append(("Image", c.image))
                if !c.args.isEmpty { rows.append(("Args", c.args.joined(separator: " "))) }
                if !c.user.isEmpty { rows.append(("User", c.user)) }
                for m in c.mounts {
                    let kind = m.type == .mountBind ? "bind" : m.type == .mountTmpfs ? "tmpfs" : "volume"
                    rows.append(("Mount", "\(kind) \(m.source.isEmpty ? "-" : m.source) -> \(m.target)\(m.readOnly ? " (read-only)" : "")"))
                }
            } else {
                rows.append(("Command", ([t.process.command] + t.process.args).joined(separator: " ")))
                if !t.process.env.isEmpty { rows.append(("Env", t.process.env.joined(separator: " "))) }
            }
            for r in t.secrets { rows.append(("Secret", r.secretName + (r.target == r.secretName ? "" : " -> \(r.target)"))) }
            for r in t.configs { rows.append(("Config", r.configName + (r.target == r.configName ? "" : " -> \(r.target)"))) }
            for p in t.ports where p.publishedPort != 0 {
                rows.append(("Port", "\(p.publishedPort):\(p.targetPort)/\(p.protocol.isEmpty ? "tcp" : p.protocol) (host)"))
            }
            if !t.strategy.isEmpty { rows.append(("Strategy", t.strategy)) }
            if !t.placement.constraints.isEmpty { rows.append(("Constraints", t.placement.constraints.joined(separator: ", "))) }
            let r = t.resources
            if r.reservations.nanoCpus > 0 || r.reservations.memoryBytes > 0 || !r.reservations.generic.isEmpty {
                rows.append(("Reservations", Self.resources(r.reservations)))
            }
            if r.limits.nanoCpus > 0 || r.limits.memoryBytes > 0 { rows.append(("Limits", Self.resources(r.limits))) }
            rows.append(("Restart", "\(upper(t.restart.condition)), delay \(Quantities.format(nanoseconds: t.restart.delay))"
                + (t.restart.maxAttempts > 0 ? ", max attempts \(t.restart.maxAttempts)" : "")
                + (t.restart.window > 0 ? ", window \(Quantities.format(nanoseconds: t.restart.window))" : "")))
            if t.hasHealthcheck {
                let h = t.healthcheck
                rows.append(("Health check", h.test.joined(separator: " ") + ", interval \(Quantities.format(nanoseconds: h.interval))"
                    + ", timeout \(Quantities.format(nanoseconds: h.timeout)), retries \(h.retries)"
                    + (h.startPeriod > 0 ? ", start period \(Quantities.format(nanoseconds: h.startPeriod))" : "")))
            }
            rows.append(("Update", Self.rollout(s.spec.update)))
            rows.append(("Rollback", Self.rollout(s.spec.rollback)))
            rows += Self.updateStatus(s.updateStatus)
            if s.spec.rebalance > 0 {
                rows.append(("Rebalance", s.updateStatus.rebalanced >= s.spec.rebalance ? "done" : "in progress"))
            }
            fields(rows)
            print("")
            let hostnames = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.description_p.hostname) })
            table(["Task ID", "Service", "Slot", t.executorName == "process" ? "Command" : "Image", "Desired State", "Last State", "Node"],
                  tasks.filter(\.isRunnable).sorted { ($0.slot, $0.nodeID) < ($1.slot, $1.nodeID) }.map { task in
                      [task.id, s.spec.annotations.name, task.slot == 0 ? "-" : String(task.slot), Self.commandLine(task.spec),
                       upper(task.desiredState), upper(task.status.state) + " " + age(task.status.timestamp),
                       hostnames[task.nodeID] ?? task.nodeID]
                  })
        }

        /// The image, or for a process task its command line, so that an update's progress
        /// shows in the task table.
        static func commandLine(_ t: SwarmTaskSpec) -> String {
            if case .container(let c)? = t.runtime { return c.image }
            return ([t.process.command] + t.process.args).joined(separator: " ")
        }

        static func rollout(_ u: SwarmUpdateConfig) -> String {
            "parallelism \(u.parallelism), delay \(Quantities.format(nanoseconds: u.delay)), \(u.order == .startFirst ? "start-first" : "stop-first")"
                + ", on failure \(u.failureAction), monitor \(Quantities.format(nanoseconds: u.monitor > 0 ? u.monitor : 5_000_000_000))"
                + ", max failure ratio \(u.maxFailureRatio)"
        }

        static func updateStatus(_ u: SwarmUpdateStatus) -> [(String, String)] {
            guard u.state != .unknown else { return [] }
            var rows = [("Update status", upper(u.state))]
            if u.startedAt > 0 { rows.append(("Update started", age(u.startedAt))) }
            if u.completedAt > 0 { rows.append(("Update ended", age(u.completedAt))) }
            if !u.message.isEmpty { rows.append(("Update message", u.message)) }
            return rows
        }

        /// "7/10 completed" for a replicated job, "3 completed" for a global job.
        static func jobProgress(_ s: SwarmService, _ tasks: [SwarmTask]) -> String {
            let p = Reconciler.jobProgress(s, tasks: tasks)
            return p.total.map { "\(p.completed)/\($0) completed" } ?? "\(p.completed) completed"
        }

        static func resources(_ r: SwarmResources) -> String {
            var parts: [String] = []
            if r.nanoCpus > 0 { parts.append("cpu \(Double(r.nanoCpus) / 1e9)") }
            if r.memoryBytes > 0 { parts.append("memory \(r.memoryBytes / (1 << 20)) MiB") }
            for g in r.generic { parts.append("\(g.kind)=\(g.named.isEmpty ? String(g.value) : g.named)") }
            return parts.joined(separator: ", ")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a service and stop its tasks")
        @OptionGroup var conn: Connection
        @Argument(help: "Service ID or name (or a unique prefix)") var service: String
        func run() async throws {
            _ = try await conn.call { try await $0.removeService(.with { $0.serviceID = service }) }
            print(service)
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the output of a service's tasks")
        @OptionGroup var conn: Connection
        @OptionGroup var options: LogOptions
        @Argument(help: "Service ID or name (or a unique prefix)") var service: String
        func run() async throws {
            try await options.stream(conn, .with { $0.serviceID = service })
        }
    }
}

/// The flags `service create` and `service update` share. On update, only the flags given
/// change the spec.
struct ServiceFlags: ParsableArguments {
    @Option(help: "Command to run (process executor), or the entrypoint with --image") var command: String?
    @Option(help: "Container image (docker executor)") var image: String?
    @Option(parsing: .singleValue, help: "Argument (repeatable, or one string split on spaces)") var args: [String] = []
    @Option(parsing: .singleValue, help: "Environment variable KEY=VALUE (repeatable)") var env: [String] = []
    @Option(help: "Working directory of the task") var workdir: String?
    @Option(help: "Number of tasks (replicated mode)") var replicas: Int?
    @Option(parsing: .singleValue, help: "Placement constraint, e.g. node.labels.zone==east (repeatable)") var constraint: [String] = []
    @Option(help: "Most tasks of this service on one node (0: no limit)") var maxReplicas: Int?
    @Option(parsing: .singleValue, help: "Spread tasks over a node label, e.g. spread=node.labels.zone (repeatable, outermost first)") var placementPref: [String] = []
    @Option(help: "CPUs to reserve per task, e.g. 0.5") var reserveCpu: String?
    @Option(help: "Memory to reserve per task, e.g. 256MiB") var reserveMemory: String?
    @Option(help: "CPU limit per task") var limitCpu: String?
    @Option(help: "Memory limit per task") var limitMemory: String?
    @Option(parsing: .singleValue, help: "Generic resource to reserve per task, e.g. fpga=1 (repeatable)") var genericResource: [String] = []
    @Option(help: "GPUs per task") var gpus: Int?
    @Option(help: "Share of one GPU in milli (1-1000) for a fractional GPU task") var gpuMilli: Int?
    @Option(help: "Allowed GPU models, e.g. V100M16|V100M32") var gpuModels: String?
    @Option(help: "Least GPU memory per GPU, e.g. 16GiB") var gpuMinMemory: String?
    @Option(help: "Restart condition: none, on-failure or any") var restartCondition: String?
    @Option(help: "Delay between restarts, e.g. 5s") var restartDelay: String?
    @Option(help: "Most restarts within the window (0: no limit)") var restartMaxAttempts: Int?
    @Option(help: "Window in which restarts are counted, e.g. 1m") var restartWindow: String?
    @Option(help: "Time between SIGTERM and SIGKILL, e.g. 10s") var stopGracePeriod: String?
    @Option(help: "Scheduling strategy plugin (default: the cluster's)") var strategy: String?
    @Option(parsing: .singleValue, help: "Filter plugin to apply, besides the cluster's defaults (repeatable)") var filter: [String] = []
    @Option(help: "Executor plugin (default: process, or docker with --image)") var runtime: String?

    func apply(to spec: inout SwarmServiceSpec) throws {
        let splitArgs = args.count == 1 ? args[0].split(separator: " ").map(String.init) : args
        if let image {
            // A container task: --command replaces the image's entrypoint.
            var c = spec.task.container
            c.image = image
            if let command { c.command = [command] }
            spec.task.container = c
        } else if let command {
            if case .container(var c)? = spec.task.runtime {
                c.command = [command]
                spec.task.container = c
            } else {
                var p = spec.task.process
                p.command = command
                spec.task.process = p
            }
        }
        switch spec.task.runtime {
        case .process(var p)?:
            if !args.isEmpty { p.args = splitArgs }
            if !env.isEmpty { p.env = env }
            if let workdir { p.dir = workdir }
            if let stopGracePeriod { p.stopGracePeriod = try quantity(Quantities.duration, stopGracePeriod) }
            spec.task.process = p
        case .container(var c)?:
            if !args.isEmpty { c.args = splitArgs }
            if !env.isEmpty { c.env = env }
            if let workdir { c.dir = workdir }
            if let stopGracePeriod { c.stopGracePeriod = try quantity(Quantities.duration, stopGracePeriod) }
            spec.task.container = c
        case nil:
            break
        }
        if let replicas {
            guard replicas >= 0 else { throw ValidationError("--replicas must not be negative") }
            guard case .replicated? = spec.mode else { throw ValidationError("--replicas applies to replicated services only") }
            spec.replicated.replicas = UInt64(replicas)
        }
        if !constraint.isEmpty {
            for c in constraint {
                do { _ = try Constraint.parse(c) } catch { throw ValidationError(error.description) }
            }
            spec.task.placement.constraints = constraint
        }
        if !placementPref.isEmpty {
            for p in placementPref {
                do { _ = try PlacementInput.spreadLabel(p) } catch { throw ValidationError(error.description) }
            }
            spec.task.placement.preferences = placementPref.map { p in .with { $0.spread = p.hasPrefix("spread=") ? String(p.dropFirst(7)) : p } }
        }
        if let maxReplicas {
            guard maxReplicas >= 0 else { throw ValidationError("--max-replicas must not be negative") }
            spec.task.placement.maxReplicas = UInt64(maxReplicas)
        }
        if let reserveCpu { spec.task.resources.reservations.nanoCpus = try quantity(Quantities.nanoCPUs, reserveCpu) }
        if let reserveMemory { spec.task.resources.reservations.memoryBytes = try quantity(Quantities.bytes, reserveMemory) }
        if let limitCpu { spec.task.resources.limits.nanoCpus = try quantity(Quantities.nanoCPUs, limitCpu) }
        if let limitMemory { spec.task.resources.limits.memoryBytes = try quantity(Quantities.bytes, limitMemory) }
        if !genericResource.isEmpty {
            do {
                let parsed = try GenericResources.parse(genericResource.joined(separator: ","))
                if let named = parsed.first(where: { !$0.named.isEmpty }) {
                    throw ValidationError("--generic-resource \(named.kind)=\(named.named): a task reserves a count, e.g. \(named.kind)=1")
                }
                spec.task.resources.reservations.generic = parsed
            } catch let e as PlacementError {
                throw ValidationError(e.description)
            }
        }
        if let gpus {
            guard gpus >= 0 else { throw ValidationError("--gpus must not be negative") }
            spec.task.resources.gpu.count = UInt32(gpus)
        }
        if let gpuMilli {
            guard gpuMilli >= 0 else { throw ValidationError("--gpu-milli must not be negative") }
            spec.task.resources.gpu.milli = UInt32(gpuMilli)
            if gpus == nil && spec.task.resources.gpu.count == 0 { spec.task.resources.gpu.count = 1 }
        }
        if let gpuModels { spec.task.resources.gpu.models = gpuModels.split(separator: "|").map(String.init) }
        if let gpuMinMemory { spec.task.resources.gpu.minMemoryMib = UInt64(try quantity(Quantities.bytes, gpuMinMemory) >> 20) }
        do {
            try PlacementInput.validate(gpu: spec.task.resources.gpu)
        } catch {
            throw ValidationError(error.description)
        }
        if let restartCondition {
            switch restartCondition {
            case "none": spec.task.restart.condition = .none
            case "on-failure": spec.task.restart.condition = .onFailure
            case "any": spec.task.restart.condition = .any
            default: throw ValidationError("--restart-condition must be none, on-failure or any")
            }
        }
        if let restartDelay { spec.task.restart.delay = try quantity(Quantities.duration, restartDelay) }
        if let restartWindow { spec.task.restart.window = try quantity(Quantities.duration, restartWindow) }
        if let restartMaxAttempts {
            guard restartMaxAttempts >= 0 else { throw ValidationError("--restart-max-attempts must not be negative") }
            spec.task.restart.maxAttempts = UInt64(restartMaxAttempts)
        }
        if let strategy { spec.task.strategy = strategy }
        if !filter.isEmpty { spec.task.filters = filter }
        if let runtime { spec.task.runtimeName = runtime }
    }
}
