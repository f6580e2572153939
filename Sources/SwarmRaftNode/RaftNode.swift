import Foundation
import Logging
import SwarmAPI
import SwarmRaft
import SwarmStore
import SwiftProtobuf
import Synchronization

/// A manager's Raft member: the pure ``RaftCore`` driven by a single loop that persists
/// to ``RaftStorage``, talks to peers through ``RaftPeers`` and applies committed store
/// transactions to ``store`` on every manager.
///
/// The loop drains all queued inputs before handling one ``Ready``, so concurrent
/// proposals share one log append and one fsync (group commit). Messages leave only after
/// the writes they depend on are fsynced.
public final class RaftNode: Sendable {
    public let config: RaftNodeConfig
    public let id: RaftID
    /// The replicated store; its writes are proposed through this node.
    public let store: MemoryStore
    let inbox = Inbox()
    let peers: RaftPeers
    let logger: Logger
    private let shared: Mutex<Shared>
    private let loopState: Mutex<LoopState?>

    struct Shared {
        var status: RaftNodeStatus
        var leadershipWatchers: [UUID: AsyncStream<Bool>.Continuation] = [:]
        var removalWatchers: [UUID: AsyncStream<Void>.Continuation] = [:]
        var changeWatchers: [UUID: AsyncStream<Void>.Continuation] = [:]
        var stopped = false
        /// The last index of the log when this member became leader (its term's first
        /// entry); nil while it does not lead.
        var leaderReadyIndex: UInt64?
        /// What ``leadershipChanges()`` last said.
        var signalledLeadership = false
    }

    /// Opens the state directory. With no state there, `bootstrap` starts a new one-member
    /// cluster; `joined` (from a ``joinCluster(via:)`` answer) starts an empty member that
    /// learns the log from the leader. With state there, the member restarts from disk.
    /// `forceNewCluster` keeps the data but makes this member the only voter, to recover
    /// from a lost quorum.
    public init(config: RaftNodeConfig, joined: SwarmJoinResponse? = nil, forceNewCluster: Bool = false,
                logger: Logger = Logger(label: "swarm.raft")) throws {
        self.config = config
        self.logger = logger
        let identity = config.stateDir + "/raft-id"
        var id: RaftID
        var bootstrap: [RaftID] = []
        var members: [RaftID: String] = [:]
        var nodeIDs: [RaftID: String] = [:]
        if let text = try? String(contentsOfFile: identity, encoding: .utf8),
           let stored = RaftID(text.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16) {
            id = stored
        } else if let joined {
            id = joined.raftID
            for m in joined.members {
                members[m.raftID] = m.addr
                if !m.nodeID.isEmpty { nodeIDs[m.raftID] = m.nodeID }
            }
        } else {
            id = RaftID.random(in: 1...RaftID.max)
            bootstrap = [id]
        }
        self.id = id
        members[id] = config.advertiseAddr
        if !config.nodeID.isEmpty { nodeIDs[id] = config.nodeID }
        try FileManager.default.createDirectory(atPath: config.stateDir, withIntermediateDirectories: true)

        let proposer = LoopProposer()
        store = MemoryStore(proposer: proposer)
        var (storage, recovered, recovery) = try RaftStorage.open(
            directory: config.stateDir + "/raft", segmentBytes: config.segmentBytes,
            keepOldSnapshots: config.keepOldSnapshots, cipher: config.dataKey)
        if let torn = recovery.truncatedTail {
            logger.warning("recovered a torn write: cut \(torn.droppedBytes) bytes at \(torn.path):\(torn.offset)")
        }
        if forceNewCluster && !recovered.isEmpty {
            recovered = try Self.forceNewCluster(recovered, id: id, addr: config.advertiseAddr, storage: storage)
            logger.notice("forced a new cluster: \(String(id, radix: 16)) is now the only voter")
        }
        if !recovered.snapshot.isEmpty {
            let data = try SwarmRaftSnapshotData(serializedBytes: recovered.snapshot.data)
            for m in data.members {
                members[m.raftID] = m.addr
                if !m.nodeID.isEmpty { nodeIDs[m.raftID] = m.nodeID }
            }
            try store.restore([UInt8](data.store), version: recovered.snapshot.metadata.index)
        }
        try "\(String(id, radix: 16))\n".write(toFile: identity, atomically: true, encoding: .utf8)

        var raftConfig = RaftConfig(id: id)
        raftConfig.electionTick = config.electionTick
        raftConfig.heartbeatTick = config.heartbeatTick
        raftConfig.maxProposalBytes = config.maxProposalBytes
        raftConfig.snapshotTimeoutTicks = max(50, config.electionTick * 30)
        let selfMember = try SwarmRaftMember.with {
            $0.raftID = id
            $0.addr = config.advertiseAddr
            $0.nodeID = config.nodeID
        }.serializedBytes() as [UInt8]
        let core = RaftCore(config: raftConfig, recovered: recovered, bootstrap: bootstrap,
                            bootstrapContext: { _ in selfMember })
        peers = RaftPeers(selfID: id, logger: logger)
        for (peer, addr) in members where peer != id { peers.set(peer, addr: addr) }
        shared = Mutex(Shared(status: RaftNodeStatus(
            id: id, term: core.term, leader: 0, role: .follower, commit: core.commitIndex,
            applied: core.appliedIndex, voters: core.confState.voters, learners: core.confState.learners,
            members: members, memberNodeIDs: nodeIDs)))
        loopState = Mutex(LoopState(core: core, storage: storage, members: members, nodeIDs: nodeIDs,
                                    lastSnapshot: recovered.snapshot.metadata.index))
        proposer.node.withLock { $0 = Weak(self) }
    }

    // MARK: Life cycle

    /// Runs the member: its loop, its ticker and a sender per peer, as child tasks, until
    /// ``stop()``; returns once they have all ended. Runs once: a second call returns at
    /// once.
    public func run() async {
        guard let state = loopState.withLock({ s -> LoopState? in defer { s = nil }; return s }) else { return }
        let inbox = self.inbox
        let interval = config.tickInterval
        await withDiscardingTaskGroup { group in
            group.addTask { await self.peers.run(node: self) }
            group.addTask { await self.runLoop(state) }
            group.addTask {
                while !self.isStopped {
                    try? await Task.sleep(for: interval)
                    inbox.push(.tick)
                }
            }
        }
    }

    /// Starts ``run()`` in a task of its own and returns at once, for callers with no task
    /// to run it in (tests, `swarm-raftd`); `swarmd` runs it as one of its services.
    public func start() {
        Task { await run() }
    }

    /// Stops the node: pending proposals fail with ``RaftNodeError/stopped``.
    public func stop() {
        let watchers = shared.withLock { s in
            s.stopped = true
            defer { (s.leadershipWatchers, s.removalWatchers, s.changeWatchers) = ([:], [:], [:]) }
            return (Array(s.leadershipWatchers.values), Array(s.removalWatchers.values), Array(s.changeWatchers.values))
        }
        // Finished outside the lock: a stream's termination handler takes the lock too.
        for c in watchers.0 { c.finish() }
        for c in watchers.1 { c.finish() }
        for c in watchers.2 { c.finish() }
        for input in inbox.close() { Self.fail(input, .stopped) }
        peers.stop()
    }

    var isStopped: Bool { shared.withLock { $0.stopped } }

    public var status: RaftNodeStatus { shared.withLock { $0.status } }
    /// Whether this member leads the group; false once the node is stopped.
    public var isLeader: Bool { shared.withLock { !$0.stopped && $0.status.role == .leader } }

    /// Yields true when this member leads and has applied its whole log as it was when it
    /// was elected, and false when it stops leading, so that leader-only components start
    /// on a store that holds everything the cluster committed (a new leader may hold
    /// entries that an old leader committed without it learning so; they are applied once
    /// its own term's first entry commits). ``isLeader`` says true from the election on.
    public func leadershipChanges() -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream.makeStream(of: Bool.self)
        let key = UUID()
        shared.withLock { s in
            s.leadershipWatchers[key] = continuation
            continuation.yield(s.signalledLeadership)
        }
        continuation.onTermination = { [weak self] _ in _ = self?.shared.withLock { $0.leadershipWatchers.removeValue(forKey: key) } }
        return stream
    }

    /// Yields once when this member learns that it was removed from the group (at once if
    /// it already knows), then finishes; finishes without yielding when the node stops.
    public func removal() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let key = UUID()
        let removed = shared.withLock { s -> Bool in
            if !s.status.removed && !s.stopped { s.removalWatchers[key] = continuation }
            return s.status.removed
        }
        if removed { continuation.yield() }
        if removed || isStopped { continuation.finish() }
        continuation.onTermination = { [weak self] _ in _ = self?.shared.withLock { $0.removalWatchers.removeValue(forKey: key) } }
        return stream
    }

    /// Yields when the member's view of the group changes (its role, the leader, the
    /// members, their node IDs and addresses, or whether a peer is reachable), coalescing
    /// changes that come faster than they are read; finishes when the node stops.
    public func groupChanges() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let key = UUID()
        let stopped = shared.withLock { s -> Bool in
            if !s.stopped { s.changeWatchers[key] = continuation }
            return s.stopped
        }
        if stopped { continuation.finish() }
        continuation.onTermination = { [weak self] _ in _ = self?.shared.withLock { $0.changeWatchers.removeValue(forKey: key) } }
        return stream
    }

    /// A peer became reachable or unreachable.
    func peerReachabilityChanged() {
        shared.withLock { s in for c in s.changeWatchers.values { c.yield() } }
    }

    // MARK: Proposals

    /// Proposes a store transaction and returns once it is applied to the local store.
    public func propose(_ request: SwarmInternalRaftRequest) async throws -> UInt64 {
        let data: [UInt8] = try request.serializedBytes()
        if data.count > config.maxProposalBytes { throw RaftNodeError.tooLarge(size: data.count, limit: config.maxProposalBytes) }
        if isStopped { throw RaftNodeError.stopped }
        return try await withCheckedThrowingContinuation { inbox.push(.propose(data, $0)) }
    }

    /// Proposes a membership change and returns once it is applied.
    public func proposeConfChange(_ change: ConfChange) async throws -> UInt64 {
        if isStopped { throw RaftNodeError.stopped }
        return try await withCheckedThrowingContinuation { inbox.push(.confChange(change, $0)) }
    }

    /// Asks the leader to hand leadership to `target`.
    public func transferLeadership(to target: RaftID) { inbox.push(.transfer(target)) }

    func deliver(_ message: SwarmRaft.Message) { inbox.push(.message(message)) }

    func reportSnapshot(_ peer: RaftID, success: Bool) { inbox.push(.snapshotReport(peer, success)) }

    func reportUnreachable(_ peer: RaftID) { inbox.push(.unreachable(peer)) }

    /// A peer said this member was removed from the cluster.
    func markRemoved() { publish { $0.removed = true } }

    func knows(_ peer: RaftID) -> Bool { shared.withLock { $0.status.members[peer] != nil } }

    func notLeaderError() -> RaftNodeError {
        let s = status
        return .notLeader(leaderID: s.leader, leaderAddr: s.members[s.leader])
    }

    static func fail(_ input: NodeInput, _ error: RaftNodeError) {
        switch input {
        case .propose(_, let c), .confChange(_, let c): c.resume(throwing: error)
        default: break
        }
    }

    func publish(_ update: (inout RaftNodeStatus) -> Void) {
        let removal = shared.withLock { s -> [AsyncStream<Void>.Continuation] in
            let (wasLeader, wasRemoved) = (s.signalledLeadership, s.status.removed)
            let before = GroupView(s.status)
            update(&s.status)
            if s.status.role != .leader {
                s.leaderReadyIndex = nil
            } else if s.leaderReadyIndex == nil {
                s.leaderReadyIndex = s.status.lastIndex
            }
            let isLeader = s.status.role == .leader && s.status.applied >= (s.leaderReadyIndex ?? .max)
            s.signalledLeadership = isLeader
            if wasLeader != isLeader { for c in s.leadershipWatchers.values { c.yield(isLeader) } }
            if !s.changeWatchers.isEmpty && GroupView(s.status) != before { for c in s.changeWatchers.values { c.yield() } }
            guard !wasRemoved && s.status.removed else { return [] }
            defer { s.removalWatchers = [:] }
            return Array(s.removalWatchers.values)
        }
        // Finished outside the lock: a stream's termination handler takes the lock too.
        for c in removal {
            c.yield()
            c.finish()
        }
    }
}

/// Holds a weak reference (the store's proposer must not keep the node alive).
struct Weak<T: AnyObject>: @unchecked Sendable {
    weak var value: T?
    init(_ value: T) { self.value = value }
}

/// The store's proposer: forwards transactions to the node's loop.
final class LoopProposer: StoreProposer {
    let node = Mutex<Weak<RaftNode>?>(nil)

    func propose(_ request: SwarmInternalRaftRequest) async throws -> UInt64 {
        guard let n = node.withLock({ $0?.value }) else { throw RaftNodeError.stopped }
        return try await n.propose(request)
    }
}

/// The parts of a member's status that ``RaftNode/groupChanges()`` reports changes of.
struct GroupView: Equatable {
    var role: RaftRole
    var leader: RaftID
    var voters: [RaftID]
    var learners: [RaftID]
    var members: [RaftID: String]
    var memberNodeIDs: [RaftID: String]
    var removed: Bool
    var removedMembers: Set<RaftID>

    init(_ s: RaftNodeStatus) {
        (role, leader, voters, learners, members) = (s.role, s.leader, s.voters, s.learners, s.members)
        (memberNodeIDs, removed, removedMembers) = (s.memberNodeIDs, s.removed, s.removedMembers)
    }
}
