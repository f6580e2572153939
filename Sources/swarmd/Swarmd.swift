import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAgent
import SwarmAPI
import SwarmCA
import SwarmConstraints
import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import SwarmScheduler
import ServiceLifecycle
import SwiftProtobuf
import UnixSignals

/// swarmd: one binary for managers and workers.
///
/// Without `--join-addr` it bootstraps a new cluster and becomes its first manager. With
/// `--join-addr` and a manager token it joins the managers' Raft group; with a worker
/// token it joins as a worker. Every node also runs an agent that executes tasks.
@main
struct Swarmd: AsyncParsableCommand, Sendable {
    static let configuration = CommandConfiguration(commandName: "swarmd", abstract: "Run a swift-swarm node (manager or worker)")

    @Option(name: [.customShort("d"), .customLong("state-dir")], help: "State directory")
    var stateDir = "./swarmd-state"

    @Option(help: "Node hostname (defaults to the machine's)")
    var hostname: String?

    @Option(help: "Address for managers and agents to reach this node")
    var listenRemoteAPI = "0.0.0.0:4242"

    @Option(help: "Address to advertise to other nodes (defaults to the listen address)")
    var advertiseRemoteAPI: String?

    @Option(help: "Unix socket for the control API (default: <state-dir>/swarmd.sock)")
    var listenControlAPI: String?

    @Option(help: "Address of a manager to join")
    var joinAddr: String?

    @Option(help: "Join token, SWMTKN-1-… (from `swarmctl cluster inspect default`)")
    var joinToken: String?

    @Option(help: "Directory of plugins (.so) to load")
    var pluginDir: String?

    @Option(help: "Generic resources, e.g. fpga=2,gpu=UUID1,gpu=UUID2")
    var genericNodeResources: String?

    @Option(help: "Heartbeat ticks")
    var heartbeatTick = 1

    @Option(help: "Election ticks")
    var electionTick = 10

    @Flag(help: "Recover from a lost quorum: make this manager the only one, keeping the data")
    var forceNewCluster = false

    @Option(help: "Address (host:port) to serve Prometheus metrics on, at /metrics (managers)")
    var listenMetrics: String?

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical)")
    var logLevel = "info"

    @Option(help: "The managers' unlock key (SWMKEY-1-…), for a manager of a cluster with autolock on; without it such a manager starts locked and waits for `swarmctl node unlock`")
    var unlockKey: String?

    @Option(help: "Docker Engine socket for the docker executor, unix:///path (default: DOCKER_HOST, else /var/run/docker.sock)")
    var dockerHost: String?

    /// Makes the state directory absolute: executors and the agent resolve task paths
    /// under it from other working directories.
    mutating func validate() throws {
        stateDir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        if let dockerHost, !(dockerHost.hasPrefix("unix:///") || dockerHost.hasPrefix("/")) {
            throw ValidationError("--docker-host \(dockerHost): give the engine's unix socket, as unix:///path (TCP engines are not supported)")
        }
    }

    func run() async throws {
        // A peer that goes away must not kill the daemon through a write to its socket.
        signal(SIGPIPE, SIG_IGN)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "swarmd")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        // The docker executor reads DOCKER_HOST when it loads.
        if let dockerHost { setenv("DOCKER_HOST", dockerHost, 1) }
        let plugins = try loadPlugins(logger)
        var generic: [SwarmGenericResource] = []
        if let text = genericNodeResources {
            do { generic = try GenericResources.parse(text) } catch { throw ValidationError("\(error)") }
        }
        // The state directory holds the node's key and the control socket: its owner only.
        chmod(stateDir, 0o700)
        // Autolock: sealed keys need the unlock key, given here or over the control socket.
        var unlock: UnlockKey?
        if let unlockKey {
            do { unlock = try UnlockKey(parsing: unlockKey) } catch { throw StartError("--unlock-key: \(error)") }
        } else if NodeCredentials.isLocked(directory: stateDir + "/certificates") {
            unlock = try await LockedManager.waitForUnlock(socket: listenControlAPI ?? stateDir + "/swarmd.sock",
                                                           certificates: stateDir + "/certificates", logger: logger)
        }
        let (credentials, seed) = try await NodeSecurity.credentials(stateDir: stateDir, nodeID: try persistentNodeID(), unlockKey: unlock,
                                                                     joinAddr: joinAddr, joinToken: joinToken, logger: logger)
        let nodeID = credentials.identity.nodeID
        let security = ClientSecurity.mutualTLS(credentials)
        // What the node writes to disk (the Raft log and snapshots, the task records) is
        // sealed with its data key.
        let dataKey: DataCipher
        do { dataKey = try DataKeyFile.loadOrCreate(Autolock.dataKeyPath(stateDir), unlockKey: credentials.sealing) } catch {
            throw StartError("\(error)")
        }
        let advertise = advertiseRemoteAPI ?? listenRemoteAPI.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
        var probed = NodeDescriptionProbe.describe(hostname: hostname, plugins: plugins)
        // GPUs: discovered with nvidia-smi when there is one, else those declared as named
        // gpu units; declared GPUs are devices, not generic units, so they are counted once.
        let declared = GPUInventory.declared(generic)
        let discovered = NodeDescriptionProbe.discoverGPUs(logger)
        probed.gpus = discovered.isEmpty ? declared.gpus : discovered
        probed.resources.generic = declared.rest
        if !probed.gpus.isEmpty {
            logger.info("GPUs: \(probed.gpus.map { "\($0.index):\($0.uuid)\($0.model.isEmpty ? "" : " " + $0.model)" }.joined(separator: ", "))")
        }
        let description = probed

        let raftDir = stateDir + "/raft"
        var joined: SwarmJoinResponse?
        var isManager = FileManager.default.fileExists(atPath: raftDir + "/raft-id")
        if !isManager && seed != nil {
            isManager = true  // this node founds the cluster
        } else if !isManager && credentials.identity.role == .manager, let joinAddr {
            // A manager certificate: this node joins the managers' Raft group.
            do {
                joined = try await RaftNode.joinCluster(via: joinAddr, advertise: advertise, nodeID: nodeID, security: security)
                isManager = true
            } catch let e as RPCError {
                throw StartError("cannot join the managers at \(joinAddr): \(e.message)")
            }
        } else if !isManager && joinAddr == nil {
            throw StartError("this node is a worker of cluster \(credentials.identity.clusterID): give --join-addr, the address of one of its managers")
        }
        if plugins.names(.executor).isEmpty {
            if !isManager { throw ValidationError("no executor plugin is loaded; a worker needs at least one (see --plugin-dir)") }
            logger.warning("no executor plugin is loaded: this node will run no tasks")
        }
        let agent: Agent
        do {
            agent = try Agent(config: .init(nodeID: nodeID, stateDir: stateDir + "/agent",
                                            managers: isManager ? [advertise] : [joinAddr!],
                                            joinToken: "", description: description, security: security, dataKey: dataKey),
                              plugins: plugins)
        } catch {
            throw ValidationError("\(error)")
        }
        let (roleRequests, requestRole) = AsyncStream.makeStream(of: (SwarmNodeSpec.Role, String).self,
                                                                 bufferingPolicy: .bufferingNewest(1))
        agent.onDesiredRole { role, token in requestRole.yield((role, token)) }
        let renewal = CertificateRenewal(credentials: credentials, managers: { agent.managerAddresses }, logger: logger)
        agent.onSessionMessage { m in
            if m.nodeCertExpiry > 0 { renewal.clusterExpiryChanged(m.nodeCertExpiry) }
            if !m.trustedRoots.isEmpty { renewal.rootsChanged(m.trustedRoots, signing: m.signingRootDigest) }
        }
        let manager = ManagerRole(options: self, nodeID: nodeID, advertise: advertise, plugins: plugins, agent: agent,
                                  credentials: credentials, seed: seed, renewal: renewal, dataKey: dataKey, logger: logger)
        if !isManager { logger.info("joining \(joinAddr!) as worker \(nodeID)") }
        let startAsManager = isManager
        let firstJoin = joined
        // The node's long-lived parts, in one service group that shuts down gracefully on
        // SIGTERM or SIGINT: the agent, and the role loop that runs the manager's parts
        // (their own group) while this node is a manager.
        let roles = NodePart("role", onShutdown: .followedByBody) {
            // Switches between manager and worker as the cluster asks.
            var managing = startAsManager
            var join = firstJoin
            while !Task.isCancelled {
                if managing {
                    guard case .removed(let others) = try await manager.run(joined: join) else { return }
                    logger.notice("demoted: this node is now a worker")
                    try? FileManager.default.removeItem(atPath: raftDir)
                    agent.setManagers(others)
                    // Autolock is for managers: a worker's keys are kept in the clear.
                    try? Autolock.set(nil, credentials: credentials, dataKey: dataKey, stateDir: stateDir)
                    // Its certificate follows: a worker's, from the remaining managers.
                    Task {
                        for attempt in 1...30 {
                            do { try await renewal.renew(role: .worker); return } catch {
                                logger.warning("demotion: worker certificate (attempt \(attempt)): \(error)")
                            }
                            try? await Task.sleep(for: .seconds(1))
                        }
                    }
                    managing = false
                    join = nil
                } else {
                    // Ends (nil) when the node shuts down.
                    let promoted = await cancelWhenGracefulShutdown { await manager.waitForPromotion(roleRequests) }
                    guard let next = promoted else { return }
                    logger.notice("promoted: this node is now a manager")
                    join = next
                    managing = true
                }
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: [.ending(NodePart("agent") { await agent.run() }), .ending(roles),
                       .ending(NodePart("certificate renewal") { await renewal.run() })],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        // A part that failed (a remote API that cannot listen) ends swarmd with its error.
        try await group.run()
    }

    func loadPlugins(_ logger: Logger) throws -> PluginRegistry {
        let registry = PluginRegistry()
        let dir = pluginDir ?? Self.defaultPluginDir()
        for error in registry.loadDirectory(dir) { logger.error("\(error)") }
        for r in registry.records { logger.info("loaded \(r.kind.rawValue) \(r.name) \(r.version) (ABI \(r.abiMajor).\(r.abiMinor)) from \(r.file)") }
        return registry
    }

    /// Next to the binary: SwiftPM puts the plugin libraries there.
    static func defaultPluginDir() -> String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    func persistentNodeID() throws -> String {
        let path = stateDir + "/node-id"
        if let id = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !id.isEmpty {
            return id
        }
        let id = Identifiers.make()
        try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return id
    }
}

/// What this machine reports about itself.
enum NodeDescriptionProbe {
    /// GPUs from `nvidia-smi`, when it is installed and answers within 10 s.
    static func discoverGPUs(_ logger: Logger) -> [SwarmGPUDevice] {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/nvidia-smi" }
        guard let smi = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return [] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: smi)
        p.arguments = ["--query-gpu=\(GPUInventory.nvidiaSMIFields)", "--format=csv,noheader,nounits"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            logger.warning("nvidia-smi: \(error)")
            return []
        }
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { p.terminate(); logger.warning("nvidia-smi did not answer within 10 s"); return [] }
        let (gpus, problems) = GPUInventory.parseNvidiaSMI(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        for problem in problems { logger.warning("\(problem)") }
        return gpus
    }

    static func describe(hostname: String?, plugins: PluginRegistry) -> SwarmNodeDescription {
        var d = SwarmNodeDescription()
        d.hostname = hostname ?? ProcessInfo.processInfo.hostName
        d.platform.os = "linux"
        #if arch(x86_64)
        d.platform.architecture = "x86_64"
        #else
        d.platform.architecture = "aarch64"
        #endif
        d.resources.nanoCpus = Int64(ProcessInfo.processInfo.activeProcessorCount) * 1_000_000_000
        d.resources.memoryBytes = Int64(ProcessInfo.processInfo.physicalMemory)
        d.plugins = plugins.records.map { r in
            SwarmPluginDescription.with {
                $0.name = r.name
                $0.kind = r.kind.rawValue
                $0.version = r.version
                $0.abiMajor = r.abiMajor
                $0.abiMinor = r.abiMinor
                $0.file = r.file
            }
        }
        return d
    }
}
