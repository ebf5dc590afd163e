import Foundation
import GRDB
import Tessera

public struct SQLiteUserStore: UserStore {
    let database: SQLiteDatabase
    public let backendName = "sqlite"

    public func createUser(_ user: User) async throws {
        do {
            try await database.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO users (id, email, password_hash, mfa_enabled, mfa_secret, created_at, updated_at, locked_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        user.id, user.email, user.passwordHash, user.mfaEnabled, user.mfaSecret, user.createdAt.storedValue,
                        user.updatedAt.storedValue, user.lockedAt?.storedValue,
                    ]
                )
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw UserStoreError.emailTaken
        }
    }

    public func user(id: String) async throws -> User? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE id = ?", arguments: [id]).map(Self.user(from:))
        }
    }

    public func user(email: String) async throws -> User? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM users WHERE email = ?", arguments: [email]).map(Self.user(from:))
        }
    }

    public func updateUser(_ user: User) async throws {
        let changed: Int
        do {
            changed = try await database.write { db in
                try db.execute(
                    sql: """
                        UPDATE users SET email = ?, password_hash = ?, mfa_enabled = ?, mfa_secret = ?, updated_at = ?, locked_at = ?
                        WHERE id = ?
                        """,
                    arguments: [
                        user.email, user.passwordHash, user.mfaEnabled, user.mfaSecret, user.updatedAt.storedValue,
                        user.lockedAt?.storedValue, user.id,
                    ]
                )
                return db.changesCount
            }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw UserStoreError.emailTaken
        }
        if changed == 0 { throw UserStoreError.notFound }
    }

    public func replaceRecoveryCodes(userID: String, hashes: [String]) async throws {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM mfa_recovery_codes WHERE user_id = ?", arguments: [userID])
            for hash in hashes {
                try db.execute(sql: "INSERT OR IGNORE INTO mfa_recovery_codes (user_id, hash) VALUES (?, ?)", arguments: [userID, hash])
            }
        }
    }

    public func consumeRecoveryCode(userID: String, hash: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM mfa_recovery_codes WHERE user_id = ? AND hash = ?", arguments: [userID, hash])
            return db.changesCount == 1
        }
    }

    public func recoveryCodeCount(userID: String) async throws -> Int {
        try await database.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = ?", arguments: [userID]) ?? 0
        }
    }

    public func deleteUser(id: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM mfa_recovery_codes WHERE user_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM users WHERE id = ?", arguments: [id])
            return db.changesCount == 1
        }
    }

    public func sealedMFASecrets() async throws -> [SealedSecret] {
        try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL").map {
                SealedSecret(ownerID: $0["id"], sealed: $0["mfa_secret"])
            }
        }
    }

    public func replaceMFASecret(userID: String, expected: String, with sealed: String) async throws -> Bool {
        try await database.write { db in
            try db.execute(
                sql: "UPDATE users SET mfa_secret = ? WHERE id = ? AND mfa_secret = ?", arguments: [sealed, userID, expected]
            )
            return db.changesCount == 1
        }
    }

    private static func user(from row: Row) -> User {
        let locked: Double? = row["locked_at"]
        return User(
            id: row["id"], email: row["email"], passwordHash: row["password_hash"], mfaEnabled: row["mfa_enabled"],
            mfaSecret: row["mfa_secret"], createdAt: Date(stored: row["created_at"]), updatedAt: Date(stored: row["updated_at"]),
            lockedAt: locked.map(Date.init(stored:))
        )
    }
}
