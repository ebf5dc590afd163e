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

    public init() {}
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

    public init(device: String? = nil, userAgent: String? = nil, ipAddress: String? = nil) {
        self.device = device
        self.userAgent = userAgent
        self.ipAddress = ipAddress
    }
}

/// The token service: accounts, sessions, access and refresh tokens. Transport-free; the HTTP
/// layer and embedding applications call it directly.
public struct AuthService: Sendable {
    public let policy: TokenPolicy
    public let users: any UserStore
    public let tokens: any TokenStore
    public let clock: any TesseraClock
    public let accessTokens: AccessTokenCodec
    let refreshTokens: RefreshTokenCodec
    let hasher: PasswordHasher
    let logger: Logger
    /// Verified against when the email is unknown, so both failures cost one bcrypt.
    private let decoyHash: String

    public init(
        policy: TokenPolicy, users: any UserStore, tokens: any TokenStore, keys: KeyMaterial,
        clock: any TesseraClock = SystemClock(), logger: Logger = Logger(label: "tessera")
    ) async throws {
        self.policy = policy
        self.users = users
        self.tokens = tokens
        self.clock = clock
        self.accessTokens = AccessTokenCodec(keys: keys, issuer: policy.issuer)
        self.refreshTokens = RefreshTokenCodec(key: keys.refreshKey)
        self.hasher = PasswordHasher(cost: policy.bcryptCost)
        self.logger = logger
        self.decoyHash = try await hasher.hash(SecureRandom.identifier())
    }

    // MARK: Accounts

    public func register(email: String, password: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        let email = try Self.normalizedEmail(email)
        try Self.validatePassword(password)
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
        return try await startSession(for: user, client: client)
    }

    public func login(email: String, password: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        // No format errors here: every failure looks the same to the caller.
        let email = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard let user = try await users.user(email: email) else {
            _ = try await hasher.verify(password, hash: decoyHash)
            throw AuthError.invalidCredentials
        }
        guard try await hasher.verify(password, hash: user.passwordHash) else {
            logger.info("login failed", metadata: ["user_id": "\(user.id)"])
            throw AuthError.invalidCredentials
        }
        return try await startSession(for: user, client: client)
    }

    public func currentUser(_ claims: AccessClaims) async throws -> User {
        guard let user = try await users.user(id: claims.sub) else { throw AuthError.invalidToken }
        return user
    }

    // MARK: Sessions

    func startSession(for user: User, client: ClientInfo) async throws -> TokenGrant {
        let now = clock.now()
        let session = SessionRecord(
            id: SecureRandom.identifier(byteCount: 16), userID: user.id, generation: 1, rotatedAt: now,
            createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(min(policy.refreshTTL, policy.sessionMaxAge)),
            absoluteExpiresAt: now.addingTimeInterval(policy.sessionMaxAge),
            device: client.device, userAgent: client.userAgent, ipAddress: client.ipAddress
        )
        try await tokens.createSession(session)
        return try grant(for: session, user: user, now: now)
    }

    /// Rotates a refresh token. Only the immediately previous generation, inside the grace
    /// window, is answered without a new generation; any other replay ends the session.
    public func refresh(refreshToken: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        guard let decoded = refreshTokens.decode(refreshToken) else { throw AuthError.invalidRefreshToken }
        let outcome = try await tokens.rotate(
            RotationRequest(
                userID: decoded.userID, sessionID: decoded.sessionID, presentedGeneration: decoded.generation,
                graceWindow: policy.refreshReuseGrace, idleTTL: policy.refreshTTL, revokedAccessTTL: policy.accessTTL,
                userAgent: client.userAgent, ipAddress: client.ipAddress
            )
        )
        switch outcome {
        case .rotated(let session), .reissued(let session):
            guard let user = try await users.user(id: session.userID) else {
                _ = try await tokens.revokeSession(id: session.id, userID: session.userID, accessTTL: policy.accessTTL)
                throw AuthError.invalidRefreshToken
            }
            return try grant(for: session, user: user, now: clock.now())
        case .reused(let userID):
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
    public func logout(_ claims: AccessClaims) async throws {
        _ = try await tokens.revokeSession(id: claims.sid, userID: claims.sub, accessTTL: policy.accessTTL)
        // The session entry covers this token; the jti entry keeps it denied even if the
        // session id were ever reused by a buggy client library.
        try await tokens.deny(.tokenID(claims.jti), userID: claims.sub, until: claims.expiresAt)
        logger.info("session ended", metadata: ["session_id": "\(claims.sid)", "user_id": "\(claims.sub)"])
    }

    /// Ends every session of the user, on every device.
    @discardableResult
    public func logoutAll(_ claims: AccessClaims) async throws -> Int {
        let count = try await tokens.revokeAllSessions(userID: claims.sub, keeping: nil, accessTTL: policy.accessTTL)
        logger.info("all sessions ended", metadata: ["user_id": "\(claims.sub)", "count": "\(count)"])
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

    private func grant(for session: SessionRecord, user: User, now: Date) throws -> TokenGrant {
        let issuedAt = Int64(now.timeIntervalSince1970.rounded(.down))
        let expiresAt = min(issuedAt + Int64(policy.accessTTL), Int64(session.absoluteExpiresAt.timeIntervalSince1970.rounded(.down)))
        let claims = AccessClaims(
            iss: policy.issuer, sub: user.id, sid: session.id, jti: SecureRandom.identifier(byteCount: 16),
            iat: issuedAt, exp: expiresAt
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

    static func normalizedEmail(_ raw: String) throws -> String {
        let email = raw.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.utf8.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64,
            parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."), !parts[1].contains(".."),
            email.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F && !"()<>,;:\\\"[]".unicodeScalars.contains($0) })
        else {
            throw AuthError.invalidRequest("email is not a valid address")
        }
        return email
    }

    static func validatePassword(_ password: String) throws {
        guard password.count >= 8 else { throw AuthError.invalidRequest("password must be at least 8 characters") }
        guard password.count <= 256 else { throw AuthError.invalidRequest("password must be at most 256 characters") }
    }

    private static func wholeSeconds(_ date: Date) -> Date {
        Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
    }
}
