import Foundation
import GRPCCore
import Logging
import SwarmAPI
import SwarmCA
import SwarmOrchestrator
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf
import Synchronization

/// Serves agents on the leader: sessions (with the join-token check for new nodes),
/// heartbeats that keep a node READY (DOWN after period × grace without one), the
/// assignments stream (a complete set, then changes) and batched task status updates.
public final class Dispatcher: SwarmDispatcher.SimpleServiceProtocol, Sendable {
    let node: any ManagerNode
    let logger: Logger
    struct Session {
        var id: String
        var deadline: ContinuousClock.Instant
    }
    private let sessions = Mutex<[String: Session]>([:])
    private let reportedRoots = Mutex<[String: String]>([:])
    /// Root digests by PEM, so that session messages do not parse certificates.
    private let digests = Mutex<[Data: String]>([:])

    func digest(of pem: Data) -> String {
        if let known = digests.withLock({ $0[pem] }) { return known }
        let d = (try? PEMFiles.certificate(String(decoding: pem, as: UTF8.self), what: "a root")).map(RootCA.digest(of:)) ?? ""
        digests.withLock { $0[pem] = d }
        return d
    }

    /// The root digest each node last reported for its certificate (heartbeats), for root
    /// CA rotations.
    public var rootDigests: [String: String] { reportedRoots.withLock { $0 } }
    /// Task output flows from the nodes through here to `swarmctl ... logs`.
    public let logs: LogBroker

    public init(node: any ManagerNode, logs: LogBroker = LogBroker(), logger: Logger = Logger(label: "swarm.dispatcher")) {
        self.node = node
        self.logs = logs
        self.logger = logger
    }

    var store: MemoryStore { node.store }

    /// Heartbeat period and grace multiplier from the cluster settings.
    var heartbeat: (period: Duration, grace: Int64, periodNanoseconds: Int64) {
        let d = store.view().find(SwarmCluster.self).first?.spec.dispatcher
        let period = (d?.heartbeatPeriod ?? 0) > 0 ? d!.heartbeatPeriod : 5_000_000_000
        let grace = Int64((d?.heartbeatGraceMultiplier ?? 0) > 0 ? d!.heartbeatGraceMultiplier : 3)
        return (.nanoseconds(period), grace, period)
    }

    /// Over mutual TLS, a node acts only for itself: the node ID a call names must be its
    /// certificate's. (A server without TLS, in tests of this part alone, has no identity
    /// to compare.)
    func checkCaller(_ nodeID: String, _ context: ServerContext) throws {
        guard let proved = PeerIdentity.of(context) else { return }
        switch proved {
        case .success(let peer) where peer.nodeID == nodeID: return
        case .success(let peer):
            throw RPCError(code: .permissionDenied, message: "node \(peer.nodeID) cannot act as node \(nodeID)")
        case .failure(let e):
            throw RPCError(code: .unauthenticated, message: e.description)
        }
    }

    func checkSession(_ nodeID: String, _ sessionID: String, _ context: ServerContext) throws {
        try checkCaller(nodeID, context)
        try checkSession(nodeID, sessionID)
    }

    func checkSession(_ nodeID: String, _ sessionID: String) throws {
        guard sessions.withLock({ $0[nodeID]?.id }) == sessionID else {
            throw RPCError(code: .notFound, message: "session is no longer valid; open a new one")
        }
    }

    // MARK: RPCs

    public func session(request: SwarmSessionRequest, response: RPCWriter<SwarmSessionMessage>, context: ServerContext) async throws {
        guard !request.nodeID.isEmpty else { throw RPCError(code: .invalidArgument, message: "node ID is required") }
        try checkCaller(request.nodeID, context)
        let view = store.view()
        var role: SwarmNodeSpec.Role = .worker
        if case .success(let peer)? = PeerIdentity.of(context) {
            // The certificate admitted the node (the CA checked its token when it joined).
            if view.get(SwarmNode.self, id: request.nodeID) == nil { role = peer.role == .manager ? .manager : .worker }
        } else if view.get(SwarmNode.self, id: request.nodeID) == nil {
            guard let cluster = view.find(SwarmCluster.self).first,
                  !request.joinToken.isEmpty,
                  request.joinToken == cluster.joinTokens.worker || request.joinToken == cluster.joinTokens.manager else {
                // Say nothing about the cluster to a caller without a valid token.
                throw RPCError(code: .permissionDenied, message: "invalid join token")
            }
            role = request.joinToken == cluster.joinTokens.manager ? .manager : .worker
        }
        try await store.update { tx in
            if var n = tx.get(SwarmNode.self, id: request.nodeID) {
                n.description_p = request.description_p
                n.status.state = .ready
                n.status.message = "session opened"
                try tx.update(n)
            } else {
                var n = SwarmNode()
                n.id = request.nodeID
                n.role = role
                n.spec.desiredRole = role
                n.spec.membership = .accepted
                n.description_p = request.description_p
                n.status.state = .ready
                n.status.message = "joined"
                try tx.create(n)
            }
        }
        let sessionID = Identifiers.make()
        let hb = heartbeat
        sessions.withLock { $0[request.nodeID] = Session(id: sessionID, deadline: .now + hb.period * Int(hb.grace)) }
        var sent = sessionMessage(sessionID, request.nodeID, hb.periodNanoseconds)
        try await response.write(sent)
        // Hold the stream open while the session is current and this manager leads; tell
        // the node when its manager set or its desired role changes.
        while !Task.isCancelled, node.isLeader, sessions.withLock({ $0[request.nodeID]?.id }) == sessionID {
            try? await Task.sleep(for: .milliseconds(200))
            let next = sessionMessage(sessionID, request.nodeID, heartbeat.periodNanoseconds)
            if next != sent {
                try await response.write(next)
                sent = next
            }
        }
    }

    func sessionMessage(_ sessionID: String, _ nodeID: String, _ period: Int64) -> SwarmSessionMessage {
        let view = store.view()
        let desired = view.get(SwarmNode.self, id: nodeID)?.spec.desiredRole ?? .worker
        return .with {
            $0.sessionID = sessionID
            $0.nodeID = nodeID
            $0.managers = node.status.members.values.sorted()
            $0.heartbeatPeriod = period
            $0.desiredRole = desired
            if desired == .manager { $0.managerToken = view.find(SwarmCluster.self).first?.joinTokens.manager ?? "" }
            $0.nodeCertExpiry = view.find(SwarmCluster.self).first?.spec.caConfig.nodeCertExpiry ?? 0
            if let cluster = view.find(SwarmCluster.self).first, !cluster.rootCaCert.isEmpty {
                $0.trustedRoots = ClusterCA.trustedRootsPEM(cluster)
                $0.signingRootDigest = digest(of: ClusterCA.signingRootPEM(cluster))
            }
        }
    }

    public func heartbeat(request: SwarmHeartbeatRequest, context: ServerContext) async throws -> SwarmHeartbeatResponse {
        try checkCaller(request.nodeID, context)
        let hb = heartbeat
        let ok = sessions.withLock { s -> Bool in
            guard s[request.nodeID]?.id == request.sessionID else { return false }
            s[request.nodeID]?.deadline = .now + hb.period * Int(hb.grace)
            return true
        }
        guard ok else { throw RPCError(code: .notFound, message: "session is no longer valid; open a new one") }
        if !request.tlsRootDigest.isEmpty { reportedRoots.withLock { $0[request.nodeID] = request.tlsRootDigest } }
        return .with { $0.period = hb.periodNanoseconds }
    }

    public func assignments(request: SwarmAssignmentsRequest, response: RPCWriter<SwarmAssignmentsMessage>, context: ServerContext) async throws {
        try checkSession(request.nodeID, request.sessionID, context)
        let (view, watcher) = store.viewAndWatch(WatchFilter(tables: [.tasks], nodeID: request.nodeID, commits: true))
        defer { watcher.cancel() }
        let mine = view.find(SwarmTask.self, .node(request.nodeID)).filter(Self.isAssignment)
        // The secrets and configs its tasks need go with them, ahead of them.
        var sent = Dependencies(of: mine, in: view)
        try await response.write(.with {
            $0.type = .complete
            $0.changes = sent.changes(from: Dependencies()) + mine.map { t in .with { $0.action = .update; $0.task = t } }
        })
        var pending: [SwarmAssignmentChange] = []
        var touched = false
        for try await message in watcher {
            switch message {
            case .event(let e):
                guard let t = e.new?.task ?? e.old?.task else { continue }
                touched = true
                let belongs = e.kind != .deleted && t.nodeID == request.nodeID && Self.isAssignment(t)
                let was = e.old?.task.map { $0.nodeID == request.nodeID && Self.isAssignment($0) } ?? false
                if belongs {
                    // Status-only changes come from the node itself; don't echo them back.
                    if let old = e.old?.task, was, old.desiredState == t.desiredState, old.spec == t.spec { continue }
                    pending.append(.with { $0.action = .update; $0.task = t })
                } else if was {
                    pending.append(.with { $0.action = .remove; $0.task = t })
                }
            case .commit:
                // A task that ended (its status, reported by the node itself, is not echoed)
                // may still withdraw a secret.
                if !touched { continue }
                touched = false
                try checkSession(request.nodeID, request.sessionID)
                // New needs first (ahead of the tasks that have them), withdrawals after.
                let now = store.view()
                let needed = Dependencies(of: now.find(SwarmTask.self, .node(request.nodeID)).filter(Self.isAssignment), in: now)
                let dependencyChanges = needed.changes(from: sent)
                sent = needed
                let batch = dependencyChanges.filter { $0.action == .update } + pending + dependencyChanges.filter { $0.action == .remove }
                pending = []
                if batch.isEmpty { continue }
                try await response.write(.with { $0.type = .incremental; $0.changes = batch })
            }
        }
    }

    public func updateTaskStatus(request: SwarmUpdateTaskStatusRequest, context: ServerContext) async throws -> SwarmUpdateTaskStatusResponse {
        try checkSession(request.nodeID, request.sessionID, context)
        try await store.batch { batch in
            for u in request.updates {
                try await batch.update { tx in
                    guard var t = tx.get(SwarmTask.self, id: u.taskID), t.nodeID == request.nodeID else { return }
                    // Observed states only move forward; stale reports are dropped. A
                    // running task's health may change without its state.
                    let healthChange = t.status.state == .running && u.status.state == .running
                        && t.status.health != u.status.health
                    guard t.status.state.canMove(to: u.status.state) || healthChange else { return }
                    if u.status.state == .running && t.runningSince == 0 { t.runningSince = u.status.timestamp }
                    t.status = u.status
                    try tx.update(t)
                }
            }
        }
        return SwarmUpdateTaskStatusResponse()
    }

    public func subscriptions(request: SwarmSubscriptionsRequest, response: RPCWriter<SwarmLogSubscription>, context: ServerContext) async throws {
        try checkSession(request.nodeID, request.sessionID, context)
        let store = self.store
        let (token, stream) = logs.register(node: request.nodeID) { node in
            store.view().find(SwarmTask.self, .node(node)).map(\.id)
        }
        defer { logs.unregister(node: request.nodeID, token: token) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await subscription in stream { try await response.write(subscription) }
            }
            group.addTask {
                // End with the session, or when this manager stops leading.
                while !Task.isCancelled, self.node.isLeader, self.sessions.withLock({ $0[request.nodeID]?.id }) == request.sessionID {
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    public func publishLogs(request: RPCAsyncSequence<SwarmPublishLogsRequest, any Error>, context: ServerContext) async throws -> SwarmPublishLogsResponse {
        for try await message in request {
            try checkSession(message.nodeID, message.sessionID, context)
            logs.publish(node: message.nodeID, message)
        }
        return SwarmPublishLogsResponse()
    }

    static func isAssignment(_ t: SwarmTask) -> Bool {
        !t.status.state.isUnassigned || !t.isRunnable
    }

    // MARK: Heartbeat expiry

    /// Marks nodes DOWN when their heartbeat deadline passes. Runs on the leader until
    /// cancelled; nodes READY in the store without a session get one grace period first.
    public func expireSessions() async {
        let hb = heartbeat
        let start = ContinuousClock.now + hb.period * Int(hb.grace)
        // Sessions end with this term: agents open new ones with the next leader. (They are
        // cleared when leadership is lost, not here, so that a session opened in the
        // moment between becoming leader and this loop starting stays valid.)
        defer { sessions.withLock { $0 = [:] } }
        for n in store.view().find(SwarmNode.self) where n.status.state == .ready {
            sessions.withLock { s in if s[n.id] == nil { s[n.id] = Session(id: "", deadline: start) } }
        }
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = ContinuousClock.now
            let expired = sessions.withLock { s -> [String] in
                let gone = s.filter { $0.value.deadline < now }.map(\.key)
                for id in gone { s[id] = nil }
                return gone
            }
            for id in expired.sorted() {
                logger.info("node \(id) missed its heartbeats: marking it down")
                try? await store.update { tx in
                    guard var n = tx.get(SwarmNode.self, id: id), n.status.state != .down else { return }
                    n.status.state = .down
                    n.status.message = "heartbeat failure"
                    try tx.update(n)
                }
            }
        }
    }
}

/// The secrets and configs a node's tasks need: those referenced by its assigned tasks
/// that have not ended. A node receives them while it needs them, and is told to drop
/// them when no such task is left.
struct Dependencies {
    var secrets: [String: SwarmSecret] = [:]
    var configs: [String: SwarmConfig] = [:]

    init() {}

    init(of tasks: [SwarmTask], in view: ReadTx) {
        for t in tasks where !t.status.state.isTerminal && t.isRunnable {
            for ref in t.spec.secrets where secrets[ref.secretID] == nil {
                if let s = view.get(SwarmSecret.self, id: ref.secretID) { secrets[s.id] = s }
            }
            for ref in t.spec.configs where configs[ref.configID] == nil {
                if let c = view.get(SwarmConfig.self, id: ref.configID) { configs[c.id] = c }
            }
        }
    }

    /// What to send a node that holds `previous` so that it holds these.
    func changes(from previous: Dependencies) -> [SwarmAssignmentChange] {
        var out: [SwarmAssignmentChange] = []
        for (id, s) in secrets.sorted(by: { $0.key < $1.key }) where previous.secrets[id] == nil {
            out.append(.with { $0.action = .update; $0.secret = s })
        }
        for (id, c) in configs.sorted(by: { $0.key < $1.key }) where previous.configs[id] == nil {
            out.append(.with { $0.action = .update; $0.config = c })
        }
        for (id, s) in previous.secrets.sorted(by: { $0.key < $1.key }) where secrets[id] == nil {
            var withdrawn = SwarmSecret()
            withdrawn.id = s.id
            out.append(.with { $0.action = .remove; $0.secret = withdrawn })
        }
        for (id, c) in previous.configs.sorted(by: { $0.key < $1.key }) where configs[id] == nil {
            var withdrawn = SwarmConfig()
            withdrawn.id = c.id
            out.append(.with { $0.action = .remove; $0.config = withdrawn })
        }
        return out
    }
}
