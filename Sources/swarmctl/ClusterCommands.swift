import ArgumentParser
import Foundation
import SwarmAPI
import SwarmRPC
import SwiftProtobuf

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cluster", abstract: "Inspect and configure the cluster",
                                                    subcommands: [Inspect.self, Update.self, UnlockKeyCommand.self])

    struct Inspect: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the cluster's settings and join tokens")
        @OptionGroup var conn: Connection
        @Argument var cluster = "default"
        func run() async throws {
            let c = try await conn.call { try await $0.getCluster(.with { $0.clusterID = cluster }) }.cluster
            if conn.isJSON { return try json([c]) }
            let d = c.spec.dispatcher
            fields([
                ("ID", c.id),
                ("Name", c.spec.annotations.name),
                ("Default Strategy", c.spec.defaultStrategy.isEmpty ? "spread" : c.spec.defaultStrategy),
                ("Default Filters", c.spec.defaultFilters.isEmpty ? "none" : c.spec.defaultFilters.joined(separator: ", ")),
                ("Heartbeat Period", Quantities.format(nanoseconds: d.heartbeatPeriod > 0 ? d.heartbeatPeriod : 5_000_000_000)),
                ("Heartbeat Grace", "\(d.heartbeatGraceMultiplier > 0 ? d.heartbeatGraceMultiplier : 3) periods"),
                ("Task History", "\(c.spec.orchestration.taskHistoryRetentionLimit > 0 ? c.spec.orchestration.taskHistoryRetentionLimit : 5) per slot"),
                ("Certificate Expiry", Quantities.format(nanoseconds: c.spec.caConfig.nodeCertExpiry > 0 ? c.spec.caConfig.nodeCertExpiry : 90 * 86_400_000_000_000)),
            ] + (c.hasRootRotation ? [("Root Rotation", "in progress")] : []))
            print("Join Tokens:")
            print("  Worker  : \(c.joinTokens.worker)")
            print("  Manager : \(c.joinTokens.manager)")
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change the cluster's settings or rotate its join tokens")
        @OptionGroup var conn: Connection
        @Argument var cluster = "default"
        @Option(help: "Period agents must send heartbeats in, e.g. 5s") var heartbeatPeriod: String?
        @Option(help: "Missed periods after which a node is DOWN") var heartbeatGrace: UInt32?
        @Option(help: "Ended tasks kept per slot") var taskHistoryLimit: Int64?
        @Option(help: "Strategy for services that name none") var defaultStrategy: String?
        @Option(parsing: .singleValue, help: "Filter plugin applied to every service (repeatable)") var defaultFilter: [String] = []
        @Option(help: "Rebalance replicated services when a node joins or becomes active (true or false)") var autoRebalance: Bool?
        @Option(help: "Validity of the node certificates the CA issues, e.g. 2160h (at least 1h); nodes renew at once when it is shortened") var certExpiry: String?
        @Option(help: "Autolock (true or false): managers keep their keys sealed with an unlock key, printed here, and a restarted manager stays locked until given it")
        var autolock: Bool?
        @Flag(help: "Issue a new unlock key (autolock on), printed here") var rotateUnlockKey = false
        @Flag(help: "Rotate the root CA: every node moves to a certificate from a new root (through a cross-signed transition), then the old root is no longer trusted")
        var rotateCa = false
        @Flag(help: "Issue a new worker join token") var rotateWorkerToken = false
        @Flag(help: "Issue a new manager join token") var rotateManagerToken = false

        func run() async throws {
            let c = try await conn.call { try await $0.getCluster(.with { $0.clusterID = cluster }) }.cluster
            var spec = c.spec
            if let heartbeatPeriod {
                let n = try quantity(Quantities.duration, heartbeatPeriod)
                guard n > 0 else { throw ValidationError("--heartbeat-period must be positive") }
                spec.dispatcher.heartbeatPeriod = n
            }
            if let heartbeatGrace {
                guard heartbeatGrace > 0 else { throw ValidationError("--heartbeat-grace must be positive") }
                spec.dispatcher.heartbeatGraceMultiplier = heartbeatGrace
            }
            if let taskHistoryLimit {
                guard taskHistoryLimit >= 0 else { throw ValidationError("--task-history-limit must not be negative") }
                spec.orchestration.taskHistoryRetentionLimit = taskHistoryLimit
            }
            if let certExpiry {
                let n = try quantity(Quantities.duration, certExpiry)
                guard n > 0 else { throw ValidationError("--cert-expiry must be positive") }
                spec.caConfig.nodeCertExpiry = n
            }
            if let autolock { spec.encryptionConfig.autoLockManagers = autolock }
            if let defaultStrategy { spec.defaultStrategy = defaultStrategy }
            if let autoRebalance { spec.orchestration.autoRebalance = autoRebalance }
            if !defaultFilter.isEmpty { spec.defaultFilters = defaultFilter }
            let (id, version, s, w, m, u, r) = (c.id, c.meta.version, spec, rotateWorkerToken, rotateManagerToken, rotateUnlockKey, rotateCa)
            _ = try await conn.call {
                try await $0.updateCluster(.with {
                    $0.clusterID = id
                    $0.clusterVersion = version
                    $0.spec = s
                    $0.rotateWorkerToken = w
                    $0.rotateManagerToken = m
                    $0.rotateManagerUnlockKey = u
                    $0.rotateRootCa = r
                })
            }
            print(id)
            if (autolock == true && !c.spec.encryptionConfig.autoLockManagers) || u {
                let key = try await conn.call { try await $0.getUnlockKey(.init()) }.unlockKey
                print("Unlock key (keep it safe: a restarted manager needs it): \(key)")
            }
        }
    }
}

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugin", abstract: "List plugins", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the plugins each node loaded")
        @OptionGroup var conn: Connection
        func run() async throws {
            let nodes = try await conn.call { try await $0.listPlugins(.init()) }.nodes
            if conn.isJSON { return try json(nodes) }
            table(["Node", "Name", "Kind", "Version", "ABI", "Status", "File"], nodes.flatMap { n in
                n.plugins.map {
                    let status = $0.unavailable.isEmpty ? "ok" : "unavailable: \($0.unavailable)"
                    return [n.hostname, $0.name, $0.kind, $0.version, "\($0.abiMajor).\($0.abiMinor)", status, $0.file]
                }
            })
        }
    }
}

/// `swarmctl cluster unlock-key`: the managers' current unlock key (autolock on).
struct UnlockKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unlock-key", abstract: "Show the managers' unlock key (autolock)")
    @OptionGroup var conn: Connection
    func run() async throws {
        print(try await conn.call { try await $0.getUnlockKey(.init()) }.unlockKey)
    }
}
