@testable import SwarmRaft
import Testing

/// Membership changes (thesis §4, one change at a time, effective when applied) and
/// snapshots with log compaction (paper §7).
@Suite struct MembershipSnapshotTests {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Adds a member that starts with empty storage, as a joining manager does.
    static func addJoiner(_ c: inout TestCluster, _ id: RaftID) {
        c.cores[id] = RaftCore(config: RaftConfig(id: id))
    }

    @Test func learnerReceivesTheLogButDoesNotVoteOrCountTowardsQuorum() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        Self.addJoiner(&c, 4)
        try c[1].proposeConfChange(ConfChange(kind: .addLearner, id: 4))
        c.settle()
        try c[1].propose(Self.bytes("x"))
        c.settle()
        #expect(c[4].confState.learners == [4])
        #expect(c.appliedData(4) == [Self.bytes("x")])
        #expect(!c[4].isVoter)
        // With 2 and 3 cut off, the learner must not make a quorum.
        c.cut = [[1, 2], [1, 3]]
        let commit = c[1].commitIndex
        try c[1].propose(Self.bytes("y"))
        c.settle()
        #expect(c[1].commitIndex == commit)
        // A learner never campaigns.
        for _ in 0..<50 { c[4].tick() }
        #expect(c[4].role == .follower)
    }

    @Test func learnerIsPromotedThenCountsTowardsQuorum() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        Self.addJoiner(&c, 4)
        try c[1].proposeConfChange(ConfChange(kind: .addLearner, id: 4))
        c.settle()
        try c[1].proposeConfChange(ConfChange(kind: .addVoter, id: 4))
        c.settle()
        #expect(c[1].confState.voters == [1, 2, 3, 4])
        #expect(c[4].isVoter)
        // Quorum of 4 is 3: with 2 and 3 unreachable, nothing commits; with only 3 cut it does.
        c.cut = [[1, 2], [1, 3]]
        let commit = c[1].commitIndex
        try c[1].propose(Self.bytes("a"))
        c.settle()
        #expect(c[1].commitIndex == commit)
        c.cut = [[1, 3]]
        c.tickAll(2)
        #expect(c[1].commitIndex > commit)
    }

    @Test func onlyOneMembershipChangeAtATime() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(1)  // the first change cannot commit
        try c[1].proposeConfChange(ConfChange(kind: .addLearner, id: 4))
        #expect(throws: RaftError.confChangeInProgress) {
            try c[1].proposeConfChange(ConfChange(kind: .addLearner, id: 5))
        }
    }

    @Test func invalidMembershipChangesAreRefused() {
        var c = TestCluster([1])
        c.campaign(1)
        #expect(throws: RaftError.invalidConfChange("cannot remove the last voter")) {
            try c[1].proposeConfChange(ConfChange(kind: .remove, id: 1))
        }
        #expect(throws: RaftError.invalidConfChange("7 is not a member")) {
            try c[1].proposeConfChange(ConfChange(kind: .remove, id: 7))
        }
        #expect(throws: RaftError.malformedConfChange) { try ConfChange(decoding: [9, 1, 2]) }
    }

    @Test func removedLeaderStepsDownAndTheRestElectANewOne() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        try c[1].proposeConfChange(ConfChange(kind: .remove, id: 1))
        c.settle()
        #expect(c[1].role == .follower)
        #expect(c[2].confState.voters == [2, 3])
        c.cores[1] = nil
        let elected = c.electOther(than: 1)
        let leader = try #require(elected)
        try c[leader].propose(Self.bytes("after"))
        c.settle()
        #expect(c.appliedData(2).last == Self.bytes("after"))
    }

    @Test func laggingFollowerCatchesUpFromASnapshot() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(3)
        for k in 0..<30 { try c[1].propose(Self.bytes("e\(k)")) }
        c.settle()
        // The leader snapshots at its applied index and compacts the whole log.
        let applied = c[1].appliedIndex
        let snap = Snapshot(metadata: SnapshotMetadata(index: applied, term: c[1].log.term(at: applied)!,
                                                       confState: c[1].confState),
                            data: Self.bytes("state@\(applied)"))
        try c[1].compact(snapshot: snap, compactTo: applied)
        #expect(c[1].firstIndex == applied + 1)
        c.heal()
        c.delivered = []
        c.tickAll(3)
        #expect(c.delivered.contains { $0.type == .snapshot && $0.to == 3 })
        #expect(c[3].appliedIndex == c[1].appliedIndex)
        #expect(c[3].lastSnapshot.data == Self.bytes("state@\(applied)"))
        try c[1].propose(Self.bytes("after-snapshot"))
        c.settle()
        #expect(c.appliedData(3).last == Self.bytes("after-snapshot"))
    }

    @Test func compactionBeyondAppliedIsRefused() {
        var c = TestCluster([1])
        c.campaign(1)
        let snap = Snapshot(metadata: SnapshotMetadata(index: c[1].appliedIndex + 5, term: 2))
        #expect(throws: RaftError.snapshotOutOfDate) { try c[1].compact(snapshot: snap, compactTo: 1) }
    }
}
