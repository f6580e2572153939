extension RaftCore {
    // MARK: Ticks

    mutating func tickLeader() {
        heartbeatElapsed += 1
        electionElapsed += 1
        for (member, ticks) in snapshotTicks.sorted(by: { $0.key < $1.key }) {
            if ticks + 1 >= config.snapshotTimeoutTicks {
                note("snapshot to \(member) unacknowledged after \(ticks + 1) ticks; retrying")
                reportSnapshot(to: member, success: false)
            } else {
                snapshotTicks[member] = ticks + 1
            }
        }
        if electionElapsed >= config.electionTick {
            electionElapsed = 0
            if config.checkQuorum && !quorumActive() {
                note("stepping down at term \(term): no quorum heard from within the election timeout")
                becomeFollower(term: term, leader: 0)
                return
            }
            if leadTransferee != 0 {
                note("leadership transfer to \(leadTransferee) timed out")
                leadTransferee = 0
            }
        }
        if heartbeatElapsed >= config.heartbeatTick {
            heartbeatElapsed = 0
            broadcastHeartbeat(context: [])
        }
    }

    /// Whether a quorum of voters answered since the last check; resets the marks.
    mutating func quorumActive() -> Bool {
        var active = 0
        for voter in confState.voters {
            if voter == id || progress[voter]?.recentActive == true { active += 1 }
        }
        for member in progress.keys where member != id { progress[member]?.recentActive = false }
        return active >= confState.voters.count / 2 + 1
    }

    // MARK: Replication

    /// Sends an append (or a snapshot) to `member` if its window allows. Returns whether
    /// something was sent.
    @discardableResult
    mutating func sendAppend(to member: RaftID, sendIfEmpty: Bool = true) -> Bool {
        guard member != id, var pr = progress[member] else { return false }
        if pr.isPaused(maxInflight: config.maxInflightMessages) { return false }
        let prevIndex = pr.next - 1
        let prevTerm = log.term(at: prevIndex)
        let entries = try? log.slice(from: pr.next, to: log.lastIndex + 1, maxBytes: config.maxSizePerMessage)
        guard let prevTerm, let entries else {
            // The follower needs entries that were compacted: send the snapshot.
            let snap = log.snapshot
            guard !snap.isEmpty, pr.recentActive else { return false }
            send(Message(type: .snapshot, to: member, snapshot: snap))
            pr.becomeSnapshot(snap.metadata.index)
            progress[member] = pr
            snapshotTicks[member] = 0
            return true
        }
        if entries.isEmpty && !sendIfEmpty { return false }
        send(Message(type: .append, to: member, logTerm: prevTerm, index: prevIndex, entries: entries,
                     commit: log.committed))
        pr.sentEntries(last: entries.last?.index ?? prevIndex, count: entries.count)
        progress[member] = pr
        return true
    }

    mutating func broadcastAppend() {
        for member in progress.keys.sorted() where member != id {
            sendAppend(to: member)
        }
    }

    mutating func broadcastHeartbeat(context: [UInt8]) {
        for member in progress.keys.sorted() where member != id {
            let match = progress[member]?.match ?? 0
            send(Message(type: .heartbeat, to: member, commit: min(match, log.committed), context: context))
        }
    }

    /// Advances the commit index to the highest index stored on a quorum of voters, if that
    /// entry is from the current term (§5.4.2). Returns whether it moved.
    @discardableResult
    mutating func maybeCommit() -> Bool {
        let voters = confState.voters
        guard !voters.isEmpty else { return false }
        var matches = voters.map { progress[$0]?.match ?? 0 }
        matches.sort(by: >)
        let candidate = matches[voters.count / 2]
        guard candidate > log.committed, log.term(at: candidate) == term else { return false }
        let hadCommittedInTerm = log.term(at: log.committed) == term
        log.commitTo(candidate)
        if !hadCommittedInTerm { releaseReadsAwaitingCommit() }
        return true
    }

    // MARK: Leader message handling

    mutating func stepLeader(_ m: Message) {
        switch m.type {
        case .readIndex:
            handleReadIndex(m)
            return
        case .transferLeader:
            handleTransfer(to: m.from)
            return
        default:
            break
        }
        guard var pr = progress[m.from] else {
            note("ignored \(m.type) from unknown member \(m.from)")
            return
        }
        switch m.type {
        case .appendResponse:
            pr.recentActive = true
            if m.reject {
                var hint = m.rejectHint
                if m.logTerm > 0 { hint = log.findConflict(byTerm: m.logTerm, atOrBelow: hint) }
                if pr.maybeDecrease(rejected: m.index, matchHint: hint) {
                    if pr.state == .replicate { pr.becomeProbe() }
                    progress[m.from] = pr
                    sendAppend(to: m.from)
                } else {
                    progress[m.from] = pr
                }
                return
            }
            let wasPaused = pr.isPaused(maxInflight: config.maxInflightMessages)
            if pr.maybeUpdate(m.index) {
                switch pr.state {
                case .probe:
                    pr.becomeReplicate()
                case .snapshot(let index) where pr.match >= index:
                    pr.becomeProbe()
                    pr.becomeReplicate()
                    snapshotTicks[m.from] = nil
                default:
                    break
                }
                progress[m.from] = pr
                if maybeCommit() {
                    broadcastAppend()
                } else if wasPaused {
                    sendAppend(to: m.from)
                }
                // Keep sending while the window has room and entries remain.
                while progress[m.from]?.state == .replicate,
                      (progress[m.from]?.next ?? 0) <= log.lastIndex,
                      sendAppend(to: m.from, sendIfEmpty: false) {}
                if m.from == leadTransferee && progress[m.from]?.match == log.lastIndex {
                    send(Message(type: .timeoutNow, to: m.from))
                }
            } else {
                progress[m.from] = pr
            }
        case .heartbeatResponse:
            pr.recentActive = true
            pr.probeSent = false
            if pr.state == .replicate && pr.inflight.count >= config.maxInflightMessages {
                // An append may have been lost: open the window by one so that replication
                // resumes (a gap makes the follower reject and the leader probe).
                pr.inflight.removeFirst()
            }
            progress[m.from] = pr
            if pr.match < log.lastIndex { sendAppend(to: m.from) }
            if !m.context.isEmpty { acknowledgeRead(context: m.context, from: m.from) }
        default:
            progress[m.from] = pr
        }
    }

    private mutating func handleTransfer(to target: RaftID) {
        guard let pr = progress[target], !pr.isLearner else {
            note("ignored leadership transfer to \(target): not a voter")
            return
        }
        if target == id || target == leadTransferee { return }
        leadTransferee = target
        electionElapsed = 0
        if pr.match == log.lastIndex {
            send(Message(type: .timeoutNow, to: target))
        } else {
            sendAppend(to: target)
        }
    }

    // MARK: ReadIndex (§6.4)

    private mutating func handleReadIndex(_ m: Message) {
        let from = m.from == 0 ? id : m.from
        if confState.voters.count == 1 {
            completeRead(ReadRequest(index: log.committed, context: m.context, from: from, acks: []))
            return
        }
        // The leader only knows the commit index is current once it has committed an entry
        // of its own term.
        guard log.term(at: log.committed) == term else {
            readsAwaitingCommit.append(m)
            return
        }
        pendingReads.append(ReadRequest(index: log.committed, context: m.context, from: from, acks: [id]))
        broadcastHeartbeat(context: m.context)
    }

    private mutating func releaseReadsAwaitingCommit() {
        let waiting = readsAwaitingCommit
        readsAwaitingCommit = []
        for m in waiting { handleReadIndex(m) }
    }

    private mutating func acknowledgeRead(context: [UInt8], from member: RaftID) {
        guard let k = pendingReads.firstIndex(where: { $0.context == context }) else { return }
        guard confState.voters.contains(member) else { return }
        pendingReads[k].acks.insert(member)
        let quorum = confState.voters.count / 2 + 1
        guard pendingReads[k].acks.count >= quorum else { return }
        // A quorum confirmed leadership at this point, which covers every earlier request.
        let done = pendingReads[...k]
        pendingReads.removeFirst(k + 1)
        for request in done { completeRead(request) }
    }

    private mutating func completeRead(_ request: ReadRequest) {
        if request.from == id {
            readStates.append(ReadState(index: request.index, context: request.context))
        } else {
            send(Message(type: .readIndexResponse, to: request.from, index: request.index, context: request.context))
        }
    }
}
