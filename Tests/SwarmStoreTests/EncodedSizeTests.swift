import Foundation
import SwarmAPI
@testable import SwarmStore
import SwiftProtobuf
import Testing

/// The transaction size limit relies on `encodedSize()`; it must equal the length of the
/// real encoding for every kind of field the store's messages use.
@Suite struct EncodedSizeTests {
    static func expectSameSize<M: SwiftProtobuf.Message>(_ m: M, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let encoded: [UInt8] = try m.serializedBytes()
        #expect(m.encodedSize() == encoded.count, "\(M.self)", sourceLocation: sourceLocation)
    }

    @Test func matchesTheEncodingForEveryFieldKind() throws {
        var task = SwarmTask()
        try Self.expectSameSize(task)  // empty: zero bytes
        task.id = "t-ü-🚀"
        task.slot = 300
        task.desiredState = .running
        task.meta = .with { $0.version = UInt64.max; $0.createdAt = -5; $0.updatedAt = 1_700_000_000_000_000_000 }
        task.status = .with {
            $0.state = .pending
            $0.exitCode = -1
            $0.pid = 70_000
            $0.rejections = ["resources": 3, "constraint": 0, "": 1_000_000]
        }
        task.spec.process.command = "/bin/sleep"
        task.spec.process.args = ["1", "", String(repeating: "x", count: 300)]
        task.spec.resources.reservations.nanoCpus = 1_000_000
        task.spec.resources.reservations.memoryBytes = -1
        task.assignedGpus = [.with { $0.uuid = "GPU-1"; $0.index = 0; $0.milli = 500 }, .with { $0.index = 1 }]
        try Self.expectSameSize(task)
        try Self.expectSameSize(SwarmStoreAction.with { $0.kind = .update; $0.target = .task(task) })

        var service = SwarmService()
        service.id = "s"
        service.spec.annotations.name = "web"
        service.spec.annotations.labels = ["a": "1", "long": String(repeating: "y", count: 200)]
        service.spec.update = .with { $0.maxFailureRatio = 0.25; $0.delay = -3; $0.failureAction = .rollback }
        try Self.expectSameSize(service)

        var secret = SwarmSecret()
        secret.id = "x"
        secret.annotations.name = "key"
        secret.data = Data((0..<70_000).map { UInt8($0 % 256) })
        try Self.expectSameSize(secret)

        try Self.expectSameSize(SwarmRaftConfState.with { $0.voters = [1, 2, 1 << 40, 0]; $0.learners = [] })
    }

    @Test func transactionSizeCountsTheActions() async throws {
        let store = MemoryStore()
        let view = store.view()
        var tx = WriteTx(state: view.state, now: 0)
        try tx.create(Fixtures.task("t1", service: "s", padding: 1000))
        try tx.create(Fixtures.service("s", name: "svc"))
        let encoded = try tx.request.actions.map { try $0.serializedBytes() as [UInt8] }.reduce(0) { $0 + $1.count }
        #expect(tx.byteSize == encoded)
    }
}
