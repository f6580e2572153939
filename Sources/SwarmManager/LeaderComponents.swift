import Logging
import SwarmPluginHost
import SwarmRaftNode

/// Starts the leader-only components (cluster bootstrap, orchestrator, scheduler) when this
/// manager becomes leader, and stops them when it is no longer leader.
public final class LeaderComponents: Sendable {
    let node: any ManagerMembership
    let plugins: PluginRegistry
    let dispatcher: Dispatcher?
    let seed: ClusterBootstrap.Seed?
    let bootstrapped: @Sendable () -> Void
    let logger: Logger

    /// - Parameters:
    ///   - seed: the first manager's cluster ID and root CA, for the cluster object;
    ///   - bootstrapped: called once the cluster object exists (the first manager then
    ///     forgets the root key it kept until the store held it).
    public init(node: any ManagerMembership, plugins: PluginRegistry, dispatcher: Dispatcher? = nil,
                seed: ClusterBootstrap.Seed? = nil, bootstrapped: @escaping @Sendable () -> Void = {},
                logger: Logger = Logger(label: "swarm.manager")) {
        self.node = node
        self.plugins = plugins
        self.dispatcher = dispatcher
        self.seed = seed
        self.bootstrapped = bootstrapped
        self.logger = logger
    }

    /// Follows leadership until the node stops. Each term's loops run in one task group;
    /// when leadership is lost they are cancelled, and awaited, before anything else
    /// starts, so that two schedulers or orchestrators never run at once.
    public func run() async {
        var term: Task<Void, Never>?
        for await isLeader in node.leadershipChanges() {
            if let running = term {
                running.cancel()
                await running.value
                term = nil
                logger.info("leadership lost: the orchestrator and the scheduler have stopped")
            }
            guard isLeader else { continue }
            term = Task { await self.lead() }
        }
        if let running = term {
            running.cancel()
            await running.value
        }
    }

    /// One term as leader: the leader's loops, until cancelled.
    func lead() async {
        logger.info("became leader: starting the orchestrator and the scheduler")
        let store = node.store
        do {
            try await ClusterBootstrap.ensureCluster(store, seed: seed)
            bootstrapped()
        } catch {
            logger.error("could not create the default cluster: \(error)")
        }
        await withTaskGroup(of: Void.self) { group in
            let plugins = self.plugins
            group.addTask {
                await OrchestratorLoop(store: store, rebalanceTargets: { service, view in
                    (try? DryPlacement(service, view: view, plugins: plugins, withoutOwnTasks: true))?.countsByNode
                }).run()
            }
            group.addTask { await SchedulerLoop(store: store, plugins: self.plugins).run() }
            if let dispatcher = self.dispatcher {
                group.addTask { await dispatcher.expireSessions() }
                group.addTask { await RootRotationLoop(store: store, dispatcher: dispatcher).run() }
            }
            group.addTask { await RoleManager(node: self.node).run() }
        }
    }
}
