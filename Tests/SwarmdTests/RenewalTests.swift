import Foundation
import SwarmAPI
import SwarmCA
import Testing

extension SecuritySuites {
    /// Certificates renewed on every node while a service runs on.
    @Suite(.serialized) struct RenewalTests {
        @Test func shortCertificatesRenewOnEveryNodeWithoutRestartingTasks() async throws {
            let c = try SwarmdCluster()
            // The test-only lower bound lets the cluster issue certificates for seconds.
            try c.startManager(environment: ["SWARM_TEST_MINIMUM_CERT_EXPIRY": "1"])
            let token = try await c.readyCluster().joinTokens.worker
            try c.startWorker("w1", token: token)
            try await c.waitFor("two READY nodes", seconds: 30) { await c.nodes().filter { $0.status.state == .ready }.count == 2 }
            let marker = String(Int.random(in: 100_000_000...999_999_999))
            #expect(try c.ctl("service", "create", "--name", "keep", "--command", "/bin/sleep", "--args", marker, "--replicas", "2").status == 0)
            try await c.waitFor("2 processes", seconds: 30) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).count == 2 }
            let pids = SwarmdCluster.pids(matching: ["/bin/sleep", marker])
            let tasksBefore = await c.tasks().map(\.id).sorted()

            #expect(try c.ctl("cluster", "update", "--cert-expiry", "6s").status == 0)
            // Every node takes at least two new certificates (the first at once: the cluster
            // shortened the validity below what it held).
            var seen: [String: Set<Data>] = [:]
            func certificate(_ node: String) -> Data? {
                FileManager.default.contents(atPath: "\(c.root)/\(node)/certificates/\(NodeCredentials.certificateFile)")
            }
            for node in ["manager", "w1"] { seen[node] = Set([certificate(node)].compactMap { $0 }) }
            try await c.waitFor("two renewals on each node", seconds: 60) {
                for node in ["manager", "w1"] { if let d = certificate(node) { seen[node, default: []].insert(d) } }
                return seen.values.allSatisfy { $0.count >= 3 }
            }
            for node in ["manager", "w1"] {
                let now = try #require(try NodeCredentials.load(directory: "\(c.root)/\(node)/certificates"))
                #expect(now.issuedAndLifetime.lifetime <= 6.5, "\(node): \(now.issuedAndLifetime.lifetime) s")
                #expect(now.identity.role == (node == "manager" ? .manager : .worker))
            }
            // The same processes, the same tasks, and both nodes READY throughout the renewals.
            #expect(SwarmdCluster.pids(matching: ["/bin/sleep", marker]) == pids)
            #expect(await c.tasks().map(\.id).sorted() == tasksBefore)
            #expect(await c.nodes().allSatisfy { $0.status.state == .ready })
            // swarmctl over TCP with the manager's current certificate (replaced in place).
            let tcp = try c.ctl("node", "ls", "--socket", c.managerAddr, "--cert-dir", "\(c.root)/manager/certificates")
            #expect(tcp.status == 0 && tcp.output.contains("w1"), "\(tcp.output)")
            #expect(try c.ctl("cluster", "update", "--cert-expiry", "1h").status == 0)
        }
    }
}
