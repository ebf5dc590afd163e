import Foundation
import Logging
import Synchronization

// Account flows on top of the token core: sessions per device, passwords, upstream credentials
// and the user cache. MFA is in AuthService+MFA.swift.

extension AuthService {
    // MARK: User cache

    /// The user without secrets, from the cache when possible (cache-aside). A cache that cannot
    /// be reached is skipped, never an error: the user store is the truth.
    public func cachedUser(id: String) async throws -> User? {
        if let cached = try? await security.userCache.user(id: id) {
            cacheCounters.hit()
            return cached
        }
        cacheCounters.miss()
        guard let user = try await users.user(id: id) else { return nil }
        do {
            try await security.userCache.store(user.withoutSecrets, ttl: security.userCacheTTL)
        } catch {
            // Debug only: during an outage this would repeat on every request; the store's own
            // outage is logged (and shown in /health) where it happens.
            logger.debug("user cache unavailable", metadata: ["error": "\(error)"])
        }
        return user.withoutSecrets
    }

    /// Writes a changed user and drops every cached copy. Applications that change users
    /// through the `UserStore` directly call `invalidateCachedUser(id:)` themselves.
    func save(_ user: User) async throws {
        var user = user
        user.updatedAt = clock.now()
        try await users.updateUser(user)
        try await invalidateCachedUser(id: user.id)
    }

    public func invalidateCachedUser(id: String) async throws {
        do {
            try await security.userCache.invalidate(userID: id)
        } catch {
            // The change itself is stored; the cache holds no secrets and expires on its own.
            logger.warning("user cache invalidation failed", metadata: ["user_id": "\(id)", "error": "\(error)"])
        }
    }

    public var userCacheStatistics: (hits: Int, misses: Int) { cacheCounters.snapshot() }

    // MARK: Sessions per device

    /// The user's live sessions, oldest first.
    public func sessions(_ claims: AccessClaims) async throws -> [SessionRecord] {
        try await tokens.sessions(userID: claims.sub)
    }

    /// Ends one of the caller's sessions: its refresh token and access tokens stop working.
    public func endSession(id: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws {
        guard try await tokens.revokeSession(id: id, userID: claims.sub, accessTTL: policy.accessTTL) else {
            throw AuthError.sessionNotFound
        }
        security.events(.sessionEnded)
        logger.info("session ended", metadata: ["session_id": "\(id)", "user_id": "\(claims.sub)", "by_session": "\(claims.sid)"])
        audit.record(AuditEvent(.sessionRevoked, userID: claims.sub, sessionID: id, details: ["by_session": claims.sid]), client: client)
    }

    // MARK: Passwords

    /// Changes the password and ends every other session; the caller's session stays.
    public func changePassword(current: String, new: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws {
        try Self.validatePassword(new)
        // Guessing the current password with a stolen access token is a failed login.
        var user = try await reauthenticate(current, claims, client: client)
        user.passwordHash = try await hasher.hash(new)
        try await save(user)
        let ended = try await tokens.revokeAllSessions(userID: user.id, keeping: claims.sid, accessTTL: policy.accessTTL)
        security.events(.passwordChanged)
        logger.info("password changed", metadata: ["user_id": "\(user.id)", "sessions_ended": "\(ended)"])
        audit.record(AuditEvent(.passwordChanged, userID: user.id, sessionID: claims.sid, details: ["sessions_ended": "\(ended)"]), client: client)
    }

    /// Starts a password reset. Answers the same, in the same time, whether or not the email has
    /// an account: after the rate limits, the look-up, the token write and the message happen
    /// in the background (`BackgroundWork`, bounded).
    public func forgotPassword(email: String, client: ClientInfo = .init()) async throws {
        try await limiter.check(.forgot, ip: client.ipAddress, account: EmailAddress.limitKey(email))
        let service = self
        let accepted = forgotWork.submit {
            do {
                try await service.issueResetToken(email: email, client: client)
            } catch {
                service.logger.warning("password reset request failed", metadata: ["error": "\(error)"])
            }
        }
        if !accepted { logger.warning("password reset request dropped: too many in progress") }
    }

    /// Returns once the token is stored and handed to the dispatcher; nothing for unknown emails.
    func issueResetToken(email: String, client: ClientInfo = .init()) async throws {
        guard let user = try await user(email: email) else {
            audit.record(AuditEvent(.passwordResetRequested, reason: "unknown_account"), client: client)
            return
        }
        let now = clock.now()
        let (token, hash) = OneTimeTokenCodec.reset.make(userID: user.id)
        let expiresAt = now.addingTimeInterval(security.resetTokenTTL)
        try await tokens.putOneTimeToken(OneTimeToken(kind: OneTimeTokenCodec.reset.kind, hash: hash, userID: user.id, expiresAt: expiresAt))
        // The older token no longer works: its outbox copy goes.
        security.notifier.discard(kind: AccountMessage.Kind.passwordReset, userID: user.id)
        dispatcher.dispatch(
            AccountMessage(
                id: SecureRandom.identifier(byteCount: 12), kind: AccountMessage.Kind.passwordReset, to: user.email, userID: user.id,
                token: token, expiresAt: expiresAt, createdAt: now
            )
        )
        security.events(.resetRequested)
        logger.info("password reset requested", metadata: ["user_id": "\(user.id)"])
        audit.record(AuditEvent(.passwordResetRequested, userID: user.id), client: client)
    }

    /// Consumes a reset token, sets the password and ends every session of the user.
    public func resetPassword(token: String, new: String, client: ClientInfo = .init()) async throws {
        try Self.validatePassword(new)
        guard let (userID, hash) = OneTimeTokenCodec.reset.decode(token),
            try await tokens.consumeOneTimeToken(kind: OneTimeTokenCodec.reset.kind, userID: userID, hash: hash) != nil,
            var user = try await users.user(id: userID)
        else { throw AuthError.invalidResetToken }
        security.notifier.discard(kind: AccountMessage.Kind.passwordReset, userID: user.id)
        user.passwordHash = try await hasher.hash(new)
        try await save(user)
        let ended = try await tokens.revokeAllSessions(userID: user.id, keeping: nil, accessTTL: policy.accessTTL)
        security.events(.passwordReset)
        // Whoever reset the password proved control of the mailbox: lift the account-wide
        // slow-down and this client's lock.
        try await limiter.accountRecovered(account: user.email, ip: client.ipAddress)
        logger.info("password reset", metadata: ["user_id": "\(user.id)", "sessions_ended": "\(ended)"])
        audit.record(AuditEvent(.passwordReset, userID: user.id, details: ["sessions_ended": "\(ended)"]), client: client)
    }

    // MARK: Upstream credentials

    /// Stores a named credential (any bytes, typically JSON) on the caller's session, encrypted.
    public func putCredential(named name: String, value: Data, _ claims: AccessClaims) async throws {
        try Self.validateCredentialName(name)
        guard value.count <= Self.maxCredentialSize else {
            throw AuthError.invalidRequest("a credential is at most \(Self.maxCredentialSize) bytes")
        }
        let sealed = try secrets.seal(value, context: Self.credentialContext(name, claims))
        let credential = SessionCredential(name: name, sessionID: claims.sid, userID: claims.sub, sealed: sealed, updatedAt: clock.now())
        switch try await tokens.putCredential(credential, limit: security.credentialsPerSession) {
        case .stored: return
        case .sessionNotFound: throw AuthError.invalidToken
        case .limitReached: throw AuthError.credentialLimitReached(security.credentialsPerSession)
        }
    }

    public func credential(named name: String, _ claims: AccessClaims) async throws -> Data {
        try Self.validateCredentialName(name)
        guard let credential = try await tokens.credential(named: name, sessionID: claims.sid, userID: claims.sub) else {
            throw AuthError.credentialNotFound
        }
        let plaintext = try secrets.open(credential.sealed, context: Self.credentialContext(name, claims))
        guard let oauth = OAuth2Credential.fromPlaintext(plaintext) else { return plaintext }
        return try await upstreamAccessToken(oauth, named: name, claims)
    }

    public func deleteCredential(named name: String, _ claims: AccessClaims) async throws {
        try Self.validateCredentialName(name)
        guard try await tokens.deleteCredential(named: name, sessionID: claims.sid, userID: claims.sub) else {
            throw AuthError.credentialNotFound
        }
    }

    public static let maxCredentialSize = 16_384

    static func validateCredentialName(_ name: String) throws {
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x2E || c == 0x5F
        }
        guard (1...64).contains(name.utf8.count), allowed else {
            throw AuthError.invalidRequest("a credential name is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
        }
    }

    /// Binds the ciphertext to its user, session and name.
    static func credentialContext(_ name: String, _ claims: AccessClaims) -> String {
        credentialContext(name, userID: claims.sub, sessionID: claims.sid)
    }

    static func credentialContext(_ name: String, userID: String, sessionID: String) -> String {
        "credential|\(userID)|\(sessionID)|\(name)"
    }
}

/// One-time tokens handed to users: `<prefix>.<user id>.<secret>`. The user id lets the store
/// find the user's token (one per kind); only SHA-256 of the secret is stored.
struct OneTimeTokenCodec: Sendable {
    let prefix: String
    let kind: String

    static let reset = OneTimeTokenCodec(prefix: "tsp1", kind: "reset")
    static let mfa = OneTimeTokenCodec(prefix: "tsm1", kind: "mfa")

    func make(userID: String) -> (token: String, hash: String) {
        let secret = SecureRandom.identifier(byteCount: 32)
        return ("\(prefix).\(userID).\(secret)", TokenHash.hex(secret))
    }

    func decode(_ token: String) -> (userID: String, hash: String)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == prefix, !parts[1].isEmpty, parts[1].utf8.count <= 64,
            let secret = Base64URL.decode(parts[2]), secret.count == 32
        else { return nil }
        return (String(parts[1]), TokenHash.hex(String(parts[2])))
    }
}

final class CacheCounters: Sendable {
    // Atomics, not a lock: every /me and refresh counts here.
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)

    func hit() { hits.add(1, ordering: .relaxed) }
    func miss() { misses.add(1, ordering: .relaxed) }
    func snapshot() -> (hits: Int, misses: Int) { (hits.load(ordering: .relaxed), misses.load(ordering: .relaxed)) }
}
