import Crypto
import Foundation

/// A cluster's unlock key, `SWMKEY-1-<32 random bytes, base64>`: under autolock, each
/// manager keeps its TLS key and its data key sealed with a key derived from it (HKDF-SHA256),
/// so that a copy of a manager's state directory is of no use without it.
public struct UnlockKey: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]
    static let prefix = "SWMKEY-1-"

    /// A new random key.
    public init() {
        bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// Parses a key, refusing one that is not of the form above.
    public init(parsing text: String) throws(CAError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix(Self.prefix) else { throw CAError("an unlock key starts with \(Self.prefix)") }
        var body = String(trimmed.dropFirst(Self.prefix.count))
        while body.count % 4 != 0 { body += "=" }
        guard let data = Data(base64Encoded: body), data.count == 32 else {
            throw CAError("the unlock key is not SWMKEY-1- followed by 32 bytes in base64")
        }
        bytes = Array(data)
    }

    public var description: String {
        Self.prefix + Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    /// The key files are sealed with.
    var cipher: DataCipher {
        let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: bytes), info: Array("swarm key encryption".utf8),
                                             outputByteCount: 32)
        // 32 bytes, as DataCipher requires.
        return try! DataCipher(keyBytes: derived.withUnsafeBytes { Array($0) })
    }
}

/// Text files (a PEM key, a data key) kept sealed with an unlock key: the whole file,
/// sealed, in base64 between `-----BEGIN SWARM SEALED FILE-----` lines.
public enum SealedFile {
    static let header = "-----BEGIN SWARM SEALED FILE-----"
    static let footer = "-----END SWARM SEALED FILE-----"

    /// Whether `text` is a sealed file.
    public static func isSealed(_ text: String) -> Bool { text.hasPrefix(header) }

    /// `text` sealed with `key`.
    public static func seal(_ text: String, with key: UnlockKey) -> String {
        let sealed = Data(key.cipher.seal(Array(text.utf8))).base64EncodedString(options: .lineLength64Characters)
        return [header, sealed, footer].joined(separator: "\n") + "\n"
    }

    /// The text sealed in `text`; an error when the key is wrong (or the file altered).
    public static func open(_ text: String, with key: UnlockKey, what: String) throws(CAError) -> String {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard lines.count >= 3, lines.first == header, lines.last == footer,
              let data = Data(base64Encoded: lines[1..<(lines.count - 1)].joined()) else {
            throw CAError("\(what) is not a sealed file")
        }
        do { return String(decoding: try key.cipher.open(Array(data)), as: UTF8.self) } catch {
            throw CAError("the unlock key is wrong: it does not open \(what)")
        }
    }

    /// Reads a file that may be sealed: its text, opened with `key` when sealed. A sealed
    /// file without a key is ``CAError/locked``.
    public static func read(_ path: String, key: UnlockKey?) throws(CAError) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard isSealed(text) else { return text }
        guard let key else { throw CAError.locked }
        return try open(text, with: key, what: path)
    }
}

extension CAError {
    /// A manager's keys are sealed (autolock) and no unlock key was given.
    public static let locked = CAError("this manager is locked (autolock): give its unlock key with `swarmctl node unlock` on its control socket, or start swarmd with --unlock-key")
}
