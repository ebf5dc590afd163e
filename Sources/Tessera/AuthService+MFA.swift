import Foundation
import Logging

/// What enrolment hands to the user's authenticator app.
public struct MFAEnrollment: Sendable {
    /// Base32, as authenticator apps take it.
    public var secret: String
    public var otpauthURI: String
}

// TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of skew, no code accepted twice).
//
// Every change of a user's MFA needs the current password as well as the access token: a
// stolen access token alone cannot turn MFA on (and lock the owner out) or off. Each change is
// told to the account's email through the notifier.
extension AuthService {
    /// Creates (or replaces) a pending TOTP secret; `confirmMFA` with a code turns MFA on.
    public func enrollMFA(password: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws -> MFAEnrollment {
        let user = try await reauthenticate(password, claims, client: client)
        var updated = user
        guard !updated.mfaEnabled else { throw AuthError.mfaAlreadyEnabled }
        let secret = TOTPSecret.generate()
        updated.mfaSecret = try secrets.seal(Data(secret.utf8), context: Self.totpContext(user.id))
        try await save(updated)
        let uri = TOTP(secret: secret).authenticatorURL(label: "\(security.totpIssuer):\(user.email)", issuer: security.totpIssuer)
        logger.info("mfa enrolment started", metadata: ["user_id": "\(user.id)"])
        return MFAEnrollment(secret: TOTPSecret.base32(secret), otpauthURI: uri)
    }

    /// Turns MFA on with a code from the pending secret; returns the 10 recovery codes, shown
    /// this once (only their hashes are stored).
    public func confirmMFA(code: String, password: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws -> [String] {
        var user = try await reauthenticate(password, claims, client: client)
        guard !user.mfaEnabled else { throw AuthError.mfaAlreadyEnabled }
        guard user.mfaSecret != nil else { throw AuthError.mfaNotEnrolled }
        try await limiter.check(.mfaVerify, ip: nil, account: user.id)
        guard try await checkTOTP(code, for: user) else { throw AuthError.invalidMFACode }
        // Codes first: MFA is never on without a way back in.
        let codes = try await replaceRecoveryCodes(for: user)
        user.mfaEnabled = true
        try await save(user)
        notify(user, AccountMessage.Kind.mfaEnabled)
        logger.info("mfa enabled", metadata: ["user_id": "\(user.id)"])
        audit.record(AuditEvent(.mfaEnabled, userID: user.id, sessionID: claims.sid), client: client)
        return codes
    }

    /// Turns MFA off with the password and a TOTP or recovery code; deletes the secret and the
    /// recovery codes.
    public func disableMFA(code: String, password: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws {
        var user = try await reauthenticate(password, claims, client: client)
        guard user.mfaEnabled else { throw AuthError.mfaNotEnrolled }
        try await limiter.check(.mfaVerify, ip: nil, account: user.id)
        guard try await checkSecondFactor(code, for: user) != nil else { throw AuthError.invalidMFACode }
        user.mfaEnabled = false
        user.mfaSecret = nil
        try await save(user)
        try await users.replaceRecoveryCodes(userID: user.id, hashes: [])
        notify(user, AccountMessage.Kind.mfaDisabled)
        logger.info("mfa disabled", metadata: ["user_id": "\(user.id)"])
        audit.record(AuditEvent(.mfaDisabled, userID: user.id, sessionID: claims.sid), client: client)
    }

    /// Replaces every recovery code of the user with 10 new ones (the old ones stop working).
    public func regenerateRecoveryCodes(password: String, _ claims: AccessClaims, client: ClientInfo = .init()) async throws -> [String] {
        let user = try await reauthenticate(password, claims, client: client)
        guard user.mfaEnabled else { throw AuthError.mfaNotEnrolled }
        let codes = try await replaceRecoveryCodes(for: user)
        notify(user, AccountMessage.Kind.recoveryCodesRegenerated)
        logger.info("mfa recovery codes regenerated", metadata: ["user_id": "\(user.id)"])
        return codes
    }

    /// For operators (admin API, CLI): turns MFA off for a user who lost every factor. Deletes
    /// the secret (also a pending one) and the recovery codes; sessions stay. Returns whether
    /// MFA was on.
    @discardableResult
    public func resetMFA(userID: String, client: ClientInfo = .init()) async throws -> Bool {
        guard var user = try await users.user(id: userID) else { throw AuthError.userNotFound }
        let wasEnabled = user.mfaEnabled
        let hadMFA = wasEnabled || user.mfaSecret != nil
        user.mfaEnabled = false
        user.mfaSecret = nil
        try await save(user)
        try await users.replaceRecoveryCodes(userID: user.id, hashes: [])
        if hadMFA { notify(user, AccountMessage.Kind.mfaReset) }
        logger.notice("mfa reset by an administrator", metadata: ["user_id": "\(user.id)"])
        audit.record(AuditEvent(.mfaReset, userID: user.id, details: ["mfa_was_enabled": "\(wasEnabled)"]), client: client)
        return wasEnabled
    }

    /// The second step of a login with MFA: a right code for a live MFA token starts the session.
    /// The code is a TOTP code or one of the user's recovery codes (used up by this).
    /// The token is single-use and dies after `mfaMaxAttempts` wrong codes.
    public func verifyMFA(token: String, code: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        do {
            try await limiter.check(.mfaVerify, ip: client.ipAddress, account: nil)
        } catch let error as AuthError {
            audit.record(AuditEvent(.mfaFailed, reason: error.code), client: client)
            throw error
        }
        // The user id inside an unknown token is the caller's claim, not a fact: not audited.
        guard let (userID, hash) = OneTimeTokenCodec.mfa.decode(token),
            // Taken out of the store for the check, so that two guesses never race on one token;
            // a wrong code puts it back with one attempt fewer.
            let stored = try await tokens.consumeOneTimeToken(kind: OneTimeTokenCodec.mfa.kind, userID: userID, hash: hash)
        else {
            audit.record(AuditEvent(.mfaFailed, reason: "invalid_mfa_token"), client: client)
            throw AuthError.invalidMFAToken
        }
        // Only a real MFA token spends the account's budget: a made-up token naming the user
        // cannot lock them out of their second factor.
        do {
            try await limiter.check(.mfaVerify, ip: nil, account: userID)
        } catch {
            _ = try await tokens.restoreOneTimeToken(stored)
            audit.record(AuditEvent(.mfaFailed, userID: userID, reason: (error as? AuthError)?.code ?? "error"), client: client)
            throw error
        }
        guard let user = try await users.user(id: userID), user.mfaEnabled else { throw AuthError.invalidMFAToken }
        let challenge = MFAChallengeState(payload: stored.payload)
        guard let factor = try await checkSecondFactor(code, for: user) else {
            security.events(.mfaFailed)
            let attempts = challenge.attempts + 1
            audit.record(
                AuditEvent(
                    .mfaFailed, userID: user.id, reason: attempts < security.mfaMaxAttempts ? "wrong_code" : "too_many_wrong_codes",
                    details: ["attempts": "\(attempts)"]
                ),
                client: client
            )
            if attempts < security.mfaMaxAttempts {
                var next = stored
                next.payload = MFAChallengeState(attempts: attempts, device: challenge.device).payload
                // Compare-and-set: a newer login's token, issued meanwhile, is never overwritten.
                _ = try await tokens.restoreOneTimeToken(next)
            } else {
                logger.warning("mfa token ended after too many wrong codes", metadata: ["user_id": "\(user.id)"])
            }
            throw AuthError.invalidMFACode
        }
        let grant = try await startSession(
            for: user, client: ClientInfo(device: challenge.device, userAgent: client.userAgent, ipAddress: client.ipAddress)
        )
        audit.record(
            AuditEvent(.loginSucceeded, userID: user.id, sessionID: grant.sessionID, details: ["method": "mfa", "second_factor": factor.rawValue]),
            client: client
        )
        return grant
    }

    /// The user behind the access token, after checking `password` against the login limits of
    /// the account and client: a wrong one is a failed login (it counts towards the lockout).
    func reauthenticate(_ password: String, _ claims: AccessClaims, client: ClientInfo) async throws -> User {
        guard let user = try await users.user(id: claims.sub) else { throw AuthError.invalidToken }
        do {
            try await limiter.checkLogin(account: user.email, ip: client.ipAddress)
        } catch let error as AuthError {
            audit.record(
                AuditEvent(.loginFailed, userID: user.id, sessionID: claims.sid, reason: error.code, details: ["step": "reauthentication"]),
                client: client
            )
            throw error
        }
        guard try await hasher.verify(password, hash: user.passwordHash) else {
            logger.info("re-authentication failed", metadata: ["user_id": "\(user.id)"])
            security.events(.loginFailed)
            audit.record(
                AuditEvent(.loginFailed, userID: user.id, sessionID: claims.sid, reason: "wrong_password", details: ["step": "reauthentication"]),
                client: client
            )
            try await limiter.loginFailed(account: user.email, ip: client.ipAddress)
            throw AuthError.invalidCredentials
        }
        try await limiter.loginSucceeded(account: user.email, ip: client.ipAddress)
        return user
    }

    /// A TOTP code (6 digits) or, failing that, an unused recovery code, which this uses up.
    /// nil: neither.
    func checkSecondFactor(_ code: String, for user: User) async throws -> SecondFactor? {
        if try await checkTOTP(code, for: user) { return .totp }
        guard let hash = RecoveryCodes.hash(code, userID: user.id), try await users.consumeRecoveryCode(userID: user.id, hash: hash) else {
            return nil
        }
        let left = try await users.recoveryCodeCount(userID: user.id)
        notify(user, AccountMessage.Kind.recoveryCodeUsed)
        logger.notice("mfa recovery code used", metadata: ["user_id": "\(user.id)", "codes_left": "\(left)"])
        return .recoveryCode
    }

    private func replaceRecoveryCodes(for user: User) async throws -> [String] {
        let codes = RecoveryCodes.generate()
        try await users.replaceRecoveryCodes(userID: user.id, hashes: codes.compactMap { RecoveryCodes.hash($0, userID: user.id) })
        return codes
    }

    /// Tells the account's owner of a security change (no secret in the message).
    func notify(_ user: User, _ kind: String) {
        dispatcher.dispatch(AccountMessage(id: SecureRandom.identifier(byteCount: 12), kind: kind, to: user.email, userID: user.id, createdAt: clock.now()))
    }

    func startMFAChallenge(for user: User, client: ClientInfo) async throws -> MFAChallenge {
        let (token, hash) = OneTimeTokenCodec.mfa.make(userID: user.id)
        try await tokens.putOneTimeToken(
            OneTimeToken(
                kind: OneTimeTokenCodec.mfa.kind, hash: hash, userID: user.id,
                payload: MFAChallengeState(attempts: 0, device: client.device).payload,
                expiresAt: clock.now().addingTimeInterval(security.mfaTokenTTL)
            )
        )
        security.events(.mfaChallenged)
        return MFAChallenge(token: token, expiresIn: Int(security.mfaTokenTTL))
    }

    /// True for a right code of the previous, current or next step that was not used before.
    func checkTOTP(_ code: String, for user: User) async throws -> Bool {
        guard code.utf8.count == 6, code.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let sealed = user.mfaSecret else { return false }
        let secret = String(decoding: try secrets.open(sealed, context: Self.totpContext(user.id)), as: UTF8.self)
        let totp = TOTP(secret: secret)
        let step = totp.step(at: Int64(clock.now().timeIntervalSince1970.rounded(.down)))
        var matched: Int64?
        // Every candidate is computed and compared in full: timing does not tell which matched.
        for candidate in (step - 1)...(step + 1) {
            let expected = totp.codeString(step: candidate)
            if ConstantTime.equal(Array(expected.utf8), Array(code.utf8)) { matched = candidate }
        }
        guard let matched else { return false }
        // A code is good for up to three steps; claiming its step makes it single-use.
        return try await security.rateLimitStore.claimOnce("totp:\(user.id):\(matched)", ttl: 120)
    }

    static func totpContext(_ userID: String) -> String { "totp|\(userID)" }
}

/// Which second factor a code turned out to be.
enum SecondFactor: String {
    case totp
    case recoveryCode = "recovery_code"
}

/// What an MFA token remembers between the password and the code.
struct MFAChallengeState: Codable {
    var attempts: Int
    var device: String?

    init(attempts: Int, device: String?) {
        self.attempts = attempts
        self.device = device
    }

    init(payload: String) {
        self = (try? JSONDecoder().decode(Self.self, from: Data(payload.utf8))) ?? MFAChallengeState(attempts: 0, device: nil)
    }

    var payload: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self) }
}

enum TOTPSecret {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// 32 characters of the base32 alphabet (160 bits). `TOTP` uses the string's bytes as
    /// the HMAC key; apps get those bytes base32-encoded.
    static func generate() -> String {
        String(decoding: SecureRandom.bytes(32).map { alphabet[Int($0 & 31)] }, as: UTF8.self)
    }

    /// RFC 4648 base32 without padding.
    static func base32(_ text: String) -> String { Base32.encode(text.utf8) }
}

enum ConstantTime {
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
