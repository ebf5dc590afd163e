import Foundation
import Synchronization

/// The keys a running service uses, replaceable while it runs: a changed key file reaches
/// every request from the next one on (see `KeyFileWatcher`). One per service, injected.
public final class KeyRing: Sendable {
    public struct Keys: Sendable {
        public var material: KeyMaterial
        public var secrets: SecretBox
        public var accessTokens: AccessTokenCodec
        public var refreshTokens: RefreshTokenCodec
    }

    public let issuer: String
    public let audience: String?
    private let state: Mutex<Keys>

    public init(material: KeyMaterial, secrets: SecretBox, issuer: String, audience: String?) {
        self.issuer = issuer
        self.audience = audience
        self.state = Mutex(Self.keys(material, secrets, issuer: issuer, audience: audience))
    }

    public var current: Keys { state.withLock { $0 } }
    public var material: KeyMaterial { current.material }
    public var secrets: SecretBox { current.secrets }
    public var accessTokens: AccessTokenCodec { state.withLock { $0.accessTokens } }
    public var refreshTokens: RefreshTokenCodec { state.withLock { $0.refreshTokens } }

    /// Installs new keys. The access-token codec (and with it the cache of verified tokens)
    /// is rebuilt, so a retired key stops verifying at once.
    public func replace(material: KeyMaterial? = nil, secrets: SecretBox? = nil) {
        state.withLock { keys in
            keys = Self.keys(material ?? keys.material, secrets ?? keys.secrets, issuer: issuer, audience: audience)
        }
    }

    private static func keys(_ material: KeyMaterial, _ secrets: SecretBox, issuer: String, audience: String?) -> Keys {
        Keys(
            material: material, secrets: secrets, accessTokens: AccessTokenCodec(keys: material, issuer: issuer, audience: audience),
            refreshTokens: RefreshTokenCodec(keys: material.refreshKeys.map(\.key))
        )
    }
}
