import SwarmRandom

/// Everything the shell must do after a batch of inputs, in order:
/// 1. persist `snapshot`, `entries` and `hardState` (fsync if `mustSync`);
/// 2. send `messages`;
/// 3. apply `snapshot` (if any), then `committedEntries`, to the state machine;
/// 4. call ``RaftCore/advance(_:)`` with this value.
public struct Ready: Sendable {
    /// Set when the leader or role changed.
    public var softState: SoftState?
    /// Set when term, vote or commit changed.
    public var hardState: HardState?
    /// New log entries to persist. A stored suffix from `entries[0].index` on is replaced.
    public var entries: [Entry] = []
    /// A snapshot from the leader to persist and then apply.
    public var snapshot: Snapshot?
    /// Entries that are committed and may be applied.
    public var committedEntries: [Entry] = []
    /// Messages to send once the above is durable.
    public var messages: [Message] = []
    /// Completed ReadIndex requests.
    public var readStates: [ReadState] = []
    /// Whether the writes must be fsynced before the messages go out.
    public var mustSync: Bool = false
    /// Inputs the core ignored (stale terms, unknown members), for the shell to log.
    public var notices: [String] = []

    public var isEmpty: Bool {
        softState == nil && hardState == nil && entries.isEmpty && snapshot == nil
            && committedEntries.isEmpty && messages.isEmpty && readStates.isEmpty
            && notices.isEmpty
    }
}

struct ReadRequest: Sendable {
    var index: UInt64
    var context: [UInt8]
    var from: RaftID
    var acks: Set<RaftID>
}

/// The Raft consensus algorithm as a deterministic state machine, after etcd-io/raft.
///
/// It has no clock, does no I/O and draws randomness only from its seeded generator.
/// Inputs are ``tick()``, ``step(_:)``, ``propose(_:)``, ``proposeConfChange(_:)``,
/// ``readIndex(context:)`` and ``transferLeadership(to:)``; outputs are collected by
/// ``ready()`` and acknowledged with ``advance(_:)``.
public struct RaftCore: Sendable {
    public let config: RaftConfig
    public var id: RaftID { config.id }

    public internal(set) var term: UInt64 = 0
    public internal(set) var vote: RaftID = 0
    /// The leader this member follows (itself when leader), 0 if unknown.
    public internal(set) var leader: RaftID = 0
    public internal(set) var role: RaftRole = .follower
    /// Membership as of the applied index.
    public internal(set) var confState: ConfState

    var log: RaftLog
    var progress: [RaftID: Progress] = [:]
    var votes: [RaftID: Bool] = [:]
    var electionElapsed = 0
    var heartbeatElapsed = 0
    var randomizedElectionTimeout = 0
    var leadTransferee: RaftID = 0
    var pendingConfIndex: UInt64 = 0
    var snapshotTicks: [RaftID: Int] = [:]
    var pendingReads: [ReadRequest] = []
    var readsAwaitingCommit: [Message] = []
    var outbox: [Message] = []
    var readStates: [ReadState] = []
    var notices: [String] = []
    var rng: SplitMix64
    /// Highest index handed out in a Ready for application.
    var applying: UInt64
    var lastReportedSoft: SoftState
    var lastReportedHard: HardState

    /// Creates a member from recovered state. With empty storage and a non-empty
    /// `bootstrap` list, the member writes the initial membership as committed entries
    /// (identical on every bootstrapping member). A member that joins an existing cluster
    /// starts with empty storage and no bootstrap list, and learns the log from the leader.
    ///
    /// `bootstrapContext` gives the context bytes of each initial member's entry (for
    /// example its address), so that the log alone describes the membership.
    public init(config: RaftConfig, recovered: RecoveredState = RecoveredState(), bootstrap: [RaftID] = [],
                bootstrapContext: (RaftID) -> [UInt8] = { _ in [] }) {
        precondition(config.id != 0, "raft member id must not be zero")
        precondition(config.heartbeatTick > 0 && config.electionTick > config.heartbeatTick,
                     "election tick must be greater than heartbeat tick")
        self.config = config
        rng = SplitMix64(seed: config.seed)
        log = RaftLog(snapshot: recovered.snapshot, entries: recovered.entries, commit: recovered.hardState.commit)
        confState = recovered.snapshot.metadata.confState
        term = recovered.hardState.term
        vote = recovered.hardState.vote
        applying = log.applied
        if recovered.isEmpty && !bootstrap.isEmpty {
            let entries = bootstrap.sorted().enumerated().map { offset, peer in
                Entry(term: 1, index: UInt64(offset + 1), type: .confChange,
                      data: ConfChange(kind: .addVoter, id: peer, context: bootstrapContext(peer)).encoded())
            }
            log.append(entries)
            log.commitTo(UInt64(entries.count))
            term = 1
        }
        lastReportedSoft = SoftState(leader: 0, role: .follower)
        lastReportedHard = recovered.hardState
        becomeFollower(term: term, leader: 0)
    }

    // MARK: Public inputs

    /// Advances logical time by one tick.
    public mutating func tick() {
        switch role {
        case .leader: tickLeader()
        default: tickElection()
        }
    }

    /// Feeds a message received from another member.
    public mutating func step(_ m: Message) {
        stepMessage(m)
    }

    /// Proposes application data. Returns the index the entry will occupy; it is committed
    /// when an entry with that index and the returned term is handed out for application.
    @discardableResult
    public mutating func propose(_ data: [UInt8]) throws(RaftError) -> (index: UInt64, term: UInt64) {
        try proposeEntries([(EntryType.normal, data)])
    }

    /// Proposes several entries at once (one append, one broadcast). Returns the index of
    /// the first.
    @discardableResult
    public mutating func propose(batch: [[UInt8]]) throws(RaftError) -> (index: UInt64, term: UInt64) {
        try proposeEntries(batch.map { (EntryType.normal, $0) })
    }

    /// Proposes a membership change. Only one change may be pending at a time.
    @discardableResult
    public mutating func proposeConfChange(_ change: ConfChange) throws(RaftError) -> (index: UInt64, term: UInt64) {
        guard role == .leader else { throw .notLeader(leader: leader) }
        if pendingConfIndex > log.applied { throw .confChangeInProgress }
        try validate(change)
        let result = try proposeEntries([(.confChange, change.encoded())])
        pendingConfIndex = result.index
        return result
    }

    /// Requests a linearizable read. When the returned ``ReadState`` with this context
    /// appears in a ``Ready`` and the applied index reaches its index, local state may be read.
    public mutating func readIndex(context: [UInt8]) {
        stepMessage(Message(type: .readIndex, from: id, entries: [], context: context))
    }

    /// Asks the leader to hand leadership to `target`.
    public mutating func transferLeadership(to target: RaftID) {
        stepMessage(Message(type: .transferLeader, to: leader, from: target))
    }

    /// Tells the leader that a snapshot sent to `member` finished or failed.
    public mutating func reportSnapshot(to member: RaftID, success: Bool) {
        guard role == .leader, var pr = progress[member], case .snapshot = pr.state else { return }
        pr.becomeProbe()
        if !success { pr.probeSent = false }
        progress[member] = pr
        snapshotTicks[member] = nil
    }

    /// Tells the leader that a message to `member` could not be delivered.
    public mutating func reportUnreachable(_ member: RaftID) {
        guard role == .leader, var pr = progress[member], pr.state == .replicate else { return }
        pr.becomeProbe()
        progress[member] = pr
    }

    /// Records a snapshot the application took at an applied index, and compacts the log
    /// up to `compactTo` (entries after it are kept for slow followers).
    public mutating func compact(snapshot: Snapshot, compactTo: UInt64) throws(RaftError) {
        try log.installLocalSnapshot(snapshot, compactTo: compactTo)
    }

    // MARK: Observers

    public var softState: SoftState { SoftState(leader: leader, role: role) }
    public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
    public var commitIndex: UInt64 { log.committed }
    public var appliedIndex: UInt64 { log.applied }
    public var lastIndex: UInt64 { log.lastIndex }
    public var firstIndex: UInt64 { log.firstIndex }
    public var lastSnapshot: Snapshot { log.snapshot }
    /// The term of the log entry at `index`, or nil if it is compacted or not yet written.
    public func term(at index: UInt64) -> UInt64? { log.term(at: index) }
    /// Whether this member may take part in elections.
    public var isVoter: Bool { confState.voters.contains(id) }
    /// The leader's view of how far each member's log matches its own.
    public var matchIndexes: [RaftID: UInt64] { progress.mapValues(\.match) }
    /// The member a leadership transfer is heading to, 0 if none.
    public var transferee: RaftID { leadTransferee }

    /// Whether ``ready()`` has anything to hand out.
    public var hasReady: Bool {
        softState != lastReportedSoft || hardState != lastReportedHard || !outbox.isEmpty
            || !readStates.isEmpty || !notices.isEmpty || log.pendingSnapshot != nil
            || log.hasUnstableEntries || log.committed > applying
    }

    // MARK: Ready / advance

    /// Collects the outputs accumulated since the previous call.
    public mutating func ready() -> Ready {
        var rd = Ready()
        let soft = softState
        if soft != lastReportedSoft {
            rd.softState = soft
            lastReportedSoft = soft
        }
        let hard = hardState
        if hard != lastReportedHard {
            rd.hardState = hard
            rd.mustSync = hard.term != lastReportedHard.term || hard.vote != lastReportedHard.vote
            lastReportedHard = hard
        }
        rd.entries = log.unstableEntries
        if !rd.entries.isEmpty { rd.mustSync = true }
        if let snap = log.pendingSnapshot {
            rd.snapshot = snap
            rd.mustSync = true
            applying = max(applying, snap.metadata.index)
        }
        rd.committedEntries = log.entriesToApply(after: applying, maxBytes: config.maxApplyBytes)
        if let last = rd.committedEntries.last { applying = last.index }
        rd.messages = outbox
        outbox.removeAll(keepingCapacity: true)
        rd.readStates = readStates
        readStates.removeAll()
        rd.notices = notices
        notices.removeAll()
        return rd
    }

    /// Acknowledges that a ``Ready`` was fully handled: its writes are durable and its
    /// committed entries applied. Membership changes take effect here.
    public mutating func advance(_ rd: Ready) {
        if let snap = rd.snapshot {
            log.snapshotApplied(index: snap.metadata.index)
            confState = snap.metadata.confState
            if role == .leader { syncProgressWithConf() }
        }
        if let last = rd.entries.last {
            log.stableTo(index: last.index, term: last.term)
        }
        for entry in rd.committedEntries {
            log.appliedTo(entry.index)
            if entry.type == .confChange { applyConfChange(entry) }
        }
        if role == .leader {
            let before = log.committed
            if var me = progress[id], me.maybeUpdate(log.stable) {
                progress[id] = me
            }
            if maybeCommit() || log.committed != before { broadcastAppend() }
        }
    }

    // MARK: Helpers shared by the extensions

    mutating func send(_ m: Message) {
        var m = m
        m.from = id
        if m.term == 0 && m.type != .readIndex && m.type != .transferLeader { m.term = term }
        outbox.append(m)
    }

    mutating func note(_ text: String) {
        if notices.count < 100 { notices.append(text) }
    }

    private mutating func proposeEntries(_ items: [(EntryType, [UInt8])]) throws(RaftError) -> (index: UInt64, term: UInt64) {
        guard role == .leader else { throw .notLeader(leader: leader) }
        if leadTransferee != 0 { throw .transferInProgress }
        for (_, data) in items where data.count > config.maxProposalBytes {
            throw .proposalTooLarge(size: data.count, limit: config.maxProposalBytes)
        }
        let first = log.lastIndex + 1
        var entries: [Entry] = []
        entries.reserveCapacity(items.count)
        for (k, (type, data)) in items.enumerated() {
            entries.append(Entry(term: term, index: first + UInt64(k), type: type, data: data))
        }
        log.append(entries)
        broadcastAppend()
        return (first, term)
    }

    private func validate(_ change: ConfChange) throws(RaftError) {
        switch change.kind {
        case .addVoter:
            if confState.voters.contains(change.id) {
                throw .invalidConfChange("\(change.id) is already a voter")
            }
        case .addLearner:
            if confState.voters.contains(change.id) {
                throw .invalidConfChange("\(change.id) is a voter; demotion is not supported")
            }
            if confState.learners.contains(change.id) {
                throw .invalidConfChange("\(change.id) is already a learner")
            }
        case .remove:
            if !confState.contains(change.id) {
                throw .invalidConfChange("\(change.id) is not a member")
            }
            if confState.voters == [change.id] {
                throw .invalidConfChange("cannot remove the last voter")
            }
        }
    }

    private mutating func applyConfChange(_ entry: Entry) {
        guard let change = try? ConfChange(decoding: entry.data) else {
            note("ignored malformed membership change at index \(entry.index)")
            return
        }
        var voters = confState.voters
        var learners = confState.learners
        switch change.kind {
        case .addVoter:
            learners.removeAll { $0 == change.id }
            if !voters.contains(change.id) { voters.append(change.id) }
        case .addLearner:
            if !voters.contains(change.id) && !learners.contains(change.id) { learners.append(change.id) }
        case .remove:
            voters.removeAll { $0 == change.id }
            learners.removeAll { $0 == change.id }
        }
        if voters.isEmpty {
            note("ignored membership change at index \(entry.index) that would leave no voter")
            return
        }
        confState = ConfState(voters: voters, learners: learners)
        guard role == .leader else { return }
        syncProgressWithConf()
        if !confState.voters.contains(id) {
            // A leader that removed itself steps down once the change is applied.
            becomeFollower(term: term, leader: 0)
            return
        }
        if leadTransferee != 0 && !confState.voters.contains(leadTransferee) {
            leadTransferee = 0
        }
        if maybeCommit() { broadcastAppend() }
    }

    /// Makes the progress map match the membership.
    mutating func syncProgressWithConf() {
        for member in confState.members where progress[member] == nil {
            var pr = Progress(next: log.lastIndex + 1, isLearner: confState.learners.contains(member))
            pr.recentActive = true
            progress[member] = pr
        }
        for member in progress.keys where !confState.contains(member) {
            progress[member] = nil
            snapshotTicks[member] = nil
        }
        for member in confState.members {
            progress[member]?.isLearner = confState.learners.contains(member)
        }
    }
}
