import Crypto
import SwiftASN1
import X509

/// Certificate signing requests (PKCS#10): a node asks for a certificate for its own key,
/// which never leaves it.
public enum SigningRequest {
    /// A CSR (PEM) for `key`, naming the node ID (CN) and the role (OU) it asks for; a
    /// joining node that leaves the role to its token names none.
    public static func make(key: P256.Signing.PrivateKey, nodeID: String, role: NodeRole?) throws -> String {
        let subject = try DistinguishedName {
            if let role { OrganizationalUnitName(role.rawValue) }
            CommonName(nodeID)
        }
        let csr = try CertificateSigningRequest(version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key),
                                                attributes: CertificateSigningRequest.Attributes())
        return try csr.serializeAsPEM().pemString
    }

    /// What a checked CSR asks for.
    public struct Request: Sendable {
        public var nodeID: String
        /// nil when the CSR leaves the role to the join token.
        public var role: NodeRole?
        public var publicKey: Certificate.PublicKey
    }

    /// Largest CSR accepted (a P-256 CSR is about 400 bytes).
    public static let maximumSize = 16 * 1024

    /// Decodes a CSR and checks it: PEM, a P-256 key, a signature made with that key, a
    /// well-formed node ID and a known role. The error names what is wrong.
    public static func check(_ pem: [UInt8]) throws(CAError) -> Request {
        guard pem.count <= maximumSize else { throw CAError("the CSR is \(pem.count) bytes; at most \(maximumSize) are accepted") }
        guard !pem.isEmpty else { throw CAError("the request carries no CSR") }
        let csr: CertificateSigningRequest
        do { csr = try CertificateSigningRequest(pemEncoded: String(decoding: pem, as: UTF8.self)) } catch {
            throw CAError("the CSR is not a PEM certificate signing request: \(error)")
        }
        guard P256.Signing.PublicKey(csr.publicKey) != nil else { throw CAError("the CSR's key is not an ECDSA P-256 key") }
        guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
            throw CAError("the CSR's signature was not made with its key")
        }
        let names = DistinguishedNameFields(csr.subject)
        guard let id = names.commonName, isNodeID(id) else {
            throw CAError("the CSR's node ID (CN \(names.commonName.map { "\"\($0)\"" } ?? "missing")) is not 1 to 64 letters and digits")
        }
        var role: NodeRole?
        if let ou = names.organizationalUnit {
            guard let known = NodeRole(rawValue: ou) else {
                throw CAError("the CSR asks for an unknown role (OU \"\(ou)\"; swarm-manager or swarm-worker)")
            }
            role = known
        }
        return Request(nodeID: id, role: role, publicKey: csr.publicKey)
    }

    /// Node IDs: 1 to 64 ASCII letters and digits.
    public static func isNodeID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) }
    }
}

/// A key made for a certificate not yet issued: its CSR, then, once the CA answers, the
/// credentials. The key stays on the node that made it.
public struct CertificateRequest: Sendable {
    let key = P256.Signing.PrivateKey()
    /// The CSR (PEM) to send.
    public let csr: String

    public init(nodeID: String, role: NodeRole?) throws {
        csr = try SigningRequest.make(key: key, nodeID: nodeID, role: role)
    }

    /// Credentials from the CA's answer: the issued certificate and the root (PEM). With
    /// `rootDigest`, the root must be the one a join token names.
    ///
    /// `certificatePEM` may hold the certificates between the node's and a root after it
    /// (during a root rotation), and `rootPEM` several roots.
    public func credentials(certificatePEM: String, rootPEM: String, rootDigest: String? = nil,
                            directory: String? = nil) throws(CAError) -> NodeCredentials {
        let chain = try PEMFiles.certificates(certificatePEM, what: "the issued certificate")
        let roots = try PEMFiles.certificates(rootPEM, what: "the cluster's root CA")
        if let rootDigest, !roots.contains(where: { RootCA.digest(of: $0) == rootDigest }) {
            throw CAError("the cluster's root CA does not match the join token's digest")
        }
        return try NodeCredentials(key: key, certificate: chain[0], intermediates: Array(chain.dropFirst()), roots: roots,
                                   directory: directory)
    }
}
