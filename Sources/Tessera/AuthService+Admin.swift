import Foundation
import Logging

/// What `resealSecrets` did with the stored MFA secrets.
public struct ResealReport: Sendable, Equatable {
    /// Re-sealed under the sealing (first) key.
    public var resealed = 0
    /// Already under the sealing key.
    public var current = 0
    /// Changed by their owner while the re-seal ran (then they are sealed under the new key already).
    public var changedMeanwhile = 0
    /// Under a key no longer in the file, or damaged: left as they are.
    public var unreadable = 0

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
    public func adminRevokeSession(userID: String, sessionID: String) async throws {
        _ = try await adminUser(id: userID)
        guard try await tokens.revokeSession(id: sessionID, userID: userID, accessTTL: policy.accessTTL) else {
            throw AuthError.sessionNotFound
        }
        security.events(.sessionEnded)
        logger.notice("session ended by an administrator", metadata: ["user_id": "\(userID)", "session_id": "\(sessionID)"])
    }

    /// Ends every session of the user, as logout-all does. Returns how many.
    @discardableResult
    public func adminRevokeSessions(userID: String) async throws -> Int {
        _ = try await adminUser(id: userID)
        let count = try await endAllSessions(userID: userID)
        logger.notice("all sessions ended by an administrator", metadata: ["user_id": "\(userID)", "count": "\(count)"])
        return count
    }

    /// Locks the account: logins are refused (`account_disabled`, after the password check)
    /// and every session ends now, so nothing refreshes until an unlock. Returns the sessions
    /// ended; locking a locked account keeps its first lock time.
    @discardableResult
    public func lockUser(userID: String) async throws -> Int {
        guard var user = try await users.user(id: userID) else { throw AuthError.userNotFound }
        if user.lockedAt == nil {
            user.lockedAt = clock.now()
            try await save(user)
        }
        // After the flag is stored: a login racing the lock either sees the flag or has its
        // session ended here.
        let count = try await endAllSessions(userID: userID)
        logger.notice("account locked by an administrator", metadata: ["user_id": "\(userID)", "sessions_ended": "\(count)"])
        return count
    }

    /// Returns whether the account was locked.
    @discardableResult
    public func unlockUser(userID: String) async throws -> Bool {
        guard var user = try await users.user(id: userID) else { throw AuthError.userNotFound }
        guard user.lockedAt != nil else { return false }
        user.lockedAt = nil
        try await save(user)
        logger.notice("account unlocked by an administrator", metadata: ["user_id": "\(userID)"])
        return true
    }

    /// Deletes the account: every session and access token ends at once (as with logout-all),
    /// then the user and their recovery codes are removed. Returns the sessions ended.
    @discardableResult
    public func deleteUser(userID: String) async throws -> Int {
        _ = try await adminUser(id: userID)
        let count = try await endAllSessions(userID: userID)
        guard try await users.deleteUser(id: userID) else { throw AuthError.userNotFound }
        try await invalidateCachedUser(id: userID)
        logger.notice("account deleted by an administrator", metadata: ["user_id": "\(userID)", "sessions_ended": "\(count)"])
        return count
    }

    /// Re-seals every stored MFA secret under the sealing (first) encryption key now, rather
    /// than at its next write. Each write is a compare-and-set: a secret its owner changes
    /// meanwhile is left to that change.
    public func resealSecrets() async throws -> ResealReport {
        let box = secrets
        var report = ResealReport()
        for secret in try await users.sealedMFASecrets() {
            if SecretBox.keyID(of: secret.sealed) == box.keys[0].id {
                report.current += 1
                continue
            }
            let context = Self.totpContext(secret.ownerID)
            guard let plaintext = try? box.open(secret.sealed, context: context) else {
                report.unreadable += 1
                continue
            }
            let resealed = try box.seal(plaintext, context: context)
            if try await users.replaceMFASecret(userID: secret.ownerID, expected: secret.sealed, with: resealed) {
                report.resealed += 1
            } else {
                report.changedMeanwhile += 1
            }
        }
        logger.notice(
            "stored secrets re-sealed", metadata: ["resealed": "\(report.resealed)", "current": "\(report.current)", "unreadable": "\(report.unreadable)"]
        )
        return report
    }

    /// How many stored MFA secrets are sealed under the encryption key `keyID`.
    public func sealedSecretCount(keyID: String) async throws -> Int {
        try await users.sealedMFASecrets().count { SecretBox.keyID(of: $0.sealed) == keyID }
    }

    private func endAllSessions(userID: String) async throws -> Int {
        let count = try await tokens.revokeAllSessions(userID: userID, keeping: nil, accessTTL: policy.accessTTL)
        for _ in 0..<count { security.events(.sessionEnded) }
        return count
    }
}
