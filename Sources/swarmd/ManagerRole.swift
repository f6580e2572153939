import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAgent
import SwarmAPI
import SwarmCA
import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import ServiceLifecycle
import SwarmStore

/// Why a node could not serve as a manager.
struct ManagerRoleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The manager side of a node: the Raft member, the remote API (Raft, control, dispatcher),
/// the control socket and the leader's components. It runs while the node is a manager,
/// and ends when the node is demoted or shut down.
struct ManagerRole: Sendable {
    let options: Swarmd
    let nodeID: String
    let advertise: String
    let plugins: PluginRegistry
    let agent: Agent
    let credentials: NodeCredentials
    let seed: ClusterBootstrap.Seed?
    let renewal: CertificateRenewal
    let dataKey: DataCipher
    let logger: Logger

    init(options: Swarmd, nodeID: String, advertise: String, plugins: PluginRegistry, agent: Agent,
         credentials: NodeCredentials, seed: ClusterBootstrap.Seed?, renewal: CertificateRenewal, dataKey: DataCipher, logger: Logger) {
        self.dataKey = dataKey
        self.options = options
        self.nodeID = nodeID
        self.advertise = advertise
        self.plugins = plugins
        self.agent = agent
        self.credentials = credentials
        self.seed = seed
        self.renewal = renewal
        self.logger = logger
    }

    /// How a term as manager ended.
    enum Outcome: Sendable {
        /// Shut down (SIGTERM).
        case stopped
        /// Removed from the managers (demoted), with the addresses of those that remain,
        /// for the node's agent.
        case removed(remaining: [String])
    }

    /// Serves as a manager until shut down or removed from the managers. Throws when a part
    /// fails (the manager's state cannot be opened, the remote API cannot listen).
    func run(joined: SwarmJoinResponse?) async throws -> Outcome {
        var config = RaftNodeConfig(stateDir: options.stateDir + "/raft", advertiseAddr: advertise)
        config.electionTick = options.electionTick
        config.heartbeatTick = options.heartbeatTick
        config.nodeID = nodeID
        let security = ClientSecurity.mutualTLS(credentials)
        config.security = security
        config.dataKey = dataKey
        let node: RaftNode
        do {
            node = try RaftNode(config: config, joined: joined, forceNewCluster: options.forceNewCluster, logger: Logger(label: "swarm.raft"))
        } catch {
            throw ManagerRoleError("cannot open the manager's state: \(error)")
        }
        let plugins = self.plugins
        let dispatcher = Dispatcher(node: node)
        let control = ControlService(node: node, logs: dispatcher.logs, plugins: plugins) {
            let reported = node.store.view().find(SwarmNode.self).flatMap { $0.description_p.plugins.filter { $0.kind == "executor" }.map(\.name) }
            return SpecValidation(strategies: Set(plugins.names(.strategy)), runtimes: Set(plugins.names(.executor) + reported),
                                  filters: Set(plugins.names(.filter)))
        }
        guard let (host, port) = NetworkAddress.split(options.listenRemoteAPI) else {
            throw ManagerRoleError("bad --listen-remote-api \(options.listenRemoteAPI)")
        }
        // Mutual TLS, and every call authorized by the caller's certificate before anything
        // else (the leader check and forwarding follow).
        let clusterID = credentials.identity.clusterID
        let authorization = AuthorizationInterceptor(store: node.store, clusterID: { clusterID })
        let remote = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: credentials.serverSecurity()),
                                services: [RaftService(node: node), control, dispatcher, CAService(node: node)],
            interceptorPipeline: [.apply(authorization, to: .all)] + LeaderInterceptor.pipeline(node, security: security))
        let socket = options.listenControlAPI ?? options.stateDir + "/swarmd.sock"
        unlink(socket)
        // The control socket is local: its file mode (0600, set once it listens) admits the
        // node's owner only.
        let local = GRPCServer(transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
                               services: [control],
            interceptorPipeline: LeaderInterceptor.pipeline(node, security: security))
        let stateDir = options.stateDir
        let credentials = self.credentials
        let dataKey = self.dataKey
        let leader = LeaderComponents(node: node, plugins: plugins, dispatcher: dispatcher, seed: seed,
                                      bootstrapped: { NodeSecurity.forgetBootstrapKey(stateDir: stateDir) })
        let logger = self.logger
        let metrics = options.listenMetrics.map { MetricsServer(address: $0, node: node, logger: logger) }
        let agent = self.agent
        let advertise = self.advertise
        let nodeID = self.nodeID
        agent.setManagers([advertise])
        // Each part is a service of one group. The group ends when any part ends, a failed
        // one (a remote API that cannot listen) included: its error is returned. Removal
        // from the managers ends the `membership` part, and with it the group.
        // A group shuts its services down in reverse order: first the leader's loops, then
        // the Raft member (so that the dispatcher's session streams end), then the servers,
        // which finish the calls they have.
        var parts: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metrics { parts.append(.ending(NodePart("metrics", shutdown: { metrics.stop() }) { await metrics.run() })) }
        parts += [
            .ending(.server("remote API on \(host):\(port)", remote)),
            .ending(.server("control socket \(socket)", local)),
            .ending(NodePart("control socket mode") {
                _ = try await local.listeningAddress
                chmod(socket, 0o600)
                try await gracefulShutdown()
            }),
            .ending(NodePart("raft node", shutdown: { node.stop() }) {
                logger.info("manager \(nodeID) serving on \(host):\(port), control socket \(socket)")
                await node.run()
            }),
            .ending(NodePart("leader components") { await leader.run() }),
            .ending(NodePart("membership") { for await _ in node.removal() { return } }),
            .ending(NodePart("autolock") {
                await Autolock.keep(node: node, credentials: credentials, dataKey: dataKey, stateDir: stateDir, logger: logger)
                try await gracefulShutdown()
            }),
        ]
        let group = ServiceGroup(configuration: .init(services: parts, logger: logger))
        var failure: (any Error)?
        do {
            // The outer group's graceful shutdown (SIGTERM) reaches this one.
            try await withGracefulShutdownHandler { try await group.run() } onGracefulShutdown: {
                Task { await group.triggerGracefulShutdown() }
            }
        } catch {
            failure = error
        }
        // However the group ended (a cancelled group skips the parts' shutdown), the Raft
        // member stops with it; stopping twice is harmless.
        node.stop()
        unlink(socket)
        let s = node.status
        if s.removed { return .removed(remaining: s.members.filter { $0.key != s.id }.map(\.value).sorted()) }
        if let failure { throw failure }
        return .stopped
    }

    /// Waits (as a worker) until the cluster asks this node to be a manager, then joins
    /// the managers' Raft group. Returns nil when cancelled.
    func waitForPromotion(_ requests: AsyncStream<(SwarmNodeSpec.Role, String)>) async -> SwarmJoinResponse? {
        for await (role, token) in requests where role == .manager && !token.isEmpty {
            // Retried for a while: the managers may be busy electing a leader.
            for _ in 0..<30 where !Task.isCancelled {
                // A manager's certificate first: the managers' Raft API admits no other.
                if credentials.identity.role != .manager {
                    do { try await renewal.renew(role: .manager) } catch {
                        logger.warning("promotion: a manager certificate was not issued yet: \(error)")
                        try? await Task.sleep(for: .seconds(1))
                        continue
                    }
                }
                for manager in agent.managerAddresses {
                    do {
                        return try await RaftNode.joinCluster(via: manager, advertise: advertise, nodeID: nodeID, token: token,
                                                              security: .mutualTLS(credentials))
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
