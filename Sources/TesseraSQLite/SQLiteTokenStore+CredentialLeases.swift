import Foundation
import GRDB
import Tessera

/// Upstream-refresh leases: a row in `credential_leases`, taken and checked inside SQLite's
/// serialized write transactions, so that every connection (and process) on the file agrees.
extension SQLiteTokenStore {
    public func acquireCredentialLease(named name: String, sessionID: String, userID: String, fence: String, ttl: TimeInterval) async throws
        -> Bool
    {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: sessionID, now: now), session.userID == userID else { return false }
            // Takes the row when it is absent or expired, in one statement.
            try db.execute(
                sql: """
                    INSERT INTO credential_leases (session_id, name, fence, expires_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (session_id, name) DO UPDATE SET fence = excluded.fence, expires_at = excluded.expires_at
                    WHERE credential_leases.expires_at <= ?
                    """,
                arguments: [sessionID, name, fence, now.addingTimeInterval(ttl).storedValue, now.storedValue]
            )
            return db.changesCount > 0
        }
    }

    public func completeCredentialLease(_ credential: SessionCredential, fence: String) async throws -> Bool {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: credential.sessionID, now: now), session.userID == credential.userID else {
                return false
            }
            try db.execute(
                sql: "DELETE FROM credential_leases WHERE session_id = ? AND name = ? AND fence = ? AND expires_at > ?",
                arguments: [credential.sessionID, credential.name, fence, now.storedValue]
            )
            guard db.changesCount > 0 else { return false }
            try db.execute(
                sql: "UPDATE session_credentials SET sealed = ?, updated_at = ? WHERE session_id = ? AND name = ?",
                arguments: [credential.sealed, credential.updatedAt.storedValue, credential.sessionID, credential.name]
            )
            return db.changesCount > 0
        }
    }

    public func releaseCredentialLease(named name: String, sessionID: String, userID: String, fence: String) async throws {
        try await database.write { db in
            try db.execute(
                sql: "DELETE FROM credential_leases WHERE session_id = ? AND name = ? AND fence = ?", arguments: [sessionID, name, fence]
            )
        }
    }
}
