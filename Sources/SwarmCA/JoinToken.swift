/// A join token, `SWMTKN-1-<digest>-<secret>`: the digest (SHA-256, hex) of the root CA
/// certificate, which a joining node checks the manager's chain against before it sends
/// anything, and a random secret that admits it as a worker or a manager.
public struct JoinToken: Sendable, Hashable, CustomStringConvertible {
    /// The root CA certificate's SHA-256 digest, 64 lowercase hex digits.
    public let rootDigest: String
    /// 25 base-36 characters.
    public let secret: String

    static let prefix = "SWMTKN-1-"
    static let secretAlphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")

    /// A new token for the root whose digest is given, with a random secret.
    public init(rootDigest: String) {
        var rng = SystemRandomNumberGenerator()
        self.rootDigest = rootDigest
        self.secret = String((0..<25).map { _ in Self.secretAlphabet.randomElement(using: &rng)! })
    }

    /// Parses a token, refusing one that is not of the form above.
    public init(parsing text: String) throws(CAError) {
        guard text.hasPrefix(Self.prefix) else { throw CAError("a join token starts with \(Self.prefix)") }
        let rest = text.dropFirst(Self.prefix.count).split(separator: "-", omittingEmptySubsequences: false)
        guard rest.count == 2 else { throw CAError("a join token has the form SWMTKN-1-<root digest>-<secret>") }
        let digest = String(rest[0]), secret = String(rest[1])
        guard digest.count == 64, digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
            throw CAError("the join token's root digest is not a SHA-256 digest (64 hex digits)")
        }
        guard secret.count == 25, secret.allSatisfy({ Self.secretAlphabet.contains($0) }) else {
            throw CAError("the join token's secret is not 25 base-36 characters")
        }
        rootDigest = digest
        self.secret = secret
    }

    /// The same root with a new secret.
    public func rotated() -> JoinToken { JoinToken(rootDigest: rootDigest) }

    public var description: String { Self.prefix + rootDigest + "-" + secret }
}
