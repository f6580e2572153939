import SwarmAPI
@testable import SwarmStore
import Testing

@Suite struct BatchWatchSnapshotTests {
    typealias F = Fixtures

    @Test func batchSplitsByChangeCount() async throws {
        let store = MemoryStore()
        let transactions = try await store.batch { batch in
            for k in 0..<450 {
                try await batch.update { try $0.create(F.task("t\(k)", service: "s")) }
            }
        }
        #expect(transactions == 3)
        #expect(store.view().count(SwarmTask.self) == 450)
        // Versions show the grouping: 200, 200 and 50 objects per transaction.
        let versions = store.view().find(SwarmTask.self).map(\.meta.version)
        #expect(Dictionary(grouping: versions, by: { $0 }).mapValues(\.count).values.sorted() == [50, 200, 200])
    }

    @Test func batchSplitsByBytes() async throws {
        let store = MemoryStore()
        let transactions = try await store.batch { batch in
            for k in 0..<40 {
                try await batch.update { try $0.create(F.task("t\(k)", service: "s", padding: 100_000)) }
            }
        }
        // 40 × ~100 KB = ~4 MB, so at least three 1.5 MiB transactions.
        #expect(transactions >= 3)
        #expect(store.view().count(SwarmTask.self) == 40)
    }

    @Test func batchUpdateThatThrowsLeavesNothingBehind() async throws {
        let store = MemoryStore()
        try await store.update { try $0.create(F.task("old", service: "s")) }
        struct Refused: Error {}
        let transactions = try await store.batch { batch in
            try await batch.update { try $0.create(F.task("a", service: "s")) }
            // This body changes three objects, two of them twice, then throws: none of its
            // changes may stay.
            await #expect(throws: Refused.self) {
                try await batch.update { tx in
                    try tx.create(F.task("b", service: "s"))
                    var b = try #require(tx.get(SwarmTask.self, id: "b"))
                    b.nodeID = "n8"
                    try tx.update(b)
                    var old = try #require(tx.get(SwarmTask.self, id: "old"))
                    old.nodeID = "n9"
                    try tx.update(old)
                    try tx.delete(SwarmTask.self, id: "a")
                    old = try #require(tx.get(SwarmTask.self, id: "old"))
                    old.desiredState = .shutdown
                    try tx.update(old)
                    throw Refused()
                }
            }
            try await batch.update { try $0.create(F.task("c", service: "s")) }
        }
        #expect(transactions == 1)
        let view = store.view()
        #expect(view.find(SwarmTask.self).map(\.id) == ["a", "c", "old"])
        #expect(view.get(SwarmTask.self, id: "old")?.nodeID == "")
        #expect(view.get(SwarmTask.self, id: "old")?.desiredState == F.task("old", service: "s").desiredState)
        #expect(view.find(SwarmTask.self, .index("node", "n9")).isEmpty)
        #expect(view.find(SwarmTask.self, .index("node", "n8")).isEmpty)
    }

    @Test func batchOverflowReRunsTheBodyOnAFreshTransaction() async throws {
        let store = MemoryStore()
        var runs = 0
        let transactions = try await store.batch { batch in
            for k in 0..<200 { try await batch.update { try $0.create(F.task("t\(k)", service: "s")) } }
            // Two changes: the open transaction would reach 202, so this body is undone
            // there and run again on a fresh one.
            try await batch.update { tx in
                runs += 1
                try tx.create(F.task("x", service: "s"))
                try tx.create(F.task("y", service: "s"))
            }
        }
        #expect(runs == 2)
        #expect(transactions == 2)
        let versions = Dictionary(grouping: store.view().find(SwarmTask.self), by: \.meta.version).mapValues(\.count)
        #expect(versions.values.sorted() == [2, 200])
    }

    @Test func watchDeliversTypedEventsWithOldAndNew() async throws {
        let store = MemoryStore()
        let watcher = store.watch(WatchFilter(tables: [.tasks], commits: true))
        try await store.update { try $0.create(F.task("t1", service: "s1", node: "n1")) }
        var t = try #require(store.view().get(SwarmTask.self, id: "t1"))
        t.desiredState = .shutdown
        try await store.update { try $0.update(t) }
        try await store.update { try $0.delete(SwarmTask.self, id: "t1") }
        try await store.update { try $0.create(F.service("svc", name: "ignored")) }
        var it = watcher.makeAsyncIterator()
        var got: [WatchMessage] = []
        for _ in 0..<7 { if let m = try await it.next() { got.append(m) } }
        guard case .event(let created) = got[0], case .commit(1) = got[1],
              case .event(let updated) = got[2], case .commit(2) = got[3],
              case .event(let deleted) = got[4], case .commit(3) = got[5],
              case .commit(4) = got[6] else {
            Issue.record("unexpected sequence \(got)")
            return
        }
        #expect(created.kind == .created && created.old == nil && created.new?.task?.id == "t1")
        #expect(updated.kind == .updated && updated.old?.task?.desiredState == .running
                && updated.new?.task?.desiredState == .shutdown)
        #expect(deleted.kind == .deleted && deleted.old?.task?.id == "t1" && deleted.new == nil)
        watcher.cancel()
        #expect(store.watcherCount == 0)
    }

    @Test func watchFiltersByServiceAndNode() async throws {
        let store = MemoryStore()
        let byService = store.watch(WatchFilter(serviceID: "s2"))
        let byNode = store.watch(WatchFilter(nodeID: "n1"))
        try await store.update { tx in
            try tx.create(F.task("a", service: "s1", node: "n1"))
            try tx.create(F.task("b", service: "s2", node: "n2"))
        }
        var i1 = byService.makeAsyncIterator()
        var i2 = byNode.makeAsyncIterator()
        let m1 = try await i1.next()
        let m2 = try await i2.next()
        if case .event(let e) = m1 { #expect(e.object.id == "b") } else { Issue.record("no event") }
        if case .event(let e) = m2 { #expect(e.object.id == "a") } else { Issue.record("no event") }
    }

    @Test func slowWatcherIsClosedWithAnErrorNotSilentlyDropped() async throws {
        let store = MemoryStore()
        let watcher = store.watch(WatchFilter(), limit: 5)
        for k in 0..<10 {
            try await store.update { try $0.create(F.task("t\(k)", service: "s")) }
        }
        var it = watcher.makeAsyncIterator()
        await #expect(throws: StoreError.watcherFellBehind(limit: 5)) {
            while try await it.next() != nil {}
        }
        #expect(store.watcherCount == 0)
    }

    @Test func viewAndWatchLosesAndRepeatsNothingUnderConcurrentWrites() async throws {
        let store = MemoryStore()
        let writers = Task {
            for k in 0..<300 {
                try await store.update { try $0.create(F.task("t\(k)", service: "s")) }
            }
        }
        // Join midway.
        while store.view().count(SwarmTask.self) < 50 { await Task.yield() }
        let (snapshot, watcher) = store.viewAndWatch(WatchFilter(tables: [.tasks]))
        try await writers.value
        var ids = Set(snapshot.find(SwarmTask.self).map(\.id))
        var it = watcher.makeAsyncIterator()
        while ids.count < 300 {
            guard case .event(let e)? = try await it.next() else { break }
            #expect(ids.insert(e.object.id).inserted, "event \(e.object.id) repeats the snapshot")
        }
        #expect(ids.count == 300)
    }

    @Test func snapshotRoundTripsAndCorruptBytesAreRefused() async throws {
        let store = MemoryStore()
        try await store.update { tx in
            try tx.create(F.service("s1", name: "web"))
            try tx.create(F.task("t1", service: "s1", node: "n1"))
            try tx.create(F.node("n1", hostname: "alpha"))
        }
        let bytes = try store.serializedSnapshot()
        let copy = MemoryStore()
        let watcher = copy.watch()
        try copy.restore(bytes, version: store.version)
        #expect(copy.snapshot() == store.snapshot())
        #expect(copy.version == store.version)
        #expect(copy.view().find(SwarmTask.self, .node("n1")).map(\.id) == ["t1"])
        var it = watcher.makeAsyncIterator()
        var created = 0
        for _ in 0..<3 { if case .event(let e)? = try await it.next(), e.kind == .created { created += 1 } }
        #expect(created == 3)

        var garbage = bytes
        garbage[garbage.count / 2] ^= 0xFF
        garbage.append(contentsOf: [0xFF, 0xFF, 0xFF])
        #expect(throws: StoreError.self) { try copy.restore(garbage, version: 99) }
        #expect(copy.snapshot() == store.snapshot(), "a failed restore changes nothing")
    }
}
