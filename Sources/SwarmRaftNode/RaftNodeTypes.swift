import SwarmCA
import SwarmAPI
import SwarmRaft
import Synchronization

/// Settings of a Raft node.
public struct RaftNodeConfig: Sendable {
    /// Directory for the log, snapshots and the member identity.
    public var stateDir: String
    /// Address other managers use to reach this one (host:port).
    public var advertiseAddr: String
    /// Length of one tick. SwarmKit uses 1 s; 100 ms fails over ten times faster.
    public var tickInterval: Duration = .milliseconds(100)
    public var electionTick = 10
    public var heartbeatTick = 1
    /// Take a snapshot and compact the log every this many applied entries.
    public var snapshotInterval: UInt64 = 10_000
    public var keepOldSnapshots = 1
    /// Entries kept before a snapshot so that slightly slow followers need no snapshot.
    public var logEntriesForSlowFollowers: UInt64 = 500
    public var proposalTimeout: Duration = .seconds(10)
    public var maxProposalBytes = 1_572_864
    public var segmentBytes = 64 << 20
    /// The cluster node this manager runs on (recorded with its membership).
    public var nodeID = ""
    /// How connections to the other managers are secured (swarmd: mutual TLS with the
    /// node's certificate).
    public var security: ClientSecurity = .plaintext
    /// Seals the log's entries and the snapshots on disk (swarmd: always, with the node's
    /// data key); nil writes them in the clear.
    public var dataKey: DataCipher?

    public init(stateDir: String, advertiseAddr: String) {
        self.stateDir = stateDir
        self.advertiseAddr = advertiseAddr
    }
}

/// Errors a proposal or membership request can end with.
public enum RaftNodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This manager is not the leader; the leader's ID and address, when known.
    case notLeader(leaderID: RaftID, leaderAddr: String?)
    /// Leadership changed before the proposal committed; it did not take effect.
    case lostLeadership
    /// The proposal did not complete in time; it may or may not take effect.
    case timeout
    case tooLarge(size: Int, limit: Int)
    case stopped
    /// A membership request was refused (for example, it would break quorum).
    case refused(String)
    case storage(String)

    public var description: String {
        switch self {
        case .notLeader(let id, let addr):
            if id == 0 { return "not the leader, and no leader is known" }
            return "not the leader; the leader is \(String(id, radix: 16)) at \(addr ?? "an unknown address")"
        case .lostLeadership: return "leadership was lost before the proposal committed"
        case .timeout: return "the proposal timed out"
        case .tooLarge(let size, let limit): return "proposal of \(size) bytes exceeds the \(limit)-byte limit"
        case .stopped: return "the raft node is stopped"
        case .refused(let why): return why
        case .storage(let why): return "storage failure: \(why)"
        }
    }
}

/// A point-in-time view of a node's Raft state.
public struct RaftNodeStatus: Sendable {
    public var id: RaftID
    public var term: UInt64
    public var leader: RaftID
    public var role: RaftRole
    public var commit: UInt64
    public var applied: UInt64
    /// The index of the last entry in this member's log, committed or not.
    public var lastIndex: UInt64 = 0
    public var voters: [RaftID]
    public var learners: [RaftID]
    public var members: [RaftID: String]
    /// The cluster node ID of each member, where known.
    public var memberNodeIDs: [RaftID: String] = [:]
    /// This member was removed from the cluster (it was demoted, or left).
    public var removed = false
    /// Members removed from the cluster, so that one still sending is told so.
    public var removedMembers: Set<RaftID> = []
}

/// Inputs to the node's loop. Everything that touches the core goes through here.
enum NodeInput: Sendable {
    case message(Message)
    case tick
    /// Resumed with the applied index once the entry is applied, or with an error.
    case propose([UInt8], CheckedContinuation<UInt64, any Error>)
    case confChange(ConfChange, CheckedContinuation<UInt64, any Error>)
    case transfer(RaftID)
    case snapshotReport(RaftID, Bool)
    /// A snapshot serialized off the loop, ready to be recorded and the log compacted.
    case snapshotTaken(Snapshot, compactTo: UInt64)
    case snapshotFailed(String)
    case unreachable(RaftID)
}

/// A multi-producer queue drained in batches by the loop, which is what batches many
/// concurrent proposals into one log append and one fsync.
final class Inbox: Sendable {
    struct State {
        var items: [NodeInput] = []
        var waiter: CheckedContinuation<[NodeInput], Never>?
        var closed = false
    }

    private let state = Mutex(State())

    func push(_ input: NodeInput) {
        let waiter = state.withLock { s -> CheckedContinuation<[NodeInput], Never>? in
            if s.closed { return nil }
            s.items.append(input)
            guard let w = s.waiter else { return nil }
            s.waiter = nil
            return w
        }
        if let waiter {
            let items = state.withLock { s -> [NodeInput] in
                defer { s.items.removeAll(keepingCapacity: true) }
                return s.items
            }
            waiter.resume(returning: items)
        }
    }

    /// Waits for at least one input and returns all queued inputs (empty once closed).
    func drain() async -> [NodeInput] {
        await withCheckedContinuation { (c: CheckedContinuation<[NodeInput], Never>) in
            let ready = state.withLock { s -> [NodeInput]? in
                if !s.items.isEmpty || s.closed {
                    defer { s.items.removeAll(keepingCapacity: true) }
                    return s.items
                }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    /// Closes the inbox and returns what was still queued.
    func close() -> [NodeInput] {
        let (waiter, items) = state.withLock { s -> (CheckedContinuation<[NodeInput], Never>?, [NodeInput]) in
            s.closed = true
            defer { s.items = []; s.waiter = nil }
            return (s.waiter, s.items)
        }
        waiter?.resume(returning: [])
        return items
    }
}
