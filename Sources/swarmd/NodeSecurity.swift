import ArgumentParser
import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SwarmAPI
import SwarmCA
import SwarmConcurrency
import SwarmManager
import SwarmRPC
import SwarmStore
import SwiftProtobuf
import Synchronization
import X509

/// How a node comes by its certificate, and keeps it current.
///
/// - A node with certificates in `<state-dir>/certificates` uses them.
/// - A node that joins sends a CSR with its token to the manager at `--join-addr`, over
///   TLS that trusts the manager only if its chain leads to the root the token names.
/// - The first manager of a new cluster makes the root CA and its own certificate. It
///   keeps the root key in `bootstrap-root-ca.key` only until the cluster object in the
///   store holds it.
enum NodeSecurity {
    static let bootstrapKeyFile = "bootstrap-root-ca.key"

    /// The node's credentials, and the seed of a new cluster when this node founds one.
    static func credentials(stateDir: String, nodeID: String, unlockKey: UnlockKey? = nil, joinAddr: String?, joinToken: String?,
                            logger: Logger) async throws -> (NodeCredentials, ClusterBootstrap.Seed?) {
        let dir = stateDir + "/certificates"
        let loaded: NodeCredentials?
        do { loaded = try NodeCredentials.load(directory: dir, unlockKey: unlockKey) } catch { throw StartError("\(error)") }
        if let loaded {
            return (loaded, try seed(dir, loaded))
        }
        if let joinAddr {
            guard let joinToken, !joinToken.isEmpty else { throw StartError("--join-addr needs --join-token") }
            return (try await join(via: joinAddr, token: joinToken, nodeID: nodeID, directory: dir, logger: logger), nil)
        }
        return try bootstrap(nodeID: nodeID, directory: dir, logger: logger)
    }

    /// The bootstrap seed kept from before the cluster object existed, if any.
    static func seed(_ dir: String, _ credentials: NodeCredentials) throws -> ClusterBootstrap.Seed? {
        let path = dir + "/" + bootstrapKeyFile
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            let ca = try RootCA(certificatePEM: try credentials.roots[0].pem, keyPEM: String(decoding: data, as: UTF8.self))
            return ClusterBootstrap.Seed(clusterID: credentials.identity.clusterID, rootCA: ca)
        } catch {
            throw StartError("\(path): \(error)")
        }
    }

    /// Makes a new root CA and this node's manager certificate.
    static func bootstrap(nodeID: String, directory: String, logger: Logger) throws -> (NodeCredentials, ClusterBootstrap.Seed?) {
        let ca = try RootCA.create()
        let clusterID = Identifiers.make()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // The root key first: credentials without it could never found the cluster.
        guard FileManager.default.createFile(atPath: directory + "/" + bootstrapKeyFile, contents: Data(ca.keyPEM.utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw StartError("cannot write \(directory)/\(bootstrapKeyFile)")
        }
        let credentials = try ca.credentials(for: NodeIdentity(nodeID: nodeID, role: .manager, clusterID: clusterID),
                                             validity: RootCA.defaultNodeValidity, directory: directory)
        logger.info("created the cluster's root CA (digest \(ca.digest.prefix(12))…)")
        return (credentials, ClusterBootstrap.Seed(clusterID: clusterID, rootCA: ca))
    }

    /// Forgets the bootstrap root key once the store holds it.
    static func forgetBootstrapKey(stateDir: String) {
        unlink(stateDir + "/certificates/" + bootstrapKeyFile)
    }

    /// Joins: a CSR (for a key made here, which stays here) and the token, sent to the
    /// manager once its chain is proven to lead to the token's root.
    static func join(via addr: String, token text: String, nodeID: String, directory: String, logger: Logger) async throws -> NodeCredentials {
        let token: JoinToken
        do { token = try JoinToken(parsing: text) } catch { throw StartError("--join-token: \(error)") }
        guard let (host, port) = NetworkAddress.split(addr) else { throw StartError("bad --join-addr \(addr)") }
        let request = try CertificateRequest(nodeID: nodeID, role: nil)
        var options = CallOptions.defaults
        options.timeout = .seconds(20)
        options.waitForReady = false
        var response: SwarmNodeCertificateResponse?
        // The manager may still be starting: refused connections are retried for 30 s.
        let deadline = ContinuousClock.now + .seconds(30)
        while response == nil {
            let security = try JoinSecurity(token: token)
            do {
                let transport = try HTTP2ClientTransport.Posix(target: ClientSecurity.target(host: host, port: port),
                                                               transportSecurity: try security.clientSecurity())
                response = try await withGRPCClient(transport: transport) { client in
                    try await SwarmCertificateAuthority.Client(wrapping: client).issueNodeCertificate(.with {
                        $0.csr = Data(request.csr.utf8)
                        $0.token = token.description
                    }, options: options)
                }
            } catch {
                if case .failure(let refused)? = security.result {
                    throw StartError("refusing to join \(addr): \(refused)")
                }
                if let e = error as? RPCError, e.code == .permissionDenied {
                    throw StartError("the cluster at \(addr) refused the join: \(e.message)")
                }
                if let e = error as? RPCError, e.code == .unavailable, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(500))
                    continue
                }
                throw StartError("cannot join the cluster at \(addr): \((error as? RPCError)?.message ?? "\(error)")")
            }
        }
        let answer = response!
        do {
            let credentials = try request.credentials(certificatePEM: String(decoding: answer.certificate, as: UTF8.self),
                                                      rootPEM: String(decoding: answer.rootCa, as: UTF8.self),
                                                      rootDigest: token.rootDigest, directory: directory)
            logger.info("joined cluster \(credentials.identity.clusterID) as \(credentials.identity.role.rawValue) \(credentials.identity.nodeID)")
            return credentials
        } catch {
            throw StartError("the certificate from \(addr) cannot be used: \(error)")
        }
    }
}

/// Renews the node's certificate: at a random point between 50 % and 80 % of its
/// lifetime, at once when the cluster shortened the validity below what it holds, and on
/// request with a new role (promotion, demotion). Tasks keep running: only new
/// connections use the new certificate.
final class CertificateRenewal: Sendable {
    let credentials: NodeCredentials
    let managers: @Sendable () -> [String]
    let logger: Logger
    /// Rung when the cluster shortened the validity below what the node holds.
    let wake = Doorbell()
    let clusterExpiry = Mutex<Int64>(0)
    /// The digest of the root the CA signs with, from the node's session.
    let signingRoot = Mutex("")

    init(credentials: NodeCredentials, managers: @escaping @Sendable () -> [String], logger: Logger) {
        self.credentials = credentials
        self.managers = managers
        self.logger = logger
    }

    /// The validity the cluster now gives certificates (from the node's session).
    func clusterExpiryChanged(_ nanoseconds: Int64) {
        let changed = clusterExpiry.withLock { e -> Bool in
            defer { e = nanoseconds }
            return e != nanoseconds
        }
        if changed && tooLong(nanoseconds) { wake.ring() }
    }

    /// Trusts the roots the managers name (a root rotation's progress), and renews at once
    /// when the CA now signs with a root other than the one behind this node's certificate.
    func rootsChanged(_ pems: [Data], signing: String) {
        var roots: [X509.Certificate] = []
        for pem in pems {
            guard let root = try? PEMFiles.certificate(String(decoding: pem, as: UTF8.self), what: "a trusted root") else { return }
            roots.append(root)
        }
        do {
            if try credentials.trust(roots) { logger.notice("now trusting \(roots.count) root CA(s)") }
        } catch {
            logger.warning("cannot take the cluster's trusted roots: \(error)")
        }
        signingRoot.withLock { $0 = signing }
        if needsNewRoot() { wake.ring() }
    }

    /// Whether the CA signs with a root other than the one behind this node's certificate.
    func needsNewRoot() -> Bool {
        let signing = signingRoot.withLock { $0 }
        return !signing.isEmpty && credentials.signingRootDigest != signing
    }

    /// Whether the certificate lives longer than the cluster now allows (by over 10 %).
    func tooLong(_ nanoseconds: Int64) -> Bool {
        let lifetime = credentials.issuedAndLifetime.lifetime
        return nanoseconds > 0 && lifetime > Double(nanoseconds) / 1e9 * 1.1
    }

    /// Renews when due, until cancelled.
    func run() async {
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        while !Task.isCancelled {
            let due = credentials.renewalDate(using: &rng)
            let wait = max(0, due.timeIntervalSinceNow)
            if wait > 0, !tooLong(clusterExpiry.withLock({ $0 })), !needsNewRoot() {
                // Sleeps until due, or until woken (the cluster changed the validity).
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await Task.sleep(for: .seconds(wait)) }
                    group.addTask { await self.wake.wait() }
                    await group.next()
                    group.cancelAll()
                }
            }
            if Task.isCancelled { return }
            do {
                try await renew(role: credentials.identity.role)
                failures = 0
                // Never more than one renewal a second, whatever the certificates say.
                try? await Task.sleep(for: .seconds(1))
            } catch {
                failures += 1
                logger.warning("certificate renewal failed (\(failures)): \(error)")
                try? await Task.sleep(for: .seconds(min(30, 1 << min(failures, 5))))
            }
        }
    }

    /// Asks a manager for a certificate with `role` for this node's key, and takes it.
    func renew(role: NodeRole) async throws {
        let csr = try credentials.signingRequest(role: role)
        var last: (any Error)?
        var options = CallOptions.defaults
        options.timeout = .seconds(10)
        for addr in managers() {
            guard let (host, port) = NetworkAddress.split(addr) else { continue }
            do {
                let answer = try await withGRPCClient(transport: try ClientSecurity.mutualTLS(credentials).transport(host: host, port: port)) {
                    try await SwarmCertificateAuthority.Client(wrapping: $0).renewNodeCertificate(.with { $0.csr = Data(csr.utf8) }, options: options)
                }
                let chain = try PEMFiles.certificates(String(decoding: answer.certificate, as: UTF8.self), what: "the renewed certificate")
                let roots = try PEMFiles.certificates(String(decoding: answer.rootCa, as: UTF8.self), what: "the cluster's root CA")
                let certificate = chain[0]
                try credentials.update(certificate: certificate, intermediates: Array(chain.dropFirst()), roots: roots)
                logger.info("renewed the node certificate (\(role.rawValue)), valid until \(certificate.notValidAfter)")
                return
            } catch {
                last = error
            }
        }
        throw last ?? CAError("no manager is known to renew the certificate with")
    }
}

/// Why the node cannot start (printed without the usage text, which would not help).
struct StartError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
