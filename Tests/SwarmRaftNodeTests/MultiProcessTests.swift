import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmRaftNode
import Testing

/// Three managers as separate `swarm-raftd` processes on loopback: commit writes, kill the
/// leader with SIGKILL, see a new leader commit, find every earlier write intact, restart
/// the killed member and see it catch up.
@Suite(.serialized) struct MultiProcessTests {
    final class Cluster {
        var processes: [Int: Process] = [:]
        var ports: [Int] = []
        let root = NSTemporaryDirectory() + "swarm-mp-\(UUID().uuidString)"

        static var binary: String {
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
                .deletingLastPathComponent().appendingPathComponent("swarm-raftd").path
        }

        init(size: Int) { ports = (0..<size).map { _ in freePort() } }

        func addr(_ k: Int) -> String { "127.0.0.1:\(ports[k])" }

        func start(_ k: Int, join: Int? = nil) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.binary)
            var args = ["--state-dir", "\(root)/m\(k)", "--listen", addr(k), "--tick-ms", "100"]
            if let join { args += ["--join", addr(join)] }
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
            if let log = ProcessInfo.processInfo.environment["SWARM_TEST_LOGS"] {
                _ = FileManager.default.createFile(atPath: "\(log)/m\(k).log", contents: nil)
                p.standardError = FileHandle(forWritingAtPath: "\(log)/m\(k).log")
            }
            try p.run()
            processes[k] = p
        }

        func kill9(_ k: Int) {
            guard let p = processes[k] else { return }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            processes[k] = nil
        }

        deinit {
            for p in processes.values { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    static func call<R: Sendable>(_ addr: String, _ body: @Sendable (SwarmRaftTransport.Client<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
        let parts = addr.split(separator: ":")
        let client = GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: String(parts[0]), port: Int(parts[1])!),
                                                               transportSecurity: .plaintext))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.runConnections() }
            defer { client.beginGracefulShutdown(); group.cancelAll() }
            return try await body(SwarmRaftTransport.Client(wrapping: client))
        }
    }

    static func status(_ addr: String, store: Bool = false) async -> SwarmStatusResponse? {
        var o = CallOptions.defaults
        o.timeout = .seconds(2)
        let options = o
        return try? await call(addr) { try await $0.status(.with { $0.includeStore = store }, options: options) }
    }

    static func write(_ addr: String, key: String) async throws -> UInt64 {
        var config = SwarmConfig()
        config.id = key
        config.annotations.name = key
        config.data = Data(key.utf8)
        var action = SwarmStoreAction()
        action.kind = .create
        action.target = .config(config)
        var tx = SwarmInternalRaftRequest()
        tx.actions = [action]
        let data = Data(try tx.serializedBytes() as [UInt8])
        var o = CallOptions.defaults
        o.timeout = .seconds(3)
        let options = o
        return try await call(addr) { try await $0.propose(.with { $0.data = data }, options: options).index }
    }

    static func keys(_ s: SwarmStatusResponse?) -> Set<String> {
        guard let s, let snap = try? SwarmStoreSnapshot(serializedBytes: s.store) else { return [] }
        return Set(snap.configs.map(\.annotations.name))
    }

    static func waitFor(_ what: String, seconds: Double, _ check: () async -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if await check() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out after \(seconds) s waiting for \(what)")
        throw CancellationError()
    }

    @Test func leaderKilledWithSigkillIsReplacedAndNothingCommittedIsLost() async throws {
        let c = Cluster(size: 3)
        try c.start(0)
        try await Self.waitFor("the first member to lead", seconds: 10) {
            guard let s = await Self.status(c.addr(0)) else { return false }
            return s.leader == s.raftID
        }
        try c.start(1, join: 0)
        try await Self.waitFor("member 2 to become a voter", seconds: 15) { await Self.status(c.addr(0))?.voters.count == 2 }
        try c.start(2, join: 0)
        try await Self.waitFor("member 3 to become a voter", seconds: 15) { await Self.status(c.addr(0))?.voters.count == 3 }

        var written: Set<String> = []
        for k in 0..<20 {
            _ = try await Self.write(c.addr(0), key: "before-\(k)")
            written.insert("before-\(k)")
        }
        let leaderStatus = try #require(await Self.status(c.addr(0)))
        let leaderIndex = try #require(c.ports.indices.first { k in
            leaderStatus.members.first { $0.raftID == leaderStatus.leader }?.addr == c.addr(k)
        })

        c.kill9(leaderIndex)
        let killedAt = Date()
        let survivors = c.ports.indices.filter { $0 != leaderIndex }
        var committedAt: Date?
        var attempt = 0
        while committedAt == nil && Date().timeIntervalSince(killedAt) < 15 {
            let target = survivors[attempt % survivors.count]
            attempt += 1
            if (try? await Self.write(c.addr(target), key: "after")) != nil {
                committedAt = Date()
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let failover = try #require(committedAt).timeIntervalSince(killedAt)
        // Election timeout is drawn from [1 s, 2 s) with 100 ms ticks; allow scheduling slack.
        #expect(failover < 3.0, "failover took \(failover) s")
        written.insert("after")

        for k in survivors {
            try await Self.waitFor("member \(k) to hold every write", seconds: 10) {
                Self.keys(await Self.status(c.addr(k), store: true)) == written
            }
        }

        try c.start(leaderIndex)
        try await Self.waitFor("the restarted member to catch up", seconds: 15) {
            Self.keys(await Self.status(c.addr(leaderIndex), store: true)) == written
        }
        print("failover: \(Int(failover * 1000)) ms from SIGKILL to the first write committed by the new leader")
    }
}
