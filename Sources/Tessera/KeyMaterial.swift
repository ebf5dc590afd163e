import Crypto
import Foundation

/// The secrets that must live outside the token store: the Ed25519 signing key(s) and the key(s)
/// that authenticate refresh tokens. A copy of the store alone cannot mint or use any token.
public struct KeyMaterial: Sendable {
    public struct SigningKey: Sendable {
        public var id: String
        public var privateKey: Curve25519.Signing.PrivateKey
        public var createdAt: Date
        /// A staged key: published (JWKS, verification) from the start, signing only from this
        /// moment. nil: active as soon as it is in the file. Kept in the key file, so every
        /// instance sharing the file switches at the same moment.
        public var activatesAt: Date?

        public init(id: String, privateKey: Curve25519.Signing.PrivateKey, createdAt: Date, activatesAt: Date? = nil) {
            self.id = id
            self.privateKey = privateKey
            self.createdAt = createdAt
            self.activatesAt = activatesAt
        }

        public func isActive(at date: Date) -> Bool { activatesAt.map { $0 <= date } ?? true }
    }

    /// A key that MACs refresh tokens. Its id is derived from the key itself (refresh tokens
    /// carry no key id), so every instance names it alike.
    public struct RefreshKey: Sendable {
        public var key: SymmetricKey
        public var createdAt: Date?

        public init(key: SymmetricKey, createdAt: Date? = nil) {
            self.key = key
            self.createdAt = createdAt
        }

        public var id: String {
            let digest = key.withUnsafeBytes { SHA256.hash(data: Data("tessera refresh key id\u{0}".utf8) + Data($0)) }
            return "r-" + Base64URL.encode(Array(digest.prefix(9)))
        }
    }

    /// The first key active at a given moment signs; all of them verify (so a rotated-out key
    /// keeps verifying until it is retired, and a staged key verifies before it signs).
    public var signingKeys: [SigningKey]
    /// The first MACs new refresh tokens; all of them verify presented ones.
    public var refreshKeys: [RefreshKey]

    public var refreshKey: SymmetricKey { refreshKeys[0].key }

    public init(signingKeys: [SigningKey], refreshKey: SymmetricKey) {
        self.init(signingKeys: signingKeys, refreshKeys: [RefreshKey(key: refreshKey)])
    }

    public init(signingKeys: [SigningKey], refreshKeys: [RefreshKey]) {
        precondition(!signingKeys.isEmpty, "at least one signing key")
        precondition(!refreshKeys.isEmpty, "at least one refresh key")
        self.signingKeys = signingKeys
        self.refreshKeys = refreshKeys
    }

    public static func generate(now: Date = Date()) -> KeyMaterial {
        KeyMaterial(
            signingKeys: [SigningKey(id: keyID(byteCount: 12), privateKey: .init(), createdAt: now)],
            refreshKeys: [RefreshKey(key: SymmetricKey(size: .bits256), createdAt: now)]
        )
    }

    /// A random key id that does not start with `-`, so that it can be given on a command line.
    public static func keyID(byteCount: Int) -> String {
        while true {
            let id = SecureRandom.identifier(byteCount: byteCount)
            if !id.hasPrefix("-") { return id }
        }
    }

    /// The key that signs at `date`: the first one active then. Should every key still be
    /// staged (a hand-edited file), the first one signs rather than none.
    public func signingKey(at date: Date) -> SigningKey {
        signingKeys.first { $0.isActive(at: date) } ?? signingKeys[0]
    }
}

public struct KeyFileError: Error, CustomStringConvertible {
    public var description: String
}

/// Reads and writes `KeyMaterial` as a JSON file with mode 0600.
///
/// Version 1 holds signing keys and one refresh key; version 2 adds staged signing keys
/// (`activates_at`) and several refresh keys. A file is written as version 1 while it needs
/// nothing newer, so an older Tessera can still read it.
public enum KeyFile {
    private struct Stored: Codable {
        struct Key: Codable {
            var kid: String
            var ed25519PrivateKey: String
            var createdAt: Date
            var activatesAt: Date?
        }
        struct Refresh: Codable {
            var key: String
            var createdAt: Date?
        }
        var version: Int
        var signingKeys: [Key]
        var refreshKey: String?
        var refreshKeys: [Refresh]?
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
        guard let stored = try? decoder.decode(Stored.self, from: data), stored.version == 1 || stored.version == 2 else {
            throw KeyFileError(description: "key file \(path) is not a Tessera key file (version 1 or 2)")
        }
        do {
            let keys = try stored.signingKeys.map { key -> KeyMaterial.SigningKey in
                guard let raw = Base64URL.decode(key.ed25519PrivateKey) else { throw KeyFileError(description: "bad key encoding") }
                return .init(
                    id: key.kid, privateKey: try .init(rawRepresentation: raw), createdAt: key.createdAt,
                    activatesAt: stored.version >= 2 ? key.activatesAt : nil
                )
            }
            let refreshEntries = stored.version >= 2 ? (stored.refreshKeys ?? []) : stored.refreshKey.map { [Stored.Refresh(key: $0)] } ?? []
            let refresh = try refreshEntries.map { entry -> KeyMaterial.RefreshKey in
                guard let raw = Base64URL.decode(entry.key), raw.count >= 32 else { throw KeyFileError(description: "bad refresh key") }
                return .init(key: SymmetricKey(data: raw), createdAt: entry.createdAt)
            }
            guard !keys.isEmpty, !refresh.isEmpty, Set(keys.map(\.id)).count == keys.count else {
                throw KeyFileError(description: "missing or duplicate keys")
            }
            return KeyMaterial(signingKeys: keys, refreshKeys: refresh)
        } catch {
            throw KeyFileError(description: "key file \(path) holds an invalid key")
        }
    }

    /// Creates the file; fails when it exists.
    public static func write(_ material: KeyMaterial, to path: String) throws {
        try SecretFile.create(path: path, contents: try encoded(material), what: "key file")
    }

    /// Replaces the file in one step (a reader sees the old file or the new one, never half).
    public static func replace(_ material: KeyMaterial, at path: String) throws {
        try SecretFile.replace(path: path, contents: try encoded(material), what: "key file")
    }

    private static func encoded(_ material: KeyMaterial) throws -> Data {
        let needsVersion2 = material.refreshKeys.count > 1 || material.signingKeys.contains { $0.activatesAt != nil }
        let signing = material.signingKeys.map {
            Stored.Key(
                kid: $0.id, ed25519PrivateKey: Base64URL.encode($0.privateKey.rawRepresentation), createdAt: $0.createdAt,
                activatesAt: $0.activatesAt
            )
        }
        let refresh = material.refreshKeys.map { Stored.Refresh(key: $0.key.withUnsafeBytes { Base64URL.encode(Array($0)) }, createdAt: $0.createdAt) }
        let stored = needsVersion2
            ? Stored(version: 2, signingKeys: signing, refreshKey: nil, refreshKeys: refresh)
            : Stored(version: 1, signingKeys: signing, refreshKey: refresh[0].key, refreshKeys: nil)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(stored)
    }
}

/// Files holding secrets are created with mode 0600 from the start (never world-readable, not
/// even briefly). They are only ever replaced whole, by rename.
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

    /// Runs `body` holding an exclusive lock on `<path>.lock` (created 0600, left in place), so
    /// that two rotations of one file (two operators, the CLI and the admin API) never lose one
    /// another's change. Advisory (`flock`): it covers processes on this host.
    static func withLock<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        let fd = open(path + ".lock", O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw KeyFileError(description: "cannot lock \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw KeyFileError(description: "cannot lock \(path): \(String(cString: strerror(errno)))") }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }

    /// Writes a fresh 0600 file beside `path`, then renames it over `path` and syncs the
    /// directory, so that a crash leaves the old file or the new one.
    static func replace(path: String, contents data: Data, what: String) throws {
        let temporary = path + ".new-" + SecureRandom.identifier(byteCount: 6)
        try create(path: temporary, contents: data, what: what)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw KeyFileError(description: "cannot replace \(what) \(path): \(reason)")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
