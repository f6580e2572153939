import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SwarmAPI
import SwarmRaft
import SwarmRaftNode
import SwarmStore
import Synchronization

/// Serves a manager's metrics in the Prometheus text format on `GET /metrics`
/// (`--listen-metrics`): Raft state, and the objects in the store by kind and state.
final class MetricsServer: Sendable {
    let address: String
    let node: RaftNode
    let logger: Logger
    let registry = PrometheusCollectorRegistry()
    private let channel = Mutex<(any Channel)?>(nil)

    init(address: String, node: RaftNode, logger: Logger) {
        self.address = address
        self.node = node
        self.logger = logger
    }

    func gauge(_ subsystem: String, _ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "swarm", subsystem: subsystem.isEmpty ? nil : subsystem,
                                                            metricName: name, unitName: "", helpText: help), labels: labels)
    }

    /// Refreshes the gauges from the node and its store, and renders them.
    func render() -> String {
        let s = node.status
        gauge("raft", "term", "Current Raft term").set(Int64(s.term))
        gauge("raft", "commit_index", "Highest committed log index").set(Int64(s.commit))
        gauge("raft", "applied_index", "Highest applied log index").set(Int64(s.applied))
        gauge("raft", "is_leader", "1 on the leader").set(Int64(s.role == .leader ? 1 : 0))
        gauge("raft", "voters", "Voting managers").set(Int64(s.voters.count))
        let view = node.store.view()
        let nodes = view.find(SwarmNode.self)
        for state in [SwarmNodeStatus.State.ready, .down, .unknown, .disconnected] {
            gauge("", "nodes", "Nodes by state", [("state", "\(state)")])
                .set(Int64(nodes.filter { $0.status.state == state }.count))
        }
        gauge("", "services", "Services").set(Int64(view.find(SwarmService.self).count))
        let tasks = view.find(SwarmTask.self)
        var byState: [String: Int64] = [:]
        for t in tasks { byState["\(t.status.state)", default: 0] += 1 }
        for state in ["pending", "assigned", "running", "complete", "failed", "shutdown", "rejected"] {
            gauge("", "tasks", "Tasks by observed state", [("state", state)])
                .set(byState[state] ?? 0)
        }
        return registry.emitToString()
    }

    /// Serves until cancelled or stopped.
    func run() async {
        guard let (host, port) = NetworkAddress.split(address) else {
            logger.error("bad --listen-metrics address \(address)")
            return
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
        do {
            let ch = try await bootstrap.bind(host: host, port: port).get()
            channel.withLock { $0 = ch }
            logger.info("metrics on http://\(host):\(port)/metrics")
            try await withTaskCancellationHandler {
                try await ch.closeFuture.get()
            } onCancel: {
                ch.close(promise: nil)
            }
        } catch {
            logger.error("metrics server on \(address): \(error)")
        }
    }

    func stop() { channel.withLock { $0?.close(promise: nil) } }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: MetricsServer

        init(server: MetricsServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let found = head.method == .GET && (head.uri == "/metrics" || head.uri.hasPrefix("/metrics?"))
            let body = found ? server.render() : "not found: metrics are at /metrics\n"
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.utf8.count))
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}
