import Foundation
import GRPCCore
import SwarmAPI
import SwarmCA
import SwarmRPC
import SwiftProtobuf
import Testing

extension SecuritySuites {
    /// `cluster update --rotate-ca` on 3 managers and 2 workers while a service runs.
    @Suite(.serialized) struct RotationTests {
        @Test func everyNodeMovesToTheNewRootAndTheServiceStaysUp() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            let cluster = try await c.readyCluster()
            for m in ["m2", "m3"] {
                try c.start(m, ["--join-addr", c.managerAddr, "--join-token", cluster.joinTokens.manager,
                                "--listen-remote-api", "127.0.0.1:\(SwarmdCluster.freePort())"])
            }
            for w in ["w1", "w2"] { try c.startWorker(w, token: cluster.joinTokens.worker) }
            try await c.waitFor("5 READY nodes, 3 of them managers", seconds: 60) {
                let nodes = await c.nodes()
                return nodes.filter { $0.status.state == .ready }.count == 5 && nodes.filter { $0.role == .manager }.count == 3
            }
            let marker = String(Int.random(in: 100_000_000...999_999_999))
            #expect(try c.ctl("service", "create", "--name", "keep", "--command", "/bin/sleep", "--args", marker, "--replicas", "5").status == 0)
            try await c.waitFor("5 processes", seconds: 40) { SwarmdCluster.pids(matching: ["/bin/sleep", marker]).count == 5 }
            let pids = SwarmdCluster.pids(matching: ["/bin/sleep", marker])
            let before = try SecurityProbe.copyCertificates(of: "\(c.root)/manager", to: "\(c.root)/before")
            let oldDigest = RootCA.digest(of: before.roots[0])

            #expect(try c.ctl("cluster", "update", "--rotate-ca").status == 0)
            var newRoot = Data()
            try await c.waitFor("the rotation to finish", seconds: 90) {
                guard let now = try? await c.control({ try await $0.getCluster(.with { $0.clusterID = "default" }) }).cluster else { return false }
                // The control API answers throughout.
                if !now.hasRootRotation && now.rootCaCert != cluster.rootCaCert { newRoot = now.rootCaCert; return true }
                return false
            }
            let root = try PEMFiles.certificate(String(decoding: newRoot, as: UTF8.self), what: "the new root")
            let newDigest = RootCA.digest(of: root)
            #expect(newDigest != oldDigest)
            // Every node trusts only the new root, and holds a certificate from it.
            try await c.waitFor("every node to drop the old root", seconds: 30) {
                ["manager", "m2", "m3", "w1", "w2"].allSatisfy { node in
                    guard let creds = try? NodeCredentials.load(directory: "\(c.root)/\(node)/certificates") else { return false }
                    return creds.roots.map(RootCA.digest(of:)) == [newDigest] && creds.signingRootDigest == newDigest
                }
            }
            // The service stayed up: the same processes, every node READY.
            #expect(SwarmdCluster.pids(matching: ["/bin/sleep", marker]) == pids)
            #expect(await c.nodes().allSatisfy { $0.status.state == .ready })
            // The join tokens name the new root; a certificate from the old root is refused.
            let after = try await c.readyCluster()
            #expect(after.joinTokens.worker.contains(newDigest) && after.joinTokens.manager.contains(newDigest))
            let refused = await SecurityProbe.listNodes(c.managerAddr, before.clientSecurity())
            #expect(refused?.code == .unavailable, "\(String(describing: refused))")
            let current = try #require(try NodeCredentials.load(directory: "\(c.root)/manager/certificates"))
            #expect(await SecurityProbe.listNodes(c.managerAddr, current.clientSecurity()) == nil)
            // A new node joins with the new token.
            try c.startWorker("w3", token: after.joinTokens.worker)
            try await c.waitFor("w3 READY", seconds: 30) { await c.nodes().contains { $0.description_p.hostname == "w3" && $0.status.state == .ready } }
        }
    }
}
