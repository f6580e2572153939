import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmRPC
import SwiftProtobuf
import Synchronization

extension Agent {
    /// Serves the manager's log subscriptions for the duration of a session: each one gets
    /// its own publisher, which sends what the task's log files hold (and, when following,
    /// what they gain) until it is done or the manager closes the subscription.
    func subscriptions(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        defer {
            for p in publishers.withLock({ m -> [Task<Void, Never>] in defer { m = [:] }; return Array(m.values) }) { p.cancel() }
        }
        try await d.subscriptions(.with { $0.nodeID = config.nodeID; $0.sessionID = s.sessionID }) { response in
            for try await subscription in response.messages {
                let old = self.publishers.withLock { $0.removeValue(forKey: subscription.id) }
                old?.cancel()
                if subscription.close { continue }
                let publisher = Task { await self.publish(d, s, subscription) }
                self.publishers.withLock { $0[subscription.id] = publisher }
            }
        }
    }

    func publish(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage,
                 _ subscription: SwarmLogSubscription) async {
        let nodeID = config.nodeID
        var readers: [LogReader] = []
        var missing: [String] = []
        for id in subscription.taskIds {
            let dir = "\(config.stateDir)/tasks/\(id)"
            if FileManager.default.fileExists(atPath: dir) {
                readers.append(LogReader(taskID: id, nodeID: nodeID, workDir: dir))
            } else {
                missing.append(id)
            }
        }
        let start = readers
        let error = missing.isEmpty ? "" : "no output recorded on node \(nodeID) for task(s) \(missing.joined(separator: ", "))"
        do {
            _ = try await d.publishLogs(requestProducer: { writer in
                func send(_ lines: [SwarmLogLine], close: Bool = false, error: String = "") async throws {
                    // Messages stay well under the transport's size limit.
                    var batch: [SwarmLogLine] = []
                    var size = 0
                    for line in lines {
                        if size + line.data.count > 1 << 20 && !batch.isEmpty {
                            try await writer.write(Self.message(s, subscription.id, batch))
                            batch = []
                            size = 0
                        }
                        batch.append(line)
                        size += line.data.count
                    }
                    if !batch.isEmpty || close || !error.isEmpty {
                        var m = Self.message(s, subscription.id, batch)
                        m.close = close
                        m.error = error
                        try await writer.write(m)
                    }
                }
                var readers = start
                var first: [SwarmLogLine] = []
                for i in readers.indices { first += readers[i].initial(tail: subscription.tail) }
                if !subscription.follow {
                    for i in readers.indices { first += readers[i].flush() }
                    try await send(first, close: true, error: error)
                    return
                }
                try await send(first, error: error)
                while !Task.isCancelled {
                    try await Task.sleep(for: .milliseconds(200))
                    var lines: [SwarmLogLine] = []
                    for i in readers.indices { lines += readers[i].poll() }
                    if !lines.isEmpty { try await send(lines) }
                }
            })
        } catch {
            if !Task.isCancelled { logger.debug("log subscription \(subscription.id): \(error)") }
        }
        publishers.withLock { m in
            if m[subscription.id] != nil && !subscription.follow { m[subscription.id] = nil }
        }
    }

    static func message(_ s: SwarmSessionMessage, _ id: String, _ lines: [SwarmLogLine]) -> SwarmPublishLogsRequest {
        .with {
            $0.sessionID = s.sessionID
            $0.nodeID = s.nodeID
            $0.subscriptionID = id
            $0.lines = lines
        }
    }
}
