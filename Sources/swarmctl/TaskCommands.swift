import ArgumentParser
import Foundation
import GRPCCore
import SwarmAPI
import SwarmRPC
import SwiftProtobuf

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Inspect tasks",
                                                    subcommands: [List.self, Inspect.self, Logs.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List tasks")
        @OptionGroup var conn: Connection
        @Option(help: "Only the tasks of this service") var service: String?
        @Flag(help: "Include tasks that have ended") var all = false
        func run() async throws {
            var request = SwarmListTasksRequest()
            if let service {
                let id = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service.id
                request.serviceIds = [id]
            }
            let filter = request
            let tasks = try await conn.call { try await $0.listTasks(filter) }.tasks
                .filter { all || $0.isRunnable }
            if conn.isJSON { return try json(tasks) }
            let nodes = try await conn.call { try await $0.listNodes(.init()) }.nodes
            let hostnames = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.description_p.hostname) })
            table(["ID", "Service", "Desired State", "Last State", "Health", "Node", "Message"], tasks.map { t in
                [t.id, t.serviceAnnotations.name + (t.slot > 0 ? ".\(t.slot)" : ""), upper(t.desiredState),
                 upper(t.status.state) + " " + age(t.status.timestamp), health(t), hostnames[t.nodeID] ?? t.nodeID, t.status.message]
            })
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a task, and why it is not placed if it is pending")
        @OptionGroup var conn: Connection
        @Argument(help: "Task ID (or a unique prefix)") var task: String
        func run() async throws {
            let t = try await conn.call { try await $0.getTask(.with { $0.taskID = task }) }.task
            if conn.isJSON { return try json([t]) }
            var rows: [(String, String)] = [
                ("ID", t.id), ("Service", t.serviceAnnotations.name), ("Slot", t.slot == 0 ? "-" : String(t.slot)),
                ("Node", t.nodeID.isEmpty ? "-" : t.nodeID), ("Desired State", upper(t.desiredState)),
                ("Last State", upper(t.status.state) + " " + age(t.status.timestamp)),
                ("Message", t.status.message),
            ]
            if !t.status.err.isEmpty { rows.append(("Error", t.status.err)) }
            if t.spec.hasHealthcheck { rows.append(("Health", health(t))) }
            if t.runningSince > 0 { rows.append(("Started", age(t.runningSince))) }
            if t.status.pid > 0 { rows.append(("PID", String(t.status.pid))) }
            if t.status.state.isTerminal { rows.append(("Exit Code", String(t.status.exitCode))) }
            if !t.assignedGenericResources.isEmpty {
                rows.append(("Resources", t.assignedGenericResources.map { "\($0.kind)=\($0.named.isEmpty ? String($0.value) : $0.named)" }.joined(separator: ", ")))
            }
            fields(rows)
            if !t.status.rejections.isEmpty {
                print("\nNodes rejected by each filter:")
                table(["Filter", "Nodes"], t.status.rejections.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { [$0.key, String($0.value)] })
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a task's output")
        @OptionGroup var conn: Connection
        @OptionGroup var options: LogOptions
        @Argument(help: "Task IDs (or unique prefixes)") var tasks: [String]
        func run() async throws {
            let ids = tasks
            try await options.stream(conn, .with { $0.taskIds = ids })
        }
    }
}

/// A task's health: "-" without a health check, else STARTING, HEALTHY or UNHEALTHY.
func health(_ t: SwarmTask) -> String {
    guard t.spec.hasHealthcheck else { return "-" }
    return t.status.health == .none ? "STARTING" : upper(t.status.health)
}

/// "2 seconds ago", as SwarmKit's tables print it.
func age(_ timestamp: Int64) -> String {
    guard timestamp > 0 else { return "" }
    let s = max(0, Int(Date().timeIntervalSince1970 - Double(timestamp) / 1e9))
    switch s {
    case ..<60: return "\(s) second\(s == 1 ? "" : "s") ago"
    case ..<3600: return "\(s / 60) minute\(s / 60 == 1 ? "" : "s") ago"
    case ..<86400: return "\(s / 3600) hour\(s / 3600 == 1 ? "" : "s") ago"
    default: return "\(s / 86400) day\(s / 86400 == 1 ? "" : "s") ago"
    }
}

/// Options of `service logs` and `task logs`.
struct LogOptions: ParsableArguments {
    @Flag(name: [.short, .long], help: "Keep printing new output") var follow = false
    @Option(help: "Only the last N lines of each task (0: all)") var tail: UInt32 = 0
    @Flag(help: "Do not prefix lines with the task's name and node") var noPrefix = false

    func stream(_ conn: Connection, _ base: SwarmTaskLogsRequest) async throws {
        var request = base
        request.follow = follow
        request.tail = tail
        let req = request
        // Names for the prefixes: service.slot.task@host.
        let prefix = !noPrefix && !base.serviceID.isEmpty
        var names: [String: String] = [:]
        if prefix {
            let tasks = try await conn.call { try await $0.listTasks(.init()) }.tasks
            let nodes = try await conn.call { try await $0.listNodes(.init()) }.nodes
            let hosts = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0.description_p.hostname) })
            for t in tasks {
                names[t.id] = "\(t.serviceAnnotations.name).\(t.slot > 0 ? String(t.slot) : t.nodeID.prefix(8).description).\(t.id.prefix(12))@\(hosts[t.nodeID] ?? t.nodeID)"
            }
        }
        let printer = names
        try await conn.call { client in
            try await client.taskLogs(req) { response in
                for try await message in response.messages {
                    for line in message.lines {
                        var data = line.data
                        if prefix { data = Data("\(printer[line.taskID] ?? line.taskID) | ".utf8) + data }
                        let handle = line.stream == .stderr ? FileHandle.standardError : FileHandle.standardOutput
                        handle.write(data)
                    }
                }
            }
        }
    }
}
