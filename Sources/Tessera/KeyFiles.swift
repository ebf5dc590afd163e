import Foundation

/// The three kinds of keys Tessera keeps outside its stores.
public enum KeyKind: String, Sendable, CaseIterable, Codable {
    /// Ed25519: signs access tokens, published in the JWKS.
    case signing
    /// HMAC: authenticates refresh tokens.
    case refresh
    /// AES-256-GCM: seals MFA secrets and session credentials.
    case encryption
}

/// One key as `tessera keys list` and `GET /v1/admin/keys` show it (never its secret).
public struct KeyStatus: Sendable, Equatable {
    public enum State: String, Sendable, Codable {
        /// Signs, MACs or seals what is issued now.
        case active
        /// Published and verifying, signing only from `activatesAt`.
        case staged
        /// Still verifies (or opens) what it issued; issues nothing new.
        case previous
    }

    public var kind: KeyKind
    public var id: String
    public var state: State
    public var createdAt: Date?
    public var activatesAt: Date?
}

/// Rotation and retirement on the key files, shared by the CLI and the admin API. Every change
/// replaces the file in one step; running instances pick it up through `KeyFileWatcher`
/// (and the instance making the change, through `keyRing`, at once).
public struct KeyFiles: Sendable {
    /// Signing and refresh keys; nil when they are ephemeral (memory database).
    public var keyFile: String?
    /// Encryption keys; nil when ephemeral.
    public var encryptionKeyFile: String?

    public init(keyFile: String?, encryptionKeyFile: String?) {
        self.keyFile = keyFile
        self.encryptionKeyFile = encryptionKeyFile
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public func list(now: Date) throws -> [KeyStatus] {
        Self.status(material: try material(), secrets: try secrets(), now: now)
    }

    /// Every key of these sets, signing keys first, each kind in file order.
    public static func status(material: KeyMaterial, secrets: SecretBox, now: Date) -> [KeyStatus] {
        let signer = material.signingKey(at: now).id
        let signing = material.signingKeys.map { key in
            KeyStatus(
                kind: .signing, id: key.id, state: key.id == signer ? .active : key.isActive(at: now) ? .previous : .staged,
                createdAt: key.createdAt, activatesAt: key.activatesAt
            )
        }
        let refresh = material.refreshKeys.enumerated().map { index, key in
            KeyStatus(kind: .refresh, id: key.id, state: index == 0 ? .active : .previous, createdAt: key.createdAt)
        }
        let encryption = secrets.keys.enumerated().map { index, key in
            KeyStatus(kind: .encryption, id: key.id, state: index == 0 ? .active : .previous)
        }
        return signing + refresh + encryption
    }

    /// Adds a key of `kind`. A signing key is staged: in the JWKS at once, signing from
    /// `now + publishDelay`. Returns the new key and the key sets as written.
    public func rotate(
        _ kind: KeyKind, now: Date, publishDelay: TimeInterval
    ) async throws -> (key: KeyStatus, material: KeyMaterial, secrets: SecretBox?) {
        let path = kind == .encryption ? try encryptionKeyFilePath() : try keyFilePath()
        return try await SecretFile.withLock(path) { try rotateLocked(kind, now: now, publishDelay: publishDelay) }
    }

    private func rotateLocked(
        _ kind: KeyKind, now: Date, publishDelay: TimeInterval
    ) throws -> (key: KeyStatus, material: KeyMaterial, secrets: SecretBox?) {
        switch kind {
        case .signing, .refresh:
            let path = try keyFilePath()
            let current = try KeyFile.load(path: path)
            let next: KeyMaterial
            let added: KeyStatus
            if kind == .signing {
                let staged = try current.stagingSigningKey(now: now, publishDelay: publishDelay)
                let key = staged.1
                next = staged.0
                added = KeyStatus(
                    kind: .signing, id: key.id, state: key.isActive(at: now) ? .active : .staged, createdAt: key.createdAt,
                    activatesAt: key.activatesAt
                )
            } else {
                let rotated = current.rotatingRefreshKey(now: now)
                let key = rotated.1
                next = rotated.0
                added = KeyStatus(kind: .refresh, id: key.id, state: .active, createdAt: key.createdAt)
            }
            try KeyFile.replace(next, at: path)
            return (added, next, nil)
        case .encryption:
            let path = try encryptionKeyFilePath()
            let (next, key) = try EncryptionKeyFile.load(path: path).rotating()
            try EncryptionKeyFile.replace(next, at: path)
            return (KeyStatus(kind: .encryption, id: key.id, state: .active), try material(), next)
        }
    }

    /// Removes the key `id` of any kind. `sealedUnder` tells how many stored values are still
    /// sealed under an encryption key; such a key is refused until they are re-sealed.
    public func retire(
        _ id: String, now: Date, sealedUnder: (String) async throws -> Int
    ) async throws -> (kind: KeyKind, material: KeyMaterial, secrets: SecretBox) {
        if let path = keyFile, FileManager.default.fileExists(atPath: path) {
            let retired = try await SecretFile.withLock(path) { () throws -> (KeyKind, KeyMaterial)? in
                let material = try KeyFile.load(path: path)
                guard material.contains(keyID: id) else { return nil }
                let next = try material.retiring(keyID: id, now: now)
                try KeyFile.replace(next, at: path)
                return (material.signingKeys.contains { $0.id == id } ? .signing : .refresh, next)
            }
            if let (kind, next) = retired { return (kind, next, try secrets()) }
        }
        if let path = encryptionKeyFile, FileManager.default.fileExists(atPath: path) {
            let retired = try await SecretFile.withLock(path) { () async throws -> SecretBox? in
                let box = try EncryptionKeyFile.load(path: path)
                guard box.keys.contains(where: { $0.id == id }) else { return nil }
                let next = try box.retiring(keyID: id)
                let count = try await sealedUnder(id)
                guard count == 0 else { throw KeyRotationError.keyStillSealing(id, count: count) }
                try EncryptionKeyFile.replace(next, at: path)
                return next
            }
            if let next = retired { return (.encryption, try material(), next) }
        }
        throw KeyRotationError.keyNotFound(id)
    }

    private func material() throws -> KeyMaterial { try KeyFile.load(path: try keyFilePath()) }
    private func secrets() throws -> SecretBox { try EncryptionKeyFile.load(path: try encryptionKeyFilePath()) }

    private func keyFilePath() throws -> String {
        guard let keyFile else { throw Unavailable(description: "the signing keys are ephemeral (no key file); there is nothing to rotate") }
        return keyFile
    }

    private func encryptionKeyFilePath() throws -> String {
        guard let encryptionKeyFile else {
            throw Unavailable(description: "the encryption key is ephemeral (no key file); there is nothing to rotate")
        }
        return encryptionKeyFile
    }
}
