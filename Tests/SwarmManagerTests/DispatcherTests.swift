import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
@testable import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf
import Testing

/// Agents' side of the manager over real gRPC: join tokens, heartbeats, assignments and
/// status updates.
@Suite(.serialized) struct DispatcherTests {
    final class Manager: @unchecked Sendable {
        let node: RaftNode
        let server: GRPCServer<HTTP2ServerTransport.Posix>
        let leader: Task<Void, Never>
        let stateDir = NSTemporaryDirectory() + "swarm-disp-\(UUID().uuidString)"
        var port = 0

        init() async throws {
            var config = RaftNodeConfig(stateDir: stateDir,
                                        advertiseAddr: "127.0.0.1:1")
            config.tickInterval = .milliseconds(10)
            node = try RaftNode(config: config)
            let dispatcher = Dispatcher(node: node)
            server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                                services: [dispatcher],
            interceptorPipeline: LeaderInterceptor.pipeline(node))
            let s = server
            Task { try await s.serve() }
            port = try await server.listeningAddress?.ipv4?.port ?? 0
            node.start()
            let components = LeaderComponents(node: node, plugins: PluginRegistry(), dispatcher: dispatcher)
            leader = Task { await components.run() }
            for await isLeader in node.leadershipChanges() where isLeader { break }
            for _ in 0..<200 where node.store.view().find(SwarmCluster.self).isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            // Short heartbeats so that the test sees a node go down quickly (6 s), with room
            // for a loaded two-core machine: whole-suite runs lost the session to a 1.5 s
            // deadline, and then (with the docker suite beside it) to a 3 s one, while the
            // heartbeats started.
            try await node.store.update { tx in
                var c = tx.find(SwarmCluster.self).first!
                c.spec.dispatcher.heartbeatPeriod = 2_000_000_000
                try tx.update(c)
            }
        }

        var tokens: SwarmJoinTokens { node.store.view().find(SwarmCluster.self).first!.joinTokens }

        func stop() {
            leader.cancel()
            node.stop()
            server.beginGracefulShutdown()
            try? FileManager.default.removeItem(atPath: stateDir)
        }

        func withClient<R: Sendable>(_ body: @Sendable (SwarmDispatcher.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
            let client = GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext))
            return try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.runConnections() }
                defer { client.beginGracefulShutdown(); group.cancelAll() }
                return try await body(SwarmDispatcher.Client(wrapping: client))
            }
        }

        /// Opens a session and returns its first message (the stream is left open in the
        /// background until the task is cancelled).
        func openSession(nodeID: String, token: String, keepAlive: Bool = true) async throws -> (SwarmSessionMessage, Task<Void, any Error>) {
            let (first, firstCont) = AsyncThrowingStream.makeStream(of: SwarmSessionMessage.self)
            let task = Task {
                do {
                    try await withClient { d in
                        try await d.session(.with {
                            $0.nodeID = nodeID
                            $0.joinToken = token
                            $0.description_p.hostname = "host-\(nodeID)"
                        }) { response in
                            for try await m in response.messages { firstCont.yield(m) }
                        }
                    }
                    firstCont.finish()
                } catch {
                    firstCont.finish(throwing: error)
                    throw error
                }
            }
            for try await m in first {
                guard keepAlive else { return (m, task) }
                // Heartbeats in the background, as an agent sends them, until cancelled.
                let session = m.sessionID
                let both = Task<Void, any Error> {
                    let beats = Task {
                        try await withClient { d in
                            while !Task.isCancelled {
                                _ = try await d.heartbeat(.with { $0.nodeID = nodeID; $0.sessionID = session })
                                try await Task.sleep(for: .milliseconds(150))
                            }
                        }
                    }
                    await withTaskCancellationHandler { _ = await task.result } onCancel: { task.cancel(); beats.cancel() }
                }
                return (m, both)
            }
            throw CancellationError()
        }
    }

    @Test func wrongTokenIsRefusedAndNothingIsStored() async throws {
        let m = try await Manager()
        defer { m.stop() }
        do {
            _ = try await m.openSession(nodeID: "intruder", token: "SWMTKN-1-bogus-bogus")
            Issue.record("a bad token was accepted")
        } catch let e as RPCError {
            #expect(e.code == .permissionDenied && e.message == "invalid join token")
        }
        #expect(m.node.store.view().get(SwarmNode.self, id: "intruder") == nil)
    }

    @Test func heartbeatsKeepANodeReadyAndSilenceMarksItDown() async throws {
        let m = try await Manager()
        defer { m.stop() }
        let (session, stream) = try await m.openSession(nodeID: "w1", token: m.tokens.worker, keepAlive: false)
        defer { stream.cancel() }
        #expect(session.heartbeatPeriod == 2_000_000_000 && !session.sessionID.isEmpty)
        let n = m.node.store.view().get(SwarmNode.self, id: "w1")
        #expect(n?.status.state == .ready && n?.role == .worker && n?.description_p.hostname == "host-w1")
        // One connection for all the heartbeats: a reconnect per beat can outlast the
        // deadline on a loaded two-core machine.
        // The deadline runs from when the dispatcher took the last heartbeat, which is
        // after it was sent: the lower bound below is measured from the sending, so that
        // a test descheduled after its last heartbeat cannot make DOWN look early.
        let lastSent = try await m.withClient { d in
            var sent = ContinuousClock.now
            for _ in 0..<8 {
                sent = ContinuousClock.now
                _ = try await d.heartbeat(.with { $0.nodeID = "w1"; $0.sessionID = session.sessionID })
                try await Task.sleep(for: .milliseconds(100))
            }
            return sent
        }
        #expect(m.node.store.view().get(SwarmNode.self, id: "w1")?.status.state == .ready, "still up while heartbeating")
        // Silence: DOWN after period × 3 (6 s), and not before about that.
        let silent = lastSent
        for _ in 0..<240 where m.node.store.view().get(SwarmNode.self, id: "w1")?.status.state != .down {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(m.node.store.view().get(SwarmNode.self, id: "w1")?.status.state == .down, "down after period × 3 without heartbeats")
        #expect(ContinuousClock.now - silent >= .milliseconds(4800), "not down before the deadline")
        let stale = await #expect(throws: RPCError.self) {
            _ = try await m.withClient { try await $0.heartbeat(.with { $0.nodeID = "w1"; $0.sessionID = session.sessionID }) }
        }
        #expect(stale?.code == .notFound)
    }

    @Test func assignmentsStreamAndStatusUpdatesMoveForwardOnly() async throws {
        let m = try await Manager()
        defer { m.stop() }
        let (session, stream) = try await m.openSession(nodeID: "w2", token: m.tokens.worker)
        defer { stream.cancel() }
        let (messages, cont) = AsyncThrowingStream.makeStream(of: SwarmAssignmentsMessage.self)
        let watching = Task {
            try await m.withClient { d in
                try await d.assignments(.with { $0.nodeID = "w2"; $0.sessionID = session.sessionID }) { response in
                    for try await msg in response.messages { cont.yield(msg) }
                }
            }
        }
        defer { watching.cancel() }
        var it = messages.makeAsyncIterator()
        let complete = try await it.next()
        #expect(complete?.type == .complete && complete?.changes.isEmpty == true)
        try await m.node.store.update { tx in
            try tx.create(SwarmTask.with {
                $0.id = "task-1"
                $0.serviceID = "svc"
                $0.nodeID = "w2"
                $0.desiredState = .running
                $0.status.state = .assigned
            })
        }
        let incremental = try await it.next()
        #expect(incremental?.type == .incremental)
        #expect(incremental?.changes.map(\.task.id) == ["task-1"])
        _ = try await m.withClient { d in
            try await d.updateTaskStatus(.with {
                $0.nodeID = "w2"
                $0.sessionID = session.sessionID
                $0.updates = [
                    .with { $0.taskID = "task-1"; $0.status.state = .running; $0.status.pid = 42 },
                    .with { $0.taskID = "task-1"; $0.status.state = .starting },  // stale: ignored
                ]
            })
        }
        let t = m.node.store.view().get(SwarmTask.self, id: "task-1")
        #expect(t?.status.state == .running && t?.status.pid == 42)
        // Stopping the task reaches the node as an update. (The orchestrator also stops it on
        // its own, since its service does not exist; either way it must arrive.)
        try await m.node.store.update { tx in
            var t = tx.get(SwarmTask.self, id: "task-1")!
            if t.desiredState.rawValue < SwarmTaskState.shutdown.rawValue {
                t.desiredState = .shutdown
                try tx.update(t)
            }
        }
        let stop = try await it.next()
        #expect((stop?.changes.first?.task.desiredState.rawValue ?? 0) > SwarmTaskState.running.rawValue)
        #expect(stop?.changes.first?.action == .update)
    }
}
