import Crypto
import Foundation
import SwiftASN1
import X509

/// The cluster's certificate authority: an ECDSA P-256 root certificate and its key. The
/// key is replicated in the store, so that any manager can sign node certificates.
public struct RootCA: Sendable {
    public let certificate: Certificate
    let key: P256.Signing.PrivateKey

    /// How long a root lives: twenty years, as SwarmKit's.
    public static let validity: TimeInterval = 20 * 365 * 24 * 3600
    /// Certificates start five minutes in the past, so that a peer whose clock is a little
    /// behind accepts them.
    public static let backdate: TimeInterval = 300
    /// The default validity of node certificates: 90 days.
    public static let defaultNodeValidity: TimeInterval = 90 * 24 * 3600
    /// The shortest validity `cluster update --cert-expiry` accepts: one hour, or, for
    /// tests of renewal only, the seconds in `SWARM_TEST_MINIMUM_CERT_EXPIRY`.
    public static var minimumNodeValidity: TimeInterval {
        if let text = ProcessInfo.processInfo.environment["SWARM_TEST_MINIMUM_CERT_EXPIRY"], let s = TimeInterval(text), s > 0 { return s }
        return 3600
    }

    /// Creates a new root. A rotation's root gets a name of its own (`swarm-ca-<hex>`), so
    /// that chains through the old and the new root never look alike.
    public static func create(now: Date = Date(), commonName: String = "swarm-ca") throws -> RootCA {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(commonName) }
        let cert = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - backdate, notValidAfter: now + validity,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        return RootCA(certificate: cert, key: key)
    }

    init(certificate: Certificate, key: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.key = key
    }

    /// Reads a root from its certificate and key (PEM), checking that they belong together.
    public init(certificatePEM: String, keyPEM: String) throws(CAError) {
        let cert = try PEMFiles.certificate(certificatePEM, what: "the root CA certificate")
        let key = try PEMFiles.privateKey(keyPEM, what: "the root CA key")
        guard cert.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw CAError("the root CA key does not belong to the root CA certificate")
        }
        self.init(certificate: cert, key: key)
    }

    public var certificatePEM: String { get throws { try certificate.serializeAsPEM().pemString } }
    public var keyPEM: String { key.pemRepresentation }

    /// The root's SHA-256 digest, as join tokens carry it.
    public var digest: String { Self.digest(of: certificate) }

    /// A certificate's SHA-256 digest (of its DER form), 64 lowercase hex digits.
    public static func digest(of certificate: Certificate) -> String {
        var serializer = DER.Serializer()
        try? serializer.serialize(certificate)
        return SHA256.hash(data: serializer.serializedBytes).map { String(format: "%02x", $0) }.joined()
    }

    /// The new root `next` certified by this one: its subject and key, with this root as
    /// issuer. A node that trusts only this root verifies `next`'s certificates through it.
    public func crossSign(_ next: RootCA, now: Date = Date()) throws -> Certificate {
        try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: next.certificate.publicKey,
            notValidBefore: now - Self.backdate, notValidAfter: next.certificate.notValidAfter,
            issuer: certificate.subject, subject: next.certificate.subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 1))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: next.certificate.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
    }

    /// Makes a key and a certificate for `identity` (the first manager's own, and tests'),
    /// as credentials kept in `directory` (nil: in memory).
    public func credentials(for identity: NodeIdentity, validity: TimeInterval, directory: String? = nil) throws -> NodeCredentials {
        let key = P256.Signing.PrivateKey()
        let certificate = try issue(for: identity, publicKey: Certificate.PublicKey(key.publicKey), validity: validity)
        return try NodeCredentials(key: key, certificate: certificate, roots: [self.certificate], directory: directory)
    }

    /// Signs a node certificate for `identity`'s key, valid for `validity` seconds.
    public func issue(for identity: NodeIdentity, publicKey: Certificate.PublicKey,
                      validity: TimeInterval, now: Date = Date()) throws -> Certificate {
        try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now - Self.backdate, notValidAfter: now + validity,
            issuer: certificate.subject, subject: try identity.distinguishedName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: try? certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
    }
}

/// PEM decoding with errors that say which file or field is wrong.
public enum PEMFiles {
    /// One certificate.
    public static func certificate(_ pem: String, what: String) throws(CAError) -> Certificate {
        do { return try Certificate(pemEncoded: pem) } catch {
            throw CAError("\(what) is not a PEM certificate: \(error)")
        }
    }

    /// Every certificate in a PEM bundle (at least one).
    public static func certificates(_ pem: String, what: String) throws(CAError) -> [Certificate] {
        let docs: [PEMDocument]
        do { docs = try PEMDocument.parseMultiple(pemString: pem) } catch {
            throw CAError("\(what) is not a PEM certificate bundle: \(error)")
        }
        guard !docs.isEmpty else { throw CAError("\(what) holds no certificate") }
        var certs: [Certificate] = []
        for doc in docs {
            do { certs.append(try Certificate(pemDocument: doc)) } catch {
                throw CAError("\(what) holds something that is not a certificate: \(error)")
            }
        }
        return certs
    }

    /// An ECDSA P-256 private key.
    public static func privateKey(_ pem: String, what: String) throws(CAError) -> P256.Signing.PrivateKey {
        do { return try P256.Signing.PrivateKey(pemRepresentation: pem) } catch {
            throw CAError("\(what) is not a PEM ECDSA P-256 private key: \(error)")
        }
    }
}
