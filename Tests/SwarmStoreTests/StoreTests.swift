import SwarmAPI
@testable import SwarmStore
import Testing

@Suite struct StoreTests {
    typealias F = Fixtures

    @Test func createAssignsVersionAndTimestamps() async throws {
        let clock = F.Clock()
        let store = MemoryStore(clock: { clock.read() })
        try await store.update { try $0.create(F.service("s1", name: "web")) }
        let s = try #require(store.view().get(SwarmService.self, id: "s1"))
        #expect(s.meta.version == 1)
        #expect(s.meta.createdAt == 2_000_000_000 && s.meta.updatedAt == 2_000_000_000)
        var changed = s
        changed.spec.annotations.labels["tier"] = "front"
        try await store.update { try $0.update(changed) }
        let after = try #require(store.view().get(SwarmService.self, id: "s1"))
        #expect(after.meta.version == 2)
        #expect(after.meta.createdAt == 2_000_000_000)
        #expect(after.meta.updatedAt == 3_000_000_000)
    }

    @Test func namesAreUniqueCaseInsensitivelyAndNothingIsStoredOnConflict() async throws {
        let store = MemoryStore()
        try await store.update { try $0.create(F.service("s1", name: "web")) }
        await #expect(throws: StoreError.nameConflict(.services, name: "WEB")) {
            try await store.update { tx in
                try tx.create(F.service("s2", name: "api"))
                try tx.create(F.service("s3", name: "WEB"))
            }
        }
        #expect(store.view().count(SwarmService.self) == 1)
        await #expect(throws: StoreError.exists(.services, id: "s1")) {
            try await store.update { try $0.create(F.service("s1", name: "other")) }
        }
        await #expect(throws: StoreError.invalidObject("service s9 has an empty name")) {
            try await store.update { try $0.create(F.service("s9", name: "")) }
        }
    }

    @Test func updateSeesItsOwnWrites() async throws {
        let store = MemoryStore()
        let seen = try await store.update { tx -> Int in
            try tx.create(F.task("t1", service: "s1"))
            try tx.create(F.task("t2", service: "s1"))
            return tx.find(SwarmTask.self, .service("s1")).count
        }
        #expect(seen == 2)
    }

    @Test func transactionReadsMergeItsWritesOverTheSnapshot() async throws {
        let store = MemoryStore()
        try await store.update { tx in
            try tx.create(F.task("t1", service: "s1", node: "n1"))
            try tx.create(F.task("t2", service: "s1", node: "n1"))
            try tx.create(F.task("t3", service: "s2", node: "n2"))
            try tx.create(F.service("a", name: "web"))
        }
        try await store.update { tx in
            // Move t1 to n2, delete t2, add t4 on n1: the node index inside the
            // transaction must show the moves, and the snapshot must not.
            var t1 = try #require(tx.get(SwarmTask.self, id: "t1"))
            t1.nodeID = "n2"
            try tx.update(t1)
            try tx.delete(SwarmTask.self, id: "t2")
            try tx.create(F.task("t4", service: "s1", node: "n1"))
            #expect(tx.find(SwarmTask.self, .node("n1")).map(\.id) == ["t4"])
            #expect(tx.find(SwarmTask.self, .node("n2")).map(\.id) == ["t1", "t3"])
            #expect(tx.find(SwarmTask.self).map(\.id) == ["t1", "t3", "t4"])
            #expect(tx.get(SwarmTask.self, id: "t2") == nil)
            #expect(tx.find(SwarmTask.self, .idPrefix("t4")).map(\.id) == ["t4"])
            // A name freed in the transaction can be taken in it; a name taken in it cannot.
            var web = try #require(tx.get(SwarmService.self, id: "a"))
            web.spec.annotations.name = "api"
            try tx.update(web)
            try tx.create(F.service("b", name: "WEB"))
            #expect(throws: StoreError.nameConflict(.services, name: "Api")) { try tx.create(F.service("c", name: "Api")) }
            #expect(tx.find(SwarmService.self, .name("web")).map(\.id) == ["b"])
        }
        let v = store.view()
        #expect(v.find(SwarmTask.self, .node("n1")).map(\.id) == ["t4"])
        #expect(v.find(SwarmService.self, .name("api")).map(\.id) == ["a"])
        #expect(v.find(SwarmService.self, .name("web")).map(\.id) == ["b"])
    }

    @Test func staleUpdateFailsWithSequenceConflictAndNothingIsHalfApplied() async throws {
        let store = MemoryStore()
        try await store.update { tx in
            try tx.create(F.task("t1", service: "s1"))
            try tx.create(F.task("t2", service: "s1"))
        }
        let read = store.view()
        var t1 = try #require(read.get(SwarmTask.self, id: "t1"))
        var t2 = try #require(read.get(SwarmTask.self, id: "t2"))
        // Someone else changes t2 first.
        var other = t2
        other.nodeID = "n9"
        try await store.update { try $0.update(other) }
        // A transaction built on the old read changes t1 and t2.
        t1.nodeID = "n1"
        t2.nodeID = "n1"
        var tx: WriteTx? = WriteTx(state: read.state, now: 0)
        try tx!.update(t1)
        try tx!.update(t2)
        await #expect(throws: StoreError.sequenceConflict(.tasks, id: "t2", expected: 1, actual: 2)) {
            try await store.commit(&tx)
        }
        #expect(store.view().get(SwarmTask.self, id: "t1")?.nodeID == "")
        #expect(store.view().get(SwarmTask.self, id: "t2")?.nodeID == "n9")
        #expect(store.view().find(SwarmTask.self, .node("n1")).isEmpty)
    }

    @Test func secondaryIndexesFollowUpdatesAndDeletes() async throws {
        let store = MemoryStore()
        try await store.update { tx in
            try tx.create(F.task("t1", service: "s1", node: "n1", slot: 1))
            try tx.create(F.task("t2", service: "s1", node: "n2", slot: 2))
            try tx.create(F.task("t3", service: "s2", node: "n1", slot: 1, desired: .shutdown))
            try tx.create(F.node("n1", hostname: "alpha", role: .manager))
            try tx.create(F.node("n2", hostname: "beta", availability: .drain))
        }
        let v = store.view()
        #expect(v.find(SwarmTask.self, .service("s1")).map(\.id) == ["t1", "t2"])
        #expect(v.find(SwarmTask.self, .node("n1")).map(\.id) == ["t1", "t3"])
        #expect(v.find(SwarmTask.self, .slot("s1", 2)).map(\.id) == ["t2"])
        #expect(v.find(SwarmTask.self, .desiredState(.shutdown)).map(\.id) == ["t3"])
        #expect(v.find(SwarmNode.self, .role(.manager)).map(\.id) == ["n1"])
        #expect(v.find(SwarmNode.self, .availability(.drain)).map(\.id) == ["n2"])

        var moved = try #require(v.get(SwarmTask.self, id: "t1"))
        moved.nodeID = "n2"
        try await store.update { tx in
            try tx.update(moved)
            try tx.delete(SwarmTask.self, id: "t3")
        }
        let w = store.view()
        #expect(w.find(SwarmTask.self, .node("n1")).isEmpty)
        #expect(w.find(SwarmTask.self, .node("n2")).map(\.id) == ["t1", "t2"])
        #expect(w.find(SwarmTask.self, .desiredState(.shutdown)).isEmpty)
        // The old view is untouched.
        #expect(v.find(SwarmTask.self, .node("n1")).map(\.id) == ["t1", "t3"])
    }

    @Test func lookupByIDOrNamePrefixReportsAmbiguity() async throws {
        let store = MemoryStore()
        try await store.update { tx in
            try tx.create(F.service("abc123", name: "frontend"))
            try tx.create(F.service("abd456", name: "backend"))
            try tx.create(F.node("n1", hostname: "worker-1"))
            try tx.create(F.node("n2", hostname: "worker-2"))
        }
        let v = store.view()
        #expect(try v.lookup(SwarmService.self, "abc").id == "abc123")
        #expect(try v.lookup(SwarmService.self, "front").id == "abc123")
        #expect(try v.lookup(SwarmService.self, "BACKEND").id == "abd456")
        #expect(throws: StoreError.ambiguous(.services, "ab", matches: 2)) { try v.lookup(SwarmService.self, "ab") }
        #expect(throws: StoreError.noMatch(.services, "zzz")) { try v.lookup(SwarmService.self, "zzz") }
        #expect(try v.lookup(SwarmNode.self, "worker-2").id == "n2")
        #expect(throws: StoreError.ambiguous(.nodes, "worker", matches: 2)) { try v.lookup(SwarmNode.self, "worker") }
    }

    @Test func readViewIsStableWhileWritesContinue() async throws {
        let store = MemoryStore()
        try await store.update { try $0.create(F.task("t0", service: "s")) }
        let before = store.view()
        for k in 1...100 {
            try await store.update { try $0.create(F.task("t\(k)", service: "s")) }
        }
        #expect(before.count(SwarmTask.self) == 1)
        #expect(before.version == 1)
        #expect(store.view().count(SwarmTask.self) == 101)
    }

    @Test func deleteThenRecreateInOneTransactionReplacesTheObject() async throws {
        let store = MemoryStore()
        try await store.update { try $0.create(F.service("s1", name: "web")) }
        try await store.update { tx in
            try tx.delete(SwarmService.self, id: "s1")
            try tx.create(F.service("s1", name: "web2"))
        }
        #expect(store.view().get(SwarmService.self, id: "s1")?.spec.annotations.name == "web2")
        #expect(store.view().find(SwarmService.self, .name("web")).isEmpty)
    }

    @Test func applyingTheSameRejectedTransactionFailsIdenticallyEverywhere() async throws {
        let a = MemoryStore()
        let b = MemoryStore()
        var request = SwarmInternalRaftRequest()
        var create = SwarmStoreAction()
        create.kind = .create
        create.target = .service(F.service("s1", name: "web"))
        var dup = SwarmStoreAction()
        dup.kind = .create
        dup.target = .service(F.service("s2", name: "web"))
        request.actions = [create, dup]
        let ra = a.apply(request, index: 7)
        let rb = b.apply(request, index: 7)
        #expect(throws: StoreError.nameConflict(.services, name: "web")) { try ra.get() }
        #expect(throws: StoreError.nameConflict(.services, name: "web")) { try rb.get() }
        #expect(a.view().count(SwarmService.self) == 0 && a.version == 7)
    }
}
