import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmCA
import SwarmConcurrency
import SwarmRPC
import SwarmRaft
import Synchronization

/// Makes an HTTP/2 gRPC client for `addr`, secured as `security` says.
func makeClient(_ addr: String, _ security: ClientSecurity) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
    guard let (host, port) = NetworkAddress.split(addr) else { throw RaftNodeError.refused("bad address \(addr)") }
    return GRPCClient(transport: try security.transport(host: host, port: port))
}

/// Runs `body` with a Raft transport client connected to `addr`, then closes it.
func withRaftClient<R: Sendable>(_ addr: String, _ security: ClientSecurity,
                                 _ body: (SwarmRaftTransport.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
    guard let (host, port) = NetworkAddress.split(addr) else { throw RaftNodeError.refused("bad address \(addr)") }
    return try await withGRPCClient(transport: try security.transport(host: host, port: port)) {
        try await body(SwarmRaftTransport.Client(wrapping: $0))
    }
}

/// Outgoing traffic to the other members: one sender per peer, each with a long-lived
/// message stream, batching whatever queued up while the previous batch was in flight.
final class RaftPeers: Sendable {
    let selfID: RaftID
    let logger: Logger
    private let senders = Mutex<[RaftID: PeerSender]>([:])
    /// Senders to run, in the order they were made; ``run(node:)`` runs each as a child.
    private let launches: AsyncStream<PeerSender>
    private let launch: AsyncStream<PeerSender>.Continuation

    init(selfID: RaftID, logger: Logger) {
        self.selfID = selfID
        self.logger = logger
        (launches, launch) = AsyncStream.makeStream(of: PeerSender.self)
    }

    /// Runs every sender, those made later included, as child tasks, until ``stop()``;
    /// returns once they have all ended.
    func run(node: RaftNode) async {
        await withDiscardingTaskGroup { group in
            for await sender in launches {
                group.addTask { await sender.serve(node: node) }
            }
        }
    }

    func set(_ peer: RaftID, addr: String) {
        let sender: PeerSender? = senders.withLock { all in
            if let existing = all[peer], existing.addr == addr { return nil }
            all[peer]?.stop()
            let s = PeerSender(peer: peer, addr: addr, from: selfID, logger: logger)
            all[peer] = s
            return s
        }
        if let sender { launch.yield(sender) }
    }

    /// Stops the senders of peers that are no longer members.
    func retain(_ members: Set<RaftID>) {
        senders.withLock { all in
            for (peer, s) in all where !members.contains(peer) {
                s.stop()
                all[peer] = nil
            }
        }
    }

    func send(_ messages: [Message]) {
        guard !messages.isEmpty else { return }
        let all = senders.withLock { $0 }
        for m in messages {
            if let s = all[m.to] { s.enqueue(m) } else { logger.debug("no address for member \(String(m.to, radix: 16)); dropped \(m.type)") }
        }
    }

    func stop() {
        launch.finish()
        senders.withLock { all in
            for s in all.values { s.stop() }
            all = [:]
        }
    }

    /// Whether the last attempt to stream to `peer` succeeded.
    func isReachable(_ peer: RaftID) -> Bool {
        senders.withLock { $0[peer] }?.reachable ?? false
    }
}

/// The sender for one peer.
final class PeerSender: Sendable {
    static let maxQueued = 8192
    static let chunkBytes = 1 << 20
    static let maxBatchBytes = 2 << 20

    let peer: RaftID
    let addr: String
    let from: RaftID
    let logger: Logger
    struct Queue {
        var messages: [Message] = []
        var waiter: CheckedContinuation<Void, Never>?
        var stopped = false
        var reachable = false
    }
    private let queue = Mutex(Queue())
    /// Fired by ``stop()``; ends ``serve(node:)``.
    private let stopSignal = StopSignal()

    init(peer: RaftID, addr: String, from: RaftID, logger: Logger) {
        self.peer = peer
        self.addr = addr
        self.from = from
        self.logger = logger
    }

    func enqueue(_ m: Message) {
        let waiter = queue.withLock { q -> CheckedContinuation<Void, Never>? in
            if q.stopped { return nil }
            // Raft tolerates loss: past the bound, drop (the leader will retry).
            if q.messages.count < Self.maxQueued { q.messages.append(m) }
            defer { q.waiter = nil }
            return q.waiter
        }
        waiter?.resume()
    }

    private func take() async -> [Message]? {
        while true {
            let batch = queue.withLock { q -> [Message]? in
                if q.stopped { return nil }
                defer { q.messages.removeAll(keepingCapacity: true) }
                return q.messages
            }
            guard let batch else { return nil }
            if !batch.isEmpty { return batch }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = queue.withLock { q -> Bool in
                    if !q.messages.isEmpty || q.stopped { return true }
                    q.waiter = c
                    return false
                }
                if ready { c.resume() }
            }
        }
    }

    /// Sends until stopped: the sending loop, cancelled when ``stop()`` is called (which
    /// ends a stream or a connection attempt in flight).
    func serve(node: RaftNode) async { await stopSignal.run { await self.run(node: node) } }

    func stop() {
        let waiter = queue.withLock { q in
            q.stopped = true
            defer { q.waiter = nil }
            return q.waiter
        }
        waiter?.resume()
        stopSignal.fire()
    }

    private var stopped: Bool { queue.withLock { $0.stopped } }
    var reachable: Bool { queue.withLock { $0.reachable } }
    /// Records whether the peer answers, and tells the node when that changes.
    private func markReachable(_ r: Bool, _ node: RaftNode) {
        let changed = queue.withLock { q -> Bool in
            defer { q.reachable = r }
            return q.reachable != r
        }
        if changed { node.peerReachabilityChanged() }
    }

    private func run(node: RaftNode) async {
        while !stopped {
            do {
                let client = try makeClient(addr, node.config.security)
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { try await client.runConnections() }
                    defer { client.beginGracefulShutdown() }
                    let raft = SwarmRaftTransport.Client(wrapping: client)
                    try await raft.streamMessages { writer in
                        while let batch = await self.take() {
                            var plain: [Message] = []
                            for m in batch {
                                if m.type == .snapshot {
                                    await self.sendSnapshot(m, raft: raft, node: node)
                                } else {
                                    plain.append(m)
                                }
                            }
                            // Keep each gRPC message well under the 4 MiB default limit.
                            var wire = SwarmRaftMessageBatch()
                            wire.from = self.from
                            var bytes = 0
                            for m in plain {
                                let size = m.entries.reduce(64) { $0 + $1.byteSize }
                                if !wire.messages.isEmpty && bytes + size > Self.maxBatchBytes {
                                    try await writer.write(wire)
                                    wire.messages.removeAll(keepingCapacity: true)
                                    bytes = 0
                                }
                                wire.messages.append(SwarmRaftMessage(m))
                                bytes += size
                            }
                            if !wire.messages.isEmpty { try await writer.write(wire) }
                            self.markReachable(true, node)
                        }
                    } onResponse: { response in
                        for try await _ in response.messages {}
                    }
                }
            } catch let e as RPCError where e.code == .permissionDenied && e.message == RaftService.removedMessage(from) {
                // The cluster removed this member while it was not listening: stop for good.
                logger.notice("\(e.message)")
                node.markRemoved()
                return
            } catch {
                if stopped { return }
                markReachable(false, node)
                logger.debug("stream to \(String(peer, radix: 16)) at \(addr) failed: \(error)")
                node.reportUnreachable(peer)
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Streams a snapshot in chunks, then tells the node how it went.
    private func sendSnapshot(_ m: Message, raft: SwarmRaftTransport.Client<HTTP2ClientTransport.Posix>, node: RaftNode) async {
        guard let snap = m.snapshot else { return }
        do {
            let ack = try await raft.sendSnapshot { writer in
                let data = snap.data
                var header = SwarmSnapshotChunk()
                header.message = SwarmRaftMessage(m)
                var offset = 0
                repeat {
                    let end = min(offset + Self.chunkBytes, data.count)
                    var chunk = offset == 0 ? header : SwarmSnapshotChunk()
                    chunk.offset = UInt64(offset)
                    chunk.data = Data(data[offset..<end])
                    if end == data.count {
                        chunk.last = true
                        chunk.totalSize = UInt64(data.count)
                        chunk.crc32C = CRC32C.checksum(data)
                    }
                    try await writer.write(chunk)
                    offset = end
                } while offset < data.count
            }
            node.reportSnapshot(peer, success: ack.applied)
            if !ack.applied { logger.warning("snapshot to \(String(peer, radix: 16)) refused: \(ack.error)") }
        } catch {
            logger.warning("snapshot to \(String(peer, radix: 16)) failed: \(error)")
            node.reportSnapshot(peer, success: false)
        }
    }
}
