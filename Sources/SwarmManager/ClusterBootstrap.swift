import Foundation
import SwarmAPI
import SwarmStore

/// Creates the cluster object `default` the first time a leader takes office.
public enum ClusterBootstrap {
    public static let name = "default"

    /// A join token: `SWMTKN-1-<cluster digest>-<secret>`. The digest part identifies the
    /// cluster's trust root (the cluster key until the CA lands); the secret is random.
    public static func token(digest: String) -> String { "SWMTKN-1-\(digest)-\(Identifiers.secret())" }

    /// The same token with a new secret.
    public static func rotated(_ token: String) -> String {
        let parts = token.split(separator: "-")
        guard parts.count == 4 else { return token }
        return "SWMTKN-1-\(parts[2])-\(Identifiers.secret())"
    }

    /// Creates `default` with tokens and SwarmKit's defaults, unless it exists.
    public static func ensureCluster(_ store: MemoryStore) async throws {
        if store.view().find(SwarmCluster.self, .name(name)).first != nil { return }
        var c = SwarmCluster()
        c.id = Identifiers.make()
        c.spec.annotations.name = name
        c.spec.orchestration.taskHistoryRetentionLimit = 5
        c.spec.dispatcher.heartbeatPeriod = 5_000_000_000
        c.spec.dispatcher.heartbeatGraceMultiplier = 3
        c.spec.raft.snapshotInterval = 10_000
        c.spec.raft.heartbeatTick = 1
        c.spec.raft.electionTick = 10
        c.spec.defaultStrategy = "spread"
        let digest = Identifiers.make() + Identifiers.make()
        c.joinTokens.worker = token(digest: digest)
        c.joinTokens.manager = token(digest: digest)
        do {
            try await store.update { try $0.create(c) }
        } catch StoreError.nameConflict {
            // Another leader created it first.
        }
    }
}
