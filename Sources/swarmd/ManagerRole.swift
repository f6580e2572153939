import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAgent
import SwarmAPI
import SwarmManager
import SwarmPluginHost
import SwarmRaftNode

/// The manager side of a node: the Raft member, the remote API (Raft, control, dispatcher),
/// the control socket and the leader's components. It runs while the node is a manager,
/// and ends when the node is demoted or shut down.
struct ManagerRole: Sendable {
    let options: Swarmd
    let nodeID: String
    let advertise: String
    let plugins: PluginRegistry
    let agent: Agent
    let logger: Logger

    init(options: Swarmd, nodeID: String, advertise: String, plugins: PluginRegistry, agent: Agent, logger: Logger) {
        self.options = options
        self.nodeID = nodeID
        self.advertise = advertise
        self.plugins = plugins
        self.agent = agent
        self.logger = logger
    }

    /// Serves as a manager until cancelled (returns nil) or removed from the managers
    /// (returns the addresses of the remaining managers, for the node's agent).
    func run(joined: SwarmJoinResponse?) async -> [String]? {
        var config = RaftNodeConfig(stateDir: options.stateDir + "/raft", advertiseAddr: advertise)
        config.electionTick = options.electionTick
        config.heartbeatTick = options.heartbeatTick
        config.nodeID = nodeID
        let node: RaftNode
        do {
            node = try RaftNode(config: config, joined: joined, forceNewCluster: options.forceNewCluster, logger: Logger(label: "swarm.raft"))
        } catch {
            logger.critical("cannot open the manager's state: \(error)")
            return nil
        }
        let plugins = self.plugins
        let dispatcher = Dispatcher(node: node)
        let control = ControlService(node: node, logs: dispatcher.logs, plugins: plugins) {
            let reported = node.store.view().find(SwarmNode.self).flatMap { $0.description_p.plugins.filter { $0.kind == "executor" }.map(\.name) }
            return SpecValidation(strategies: Set(plugins.names(.strategy)), runtimes: Set(plugins.names(.executor) + reported),
                                  filters: Set(plugins.names(.filter)))
        }
        guard let (host, port) = NetworkAddress.split(options.listenRemoteAPI) else {
            logger.critical("bad --listen-remote-api \(options.listenRemoteAPI)")
            return nil
        }
        let remote = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                                services: [RaftService(node: node), control, dispatcher])
        let socket = options.listenControlAPI ?? options.stateDir + "/swarmd.sock"
        unlink(socket)
        let local = GRPCServer(transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
                               services: [control])
        let leader = LeaderComponents(node: node, plugins: plugins, dispatcher: dispatcher)
        let logger = self.logger
        let metrics = options.listenMetrics.map { MetricsServer(address: $0, node: node, logger: logger) }
        let agent = self.agent
        let advertise = self.advertise
        let nodeID = self.nodeID
        agent.setManagers([advertise])
        return await withTaskGroup(of: Void.self) { group -> [String]? in
            group.addTask {
                do { try await remote.serve() } catch { logger.critical("remote API on \(host):\(port): \(error)") }
            }
            group.addTask {
                do { try await local.serve() } catch { logger.critical("control socket \(socket): \(error)") }
            }
            if let metrics { group.addTask { await metrics.run() } }
            node.start()
            logger.info("manager \(nodeID) serving on \(host):\(port), control socket \(socket)")
            group.addTask { await leader.run() }
            group.addTask {
                // The node's agent joins with the manager token once the cluster exists.
                while agent.joinToken.isEmpty && !Task.isCancelled {
                    if let token = node.store.view().find(SwarmCluster.self).first?.joinTokens.manager, !token.isEmpty {
                        agent.joinToken = token
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            // Until shut down, or removed from the managers (demoted).
            var remaining: [String]?
            while !Task.isCancelled {
                let s = node.status
                if s.removed {
                    remaining = s.members.filter { $0.key != s.id }.map(\.value).sorted()
                    break
                }
                try? await Task.sleep(for: .milliseconds(200))
            }
            node.stop()
            remote.beginGracefulShutdown()
            local.beginGracefulShutdown()
            metrics?.stop()
            group.cancelAll()
            await group.waitForAll()
            unlink(socket)
            return remaining
        }
    }

    /// Waits (as a worker) until the cluster asks this node to be a manager, then joins
    /// the managers' Raft group. Returns nil when cancelled.
    func waitForPromotion(_ requests: AsyncStream<(SwarmNodeSpec.Role, String)>) async -> SwarmJoinResponse? {
        for await (role, token) in requests where role == .manager && !token.isEmpty {
            // Retried for a while: the managers may be busy electing a leader.
            for _ in 0..<30 where !Task.isCancelled {
                for manager in agent.managerAddresses {
                    do {
                        return try await RaftNode.joinCluster(via: manager, advertise: advertise, nodeID: nodeID, token: token)
                    } catch {
                        logger.warning("promotion: joining the managers through \(manager) failed: \(error)")
                    }
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        return nil
    }
}
