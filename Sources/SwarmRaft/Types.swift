/// Identifies a Raft member. Zero means "none".
public typealias RaftID = UInt64

/// The kind of a log entry.
public enum EntryType: UInt8, Sendable, Equatable {
    /// Application data (a store transaction, or an empty entry a new leader appends).
    case normal = 0
    /// A membership change, encoded with ``ConfChange/encoded()``.
    case confChange = 1
}

/// One entry of the replicated log.
public struct Entry: Sendable, Equatable {
    public var term: UInt64
    public var index: UInt64
    public var type: EntryType
    public var data: [UInt8]

    public init(term: UInt64, index: UInt64, type: EntryType = .normal, data: [UInt8] = []) {
        self.term = term
        self.index = index
        self.type = type
        self.data = data
    }

    /// Approximate encoded size, used for flow control and batching.
    public var byteSize: Int { data.count + 24 }
}

/// The state that must be on stable storage before messages are sent.
public struct HardState: Sendable, Equatable {
    public var term: UInt64
    public var vote: RaftID
    public var commit: UInt64

    public init(term: UInt64 = 0, vote: RaftID = 0, commit: UInt64 = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
    }
}

/// Cluster membership: voters take part in elections and quorums; learners only receive
/// the log.
public struct ConfState: Sendable, Equatable {
    public var voters: [RaftID]
    public var learners: [RaftID]

    public init(voters: [RaftID] = [], learners: [RaftID] = []) {
        self.voters = voters.sorted()
        self.learners = learners.sorted()
    }

    /// Every member, voters first.
    public var members: [RaftID] { voters + learners }

    public func contains(_ id: RaftID) -> Bool { voters.contains(id) || learners.contains(id) }
}

/// Where a snapshot sits in the log, and the membership at that point.
public struct SnapshotMetadata: Sendable, Equatable {
    public var index: UInt64
    public var term: UInt64
    public var confState: ConfState

    public init(index: UInt64 = 0, term: UInt64 = 0, confState: ConfState = ConfState()) {
        self.index = index
        self.term = term
        self.confState = confState
    }
}

/// A point-in-time image of the application state plus its log position.
public struct Snapshot: Sendable, Equatable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata = SnapshotMetadata(), data: [UInt8] = []) {
        self.metadata = metadata
        self.data = data
    }

    public var isEmpty: Bool { metadata.index == 0 }
}

/// The kinds of message Raft members exchange. Local-only kinds never leave a node.
public enum MessageType: UInt8, Sendable, Equatable, CaseIterable {
    case append = 1
    case appendResponse = 2
    case vote = 3
    case voteResponse = 4
    case preVote = 5
    case preVoteResponse = 6
    case heartbeat = 7
    case heartbeatResponse = 8
    case snapshot = 9
    case timeoutNow = 10
    case readIndex = 11
    case readIndexResponse = 12
    case transferLeader = 13

    var isResponse: Bool {
        switch self {
        case .appendResponse, .voteResponse, .preVoteResponse, .heartbeatResponse,
             .readIndexResponse:
            return true
        default:
            return false
        }
    }
}

/// A message between Raft members. Fields not used by a kind are left at zero.
public struct Message: Sendable, Equatable {
    public var type: MessageType
    public var to: RaftID
    public var from: RaftID
    public var term: UInt64
    /// Term of the entry at `index` (append) or of the candidate's last entry (vote).
    public var logTerm: UInt64
    /// Index preceding `entries` (append), last log index (vote), or acknowledged index.
    public var index: UInt64
    public var entries: [Entry]
    public var commit: UInt64
    public var snapshot: Snapshot?
    public var reject: Bool
    public var rejectHint: UInt64
    /// Opaque bytes: the request context of a ReadIndex round.
    public var context: [UInt8]

    public init(
        type: MessageType, to: RaftID = 0, from: RaftID = 0, term: UInt64 = 0,
        logTerm: UInt64 = 0, index: UInt64 = 0, entries: [Entry] = [], commit: UInt64 = 0,
        snapshot: Snapshot? = nil, reject: Bool = false, rejectHint: UInt64 = 0,
        context: [UInt8] = []
    ) {
        self.type = type
        self.to = to
        self.from = from
        self.term = term
        self.logTerm = logTerm
        self.index = index
        self.entries = entries
        self.commit = commit
        self.snapshot = snapshot
        self.reject = reject
        self.rejectHint = rejectHint
        self.context = context
    }
}

/// A membership change, proposed with ``RaftCore/proposeConfChange(_:)``.
///
/// Changes are made one at a time and take effect when the entry is applied (the
/// "apply-time" rule of Ongaro's thesis §4.1): a leader refuses a second change while one
/// is still unapplied. See `docs/architecture.md` for why this was chosen over joint
/// consensus.
public struct ConfChange: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        /// Add a voter, or promote a learner to voter.
        case addVoter = 0
        /// Add a learner (a non-voting member that receives the log).
        case addLearner = 1
        /// Remove a member.
        case remove = 2
    }

    public var kind: Kind
    public var id: RaftID
    /// Opaque bytes for the application, for example the member's address.
    public var context: [UInt8]

    public init(kind: Kind, id: RaftID, context: [UInt8] = []) {
        self.kind = kind
        self.id = id
        self.context = context
    }

    /// Encodes the change as entry data.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = [kind.rawValue]
        withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: context)
        return out
    }

    /// Decodes entry data written by ``encoded()``.
    public init(decoding bytes: [UInt8]) throws(RaftError) {
        guard bytes.count >= 9, let kind = Kind(rawValue: bytes[0]) else {
            throw RaftError.malformedConfChange
        }
        var id: UInt64 = 0
        for i in 0..<8 { id |= UInt64(bytes[1 + i]) << (8 * UInt64(i)) }
        self.init(kind: kind, id: id, context: Array(bytes[9...]))
    }
}

/// The role a member currently plays.
public enum RaftRole: Sendable, Equatable {
    case follower
    case preCandidate
    case candidate
    case leader
}

/// The volatile state that the application may want to observe.
public struct SoftState: Sendable, Equatable {
    public var leader: RaftID
    public var role: RaftRole
}

/// The answer to a ``RaftCore/readIndex(context:)`` request: once the local applied index
/// reaches `index`, a read of local state is linearizable.
public struct ReadState: Sendable, Equatable {
    public var index: UInt64
    public var context: [UInt8]
}

/// Errors the core reports to the caller. None of them change the core's state.
public enum RaftError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This member is not the leader; `leader` is the one it knows of (0 if none).
    case notLeader(leader: RaftID)
    /// The leader is handing leadership over and accepts no proposals meanwhile.
    case transferInProgress
    /// A membership change is still being applied; changes are made one at a time.
    case confChangeInProgress
    /// The proposal exceeds the configured maximum size.
    case proposalTooLarge(size: Int, limit: Int)
    /// A membership change's bytes could not be decoded.
    case malformedConfChange
    /// The requested log position is no longer available (compacted).
    case compacted
    /// A snapshot or compaction names an index beyond the applied index.
    case snapshotOutOfDate
    /// The membership change is invalid (for example it removes the last voter).
    case invalidConfChange(String)

    public var description: String {
        switch self {
        case .notLeader(let leader):
            return leader == 0 ? "not the leader (no leader known)" : "not the leader (leader is \(leader))"
        case .transferInProgress: return "leadership transfer in progress"
        case .confChangeInProgress: return "a membership change is still pending"
        case .proposalTooLarge(let size, let limit):
            return "proposal of \(size) bytes exceeds the limit of \(limit) bytes"
        case .malformedConfChange: return "malformed membership change"
        case .compacted: return "requested index is compacted"
        case .snapshotOutOfDate: return "snapshot index is out of date"
        case .invalidConfChange(let why): return "invalid membership change: \(why)"
        }
    }
}
