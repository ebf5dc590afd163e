import Foundation
import GRDB
import Tessera

/// Sessions, denylist and one-time tokens in SQLite. Every compound operation is one write
/// transaction; SQLite's single writer makes it atomic across tasks of this process.
public struct SQLiteTokenStore: TokenStore {
    let database: SQLiteDatabase
    let clock: any TesseraClock
    public let backendName = "sqlite"

    public func createSession(_ session: SessionRecord) async throws {
        try await database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO sessions (id, user_id, generation, rotated_at, created_at, last_used_at,
                        idle_expires_at, absolute_expires_at, device, user_agent, ip_address)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    session.id, session.userID, session.generation, session.rotatedAt.storedValue, session.createdAt.storedValue,
                    session.lastUsedAt.storedValue, session.idleExpiresAt.storedValue, session.absoluteExpiresAt.storedValue,
                    session.device, session.userAgent, session.ipAddress,
                ]
            )
        }
    }

    public func session(id: String, userID: String) async throws -> SessionRecord? {
        let now = clock.now()
        return try await database.read { db in
            try Self.liveSession(db, id: id, now: now).flatMap { $0.userID == userID ? $0 : nil }
        }
    }

    public func sessions(userID: String) async throws -> [SessionRecord] {
        let now = clock.now().storedValue
        return try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM sessions WHERE user_id = ? AND idle_expires_at > ? AND absolute_expires_at > ?
                    ORDER BY created_at, id
                    """,
                arguments: [userID, now, now]
            ).map(Self.session(from:))
        }
    }

    public func rotate(_ request: RotationRequest) async throws -> RotationOutcome {
        try await database.write { db in
            // Read inside the transaction: a rotation that waited for the write lock is dated
            // when it is applied, so the grace window runs from the rotation the client sees.
            let now = clock.now()
            switch RotationDecision(session: try Self.liveSession(db, id: request.sessionID, now: now), request: request, now: now) {
            case .rotate(let session):
                try db.execute(
                    sql: """
                        UPDATE sessions SET generation = ?, rotated_at = ?, last_used_at = ?, idle_expires_at = ?,
                            user_agent = ?, ip_address = ?
                        WHERE id = ?
                        """,
                    arguments: [
                        session.generation, session.rotatedAt.storedValue, session.lastUsedAt.storedValue,
                        session.idleExpiresAt.storedValue, session.userAgent, session.ipAddress, session.id,
                    ]
                )
                return .rotated(session)
            case .reissue(let session):
                return .reissued(session)
            case .revoke(let session):
                try remove(db, sessionIDs: [session.id], denyUntil: now.addingTimeInterval(request.revokedAccessTTL))
                return .reused(userID: session.userID)
            case .invalid:
                return .invalid
            }
        }
    }

    public func revokeSession(id: String, userID: String, accessTTL: TimeInterval) async throws -> Bool {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: id, now: now), session.userID == userID else {
                return false
            }
            try remove(db, sessionIDs: [session.id], denyUntil: now.addingTimeInterval(accessTTL))
            return true
        }
    }

    public func revokeAllSessions(userID: String, keeping: String?, accessTTL: TimeInterval) async throws -> Int {
        let now = clock.now()
        return try await database.write { db in
            let rows = try Row.fetchAll(
                db, sql: "SELECT id, idle_expires_at, absolute_expires_at FROM sessions WHERE user_id = ? AND id IS NOT ?",
                arguments: [userID, keeping]
            )
            let live = rows.filter { row in
                let idle: Double = row["idle_expires_at"]
                let absolute: Double = row["absolute_expires_at"]
                return now.storedValue < min(idle, absolute)
            }
            try remove(db, sessionIDs: rows.map { $0["id"] }, denyUntil: now.addingTimeInterval(accessTTL))
            return live.count
        }
    }

    public func deny(_ key: RevocationKey, userID: String, until: Date) async throws {
        try await database.write { db in
            try deny(db, key: key, until: until)
        }
    }

    public func isRevoked(tokenID: String, sessionID: String, userID: String) async throws -> Bool {
        let now = clock.now().storedValue
        return try await database.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM denylist WHERE key IN (?, ?) AND expires_at > ?)",
                arguments: [RevocationKey.tokenID(tokenID).storageKey, RevocationKey.session(sessionID).storageKey, now]
            ) ?? false
        }
    }

    public func putOneTimeToken(_ token: OneTimeToken) async throws {
        try await database.write { db in
            try db.execute(sql: "DELETE FROM one_time_tokens WHERE kind = ? AND user_id = ?", arguments: [token.kind, token.userID])
            try db.execute(
                sql: "INSERT OR REPLACE INTO one_time_tokens (kind, hash, user_id, payload, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [token.kind, token.hash, token.userID, token.payload, token.expiresAt.storedValue]
            )
        }
    }

    public func consumeOneTimeToken(kind: String, userID: String, hash: String) async throws -> OneTimeToken? {
        let now = clock.now()
        return try await database.write { db in
            let match = "kind = ? AND hash = ? AND user_id = ?"
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM one_time_tokens WHERE \(match)", arguments: [kind, hash, userID]) else {
                return nil
            }
            try db.execute(sql: "DELETE FROM one_time_tokens WHERE \(match)", arguments: [kind, hash, userID])
            let token = OneTimeToken(
                kind: row["kind"], hash: row["hash"], userID: row["user_id"], payload: row["payload"],
                expiresAt: Date(stored: row["expires_at"])
            )
            return now < token.expiresAt ? token : nil
        }
    }

    public func restoreOneTimeToken(_ token: OneTimeToken) async throws -> Bool {
        let now = clock.now()
        guard now < token.expiresAt else { return false }
        return try await database.write { db in
            // An expired leftover does not count as a newer token.
            try db.execute(
                sql: "DELETE FROM one_time_tokens WHERE kind = ? AND user_id = ? AND expires_at <= ?",
                arguments: [token.kind, token.userID, now.storedValue]
            )
            let live = try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM one_time_tokens WHERE kind = ? AND user_id = ?)", arguments: [token.kind, token.userID]
            ) ?? false
            guard !live else { return false }
            try db.execute(
                sql: "INSERT INTO one_time_tokens (kind, hash, user_id, payload, expires_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [token.kind, token.hash, token.userID, token.payload, token.expiresAt.storedValue]
            )
            return true
        }
    }

    // MARK: Credentials (deleted with their session by the foreign key's ON DELETE CASCADE)

    public func putCredential(_ credential: SessionCredential, limit: Int) async throws -> CredentialWrite {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: credential.sessionID, now: now), session.userID == credential.userID else {
                return .sessionNotFound
            }
            let others = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM session_credentials WHERE session_id = ? AND name <> ?",
                arguments: [credential.sessionID, credential.name]
            ) ?? 0
            let exists = try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM session_credentials WHERE session_id = ? AND name = ?)",
                arguments: [credential.sessionID, credential.name]
            ) ?? false
            guard exists || others < limit else { return .limitReached }
            try db.execute(
                sql: """
                    INSERT INTO session_credentials (session_id, name, user_id, sealed, updated_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (session_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                    """,
                arguments: [credential.sessionID, credential.name, credential.userID, credential.sealed, credential.updatedAt.storedValue]
            )
            return .stored
        }
    }

    public func credential(named name: String, sessionID: String, userID: String) async throws -> SessionCredential? {
        let now = clock.now()
        return try await database.read { db in
            guard let session = try Self.liveSession(db, id: sessionID, now: now), session.userID == userID else { return nil }
            return try Row.fetchOne(
                db, sql: "SELECT sealed, updated_at FROM session_credentials WHERE session_id = ? AND name = ?",
                arguments: [sessionID, name]
            ).map { row in
                SessionCredential(name: name, sessionID: sessionID, userID: userID, sealed: row["sealed"], updatedAt: Date(stored: row["updated_at"]))
            }
        }
    }

    public func deleteCredential(named name: String, sessionID: String, userID: String) async throws -> Bool {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: sessionID, now: now), session.userID == userID else { return false }
            try db.execute(sql: "DELETE FROM session_credentials WHERE session_id = ? AND name = ?", arguments: [sessionID, name])
            return db.changesCount > 0
        }
    }

    public func sealedCredentials() async throws -> [SessionCredential] {
        let now = clock.now().storedValue
        return try await database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT c.name, c.session_id, c.user_id, c.sealed, c.updated_at FROM session_credentials c
                    JOIN sessions s ON s.id = c.session_id
                    WHERE s.user_id = c.user_id AND s.idle_expires_at > ? AND s.absolute_expires_at > ?
                    """,
                arguments: [now, now]
            ).map { row in
                SessionCredential(
                    name: row["name"], sessionID: row["session_id"], userID: row["user_id"], sealed: row["sealed"],
                    updatedAt: Date(stored: row["updated_at"])
                )
            }
        }
    }

    public func replaceSealedCredential(_ credential: SessionCredential, expected: String) async throws -> Bool {
        let now = clock.now()
        return try await database.write { db in
            guard let session = try Self.liveSession(db, id: credential.sessionID, now: now), session.userID == credential.userID else {
                return false
            }
            try db.execute(
                sql: "UPDATE session_credentials SET sealed = ?, updated_at = ? WHERE session_id = ? AND name = ? AND sealed = ?",
                arguments: [credential.sealed, credential.updatedAt.storedValue, credential.sessionID, credential.name, expected]
            )
            return db.changesCount == 1
        }
    }

    // MARK: Statistics

    public func statistics() async throws -> TokenStoreStatistics {
        let now = clock.now().storedValue
        return try await database.read { db in
            let sessions = try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM sessions WHERE idle_expires_at > ? AND absolute_expires_at > ?", arguments: [now, now]
            ) ?? 0
            let denied = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM denylist WHERE expires_at > ?", arguments: [now]) ?? 0
            let pending = try Row.fetchAll(
                db, sql: "SELECT kind, COUNT(*) AS n FROM one_time_tokens WHERE expires_at > ? GROUP BY kind", arguments: [now]
            ).reduce(into: [String: Int]()) { $0[$1["kind"]] = $1["n"] }
            return TokenStoreStatistics(liveSessions: sessions, deniedTokens: denied, pendingOneTimeTokens: pending)
        }
    }

    public func ping() async throws {
        _ = try await database.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func purgeExpired() async throws -> Int {
        let now = clock.now().storedValue
        return try await database.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE idle_expires_at <= ? OR absolute_expires_at <= ?", arguments: [now, now])
            var removed = db.changesCount
            try db.execute(sql: "DELETE FROM denylist WHERE expires_at <= ?", arguments: [now])
            removed += db.changesCount
            try db.execute(sql: "DELETE FROM one_time_tokens WHERE expires_at <= ?", arguments: [now])
            removed += db.changesCount
            try db.execute(sql: "DELETE FROM credential_leases WHERE expires_at <= ?", arguments: [now])
            return removed + db.changesCount
        }
    }

    public var revocationFeed: RevocationFeed? { database.revocationFeed }

    public func liveRevocations() async throws -> [Revocation] {
        let now = clock.now().storedValue
        return try await database.read { db in
            try Row.fetchAll(db, sql: "SELECT key, expires_at FROM denylist WHERE expires_at > ?", arguments: [now]).compactMap { row in
                Revocation(storageKey: row["key"], until: Date(stored: row["expires_at"]).timeIntervalSince1970)
            }
        }
    }

    // MARK: Helpers (inside a transaction)

    static func liveSession(_ db: Database, id: String, now: Date) throws -> SessionRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]) else { return nil }
        let session = Self.session(from: row)
        return session.isLive(at: now) ? session : nil
    }

    private func remove(_ db: Database, sessionIDs: [String], denyUntil: Date) throws {
        for id in sessionIDs {
            try db.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [id])
            try deny(db, key: .session(id), until: denyUntil)
        }
    }

    /// The denial reaches the revocation stream once committed: a follower that subscribed
    /// before reading its snapshot sees it in one or the other, and never sees a rolled-back one.
    private func deny(_ db: Database, key: RevocationKey, until: Date) throws {
        try db.execute(
            sql: """
                INSERT INTO denylist (key, expires_at) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)
                """,
            arguments: [key.storageKey, until.storedValue]
        )
        let feed = database.revocationFeed
        let revocation = Revocation(key, until: until)
        db.afterNextTransaction { _ in feed.publish([revocation]) }
    }

    private static func session(from row: Row) -> SessionRecord {
        SessionRecord(
            id: row["id"], userID: row["user_id"], generation: row["generation"], rotatedAt: Date(stored: row["rotated_at"]),
            createdAt: Date(stored: row["created_at"]), lastUsedAt: Date(stored: row["last_used_at"]),
            idleExpiresAt: Date(stored: row["idle_expires_at"]), absoluteExpiresAt: Date(stored: row["absolute_expires_at"]),
            device: row["device"], userAgent: row["user_agent"], ipAddress: row["ip_address"]
        )
    }
}
