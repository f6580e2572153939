@testable import SwarmRaft
import Testing

/// Leader election: Raft paper §5.2 and §5.4.1, PreVote and CheckQuorum (thesis §9.6, §6.2).
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

    @Test func electionTimeoutIsRandomizedWithinBounds() {
        for seed in UInt64(1)...50 {
            var config = RaftConfig(id: 1, seed: seed)
            config.electionTick = 10
            var core = RaftCore(config: config, bootstrap: [1, 2, 3])
            core.advance(core.ready())  // applies the bootstrap membership
            var ticks = 0
            while core.role == .follower && ticks < 100 {
                core.tick()
                ticks += 1
            }
            #expect(ticks >= 10 && ticks < 20, "seed \(seed) campaigned after \(ticks) ticks")
        }
    }

    @Test func votesAtMostOncePerTerm() {
        var c = TestCluster([1, 2, 3], preVote: false, checkQuorum: false)
        var follower = c[3]
        follower.step(Message(type: .vote, to: 3, from: 1, term: 5, logTerm: 1, index: 3))
        follower.step(Message(type: .vote, to: 3, from: 2, term: 5, logTerm: 1, index: 3))
        let responses = follower.ready().messages.filter { $0.type == .voteResponse }
        #expect(responses.count == 2)
        #expect(responses[0].to == 1 && !responses[0].reject)
        #expect(responses[1].to == 2 && responses[1].reject)
        #expect(follower.vote == 1)
        c[3] = follower
    }

    @Test func candidateWithStaleLogCannotWin() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        try c[1].propose(Array("a".utf8))
        // Node 3 misses the entry.
        c.isolate(3)
        c.settle()
        c.heal()
        #expect(c[3].lastIndex < c[1].lastIndex)
        // 3 campaigns; 1 and 2 refuse because 3's log is behind (§5.4.1).
        c.isolate(1)
        c.cut.remove([3, 2]); c.cut.remove([2, 3])
        c.tickAll(25)
        #expect(c[3].role != .leader)
        #expect(c[2].role == .leader, "the up-to-date member wins instead")
    }

    @Test func preVoteKeepsPartitionedMemberFromRaisingTerm() throws {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        let term = c[1].term
        c.isolate(3)
        for _ in 0..<100 { c[3].tick(); c.settle() }
        #expect(c[3].term == term, "pre-vote must not bump the term of an isolated member")
        c.heal()
        c.tickAll(5)
        #expect(c[1].role == .leader && c[1].term == term, "rejoining must not disrupt the leader")
    }

    @Test func withoutPreVoteAPartitionedMemberDisruptsOnReturn() {
        var c = TestCluster([1, 2, 3], preVote: false, checkQuorum: false)
        c.campaign(1)
        let term = c[1].term
        c.isolate(3)
        for _ in 0..<100 { c[3].tick(); c.settle() }
        #expect(c[3].term > term)
        c.heal()
        c.tickAll(25)
        #expect(c[1].term > term, "the control case: the stale term spreads without pre-vote")
    }

    @Test func checkQuorumMakesIsolatedLeaderStepDown() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        c.isolate(1)
        for _ in 0..<(2 * c[1].config.electionTick) { c[1].tick(); c.settle() }
        #expect(c[1].role == .follower)
    }

    @Test func leaseMakesFollowersIgnoreVotesWhileLeaderIsAlive() {
        var c = TestCluster([1, 2, 3])
        c.campaign(1)
        var follower = c[2]
        let term = follower.term
        follower.step(Message(type: .vote, to: 2, from: 3, term: term + 1, logTerm: 10, index: 100))
        #expect(follower.term == term)
        let rd = follower.ready()
        #expect(rd.messages.isEmpty)
        #expect(rd.notices.contains { $0.contains("lease") })
    }

    @Test func nonVoterCannotRequestVotes() {
        var c = TestCluster([1, 2, 3])
        var follower = c[2]
        follower.step(Message(type: .vote, to: 2, from: 9, term: 50, logTerm: 50, index: 50))
        let rd = follower.ready()
        #expect(!rd.messages.contains { $0.type == .voteResponse && !$0.reject })
        #expect(follower.vote != 9)
        c[2] = follower
    }
}
