import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmRPC
import SwiftProtobuf

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node", abstract: "Manage nodes",
        subcommands: [List.self, Inspect.self, Activate.self, Pause.self, Drain.self, Promote.self, Demote.self, Unlock.self,
                      Remove.self, Update.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List nodes")
        @OptionGroup var conn: Connection
        func run() async throws {
            let nodes = try await conn.call { try await $0.listNodes(.init()) }.nodes
            if conn.isJSON { return try json(nodes) }
            table(["ID", "Name", "Membership", "Status", "Availability", "Manager Status"], nodes.map { n in
                [n.id, n.description_p.hostname, upper(n.spec.membership), upper(n.status.state),
                 upper(n.spec.availability), managerStatus(n)]
            })
        }
    }

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a node")
        @OptionGroup var conn: Connection
        @Argument(help: "Node ID or hostname (or a unique prefix)") var node: String
        func run() async throws {
            let n = try await conn.call { try await $0.getNode(.with { $0.nodeID = node }) }.node
            if conn.isJSON { return try json([n]) }
            let d = n.description_p
            var rows: [(String, String)] = [
                ("ID", n.id), ("Hostname", d.hostname), ("Status", upper(n.status.state) + (n.status.message.isEmpty ? "" : " (\(n.status.message))")),
                ("Availability", upper(n.spec.availability)), ("Role", upper(n.role)),
            ]
            if n.spec.desiredRole != n.role { rows.append(("Desired Role", upper(n.spec.desiredRole))) }
            if n.role == .manager { rows.append(("Manager Status", managerStatus(n))) }
            rows += [("Platform", "\(d.platform.os)/\(d.platform.architecture)"),
                     ("Resources", "\(Double(d.resources.nanoCpus) / 1e9) CPUs, \(d.resources.memoryBytes >> 20) MiB")]
            if !d.resources.generic.isEmpty {
                rows.append(("Generic Resources", d.resources.generic.map { "\($0.kind)=\($0.named.isEmpty ? String($0.value) : $0.named)" }.joined(separator: ", ")))
            }
            if !n.spec.annotations.labels.isEmpty {
                rows.append(("Labels", n.spec.annotations.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")))
            }
            rows.append(("Plugins", d.plugins.map { "\($0.name) (\($0.kind) \($0.version))" }.joined(separator: ", ")))
            for p in d.plugins where !p.unavailable.isEmpty {
                rows.append(("Unavailable", "\(p.name): \(p.unavailable)"))
            }
            fields(rows)
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a node take new tasks")
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws { try await updateNode(conn, node) { $0.availability = .active } }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Keep a node's tasks but give it no new ones")
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws { try await updateNode(conn, node) { $0.availability = .pause } }
    }

    struct Drain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Move a node's tasks elsewhere and give it no new ones")
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws { try await updateNode(conn, node) { $0.availability = .drain } }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a worker a manager")
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws { try await updateNode(conn, node) { $0.desiredRole = .manager } }
    }

    struct Demote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a manager a worker")
        @OptionGroup var conn: Connection
        @Argument var node: String
        func run() async throws { try await updateNode(conn, node) { $0.desiredRole = .worker } }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a node from the cluster")
        @OptionGroup var conn: Connection
        @Flag(help: "Remove it even if it is not down") var force = false
        @Argument var node: String
        func run() async throws {
            let n = try await conn.call { try await $0.getNode(.with { $0.nodeID = node }) }.node
            let force = force
            _ = try await conn.call { try await $0.removeNode(.with { $0.nodeID = n.id; $0.force = force }) }
            print(n.id)
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a node's availability or labels")
        @OptionGroup var conn: Connection
        @Option(help: "active, pause or drain") var availability: String?
        @Option(parsing: .singleValue, help: "Add or change a label KEY=VALUE (repeatable)") var labelAdd: [String] = []
        @Option(parsing: .singleValue, help: "Remove a label KEY (repeatable)") var labelRm: [String] = []
        @Argument var node: String

        func run() async throws {
            var set: [(String, String)] = []
            for l in labelAdd {
                let kv = l.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                guard let key = kv.first, !key.isEmpty else { throw ValidationError("--label-add \"\(l)\": give KEY=VALUE") }
                set.append((key, kv.count > 1 ? kv[1] : ""))
            }
            var a: SwarmNodeSpec.Availability?
            if let availability {
                switch availability {
                case "active": a = .active
                case "pause": a = .pause
                case "drain": a = .drain
                default: throw ValidationError("--availability must be active, pause or drain")
                }
            }
            let (labels, removed, newAvailability) = (set, labelRm, a)
            try await updateNode(conn, node) { spec in
                for (k, v) in labels { spec.annotations.labels[k] = v }
                for k in removed { spec.annotations.labels[k] = nil }
                if let newAvailability { spec.availability = newAvailability }
            }
        }
    }
}

/// Reads a node, changes its spec, and writes it back at the version read.
func updateNode(_ conn: Connection, _ reference: String, _ change: @Sendable (inout SwarmNodeSpec) -> Void) async throws {
    let n = try await conn.call { try await $0.getNode(.with { $0.nodeID = reference }) }.node
    var spec = n.spec
    change(&spec)
    let s = spec
    _ = try await conn.call { try await $0.updateNode(.with { $0.nodeID = n.id; $0.nodeVersion = n.meta.version; $0.spec = s }) }
    print(n.id)
}

/// "Leader", "Reachable", "Unreachable" for managers; empty for workers.
func managerStatus(_ n: SwarmNode) -> String {
    guard n.role == .manager else { return "" }
    if n.managerStatus.leader { return "Leader" }
    switch n.managerStatus.reachability {
    case .unreachable: return "Unreachable"
    default: return "Reachable"
    }
}

extension NodeCommand {
    /// `swarmctl node unlock [KEY]`, on a locked manager's control socket.
    struct Unlock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unlock a manager that restarted locked (autolock): give the unlock key, or type it on standard input")
        @OptionGroup var conn: Connection
        @Argument(help: "The unlock key, SWMKEY-1-… (read from standard input when left out)") var key: String?

        func run() async throws {
            let address = conn.address
            guard address.hasPrefix("unix:") else { throw Failure("node unlock talks to the locked manager's control socket (--socket PATH)") }
            let text = key ?? readLine(strippingNewline: true) ?? ""
            do {
                let transport = try HTTP2ClientTransport.Posix(target: .unixDomainSocket(path: String(address.dropFirst(5))), transportSecurity: .plaintext)
                try await withGRPCClient(transport: transport) { client in
                    _ = try await SwarmNodeLock.Client(wrapping: client).unlock(.with { $0.unlockKey = text })
                }
            } catch let e as RPCError {
                throw Failure(e.code == .unimplemented ? "this manager is not locked" : e.message)
            }
            print("unlocked")
        }
    }
}
