import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAgent
import SwarmAPI
import SwarmManager
import SwarmPluginHost
import SwarmRaftNode
import SwarmScheduler

/// swarmd: one binary for managers and workers.
///
/// Without `--join-addr` it bootstraps a new cluster and becomes its first manager. With
/// `--join-addr` and a manager token it joins the managers' Raft group; with a worker
/// token it joins as a worker. Every node also runs an agent that executes tasks.
@main
struct Swarmd: AsyncParsableCommand {
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

    @Option(help: "Join token (from `swarmctl cluster inspect default`)")
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

    @Option(help: "Log level (trace, debug, info, notice, warning, error, critical)")
    var logLevel = "info"

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
        let plugins = try loadPlugins(logger)
        var generic: [SwarmGenericResource] = []
        if let text = genericNodeResources {
            do { generic = try GenericResources.parse(text) } catch { throw ValidationError("\(error)") }
        }
        let nodeID = try persistentNodeID()
        let advertise = advertiseRemoteAPI ?? listenRemoteAPI.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
        var probed = NodeDescriptionProbe.describe(hostname: hostname, plugins: plugins)
        probed.resources.generic = generic
        let description = probed

        let isManagerState = FileManager.default.fileExists(atPath: stateDir + "/raft/raft-id")
        var joined: SwarmJoinResponse?
        var role = "manager"
        if !isManagerState, let joinAddr {
            do {
                joined = try await RaftNode.joinCluster(via: joinAddr, advertise: advertise, nodeID: nodeID, token: joinToken ?? "")
            } catch let e as RPCError where e.code == .failedPrecondition {
                role = "worker"
            } catch let e as RPCError where e.code == .permissionDenied {
                throw ValidationError("the cluster at \(joinAddr) refused the join token")
            }
        }
        if role == "worker" {
            guard plugins.executor("process") != nil || !plugins.names(.executor).isEmpty else {
                throw ValidationError("no executor plugin is loaded; a worker needs at least one (see --plugin-dir)")
            }
            logger.info("joining \(joinAddr!) as worker \(nodeID)")
            let agent: Agent
            do {
                agent = try Agent(config: .init(nodeID: nodeID, stateDir: stateDir + "/agent", managers: [joinAddr!],
                                                joinToken: joinToken ?? "", description: description), plugins: plugins)
            } catch {
                throw ValidationError("\(error)")
            }
            try await runUntilTerminated { await agent.run() }
            return
        }

        var config = RaftNodeConfig(stateDir: stateDir + "/raft", advertiseAddr: advertise)
        config.electionTick = electionTick
        config.heartbeatTick = heartbeatTick
        let node = try RaftNode(config: config, joined: joined, forceNewCluster: forceNewCluster, logger: Logger(label: "swarm.raft"))
        let dispatcher = Dispatcher(node: node)
        let control = ControlService(node: node, logs: dispatcher.logs) {
            let reported = node.store.view().find(SwarmNode.self).flatMap { $0.description_p.plugins.filter { $0.kind == "executor" }.map(\.name) }
            return SpecValidation(strategies: Set(plugins.names(.strategy)), runtimes: Set(plugins.names(.executor) + reported))
        }
        guard let (host, port) = NetworkAddress.split(listenRemoteAPI) else { throw ValidationError("bad --listen-remote-api \(listenRemoteAPI)") }
        let remote = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                                services: [RaftService(node: node), control, dispatcher])
        let socket = listenControlAPI ?? stateDir + "/swarmd.sock"
        unlink(socket)
        let local = GRPCServer(transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
                               services: [control])
        let leader = LeaderComponents(node: node, plugins: plugins, dispatcher: dispatcher)
        let agentToken: @Sendable () -> String = { node.store.view().find(SwarmCluster.self).first?.joinTokens.manager ?? "" }
        // The manager's own agent (opened now, so that a damaged task database stops the start).
        let agent: Agent
        do {
            agent = try Agent(config: .init(nodeID: nodeID, stateDir: stateDir + "/agent", managers: [advertise],
                                            joinToken: "", description: description), plugins: plugins)
        } catch {
            throw ValidationError("\(error)")
        }
        try await runUntilTerminated {
            await withDiscardingTaskGroup { group in
                group.addTask { try? await remote.serve() }
                group.addTask { try? await local.serve() }
                node.start()
                logger.info("manager \(nodeID) serving on \(listenRemoteAPI), control socket \(socket)")
                group.addTask { await leader.run() }
                group.addTask {
                    // The manager's own agent, once the cluster (and its tokens) exists.
                    var token = ""
                    while token.isEmpty && !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(200))
                        token = agentToken()
                    }
                    agent.joinToken = token
                    await agent.run()
                }
            }
        } onStop: {
            node.stop()
            remote.beginGracefulShutdown()
            local.beginGracefulShutdown()
        }
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

    /// Runs `body` until it returns or SIGTERM/SIGINT arrives; then calls `onStop`.
    func runUntilTerminated(_ body: @escaping @Sendable () async -> Void, onStop: @escaping @Sendable () -> Void = {}) async throws {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let work = Task { await body() }
        let (signals, cont) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            let s = DispatchSource.makeSignalSource(signal: sig)
            s.setEventHandler { cont.yield(sig) }
            s.resume()
            return s
        }
        Task { await work.value; cont.finish() }
        defer { withExtendedLifetime(sources) {} }
        for await sig in signals {
            Logger(label: "swarmd").notice("signal \(sig): shutting down")
            onStop()
            work.cancel()
            break
        }
    }
}

/// What this machine reports about itself.
enum NodeDescriptionProbe {
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
