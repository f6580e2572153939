import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SwarmAPI
import SwarmCA
import SwarmManager
import SwarmRPC
import SwiftProtobuf
import Synchronization
import Testing

extension SecuritySuites {
    /// The remote API with real TLS: who is refused where, joining, renewal and bad input.
    @Suite(.serialized) struct SecurityTests {
        /// Every kind of unwelcome caller is refused on the control API and the Raft API; a
        /// worker's certificate is accepted by the dispatcher, for its own node only.
        @Test func callersAreAuthenticatedAndAuthorizedByRole() async throws {
            let c = try SwarmdCluster()
            try c.startManager(environment: ["SWARM_TEST_MINIMUM_CERT_EXPIRY": "1"])
            let cluster = try await c.readyCluster()
            let addr = c.managerAddr
            let manager = try #require(try NodeCredentials.load(directory: "\(c.root)/manager/certificates"))
            // The manager's own certificate is let in: the probe itself can succeed.
            #expect(await SecurityProbe.listNodes(addr, manager.clientSecurity()) == nil)
            #expect(await SecurityProbe.raftStatus(addr, manager.clientSecurity()) == nil)
            // The control API does not return the CA's key.
            #expect(cluster.rootCaKey.isEmpty && !cluster.rootCaCert.isEmpty)

            // No client certificate: the handshake fails.
            for refused in [await SecurityProbe.listNodes(addr, SecurityProbe.noCertificate),
                            await SecurityProbe.raftStatus(addr, SecurityProbe.noCertificate)] {
                #expect(refused?.code == .unavailable, "\(String(describing: refused))")
            }
            // A self-signed certificate: anonymous, so only the CA's join is open to it.
            let selfSigned = try JoinSecurity(token: try JoinToken(parsing: cluster.joinTokens.worker)).clientSecurity()
            for refused in [await SecurityProbe.listNodes(addr, selfSigned), await SecurityProbe.raftStatus(addr, selfSigned)] {
                #expect(refused?.code == .unauthenticated, "\(String(describing: refused))")
            }
            // Another cluster's CA, even naming this cluster and a manager: the handshake fails.
            let forged = try RootCA.create().credentials(for: NodeIdentity(nodeID: manager.identity.nodeID, role: .manager, clusterID: cluster.id),
                                                         validity: 3600)
            for refused in [await SecurityProbe.listNodes(addr, forged.clientSecurity()),
                            await SecurityProbe.raftStatus(addr, forged.clientSecurity())] {
                #expect(refused?.code == .unavailable, "\(String(describing: refused))")
            }
            // A worker's certificate (issued through the join, as a node gets it): refused on
            // the control and Raft APIs, accepted by the dispatcher.
            let worker = try await SecurityProbe.join(addr, token: cluster.joinTokens.worker).get()
            #expect(worker.identity.role == .worker && worker.identity.clusterID == cluster.id)
            for refused in [await SecurityProbe.listNodes(addr, worker.clientSecurity()),
                            await SecurityProbe.raftStatus(addr, worker.clientSecurity())] {
                #expect(refused?.code == .permissionDenied && refused?.message.contains("manager certificate") == true, "\(String(describing: refused))")
            }
            let opened = await SecurityProbe.call(addr, worker.clientSecurity()) { client in
                try await SwarmDispatcher.Client(wrapping: client).session(.with { $0.nodeID = worker.identity.nodeID }) { response in
                    for try await m in response.messages { #expect(m.nodeID == worker.identity.nodeID); return }
                }
            }
            #expect(opened == nil, "\(String(describing: opened))")
            // ... but not as another node.
            let impostor = await SecurityProbe.call(addr, worker.clientSecurity()) { client in
                try await SwarmDispatcher.Client(wrapping: client).session(.with { $0.nodeID = manager.identity.nodeID }) { response in
                    for try await _ in response.messages { return }
                }
            }
            #expect(impostor?.code == .permissionDenied && impostor?.message.contains("cannot act as node") == true, "\(String(describing: impostor))")
            let report = await SecurityProbe.call(addr, worker.clientSecurity()) { client in
                _ = try await SwarmDispatcher.Client(wrapping: client).updateTaskStatus(.with { $0.nodeID = manager.identity.nodeID; $0.sessionID = "x" })
            }
            #expect(report?.code == .permissionDenied, "\(String(describing: report))")

            // An expired certificate: issued for four seconds, let in while valid, and
            // refused once it ended.
            #expect(try c.ctl("cluster", "update", "--cert-expiry", "4s").status == 0)
            let shortLived = try await SecurityProbe.join(addr, token: cluster.joinTokens.manager).get()
            #expect(try c.ctl("cluster", "update", "--cert-expiry", "1h").status == 0)
            #expect(await SecurityProbe.listNodes(addr, shortLived.clientSecurity()) == nil)
            try await Task.sleep(for: .seconds(5))
            for refused in [await SecurityProbe.listNodes(addr, shortLived.clientSecurity()),
                            await SecurityProbe.raftStatus(addr, shortLived.clientSecurity())] {
                #expect(refused?.code == .unavailable, "\(String(describing: refused))")
            }
            // A removed node's certificate is refused everywhere.
            #expect(try c.ctl("node", "rm", "--force", worker.identity.nodeID).status == 0)
            let removed = await SecurityProbe.call(addr, worker.clientSecurity()) { client in
                _ = try await SwarmDispatcher.Client(wrapping: client).heartbeat(.with { $0.nodeID = worker.identity.nodeID })
            }
            #expect(removed?.code == .permissionDenied && removed?.message.contains("removed") == true, "\(String(describing: removed))")
            // The control socket admits its owner only.
            var st = stat()
            #expect(stat(c.controlSocket, &st) == 0 && st.st_mode & 0o777 == 0o600)
            #expect(c.isRunning("manager"))
        }

        /// The CA refuses bad requests with errors that name the fault, and stores nothing.
        @Test func badJoinsAndBadInputAreRefused() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            let cluster = try await c.readyCluster()
            try await c.waitFor("the manager's node", seconds: 30) { await c.nodes().count == 1 }
            let addr = c.managerAddr
            let worker = cluster.joinTokens.worker
            func refusal(_ r: Result<NodeCredentials, RPCError>) -> RPCError? {
                if case .failure(let e) = r { return e }
                return nil
            }
            let wrongSecret = refusal(await SecurityProbe.join(addr, token: String(worker.dropLast(25)) + "0000000000000000000000000"))
            #expect(wrongSecret?.code == .permissionDenied && wrongSecret?.message == "invalid join token")
            let garbled = refusal(await SecurityProbe.join(addr, token: worker, csr: "not a CSR"))
            #expect(garbled?.code == .invalidArgument && garbled?.message.contains("not a PEM certificate signing request") == true, "\(String(describing: garbled))")
            let asManager = refusal(await SecurityProbe.join(addr, token: worker, role: .manager))
            #expect(asManager?.code == .permissionDenied && asManager?.message.contains("the token admits a swarm-worker") == true, "\(String(describing: asManager))")
            let managerID = try #require(try NodeCredentials.load(directory: "\(c.root)/manager/certificates")).identity.nodeID
            let taken = refusal(await SecurityProbe.join(addr, token: worker, nodeID: managerID))
            #expect(taken?.code == .alreadyExists, "\(String(describing: taken))")
            let badID = refusal(await SecurityProbe.join(addr, token: worker, nodeID: "../../etc"))
            #expect(badID?.code == .invalidArgument && badID?.message.contains("node ID") == true, "\(String(describing: badID))")
            // Renewal asks for the caller's own ID and role only.
            let member = try await SecurityProbe.join(addr, token: worker).get()
            for (id, role, expected) in [(managerID, NodeRole.worker, "asks for node ID"), (member.identity.nodeID, .manager, "asks for role swarm-manager")] {
                let csr = try CertificateRequest(nodeID: id, role: role).csr
                let refused = await SecurityProbe.call(addr, member.clientSecurity()) { client in
                    _ = try await SwarmCertificateAuthority.Client(wrapping: client).renewNodeCertificate(.with { $0.csr = Data(csr.utf8) })
                }
                #expect(refused?.code == .permissionDenied && refused?.message.contains(expected) == true, "\(String(describing: refused))")
            }
            // A rotated token is refused; the node that joined with the old one goes on.
            #expect(try c.ctl("cluster", "update", "--rotate-worker-token").status == 0)
            let rotated = refusal(await SecurityProbe.join(addr, token: worker))
            #expect(rotated?.code == .permissionDenied && rotated?.message == "invalid join token", "\(String(describing: rotated))")
            #expect(await SecurityProbe.call(addr, member.clientSecurity()) { client in
                _ = try await SwarmCertificateAuthority.Client(wrapping: client).renewNodeCertificate(.with {
                    $0.csr = Data((try? CertificateRequest(nodeID: member.identity.nodeID, role: .worker).csr)?.utf8 ?? "".utf8)
                })
            } == nil)
            // Nothing of these reached the store (the one member that joined opened no session).
            let nodes = await c.nodes()
            #expect(nodes.count == 1, "\(nodes.map(\.id))")
            // Garbage on the TLS port: the connection is dropped, the manager goes on.
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(c.managerPort).bigEndian)
            sa.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            #expect(connected == 0)
            let junk = Array("GET / HTTP/1.1\r\n\r\n\u{0}\u{1}\u{2}garbage".utf8) + (0..<4096).map { _ in UInt8.random(in: 0...255) }
            _ = junk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            let manager = try #require(try NodeCredentials.load(directory: "\(c.root)/manager/certificates"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(await SecurityProbe.listNodes(addr, manager.clientSecurity()) == nil)
            #expect(c.isRunning("manager"))
        }

        /// A joining node checks the manager's chain against its token's digest in the
        /// handshake, so a manager with another root never receives the secret.
        @Test func joinChecksTheRootDigestBeforeSendingTheSecret() async throws {
            let c = try SwarmdCluster()
            let impostorRoot = try RootCA.create()
            let server = try impostorRoot.credentials(for: NodeIdentity(nodeID: "impostor", role: .manager, clusterID: "other"), validity: 3600)
            let recorder = JoinRecorder()
            let port = SwarmdCluster.freePort()
            let grpc = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: server.serverSecurity()),
                                  services: [recorder])
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await grpc.serve() }
                defer { grpc.beginGracefulShutdown() }
                _ = try await grpc.listeningAddress
                // A token for another root: the node refuses, and the server saw no request.
                let otherDigest = try RootCA.create().digest
                try c.start("joiner", ["--join-addr", "127.0.0.1:\(port)", "--join-token", JoinToken(rootDigest: otherDigest).description])
                try await c.waitFor("the joiner to refuse", seconds: 30) { !c.isRunning("joiner") }
                #expect(c.logTail("joiner").contains("does not lead to the root CA named in the join token"), "\(c.logTail("joiner"))")
                #expect(recorder.tokens.isEmpty)
                // The token for this server's root: the node does send its request (so the
                // check above could have seen one).
                let matching = JoinToken(rootDigest: impostorRoot.digest).description
                try c.start("joiner2", ["--join-addr", "127.0.0.1:\(port)", "--join-token", matching])
                try await c.waitFor("the joiner to be refused", seconds: 30) { !c.isRunning("joiner2") }
                #expect(recorder.tokens == [matching])
            }
        }

        /// A corrupt certificate or key in the state directory stops the node with an error
        /// that names the file.
        @Test func corruptCertificateFilesAreNamed() async throws {
            let c = try SwarmdCluster()
            try c.startManager()
            _ = try await c.readyCluster()
            #expect(c.terminate("manager") == 0)
            let dir = "\(c.root)/manager/certificates"
            for file in [NodeCredentials.certificateFile, NodeCredentials.keyFile] {
                let path = "\(dir)/\(file)"
                let original = try #require(FileManager.default.contents(atPath: path))
                try Data("-----BEGIN GARBAGE-----\nxx\n".utf8).write(to: URL(fileURLWithPath: path))
                try c.startManager()
                try await c.waitFor("the manager to refuse to start", seconds: 20) { !c.isRunning("manager") }
                #expect(c.logTail("manager").contains(path), "\(c.logTail("manager"))")
                try original.write(to: URL(fileURLWithPath: path))
            }
            try c.startManager()
            _ = try await c.readyCluster()
        }
    }
}

/// A CA service that records the tokens it is sent, and refuses them all.
final class JoinRecorder: SwarmCertificateAuthority.SimpleServiceProtocol, Sendable {
    private let seen = Mutex<[String]>([])
    var tokens: [String] { seen.withLock { $0 } }

    func issueNodeCertificate(request: SwarmIssueNodeCertificateRequest, context: ServerContext) async throws -> SwarmNodeCertificateResponse {
        seen.withLock { $0.append(request.token) }
        throw RPCError(code: .permissionDenied, message: "recorded")
    }

    func renewNodeCertificate(request: SwarmRenewNodeCertificateRequest, context: ServerContext) async throws -> SwarmNodeCertificateResponse {
        throw RPCError(code: .unimplemented, message: "recorded")
    }
}
