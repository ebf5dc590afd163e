import Crypto
import Foundation

/// The secrets that must live outside the token store: the Ed25519 signing key(s) and the key
/// that authenticates refresh tokens. A copy of the store alone cannot mint or use any token.
public struct KeyMaterial: Sendable {
    public struct SigningKey: Sendable {
        public var id: String
        public var privateKey: Curve25519.Signing.PrivateKey
        public var createdAt: Date

        public init(id: String, privateKey: Curve25519.Signing.PrivateKey, createdAt: Date) {
            self.id = id
            self.privateKey = privateKey
            self.createdAt = createdAt
        }
    }

    /// The first key signs; all of them verify (so a rotated-out key keeps verifying until removed).
    public var signingKeys: [SigningKey]
    public var refreshKey: SymmetricKey

    public init(signingKeys: [SigningKey], refreshKey: SymmetricKey) {
        precondition(!signingKeys.isEmpty, "at least one signing key")
        self.signingKeys = signingKeys
        self.refreshKey = refreshKey
    }

    public static func generate(now: Date = Date()) -> KeyMaterial {
        KeyMaterial(
            signingKeys: [SigningKey(id: SecureRandom.identifier(byteCount: 12), privateKey: .init(), createdAt: now)],
            refreshKey: SymmetricKey(size: .bits256)
        )
    }
}

public struct KeyFileError: Error, CustomStringConvertible {
    public var description: String
}

/// Reads and writes `KeyMaterial` as a JSON file created with mode 0600.
public enum KeyFile {
    private struct Stored: Codable {
        struct Key: Codable {
            var kid: String
            var ed25519PrivateKey: String
            var createdAt: Date
        }
        var version: Int
        var signingKeys: [Key]
        var refreshKey: String
    }

    public enum Origin: Sendable { case loaded, created }

    /// Loads the key file, or creates it with fresh keys when it does not exist.
    public static func loadOrCreate(path: String, now: Date = Date()) throws -> (KeyMaterial, Origin) {
        if FileManager.default.fileExists(atPath: path) {
            return (try load(path: path), .loaded)
        }
        let material = KeyMaterial.generate(now: now)
        try write(material, to: path)
        return (material, .created)
    }

    public static func load(path: String) throws -> KeyMaterial {
        let data = try SecretFile.read(path: path, what: "key file")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .iso8601
        guard let stored = try? decoder.decode(Stored.self, from: data), stored.version == 1 else {
            throw KeyFileError(description: "key file \(path) is not a Tessera key file (version 1)")
        }
        do {
            let keys = try stored.signingKeys.map { key -> KeyMaterial.SigningKey in
                guard let raw = Base64URL.decode(key.ed25519PrivateKey) else { throw KeyFileError(description: "bad key encoding") }
                return .init(id: key.kid, privateKey: try .init(rawRepresentation: raw), createdAt: key.createdAt)
            }
            guard let refresh = Base64URL.decode(stored.refreshKey), refresh.count >= 32, !keys.isEmpty else {
                throw KeyFileError(description: "bad refresh key")
            }
            return KeyMaterial(signingKeys: keys, refreshKey: SymmetricKey(data: refresh))
        } catch {
            throw KeyFileError(description: "key file \(path) holds an invalid key")
        }
    }

    public static func write(_ material: KeyMaterial, to path: String) throws {
        let stored = Stored(
            version: 1,
            signingKeys: material.signingKeys.map {
                .init(kid: $0.id, ed25519PrivateKey: Base64URL.encode($0.privateKey.rawRepresentation), createdAt: $0.createdAt)
            },
            refreshKey: material.refreshKey.withUnsafeBytes { Base64URL.encode(Array($0)) }
        )
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try SecretFile.create(path: path, contents: try encoder.encode(stored), what: "key file")
    }
}

/// Files holding secrets are created with mode 0600 from the start (never world-readable, not
/// even briefly) and never overwritten.
enum SecretFile {
    static func read(path: String, what: String) throws -> Data {
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KeyFileError(description: "cannot read \(what) \(path): \(error.localizedDescription)")
        }
    }

    static func create(path: String, contents data: Data, what: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw KeyFileError(description: "cannot create \(what) \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == data.count, fsync(fd) == 0 else {
            throw KeyFileError(description: "cannot write \(what) \(path)")
        }
    }
}
