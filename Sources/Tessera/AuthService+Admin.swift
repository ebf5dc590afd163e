import Foundation
import Logging

/// What `resealSecrets` did with one kind of sealed value.
public struct ResealCounts: Sendable, Equatable {
    /// Re-sealed under the sealing (first) key.
    public var resealed = 0
    /// Already under the sealing key.
    public var current = 0
    /// Changed by their owner while the re-seal ran (then they are sealed under the new key already).
    public var changedMeanwhile = 0
    /// Under a key no longer in the file, or damaged: left as they are.
    public var unreadable = 0

    public init() {}

    enum Outcome { case resealed, current, changedMeanwhile, unreadable }

    mutating func count(_ outcome: Outcome) {
        switch outcome {
        case .resealed: resealed += 1
        case .current: current += 1
        case .changedMeanwhile: changedMeanwhile += 1
        case .unreadable: unreadable += 1
        }
    }
}

/// What `resealSecrets` did: stored MFA secrets, and credentials on live sessions.
public struct ResealReport: Sendable, Equatable {
    public var mfaSecrets = ResealCounts()
    public var credentials = ResealCounts()

    public init() {}
}

/// Operator actions, shared by the admin API and the `tessera` CLI: every one goes through
/// here, so the rules (and any record of who did what) live in one place.
extension AuthService {
    /// The user of an email address as typed (normalized like a login), without secrets.
    public func adminUser(email: String) async throws -> User {
        guard let user = try await user(email: email) else { throw AuthError.userNotFound }
        return user.withoutSecrets
    }

    public func adminUser(id: String) async throws -> User {
        guard let user = try await users.user(id: id) else { throw AuthError.userNotFound }
        return user.withoutSecrets
    }

    /// The user's live sessions, oldest first.
    public func adminSessions(userID: String) async throws -> [SessionRecord] {
        _ = try await adminUser(id: userID)
        return try await tokens.sessions(userID: userID)
    }

    /// Ends one session of the user: its refresh token and access tokens stop working at once.
    public func adminRevokeSession(userID: String, sessionID: String, client: ClientInfo = .init()) async throws {
        _ = try await adminUser(id: userID)
        guard try await tokens.revokeSession(id: sessionID, userID: userID, accessTTL: policy.accessTTL) else {
            throw AuthError.sessionNotFound
        }
        security.events(.sessionEnded)
        logger.notice("session ended by an administrator", metadata: ["user_id": "\(userID)", "session_id": "\(sessionID)"])
        audit.record(AuditEvent(.sessionRevoked, userID: userID, sessionID: sessionID, details: ["by": "admin"]), client: client)
        audit.record(.adminAction("user.session_revoked", target: userID, details: ["session_id": sessionID]), client: client)
    }

    /// Ends every session of the user, as logout-all does. Returns how many.
    @discardableResult
    public func adminRevokeSessions(userID: String, client: ClientInfo = .init()) async throws -> Int {
        _ = try await adminUser(id: userID)
        let count = try await endAllSessions(userID: userID)
        logger.notice("all sessions ended by an administrator", metadata: ["user_id": "\(userID)", "count": "\(count)"])
        audit.record(.adminAction("user.sessions_revoked", target: userID, details: ["sessions_ended": "\(count)"]), client: client)
        return count
    }

    /// Locks the account: logins are refused (`account_disabled`, after the password check)
    /// and every session ends now, so nothing refreshes until an unlock. Returns the sessions
    /// ended; locking a locked account keeps its first lock time.
    @discardableResult
    public func lockUser(userID: String, client: ClientInfo = .init()) async throws -> Int {
        guard var user = try await users.user(id: userID) else { throw AuthError.userNotFound }
        if user.lockedAt == nil {
            user.lockedAt = clock.now()
            try await save(user)
        }
        // After the flag is stored: a login racing the lock either sees the flag or has its
        // session ended here.
        let count = try await endAllSessions(userID: userID)
        logger.notice("account locked by an administrator", metadata: ["user_id": "\(userID)", "sessions_ended": "\(count)"])
        audit.record(.adminAction("user.locked", target: userID, details: ["sessions_ended": "\(count)"]), client: client)
        return count
    }

    /// Returns whether the account was locked.
    @discardableResult
    public func unlockUser(userID: String, client: ClientInfo = .init()) async throws -> Bool {
        guard var user = try await users.user(id: userID) else { throw AuthError.userNotFound }
        guard user.lockedAt != nil else { return false }
        user.lockedAt = nil
        try await save(user)
        logger.notice("account unlocked by an administrator", metadata: ["user_id": "\(userID)"])
        audit.record(.adminAction("user.unlocked", target: userID), client: client)
        return true
    }

    /// Deletes the account: every session and access token ends at once (as with logout-all),
    /// then the user and their recovery codes are removed. Returns the sessions ended.
    @discardableResult
    public func deleteUser(userID: String, client: ClientInfo = .init()) async throws -> Int {
        _ = try await adminUser(id: userID)
        let count = try await endAllSessions(userID: userID)
        guard try await users.deleteUser(id: userID) else { throw AuthError.userNotFound }
        try await invalidateCachedUser(id: userID)
        logger.notice("account deleted by an administrator", metadata: ["user_id": "\(userID)", "sessions_ended": "\(count)"])
        audit.record(.adminAction("user.deleted", target: userID, details: ["sessions_ended": "\(count)"]), client: client)
        return count
    }

    /// Re-seals every stored MFA secret and every credential of a live session under the
    /// sealing (first) encryption key now, rather than at its next write. Each write is a
    /// compare-and-set: a value its owner changes meanwhile is left to that change.
    public func resealSecrets(client: ClientInfo = .init()) async throws -> ResealReport {
        let box = secrets
        var report = ResealReport()
        for secret in try await users.sealedMFASecrets() {
            let context = Self.totpContext(secret.ownerID)
            let outcome = try await Self.reseal(secret.sealed, context: context, box: box) { resealed in
                try await users.replaceMFASecret(userID: secret.ownerID, expected: secret.sealed, with: resealed)
            }
            report.mfaSecrets.count(outcome)
        }
        for credential in try await tokens.sealedCredentials() {
            let context = Self.credentialContext(credential.name, userID: credential.userID, sessionID: credential.sessionID)
            let outcome = try await Self.reseal(credential.sealed, context: context, box: box) { resealed in
                var updated = credential
                updated.sealed = resealed
                return try await tokens.replaceSealedCredential(updated, expected: credential.sealed)
            }
            report.credentials.count(outcome)
        }
        logger.notice(
            "stored secrets re-sealed",
            metadata: [
                "mfa_resealed": "\(report.mfaSecrets.resealed)", "credentials_resealed": "\(report.credentials.resealed)",
                "unreadable": "\(report.mfaSecrets.unreadable + report.credentials.unreadable)",
            ]
        )
        audit.record(
            .adminAction(
                "keys.resealed",
                details: ["mfa_resealed": "\(report.mfaSecrets.resealed)", "credentials_resealed": "\(report.credentials.resealed)"]
            ),
            client: client
        )
        return report
    }

    /// How many stored values (MFA secrets, credentials of live sessions) are sealed under the
    /// encryption key `keyID`.
    public func sealedSecretCount(keyID: String) async throws -> Int {
        let secrets = try await users.sealedMFASecrets().count { SecretBox.keyID(of: $0.sealed) == keyID }
        return try await secrets + tokens.sealedCredentials().count { SecretBox.keyID(of: $0.sealed) == keyID }
    }

    private static func reseal(
        _ sealed: String, context: String, box: SecretBox, write: (String) async throws -> Bool
    ) async throws -> ResealCounts.Outcome {
        if SecretBox.keyID(of: sealed) == box.keys[0].id { return .current }
        guard let plaintext = try? box.open(sealed, context: context) else { return .unreadable }
        return try await write(try box.seal(plaintext, context: context)) ? .resealed : .changedMeanwhile
    }

    private func endAllSessions(userID: String) async throws -> Int {
        let count = try await tokens.revokeAllSessions(userID: userID, keeping: nil, accessTTL: policy.accessTTL)
        for _ in 0..<count { security.events(.sessionEnded) }
        return count
    }
}
