import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmCA
import SwarmConcurrency
import SwarmPluginHost
import SwarmRPC
import SwiftProtobuf
import Synchronization

/// A worker's agent: one session to a manager (reconnecting to any known manager with
/// jittered backoff), heartbeats, the assignments stream, a ``TaskRunner`` per task,
/// batched status reports, and log subscriptions. Assigned tasks and their observed states
/// are kept in a local SQLite ``TaskDB``, so that a restarted agent neither duplicates nor
/// orphans a task.
public final class Agent: Sendable {
    public struct Config: Sendable {
        public var nodeID: String
        public var stateDir: String
        public var managers: [String]
        public var joinToken: String
        public var description: SwarmNodeDescription
        /// How sessions to the managers are secured (swarmd: mutual TLS with the node's
        /// certificate, which admits it; the join token then goes unused).
        public var security: ClientSecurity
        /// Seals the task records on disk (swarmd: the node's data key).
        public var dataKey: DataCipher?

        public init(nodeID: String, stateDir: String, managers: [String], joinToken: String, description: SwarmNodeDescription,
                    security: ClientSecurity = .plaintext, dataKey: DataCipher? = nil) {
            self.dataKey = dataKey
            self.nodeID = nodeID
            self.stateDir = stateDir
            self.managers = managers
            self.joinToken = joinToken
            self.description = description
            self.security = security
        }
    }

    let config: Config
    let plugins: PluginRegistry
    let logger: Logger
    let db: TaskDB
    private let runners = Mutex<[String: TaskRunner]>([:])
    /// Work to run as ``run()``'s child tasks: task runners, and clean-ups of tasks left
    /// over from before a restart.
    private let launches: AsyncStream<@Sendable () async -> Void>
    private let launch: AsyncStream<@Sendable () async -> Void>.Continuation
    private let outbox: Mutex<[String: SwarmTaskStatus]>
    /// Wakes the status reporter when the outbox gets something.
    private let outboxFilled = Doorbell()
    private let managers: Mutex<[String]>
    /// The decisions: which tasks run, stop, are removed or cleaned up.
    private let core: Mutex<AgentCore>
    let publishers = Mutex<[String: Task<Void, Never>]>([:])
    private let token: Mutex<String>
    private let roleHandler = Mutex<(@Sendable (SwarmNodeSpec.Role, String) -> Void)?>(nil)
    private let messageHandler = Mutex<(@Sendable (SwarmSessionMessage) -> Void)?>(nil)
    struct Dependencies {
        var secrets: [String: SwarmSecret] = [:]
        var configs: [String: SwarmConfig] = [:]
    }
    /// Secrets and configs the managers sent for this node's tasks.
    private let dependencies = Mutex(Dependencies())
    /// The node description sent when a session opens: the configured one, with the
    /// executors' current availability.
    let description: Mutex<SwarmNodeDescription>
    /// Rung when the description changed: the current session ends, and the next one
    /// sends the new description.
    let descriptionChanged = Doorbell()

    /// The join token the agent presents when its node is not yet a member.
    public var joinToken: String {
        get { token.withLock { $0 } }
        set { token.withLock { $0 = newValue } }
    }

    /// Opens (or creates) the task database in the state directory.
    ///
    /// - Throws: ``TaskDB/OpenError`` when the database exists but cannot be read.
    public init(config: Config, plugins: PluginRegistry, logger: Logger = Logger(label: "swarm.agent")) throws {
        self.config = config
        self.plugins = plugins
        self.logger = logger
        (launches, launch) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
        try FileManager.default.createDirectory(atPath: config.stateDir, withIntermediateDirectories: true)
        db = try TaskDB(path: config.stateDir + "/tasks.db", cipher: config.dataKey)
        let records = try db.all()
        core = Mutex(AgentCore(recovered: records, executors: Set(plugins.names(.executor))))
        // States observed before the restart that no manager acknowledged are sent first.
        outbox = Mutex(records.compactMapValues { $0.reported ? nil : $0.status })
        managers = Mutex(config.managers)
        token = Mutex(config.joinToken)
        description = Mutex(config.description)
        if !records.isEmpty { logger.info("recovered \(records.count) task(s) from \(db.path)") }
    }

    /// Tasks the agent is running, by ID.
    public var taskIDs: [String] { runners.withLock { Array($0.keys).sorted() } }

    /// Runs until cancelled: the sessions with the managers, and a child task for each
    /// task runner; returns once the runners have ended too.
    public func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The first session already says which executors can run tasks.
                await self.refreshAvailability()
                await withTaskGroup(of: Void.self) { inner in
                    inner.addTask { await self.watchAvailability() }
                    await self.sessions()
                    inner.cancelAll()
                }
                self.launch.finish()
            }
            for await work in launches {
                group.addTask { await work() }
            }
        }
    }

    /// Keeps a session with a manager until cancelled, then stops the tasks.
    func sessions() async {
        var attempt = 0
        // The leader a manager that is not the leader pointed to, tried next.
        var redirect: String?
        while !Task.isCancelled {
            let list = managers.withLock { $0 }
            let addr = redirect ?? list[attempt % max(1, list.count)]
            redirect = nil
            do {
                try await session(addr)
                attempt = 0
            } catch {
                if Task.isCancelled { break }
                logger.info("session with \(addr) ended: \(error)")
                if let leader = (error as? RPCError)?.metadata[stringValues: SwarmMetadataKey.leaderAddress].first(where: { _ in true }),
                   leader != addr {
                    redirect = leader
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                attempt += 1
            }
            // Jittered backoff, capped at 2 s.
            let base = min(2000, 50 << min(attempt, 5))
            try? await Task.sleep(for: .milliseconds(Int.random(in: base / 2...base)))
        }
        // A node shut down on purpose stops its tasks (their final states are kept in the
        // database and reported after a restart). A node that dies leaves them running;
        // the restarted agent adopts or stops them.
        for p in publishers.withLock({ Array($0.values) }) { p.cancel() }
        handle(.shutdown)
    }

    func session(_ addr: String) async throws {
        guard let (host, port) = NetworkAddress.split(addr) else { return }
        let client = GRPCClient(transport: try config.security.transport(host: host, port: port))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.runConnections() }
            defer { client.beginGracefulShutdown(); group.cancelAll() }
            let d = SwarmDispatcher.Client(wrapping: client)
            let sentDescription = description.withLock { $0 }
            try await d.session(.with {
                $0.nodeID = config.nodeID
                $0.joinToken = joinToken
                $0.description_p = sentDescription
            }) { response in
                // The first message opens the session; the stream then stays open while it
                // lives, and later messages update the manager set and the desired role.
                let (opened, open) = AsyncStream.makeStream(of: SwarmSessionMessage.self)
                try await withThrowingTaskGroup(of: Void.self) { inner in
                    inner.addTask {
                        defer { open.finish() }
                        for try await message in response.messages {
                            self.sessionChanged(message)
                            open.yield(message)
                        }
                        throw RPCError(code: .unavailable, message: "the manager closed the session")
                    }
                    var firstMessage: SwarmSessionMessage?
                    for await m in opened { firstMessage = m; break }
                    guard let first = firstMessage else { try await inner.next(); return }
                    inner.addTask { try await self.heartbeats(d, first) }
                    inner.addTask { try await self.assignments(d, first) }
                    inner.addTask { try await self.reports(d, first) }
                    inner.addTask { try await self.subscriptions(d, first) }
                    inner.addTask {
                        // A ring left from before this session opened changes nothing.
                        repeat { await self.descriptionChanged.wait() } while !Task.isCancelled
                            && self.description.withLock({ $0 }) == sentDescription
                        throw RPCError(code: .unavailable, message: "the node's description changed; opening a new session")
                    }
                    try await inner.next()
                    inner.cancelAll()
                }
            }
        }
    }

    /// Applies what a session message says: the managers to reconnect to, and the role
    /// the cluster wants this node to have.
    func sessionChanged(_ m: SwarmSessionMessage) {
        if !m.managers.isEmpty { managers.withLock { $0 = m.managers } }
        let handler = roleHandler.withLock { $0 }
        handler?(m.desiredRole, m.managerToken)
        if let handler = messageHandler.withLock({ $0 }) { handler(m) }
    }

    /// Called with each session message, for what the node does beyond the agent: renew
    /// its certificate when the cluster shortened their validity, trust the roots a root
    /// rotation moves through.
    public func onSessionMessage(_ handler: @escaping @Sendable (SwarmSessionMessage) -> Void) {
        messageHandler.withLock { $0 = handler }
    }

    /// The manager addresses the agent connects to.
    public var managerAddresses: [String] { managers.withLock { $0 } }

    /// Sets the manager addresses to connect to (after a role change of this node).
    public func setManagers(_ list: [String]) { managers.withLock { $0 = list } }

    /// Called with each desired role the managers send (and the manager join token when
    /// that role is manager), for the node to switch roles.
    public func onDesiredRole(_ handler: @escaping @Sendable (SwarmNodeSpec.Role, String) -> Void) {
        roleHandler.withLock { $0 = handler }
    }

    func heartbeats(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        var period = max(100_000_000, s.heartbeatPeriod)
        while !Task.isCancelled {
            try await Task.sleep(for: .nanoseconds(period / 2))
            let root = config.security.credentials?.signingRootDigest ?? ""
            period = max(100_000_000, try await d.heartbeat(.with {
                $0.nodeID = config.nodeID
                $0.sessionID = s.sessionID
                $0.tlsRootDigest = root
            }).period)
        }
    }

    /// Sends status changes as they happen: whatever is in the outbox when the reporter
    /// wakes goes in one batch. One session's reporter runs at a time; each new session's
    /// reporter sends what is left first.
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
                    do { try db.markReported(batch) } catch { logger.error("\(db.path): \(error)") }
                } catch {
                    // Keep them for the next session; newer states win.
                    outbox.withLock { o in for (k, v) in batch where (o[k]?.state.rawValue ?? 0) < v.state.rawValue { o[k] = v } }
                    outboxFilled.ring()
                    throw error
                }
            }
            await outboxFilled.wait()
        }
    }

    func assignments(_ d: SwarmDispatcher.Client<HTTP2ClientTransport.Posix>, _ s: SwarmSessionMessage) async throws {
        try await d.assignments(.with { $0.nodeID = config.nodeID; $0.sessionID = s.sessionID }) { response in
            for try await message in response.messages {
                let tasks = self.takeDependencies(message)
                self.handle(.assignments(complete: message.type == .complete, tasks))
            }
        }
    }

    /// Keeps the secrets and configs an assignments message carries (in memory only: they
    /// are never written to the task database), and returns its task changes.
    func takeDependencies(_ message: SwarmAssignmentsMessage) -> [SwarmAssignmentChange] {
        dependencies.withLock { d in
            if message.type == .complete { d = Dependencies() }
            for change in message.changes {
                switch change.item {
                case .secret(let s): d.secrets[s.id] = change.action == .remove ? nil : s
                case .config(let c): d.configs[c.id] = change.action == .remove ? nil : c
                case .task, nil: break
                }
            }
        }
        return message.changes.filter { if case .task = $0.item { return true } else { return false } }
    }

    /// The task as its executor gets it: with the data of the secrets and configs it
    /// references; or why one is missing.
    func withDependencies(_ task: SwarmTask) -> Result<SwarmTask, AgentDependencyError> {
        dependencies.withLock { d in
            var t = task
            for ref in task.spec.secrets {
                guard let s = d.secrets[ref.secretID] else { return .failure(AgentDependencyError("secret \(ref.secretName) was not sent to this node")) }
                t.dependencies.secrets.append(s)
            }
            for ref in task.spec.configs {
                guard let c = d.configs[ref.configID] else { return .failure(AgentDependencyError("config \(ref.configName) was not sent to this node")) }
                t.dependencies.configs.append(c)
            }
            return .success(t)
        }
    }

    /// The secrets and configs this node holds now (tests, diagnostics): their IDs.
    public var heldDependencies: (secrets: [String], configs: [String]) {
        dependencies.withLock { (Array($0.secrets.keys).sorted(), Array($0.configs.keys).sorted()) }
    }

    /// Runs one event through the ``AgentCore`` and performs its actions.
    func handle(_ event: AgentCore.Event) {
        for action in core.withLock({ $0.handle(event) }) { perform(action) }
    }

    func perform(_ action: AgentCore.Action) {
        switch action {
        case .start(let task):
            start(task)
        case .stop(let id):
            runners.withLock { $0[id] }?.stop()
        case .remove(let id):
            guard let r = runners.withLock({ $0.removeValue(forKey: id) }) else { return handle(.removed(taskID: id)) }
            r.remove()
            // The task leaves the local database once it has stopped, so that a crash in
            // between still finds it.
            launch.yield {
                await r.finished.wait()
                self.handle(.removed(taskID: id))
            }
        case .cleanUpLeftover(let task):
            cleanUpLeftover(task)
        case .report(let id, let status):
            enqueue(id, status)
        case .forget(let id):
            forget(id)
        }
    }

    /// Records a task and runs it in a runner of its own.
    func start(_ task: SwarmTask) {
        do {
            try db.put(task)
        } catch {
            logger.error("\(db.path): \(error)")
            enqueue(task.id, .with { $0.state = .rejected; $0.err = "the node cannot record the task: \(error)" })
            return
        }
        guard let executor = plugins.executor(task.spec.executorName) else { return }
        let forExecutor: SwarmTask
        switch withDependencies(task) {
        case .success(let t): forExecutor = t
        case .failure(let e):
            enqueue(task.id, .with { $0.state = .rejected; $0.err = e.description })
            return
        }
        let runner = TaskRunner(task: task, executorTask: forExecutor, executor: ExecutorClient(executor),
                                workDir: "\(config.stateDir)/tasks/\(task.id)", logger: logger) { [weak self] id, status in
            self?.enqueue(id, status)
        }
        runners.withLock { $0[task.id] = runner }
        launch.yield { await runner.serve() }
    }

    /// A task this agent does not track, that must not run: after a restart of the node its
    /// process may still be alive. The executor adopts it (from its work directory) so that
    /// it can be stopped; nothing is started. Runs as a child task of ``run()``, with the
    /// executor's calls on a thread of their own.
    func cleanUpLeftover(_ task: SwarmTask) {
        let workDir = "\(config.stateDir)/tasks/\(task.id)"
        guard FileManager.default.fileExists(atPath: workDir),
              let executor = plugins.executor(task.spec.executorName) else { return }
        let client = ExecutorClient(executor)
        let proto: [UInt8] = (try? task.serializedBytes()) ?? []
        let logger = logger
        launch.yield {
            do {
                try await ExecutorThreads.run("clean up \(task.id)") {
                    try client.prepare(taskID: task.id, serviceID: task.serviceID, workDir: workDir, taskProto: proto)
                    try client.shutdown(taskID: task.id, graceNanoseconds: 2_000_000_000)
                    try client.remove(taskID: task.id)
                }
                logger.info("stopped leftover task \(task.id) from before the restart")
            } catch {
                logger.debug("leftover task \(task.id): \(error)")
            }
        }
    }

    /// Drops a task from the local database.
    func forget(_ id: String) {
        do { try db.delete(id) } catch { logger.error("\(db.path): \(error)") }
    }

    func enqueue(_ id: String, _ status: SwarmTaskStatus) {
        let newer = outbox.withLock { o -> Bool in
            // Newer states replace older ones; a running task's health may change alone.
            if let old = o[id], old.state.rawValue >= status.state.rawValue,
               !(old.state == status.state && old.health != status.health) { return false }
            o[id] = status
            return true
        }
        if newer {
            do { try db.setStatus(id, status, reported: false) } catch { logger.error("\(db.path): \(error)") }
            outboxFilled.ring()
        }
    }
}

/// A secret or config a task references is not on the node.
struct AgentDependencyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
