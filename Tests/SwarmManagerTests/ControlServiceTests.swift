import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmClient
import SwarmAPI
@testable import SwarmManager
import SwarmRaftNode
import SwarmRPC
import SwarmStore
import SwiftProtobuf
import Testing

/// The control API over real gRPC (TCP and a unix socket) against a one-manager cluster.
@Suite(.serialized) struct ControlServiceTests {
    final class Manager: @unchecked Sendable {
        let node: RaftNode
        let tcp: GRPCServer<HTTP2ServerTransport.Posix>
        let unix: GRPCServer<HTTP2ServerTransport.Posix>
        let socket: String
        let stateDir: String
        var addr = ""

        init() async throws {
            let dir = NSTemporaryDirectory() + "swarm-ctl-\(UUID().uuidString)"
            stateDir = dir
            var config = RaftNodeConfig(stateDir: dir, advertiseAddr: "127.0.0.1:0")
            config.tickInterval = .milliseconds(10)
            node = try RaftNode(config: config)
            let control = ControlService(node: node) { SpecValidation(strategies: ["spread", "binpack"], runtimes: ["process"]) }
            tcp = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
                             services: [control, RaftService(node: node)],
            interceptorPipeline: LeaderInterceptor.pipeline(node))
            socket = dir + ".sock"
            unix = GRPCServer(transport: .http2NIOPosix(address: .unixDomainSocket(path: socket), transportSecurity: .plaintext),
                              services: [control],
            interceptorPipeline: LeaderInterceptor.pipeline(node))
            let (t, u) = (tcp, unix)
            Task { try await t.serve() }
            Task { try await u.serve() }
            if let a = try await tcp.listeningAddress?.ipv4 { addr = "127.0.0.1:\(a.port)" }
            node.start()
            for await leader in node.leadershipChanges() where leader { break }
            try await ClusterBootstrap.ensureCluster(node.store)
        }

        func stop() {
            node.stop()
            tcp.beginGracefulShutdown()
            unix.beginGracefulShutdown()
            try? FileManager.default.removeItem(atPath: stateDir)
        }

        func call<R: Sendable>(_ body: (SwarmControl.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
            try await withControlClient(addr, body)
        }
    }

    static func spec(_ name: String, replicas: UInt64 = 3, strategy: String = "", runtime: String = "",
                     constraints: [String] = [], command: String = "/bin/sleep") -> SwarmServiceSpec {
        SwarmServiceSpec.with {
            $0.annotations.name = name
            $0.replicated.replicas = replicas
            $0.task.process.command = command
            $0.task.process.args = ["3600"]
            $0.task.strategy = strategy
            $0.task.runtimeName = runtime
            $0.task.placement.constraints = constraints
        }
    }

    static func code(_ body: () async throws -> Void) async -> (RPCError.Code, String)? {
        do {
            try await body()
            return nil
        } catch let e as RPCError {
            return (e.code, e.message)
        } catch {
            return nil
        }
    }

    @Test func serviceLifecycle() async throws {
        let m = try await Manager()
        defer { m.stop() }
        let created = try await m.call { try await $0.createService(.with { $0.spec = Self.spec("web") }) }.service
        #expect(created.id.count == 25 && created.specVersion == 1 && created.meta.version > 0)
        let byPrefix = try await m.call { try await $0.getService(.with { $0.serviceID = "we" }) }.service
        #expect(byPrefix.id == created.id)
        let byIDPrefix = try await m.call { try await $0.getService(.with { $0.serviceID = String(created.id.prefix(6)) }) }.service
        #expect(byIDPrefix.id == created.id)
        let updated = try await m.call {
            try await $0.updateService(.with {
                $0.serviceID = "web"
                $0.serviceVersion = created.meta.version
                $0.spec = Self.spec("web", replicas: 6)
            })
        }.service
        #expect(updated.specVersion == 2 && updated.spec.replicated.replicas == 6 && updated.previousSpec.replicated.replicas == 3)
        let stale = await Self.code {
            _ = try await m.call {
                try await $0.updateService(.with {
                    $0.serviceID = "web"
                    $0.serviceVersion = created.meta.version
                    $0.spec = Self.spec("web", replicas: 1)
                })
            }
        }
        #expect(stale?.0 == .failedPrecondition)
        _ = try await m.call { try await $0.removeService(.with { $0.serviceID = "web" }) }
        let gone = await Self.code { _ = try await m.call { try await $0.getService(.with { $0.serviceID = created.id }) } }
        #expect(gone?.0 == .notFound)
        // The unix socket serves the same API.
        let viaSocket = try await withControlClient("unix:\(m.socket)") { try await $0.listServices(.init()) }
        #expect(viaSocket.services.isEmpty)
    }

    @Test func badSpecsAreRefusedAndNothingIsStored() async throws {
        let m = try await Manager()
        defer { m.stop() }
        _ = try await m.call { try await $0.createService(.with { $0.spec = Self.spec("taken") }) }
        let cases: [(SwarmServiceSpec, String)] = [
            (Self.spec(""), "service name must not be empty"),
            (Self.spec("taken"), "service name \"taken\" is already in use"),
            (Self.spec("bad name!"), "is invalid"),
            (Self.spec("s1", strategy: "nope"), "unknown strategy \"nope\""),
            (Self.spec("s2", runtime: "lxc"), "unknown runtime \"lxc\""),
            (Self.spec("s3", constraints: ["node.labels.zone=east"]), "malformed constraint"),
            (Self.spec("s4", command: ""), "the task has no command"),
            (SwarmServiceSpec.with { $0.annotations.name = "s5"; $0.task.process.command = "/bin/true" }, "service mode is not set"),
            (SwarmServiceSpec.with {
                $0 = Self.spec("s6")
                $0.task.resources.reservations.generic = [SwarmGenericResource.with { $0.kind = "gpu"; $0.value = 0 }]
            }, "malformed generic resource"),
            (SwarmServiceSpec.with {
                $0 = Self.spec("s7")
                $0.task.resources.gpu = .with { $0.count = 2; $0.milli = 300 }
            }, "a fraction (300 milli) can only be of one GPU"),
            (SwarmServiceSpec.with {
                $0 = Self.spec("s8")
                $0.task.resources.gpu = .with { $0.count = 1; $0.milli = 1001 }
            }, "more than a whole GPU"),
            (SwarmServiceSpec.with {
                $0 = Self.spec("s9")
                $0.task.filters = ["no-such-filter"]
            }, "unknown filter \"no-such-filter\""),
        ]
        for (spec, message) in cases {
            let result = await Self.code { _ = try await m.call { try await $0.createService(.with { $0.spec = spec }) } }
            #expect(result?.0 == .invalidArgument, "\(message)")
            #expect(result?.1.contains(message) == true, "got \(String(describing: result?.1)), wanted \(message)")
        }
        let all = try await m.call { try await $0.listServices(.init()) }.services
        #expect(all.map(\.spec.annotations.name) == ["taken"])
        let missing = await Self.code { _ = try await m.call { try await $0.getTask(.with { $0.taskID = "nope" }) } }
        #expect(missing?.0 == .notFound)
    }

    @Test func badUpdatesAreRefusedAndChangeNothing() async throws {
        let m = try await Manager()
        defer { m.stop() }
        let created = try await m.call { try await $0.createService(.with { $0.spec = Self.spec("web") }) }.service
        let refused = await Self.code {
            _ = try await m.call { try await $0.updateService(.with { $0.serviceID = "web"; $0.rollback = true }) }
        }
        #expect(refused?.0 == .invalidArgument && refused?.1.contains("has no previous spec to roll back to") == true, "\(String(describing: refused))")
        let cases: [((inout SwarmServiceSpec) -> Void, String)] = [
            ({ $0.update.maxFailureRatio = 1.5 }, "update max failure ratio must be between 0 and 1"),
            ({ $0.rollback.maxFailureRatio = -0.1 }, "rollback max failure ratio must be between 0 and 1"),
            ({ $0.update.failureAction = .UNRECOGNIZED(9) }, "unknown update failure action 9"),
            ({ $0.update.order = .UNRECOGNIZED(4) }, "unknown update order 4"),
            ({ $0.update.monitor = -1 }, "update monitor must not be negative"),
            ({ $0.task.healthcheck = .with { $0.test = ["CMD-SHELL", "true"] } }, "health interval must be positive"),
            ({ $0.task.healthcheck = .with { $0.test = ["CMD"]; $0.interval = 1 } }, "needs a command after it"),
            ({ $0.task.healthcheck = .with { $0.interval = 1 } }, "without a health command"),
            ({ $0.replicatedJob = SwarmReplicatedJob() }, "a service's mode cannot change (replicated to replicated-job)"),
            ({ $0.rollback.failureAction = .rollback }, "a rollback's failure action must be pause or continue"),
        ]
        for (change, message) in cases {
            var spec = created.spec
            change(&spec)
            let result = await Self.code {
                _ = try await m.call { try await $0.updateService(.with { $0.serviceID = "web"; $0.spec = spec }) }
            }
            #expect(result?.0 == .invalidArgument, "\(message)")
            #expect(result?.1.contains(message) == true, "got \(String(describing: result?.1)), wanted \(message)")
        }
        let after = try await m.call { try await $0.getService(.with { $0.serviceID = "web" }) }.service
        #expect(after == created, "nothing changed")
        let global = try await m.call {
            try await $0.createService(.with { $0.spec = Self.spec("g"); $0.spec.global = SwarmGlobalService() })
        }.service
        var rebalanced = global.spec
        rebalanced.rebalance = 1
        let refusedRebalance = await Self.code {
            _ = try await m.call { try await $0.updateService(.with { $0.serviceID = "g"; $0.spec = rebalanced }) }
        }
        #expect(refusedRebalance?.0 == .invalidArgument && refusedRebalance?.1.contains("replicated services only") == true)
        // A good update keeps the old spec as the previous one and starts an update.
        var spec = created.spec
        spec.task.process.args = ["2"]
        let updated = try await m.call { try await $0.updateService(.with { $0.serviceID = "web"; $0.spec = spec }) }.service
        #expect(updated.previousSpec == created.spec && updated.specVersion == created.specVersion + 1)
        #expect(updated.updateStatus.state == .updating && updated.updateStatus.startedAt > 0)
        // The replica count alone starts no update.
        spec.replicated.replicas = 2
        let scaled = try await m.call { try await $0.updateService(.with { $0.serviceID = "web"; $0.spec = spec }) }.service
        #expect(scaled.updateStatus.startedAt == updated.updateStatus.startedAt)
    }

    @Test func containerMountsAndPortsAreCheckedBeforeAnythingIsStored() throws {
        let v = SpecValidation(strategies: [], runtimes: ["docker"])
        var spec = SwarmTaskSpec()
        spec.container.image = "busybox"
        spec.healthcheck = .with { $0.test = ["CMD", "true"]; $0.interval = 1 }
        spec.ports = [.with { $0.targetPort = 80; $0.publishedPort = 8080 }, .with { $0.targetPort = 53; $0.publishedPort = 8080; $0.protocol = "udp" }]
        spec.container.mounts = [.with { $0.type = .mountBind; $0.source = "/srv"; $0.target = "/data" },
                                 .with { $0.type = .mountTmpfs; $0.target = "/scratch"; $0.tmpfsSizeBytes = 1 << 20 },
                                 .with { $0.type = .mountVolume; $0.target = "/cache" }]
        #expect(throws: Never.self) { try v.validate(spec) }
        let bad: [(String, (inout SwarmTaskSpec) -> Void)] = [
            ("mount target \"data\" must be an absolute path", { $0.container.mounts[0].target = "data" }),
            ("bind mount at /data: the source must be an absolute host path", { $0.container.mounts[0].source = "srv" }),
            ("tmpfs mount at /scratch: a tmpfs has no source", { $0.container.mounts[1].source = "/x" }),
            ("volume mount at /cache: \"a/b\" is not a volume name", { $0.container.mounts[2].source = "a/b" }),
            ("two mounts at /data", { $0.container.mounts[1].target = "/data"; $0.container.mounts[1].source = "" }),
            ("mount at /data: a size applies to a tmpfs only, and must not be negative", { $0.container.mounts[0].tmpfsSizeBytes = 5 }),
            ("port 8080/tcp is published twice", { $0.ports[1].protocol = "tcp" }),
            ("target port 0 is outside 1-65535", { $0.ports[0].targetPort = 0 }),
            ("published port 70000 is outside 1-65535", { $0.ports[0].publishedPort = 70000 }),
            ("port protocol \"icmp\" must be tcp, udp or sctp", { $0.ports[0].protocol = "icmp" }),
        ]
        for (message, change) in bad {
            var broken = spec
            change(&broken)
            #expect(throws: ControlError.invalidArgument(message)) { try v.validate(broken) }
        }
    }

    @Test func mountAndPublishFlagsParseAsDockerWritesThem() throws {
        let bind = try ContainerOptions.mount("type=bind,src=/srv,dst=/data,ro")
        #expect(bind.type == .mountBind && bind.source == "/srv" && bind.target == "/data" && bind.readOnly)
        let tmpfs = try ContainerOptions.mount("type=tmpfs,target=/t,tmpfs-size=64MiB")
        #expect(tmpfs.type == .mountTmpfs && tmpfs.tmpfsSizeBytes == 64 << 20 && !tmpfs.readOnly)
        #expect(try ContainerOptions.mount("source=cache,target=/c").type == .mountVolume)
        let port = try ContainerOptions.port("8080:80/udp")
        #expect(port.publishedPort == 8080 && port.targetPort == 80 && port.protocol == "udp")
        let long = try ContainerOptions.port("published=9000,target=90,mode=host")
        #expect(long.publishedPort == 9000 && long.targetPort == 90)
        for bad in ["type=nfs,target=/x", "target=/x,colour=red", "source=/a", "type=bind,target=/x,readonly=maybe",
                    "type=tmpfs,target=/x,tmpfs-size=lots"] {
            #expect(throws: ContainerOptions.ParseError.self) { try ContainerOptions.mount(bad) }
        }
        for bad in ["80", "a:80", "8080:80:1", "published=80,target=80,mode=ingress", "published=80", "8080:0"] {
            #expect(throws: ContainerOptions.ParseError.self) { try ContainerOptions.port(bad) }
        }
    }

    @Test func clusterHasTokensThatRotate() async throws {
        let m = try await Manager()
        defer { m.stop() }
        let c = try await m.call { try await $0.getCluster(.with { $0.clusterID = "default" }) }.cluster
        #expect(c.joinTokens.worker.hasPrefix("SWMTKN-1-") && c.joinTokens.manager.hasPrefix("SWMTKN-1-"))
        #expect(c.joinTokens.worker != c.joinTokens.manager)
        #expect(c.spec.dispatcher.heartbeatPeriod == 5_000_000_000 && c.spec.defaultStrategy == "spread")
        var spec = c.spec
        spec.defaultStrategy = "binpack"
        let updated = try await m.call {
            try await $0.updateCluster(.with {
                $0.clusterID = "default"
                $0.clusterVersion = c.meta.version
                $0.spec = spec
                $0.rotateWorkerToken = true
            })
        }.cluster
        #expect(updated.spec.defaultStrategy == "binpack")
        #expect(updated.joinTokens.worker != c.joinTokens.worker && updated.joinTokens.manager == c.joinTokens.manager)
        spec.defaultStrategy = "magic"
        let bad = await Self.code {
            _ = try await m.call { try await $0.updateCluster(.with { $0.clusterID = "default"; $0.spec = spec }) }
        }
        #expect(bad?.0 == .invalidArgument && bad?.1.contains("unknown strategy \"magic\"") == true)
    }

    @Test func lastManagerIsProtectedAndWorkersNeedForceWhileUp() async throws {
        let m = try await Manager()
        defer { m.stop() }
        try await m.node.store.update { tx in
            try tx.create(SwarmNode.with {
                $0.id = "mgr"
                $0.role = .manager
                $0.spec.desiredRole = .manager
                $0.description_p.hostname = "alpha"
                $0.status.state = .ready
            })
            try tx.create(SwarmNode.with {
                $0.id = "wrk"
                $0.role = .worker
                $0.description_p.hostname = "beta"
                $0.status.state = .ready
                $0.description_p.plugins = [SwarmPluginDescription.with { $0.name = "process"; $0.kind = "executor"; $0.version = "1.0.0" }]
            })
        }
        let demote = await Self.code {
            _ = try await m.call { try await $0.updateNode(.with { $0.nodeID = "alpha"; $0.spec.desiredRole = .worker }) }
        }
        #expect(demote?.0 == .failedPrecondition && demote?.1 == "cannot demote the last manager of the cluster")
        let removeManager = await Self.code { _ = try await m.call { try await $0.removeNode(.with { $0.nodeID = "mgr" }) } }
        #expect(removeManager?.1 == "cannot remove the last manager of the cluster")
        let removeUp = await Self.code { _ = try await m.call { try await $0.removeNode(.with { $0.nodeID = "beta" }) } }
        #expect(removeUp?.0 == .failedPrecondition)
        let drained = try await m.call {
            try await $0.updateNode(.with { $0.nodeID = "beta"; $0.spec.availability = .drain; $0.spec.annotations.labels = ["zone": "a"] })
        }.node
        #expect(drained.spec.availability == .drain && drained.spec.annotations.labels["zone"] == "a")
        let plugins = try await m.call { try await $0.listPlugins(.init()) }.nodes
        #expect(plugins.first { $0.nodeID == "wrk" }?.plugins.map(\.name) == ["process"])
        _ = try await m.call { try await $0.removeNode(.with { $0.nodeID = "beta"; $0.force = true }) }
        #expect(try await m.call { try await $0.listNodes(.init()) }.nodes.map(\.id) == ["mgr"])
    }
}
