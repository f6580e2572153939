import Crypto
import Foundation
import NIOCertificateReloading
import NIOSSL
import SwiftASN1
import Synchronization
import X509

/// A node's TLS identity: its private key (which never leaves it), its certificate and the
/// roots it trusts, kept in `<state-dir>/certificates` and swapped in place when the
/// certificate is renewed, so that connections opened afterwards present the new one.
///
/// It is the certificate source of the node's servers and clients (a
/// `CertificateReloader`), and checks the chains its peers present.
public final class NodeCredentials: Sendable, CertificateReloader {
    struct Current: Sendable {
        var key: P256.Signing.PrivateKey
        var certificate: Certificate
        /// Certificates between the node's and a root (the cross-signed root during a
        /// root rotation), presented with it.
        var intermediates: [Certificate]
        var identity: NodeIdentity
        var roots: [Certificate]
        var override: NIOSSLContextConfigurationOverride
        /// Under autolock, the key the key file is sealed with.
        var sealing: UnlockKey?
    }

    let current: Mutex<Current>
    /// Where the files are kept; nil keeps them in memory only.
    public let directory: String?

    public static let keyFile = "swarm-node.key"
    public static let certificateFile = "swarm-node.crt"
    public static let rootsFile = "swarm-root-ca.crt"

    /// Credentials for `key` and `certificate` (issued by one of `roots`), saved to
    /// `directory` when one is given.
    public init(key: P256.Signing.PrivateKey, certificate: Certificate, intermediates: [Certificate] = [], roots: [Certificate],
                directory: String?) throws(CAError) {
        self.directory = directory
        current = Mutex(try Self.make(key: key, certificate: certificate, intermediates: intermediates, roots: roots))
        if directory != nil { try save() }
    }

    /// Reads the credentials kept in `directory`; nil when the node has none yet. A file
    /// that is there but unreadable is an error that names it.
    public static func load(directory: String, unlockKey: UnlockKey? = nil) throws(CAError) -> NodeCredentials? {
        let keyPath = directory + "/" + keyFile, certPath = directory + "/" + certificateFile, rootsPath = directory + "/" + rootsFile
        guard FileManager.default.fileExists(atPath: certPath) else { return nil }
        func read(_ path: String) throws(CAError) -> String {
            guard let data = FileManager.default.contents(atPath: path) else { throw CAError("\(path) cannot be read") }
            return String(decoding: data, as: UTF8.self)
        }
        guard let keyText = try SealedFile.read(keyPath, key: unlockKey) else { throw CAError("\(keyPath) cannot be read") }
        let key = try PEMFiles.privateKey(keyText, what: keyPath)
        let chain = try PEMFiles.certificates(try read(certPath), what: certPath)
        let roots = try PEMFiles.certificates(try read(rootsPath), what: rootsPath)
        let credentials: NodeCredentials
        do {
            credentials = try NodeCredentials(key: key, certificate: chain[0], intermediates: Array(chain.dropFirst()), roots: roots, directory: nil)
        } catch {
            throw CAError("\(directory): \(error)")
        }
        let loaded = NodeCredentials(copying: credentials, directory: directory)
        if let unlockKey, let raw = FileManager.default.contents(atPath: keyPath), SealedFile.isSealed(String(decoding: raw, as: UTF8.self)) {
            loaded.current.withLock { $0.sealing = unlockKey }
        }
        return loaded
    }

    /// Whether the key in `directory` is sealed (the node is a manager of an autolocked
    /// cluster).
    public static func isLocked(directory: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: directory + "/" + keyFile) else { return false }
        return SealedFile.isSealed(String(decoding: data, as: UTF8.self))
    }

    /// Keeps the key file sealed with `key` from now on (nil: in the clear), and rewrites
    /// it so.
    public func seal(with key: UnlockKey?) throws(CAError) {
        current.withLock { $0.sealing = key }
        try save()
    }

    /// The key the files are sealed with, if any.
    public var sealing: UnlockKey? { current.withLock { $0.sealing } }

    private init(copying other: NodeCredentials, directory: String) {
        self.directory = directory
        current = Mutex(other.current.withLock { $0 })
    }

    static func make(key: P256.Signing.PrivateKey, certificate: Certificate, intermediates: [Certificate] = [],
                     roots: [Certificate]) throws(CAError) -> Current {
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw CAError("the node key does not belong to the node certificate")
        }
        let identity = try NodeIdentity(certificate: certificate)
        guard !roots.isEmpty else { throw CAError("no root CA is trusted") }
        var override = NIOSSLContextConfigurationOverride()
        do {
            // The chain a node presents ends with the roots, so that a joining node can
            // check a root against its token's digest.
            let chain = [certificate] + intermediates + roots
            override.certificateChain = try chain.map { .certificate(try NIOSSLCertificate(bytes: try $0.derBytes(), format: .der)) }
            override.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem))
        } catch {
            throw CAError("the node certificate or key cannot be used for TLS: \(error)")
        }
        return Current(key: key, certificate: certificate, intermediates: intermediates, identity: identity, roots: roots, override: override)
    }

    /// Who this node is, as its certificate says.
    public var identity: NodeIdentity { current.withLock { $0.identity } }
    public var certificate: Certificate { current.withLock { $0.certificate } }
    public var roots: [Certificate] { current.withLock { $0.roots } }
    public var key: P256.Signing.PrivateKey { current.withLock { $0.key } }

    /// The certificate and key that new TLS connections use.
    public var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride { current.withLock { $0.override } }

    /// Takes a renewed certificate (for the same key, with the certificates between it and
    /// a root) and the roots to trust, and saves them.
    public func update(certificate: Certificate, intermediates: [Certificate] = [], roots: [Certificate]) throws(CAError) {
        var next = try Self.make(key: key, certificate: certificate, intermediates: intermediates, roots: roots)
        current.withLock { next.sealing = $0.sealing; $0 = next }
        if directory != nil { try save() }
    }

    /// Trusts `roots` from now on (a root rotation's progress), keeping the certificate.
    /// Returns whether anything changed.
    @discardableResult
    public func trust(_ roots: [Certificate]) throws(CAError) -> Bool {
        let c = current.withLock { $0 }
        guard !roots.isEmpty, roots != c.roots else { return false }
        try update(certificate: c.certificate, intermediates: c.intermediates, roots: roots)
        return true
    }

    /// The digest of the trusted root whose key signed this node's certificate (through
    /// a cross-signed intermediate or not); nil when no trusted root's key did.
    public var signingRootDigest: String? {
        let c = current.withLock { $0 }
        return c.roots.first { $0.publicKey.isValidSignature(c.certificate.signature, for: c.certificate) }.map(RootCA.digest(of:))
    }

    /// A CSR for this node's key, for `role`.
    public func signingRequest(role: NodeRole?) throws -> String {
        try SigningRequest.make(key: key, nodeID: identity.nodeID, role: role)
    }

    /// Writes the three files, each replaced whole (written aside, then renamed), the key
    /// with mode 0600.
    func save() throws(CAError) {
        guard let directory else { return }
        let c = current.withLock { $0 }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            let keyText = c.sealing.map { SealedFile.seal(c.key.pemRepresentation, with: $0) } ?? c.key.pemRepresentation
            try Self.write(keyText, to: directory + "/" + Self.keyFile, mode: 0o600)
            let chain = try ([c.certificate] + c.intermediates).map { try $0.serializeAsPEM().pemString }.joined(separator: "\n") + "\n"
            try Self.write(chain, to: directory + "/" + Self.certificateFile, mode: 0o644)
            let roots = try c.roots.map { try $0.serializeAsPEM().pemString }.joined(separator: "\n") + "\n"
            try Self.write(roots, to: directory + "/" + Self.rootsFile, mode: 0o644)
        } catch {
            throw CAError("cannot save the node's certificates in \(directory): \(error)")
        }
    }

    static func write(_ text: String, to path: String, mode: Int) throws {
        let aside = path + ".new"
        unlink(aside)
        guard FileManager.default.createFile(atPath: aside, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CAError("cannot write \(aside)")
        }
        guard rename(aside, path) == 0 else { throw CAError("cannot replace \(path): errno \(errno)") }
    }

    /// When to renew: a random point between 50 % and 80 % of the certificate's lifetime,
    /// counted from its issue (its start, less the backdating).
    public func renewalDate<G: RandomNumberGenerator>(using rng: inout G) -> Date {
        let (issued, lifetime) = issuedAndLifetime
        return issued + lifetime * Double.random(in: 0.5...0.8, using: &rng)
    }

    /// When the certificate was issued, and how long it was issued for.
    public var issuedAndLifetime: (issued: Date, lifetime: TimeInterval) {
        let cert = certificate
        let whole = cert.notValidAfter.timeIntervalSince(cert.notValidBefore)
        let backdate = whole > RootCA.backdate ? RootCA.backdate : 0
        return (cert.notValidBefore + backdate, whole - backdate)
    }
}

extension Certificate {
    /// The PEM encoding.
    public var pem: String { get throws { try serializeAsPEM().pemString } }

    /// The DER encoding.
    public func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }
}
