/// Settings of one Raft member. Times are in ticks; the shell decides how long a tick is
/// (100 ms by default).
public struct RaftConfig: Sendable {
    /// This member's ID. Must not be zero.
    public var id: RaftID
    /// Ticks without hearing from a leader before a follower starts an election. The
    /// actual timeout is drawn from `[electionTick, 2 * electionTick)`.
    public var electionTick: Int = 10
    /// Ticks between the leader's heartbeats.
    public var heartbeatTick: Int = 1
    /// Upper bound on the entry bytes of one append message.
    public var maxSizePerMessage: Int = 1 << 20
    /// Number of unacknowledged appends a leader keeps in flight to one follower.
    public var maxInflightMessages: Int = 256
    /// Largest proposal accepted. SwarmKit caps a request at 1.5 MiB.
    public var maxProposalBytes: Int = 1_572_864
    /// Upper bound on the bytes of committed entries handed out in one ``Ready``.
    public var maxApplyBytes: Int = 64 << 20
    /// A leader steps down when it has not heard from a quorum within an election timeout,
    /// and followers ignore vote requests while they hear from a leader (the lease).
    public var checkQuorum: Bool = true
    /// Candidates first run a pre-election that does not disturb terms (thesis §9.6).
    public var preVote: Bool = true
    /// Ticks after which an unacknowledged snapshot transfer is abandoned and retried.
    public var snapshotTimeoutTicks: Int = 300
    /// Seed of the member's random number generator (election timeouts).
    public var seed: UInt64

    public init(id: RaftID, seed: UInt64? = nil) {
        self.id = id
        self.seed = seed ?? id &* 0x9E37_79B9_7F4A_7C15
    }
}

/// What a member recovered from stable storage at start-up.
public struct RecoveredState: Sendable {
    public var hardState: HardState
    public var snapshot: Snapshot
    public var entries: [Entry]

    public init(hardState: HardState = HardState(), snapshot: Snapshot = Snapshot(), entries: [Entry] = []) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    public var isEmpty: Bool { hardState == HardState() && snapshot.isEmpty && entries.isEmpty }
}
