import Foundation
import Logging

/// What enrolment hands to the user's authenticator app.
public struct MFAEnrollment: Sendable {
    /// Base32, as authenticator apps take it.
    public var secret: String
    public var otpauthURI: String
}

// TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of skew, no code accepted twice).
extension AuthService {
    /// Creates (or replaces) a pending TOTP secret; `confirmMFA` with a code turns MFA on.
    public func enrollMFA(_ claims: AccessClaims) async throws -> MFAEnrollment {
        guard var user = try await users.user(id: claims.sub) else { throw AuthError.invalidToken }
        guard !user.mfaEnabled else { throw AuthError.mfaAlreadyEnabled }
        let secret = TOTPSecret.generate()
        user.mfaSecret = try security.secrets.seal(Data(secret.utf8), context: Self.totpContext(user.id))
        try await save(user)
        let uri = TOTP(secret: secret).authenticatorURL(label: "\(security.totpIssuer):\(user.email)", issuer: security.totpIssuer)
        logger.info("mfa enrolment started", metadata: ["user_id": "\(user.id)"])
        return MFAEnrollment(secret: TOTPSecret.base32(secret), otpauthURI: uri)
    }

    public func confirmMFA(code: String, _ claims: AccessClaims) async throws {
        guard var user = try await users.user(id: claims.sub) else { throw AuthError.invalidToken }
        guard !user.mfaEnabled else { throw AuthError.mfaAlreadyEnabled }
        guard user.mfaSecret != nil else { throw AuthError.mfaNotEnrolled }
        try await limiter.check(.mfaVerify, ip: nil, account: user.id)
        guard try await checkTOTP(code, for: user) else { throw AuthError.invalidMFACode }
        user.mfaEnabled = true
        try await save(user)
        logger.info("mfa enabled", metadata: ["user_id": "\(user.id)"])
    }

    public func disableMFA(code: String, _ claims: AccessClaims) async throws {
        guard var user = try await users.user(id: claims.sub) else { throw AuthError.invalidToken }
        guard user.mfaEnabled else { throw AuthError.mfaNotEnrolled }
        try await limiter.check(.mfaVerify, ip: nil, account: user.id)
        guard try await checkTOTP(code, for: user) else { throw AuthError.invalidMFACode }
        user.mfaEnabled = false
        user.mfaSecret = nil
        try await save(user)
        logger.info("mfa disabled", metadata: ["user_id": "\(user.id)"])
    }

    /// The second step of a login with MFA: a right code for a live MFA token starts the session.
    /// The token is single-use and dies after `mfaMaxAttempts` wrong codes.
    public func verifyMFA(token: String, code: String, client: ClientInfo = .init()) async throws -> TokenGrant {
        try await limiter.check(.mfaVerify, ip: client.ipAddress, account: nil)
        guard let (userID, hash) = OneTimeTokenCodec.mfa.decode(token) else { throw AuthError.invalidMFAToken }
        // Taken out of the store for the check, so that two guesses never race on one token;
        // a wrong code puts it back with one attempt fewer.
        guard let stored = try await tokens.consumeOneTimeToken(kind: OneTimeTokenCodec.mfa.kind, userID: userID, hash: hash) else {
            throw AuthError.invalidMFAToken
        }
        // Only a real MFA token spends the account's budget: a made-up token naming the user
        // cannot lock them out of their second factor.
        do {
            try await limiter.check(.mfaVerify, ip: nil, account: userID)
        } catch {
            try await tokens.putOneTimeToken(stored)
            throw error
        }
        guard let user = try await users.user(id: userID), user.mfaEnabled else { throw AuthError.invalidMFAToken }
        let challenge = MFAChallengeState(payload: stored.payload)
        guard try await checkTOTP(code, for: user) else {
            security.events(.mfaFailed)
            let attempts = challenge.attempts + 1
            if attempts < security.mfaMaxAttempts {
                var next = stored
                next.payload = MFAChallengeState(attempts: attempts, device: challenge.device).payload
                try await tokens.putOneTimeToken(next)
            } else {
                logger.warning("mfa token ended after too many wrong codes", metadata: ["user_id": "\(user.id)"])
            }
            throw AuthError.invalidMFACode
        }
        return try await startSession(for: user, client: ClientInfo(device: challenge.device, userAgent: client.userAgent, ipAddress: client.ipAddress))
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
        let secret = String(decoding: try security.secrets.open(sealed, context: Self.totpContext(user.id)), as: UTF8.self)
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
