import Foundation
import GRPCCore
import SwarmAPI
import SwarmCA
import SwarmRPC
import SwarmStore

/// Authorization of the remote API, in one place: every call's access comes from the
/// certificate the caller proved in the TLS handshake, checked against the store.
///
/// - The CA's join (`IssueNodeCertificate`): anyone (a joining node has no certificate
///   yet; its token is checked by the CA).
/// - The dispatcher and the CA's renewal: any node of this cluster.
/// - Everything else (the Raft API, the control API): managers only.
///
/// A certificate of a removed node is refused everywhere, and a manager certificate of a
/// node that has been demoted (its role and desired role are both worker) no longer
/// carries a manager's rights. Handlers that act for a node (the dispatcher) also check
/// that the node ID in the request is the certificate's.
public struct AuthorizationInterceptor: ServerInterceptor {
    /// Who may make a call.
    public enum Access: Sendable, Equatable {
        case anyone
        case anyNode
        case managers
    }

    let store: MemoryStore
    let clusterID: @Sendable () -> String

    /// - Parameter clusterID: the cluster whose certificates are accepted (the node's own).
    public init(store: MemoryStore, clusterID: @escaping @Sendable () -> String) {
        self.store = store
        self.clusterID = clusterID
    }

    /// The access a method needs.
    public static func access(_ method: MethodDescriptor) -> Access {
        if method == SwarmCertificateAuthority.Method.IssueNodeCertificate.descriptor { return .anyone }
        if method.service == SwarmDispatcher.descriptor || method == SwarmCertificateAuthority.Method.RenewNodeCertificate.descriptor {
            return .anyNode
        }
        return .managers
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        try authorize(context)
        return try await next(request, context)
    }

    /// Refuses the call unless the caller may make it.
    public func authorize(_ context: ServerContext) throws {
        let access = Self.access(context.descriptor)
        if access == .anyone { return }
        let method = context.descriptor.method
        guard let proved = PeerIdentity.of(context) else {
            throw RPCError(code: .unauthenticated, message: "\(method) needs a certificate from this cluster's CA")
        }
        let peer: NodeIdentity
        switch proved {
        case .success(let p): peer = p
        case .failure(let e): throw RPCError(code: .unauthenticated, message: "\(method): \(e)")
        }
        guard peer.clusterID == clusterID() else {
            throw RPCError(code: .permissionDenied, message: "\(method): the certificate is for another cluster")
        }
        let view = store.view()
        if view.find(SwarmCluster.self).first?.removedNodes.contains(peer.nodeID) == true {
            throw RPCError(code: .permissionDenied, message: "node \(peer.nodeID) was removed from the cluster")
        }
        guard access == .managers else { return }
        guard peer.role == .manager else {
            throw RPCError(code: .permissionDenied, message: "\(method) needs a manager certificate; node \(peer.nodeID) presents a worker's")
        }
        if let n = view.get(SwarmNode.self, id: peer.nodeID), n.role == .worker, n.spec.desiredRole == .worker {
            throw RPCError(code: .permissionDenied, message: "node \(peer.nodeID) was demoted: its manager certificate no longer carries a manager's rights")
        }
    }
}
