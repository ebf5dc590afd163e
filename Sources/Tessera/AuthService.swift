import Foundation
import Logging

/// Lifetimes and limits of tokens and sessions. Durations are in seconds.
public struct TokenPolicy: Sendable {
    public var issuer: String = "tessera"
    public var accessTTL: TimeInterval = 900
    /// Idle lifetime of a session's refresh token; each rotation starts it again.
    public var refreshTTL: TimeInterval = 604_800
    /// Absolute lifetime of a session, whatever the rotations.
    public var sessionMaxAge: TimeInterval = 2_592_000
    /// How long after a rotation the previous refresh token is answered with the current pair.
    public var refreshReuseGrace: TimeInterval = 10
    public var bcryptCost: UInt8 = 12
    /// Password hashes that may wait for a thread; past that, 503 `overloaded` at once.
    public var bcryptQueue: Int = 16
    /// When set, access tokens carry this `aud` claim and only tokens naming it are accepted.
    public var audience: String?

    public init() {}
}

/// A password login either ends with tokens or asks for the second factor.
public enum LoginResult: Sendable {
    case tokens(TokenGrant)
    case mfaRequired(MFAChallenge)
}

/// Present `token` with a TOTP code to `AuthService.verifyMFA` within `expiresIn` seconds.
public struct MFAChallenge: Sendable {
    public var token: String
    public var expiresIn: Int
}

/// What a successful register, login or refresh hands to the client.
public struct TokenGrant: Sendable {
    public var accessToken: String
    public var accessExpiresIn: Int
    public var refreshToken: String
    public var refreshExpiresIn: Int
    public var sessionID: String
    public var user: User
}

/// Where a request came from, recorded on the session.
public struct ClientInfo: Sendable {
    public var device: String?
    public var userAgent: String?
    public var ipAddress: String?
    /// The HTTP request's `X-Request-Id`, for the audit log; not stored.
    public var requestID: String?

    public init(device: String? = nil, userAgent: String? = nil, ipAddress: String? = nil, requestID: String? = nil) {
        self.device = device
        self.userAgent = userAgent
        self.ipAddress = ipAddress
        self.requestID = requestID
    }
}

/// What an account's security features run on: the encryption key, rate limits, the user
/// cache and where account messages go. `local(...)` gives the single-process defaults.
public struct AccountSecurity: Sendable {
    public var secrets: SecretBox
    public var rateLimits: RateLimitPolicy
    public var rateLimitStore: any RateLimitStore
    public var userCache: any UserCache
    public var notifier: any Notifier
    /// Where undelivered messages wait (see `NotificationDispatcher`); nil: in memory only.
    public var notificationSpool: String?
    /// Lifetime of a password-reset token.
    public var resetTokenTTL: TimeInterval = 3600
    /// Lifetime of the token between a password login and its TOTP code.
    public var mfaTokenTTL: TimeInterval = 300
    /// Wrong codes an MFA token survives; the next wrong one ends it.
    public var mfaMaxAttempts = 5
    public var userCacheTTL: TimeInterval = 3600
    public var credentialsPerSession = 16
    /// Refreshing OAuth2 session credentials; nil: such credentials are refused.
    public var upstream: UpstreamCredentials?
    /// The issuer shown by authenticator apps.
    public var totpIssuer = "Tessera"
    /// Told of every token operation (for metrics); must return quickly.
    public var events: @Sendable (TokenEvent) -> Void = { _ in }

    public init(
        secrets: SecretBox, rateLimits: RateLimitPolicy = .init(), rateLimitStore: any RateLimitStore, userCache: any UserCache,
        notifier: any Notifier
    ) {
        self.secrets = secrets
        self.rateLimits = rateLimits
        self.rateLimitStore = rateLimitStore
        self.userCache = userCache
        self.notifier = notifier
    }

    /// In-process rate limits and cache; messages to an outbox directory.
    public static func local(
        secrets: SecretBox, outbox: String, rateLimits: RateLimitPolicy = .init(), clock: any TesseraClock = SystemClock()
    ) -> AccountSecurity {
        AccountSecurity(
            secrets: secrets, rateLimits: rateLimits, rateLimitStore: MemoryRateLimitStore(clock: clock),
            userCache: MemoryUserCache(clock: clock), notifier: OutboxNotifier(directory: outbox, clock: clock)
        )
    }
}

/// Token operations, as counted by `/metrics`.
public enum TokenEvent: String, Sendable, CaseIterable {
    case sessionStarted = "session_started"
    case refreshed
    case reissued
    case reuseDetected = "reuse_detected"
    case sessionEnded = "session_ended"
    case mfaChallenged = "mfa_challenged"
    case mfaFailed = "mfa_failed"
    case loginFailed = "login_failed"
    case passwordChanged = "password_changed"
    case passwordReset = "password_reset"
    case resetRequested = "reset_requested"
}

/// The token service: accounts, sessions, access and refresh tokens. Transport-free; the HTTP
/// layer and embedding applications call it directly.
public struct AuthService: Sendable {
    public let policy: TokenPolicy
    public let users: any UserStore
    public let tokens: any TokenStore
    public let clock: any TesseraClock
    /// Signing, refresh and encryption keys; replaced in place when the key files change.
    public let keyRing: KeyRing
    public let security: AccountSecurity
    public let limiter: RateLimiter
    let hasher: PasswordHasher
    /// Account messages, delivered in the background (durably with a spool).
    public let dispatcher: NotificationDispatcher
    /// `password/forgot` work done off the request path.
    let forgotWork = BackgroundWork(limit: 64)
    let cacheCounters = CacheCounters()
    let logger: Logger
    /// Security outcomes (logins, MFA, sessions, passwords), for log pipelines: docs/AUDIT.md.
    public let audit: AuditLog
    /// Verified against when the email is unknown, so both failures cost one bcrypt.
    let decoyHash: String

    public init(
        policy: TokenPolicy, users: any UserStore, tokens: any TokenStore, keys: KeyMaterial, security: AccountSecurity,
        clock: any TesseraClock = SystemClock(), logger: Logger = Logger(label: "tessera"), audit: AuditLog = AuditLog()
    ) async throws {
        self.policy = policy
        self.users = users
        self.tokens = tokens
        self.clock = clock
        self.keyRing = KeyRing(material: keys, secrets: security.secrets, issuer: policy.issuer, audience: policy.audience)
        self.security = security
        self.limiter = RateLimiter(policy: security.rateLimits, store: security.rateLimitStore)
        self.hasher = PasswordHasher(cost: policy.bcryptCost, maxQueued: policy.bcryptQueue)
        self.dispatcher = NotificationDispatcher(notifier: security.notifier, spool: security.notificationSpool, logger: logger, clock: clock)
        self.logger = logger
        self.audit = audit
        self.decoyHash = try await hasher.hash(SecureRandom.identifier())
    }

    // MARK: Accounts

    public func register(email: String, password: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        let email = try EmailAddress.normalized(email)
        try Self.validatePassword(password)
        try await limiter.check(.register, ip: client.ipAddress, account: nil)
        let now = clock.now()
        let user = User(
            id: UUID().uuidString.lowercased(), email: email, passwordHash: try await hasher.hash(password),
            createdAt: Self.wholeSeconds(now)
        )
        do {
            try await users.createUser(user)
        } catch UserStoreError.emailTaken {
            throw AuthError.emailTaken
        }
        logger.info("user registered", metadata: ["user_id": "\(user.id)"])
        let grant = try await startSession(for: user, client: client)
        audit.record(AuditEvent(.accountRegistered, userID: user.id, sessionID: grant.sessionID), client: client)
        return grant
    }

    /// Checks the password. Without MFA the answer is a token grant; with MFA it is a short-lived
    /// MFA token to present with a TOTP code to `verifyMFA`.
    public func login(email: String, password: String, client: ClientInfo = .init()) async throws -> LoginResult {
        // No format errors here: every failure looks the same to the caller.
        let account = EmailAddress.limitKey(email)
        // Keyed by the email as given, whether or not it exists: no enumeration through limits.
        do {
            try await limiter.checkLogin(account: account, ip: client.ipAddress)
        } catch let error as AuthError {
            audit.record(AuditEvent(.loginFailed, reason: error.code), client: client)
            throw error
        }
        guard let user = try await user(email: email) else {
            _ = try await hasher.verify(password, hash: decoyHash)
            security.events(.loginFailed)
            audit.record(AuditEvent(.loginFailed, reason: "unknown_account"), client: client)
            try await limiter.loginFailed(account: account, ip: client.ipAddress)
            throw AuthError.invalidCredentials
        }
        guard try await hasher.verify(password, hash: user.passwordHash) else {
            logger.info("login failed", metadata: ["user_id": "\(user.id)"])
            security.events(.loginFailed)
            audit.record(AuditEvent(.loginFailed, userID: user.id, reason: "wrong_password"), client: client)
            try await limiter.loginFailed(account: account, ip: client.ipAddress)
            throw AuthError.invalidCredentials
        }
        try await limiter.loginSucceeded(account: account, ip: client.ipAddress)
        let current = try await migrateEmail(of: user)
        // After the password check, so that a lock tells nothing to someone guessing.
        guard current.lockedAt == nil else { throw AuthError.accountDisabled }
        if current.mfaEnabled {
            let challenge = try await startMFAChallenge(for: current, client: client)
            audit.record(AuditEvent(.mfaChallenged, userID: current.id), client: client)
            return .mfaRequired(challenge)
        }
        let grant = try await startSession(for: current, client: client)
        audit.record(AuditEvent(.loginSucceeded, userID: current.id, sessionID: grant.sessionID, details: ["method": "password"]), client: client)
        return .tokens(grant)
    }

    /// The account of an address as typed: by its normalized key, else by the key rows were
    /// stored under before normalization (see docs/API.md, "Email addresses").
    func user(email raw: String) async throws -> User? {
        for key in EmailAddress.lookupKeys(raw) {
            if let user = try await users.user(email: key) { return user }
        }
        return nil
    }

    /// A row stored under a pre-normalization key moves to its normalized key at its owner's
    /// next login, unless another account already holds that key (then it stays, logged).
    func migrateEmail(of user: User) async throws -> User {
        // Bytes: `!=` would call NFC and NFD spellings equal.
        guard let normalized = try? EmailAddress.normalized(user.email), !normalized.utf8.elementsEqual(user.email.utf8) else { return user }
        var moved = user
        moved.email = normalized
        do {
            try await save(moved)
            logger.info("email key normalized", metadata: ["user_id": "\(user.id)"])
            return moved
        } catch UserStoreError.emailTaken {
            logger.warning("email key not normalized: another account holds the normalized address", metadata: ["user_id": "\(user.id)"])
            return user
        }
    }

    public func currentUser(_ claims: AccessClaims) async throws -> User {
        guard let user = try await cachedUser(id: claims.sub) else { throw AuthError.invalidToken }
        return user
    }

    // MARK: Sessions

    func startSession(for user: User, client: ClientInfo) async throws -> TokenGrant {
        // Every way in (login, MFA step) passes here: a locked account gets no session.
        guard user.lockedAt == nil else { throw AuthError.accountDisabled }
        let now = clock.now()
        let session = SessionRecord(
            id: SecureRandom.identifier(byteCount: 16), userID: user.id, generation: 1, rotatedAt: now,
            createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(min(policy.refreshTTL, policy.sessionMaxAge)),
            absoluteExpiresAt: now.addingTimeInterval(policy.sessionMaxAge),
            device: client.device, userAgent: client.userAgent, ipAddress: client.ipAddress
        )
        try await tokens.createSession(session)
        security.events(.sessionStarted)
        return try grant(for: session, user: user, now: now)
    }

    /// Rotates a refresh token. Only the immediately previous generation, inside the grace
    /// window, is answered without a new generation; any other replay ends the session.
    public func refresh(refreshToken: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        guard let decoded = refreshTokens.decode(refreshToken) else { throw AuthError.invalidRefreshToken }
        try await limiter.check(.refresh, ip: client.ipAddress, account: decoded.userID)
        let outcome = try await tokens.rotate(
            RotationRequest(
                userID: decoded.userID, sessionID: decoded.sessionID, presentedGeneration: decoded.generation,
                graceWindow: policy.refreshReuseGrace, idleTTL: policy.refreshTTL, revokedAccessTTL: policy.accessTTL,
                userAgent: client.userAgent, ipAddress: client.ipAddress
            )
        )
        switch outcome {
        case .rotated(let session), .reissued(let session):
            if case .rotated = outcome { security.events(.refreshed) } else { security.events(.reissued) }
            guard let user = try await cachedUser(id: session.userID), user.lockedAt == nil else {
                _ = try await tokens.revokeSession(id: session.id, userID: session.userID, accessTTL: policy.accessTTL)
                throw AuthError.invalidRefreshToken
            }
            return try grant(for: session, user: user, now: clock.now())
        case .reused(let userID):
            security.events(.reuseDetected)
            audit.record(
                AuditEvent(.refreshReuseDetected, userID: userID, sessionID: decoded.sessionID, details: ["generation": "\(decoded.generation)"]),
                client: client
            )
            logger.warning(
                "refresh token re-use detected; session revoked",
                metadata: ["session_id": "\(decoded.sessionID)", "user_id": "\(userID)", "generation": "\(decoded.generation)"]
            )
            throw AuthError.refreshTokenReused
        case .invalid:
            throw AuthError.invalidRefreshToken
        }
    }

    /// Ends the session the access token belongs to; its refresh token and every access token
    /// of the session (this one included) stop working at once.
    public func logout(_ claims: AccessClaims, client: ClientInfo = .init()) async throws {
        // The session entry covers this token; the jti entry keeps it denied even if the
        // session id were ever reused by a buggy client library.
        _ = try await tokens.endSession(
            id: claims.sid, userID: claims.sub, accessTTL: policy.accessTTL, tokenID: claims.jti, tokenExpiresAt: claims.expiresAt
        )
        security.events(.sessionEnded)
        logger.info("session ended", metadata: ["session_id": "\(claims.sid)", "user_id": "\(claims.sub)"])
        audit.record(AuditEvent(.logout, userID: claims.sub, sessionID: claims.sid), client: client)
    }

    /// Ends every session of the user, on every device.
    @discardableResult
    public func logoutAll(_ claims: AccessClaims, client: ClientInfo = .init()) async throws -> Int {
        let count = try await tokens.revokeAllSessions(userID: claims.sub, keeping: nil, accessTTL: policy.accessTTL)
        for _ in 0..<count { security.events(.sessionEnded) }
        logger.info("all sessions ended", metadata: ["user_id": "\(claims.sub)", "count": "\(count)"])
        audit.record(AuditEvent(.logoutAll, userID: claims.sub, sessionID: claims.sid, details: ["sessions_ended": "\(count)"]), client: client)
        return count
    }

    // MARK: Access tokens

    /// Verifies signature, issuer and expiry, then the denylist. Throws `AuthError`.
    public func authenticate(bearer token: String) async throws -> AccessClaims {
        let claims: AccessClaims
        do {
            // Ed25519 runs once per distinct token; revocation is still checked below, every time.
            claims = try accessTokens.verifyCached(token, now: clock.now())
        } catch .expired {
            throw AuthError.tokenExpired
        } catch {
            throw AuthError.invalidToken
        }
        if try await tokens.isRevoked(tokenID: claims.jti, sessionID: claims.sid, userID: claims.sub) {
            throw AuthError.tokenRevoked
        }
        return claims
    }

    public func jwks() -> JWKS { accessTokens.jwks() }

    /// The codecs of the keys in force now (the key ring may be replaced at any time).
    public var accessTokens: AccessTokenCodec { keyRing.accessTokens }
    var refreshTokens: RefreshTokenCodec { keyRing.refreshTokens }
    var secrets: SecretBox { keyRing.secrets }

    private func grant(for session: SessionRecord, user: User, now: Date) throws -> TokenGrant {
        let issuedAt = Int64(now.timeIntervalSince1970.rounded(.down))
        let expiresAt = min(issuedAt + Int64(policy.accessTTL), Int64(session.absoluteExpiresAt.timeIntervalSince1970.rounded(.down)))
        let claims = AccessClaims(
            iss: policy.issuer, sub: user.id, sid: session.id, jti: SecureRandom.identifier(byteCount: 16),
            iat: issuedAt, exp: expiresAt, aud: policy.audience
        )
        return TokenGrant(
            accessToken: try accessTokens.sign(claims),
            accessExpiresIn: Int(expiresAt - issuedAt),
            refreshToken: refreshTokens.encode(userID: session.userID, sessionID: session.id, generation: session.generation),
            refreshExpiresIn: max(0, Int(session.expiresAt.timeIntervalSince(now).rounded(.down))),
            sessionID: session.id,
            user: user
        )
    }

    // MARK: Validation

    /// At least 8 characters; at most 256 characters and 1,024 UTF-8 bytes (a character can be
    /// many bytes). A character is a Unicode code point, as NIST SP 800-63B counts them and as
    /// clients and JSON Schema's `minLength` do: grapheme clusters would make a password of
    /// combining marks, or one with a CRLF, shorter here than its owner's form said it was.
    /// Any length hashes safely: `PasswordHasher` pre-hashes past bcrypt's 72 bytes.
    static func validatePassword(_ password: String) throws {
        let characters = password.unicodeScalars.count
        guard password.utf8.count <= maxPasswordBytes, characters <= 256 else {
            throw AuthError.invalidRequest("password must be at most 256 characters and \(maxPasswordBytes) bytes")
        }
        guard characters >= 8 else { throw AuthError.invalidRequest("password must be at least 8 characters") }
    }

    static let maxPasswordBytes = 1024

    private static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }
}
