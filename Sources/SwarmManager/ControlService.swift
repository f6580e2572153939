import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmPluginHost
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf

/// The control API. Writes go through the replicated store. The handlers run on the
/// leader: on any other manager, ``LeaderInterceptor`` forwards each call to the leader.
public struct ControlService: SwarmControl.SimpleServiceProtocol {
    let node: any ManagerNode
    let validation: @Sendable () -> SpecValidation
    let logs: LogBroker
    let plugins: PluginRegistry?

    /// - Parameters:
    ///   - logs: the broker the dispatcher feeds with the nodes' task output.
    ///   - plugins: the manager's plugins, for dry runs of placement.
    ///   - validation: what specs are checked against (the loaded strategies and runtimes).
    public init(node: any ManagerNode, logs: LogBroker = LogBroker(), plugins: PluginRegistry? = nil,
                validation: @escaping @Sendable () -> SpecValidation) {
        self.node = node
        self.logs = logs
        self.plugins = plugins
        self.validation = validation
    }

    var store: MemoryStore { node.store }

    // MARK: Services

    public func createService(request: SwarmCreateServiceRequest, context: ServerContext) async throws -> SwarmCreateServiceResponse {
        try validation().validate(request.spec)
        var service = SwarmService()
        service.id = Identifiers.make()
        service.spec = request.spec
        try Self.resolveReferences(&service.spec.task, in: store.view())
        service.specVersion = 1
        if store.view().find(SwarmService.self, .name(request.spec.annotations.name)).first != nil {
            throw ControlError.invalidArgument("service name \"\(request.spec.annotations.name)\" is already in use")
        }
        if request.dryRun { return try dryRun(service) }
        try await write { tx in
            try Self.checkReferencesExist(service.spec.task, in: tx)
            try tx.create(service)
        }
        return .with { $0.service = store.view().get(SwarmService.self, id: service.id) ?? service }
    }

    public func getService(request: SwarmGetServiceRequest, context: ServerContext) async throws -> SwarmGetServiceResponse {
        try .with { $0.service = try lookup(SwarmService.self, request.serviceID) }
    }

    public func updateService(request: SwarmUpdateServiceRequest, context: ServerContext) async throws -> SwarmUpdateServiceResponse {
        var service = try lookup(SwarmService.self, request.serviceID)
        if request.serviceVersion != 0 && request.serviceVersion != service.meta.version {
            throw ControlError.failedPrecondition("update out of sequence: service is at version \(service.meta.version), the update was based on \(request.serviceVersion)")
        }
        let now = Int64(Date().timeIntervalSince1970 * 1e9)
        if request.rollback {
            service = try Self.rolledBack(service, now: now)
        } else {
            try validation().validate(request.spec)
            var spec = request.spec
            try Self.resolveReferences(&spec.task, in: store.view())
            if request.spec.annotations.name != service.spec.annotations.name,
               store.view().find(SwarmService.self, .name(request.spec.annotations.name)).first != nil {
                throw ControlError.invalidArgument("service name \"\(request.spec.annotations.name)\" is already in use")
            }
            service = try Self.updated(service, to: spec, now: now)
        }
        try await write { tx in
            try Self.checkReferencesExist(service.spec.task, in: tx)
            try tx.update(service)
        }
        return .with { $0.service = store.view().get(SwarmService.self, id: service.id) ?? service }
    }

    /// A service with a new spec. The old spec becomes the previous one (what a rollback
    /// returns to). A change to the task template starts a rolling update; so does any
    /// update of a paused one, which resumes it.
    static func updated(_ service: SwarmService, to spec: SwarmServiceSpec, now: Int64) throws(ControlError) -> SwarmService {
        if SpecValidation.modeName(spec.mode) != SpecValidation.modeName(service.spec.mode) {
            throw .invalidArgument("a service's mode cannot change (\(SpecValidation.modeName(service.spec.mode)) to \(SpecValidation.modeName(spec.mode))): create a new service")
        }
        if spec.rebalance != service.spec.rebalance, SpecValidation.modeName(spec.mode) != "replicated" {
            throw .invalidArgument("rebalancing applies to replicated services only")
        }
        var s = service
        let paused = s.updateStatus.state == .paused || s.updateStatus.state == .rollbackPaused
        if spec != s.spec {
            s.previousSpec = s.spec
            s.spec = spec
            s.specVersion += 1
        }
        if spec.task != service.spec.task || paused {
            s.updateStatus.state = .updating
            s.updateStatus.startedAt = now
            s.updateStatus.completedAt = 0
            s.updateStatus.message = paused && spec.task == service.spec.task ? "update resumed" : "update in progress"
        }
        return s
    }

    /// A service returned to its previous spec, rolled out with the rollback settings.
    static func rolledBack(_ service: SwarmService, now: Int64) throws(ControlError) -> SwarmService {
        guard service.hasPreviousSpec else {
            throw .invalidArgument("service \(service.spec.annotations.name) has no previous spec to roll back to")
        }
        var s = service
        (s.spec, s.previousSpec) = (s.previousSpec, s.spec)
        s.specVersion += 1
        s.updateStatus.state = .rollbackStarted
        s.updateStatus.startedAt = now
        s.updateStatus.completedAt = 0
        s.updateStatus.message = "manually requested rollback"
        return s
    }

    public func removeService(request: SwarmRemoveServiceRequest, context: ServerContext) async throws -> SwarmRemoveServiceResponse {
        let service = try lookup(SwarmService.self, request.serviceID)
        try await write { try $0.delete(SwarmService.self, id: service.id) }
        return SwarmRemoveServiceResponse()
    }

    public func listServices(request: SwarmListServicesRequest, context: ServerContext) async throws -> SwarmListServicesResponse {
        let view = store.view()
        let services = request.namePrefix.isEmpty ? view.find(SwarmService.self) : view.find(SwarmService.self, .namePrefix(request.namePrefix))
        return .with { $0.services = services }
    }

    // MARK: Tasks

    public func listTasks(request: SwarmListTasksRequest, context: ServerContext) async throws -> SwarmListTasksResponse {
        let view = store.view()
        var tasks: [SwarmTask]
        if !request.serviceIds.isEmpty {
            let ids = try request.serviceIds.map { try lookup(SwarmService.self, $0).id }
            tasks = ids.flatMap { view.find(SwarmTask.self, .service($0)) }
        } else {
            tasks = view.find(SwarmTask.self)
        }
        if !request.nodeIds.isEmpty {
            let nodes = Set(try request.nodeIds.map { try lookup(SwarmNode.self, $0).id })
            tasks = tasks.filter { nodes.contains($0.nodeID) }
        }
        if !request.desiredStates.isEmpty {
            let states = Set(request.desiredStates)
            tasks = tasks.filter { states.contains($0.desiredState) }
        }
        return .with { $0.tasks = tasks }
    }

    public func getTask(request: SwarmGetTaskRequest, context: ServerContext) async throws -> SwarmGetTaskResponse {
        try .with { $0.task = try lookup(SwarmTask.self, request.taskID) }
    }

    // MARK: Nodes

    public func listNodes(request: SwarmListNodesRequest, context: ServerContext) async throws -> SwarmListNodesResponse {
        .with { $0.nodes = store.view().find(SwarmNode.self) }
    }

    public func getNode(request: SwarmGetNodeRequest, context: ServerContext) async throws -> SwarmGetNodeResponse {
        try .with { $0.node = try lookup(SwarmNode.self, request.nodeID) }
    }

    public func updateNode(request: SwarmUpdateNodeRequest, context: ServerContext) async throws -> SwarmUpdateNodeResponse {
        var n = try lookup(SwarmNode.self, request.nodeID)
        if request.nodeVersion != 0 && request.nodeVersion != n.meta.version {
            throw ControlError.failedPrecondition("update out of sequence: node is at version \(n.meta.version), the update was based on \(request.nodeVersion)")
        }
        if n.spec.desiredRole == .manager && request.spec.desiredRole == .worker {
            let managers = store.view().find(SwarmNode.self).filter { $0.spec.desiredRole == .manager }
            if managers.count <= 1 { throw ControlError.failedPrecondition("cannot demote the last manager of the cluster") }
        }
        n.spec = request.spec
        try await write { try $0.update(n) }
        return .with { $0.node = store.view().get(SwarmNode.self, id: n.id) ?? n }
    }

    public func removeNode(request: SwarmRemoveNodeRequest, context: ServerContext) async throws -> SwarmRemoveNodeResponse {
        let n = try lookup(SwarmNode.self, request.nodeID)
        if n.spec.desiredRole == .manager || n.role == .manager {
            let managers = store.view().find(SwarmNode.self).filter { $0.role == .manager || $0.spec.desiredRole == .manager }
            if managers.count <= 1 { throw ControlError.failedPrecondition("cannot remove the last manager of the cluster") }
            throw ControlError.failedPrecondition("node \(n.id) is a manager: demote it before removing it")
        }
        if n.status.state == .ready && !request.force {
            throw ControlError.failedPrecondition("node \(n.id) is not down and can't be removed (use force to remove it anyway)")
        }
        // Its certificate is refused from now on, everywhere.
        try await write { tx in
            try tx.delete(SwarmNode.self, id: n.id)
            if var c = tx.find(SwarmCluster.self).first, !c.removedNodes.contains(n.id) {
                c.removedNodes.append(n.id)
                try tx.update(c)
            }
        }
        return SwarmRemoveNodeResponse()
    }

    public func listPlugins(request: SwarmListPluginsRequest, context: ServerContext) async throws -> SwarmListPluginsResponse {
        .with {
            $0.nodes = store.view().find(SwarmNode.self).map { n in
                SwarmNodePlugins.with {
                    $0.nodeID = n.id
                    $0.hostname = n.description_p.hostname
                    $0.plugins = n.description_p.plugins
                }
            }
        }
    }

    // MARK: Clusters

    public func getCluster(request: SwarmGetClusterRequest, context: ServerContext) async throws -> SwarmGetClusterResponse {
        try .with { $0.cluster = Self.redacted(try lookup(SwarmCluster.self, request.clusterID)) }
    }

    public func updateCluster(request: SwarmUpdateClusterRequest, context: ServerContext) async throws -> SwarmUpdateClusterResponse {
        var c = try lookup(SwarmCluster.self, request.clusterID)
        if request.clusterVersion != 0 && request.clusterVersion != c.meta.version {
            throw ControlError.failedPrecondition("update out of sequence: cluster is at version \(c.meta.version), the update was based on \(request.clusterVersion)")
        }
        let v = validation()
        if !request.spec.defaultStrategy.isEmpty && !v.strategies.contains(request.spec.defaultStrategy) {
            throw ControlError.invalidArgument("unknown strategy \"\(request.spec.defaultStrategy)\" (loaded: \(v.strategies.sorted().joined(separator: ", ")))")
        }
        try v.validate(filters: request.spec.defaultFilters)
        if request.spec.dispatcher.heartbeatPeriod < 0 || request.spec.orchestration.taskHistoryRetentionLimit < 0 {
            throw ControlError.invalidArgument("heartbeat period and task history retention must not be negative")
        }
        var spec = request.spec
        spec.annotations.name = c.spec.annotations.name
        // Autolock: a key when it is turned on (or rotated), none when it is turned off.
        if spec.encryptionConfig.autoLockManagers {
            if c.unlockKey.isEmpty || request.rotateManagerUnlockKey { c.unlockKey = UnlockKey().description }
        } else if request.rotateManagerUnlockKey {
            throw ControlError.failedPrecondition("autolock is off: there is no unlock key to rotate (turn it on with --autolock)")
        } else {
            c.unlockKey = ""
        }
        let expiry = spec.caConfig.nodeCertExpiry
        if expiry == 0 {
            spec.caConfig.nodeCertExpiry = c.spec.caConfig.nodeCertExpiry
        } else if Double(expiry) / 1e9 < RootCA.minimumNodeValidity {
            throw ControlError.invalidArgument("node certificate expiry \(Double(expiry) / 1e9) s is below the minimum of \(Int(RootCA.minimumNodeValidity)) s")
        }
        c.spec = spec
        let digest = (try? PEMFiles.certificate(String(decoding: c.rootCaCert, as: UTF8.self), what: "the root CA")).map(RootCA.digest(of:)) ?? ""
        if request.rotateRootCa {
            do { try ClusterCA.startRotation(&c) } catch {
                throw ControlError.failedPrecondition("cannot start a root CA rotation: \(error)")
            }
        }
        if request.rotateWorkerToken { c.joinTokens.worker = ClusterBootstrap.rotated(c.joinTokens.worker, digest: digest) }
        if request.rotateManagerToken { c.joinTokens.manager = ClusterBootstrap.rotated(c.joinTokens.manager, digest: digest) }
        try await write { try $0.update(c) }
        return .with { $0.cluster = Self.redacted(store.view().get(SwarmCluster.self, id: c.id) ?? c) }
    }

    /// A cluster as the API returns it: without the root CA's key or the unlock key.
    static func redacted(_ cluster: SwarmCluster) -> SwarmCluster {
        var c = cluster
        c.rootCaKey = Data()
        c.unlockKey = ""
        if c.hasRootRotation { c.rootRotation.caKey = Data() }
        return c
    }

    public func getUnlockKey(request: SwarmGetUnlockKeyRequest, context: ServerContext) async throws -> SwarmGetUnlockKeyResponse {
        guard let c = store.view().find(SwarmCluster.self).first else { throw ControlError.unavailable("the cluster is not created yet") }
        if c.unlockKey.isEmpty { throw ControlError.failedPrecondition("autolock is off: there is no unlock key") }
        return .with { $0.unlockKey = c.unlockKey }
    }

    // MARK: Plumbing

    func lookup<T: StoreObject>(_ type: T.Type, _ reference: String) throws -> T {
        do {
            return try store.view().lookup(type, reference)
        } catch .noMatch(let table, let ref) {
            throw ControlError.notFound("\(table.rawValue.dropLast()) \(ref) not found")
        } catch {
            throw ControlError.invalidArgument(error.description)
        }
    }

    /// Writes through the replicated store; its errors map themselves to RPC errors.
    func write(_ body: (inout WriteTx) throws -> Void) async throws {
        try await store.update { tx in try body(&tx) }
    }

}
