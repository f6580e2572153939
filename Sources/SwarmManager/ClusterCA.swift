import Foundation
import Logging
import SwarmAPI
import SwarmCA
import SwarmStore
import SwiftProtobuf
import X509

/// The cluster's CA as the store holds it: the root, and during a root rotation the new
/// root and its certificate cross-signed by the old one.
public struct ClusterCA: Sendable {
    public let root: RootCA
    public let next: (root: RootCA, crossSigned: Certificate)?

    public init(_ cluster: SwarmCluster) throws(CAError) {
        root = try RootCA(certificatePEM: String(decoding: cluster.rootCaCert, as: UTF8.self),
                          keyPEM: String(decoding: cluster.rootCaKey, as: UTF8.self))
        if cluster.hasRootRotation {
            let r = cluster.rootRotation
            let nextRoot = try RootCA(certificatePEM: String(decoding: r.caCert, as: UTF8.self),
                                      keyPEM: String(decoding: r.caKey, as: UTF8.self))
            next = (nextRoot, try PEMFiles.certificate(String(decoding: r.crossSignedCaCert, as: UTF8.self), what: "the cross-signed root"))
        } else {
            next = nil
        }
    }

    /// The root that signs new certificates: the new one during a rotation.
    public var signer: RootCA { next?.root ?? root }
    /// What a new certificate is presented with (the cross-signed root during a rotation).
    public var intermediates: [Certificate] { next.map { [$0.crossSigned] } ?? [] }
    /// The roots every node trusts now: both during a rotation.
    public var trustedRoots: [Certificate] { [root.certificate] + (next.map { [$0.root.certificate] } ?? []) }

    /// The PEM of the trusted roots, one after another.
    public var trustedRootsPEM: [Data] { trustedRoots.compactMap { try? Data($0.pem.utf8) } }

    /// The PEM of the roots nodes trust now, straight from the cluster object (nothing is
    /// parsed: the dispatcher sends it with every session message).
    public static func trustedRootsPEM(_ cluster: SwarmCluster) -> [Data] {
        [cluster.rootCaCert] + (cluster.hasRootRotation ? [cluster.rootRotation.caCert] : [])
    }

    /// The PEM of the root the CA signs with now.
    public static func signingRootPEM(_ cluster: SwarmCluster) -> Data {
        cluster.hasRootRotation ? cluster.rootRotation.caCert : cluster.rootCaCert
    }

    /// Starts a rotation in `cluster` to a new root, cross-signed by the current one.
    public static func startRotation(_ cluster: inout SwarmCluster) throws {
        if cluster.hasRootRotation { throw CAError("a root CA rotation is in progress; it must finish first") }
        let ca = try ClusterCA(cluster)
        let name = "swarm-ca-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let next = try RootCA.create(commonName: name)
        cluster.rootRotation = try .with {
            $0.caCert = Data(try next.certificatePEM.utf8)
            $0.caKey = Data(next.keyPEM.utf8)
            $0.crossSignedCaCert = Data(try ca.root.crossSign(next).pem.utf8)
        }
    }

    /// Ends a rotation: the new root becomes the cluster's, and the join tokens name it
    /// (their secrets stay).
    public static func finishRotation(_ cluster: inout SwarmCluster) {
        guard cluster.hasRootRotation, let cert = try? PEMFiles.certificate(String(decoding: cluster.rootRotation.caCert, as: UTF8.self), what: "the new root") else { return }
        let digest = RootCA.digest(of: cert)
        cluster.rootCaCert = cluster.rootRotation.caCert
        cluster.rootCaKey = cluster.rootRotation.caKey
        cluster.clearRootRotation()
        for keyPath in [\SwarmJoinTokens.worker, \SwarmJoinTokens.manager] {
            if let token = try? JoinToken(parsing: cluster.joinTokens[keyPath: keyPath]) {
                cluster.joinTokens[keyPath: keyPath] = "SWMTKN-1-\(digest)-\(token.secret)"
            }
        }
    }
}

/// Finishes root rotations, on the leader: once every READY node reports a certificate
/// from the new root (in its heartbeats), the new root becomes the cluster's, and the
/// nodes stop trusting the old one.
public struct RootRotationLoop: Sendable {
    let store: MemoryStore
    let dispatcher: Dispatcher
    let logger: Logger

    public init(store: MemoryStore, dispatcher: Dispatcher, logger: Logger = Logger(label: "swarm.ca")) {
        self.store = store
        self.dispatcher = dispatcher
        self.logger = logger
    }

    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            let view = store.view()
            guard let cluster = view.find(SwarmCluster.self).first, cluster.hasRootRotation,
                  let next = try? ClusterCA(cluster).next else { continue }
            let digest = RootCA.digest(of: next.root.certificate)
            let reported = dispatcher.rootDigests
            let waiting = view.find(SwarmNode.self).filter { $0.status.state == .ready && reported[$0.id] != digest }
            if !waiting.isEmpty { continue }
            do {
                try await store.update { tx in
                    guard var c = tx.get(SwarmCluster.self, id: cluster.id), c.hasRootRotation, c.rootRotation == cluster.rootRotation else { return }
                    ClusterCA.finishRotation(&c)
                    try tx.update(c)
                }
                logger.notice("root CA rotation finished: every node holds a certificate from the new root (\(digest.prefix(12))…)")
            } catch {
                logger.warning("cannot finish the root CA rotation yet: \(error)")
            }
        }
    }
}
