/// Context bytes that mark a vote request caused by a leadership transfer; such requests
/// bypass the leader lease.
let campaignTransferContext: [UInt8] = Array("transfer".utf8)

extension RaftCore {
    // MARK: Role changes

    mutating func reset(term newTerm: UInt64) {
        if term != newTerm {
            term = newTerm
            vote = 0
        }
        leader = 0
        electionElapsed = 0
        heartbeatElapsed = 0
        var generator = rng
        randomizedElectionTimeout = config.electionTick + Int.random(in: 0..<config.electionTick, using: &generator)
        rng = generator
        leadTransferee = 0
        votes = [:]
        progress = [:]
        snapshotTicks = [:]
        pendingConfIndex = 0
        pendingReads = []
        readsAwaitingCommit = []
    }

    mutating func becomeFollower(term newTerm: UInt64, leader newLeader: RaftID) {
        reset(term: newTerm)
        leader = newLeader
        role = .follower
    }

    mutating func becomePreCandidate() {
        // A pre-candidate changes neither its term nor its vote.
        votes = [:]
        leader = 0
        role = .preCandidate
    }

    mutating func becomeCandidate() {
        reset(term: term + 1)
        vote = id
        role = .candidate
    }

    mutating func becomeLeader() {
        reset(term: term)
        leader = id
        role = .leader
        syncProgressWithConf()
        for member in progress.keys {
            progress[member]?.next = log.lastIndex + 1
            progress[member]?.match = 0
        }
        progress[id]?.match = log.stable
        progress[id]?.becomeReplicate()
        // No membership change may be proposed until every earlier entry is applied.
        pendingConfIndex = log.lastIndex
        // The empty entry of the new term lets the leader commit earlier entries (§5.4.2).
        log.append([Entry(term: term, index: log.lastIndex + 1)])
    }

    // MARK: Elections

    var isPromotable: Bool { confState.voters.contains(id) && log.pendingSnapshot == nil }

    /// Whether committed but unapplied entries contain a membership change, in which case
    /// the member must not campaign until it has applied it.
    var hasUnappliedConfChange: Bool {
        guard log.committed > log.applied else { return false }
        let pending = (try? log.slice(from: log.applied + 1, to: log.committed + 1)) ?? []
        return pending.contains { $0.type == .confChange }
    }

    mutating func tickElection() {
        electionElapsed += 1
        if isPromotable && electionElapsed >= randomizedElectionTimeout {
            electionElapsed = 0
            campaign(config.preVote ? .preElection : .election)
        }
    }

    enum CampaignKind { case preElection, election, transfer }

    mutating func campaign(_ kind: CampaignKind) {
        guard isPromotable else { return }
        if hasUnappliedConfChange {
            note("not campaigning at term \(term): a membership change is still unapplied")
            return
        }
        let preVote = kind == .preElection
        let transfer = kind == .transfer
        let voteTerm: UInt64
        let type: MessageType
        if preVote {
            becomePreCandidate()
            voteTerm = term + 1
            type = .preVote
        } else {
            becomeCandidate()
            voteTerm = term
            type = .vote
        }
        if poll(id, granted: true) == .won {
            if preVote { campaign(.election) } else { becomeLeader(); broadcastAppend() }
            return
        }
        for voter in confState.voters where voter != id {
            send(Message(type: type, to: voter, term: voteTerm, logTerm: log.lastTerm, index: log.lastIndex,
                         context: transfer ? campaignTransferContext : []))
        }
    }

    enum VoteResult { case pending, won, lost }

    mutating func poll(_ from: RaftID, granted: Bool) -> VoteResult {
        if votes[from] == nil { votes[from] = granted }
        let quorum = confState.voters.count / 2 + 1
        let yes = confState.voters.filter { votes[$0] == true }.count
        let no = confState.voters.filter { votes[$0] == false }.count
        if yes >= quorum { return .won }
        if no >= quorum || confState.voters.count - no < quorum { return .lost }
        return .pending
    }

    // MARK: Message dispatch

    mutating func stepMessage(_ m: Message) {
        if m.term > term {
            if m.type == .vote || m.type == .preVote {
                let force = m.context == campaignTransferContext
                let inLease = config.checkQuorum && leader != 0 && electionElapsed < config.electionTick
                if !force && inLease {
                    note("ignored \(m.type) from \(m.from) at term \(m.term): leader \(leader) lease is current")
                    return
                }
            }
            switch m.type {
            case .preVote:
                break  // a pre-vote never changes the term
            case .preVoteResponse where !m.reject:
                break  // a granted pre-vote carries the future term
            case .append, .heartbeat, .snapshot:
                becomeFollower(term: m.term, leader: m.from)
            default:
                becomeFollower(term: m.term, leader: 0)
            }
        } else if m.term < term && m.term != 0 {
            if (config.checkQuorum || config.preVote) && (m.type == .heartbeat || m.type == .append) {
                // Tell a stale leader about the newer term so that it steps down.
                send(Message(type: .appendResponse, to: m.from))
            } else if m.type == .preVote {
                send(Message(type: .preVoteResponse, to: m.from, reject: true))
            } else {
                note("ignored \(m.type) from \(m.from) with stale term \(m.term) < \(term)")
            }
            return
        }

        switch m.type {
        case .vote, .preVote:
            handleVoteRequest(m)
        default:
            switch role {
            case .leader: stepLeader(m)
            case .candidate, .preCandidate: stepCandidate(m)
            case .follower: stepFollower(m)
            }
        }
    }

    private mutating func handleVoteRequest(_ m: Message) {
        if !confState.voters.isEmpty && !confState.voters.contains(m.from) {
            note("ignored \(m.type) from non-voting or unknown member \(m.from)")
            return
        }
        let responseType: MessageType = m.type == .vote ? .voteResponse : .preVoteResponse
        let canVote = vote == m.from || (vote == 0 && leader == 0) || (m.type == .preVote && m.term > term)
        if canVote && log.isUpToDate(lastIndex: m.index, term: m.logTerm) {
            send(Message(type: responseType, to: m.from, term: m.term))
            if m.type == .vote {
                electionElapsed = 0
                vote = m.from
            }
        } else {
            send(Message(type: responseType, to: m.from, term: term, reject: true))
        }
    }

    private mutating func stepCandidate(_ m: Message) {
        let expected: MessageType = role == .preCandidate ? .preVoteResponse : .voteResponse
        switch m.type {
        case .append:
            becomeFollower(term: m.term, leader: m.from)
            handleAppend(m)
        case .heartbeat:
            becomeFollower(term: m.term, leader: m.from)
            handleHeartbeat(m)
        case .snapshot:
            becomeFollower(term: m.term, leader: m.from)
            handleSnapshot(m)
        case expected:
            switch poll(m.from, granted: !m.reject) {
            case .won:
                if role == .preCandidate {
                    campaign(.election)
                } else {
                    becomeLeader()
                    broadcastAppend()
                }
            case .lost:
                becomeFollower(term: term, leader: 0)
            case .pending:
                break
            }
        case .timeoutNow:
            note("ignored timeoutNow from \(m.from) while campaigning")
        case .readIndex, .transferLeader:
            note("dropped \(m.type): no leader")
        default:
            break
        }
    }

    private mutating func stepFollower(_ m: Message) {
        switch m.type {
        case .append:
            electionElapsed = 0
            leader = m.from
            handleAppend(m)
        case .heartbeat:
            electionElapsed = 0
            leader = m.from
            handleHeartbeat(m)
        case .snapshot:
            electionElapsed = 0
            leader = m.from
            handleSnapshot(m)
        case .transferLeader:
            if leader == 0 { note("dropped transfer request: no leader"); return }
            var fwd = m
            fwd.to = leader
            outbox.append(fwd)
        case .timeoutNow:
            // Leadership transfer: campaign at once, bypassing pre-vote and the lease.
            campaign(.transfer)
        case .readIndex:
            if leader == 0 { note("dropped read index request: no leader"); return }
            var fwd = m
            fwd.to = leader
            fwd.from = id
            fwd.term = 0
            outbox.append(fwd)
        case .readIndexResponse:
            readStates.append(ReadState(index: m.index, context: m.context))
        default:
            break
        }
    }

    // MARK: Follower handlers

    mutating func handleAppend(_ m: Message) {
        if m.index < log.committed {
            send(Message(type: .appendResponse, to: m.from, index: log.committed))
            return
        }
        if let last = log.maybeAppend(prevIndex: m.index, prevTerm: m.logTerm, commit: m.commit, entries: m.entries) {
            send(Message(type: .appendResponse, to: m.from, index: last))
            return
        }
        // Fast backtracking (etcd's findConflictByTerm): tell the leader the largest index
        // whose term is at most the term the leader expected.
        let hint = log.findConflict(byTerm: m.logTerm, atOrBelow: min(m.index, log.lastIndex))
        send(Message(type: .appendResponse, to: m.from, logTerm: log.term(at: hint) ?? 0, index: m.index,
                     reject: true, rejectHint: hint))
    }

    mutating func handleHeartbeat(_ m: Message) {
        log.commitTo(min(m.commit, log.lastIndex))
        send(Message(type: .heartbeatResponse, to: m.from, context: m.context))
    }

    mutating func handleSnapshot(_ m: Message) {
        guard let snap = m.snapshot else { return }
        if log.restore(snap) {
            send(Message(type: .appendResponse, to: m.from, index: log.lastIndex))
        } else {
            send(Message(type: .appendResponse, to: m.from, index: log.committed))
        }
    }
}
