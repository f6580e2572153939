import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmPluginHost
import SwarmRPC
import Synchronization

/// A worker's agent: one session to a manager (reconnecting to any known manager with
/// jittered backoff), heartbeats, the assignments stream, a ``TaskRunner`` per task, and
/// batched status reports.
public final class Agent: Sendable {
    public struct Config: Sendable {
        public var nodeID: String
        public var stateDir: String
        public var managers: [String]
        public var joinToken: String
        public var description: SwarmNodeDescription

        public init(nodeID: String, stateDir: String, managers: [String], joinToken: String, description: SwarmNodeDescription) {
            self.nodeID = nodeID
            self.stateDir = stateDir
            self.managers = managers
            self.joinToken = joinToken
            self.description = description
        }
    }

    let config: Config
    let plugins: PluginRegistry
    let logger: Logger
    private let runners = Mutex<[String: TaskRunner]>([:])
    private let outbox = Mutex<[String: SwarmTaskStatus]>([:])
    private let managers: Mutex<[String]>

    public init(config: Config, plugins: PluginRegistry, logger: Logger = Logger(label: "swarm.agent")) {
        self.config = config
        self.plugins = plugins
        self.logger = logger
        managers = Mutex(config.managers)
    }

    /// Tasks the agent is running, by ID.
    public var taskIDs: [String] { runners.withLock { Array($0.keys).sorted() } }

    /// Runs until cancelled.
    public func run() async {
        var attempt = 0
        while !Task.isCancelled {
            let list = managers.withLock { $0 }
            let addr = list[attempt % max(1, list.count)]
            do {
                try await session(addr)
                attempt = 0
            } catch {
                if Task.isCancelled { break }
                logger.info("session with \(addr) ended: \(error)")
                attempt += 1
            }
            // Jittered backoff, capped at 2 s.
            let base = min(2000, 50 << min(attempt, 5))
            try? await Task.sleep(for: .milliseconds(Int.random(in: base / 2...base)))
        }
        for r in runners.withLock({ Array($0.values) }) { r.stop() }
    }

    func session(_ addr: String) async throws {
        guard let (host, port) = NetworkAddress.split(addr) else { return }
        let client = GRPCClient(transport: try .http2NIOPosix(target: .dns(host: host, port: port),
                                                              transportSecurity: .plaintext))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.runConnections() }
            defer { client.beginGracefulShutdown(); group.cancelAll() }
            let d = SwarmDispatcher.Client(wrapping: client)
            try await d.session(.with {
                $0.nodeID = config.nodeID
                $0.joinToken = config.joinToken
                $0.description_p = config.description
            }) { response in
                // The first message opens the session; the stream then stays open while it lives.
                var it = response.messages.makeAsyncIterator()
                guard let first = try await it.next() else { return }
                if !first.managers.isEmpty { self.managers.withLock { $0 = first.managers } }
                try await withThrowingTaskGroup(of: Void.self) { inner in
                    inner.addTask { try await self.heartbeats(d, first) }
                    inner.addTask { try await self.assignments(d, first) }
                    inner.addTask { try await self.reports(d, first) }
                    try await inner.next()
                    inner.cancelAll()
                }
            }
        }
    }

    func heartbeats(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        var period = max(100_000_000, s.heartbeatPeriod)
        while !Task.isCancelled {
            try await Task.sleep(for: .nanoseconds(period / 2))
            period = max(100_000_000, try await d.heartbeat(.with { $0.nodeID = config.nodeID; $0.sessionID = s.sessionID }).period)
        }
    }

    func reports(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        while !Task.isCancelled {
            let batch = outbox.withLock { o -> [String: SwarmTaskStatus] in defer { o = [:] }; return o }
            if !batch.isEmpty {
                do {
                    _ = try await d.updateTaskStatus(.with {
                        $0.nodeID = config.nodeID
                        $0.sessionID = s.sessionID
                        $0.updates = batch.keys.sorted().map { id in .with { $0.taskID = id; $0.status = batch[id]! } }
                    })
                } catch {
                    // Keep them for the next session; newer states win.
                    outbox.withLock { o in for (k, v) in batch where (o[k]?.state.rawValue ?? 0) < v.state.rawValue { o[k] = v } }
                    throw error
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func assignments(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        try await d.assignments(.with { $0.nodeID = config.nodeID; $0.sessionID = s.sessionID }) { response in
            for try await message in response.messages {
                if message.type == .complete {
                    let listed = Set(message.changes.map(\.task.id))
                    for id in self.taskIDs where !listed.contains(id) { self.remove(id) }
                }
                for change in message.changes {
                    if change.action == .remove { self.remove(change.task.id) } else { self.apply(change.task) }
                }
            }
        }
    }

    func apply(_ task: SwarmTask) {
        if task.desiredState.rawValue > SwarmTaskState.running.rawValue {
            if let r = runners.withLock({ $0[task.id] }) {
                if task.desiredState == .remove { remove(task.id) } else { r.stop() }
            } else {
                cleanUpLeftover(task)
            }
            return
        }
        guard task.desiredState == .running, runners.withLock({ $0[task.id] }) == nil else { return }
        guard TaskStateCheck.isLive(task.status.state) else { return }
        let runtime = task.spec.runtimeName.isEmpty ? "process" : task.spec.runtimeName
        guard let executor = plugins.executor(runtime) else {
            enqueue(task.id, .with { $0.state = .rejected; $0.err = "executor \"\(runtime)\" is not loaded on this node" })
            return
        }
        let runner = TaskRunner(task: task, executor: ExecutorClient(executor),
                                workDir: "\(config.stateDir)/tasks/\(task.id)", logger: logger) { [weak self] id, status in
            self?.enqueue(id, status)
        }
        runners.withLock { $0[task.id] = runner }
        runner.start()
    }

    /// A task this agent does not track, that must not run: after a restart of the node its
    /// process may still be alive. The executor adopts it (from its work directory) so that
    /// it can be stopped; nothing is started.
    func cleanUpLeftover(_ task: SwarmTask) {
        let workDir = "\(config.stateDir)/tasks/\(task.id)"
        guard FileManager.default.fileExists(atPath: workDir),
              let executor = plugins.executor(task.spec.runtimeName.isEmpty ? "process" : task.spec.runtimeName) else { return }
        let client = ExecutorClient(executor)
        let proto: [UInt8] = (try? task.serializedBytes()) ?? []
        do {
            try client.prepare(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
            try client.shutdown(taskID: task.id, graceNanoseconds: 2_000_000_000)
            try client.remove(taskID: task.id)
            logger.info("stopped leftover task \(task.id) from before the restart")
        } catch {
            logger.debug("leftover task \(task.id): \(error)")
        }
    }

    func remove(_ id: String) {
        guard let r = runners.withLock({ $0.removeValue(forKey: id) }) else { return }
        r.remove()
    }

    func enqueue(_ id: String, _ status: SwarmTaskStatus) {
        outbox.withLock { o in
            if (o[id]?.state.rawValue ?? 0) < status.state.rawValue { o[id] = status }
        }
    }
}

enum TaskStateCheck {
    /// A task the node should (still) run: assigned and not yet ended.
    static func isLive(_ s: SwarmTaskState) -> Bool {
        s.rawValue >= SwarmTaskState.assigned.rawValue && s.rawValue < SwarmTaskState.complete.rawValue
    }
}
