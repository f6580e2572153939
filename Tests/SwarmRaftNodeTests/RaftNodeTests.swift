import Foundation
import SwarmAPI
import SwarmRaft
@testable import SwarmRaftNode
import SwarmStore
import SwiftProtobuf
import Testing

/// A single manager is a one-member Raft cluster: store writes go through the log, are
/// fsynced and applied, and survive a restart.
@Suite struct RaftNodeTests {
    static func config() -> RaftNodeConfig {
        var c = RaftNodeConfig(stateDir: NSTemporaryDirectory() + "swarm-node-\(UUID().uuidString)",
                               advertiseAddr: "127.0.0.1:1")
        c.tickInterval = .milliseconds(10)
        return c
    }

    static func service(_ id: String, _ name: String) -> SwarmService {
        var s = SwarmService()
        s.id = id
        s.spec.annotations.name = name
        return s
    }

    static func waitForLeadership(_ node: RaftNode) async throws {
        for await isLeader in node.leadershipChanges() where isLeader { return }
        Issue.record("leadership stream ended")
    }

    @Test func storeWritesGoThroughTheLogAndSurviveRestart() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        do {
            let node = try RaftNode(config: config)
            node.start()
            try await Self.waitForLeadership(node)
            try await node.store.update { try $0.create(Self.service("s1", "web")) }
            let index = node.store.view().get(SwarmService.self, id: "s1")?.meta.version ?? 0
            #expect(index > 1, "the version is the Raft index of the entry")
            #expect(node.status.applied >= index)
            node.stop()
        }
        let restarted = try RaftNode(config: config)
        #expect(restarted.store.view().get(SwarmService.self, id: "s1") == nil,
                "nothing is applied before the loop starts")
        restarted.start()
        try await Self.waitForLeadership(restarted)
        #expect(restarted.store.view().get(SwarmService.self, id: "s1")?.spec.annotations.name == "web")
        restarted.stop()
    }

    /// Leader-only work starts on a store that holds the whole log: the stream says true
    /// only once the member's own term's first entry, and so everything before it, is
    /// applied.
    @Test func leadershipIsSignalledOnceTheLogIsApplied() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        do {
            let node = try RaftNode(config: config)
            node.start()
            try await Self.waitForLeadership(node)
            for k in 0..<20 { try await node.store.update { try $0.create(Self.service("s\(k)", "web-\(k)")) } }
            node.stop()
        }
        let restarted = try RaftNode(config: config)
        restarted.start()
        defer { restarted.stop() }
        for await isLeader in restarted.leadershipChanges() where isLeader {
            let s = restarted.status
            #expect(s.role == .leader)
            #expect(s.applied >= s.lastIndex && s.applied >= s.commit, "applied \(s.applied), last \(s.lastIndex), commit \(s.commit)")
            #expect(restarted.store.view().find(SwarmService.self).count == 20)
            return
        }
        Issue.record("leadership stream ended")
    }

    @Test func conflictingConcurrentUpdatesFailCleanly() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        let node = try RaftNode(config: config)
        node.start()
        try await Self.waitForLeadership(node)
        try await node.store.update { try $0.create(Self.service("s1", "web")) }
        let read = try #require(node.store.view().get(SwarmService.self, id: "s1"))
        var a = read
        a.spec.annotations.labels["by"] = "a"
        var b = read
        b.spec.annotations.labels["by"] = "b"
        let store = node.store
        let ta = Task { try await store.update { try $0.update(a) } }
        let tb = Task { try await store.update { try $0.update(b) } }
        let results = [await ta.result, await tb.result]
        #expect(results.filter { (try? $0.get()) != nil }.count == 1, "exactly one update wins")
        let failure = results.compactMap { r -> (any Error)? in
            if case .failure(let e) = r { return e } else { return nil }
        }.first
        #expect(failure as? StoreError == .sequenceConflict(.services, id: "s1", expected: read.meta.version,
                                                             actual: node.store.view().get(SwarmService.self, id: "s1")!.meta.version))
        node.stop()
    }

    @Test func stoppingEndsLeadershipStreamsThatAreStillBeingRead() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        let node = try RaftNode(config: config)
        node.start()
        let follower = Task {
            var changes: [Bool] = []
            for await isLeader in node.leadershipChanges() { changes.append(isLeader) }
            return changes
        }
        try await Self.waitForLeadership(node)
        node.stop()
        let seen = await follower.value
        #expect(seen.contains(true), "the stream reported leadership, then ended when the node stopped")
    }

    /// Raft takes one membership change at a time; changes asked for together (two managers
    /// joining at once, or a join while a learner is being promoted) wait their turn
    /// instead of failing with "a membership change is still pending".
    @Test func membershipChangesAskedForTogetherAreAllApplied() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        let node = try RaftNode(config: config)
        node.start()
        defer { node.stop() }
        try await Self.waitForLeadership(node)
        let ids: [RaftID] = [0xA1, 0xA2, 0xA3]
        try await withThrowingTaskGroup(of: UInt64.self) { group in
            for id in ids {
                var member = SwarmRaftMember()
                member.raftID = id
                member.addr = "127.0.0.1:1"
                member.nodeID = "joiner-\(id)"
                let change = ConfChange(kind: .addLearner, id: id, context: try member.serializedBytes())
                group.addTask { try await node.proposeConfChange(change) }
            }
            var applied: [UInt64] = []
            for try await index in group { applied.append(index) }
            #expect(Set(applied).count == ids.count, "each change has its own log entry: \(applied)")
        }
        let members = node.status.members
        #expect(ids.allSatisfy { members[$0] != nil }, "\(members.keys.map { String($0, radix: 16) })")
    }

    @Test func proposalsOnAStoppedNodeFail() async throws {
        let config = Self.config()
        defer { try? FileManager.default.removeItem(atPath: config.stateDir) }
        let node = try RaftNode(config: config)
        node.start()
        try await Self.waitForLeadership(node)
        node.stop()
        await #expect(throws: RaftNodeError.stopped) {
            try await node.store.update { try $0.create(Self.service("s2", "late")) }
        }
    }
}

