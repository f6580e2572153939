import Logging
import SwarmPluginHost
import SwarmRaftNode

/// Starts the leader-only components (cluster bootstrap, orchestrator, scheduler) when this
/// manager becomes leader, and stops them when it is no longer leader.
public final class LeaderComponents: Sendable {
    let node: RaftNode
    let plugins: PluginRegistry
    let dispatcher: Dispatcher?
    let logger: Logger

    public init(node: RaftNode, plugins: PluginRegistry, dispatcher: Dispatcher? = nil,
                logger: Logger = Logger(label: "swarm.manager")) {
        self.node = node
        self.plugins = plugins
        self.dispatcher = dispatcher
        self.logger = logger
    }

    /// Follows leadership until the node stops.
    public func run() async {
        var running: [Task<Void, Never>] = []
        for await isLeader in node.leadershipChanges() {
            for t in running { t.cancel() }
            running = []
            guard isLeader else { continue }
            logger.info("became leader: starting the orchestrator and the scheduler")
            let store = node.store
            let plugins = self.plugins
            do {
                try await ClusterBootstrap.ensureCluster(store)
            } catch {
                logger.error("could not create the default cluster: \(error)")
            }
            running.append(Task { await OrchestratorLoop(store: store).run() })
            running.append(Task { await SchedulerLoop(store: store, plugins: plugins).run() })
            if let dispatcher { running.append(Task { await dispatcher.expireSessions() }) }
            let node = self.node
            running.append(Task { await RoleManager(node: node).run() })
        }
        for t in running { t.cancel() }
    }
}
