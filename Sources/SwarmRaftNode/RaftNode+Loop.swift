import Foundation
import Logging
import SwarmAPI
import SwarmRaft
import SwarmStore
import SwiftProtobuf

/// State owned by the loop task alone.
struct LoopState: @unchecked Sendable {
    var core: RaftCore
    let storage: RaftStorage
    var members: [RaftID: String]
    var nodeIDs: [RaftID: String] = [:]
    var removed = false
    var removedMembers: Set<RaftID> = []
    var lastSnapshot: UInt64
    var snapshotInProgress = false
    /// Proposals applied in the current Ready, answered once its status is published.
    var completed: [(CheckedContinuation<UInt64, any Error>, Result<UInt64, any Error>)] = []
    /// Index -> (term, deadline, continuation) of proposals waiting to be applied.
    var waiters: [UInt64: (term: UInt64, deadline: ContinuousClock.Instant, reply: CheckedContinuation<UInt64, any Error>)] = [:]
    /// Membership changes asked for while another was pending, in arrival order: Raft takes
    /// one at a time, so they wait their turn (until their deadline) instead of failing.
    var queuedConfChanges: [(change: ConfChange, deadline: ContinuousClock.Instant, reply: CheckedContinuation<UInt64, any Error>)] = []
}

extension RaftNode {
    func runLoop(_ initial: LoopState) async {
        var s = initial
        do {
            // Apply what is already committed before serving anything.
            while s.core.hasReady { try handleReady(&s) }
        } catch {
            logger.critical("raft storage failed at start-up: \(error)")
            stop()
        }
        while !isStopped {
            let inputs = await inbox.drain()
            if inputs.isEmpty && isStopped { break }
            // Consecutive proposals become one batch: one append, one broadcast.
            var batch: [([UInt8], CheckedContinuation<UInt64, any Error>)] = []
            for input in inputs {
                if case .propose(let data, let reply) = input {
                    batch.append((data, reply))
                    continue
                }
                proposeBatch(&batch, &s)
                handle(input, &s)
            }
            proposeBatch(&batch, &s)
            do {
                while s.core.hasReady { try handleReady(&s) }
            } catch {
                logger.critical("raft storage failed, stopping: \(error)")
                for (_, w) in s.waiters { w.reply.resume(throwing: RaftNodeError.storage("\(error)")) }
                for (reply, _) in s.completed { reply.resume(throwing: RaftNodeError.storage("\(error)")) }
                s.waiters = [:]
                s.completed = []
                stop()
                break
            }
            if isStopped { break }
        }
        for (_, w) in s.waiters { w.reply.resume(throwing: RaftNodeError.stopped) }
        for q in s.queuedConfChanges { q.reply.resume(throwing: RaftNodeError.stopped) }
    }

    private func handle(_ input: NodeInput, _ s: inout LoopState) {
        switch input {
        case .message(let m):
            s.core.step(m)
        case .tick:
            s.core.tick()
            expireWaiters(&s)
            proposeQueuedConfChanges(&s)
            promoteCaughtUpLearners(&s)
        case .propose(let data, let reply):
            var one = [(data, reply)]
            proposeBatch(&one, &s)
        case .confChange(let change, let reply):
            let deadline = ContinuousClock.now + config.proposalTimeout
            if !s.queuedConfChanges.isEmpty || !proposeConfChange(change, deadline, reply, &s) {
                s.queuedConfChanges.append((change, deadline, reply))
            }
        case .transfer(let target):
            s.core.transferLeadership(to: target)
        case .snapshotReport(let peer, let ok):
            s.core.reportSnapshot(to: peer, success: ok)
        case .unreachable(let peer):
            s.core.reportUnreachable(peer)
        case .snapshotTaken(let snap, let compactTo):
            s.snapshotInProgress = false
            do {
                try s.core.compact(snapshot: snap, compactTo: compactTo)
                try s.storage.saveSnapshot(snap, compactTo: compactTo)
                s.lastSnapshot = snap.metadata.index
                logger.info("snapshot at index \(snap.metadata.index), log compacted to \(compactTo)")
            } catch {
                logger.error("could not record the snapshot at \(snap.metadata.index): \(error)")
            }
        case .snapshotFailed(let why):
            s.snapshotInProgress = false
            logger.error("snapshot failed: \(why)")
        }
    }

    private func proposeBatch(_ batch: inout [([UInt8], CheckedContinuation<UInt64, any Error>)], _ s: inout LoopState) {
        guard !batch.isEmpty else { return }
        defer { batch.removeAll(keepingCapacity: true) }
        do {
            let (first, term) = try s.core.propose(batch: batch.map(\.0))
            let deadline = ContinuousClock.now + config.proposalTimeout
            for (k, item) in batch.enumerated() {
                s.waiters[first + UInt64(k)] = (term, deadline, item.1)
            }
        } catch {
            let e = mapped(error, s)
            for item in batch { item.1.resume(throwing: e) }
        }
    }

    private func mapped(_ error: any Error, _ s: LoopState) -> any Error {
        guard let e = error as? RaftError else { return error }
        switch e {
        case .notLeader(let leader): return RaftNodeError.notLeader(leaderID: leader, leaderAddr: s.members[leader])
        case .proposalTooLarge(let size, let limit): return RaftNodeError.tooLarge(size: size, limit: limit)
        case .transferInProgress: return RaftNodeError.notLeader(leaderID: s.core.transferee, leaderAddr: s.members[s.core.transferee])
        default: return RaftNodeError.refused(e.description)
        }
    }

    /// Proposes a membership change; false when another is still pending (the caller
    /// queues it). Any other outcome answers `reply`, now or once the change is applied.
    private func proposeConfChange(_ change: ConfChange, _ deadline: ContinuousClock.Instant,
                                   _ reply: CheckedContinuation<UInt64, any Error>, _ s: inout LoopState) -> Bool {
        do {
            let (index, term) = try s.core.proposeConfChange(change)
            s.waiters[index] = (term, deadline, reply)
        } catch .confChangeInProgress {
            return false
        } catch .invalidConfChange(let why) {
            reply.resume(throwing: RaftNodeError.refused(why))
        } catch {
            reply.resume(throwing: mapped(error, s))
        }
        return true
    }

    /// Proposes the queued membership changes in order, while none is pending.
    private func proposeQueuedConfChanges(_ s: inout LoopState) {
        while let next = s.queuedConfChanges.first, proposeConfChange(next.change, next.deadline, next.reply, &s) {
            s.queuedConfChanges.removeFirst()
        }
    }

    private func expireWaiters(_ s: inout LoopState) {
        let now = ContinuousClock.now
        for (index, w) in s.waiters where w.deadline < now {
            s.waiters[index] = nil
            w.reply.resume(throwing: RaftNodeError.timeout)
        }
        for q in s.queuedConfChanges where q.deadline < now { q.reply.resume(throwing: RaftNodeError.timeout) }
        s.queuedConfChanges.removeAll { $0.deadline < now }
    }

    /// The leader promotes a learner to voter once its log has caught up.
    private func promoteCaughtUpLearners(_ s: inout LoopState) {
        guard s.core.role == .leader, let learner = s.core.confState.learners.first,
              let match = s.core.matchIndexes[learner], match >= s.core.commitIndex else { return }
        if (try? s.core.proposeConfChange(ConfChange(kind: .addVoter, id: learner))) != nil {
            logger.info("promoting caught-up learner \(String(learner, radix: 16)) to voter")
        }
    }

    private func handleReady(_ s: inout LoopState) throws {
        let rd = s.core.ready()
        for note in rd.notices { logger.debug("raft: \(note)") }
        try s.storage.persist(rd)
        peers.send(rd.messages)
        if let snap = rd.snapshot {
            let data = try SwarmRaftSnapshotData(serializedBytes: snap.data)
            try store.restore([UInt8](data.store), version: snap.metadata.index)
            s.members = [id: config.advertiseAddr]
            for m in data.members {
                s.members[m.raftID] = m.addr
                if !m.nodeID.isEmpty { s.nodeIDs[m.raftID] = m.nodeID }
            }
            syncPeers(s)
            s.lastSnapshot = snap.metadata.index
        }
        for entry in rd.committedEntries { apply(entry, &s) }
        s.core.advance(rd)
        let core = s.core
        let members = s.members
        let nodeIDs = s.nodeIDs
        let removed = s.removed
        let removedMembers = s.removedMembers
        publish { st in
            st.memberNodeIDs = nodeIDs
            st.removed = st.removed || removed
            st.removedMembers = removedMembers
            st.term = core.term
            st.leader = core.leader
            st.role = core.role
            st.commit = core.commitIndex
            st.applied = core.appliedIndex
            st.lastIndex = core.lastIndex
            st.voters = core.confState.voters
            st.learners = core.confState.learners
            st.members = members
        }
        for (reply, result) in s.completed { reply.resume(with: result) }
        s.completed.removeAll(keepingCapacity: true)
        if rd.softState != nil {
            logger.info("raft: \(String(id, radix: 16)) is \(core.role) at term \(core.term), leader \(String(core.leader, radix: 16))")
        }
        try maybeSnapshot(&s)
    }

    private func apply(_ entry: Entry, _ s: inout LoopState) {
        var result: Result<UInt64, any Error> = .success(entry.index)
        switch entry.type {
        case .normal where entry.data.isEmpty:
            store.advanceVersion(to: entry.index)
        case .normal:
            do {
                let request = try SwarmInternalRaftRequest(serializedBytes: entry.data)
                if case .failure(let e) = store.apply(request, index: entry.index) { result = .failure(e) }
            } catch {
                logger.error("entry \(entry.index) is not a store transaction: \(error)")
                store.advanceVersion(to: entry.index)
                result = .failure(StoreError.corrupt("entry \(entry.index) does not decode"))
            }
        case .confChange:
            if let change = try? ConfChange(decoding: entry.data) {
                switch change.kind {
                case .addVoter, .addLearner:
                    if let m = try? SwarmRaftMember(serializedBytes: change.context), !m.addr.isEmpty {
                        s.members[change.id] = m.addr
                        if !m.nodeID.isEmpty { s.nodeIDs[change.id] = m.nodeID }
                    }
                case .remove:
                    if change.id != id {
                        s.members[change.id] = nil
                        s.nodeIDs[change.id] = nil
                        s.removedMembers.insert(change.id)
                    } else {
                        s.removed = true
                    }
                    logger.info("member \(String(change.id, radix: 16)) removed")
                }
                syncPeers(s)
            }
            store.advanceVersion(to: entry.index)
        }
        if let w = s.waiters.removeValue(forKey: entry.index) {
            s.completed.append((w.reply, w.term == entry.term ? result : .failure(RaftNodeError.lostLeadership)))
        }
    }

    private func syncPeers(_ s: LoopState) {
        for (peer, addr) in s.members where peer != id { peers.set(peer, addr: addr) }
        peers.retain(Set(s.members.keys))
    }

    static func snapshotData(members: [RaftID: String], nodeIDs: [RaftID: String] = [:], store view: ReadTx) throws -> [UInt8] {
        var data = SwarmRaftSnapshotData()
        data.members = members.keys.sorted().map { k in
            SwarmRaftMember.with { $0.raftID = k; $0.addr = members[k]!; $0.nodeID = nodeIDs[k] ?? "" }
        }
        data.store = Data(try MemoryStore.snapshot(of: view).serializedBytes() as [UInt8])
        return try data.serializedBytes()
    }

    /// Every `snapshotInterval` applied entries, serializes the store off the loop (the
    /// read view is an O(1) snapshot) and hands the result back to the loop, so a large
    /// store does not stall commits.
    private func maybeSnapshot(_ s: inout LoopState) throws {
        let applied = s.core.appliedIndex
        guard !s.snapshotInProgress, applied >= s.lastSnapshot + config.snapshotInterval else { return }
        let view = store.view()
        guard view.version == applied, let term = s.core.term(at: applied) else { return }
        s.snapshotInProgress = true
        let conf = s.core.confState
        let members = s.members
        let nodeIDs = s.nodeIDs
        let compactTo = applied > config.logEntriesForSlowFollowers ? applied - config.logEntriesForSlowFollowers : 0
        let inbox = self.inbox
        Task.detached {
            do {
                let data = try Self.snapshotData(members: members, nodeIDs: nodeIDs, store: view)
                let snap = Snapshot(metadata: SnapshotMetadata(index: applied, term: term, confState: conf), data: data)
                inbox.push(.snapshotTaken(snap, compactTo: compactTo))
            } catch {
                inbox.push(.snapshotFailed("\(error)"))
            }
        }
    }

    /// Rebuilds the state at the commit index into a snapshot whose only voter is this
    /// member, keeping every committed change.
    static func forceNewCluster(_ recovered: RecoveredState, id: RaftID, addr: String, storage: RaftStorage) throws -> RecoveredState {
        let scratch = MemoryStore()
        if !recovered.snapshot.isEmpty {
            let data = try SwarmRaftSnapshotData(serializedBytes: recovered.snapshot.data)
            try scratch.restore([UInt8](data.store), version: recovered.snapshot.metadata.index)
        }
        let commit = recovered.hardState.commit
        var term = recovered.snapshot.metadata.term
        for e in recovered.entries where e.index <= commit {
            term = e.term
            if e.type == .normal, !e.data.isEmpty, let r = try? SwarmInternalRaftRequest(serializedBytes: e.data) {
                scratch.apply(r, index: e.index)
            } else {
                scratch.advanceVersion(to: e.index)
            }
        }
        var data = SwarmRaftSnapshotData()
        data.members = [SwarmRaftMember.with { $0.raftID = id; $0.addr = addr }]
        data.store = Data(try scratch.serializedSnapshot())
        let snap = Snapshot(metadata: SnapshotMetadata(index: commit, term: term, confState: ConfState(voters: [id])),
                            data: try data.serializedBytes())
        try storage.saveSnapshot(snap, compactTo: commit)
        return RecoveredState(hardState: HardState(term: recovered.hardState.term, vote: 0, commit: commit),
                              snapshot: snap, entries: [])
    }
}
