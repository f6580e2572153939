import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmCA
import SwarmRPC
import SwarmRaft
import SwarmStore
import SwiftProtobuf

/// The manager-to-manager gRPC service: Raft message streams, chunked snapshots, and
/// membership. Join, leave and propose sent to a follower are forwarded to the leader.
public struct RaftService: SwarmRaftTransport.SimpleServiceProtocol {
    let node: RaftNode

    public init(node: RaftNode) { self.node = node }

    /// The error text a removed member gets when it still sends messages.
    static func removedMessage(_ member: RaftID) -> String {
        "member \(String(member, radix: 16)) was removed from the cluster"
    }

    public func streamMessages(request: RPCAsyncSequence<SwarmRaftMessageBatch, any Error>,
                               response: RPCWriter<SwarmRaftStreamAck>, context: ServerContext) async throws {
        var received: UInt64 = 0
        for try await batch in request {
            if node.status.removedMembers.contains(batch.from) {
                throw RPCError(code: .permissionDenied, message: RaftService.removedMessage(batch.from))
            }
            guard node.knows(batch.from) else {
                node.logger.warning("dropped \(batch.messages.count) raft messages from unknown member \(String(batch.from, radix: 16))")
                continue
            }
            for wire in batch.messages {
                guard wire.from == batch.from, wire.to == node.id, let m = wire.toCore() else {
                    node.logger.warning("dropped a malformed raft message from \(String(batch.from, radix: 16))")
                    continue
                }
                node.deliver(m)
                received += 1
            }
        }
        try await response.write(.with { $0.received = received })
    }

    public func sendSnapshot(request: RPCAsyncSequence<SwarmSnapshotChunk, any Error>,
                             context: ServerContext) async throws -> SwarmSnapshotAck {
        var header: SwarmRaftMessage?
        var data: [UInt8] = []
        var done = false
        for try await chunk in request {
            if header == nil {
                guard chunk.hasMessage, chunk.offset == 0 else { return .with { $0.error = "first chunk has no header" } }
                header = chunk.message
            }
            guard chunk.offset == UInt64(data.count) else {
                return .with { $0.error = "chunk at \(chunk.offset), expected \(data.count)" }
            }
            data.append(contentsOf: chunk.data)
            if chunk.last {
                guard chunk.totalSize == UInt64(data.count), chunk.crc32C == CRC32C.checksum(data) else {
                    return .with { $0.error = "snapshot size or checksum mismatch" }
                }
                done = true
            }
        }
        guard done, let header, node.knows(header.from), let m = header.toCore(snapshotData: data) else {
            return .with { $0.error = "incomplete or unauthorised snapshot" }
        }
        node.deliver(m)
        return .with { $0.applied = true }
    }

    public func join(request: SwarmJoinRequest, context: ServerContext) async throws -> SwarmJoinResponse {
        guard node.isLeader else {
            return try await forward { try await $0.join(request) }
        }
        // Over mutual TLS the caller's manager certificate admits it (the authorization
        // interceptor checked the role), for its own node ID only. Without TLS (the bare
        // Raft daemon), once the cluster object exists only its manager token does.
        if let identity = PeerIdentity.of(context) {
            guard case .success(let peer) = identity, peer.nodeID == request.nodeID else {
                throw RPCError(code: .permissionDenied, message: "a manager joins under the node ID of its own certificate")
            }
        } else if let cluster = node.store.view().find(SwarmCluster.self).first {
            if request.token == cluster.joinTokens.worker && !request.token.isEmpty {
                throw RPCError(code: .failedPrecondition, message: "this is a worker join token; join as a worker")
            }
            guard !request.token.isEmpty, request.token == cluster.joinTokens.manager else {
                throw RPCError(code: .permissionDenied, message: "invalid join token")
            }
        }
        var newID = RaftID.random(in: 1...RaftID.max)
        while node.status.members[newID] != nil { newID = RaftID.random(in: 1...RaftID.max) }
        var member = SwarmRaftMember()
        member.raftID = newID
        member.addr = request.addr
        member.nodeID = request.nodeID
        _ = try await node.proposeConfChange(ConfChange(kind: .addLearner, id: newID, context: try member.serializedBytes()))
        let status = node.status
        let members = status.members
        return .with {
            $0.raftID = newID
            $0.members = members.keys.sorted().map { k in
                SwarmRaftMember.with { $0.raftID = k; $0.addr = members[k]!; $0.nodeID = status.memberNodeIDs[k] ?? "" }
            }
        }
    }

    public func leave(request: SwarmLeaveRequest, context: ServerContext) async throws -> SwarmLeaveResponse {
        guard node.isLeader else {
            return try await forward { try await $0.leave(request) }
        }
        try node.checkRemovalKeepsQuorum(request.raftID)
        _ = try await node.proposeConfChange(ConfChange(kind: .remove, id: request.raftID))
        return SwarmLeaveResponse()
    }

    public func propose(request: SwarmProposeRequest, context: ServerContext) async throws -> SwarmProposeResponse {
        guard node.isLeader else {
            return try await forward { try await $0.propose(request) }
        }
        let tx: SwarmInternalRaftRequest
        do {
            tx = try SwarmInternalRaftRequest(serializedBytes: request.data)
        } catch {
            throw RPCError(code: .invalidArgument, message: "proposal is not a store transaction: \(error)")
        }
        do {
            let index = try await node.propose(tx)
            return .with { $0.index = index }
        } catch let e as RaftNodeError {
            throw e
        } catch {
            throw RPCError(code: .aborted, message: "\(error)", cause: error)
        }
    }

    public func status(request: SwarmStatusRequest, context: ServerContext) async throws -> SwarmStatusResponse {
        let s = node.status
        var r = SwarmStatusResponse()
        r.raftID = s.id
        r.term = s.term
        r.leader = s.leader
        r.commit = s.commit
        r.applied = s.applied
        r.role = "\(s.role)"
        r.voters = s.voters
        r.learners = s.learners
        r.members = s.members.keys.sorted().map { k in SwarmRaftMember.with { $0.raftID = k; $0.addr = s.members[k]! } }
        if request.includeStore { r.store = Data(try node.store.serializedSnapshot()) }
        return r
    }

    private func forward<R: Sendable>(_ call: (SwarmRaftTransport.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        let s = node.status
        guard s.leader != 0, s.leader != node.id, let addr = s.members[s.leader] else {
            throw RPCError(code: .unavailable, message: RaftNodeError.notLeader(leaderID: 0, leaderAddr: nil).description)
        }
        return try await withRaftClient(addr, node.config.security, call)
    }
}

/// A Raft node's errors map themselves to RPC errors (grpc-swift converts them wherever
/// a handler throws one) and keep themselves as the cause.
extension RaftNodeError: RPCErrorConvertible {
    public var rpcErrorMessage: String { description }
    public var rpcErrorCause: (any Error)? { self }

    /// A manager that is not the leader says where the leader is, when it knows.
    public var rpcErrorMetadata: Metadata {
        var metadata = Metadata()
        if case .notLeader(_, let addr?) = self { metadata.addString(addr, forKey: SwarmMetadataKey.leaderAddress) }
        return metadata
    }

    public var rpcErrorCode: RPCError.Code {
        switch self {
        case .notLeader: return .unavailable
        case .lostLeadership, .timeout: return .unavailable
        case .tooLarge: return .resourceExhausted
        case .stopped: return .unavailable
        case .refused: return .failedPrecondition
        case .storage: return .internalError
        }
    }
}

extension RaftNode {
    /// Removes a member (on the leader), unless that would cost the cluster its quorum.
    public func removeMember(_ member: RaftID) async throws {
        try checkRemovalKeepsQuorum(member)
        _ = try await proposeConfChange(ConfChange(kind: .remove, id: member))
    }

    /// Whether the leader has heard from `member` recently.
    public func isReachable(_ member: RaftID) -> Bool { member == id || peers.isReachable(member) }

    /// Refuses to remove a voter if the voters that remain, among those the leader has
    /// heard from, could not form a quorum.
    func checkRemovalKeepsQuorum(_ member: RaftID) throws {
        let s = status
        guard s.voters.contains(member) || s.learners.contains(member) else {
            throw RaftNodeError.refused("\(String(member, radix: 16)) is not a member")
        }
        guard s.voters.contains(member) else { return }
        let remaining = s.voters.filter { $0 != member }
        if remaining.isEmpty { throw RaftNodeError.refused("cannot remove the last manager") }
        let reachable = remaining.filter { $0 == id || peers.isReachable($0) }.count
        if reachable < remaining.count / 2 + 1 {
            throw RaftNodeError.refused("removing \(String(member, radix: 16)) would leave \(reachable) reachable of \(remaining.count) managers, short of a quorum")
        }
    }

    /// Asks the member at `addr` to add this manager to its cluster; pass the answer to
    /// ``RaftNode/init(config:joined:forceNewCluster:logger:)``.
    public static func joinCluster(via addr: String, advertise: String, nodeID: String = "", token: String = "",
                                   security: ClientSecurity = .plaintext) async throws -> SwarmJoinResponse {
        try await withRaftClient(addr, security) { raft in
            try await raft.join(.with {
                $0.addr = advertise
                $0.nodeID = nodeID
                $0.token = token
            })
        }
    }
}
