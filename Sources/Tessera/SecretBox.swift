import Crypto
import Foundation

/// Encrypts values that must be stored but read back (TOTP secrets, upstream credentials) with
/// AES-256-GCM under a key kept outside the stores (`--encryption-key-file`).
///
/// Each value is bound to its purpose and owner through the associated data (e.g.
/// `totp|<user id>`), so a sealed value copied to another user or field does not open.
/// Sealed form: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`.
public struct SecretBox: Sendable {
    public struct Key: Sendable {
        public var id: String
        public var key: SymmetricKey

        public init(id: String, key: SymmetricKey) {
            self.id = id
            self.key = key
        }
    }

    /// The first key seals; all of them open (rotation: prepend a new key, keep the old ones).
    public let keys: [Key]

    public init(keys: [Key]) {
        precondition(!keys.isEmpty, "at least one encryption key")
        self.keys = keys
    }

    public static func generate() -> SecretBox {
        SecretBox(keys: [Key(id: KeyMaterial.keyID(byteCount: 9), key: SymmetricKey(size: .bits256))])
    }

    public func seal(_ plaintext: some DataProtocol, context: String) throws -> String {
        let key = keys[0]
        let box = try AES.GCM.seal(plaintext, using: key.key, authenticating: Data(context.utf8))
        guard let combined = box.combined else { throw SecretBoxError.cannotOpen }
        return "v1.\(key.id).\(Base64URL.encode(combined))"
    }

    public func open(_ sealed: String, context: String) throws -> Data {
        let parts = sealed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", let key = keys.first(where: { $0.id == parts[1] }),
            let combined = Base64URL.decode(parts[2]), let box = try? AES.GCM.SealedBox(combined: combined),
            let plaintext = try? AES.GCM.open(box, using: key.key, authenticating: Data(context.utf8))
        else { throw SecretBoxError.cannotOpen }
        return plaintext
    }
}

public enum SecretBoxError: Error, CustomStringConvertible {
    /// Wrong key, wrong context, or tampered data; deliberately not more specific.
    case cannotOpen

    public var description: String { "a sealed value could not be opened (unknown key, wrong context or tampered)" }
}

/// The encryption key file: JSON, mode 0600, created on first start like the signing key file.
public enum EncryptionKeyFile {
    private struct Stored: Codable {
        struct Key: Codable {
            var id: String
            var aes256Key: String
        }
        var version: Int
        var keys: [Key]
    }

    public static func loadOrCreate(path: String) throws -> (SecretBox, KeyFile.Origin) {
        if FileManager.default.fileExists(atPath: path) {
            return (try load(path: path), .loaded)
        }
        let box = SecretBox.generate()
        try SecretFile.create(path: path, contents: try encoded(box), what: "encryption key file")
        return (box, .created)
    }

    /// Replaces the file in one step (rotation: a new first key, the old ones kept).
    public static func replace(_ box: SecretBox, at path: String) throws {
        try SecretFile.replace(path: path, contents: try encoded(box), what: "encryption key file")
    }

    private static func encoded(_ box: SecretBox) throws -> Data {
        let stored = Stored(
            version: 1, keys: box.keys.map { key in .init(id: key.id, aes256Key: key.key.withUnsafeBytes { Base64URL.encode(Array($0)) }) }
        )
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(stored)
    }

    public static func load(path: String) throws -> SecretBox {
        let data = try SecretFile.read(path: path, what: "encryption key file")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        guard let stored = try? decoder.decode(Stored.self, from: data), stored.version == 1, !stored.keys.isEmpty else {
            throw KeyFileError(description: "encryption key file \(path) is not a Tessera encryption key file (version 1)")
        }
        let keys = try stored.keys.map { key -> SecretBox.Key in
            guard let raw = Base64URL.decode(key.aes256Key), raw.count == 32 else {
                throw KeyFileError(description: "encryption key file \(path) holds an invalid key")
            }
            return .init(id: key.id, key: SymmetricKey(data: raw))
        }
        return SecretBox(keys: keys)
    }
}

/// Hex SHA-256: how one-time token secrets are stored (never the secret itself).
public enum TokenHash {
    public static func hex(_ value: String) -> String {
        SHA256.hash(data: Array(value.utf8)).withUnsafeBytes { Hex.lowercase($0) }
    }
}
