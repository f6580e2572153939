import Crypto
import Foundation

/// Encryption at rest: a node's data key (256 bits) seals what the node writes to disk
/// (Raft log entries and snapshots, the agent's task records) with ChaCha20-Poly1305.
/// A sealed blob is `"SWENC1" | nonce (12) | ciphertext | tag (16)`.
public struct DataCipher: Sendable {
    let key: SymmetricKey
    static let magic = Array("SWENC1".utf8)

    /// A new random key.
    public init() { key = SymmetricKey(size: .bits256) }

    /// A key from its 32 bytes.
    public init(keyBytes: [UInt8]) throws(CAError) {
        guard keyBytes.count == 32 else { throw CAError("a data key is 32 bytes, not \(keyBytes.count)") }
        key = SymmetricKey(data: keyBytes)
    }

    /// The key's bytes (to store it, sealed or not).
    public var keyBytes: [UInt8] { key.withUnsafeBytes { Array($0) } }

    /// Seals `plaintext`.
    public func seal(_ plaintext: [UInt8]) -> [UInt8] {
        // ChaChaPoly.seal fails only for a key of the wrong size, which init rules out.
        let box = try! ChaChaPoly.seal(plaintext, using: key)
        return Self.magic + Array(box.combined)
    }

    /// Whether `bytes` is a sealed blob (as opposed to data written before encryption).
    public static func isSealed(_ bytes: some Collection<UInt8>) -> Bool { bytes.starts(with: magic) }

    /// Opens a sealed blob; an error when it was sealed with another key or was altered.
    public func open(_ sealed: some Collection<UInt8>) throws(CAError) -> [UInt8] {
        guard Self.isSealed(sealed) else { throw CAError("the data is not sealed") }
        do {
            let box = try ChaChaPoly.SealedBox(combined: Array(sealed.dropFirst(Self.magic.count)))
            return Array(try ChaChaPoly.open(box, using: key))
        } catch {
            throw CAError("the data cannot be opened with this node's data key (another key, or altered data)")
        }
    }
}

/// The node's data key file (`<state-dir>/certificates/swarm-data.key`, mode 0600).
public enum DataKeyFile {
    static let header = "-----BEGIN SWARM DATA KEY-----"
    static let footer = "-----END SWARM DATA KEY-----"

    /// Reads the key at `path`, or makes and saves a new one when there is none. A file
    /// that is there but unreadable is an error that names it.
    public static func loadOrCreate(_ path: String, unlockKey: UnlockKey? = nil) throws(CAError) -> DataCipher {
        if let text = try SealedFile.read(path, key: unlockKey) {
            let lines = text.split(separator: "\n").map(String.init)
            guard lines.count >= 3, lines.first == header, lines.last == footer,
                  let bytes = Data(base64Encoded: lines[1..<(lines.count - 1)].joined()) else {
                throw CAError("\(path) is not a data key file (\(header) … \(footer))")
            }
            do { return try DataCipher(keyBytes: Array(bytes)) } catch { throw CAError("\(path): \(error)") }
        }
        let cipher = DataCipher()
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try save(cipher, to: path, sealedWith: unlockKey)
        return cipher
    }

    /// Writes the key, sealed with `unlockKey` when one is given.
    public static func save(_ cipher: DataCipher, to path: String, sealedWith unlockKey: UnlockKey?) throws(CAError) {
        let text = [header, Data(cipher.keyBytes).base64EncodedString(), footer].joined(separator: "\n") + "\n"
        do {
            try NodeCredentials.write(unlockKey.map { SealedFile.seal(text, with: $0) } ?? text, to: path, mode: 0o600)
        } catch {
            throw CAError("cannot save the data key \(path): \(error)")
        }
    }
}
