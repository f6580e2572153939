import Foundation
import Logging
import SwarmAPI
import SwarmCA
import SwarmRaftNode
import SwarmStore

/// Autolock on a manager: keeps its TLS key and its data key sealed with the cluster's
/// unlock key while autolock is on (resealed when the key is rotated), and in the clear
/// when it is off.
public enum Autolock {
    /// Where a manager keeps the key that encrypts its Raft log and snapshots.
    public static func dataKeyPath(_ stateDir: String) -> String { stateDir + "/certificates/swarm-data.key" }

    /// Follows the cluster object until cancelled, sealing both keys as it asks.
    ///
    /// Nothing is written until the member has caught up (see ``caughtUp(_:)``): a member
    /// that restarts replays its log into an empty store, so the cluster object passes
    /// through every state it ever had, and following those would write the keys in the
    /// clear, or sealed with a retired key, for as long as the replay lasts.
    public static func keep(node: RaftNode, credentials: NodeCredentials, dataKey: DataCipher, stateDir: String,
                            logger: Logger) async {
        var applied = credentials.sealing?.description ?? ""
        func apply(_ cluster: SwarmCluster) {
            let wanted = cluster.spec.encryptionConfig.autoLockManagers ? cluster.unlockKey : ""
            guard wanted != applied else { return }
            do {
                let key = wanted.isEmpty ? nil : try UnlockKey(parsing: wanted)
                try set(key, credentials: credentials, dataKey: dataKey, stateDir: stateDir)
                applied = wanted
                logger.notice(key == nil ? "autolock is off: this manager's keys are kept in the clear"
                                         : "autolock: this manager's keys are sealed with the cluster's unlock key")
            } catch {
                logger.error("autolock: cannot reseal this manager's keys: \(error)")
            }
        }
        await caughtUp(node)
        while !Task.isCancelled {
            let (view, watcher) = node.store.viewAndWatch(WatchFilter(tables: [.clusters]))
            if let c = view.find(SwarmCluster.self).first { apply(c) }
            do {
                for try await message in watcher {
                    if case .event(let e) = message, case .cluster(let c) = e.object { apply(c) }
                }
            } catch {}
            watcher.cancel()
        }
    }

    /// Returns once `node` has applied everything it held committed when it started, knows
    /// a leader, and has applied as far as it knows the cluster has committed (or when
    /// cancelled). Before then its store may show a state the cluster has left behind.
    public static func caughtUp(_ node: RaftNode, poll: Duration = .milliseconds(50)) async {
        let recovered = node.status.commit
        while !Task.isCancelled {
            let s = node.status
            if s.leader != 0 && s.applied >= max(recovered, s.commit) { return }
            try? await Task.sleep(for: poll)
        }
    }

    /// Seals both keys with `key`, or writes them in the clear for nil.
    public static func set(_ key: UnlockKey?, credentials: NodeCredentials, dataKey: DataCipher, stateDir: String) throws {
        try DataKeyFile.save(dataKey, to: dataKeyPath(stateDir), sealedWith: key)
        try credentials.seal(with: key)
    }
}
