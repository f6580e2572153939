import ArgumentParser
import Foundation
import GRPCCore
import SwarmAPI
import SwarmManager
import SwarmRPC
import SwarmScheduler

/// swarmctl: drives a swift-swarm cluster through a manager's control socket.
@main
struct Swarmctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmctl", abstract: "Control a swift-swarm cluster",
        subcommands: [ServiceCommand.self, NodeCommand.self, TaskCommand.self, ClusterCommand.self, PluginCommand.self])
}

struct Connection: ParsableArguments {
    @Option(name: [.short, .customLong("socket")], help: "Control socket (or host:port); defaults to $SWARM_SOCKET")
    var socket: String?

    @Option(help: "Output format: table or json")
    var format = "table"

    var address: String {
        let s = socket ?? ProcessInfo.processInfo.environment["SWARM_SOCKET"] ?? "./swarmd-state/swarmd.sock"
        return s.contains("/") || s.hasSuffix(".sock") ? "unix:\(s)" : s
    }

    func call<R: Sendable>(_ body: (SwarmControl.Client<GRPCNIOTransportHTTP2.HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        do {
            return try await withControlClient(address, body)
        } catch let e as RPCError {
            throw CleanExit.message("Error: \(e.message)")
        }
    }
}

import GRPCNIOTransportHTTP2

/// Prints rows in aligned columns, as SwarmKit's swarmctl does.
func table(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max()! }
    for r in [header] + rows {
        print(r.enumerated().map { i, c in c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0) }.joined()
            .trimmingCharacters(in: .whitespaces))
    }
}

func json(_ messages: [some SwiftProtobuf.Message]) throws {
    var opts = JSONEncodingOptions()
    opts.preserveProtoFieldNames = true
    print("[" + (try messages.map { try $0.jsonString(options: opts) }).joined(separator: ",\n") + "]")
}

import SwiftProtobuf

struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service", abstract: "Manage services",
                                                    subcommands: [Create.self, List.self, Inspect.self, Update.self, Remove.self])

    struct Create: AsyncParsableCommand {
        @OptionGroup var conn: Connection
        @Option var name: String
        @Option(help: "Command to run (process executor)") var command: String?
        @Option(help: "Container image (docker executor)") var image: String?
        @Option(parsing: .singleValue, help: "Argument (repeatable, or one string split on spaces)") var args: [String] = []
        @Option(parsing: .singleValue) var env: [String] = []
        @Option var replicas: Int = 1
        @Option var mode = "replicated"
        @Option(parsing: .singleValue) var constraint: [String] = []
        @Option var strategy: String?
        @Option var runtime: String?

        func run() async throws {
            guard replicas >= 0 else { throw ValidationError("--replicas must not be negative") }
            var spec = SwarmServiceSpec()
            spec.annotations.name = name
            switch mode {
            case "replicated": spec.replicated.replicas = UInt64(replicas)
            case "global": spec.global = SwarmGlobalService()
            default: throw ValidationError("--mode must be replicated or global")
            }
            let splitArgs = args.count == 1 ? args[0].split(separator: " ").map(String.init) : args
            if let command {
                spec.task.process = .with { $0.command = command; $0.args = splitArgs; $0.env = env }
            } else if let image {
                spec.task.container = .with { $0.image = image; $0.args = splitArgs; $0.env = env }
            } else {
                throw ValidationError("give --command (process executor) or --image (docker executor)")
            }
            for c in constraint {
                do { _ = try Constraint.parse(c) } catch { throw ValidationError("\(error)") }
            }
            spec.task.placement.constraints = constraint
            spec.task.strategy = strategy ?? ""
            spec.task.runtimeName = runtime ?? ""
            let s = try await conn.call { try await $0.createService(.with { $0.spec = spec }) }.service
            print(s.id)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls")
        @OptionGroup var conn: Connection
        func run() async throws {
            let services = try await conn.call { try await $0.listServices(.init()) }.services
            let tasks = try await conn.call { try await $0.listTasks(.init()) }.tasks
            if conn.format == "json" { return try json(services) }
            table(["ID", "Name", "Image", "Replicas"], services.map { s in
                let running = tasks.filter { $0.serviceID == s.id && $0.status.state == .running }.count
                let wanted: String
                if case .global? = s.spec.mode { wanted = "global" } else { wanted = String(s.spec.replicated.replicas) }
                let image = s.spec.task.container.image.isEmpty ? s.spec.task.process.command : s.spec.task.container.image
                return [s.id, s.spec.annotations.name, image, "\(running)/\(wanted)"]
            })
        }
    }

    struct Inspect: AsyncParsableCommand {
        @OptionGroup var conn: Connection
        @Argument var service: String
        func run() async throws {
            let s = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service
            let tasks = try await conn.call { try await $0.listTasks(.with { $0.serviceIds = [s.id] }) }.tasks
            if conn.format == "json" { return try json([s]) }
            print("ID                : \(s.id)")
            print("Name              : \(s.spec.annotations.name)")
            if case .global? = s.spec.mode { print("Mode              : global") } else {
                print("Replicas          : \(s.spec.replicated.replicas)")
            }
            print("Command           : \(([s.spec.task.process.command] + s.spec.task.process.args).joined(separator: " "))")
            print("")
            table(["Task ID", "Service", "Slot", "Desired State", "Last State", "Node"],
                  tasks.filter { $0.desiredState.rawValue <= SwarmTaskState.running.rawValue }.sorted { $0.slot < $1.slot }.map { t in
                      [t.id, s.spec.annotations.name, String(t.slot), "\(t.desiredState)".uppercased(),
                       "\(t.status.state)".uppercased(), t.nodeID]
                  })
        }
    }

    struct Update: AsyncParsableCommand {
        @OptionGroup var conn: Connection
        @Argument var service: String
        @Option var replicas: Int?
        func run() async throws {
            var s = try await conn.call { try await $0.getService(.with { $0.serviceID = service }) }.service
            if let replicas {
                guard replicas >= 0 else { throw ValidationError("--replicas must not be negative") }
                s.spec.replicated.replicas = UInt64(replicas)
            }
            let spec = s.spec
            let version = s.meta.version
            let id = s.id
            _ = try await conn.call { try await $0.updateService(.with { $0.serviceID = id; $0.serviceVersion = version; $0.spec = spec }) }
            print(id)
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm")
        @OptionGroup var conn: Connection
        @Argument var service: String
        func run() async throws {
            _ = try await conn.call { try await $0.removeService(.with { $0.serviceID = service }) }
            print(service)
        }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Manage nodes",
                                                    subcommands: [List.self, Availability.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls")
        @OptionGroup var conn: Connection
        func run() async throws {
            let nodes = try await conn.call { try await $0.listNodes(.init()) }.nodes
            if conn.format == "json" { return try json(nodes) }
            table(["ID", "Name", "Membership", "Status", "Availability", "Manager Status"], nodes.map { n in
                [n.id, n.description_p.hostname, "\(n.spec.membership)".uppercased(), "\(n.status.state)".uppercased(),
                 "\(n.spec.availability)".uppercased(), n.role == .manager ? "REACHABLE" : ""]
            })
        }
    }

    struct Availability: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "drain", abstract: "Drain a node (see also: activate, pause)",
                                                        aliases: ["activate", "pause"])
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws {
            let verb = CommandLine.arguments.dropFirst().first { ["drain", "activate", "pause"].contains($0) } ?? "drain"
            let n = try await conn.call { try await $0.getNode(.with { $0.nodeID = node }) }.node
            var spec = n.spec
            spec.availability = verb == "activate" ? .active : verb == "pause" ? .pause : .drain
            let s = spec
            _ = try await conn.call { try await $0.updateNode(.with { $0.nodeID = n.id; $0.nodeVersion = n.meta.version; $0.spec = s }) }
        }
    }
}

struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "task", abstract: "Inspect tasks", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls")
        @OptionGroup var conn: Connection
        func run() async throws {
            let tasks = try await conn.call { try await $0.listTasks(.init()) }.tasks
            if conn.format == "json" { return try json(tasks) }
            table(["ID", "Service", "Desired State", "Last State", "Node", "Message"], tasks.map { t in
                [t.id, t.serviceAnnotations.name, "\(t.desiredState)".uppercased(), "\(t.status.state)".uppercased(), t.nodeID, t.status.message]
            })
        }
    }
}

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Inspect the cluster", subcommands: [Inspect.self])

    struct Inspect: AsyncParsableCommand {
        @OptionGroup var conn: Connection
        @Argument var cluster = "default"
        func run() async throws {
            let c = try await conn.call { try await $0.getCluster(.with { $0.clusterID = cluster }) }.cluster
            if conn.format == "json" { return try json([c]) }
            print("ID          : \(c.id)")
            print("Name        : \(c.spec.annotations.name)")
            print("Strategy    : \(c.spec.defaultStrategy)")
            print("Join Tokens :")
            print("  Worker    : \(c.joinTokens.worker)")
            print("  Manager   : \(c.joinTokens.manager)")
        }
    }
}

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugin", abstract: "List plugins", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls")
        @OptionGroup var conn: Connection
        func run() async throws {
            let nodes = try await conn.call { try await $0.listPlugins(.init()) }.nodes
            if conn.format == "json" { return try json(nodes) }
            table(["Node", "Name", "Kind", "Version", "ABI", "File"], nodes.flatMap { n in
                n.plugins.map { [n.hostname, $0.name, $0.kind, $0.version, "\($0.abiMajor).\($0.abiMinor)", $0.file] }
            })
        }
    }
}
