import Foundation
import SwarmAPI
import SwarmCA
import SwarmStore

/// Creates the cluster object `default` the first time a leader takes office.
public enum ClusterBootstrap {
    public static let name = "default"

    /// What the first manager brings to a new cluster: the cluster ID and the root CA that
    /// its own certificate already names and chains to.
    public struct Seed: Sendable {
        public var clusterID: String
        public var rootCA: RootCA
        public init(clusterID: String, rootCA: RootCA) {
            self.clusterID = clusterID
            self.rootCA = rootCA
        }
    }

    /// A new join token for the root `digest`.
    public static func token(digest: String) -> String { JoinToken(rootDigest: digest).description }

    /// The same token with a new secret (a token that does not parse is replaced whole).
    public static func rotated(_ token: String, digest: String) -> String {
        (try? JoinToken(parsing: token))?.rotated().description ?? Self.token(digest: digest)
    }

    /// Creates `default` with its root CA, tokens and SwarmKit's defaults, unless it
    /// exists. Without a seed (tests of single parts) a new root is made. Returns whether
    /// this call created it.
    @discardableResult
    public static func ensureCluster(_ store: MemoryStore, seed: Seed? = nil) async throws -> Bool {
        if store.view().find(SwarmCluster.self, .name(name)).first != nil { return false }
        let seed = try seed ?? Seed(clusterID: Identifiers.make(), rootCA: RootCA.create())
        var c = SwarmCluster()
        c.id = seed.clusterID
        c.spec.annotations.name = name
        c.spec.orchestration.taskHistoryRetentionLimit = 5
        c.spec.dispatcher.heartbeatPeriod = 5_000_000_000
        c.spec.dispatcher.heartbeatGraceMultiplier = 3
        c.spec.raft.snapshotInterval = 10_000
        c.spec.raft.heartbeatTick = 1
        c.spec.raft.electionTick = 10
        c.spec.defaultStrategy = "spread"
        c.spec.caConfig.nodeCertExpiry = Int64(RootCA.defaultNodeValidity * 1e9)
        c.rootCaCert = Data(try seed.rootCA.certificatePEM.utf8)
        c.rootCaKey = Data(seed.rootCA.keyPEM.utf8)
        c.joinTokens.worker = token(digest: seed.rootCA.digest)
        c.joinTokens.manager = token(digest: seed.rootCA.digest)
        do {
            try await store.update { try $0.create(c) }
            return true
        } catch StoreError.nameConflict {
            // Another leader created it first.
            return false
        }
    }
}
