@testable import SwarmRaft
import Testing

/// Log replication and commitment: Raft paper §5.3, §5.4.2, §5.5; flow control.
@Suite struct ReplicationTests {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func proposalsCommitAndApplyEverywhereInOrder() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        for k in 0..<20 { try c[1].propose(Self.bytes("v\(k)")) }
        c.settle()
        let expected = (0..<20).map { Self.bytes("v\($0)") }
        for id: RaftID in [1, 2, 3] {
            #expect(c.appliedData(id) == expected, "member \(id)")
        }
        #expect(c[2].commitIndex == c[1].commitIndex)
    }

    @Test func followerCannotProposeAndNamesTheLeader() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        #expect(throws: RaftError.notLeader(leader: 1)) { try c[2].propose(Self.bytes("x")) }
    }

    @Test func tooLargeProposalIsRefusedAndNothingIsAppended() {
        var c = TestCluster([1, 2, 3]) { $0.maxProposalBytes = 100 }
        c.campaign(1)
        let last = c[1].lastIndex
        #expect(throws: RaftError.proposalTooLarge(size: 101, limit: 100)) {
            try c[1].propose([UInt8](repeating: 0, count: 101))
        }
        #expect(c[1].lastIndex == last)
    }

    @Test func conflictingUncommittedEntriesAreReplaced() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        try c[1].propose(Self.bytes("committed"))
        c.settle()
        // The old leader appends entries that never reach anyone.
        c.isolate(1)
        try c[1].propose(Self.bytes("lost-1"))
        try c[1].propose(Self.bytes("lost-2"))
        c.settle()
        // A new leader commits different entries at the same indexes.
        let elected = c.electOther(than: 1)
        let newLeader = try #require(elected)
        try c[newLeader].propose(Self.bytes("new-1"))
        c.settle()
        c.heal()
        c.tickAll(3)
        #expect(c[1].role == .follower)
        let data = c.appliedData(1)
        #expect(data.contains(Self.bytes("new-1")))
        #expect(!data.contains(Self.bytes("lost-1")) && !data.contains(Self.bytes("lost-2")))
        #expect(c.appliedData(1) == c.appliedData(newLeader))
    }

    @Test func fastBacktrackingSkipsAWholeConflictingTermAtOnce() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(1)
        for k in 0..<50 { try c[1].propose(Self.bytes("stale\(k)")) }
        c.settle()
        let elected = c.electOther(than: 1)
        let newLeader = try #require(elected)
        for k in 0..<50 { try c[newLeader].propose(Self.bytes("fresh\(k)")) }
        c.settle()
        c.heal()
        c.delivered = []
        c.tickAll(2)
        let rejections = c.delivered.filter { $0.type == .appendResponse && $0.reject && $0.from == 1 }
        #expect(c[1].lastIndex == c[newLeader].lastIndex)
        #expect(rejections.count <= 2, "one rejection per conflicting term, not per entry (got \(rejections.count))")
    }

    @Test func inflightWindowBoundsUnacknowledgedAppends() throws {
        var c = TestCluster([1, 2]) {
            $0.maxInflightMessages = 3
            $0.maxSizePerMessage = 1
        }
        c.campaign(1)
        c.cut.insert([2, 1])  // responses are lost, so nothing is acknowledged
        c.delivered = []
        for k in 0..<10 { try c[1].propose(Self.bytes("e\(k)")) }
        c.settle()
        let appends = c.delivered.filter { $0.type == .append && $0.to == 2 && !$0.entries.isEmpty }
        #expect(appends.count == 3)
        c.cut = []
        c.tickAll(5)
        #expect(c.appliedData(2).count == 10)
    }

    /// §5.4.2 (Figure 8): a leader never commits an entry of an earlier term by counting
    /// replicas; only an entry of its own term commits, and earlier ones with it.
    @Test func entriesFromEarlierTermsCommitOnlyThroughCurrentTerm() {
        let conf = ConfState(voters: [1, 2, 3])
        let recovered = RecoveredState(
            hardState: HardState(term: 2, vote: 1, commit: 1),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 1, term: 1, confState: conf)),
            entries: [Entry(term: 2, index: 2, data: Self.bytes("old"))])
        var core = RaftCore(config: RaftConfig(id: 1), recovered: recovered)
        core.advance(core.ready())
        core.becomeCandidate()
        core.becomeLeader()  // term 3, appends an empty entry at index 3
        core.advance(core.ready())
        #expect(core.term == 3 && core.lastIndex == 3)
        // Follower 2 acknowledges the old entry only: a majority holds index 2, yet it is
        // from term 2 and must not commit.
        core.step(Message(type: .appendResponse, to: 1, from: 2, term: 3, index: 2))
        #expect(core.commitIndex == 1)
        core.step(Message(type: .appendResponse, to: 1, from: 2, term: 3, index: 3))
        #expect(core.commitIndex == 3)
    }

    @Test func restartRecoversTermVoteAndLog() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        try c[1].propose(Self.bytes("durable"))
        c.settle()
        let old = c[2]
        let recovered = RecoveredState(hardState: old.hardState, snapshot: old.lastSnapshot,
                                       entries: try old.log.slice(from: old.firstIndex, to: old.lastIndex + 1))
        var restarted = RaftCore(config: old.config, recovered: recovered)
        #expect(restarted.term == old.term && restarted.vote == old.vote)
        #expect(restarted.lastIndex == old.lastIndex)
        let rd = restarted.ready()
        #expect(rd.committedEntries.contains { $0.data == Self.bytes("durable") },
                "committed entries are handed out again to rebuild the state machine")
    }

    @Test func staleTermMessagesAreIgnoredAndReported() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        var f = c[2]
        let before = f.hardState
        f.step(Message(type: .voteResponse, to: 2, from: 3, term: 1))
        let rd = f.ready()
        #expect(f.hardState == before)
        #expect(rd.notices.contains { $0.contains("stale term") })
    }

    @Test func responsesFromUnknownMembersAreIgnored() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        var leader = c[1]
        leader.step(Message(type: .appendResponse, to: 1, from: 42, term: leader.term, index: 100))
        let rd = leader.ready()
        #expect(rd.notices.contains { $0.contains("unknown member 42") })
        #expect(leader.commitIndex == c[1].commitIndex)
    }
}
