import Foundation
import Logging
import PostgresNIO
import Tessera

/// Users in PostgreSQL. Same rows and semantics as `SQLiteUserStore`: the email column is
/// unique (callers normalise it), dates are double precision seconds since 1970.
public struct PostgresUserStore: UserStore {
    let database: PostgresDatabase
    public let backendName = "postgres"

    public func createUser(_ user: User) async throws {
        try await self.database.perform { client, logger in
            do {
                let rows = try await client.query(
                    """
                    INSERT INTO users (id, email, password_hash, mfa_enabled, mfa_secret, created_at, updated_at, locked_at)
                    VALUES (\(user.id), \(user.email), \(user.passwordHash), \(user.mfaEnabled), \(user.mfaSecret), \
                    \(user.createdAt.timeIntervalSince1970), \(user.updatedAt.timeIntervalSince1970), \(user.lockedAt?.timeIntervalSince1970))
                    """,
                    logger: logger
                )
                for try await _ in rows {}
            } catch {
                try Self.rethrowEmailTaken(error)
            }
        }
    }

    public func user(id: String) async throws -> User? {
        try await self.database.perform { client, logger in
            try await Self.first(client.query("SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id)", logger: logger))
        }
    }

    public func user(email: String) async throws -> User? {
        try await self.database.perform { client, logger in
            try await Self.first(client.query("SELECT \(unescaped: Self.columns) FROM users WHERE email = \(email)", logger: logger))
        }
    }

    public func updateUser(_ user: User) async throws {
        try await self.database.perform { client, logger in
            // RETURNING tells whether a row matched: the async API exposes no affected-row count.
            var changed = 0
            do {
                let rows = try await client.query(
                    """
                    UPDATE users SET email = \(user.email), password_hash = \(user.passwordHash), \
                    mfa_enabled = \(user.mfaEnabled), mfa_secret = \(user.mfaSecret), updated_at = \(user.updatedAt.timeIntervalSince1970), \
                    locked_at = \(user.lockedAt?.timeIntervalSince1970) \
                    WHERE id = \(user.id) RETURNING id
                    """,
                    logger: logger
                )
                for try await _ in rows { changed += 1 }
            } catch {
                try Self.rethrowEmailTaken(error)
            }
            if changed == 0 { throw UserStoreError.notFound }
        }
    }

    public func replaceRecoveryCodes(userID: String, hashes: [String]) async throws {
        try await self.database.perform { client, logger in
            // One transaction: a reader sees the old codes or the new ones, never a mix.
            try await client.withTransaction(logger: logger) { connection in
                for try await _ in try await connection.query("DELETE FROM mfa_recovery_codes WHERE user_id = \(userID)", logger: logger) {}
                for hash in hashes {
                    let rows = try await connection.query(
                        "INSERT INTO mfa_recovery_codes (user_id, hash) VALUES (\(userID), \(hash)) ON CONFLICT DO NOTHING", logger: logger
                    )
                    for try await _ in rows {}
                }
            }
        }
    }

    public func consumeRecoveryCode(userID: String, hash: String) async throws -> Bool {
        try await self.database.perform { client, logger in
            // DELETE … RETURNING in one statement: two concurrent uses cannot both see the row.
            var deleted = 0
            let rows = try await client.query(
                "DELETE FROM mfa_recovery_codes WHERE user_id = \(userID) AND hash = \(hash) RETURNING hash", logger: logger
            )
            for try await _ in rows { deleted += 1 }
            return deleted == 1
        }
    }

    public func recoveryCodeCount(userID: String) async throws -> Int {
        try await self.database.perform { client, logger in
            var count = 0
            let rows = try await client.query("SELECT count(*) FROM mfa_recovery_codes WHERE user_id = \(userID)", logger: logger)
            for try await (value) in rows.decode(Int64.self) { count = Int(value) }
            return count
        }
    }

    public func deleteUser(id: String) async throws -> Bool {
        try await self.database.perform { client, logger in
            // Recovery codes go with the row (ON DELETE CASCADE).
            var deleted = 0
            for try await _ in try await client.query("DELETE FROM users WHERE id = \(id) RETURNING id", logger: logger) { deleted += 1 }
            return deleted == 1
        }
    }

    public func sealedMFASecrets() async throws -> [SealedSecret] {
        try await self.database.perform { client, logger in
            var secrets: [SealedSecret] = []
            let rows = try await client.query("SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL", logger: logger)
            for try await (id, sealed) in rows.decode((String, String).self) { secrets.append(SealedSecret(ownerID: id, sealed: sealed)) }
            return secrets
        }
    }

    public func replaceMFASecret(userID: String, expected: String, with sealed: String) async throws -> Bool {
        try await self.database.perform { client, logger in
            var changed = 0
            let rows = try await client.query(
                "UPDATE users SET mfa_secret = \(sealed) WHERE id = \(userID) AND mfa_secret = \(expected) RETURNING id", logger: logger
            )
            for try await _ in rows { changed += 1 }
            return changed == 1
        }
    }

    private static let columns = "id, email, password_hash, mfa_enabled, mfa_secret, created_at, updated_at, locked_at"

    private static func first(_ rows: PostgresRowSequence) async throws -> User? {
        var found: User?
        // Drain the whole sequence so the pooled connection is released.
        for try await (id, email, hash, mfa, secret, created, updated, locked) in rows.decode(
            (String, String, String, Bool, String?, Double, Double, Double?).self
        ) {
            found = User(
                id: id, email: email, passwordHash: hash, mfaEnabled: mfa, mfaSecret: secret,
                createdAt: Date(timeIntervalSince1970: created), updatedAt: Date(timeIntervalSince1970: updated),
                lockedAt: locked.map(Date.init(timeIntervalSince1970:))
            )
        }
        return found
    }

    /// A unique violation on the email constraint is the caller's problem, not the store's.
    private static func rethrowEmailTaken(_ error: any Error) throws -> Never {
        if let server = serverError(error), server.state == "23505", server.constraint == "users_email_key" {
            throw UserStoreError.emailTaken
        }
        throw error
    }
}
