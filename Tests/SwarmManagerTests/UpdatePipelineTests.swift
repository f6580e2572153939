import Foundation
import SwarmAPI
@testable import SwarmManager
import SwarmStore
import SwiftProtobuf
import Testing

/// The scheduler's commit pipeline writes in order, one transaction per chunk, and reports
/// the updates it had to skip so that the scheduler can give back what it accounted.
@Suite struct UpdatePipelineTests {
    static func pending(_ id: String) -> SwarmTask {
        SwarmTask.with {
            $0.id = id
            $0.serviceID = "svc"
            $0.desiredState = .running
            $0.status.state = .pending
        }
    }

    @Test func commitsInChunksAndReportsTasksThatChangedMeanwhile() async throws {
        let store = MemoryStore()
        try await store.update { tx in for k in 0..<5 { try tx.create(Self.pending("t\(k)")) } }
        let read = store.view().all(SwarmTask.self).sorted { $0.id < $1.id }
        // t2 changes after the scheduler read it; t4 is removed.
        var t2 = read[2]
        t2.status.message = "changed elsewhere"
        try await store.update { try $0.update(t2) }
        try await store.update { try $0.delete(SwarmTask.self, id: "t4") }

        var pipeline = UpdatePipeline(store: store, chunkSize: 2)
        for var t in read {
            t.nodeID = "n1"
            t.status.state = .assigned
            pipeline.add(t)
        }
        let outcome = await pipeline.finish()
        #expect(outcome.failure == nil)
        #expect(outcome.skipped.map(\.id) == ["t2", "t4"])
        let after = Dictionary(uniqueKeysWithValues: store.view().all(SwarmTask.self).map { ($0.id, $0) })
        #expect(["t0", "t1", "t3"].allSatisfy { after[$0]?.nodeID == "n1" && after[$0]?.status.state == .assigned })
        #expect(after["t2"]?.nodeID == "" && after["t2"]?.status.message == "changed elsewhere")
        #expect(after["t4"] == nil)
        // Three chunks of at most two: t0+t1, t2+t3 (t2 skipped), t4 (skipped, nothing to write).
        let versions = Set(["t0", "t1", "t3"].compactMap { after[$0]?.meta.version })
        #expect(versions.count == 2)
        #expect(pipeline.assignments.count == 5)
    }

    @Test func chunksStartSmallAndDoubleUpToAFullTransaction() async throws {
        let store = MemoryStore()
        try await store.update { tx in for k in 0..<20 { try tx.create(Self.pending(String(format: "t%02d", k))) } }
        var pipeline = UpdatePipeline(store: store, chunkSize: 8, firstChunk: 1)
        for var t in store.view().all(SwarmTask.self).sorted(by: { $0.id < $1.id }) {
            t.nodeID = "n1"
            pipeline.add(t)
        }
        let outcome = await pipeline.finish()
        #expect(outcome.failure == nil && outcome.skipped.isEmpty)
        // One transaction (one version) per chunk, in the order the updates were added.
        let tasks = store.view().all(SwarmTask.self).sorted { $0.id < $1.id }
        #expect(tasks.allSatisfy { $0.nodeID == "n1" })
        var sizes: [Int] = []
        var last: UInt64?
        for t in tasks {
            if t.meta.version == last { sizes[sizes.count - 1] += 1 } else { sizes.append(1) }
            last = t.meta.version
        }
        #expect(sizes == [1, 2, 4, 8, 5])
    }
}
