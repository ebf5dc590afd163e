import Foundation

/// A registered account. `passwordHash` is a bcrypt hash and never leaves the service.
public struct User: Sendable, Equatable {
    public var id: String
    public var email: String
    public var passwordHash: String
    public var mfaEnabled: Bool
    /// The TOTP secret sealed with the encryption key (`SecretBox`); set at enrolment, before
    /// `mfaEnabled` is turned on by a confirmed code. Never stored or logged in the clear.
    public var mfaSecret: String?
    public var createdAt: Date
    public var updatedAt: Date
    /// Set by an administrator: no login, no MFA step, no refresh until unlocked.
    public var lockedAt: Date?

    public init(
        id: String, email: String, passwordHash: String, mfaEnabled: Bool = false, mfaSecret: String? = nil, createdAt: Date,
        updatedAt: Date? = nil, lockedAt: Date? = nil
    ) {
        self.id = id
        self.email = email
        self.passwordHash = passwordHash
        self.mfaEnabled = mfaEnabled
        self.mfaSecret = mfaSecret
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.lockedAt = lockedAt
    }

    /// The record without its secrets (password hash, TOTP secret): what caches hold and what
    /// read-only paths (`/me`, token minting) need.
    public var withoutSecrets: User {
        var user = self
        user.passwordHash = ""
        user.mfaSecret = nil
        return user
    }
}

/// A value sealed by `SecretBox` and whose it is, for re-sealing under a new key.
public struct SealedSecret: Sendable, Equatable {
    public var ownerID: String
    public var sealed: String

    public init(ownerID: String, sealed: String) {
        self.ownerID = ownerID
        self.sealed = sealed
    }
}

/// One logged-in device. The refresh token of a session is derived from (`id`, `generation`)
/// under a server-side key, so the store holds no token material at all.
public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var userID: String
    /// The generation of the refresh token currently valid for this session.
    public var generation: Int64
    /// When `generation` was minted; the grace window for the previous generation runs from here.
    public var rotatedAt: Date
    public var createdAt: Date
    public var lastUsedAt: Date
    /// Idle expiry: pushed forward on every rotation.
    public var idleExpiresAt: Date
    /// Absolute expiry: fixed at creation.
    public var absoluteExpiresAt: Date
    public var device: String?
    public var userAgent: String?
    public var ipAddress: String?

    public init(
        id: String, userID: String, generation: Int64 = 1, rotatedAt: Date, createdAt: Date, lastUsedAt: Date,
        idleExpiresAt: Date, absoluteExpiresAt: Date, device: String? = nil, userAgent: String? = nil, ipAddress: String? = nil
    ) {
        self.id = id
        self.userID = userID
        self.generation = generation
        self.rotatedAt = rotatedAt
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.idleExpiresAt = idleExpiresAt
        self.absoluteExpiresAt = absoluteExpiresAt
        self.device = device
        self.userAgent = userAgent
        self.ipAddress = ipAddress
    }

    /// The session ends at whichever expiry comes first.
    public var expiresAt: Date { min(idleExpiresAt, absoluteExpiresAt) }

    public func isLive(at now: Date) -> Bool { now < expiresAt }
}

/// What a refresh presented to the store asks for.
public struct RotationRequest: Sendable {
    /// The session's owner, carried by the token; stores may partition data by user.
    public var userID: String
    public var sessionID: String
    /// The generation carried by the presented (already authenticated) refresh token.
    public var presentedGeneration: Int64
    /// How long after a rotation the immediately previous generation is still answered.
    public var graceWindow: TimeInterval
    /// New idle lifetime from now, capped by the session's absolute expiry.
    public var idleTTL: TimeInterval
    /// When the session is revoked for re-use, its access tokens stay denied this long.
    public var revokedAccessTTL: TimeInterval
    public var userAgent: String?
    public var ipAddress: String?

    public init(
        userID: String, sessionID: String, presentedGeneration: Int64, graceWindow: TimeInterval, idleTTL: TimeInterval,
        revokedAccessTTL: TimeInterval, userAgent: String? = nil, ipAddress: String? = nil
    ) {
        self.userID = userID
        self.sessionID = sessionID
        self.presentedGeneration = presentedGeneration
        self.graceWindow = graceWindow
        self.idleTTL = idleTTL
        self.revokedAccessTTL = revokedAccessTTL
        self.userAgent = userAgent
        self.ipAddress = ipAddress
    }
}

public enum RotationOutcome: Sendable, Equatable {
    /// The presented generation was current: the session moved to a new generation.
    case rotated(SessionRecord)
    /// The immediately previous generation inside the grace window: answer with the current one.
    case reissued(SessionRecord)
    /// A rotated-out generation was replayed: the session has been revoked.
    case reused(userID: String)
    /// No live session for this token (unknown, expired, revoked).
    case invalid
}

/// Denylist entries are kept until the last access token they cover has expired, never longer.
public enum RevocationKey: Sendable, Hashable, Codable {
    case tokenID(String)
    case session(String)

    public var storageKey: String {
        switch self {
        case .tokenID(let jti): "jti:\(jti)"
        case .session(let sid): "sid:\(sid)"
        }
    }
}

/// A single-use token (password reset, MFA challenge): the store keeps its hash only.
public struct OneTimeToken: Sendable, Equatable {
    public var kind: String
    /// Hex SHA-256 of the token secret.
    public var hash: String
    public var userID: String
    public var payload: String
    public var expiresAt: Date

    public init(kind: String, hash: String, userID: String, payload: String = "", expiresAt: Date) {
        self.kind = kind
        self.hash = hash
        self.userID = userID
        self.payload = payload
        self.expiresAt = expiresAt
    }
}

/// A named upstream credential (e.g. an identity provider's token pair) carried by a session.
/// `sealed` is the value encrypted by `SecretBox`; it lives and dies with the session.
public struct SessionCredential: Sendable, Equatable {
    public var name: String
    public var sessionID: String
    public var userID: String
    public var sealed: String
    public var updatedAt: Date

    public init(name: String, sessionID: String, userID: String, sealed: String, updatedAt: Date) {
        self.name = name
        self.sessionID = sessionID
        self.userID = userID
        self.sealed = sealed
        self.updatedAt = updatedAt
    }
}

public enum CredentialWrite: Sendable, Equatable {
    case stored
    /// No live session of that id for that user.
    case sessionNotFound
    /// The session already carries the maximum number of credentials and this name is new.
    case limitReached
}

/// Counts for `/v1/admin/stats`. Each session has exactly one live refresh token.
public struct TokenStoreStatistics: Sendable, Equatable {
    public var liveSessions: Int
    public var deniedTokens: Int
    /// Live one-time tokens by kind ("reset", "mfa").
    public var pendingOneTimeTokens: [String: Int]

    public init(liveSessions: Int, deniedTokens: Int, pendingOneTimeTokens: [String: Int]) {
        self.liveSessions = liveSessions
        self.deniedTokens = deniedTokens
        self.pendingOneTimeTokens = pendingOneTimeTokens
    }
}
