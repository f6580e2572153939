import SwarmAPI
import SwiftProtobuf
import Synchronization

/// Routes task output from the nodes that hold it to the callers who asked for it, as
/// SwarmKit's log broker does. A subscription names tasks; the broker sends it to each of
/// their nodes over the node's subscriptions stream, and the lines the nodes publish come
/// back to the subscriber. Without `follow`, the subscription ends once every node has sent
/// all it has.
public final class LogBroker: Sendable {
    /// What a subscriber receives.
    public enum Event: Sendable {
        case lines([SwarmLogLine])
        /// A node could not serve (part of) the subscription.
        case warning(String)
    }

    struct Subscription {
        var message: SwarmLogSubscription
        var nodes: Set<String>
        var pending: Set<String>
        var output: AsyncStream<Event>.Continuation
    }

    struct State {
        var subscriptions: [String: Subscription] = [:]
        var nodes: [String: (token: Int, stream: AsyncStream<SwarmLogSubscription>.Continuation)] = [:]
        var nextToken = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Subscribes to the output of `tasks`, grouped by the node that holds each. Nodes that
    /// are not connected are reported as warnings.
    public func subscribe(id: String, tasks: [SwarmTask], follow: Bool, tail: UInt32) -> AsyncStream<Event> {
        let (stream, output) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(4096))
        let byNode = Dictionary(grouping: tasks.filter { !$0.nodeID.isEmpty }, by: \.nodeID)
        var warnings: [String] = []
        state.withLock { s in
            var sub = Subscription(message: .with { $0.id = id; $0.follow = follow; $0.tail = tail },
                                   nodes: Set(byNode.keys), pending: [], output: output)
            for (node, list) in byNode {
                var m = sub.message
                m.taskIds = list.map(\.id).sorted()
                if let n = s.nodes[node] {
                    n.stream.yield(m)
                    sub.pending.insert(node)
                } else {
                    warnings.append("node \(node) is not connected; the output of \(list.count) task(s) there is not available now")
                }
            }
            if sub.pending.isEmpty && !follow {
                output.finish()
            } else {
                s.subscriptions[id] = sub
            }
        }
        for w in warnings { output.yield(.warning(w)) }
        if byNode.isEmpty { output.finish() }
        return stream
    }

    /// Ends a subscription (its caller went away) and tells the nodes to stop.
    public func unsubscribe(_ id: String) {
        state.withLock { s in
            guard let sub = s.subscriptions.removeValue(forKey: id) else { return }
            sub.output.finish()
            for node in sub.nodes { s.nodes[node]?.stream.yield(.with { $0.id = id; $0.close = true }) }
        }
    }

    /// Opens a node's subscriptions stream, replacing an earlier one. Subscriptions that
    /// follow the node's tasks are sent again, so that a reconnecting node resumes them, and
    /// so are those still waiting for this node's answer: one sent to a session that died
    /// (a node killed and restarted before its old stream was noticed closed) would
    /// otherwise never end.
    public func register(node: String, tasksOf: @Sendable (String) -> [String]) -> (token: Int, stream: AsyncStream<SwarmLogSubscription>) {
        let (stream, cont) = AsyncStream.makeStream(of: SwarmLogSubscription.self, bufferingPolicy: .bufferingNewest(1024))
        let token = state.withLock { s -> Int in
            s.nextToken += 1
            s.nodes[node]?.stream.finish()
            s.nodes[node] = (s.nextToken, cont)
            for (id, sub) in s.subscriptions where sub.nodes.contains(node) && (sub.message.follow || sub.pending.contains(node)) {
                var m = sub.message
                m.taskIds = tasksOf(node)
                s.subscriptions[id]?.pending.insert(node)
                cont.yield(m)
            }
            return s.nextToken
        }
        return (token, stream)
    }

    /// Closes a node's stream if it is still the one `token` opened.
    public func unregister(node: String, token: Int) {
        let finished = state.withLock { s -> [(AsyncStream<Event>.Continuation, String)] in
            guard s.nodes[node]?.token == token else { return [] }
            s.nodes[node]?.stream.finish()
            s.nodes[node] = nil
            // Subscriptions that only waited for this node can end now.
            var out: [(AsyncStream<Event>.Continuation, String)] = []
            for (id, sub) in s.subscriptions where sub.pending.contains(node) {
                s.subscriptions[id]?.pending.remove(node)
                out.append((sub.output, "node \(node) disconnected"))
                if s.subscriptions[id]?.pending.isEmpty == true && !sub.message.follow {
                    s.subscriptions[id] = nil
                    sub.output.finish()
                }
            }
            return out
        }
        for (output, warning) in finished { output.yield(.warning(warning)) }
    }

    /// Lines a node publishes for a subscription; `close` says it has sent all it will.
    public func publish(node: String, _ message: SwarmPublishLogsRequest) {
        state.withLock { s in
            guard let sub = s.subscriptions[message.subscriptionID], sub.nodes.contains(node) else { return }
            // A node may only publish the output of its own tasks.
            let lines = message.lines.filter { $0.nodeID == node }
            if !lines.isEmpty { sub.output.yield(.lines(lines)) }
            if !message.error.isEmpty { sub.output.yield(.warning(message.error)) }
            if message.close {
                s.subscriptions[message.subscriptionID]?.pending.remove(node)
                if s.subscriptions[message.subscriptionID]?.pending.isEmpty == true && !sub.message.follow {
                    s.subscriptions[message.subscriptionID] = nil
                    sub.output.finish()
                }
            }
        }
    }

    /// The number of live subscriptions (for tests and metrics).
    public var subscriptionCount: Int { state.withLock { $0.subscriptions.count } }
}
