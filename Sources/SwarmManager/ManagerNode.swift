import SwarmRaft
import SwarmRaftNode
import SwarmStore

/// What the manager's components use of their Raft member: the replicated store (whose
/// writes are proposed through Raft) and the member's view of the group. The control API,
/// the dispatcher, the leader check and the leader's loops take this, not the concrete
/// ``RaftNode``.
public protocol ManagerNode: AnyObject, Sendable {
    /// The replicated store: `update` and `batch` propose through Raft.
    var store: MemoryStore { get }
    /// The member's view of the group: its role, the leader, the members and addresses.
    var status: RaftNodeStatus { get }
    /// Whether this member leads the group.
    var isLeader: Bool { get }
    /// Yields whether this member leads, now and at each change.
    func leadershipChanges() -> AsyncStream<Bool>
}

/// What the role manager uses besides: reachability, and the changes of membership it
/// carries out on the leader.
public protocol ManagerMembership: ManagerNode {
    /// Yields when the member's view of the group changes: role, leader, members,
    /// reachability.
    func groupChanges() -> AsyncStream<Void>
    func isReachable(_ member: RaftID) -> Bool
    func transferLeadership(to member: RaftID)
    func removeMember(_ member: RaftID) async throws
}

extension RaftNode: ManagerMembership {}
