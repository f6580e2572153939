@testable import SwarmRaft
import Testing

/// Leadership transfer (thesis §3.10) and ReadIndex (thesis §6.4).
@Suite struct TransferReadTests {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func leadershipMovesToAnUpToDateFollower() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c[1].transferLeadership(to: 3)
        c.settle()
        #expect(c[3].role == .leader)
        #expect(c[1].role == .follower && c[1].leader == 3)
    }

    @Test func laggingTransfereeIsCaughtUpFirst() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(3)
        for k in 0..<5 { try c[1].propose(Self.bytes("e\(k)")) }
        c.settle()
        c.heal()
        c[1].transferLeadership(to: 3)
        #expect(throws: RaftError.transferInProgress) { try c[1].propose(Self.bytes("blocked")) }
        c.settle()
        #expect(c[3].role == .leader)
        #expect(c.appliedData(3).count == 5)
    }

    @Test func transferToUnreachableMemberTimesOut() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(3)
        c[1].transferLeadership(to: 3)
        c.settle()
        #expect(c[1].transferee == 3)
        for _ in 0..<c[1].config.electionTick { c[1].tick(); c[2].tick(); c.settle() }
        #expect(c[1].transferee == 0)
        #expect(c[1].role == .leader)
        try c[1].propose(Self.bytes("accepted again"))
    }

    @Test func leaderServesReadIndexAfterQuorumConfirms() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c[1].readIndex(context: Self.bytes("r1"))
        c.settle()
        let states = c.readStates[1] ?? []
        #expect(states == [ReadState(index: c[1].commitIndex, context: Self.bytes("r1"))])
    }

    @Test func followerReadIndexIsAnsweredByTheLeader() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c[2].readIndex(context: Self.bytes("f1"))
        c.settle()
        #expect(c.readStates[2]?.first?.context == Self.bytes("f1"))
        #expect(c.readStates[2]?.first?.index == c[1].commitIndex)
    }

    @Test func isolatedLeaderCannotServeReads() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(1)
        c[1].readIndex(context: Self.bytes("stale?"))
        c.settle()
        #expect((c.readStates[1] ?? []).isEmpty)
    }

    @Test func readsWaitForTheLeaderToCommitInItsTerm() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        // Block acknowledgements so that the new leader's empty entry stays uncommitted.
        c.cut = [[2, 1], [3, 1]]
        c[1].becomeCandidate()
        c[1].becomeLeader()
        c[1].readIndex(context: Self.bytes("early"))
        c.settle()
        #expect((c.readStates[1] ?? []).isEmpty)
        #expect(c[1].readsAwaitingCommit.count == 1)
    }
}
