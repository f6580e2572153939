import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmRPC
import SwarmRaftNode

/// Replicated-store figures on loopback with fsync on: committed proposals per second and
/// commit latency (p50/p99) by payload size and client concurrency, for 1 or 3 managers,
/// and failover time (SIGKILL of the leader to the first write the new leader commits).
/// Managers are real `swarm-raftd` processes with state under a temporary directory.
struct RaftBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "raft", abstract: "Benchmark Raft proposals and failover")

    @Option(help: "Managers in the cluster (1 or 3)")
    var managers = 3

    @Option(parsing: .upToNextOption, help: "Concurrent proposers to try")
    var concurrency: [Int] = [1, 16, 256]

    @Option(parsing: .upToNextOption, help: "Payload sizes in bytes")
    var payload: [Int] = [128, 4096]

    @Option(help: "Seconds per measurement")
    var duration = 5.0

    @Option(help: "Failover trials (SIGKILL of the leader); needs 3 managers")
    var failoverTrials = 0

    @Option(help: "create: every proposal adds a new object (the store grows, and so do snapshots); update: every client rewrites its own object (a steady-state store, like task status updates)")
    var workload = "update"

    @Flag(help: "Propose inside the leader's process (as the manager's own components do) instead of through the gRPC Propose API from this process")
    var inProcess = false

    @Option(help: "Path of the swarm-raftd binary (build it with `swift build -c release --product swarm-raftd`)")
    var raftd = "../.build/release/swarm-raftd"

    @Option(help: "plaintext, mtls (mutual TLS with manager certificates and swarmd's authorization), or both: the same load on a plaintext cluster, then on an mTLS one, with the loss")
    var security = "plaintext"

    func validate() throws {
        guard ["plaintext", "mtls", "both"].contains(security) else { throw ValidationError("--security is plaintext, mtls or both") }
        if security != "plaintext" && inProcess { throw ValidationError("--in-process runs without TLS; leave out --security") }
    }

    @Option(help: "With --security both: rounds, each a plaintext cluster then an mTLS one; the change is between the medians of the rounds")
    var rounds = 1

    func run() async throws {
        guard security == "both" else {
            _ = try await run(tls: security == "mtls")
            return
        }
        var plain: [[String: Double]] = [], secure: [[String: Double]] = []
        for _ in 0..<max(1, rounds) {
            plain.append(try await run(tls: false))
            secure.append(try await run(tls: true))
        }
        func median(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        var rows: [[String]] = []
        var changes: [Double] = []
        for key in plain[0].keys.sorted() {
            let p = median(plain.compactMap { $0[key] }), t = median(secure.compactMap { $0[key] })
            guard p > 0 else { continue }
            changes.append((t / p - 1) * 100)
            rows.append([key, String(format: "%.0f", p), String(format: "%.0f", t), String(format: "%+.1f %%", changes.last!),
                         plain.map { String(format: "%.0f", $0[key] ?? 0) }.joined(separator: "/"),
                         secure.map { String(format: "%.0f", $0[key] ?? 0) }.joined(separator: "/")])
        }
        print("mutual TLS against plaintext, \(plain.count) alternating round(s) (proposals/s, medians):")
        printTable(["row", "plaintext", "mTLS", "change", "plaintext rounds", "mTLS rounds"], rows)
        print(String(format: "median change over the rows: %+.1f %%", median(changes)))
    }

    /// Runs the load matrix on a fresh cluster; returns proposals per second by row.
    func run(tls: Bool) async throws -> [String: Double] {
        let cluster = try BenchCluster(size: managers, binary: raftd, tls: tls)
        defer { cluster.stopAll() }
        var figures: [String: Double] = [:]
        var embedded: RaftNode?
        if inProcess {
            embedded = try await cluster.formAroundEmbeddedLeader()
        } else {
            try await cluster.form()
        }
        var rows: [[String]] = []
        var tag = 0
        for size in payload {
            for c in concurrency {
                tag += 1
                let r: LoadResult
                if let embedded {
                    r = await Self.loadInProcess(node: embedded, concurrency: c, payload: size, seconds: duration,
                                                 tag: "r\(tag)", update: workload == "update")
                } else {
                    guard let leader = await cluster.leaderIndex() else { throw ValidationError("no leader") }
                    r = try await Self.load(addr: cluster.addr(leader), concurrency: c, payload: size,
                                            seconds: duration, tag: "r\(tag)", update: workload == "update", security: cluster.security)
                }
                figures[String(format: "%5d B x %4d", size, c)] = Double(r.ok) / max(r.elapsed, 1e-9)
                rows.append(["\(managers)", "\(size) B", "\(c)", rate(r.ok, r.elapsed),
                             ms(r.latency.percentile(50)), ms(r.latency.percentile(99)), "\(r.errors)"])
                print("  \(managers) managers, \(size) B, concurrency \(c): \(rate(r.ok, r.elapsed))")
            }
        }
        print("raft benchmark: \(managers) manager(s) on loopback, fsync on, \(duration) s per row, \(workload) workload, "
              + (inProcess ? "proposals made inside the leader" : "proposals through the gRPC Propose API")
              + (tls ? ", mutual TLS" : ", plaintext"))
        printTable(["managers", "payload", "concurrency", "proposals/s", "p50", "p99", "errors"], rows)

        if failoverTrials > 0 && managers >= 3 && !inProcess {
            var times: [Double] = []
            for trial in 0..<failoverTrials {
                let t = try await cluster.failover(tag: "f\(trial)")
                times.append(t)
                print("  failover trial \(trial + 1): \(ms(t))")
            }
            let mean = times.reduce(0, +) / Double(times.count)
            print("failover (SIGKILL of the leader to the first committed write): mean \(ms(mean)), max \(ms(times.max()!)) over \(times.count) trials")
        }
        return figures
    }

    struct LoadResult {
        var ok = 0
        var errors = 0
        var latency = Samples()
        var elapsed = 0.0
    }

    static func loadInProcess(node: RaftNode, concurrency: Int, payload: Int, seconds limit: Double, tag: String,
                              update: Bool) async -> LoadResult {
        let body = Data(repeating: 0x61, count: payload)
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(limit * 1000))
        var total = LoadResult()
        await withTaskGroup(of: LoadResult.self) { group in
            for w in 0..<concurrency {
                group.addTask {
                    var r = LoadResult()
                    var n = 0
                    var version: UInt64 = 0
                    while ContinuousClock.now < deadline {
                        n += 1
                        let id = update ? "\(tag)-\(w)" : "\(tag)-\(w)-\(n)"
                        let tx = BenchCluster.configTx(id: id, body: body, version: update && n > 1 ? version : nil)
                        let t0 = ContinuousClock.now
                        do {
                            version = try await node.propose(tx)
                            r.latency.add(ContinuousClock.now - t0)
                            r.ok += 1
                        } catch {
                            r.errors += 1
                        }
                    }
                    return r
                }
            }
            for await r in group {
                total.ok += r.ok
                total.errors += r.errors
                total.latency.values += r.latency.values
            }
        }
        total.elapsed = seconds(ContinuousClock.now - start)
        return total
    }

    static func load(addr: String, concurrency: Int, payload: Int, seconds limit: Double, tag: String,
                     update: Bool, security: ClientSecurity) async throws -> LoadResult {
        let connections = max(1, concurrency / 32)
        let clients = try (0..<connections).map { _ in try BenchCluster.client(addr, security) }
        let body = Data(repeating: 0x61, count: payload)
        let start = ContinuousClock.now
        let deadline = start + .milliseconds(Int(limit * 1000))
        let result = await withThrowingTaskGroup(of: LoadResult.self) { group in
            for c in clients { group.addTask { try await c.runConnections(); return LoadResult() } }
            var workers: [Task<LoadResult, Never>] = []
            for w in 0..<concurrency {
                let raft = SwarmRaftTransport.Client(wrapping: clients[w % connections])
                workers.append(Task {
                    var r = LoadResult()
                    var n = 0
                    var version: UInt64 = 0
                    while ContinuousClock.now < deadline {
                        n += 1
                        let id = update ? "\(tag)-\(w)" : "\(tag)-\(w)-\(n)"
                        let tx = BenchCluster.configTx(id: id, body: body, version: update && n > 1 ? version : nil)
                        let data = (try? Data(tx.serializedBytes() as [UInt8])) ?? Data()
                        let t0 = ContinuousClock.now
                        do {
                            version = try await raft.propose(.with { $0.data = data }).index
                            r.latency.add(ContinuousClock.now - t0)
                            r.ok += 1
                        } catch {
                            r.errors += 1
                        }
                    }
                    return r
                })
            }
            var total = LoadResult()
            for w in workers {
                let r = await w.value
                total.ok += r.ok
                total.errors += r.errors
                total.latency.values += r.latency.values
            }
            total.elapsed = seconds(ContinuousClock.now - start)
            for c in clients { c.beginGracefulShutdown() }
            group.cancelAll()
            return total
        }
        return result
    }
}

/// Real `swarm-raftd` processes on loopback.
final class BenchCluster {
    let binary: String
    let root = NSTemporaryDirectory() + "swarm-bench-\(UUID().uuidString)"
    var ports: [Int]
    var processes: [Int: Process] = [:]
    /// How this process's clients connect (mTLS: a manager certificate of the bench's CA).
    let security: ClientSecurity
    let tls: Bool

    /// With `tls`, a root CA is made and each member gets a manager certificate of its own.
    init(size: Int, binary: String, tls: Bool = false) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ValidationError("\(binary) not found; build it with `swift build -c release --product swarm-raftd` in the repository root")
        }
        self.binary = binary
        self.tls = tls
        ports = (0..<size).map { 21000 + Int.random(in: 0..<20000) + $0 }
        if tls {
            let ca = try RootCA.create()
            for k in 0..<size {
                _ = try ca.credentials(for: NodeIdentity(nodeID: "m\(k)", role: .manager, clusterID: "bench"), validity: 86400,
                                       directory: "\(root)/tls-m\(k)")
            }
            security = .mutualTLS(try ca.credentials(for: NodeIdentity(nodeID: "bench", role: .manager, clusterID: "bench"), validity: 86400))
        } else {
            security = .plaintext
        }
    }

    func addr(_ k: Int) -> String { "127.0.0.1:\(ports[k])" }

    func start(_ k: Int, join: Int? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--state-dir", "\(root)/m\(k)", "--listen", addr(k)] + (join.map { ["--join", addr($0)] } ?? [])
            + (tls ? ["--tls-dir", "\(root)/tls-m\(k)"] : [])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        processes[k] = p
    }

    func kill9(_ k: Int) {
        guard let p = processes.removeValue(forKey: k) else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func stopAll() {
        for k in Array(processes.keys) { kill9(k) }
        try? FileManager.default.removeItem(atPath: root)
    }

    static func client(_ addr: String, _ security: ClientSecurity) throws -> GRPCClient<HTTP2ClientTransport.Posix> {
        let parts = addr.split(separator: ":")
        return GRPCClient(transport: try security.transport(host: String(parts[0]), port: Int(parts[1])!))
    }

    func call<R: Sendable>(_ addr: String, _ body: @Sendable (SwarmRaftTransport.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        let c = try Self.client(addr, security)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await c.runConnections() }
            defer { c.beginGracefulShutdown(); group.cancelAll() }
            return try await body(SwarmRaftTransport.Client(wrapping: c))
        }
    }

    /// A transaction that creates the config `id`, or updates it from `version`.
    static func configTx(id: String, body: Data, version: UInt64?) -> SwarmInternalRaftRequest {
        var config = SwarmConfig()
        config.id = id
        config.annotations.name = id
        config.data = body
        var action = SwarmStoreAction()
        action.kind = .create
        if let version {
            config.meta.version = version
            action.kind = .update
        }
        action.target = .config(config)
        var tx = SwarmInternalRaftRequest()
        tx.actions = [action]
        return tx
    }

    static func createConfig(id: String, body: Data) -> Data {
        (try? Data(configTx(id: id, body: body, version: nil).serializedBytes() as [UInt8])) ?? Data()
    }

    func status(_ k: Int) async -> SwarmStatusResponse? {
        var o = CallOptions.defaults
        o.timeout = .seconds(2)
        let options = o
        return try? await call(addr(k)) { try await $0.status(SwarmStatusRequest(), options: options) }
    }

    func leaderIndex() async -> Int? {
        for k in processes.keys.sorted() {
            guard let s = await status(k), s.leader != 0 else { continue }
            let a = s.members.first { $0.raftID == s.leader }?.addr
            return ports.indices.first { addr($0) == a }
        }
        return nil
    }

    func waitFor(_ what: String, seconds: Double, _ check: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await check() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ValidationError("timed out waiting for \(what)")
    }

    func form() async throws {
        try start(0)
        try await waitFor("a leader", seconds: 20) { await status(0).map { $0.leader == $0.raftID } ?? false }
        for k in 1..<ports.count {
            try start(k, join: 0)
            try await waitFor("member \(k + 1) to vote", seconds: 20) { await status(0)?.voters.count == k + 1 }
        }
    }

    /// Runs member 0 inside this process (with its gRPC server) and joins the others to it.
    func formAroundEmbeddedLeader() async throws -> RaftNode {
        let node = try RaftNode(config: RaftNodeConfig(stateDir: "\(root)/m0", advertiseAddr: addr(0)))
        let server = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: ports[0]),
                                                          transportSecurity: .plaintext),
                                services: [RaftService(node: node)])
        Task { try await server.serve() }
        node.start()
        try await waitFor("the embedded member to lead", seconds: 20) { node.isLeader }
        for k in 1..<ports.count {
            try start(k, join: 0)
            try await waitFor("member \(k + 1) to vote", seconds: 20) { node.status.voters.count == k + 1 }
        }
        return node
    }

    /// Kills the leader, returns seconds until a write commits, then restores the member.
    func failover(tag: String) async throws -> Double {
        guard let leader = await leaderIndex() else { throw ValidationError("no leader") }
        kill9(leader)
        let t0 = ContinuousClock.now
        let others = ports.indices.filter { $0 != leader }
        var n = 0
        var o = CallOptions.defaults
        o.timeout = .seconds(1)
        let options = o
        while true {
            let target = others[n % others.count]
            n += 1
            let data = Self.createConfig(id: "\(tag)-\(n)", body: Data("x".utf8))
            if (try? await call(addr(target)) { try await $0.propose(.with { $0.data = data }, options: options) }) != nil {
                break
            }
            if seconds(ContinuousClock.now - t0) > 30 { throw ValidationError("no write committed within 30 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let elapsed = seconds(ContinuousClock.now - t0)
        try start(leader)
        try await waitFor("the killed member to catch up", seconds: 30) {
            guard let s = await status(leader), let l = await leaderIndex(), let ls = await status(l) else { return false }
            return s.applied >= ls.commit && ls.voters.count == ports.count
        }
        return elapsed
    }
}
