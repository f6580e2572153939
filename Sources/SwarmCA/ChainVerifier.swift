import Foundation
import X509

/// Checks presented certificate chains against the trusted roots.
public enum ChainVerifier {
    /// The validated chain, leaf first, when `chain` (leaf first, then intermediates)
    /// leads to one of `roots` and every certificate is valid now; otherwise the reason it
    /// does not.
    public static func verify(_ chain: [Certificate], roots: [Certificate]) async -> Result<[Certificate], CAError> {
        guard let leaf = chain.first else { return .failure(CAError("no certificate was presented")) }
        var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
            RFC5280Policy()
        }
        switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(Array(chain.dropFirst()))) {
        case .validCertificate(let valid):
            return .success(Array(valid))
        case .couldNotValidate(let failures):
            let now = Date()
            if leaf.notValidAfter < now { return .failure(CAError("the certificate expired at \(leaf.notValidAfter)")) }
            if leaf.notValidBefore > now { return .failure(CAError("the certificate is not valid before \(leaf.notValidBefore)")) }
            if let reason = failures.first?.policyFailureReason { return .failure(CAError("the certificate chain is not trusted: \(reason)")) }
            return .failure(CAError("the certificate does not chain to this cluster's root CA"))
        }
    }

    /// Whether `certificate` is self-signed: its issuer is its subject and its own key
    /// made its signature.
    public static func isSelfSigned(_ certificate: Certificate) -> Bool {
        certificate.issuer == certificate.subject && certificate.publicKey.isValidSignature(certificate.signature, for: certificate)
    }
}
