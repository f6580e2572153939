import Foundation
import GRPCCore
import Logging
import SwarmAPI
import SwarmCA
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf

/// The certificate authority's API, on every manager (any manager can sign: the root key
/// is replicated in the store).
///
/// - `IssueNodeCertificate` admits a joining node: anonymous (over TLS, without a client
///   certificate of this cluster), with a join token and a CSR. A wrong token is refused
///   before anything else is looked at, with nothing said about the cluster. The token
///   decides the role; a CSR that names another is refused.
/// - `RenewNodeCertificate` renews a member's certificate over mutual TLS, for the node
///   ID of its certificate and the role the store gives it (so that a promotion or a
///   demotion takes effect).
public final class CAService: SwarmCertificateAuthority.SimpleServiceProtocol, Sendable {
    let node: any ManagerNode
    let logger: Logger

    public init(node: any ManagerNode, logger: Logger = Logger(label: "swarm.ca")) {
        self.node = node
        self.logger = logger
    }

    public func issueNodeCertificate(request: SwarmIssueNodeCertificateRequest, context: ServerContext) async throws -> SwarmNodeCertificateResponse {
        let view = node.store.view()
        guard let cluster = view.find(SwarmCluster.self).first, !cluster.rootCaKey.isEmpty else {
            throw RPCError(code: .unavailable, message: "the cluster's certificate authority is not ready yet; retry")
        }
        let role: NodeRole
        switch request.token {
        case cluster.joinTokens.worker where !request.token.isEmpty: role = .worker
        case cluster.joinTokens.manager where !request.token.isEmpty: role = .manager
        default: throw RPCError(code: .permissionDenied, message: "invalid join token")
        }
        let csr = try Self.checked(request.csr)
        if let asked = csr.role, asked != role {
            throw RPCError(code: .permissionDenied, message: "the CSR asks for role \(asked.rawValue), but the token admits a \(role.rawValue)")
        }
        if cluster.removedNodes.contains(csr.nodeID) {
            throw RPCError(code: .permissionDenied, message: "node \(csr.nodeID) was removed from the cluster; join with a new state directory")
        }
        if view.get(SwarmNode.self, id: csr.nodeID) != nil || node.status.memberNodeIDs.values.contains(csr.nodeID) {
            throw RPCError(code: .alreadyExists, message: "node ID \(csr.nodeID) belongs to a member of the cluster; a joining node asks for an ID of its own")
        }
        logger.info("issuing a \(role.rawValue) certificate to joining node \(csr.nodeID)")
        return try sign(csr, role: role, cluster: cluster)
    }

    public func renewNodeCertificate(request: SwarmRenewNodeCertificateRequest, context: ServerContext) async throws -> SwarmNodeCertificateResponse {
        guard case .success(let peer)? = PeerIdentity.of(context) else {
            throw RPCError(code: .unauthenticated, message: "renewal needs the node's current certificate")
        }
        let view = node.store.view()
        guard let cluster = view.find(SwarmCluster.self).first, !cluster.rootCaKey.isEmpty else {
            throw RPCError(code: .unavailable, message: "the cluster's certificate authority is not ready yet; retry")
        }
        let csr = try Self.checked(request.csr)
        guard csr.nodeID == peer.nodeID else {
            throw RPCError(code: .permissionDenied, message: "the CSR asks for node ID \(csr.nodeID), but the caller is node \(peer.nodeID)")
        }
        let role = Self.role(of: peer.nodeID, in: view) ?? peer.role
        guard csr.role == role else {
            throw RPCError(code: .permissionDenied, message: "the CSR asks for role \(csr.role?.rawValue ?? "none"), but node \(peer.nodeID) is a \(role.rawValue)")
        }
        return try sign(csr, role: role, cluster: cluster)
    }

    /// The role a node's certificate must carry: the role it is meant to have.
    static func role(of nodeID: String, in view: ReadTx) -> NodeRole? {
        guard let n = view.get(SwarmNode.self, id: nodeID) else { return nil }
        return n.spec.desiredRole == .manager ? .manager : .worker
    }

    static func checked(_ csr: Data) throws -> SigningRequest.Request {
        do { return try SigningRequest.check(Array(csr)) } catch {
            throw RPCError(code: .invalidArgument, message: error.description)
        }
    }

    func sign(_ csr: SigningRequest.Request, role: NodeRole, cluster: SwarmCluster) throws -> SwarmNodeCertificateResponse {
        let ca: ClusterCA
        do { ca = try ClusterCA(cluster) } catch {
            logger.error("the cluster's root CA cannot sign: \(error)")
            throw RPCError(code: .internalError, message: "the cluster's root CA cannot sign")
        }
        let identity = NodeIdentity(nodeID: csr.nodeID, role: role, clusterID: cluster.id)
        // During a root rotation the new root signs, and the cross-signed root goes with
        // the certificate (for the nodes that trust only the old root yet).
        let certificate = try ca.signer.issue(for: identity, publicKey: csr.publicKey, validity: Self.validity(cluster))
        let chain = try ([certificate] + ca.intermediates).map { try $0.pem }.joined(separator: "\n")
        return .with {
            $0.nodeID = identity.nodeID
            $0.role = role.rawValue
            $0.clusterID = cluster.id
            $0.certificate = Data(chain.utf8)
            $0.rootCa = Data(ca.trustedRootsPEM.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "\n").utf8)
        }
    }

    /// The node certificate validity the cluster asks for (90 days unless set).
    static func validity(_ cluster: SwarmCluster) -> TimeInterval {
        let ns = cluster.spec.caConfig.nodeCertExpiry
        return ns > 0 ? TimeInterval(ns) / 1e9 : RootCA.defaultNodeValidity
    }
}
