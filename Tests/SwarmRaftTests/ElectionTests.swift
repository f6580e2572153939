@testable import SwarmRaft
import Testing

/// Leader election (Raft paper §5.2, thesis §9.6 PreVote, §6.2 CheckQuorum).
@Suite struct ElectionTests {
    @Test func singleMemberElectsItselfAndCommits() throws {
        var c = TestCluster([1])
        c.campaign(1)
        #expect(c[1].role == .leader)
        try c[1].propose(Array("x".utf8))
        c.settle()
        #expect(c.appliedData(1) == [Array("x".utf8)])
    }

    @Test func threeMembersElectOneLeader() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        #expect(c[1].role == .leader)
        #expect(c[2].role == .follower && c[2].leader == 1)
        #expect(c[3].role == .follower && c[3].leader == 1)
        #expect(c[1].term == 2)
    }
}
