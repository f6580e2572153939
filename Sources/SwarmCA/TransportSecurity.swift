import Crypto
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import NIOSSL
import Synchronization
import SwiftASN1
import X509

extension NodeCredentials {
    /// The remote API's TLS: the node's certificate (renewed in place), TLS 1.2 at least
    /// (1.3 preferred), and a client certificate required. A chain from a trusted root is
    /// the caller's identity; a self-signed certificate is accepted as *anonymous* (a
    /// joining node has no other), which the authorization interceptor lets call nothing
    /// but the CA's join. Any other certificate (expired, another cluster's) ends the
    /// handshake.
    public func serverSecurity() -> HTTP2ServerTransport.Posix.TransportSecurity {
        let (chain, key) = initialSources()
        var tls = HTTP2ServerTransport.Posix.TransportSecurity.TLS(
            certificateChain: chain, privateKey: key,
            clientCertificateVerification: .noHostnameVerification,
            trustRoots: .certificates([]), requireALPN: false)
        tls.certificateReloader = self
        tls.customVerificationCallback = { [self] presented, promise in
            Task { promise.succeed(await self.verifyClient(presented)) }
        }
        return .tls(tls)
    }

    /// A client's TLS to a member of this cluster: this node's certificate, and the
    /// server's chain checked against the trusted roots (not its host name: managers are
    /// named by node ID).
    public func clientSecurity() -> HTTP2ClientTransport.Posix.TransportSecurity {
        let (chain, key) = initialSources()
        var tls = HTTP2ClientTransport.Posix.TransportSecurity.TLS(
            certificateChain: chain, privateKey: key,
            serverCertificateVerification: .noHostnameVerification, trustRoots: .certificates([]))
        tls.certificateReloader = self
        tls.customVerificationCallback = { [self] presented, promise in
            Task {
                switch await ChainVerifier.verify(Self.decode(presented), roots: self.roots) {
                case .success(let chain): promise.succeed(.certificateVerified(VerificationMetadata(Self.validated(chain))))
                case .failure: promise.succeed(.failed)
                }
            }
        }
        return .tls(tls)
    }

    /// Checks a caller's chain (see ``serverSecurity()``).
    func verifyClient(_ presented: [NIOSSLCertificate]) async -> NIOSSLVerificationResultWithMetadata {
        let chain = Self.decode(presented)
        switch await ChainVerifier.verify(chain, roots: roots) {
        case .success(let valid):
            return .certificateVerified(VerificationMetadata(Self.validated(valid)))
        case .failure:
            if chain.count == 1, ChainVerifier.isSelfSigned(chain[0]) { return .certificateVerified(VerificationMetadata(nil)) }
            return .failed
        }
    }

    static func decode(_ presented: [NIOSSLCertificate]) -> [Certificate] {
        presented.compactMap { try? Certificate(derEncoded: try $0.toDERBytes()) }
    }

    static func validated(_ chain: [Certificate]) -> NIOSSL.ValidatedCertificateChain? {
        let converted = chain.compactMap { try? NIOSSLCertificate(bytes: try $0.derBytes(), format: .der) }
        return converted.count == chain.count && !converted.isEmpty ? NIOSSL.ValidatedCertificateChain(converted) : nil
    }

    /// The certificate chain and key a transport starts with (the reloader then supplies
    /// the current ones to each handshake).
    func initialSources() -> ([TLSConfig.CertificateSource], TLSConfig.PrivateKeySource) {
        let c = current.withLock { $0 }
        let chain = ([c.certificate] + c.intermediates + c.roots)
            .compactMap { try? $0.derBytes() }.map { TLSConfig.CertificateSource.bytes($0, format: .der) }
        return (chain, .bytes(Array(c.key.pemRepresentation.utf8), format: .pem))
    }
}

/// The TLS of a node that joins: it has no certificate yet, so it presents a throwaway
/// self-signed one, and it trusts the manager only if the manager's chain leads to the
/// root whose digest its token carries. The check runs in the handshake, so a manager that
/// fails it never receives the token's secret.
public final class JoinSecurity: Sendable {
    public let rootDigest: String
    let key = P256.Signing.PrivateKey()
    let certificate: Certificate
    let outcome = Mutex<Result<Certificate, CAError>?>(nil)

    public init(token: JoinToken) throws {
        rootDigest = token.rootDigest
        let name = try DistinguishedName { CommonName("swarm-join") }
        let now = Date()
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - RootCA.backdate, notValidAfter: now + 3600, issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256, extensions: Certificate.Extensions(), issuerPrivateKey: Certificate.PrivateKey(key))
    }

    /// The root that the manager's chain led to (and matched the token), or why it did not.
    public var result: Result<Certificate, CAError>? { outcome.withLock { $0 } }

    public func clientSecurity() throws -> HTTP2ClientTransport.Posix.TransportSecurity {
        var tls = HTTP2ClientTransport.Posix.TransportSecurity.TLS(
            certificateChain: [.bytes(try certificate.derBytes(), format: .der)],
            privateKey: .bytes(Array(key.pemRepresentation.utf8), format: .pem),
            serverCertificateVerification: .noHostnameVerification, trustRoots: .certificates([]))
        tls.customVerificationCallback = { [self] presented, promise in
            Task {
                let verdict = await self.check(NodeCredentials.decode(presented))
                self.outcome.withLock { $0 = verdict }
                switch verdict {
                case .success(let root):
                    promise.succeed(.certificateVerified(VerificationMetadata(NodeCredentials.validated([root]))))
                case .failure:
                    promise.succeed(.failed)
                }
            }
        }
        return .tls(tls)
    }

    func check(_ presented: [Certificate]) async -> Result<Certificate, CAError> {
        guard let root = presented.first(where: { RootCA.digest(of: $0) == rootDigest }) else {
            return .failure(CAError("the manager's certificate chain does not lead to the root CA named in the join token (digest \(rootDigest.prefix(12))…): the token is for another cluster, or the manager is not one of its members"))
        }
        switch await ChainVerifier.verify(presented.filter { $0 != root }, roots: [root]) {
        case .success: return .success(root)
        case .failure(let e): return .failure(CAError("the manager's certificate does not verify against the token's root CA: \(e)"))
        }
    }
}

/// How a node's clients secure their connections: in the clear (tests of single parts,
/// the bare Raft daemon) or with the node's certificate.
public struct ClientSecurity: Sendable {
    /// The node's credentials; nil in the clear.
    public let credentials: NodeCredentials?

    public static let plaintext = ClientSecurity(credentials: nil)
    public static func mutualTLS(_ credentials: NodeCredentials) -> ClientSecurity { ClientSecurity(credentials: credentials) }

    /// A transport to `host:port`.
    public func transport(host: String, port: Int) throws -> HTTP2ClientTransport.Posix {
        try HTTP2ClientTransport.Posix(target: Self.target(host: host, port: port),
                                       transportSecurity: credentials?.clientSecurity() ?? .plaintext)
    }

    /// The target for `host:port`: an IP literal as an address (TLS sends no server name
    /// for it, which SNI does not allow), a name through DNS.
    public static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.split(separator: ".").count == 4, host.split(separator: ".").allSatisfy({ UInt8($0) != nil }) {
            return .ipv4(address: host, port: port)
        }
        if host.contains(":") { return .ipv6(address: host, port: port) }
        return .dns(host: host, port: port)
    }
}

/// The identity a caller proved in the TLS handshake.
public enum PeerIdentity {
    /// The caller's node identity when it presented a certificate chain from a trusted
    /// root; nil for an anonymous caller (or a server without TLS); an error when the chain
    /// was trusted but no longer holds (the certificate expired since the handshake) or
    /// names no node.
    public static func of(_ context: ServerContext, now: Date = Date()) -> Result<NodeIdentity, CAError>? {
        guard let tls = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
              let leaf = tls.peerCertificateChain?.leaf else { return nil }
        if leaf.notValidAfter < now { return .failure(CAError("the certificate expired at \(leaf.notValidAfter)")) }
        do { return .success(try NodeIdentity(certificate: leaf)) } catch { return .failure(error) }
    }
}
