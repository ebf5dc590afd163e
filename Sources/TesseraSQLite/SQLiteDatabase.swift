import Foundation
import GRDB
import Tessera

/// One SQLite database file (WAL mode) holding users and, unless another token store is
/// chosen, sessions and tokens. Open it once per process and hand out its stores.
public final class SQLiteDatabase: Sendable {
    let pool: DatabasePool
    public let path: String
    /// Denials committed by this process's token stores (there is one writer process per file).
    let revocationFeed = RevocationFeed()

    public init(path: String) throws {
        var configuration = Configuration()
        // Concurrent writers wait instead of failing at once with SQLITE_BUSY.
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            try Self.makePrivate(path)
            self.pool = try DatabasePool(path: path, configuration: configuration)
            // SQLite gives -wal and -shm the database file's mode; an older file may predate this.
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
                try Self.makePrivate(path + suffix)
            }
            try Self.migrator.migrate(pool)
        } catch {
            throw StoreError(backend: "sqlite", message: "cannot open \(path): \(error)")
        }
        self.path = path
    }

    /// The file holds password hashes, sealed secrets and client addresses: owner-only (0600)
    /// like the key files, created so before SQLite opens it and tightened if it already exists.
    static func makePrivate(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) {
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        } else {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw StoreError(backend: "sqlite", message: "cannot create \(path)")
            }
        }
    }

    public func tokenStore(clock: any TesseraClock = SystemClock()) -> SQLiteTokenStore {
        SQLiteTokenStore(database: self, clock: clock)
    }

    public func userStore() -> SQLiteUserStore {
        SQLiteUserStore(database: self)
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE users (
                        id TEXT PRIMARY KEY NOT NULL,
                        email TEXT NOT NULL UNIQUE,
                        password_hash TEXT NOT NULL,
                        mfa_enabled INTEGER NOT NULL DEFAULT 0,
                        created_at REAL NOT NULL,
                        updated_at REAL NOT NULL
                    );
                    CREATE TABLE sessions (
                        id TEXT PRIMARY KEY NOT NULL,
                        user_id TEXT NOT NULL,
                        generation INTEGER NOT NULL,
                        rotated_at REAL NOT NULL,
                        created_at REAL NOT NULL,
                        last_used_at REAL NOT NULL,
                        idle_expires_at REAL NOT NULL,
                        absolute_expires_at REAL NOT NULL,
                        device TEXT,
                        user_agent TEXT,
                        ip_address TEXT
                    );
                    CREATE INDEX sessions_by_user ON sessions(user_id);
                    CREATE TABLE denylist (
                        key TEXT PRIMARY KEY NOT NULL,
                        expires_at REAL NOT NULL
                    );
                    CREATE TABLE one_time_tokens (
                        kind TEXT NOT NULL,
                        hash TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        payload TEXT NOT NULL,
                        expires_at REAL NOT NULL,
                        PRIMARY KEY (kind, hash)
                    );
                    CREATE INDEX one_time_tokens_by_user ON one_time_tokens(kind, user_id);
                    """
            )
        }
        migrator.registerMigration("v2") { db in
            // Credentials belong to their session: the foreign key deletes them in the same
            // statement as the session, on every path (revocation, re-use, purge).
            try db.execute(
                sql: """
                    ALTER TABLE users ADD COLUMN mfa_secret TEXT;
                    CREATE TABLE session_credentials (
                        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        user_id TEXT NOT NULL,
                        sealed TEXT NOT NULL,
                        updated_at REAL NOT NULL,
                        PRIMARY KEY (session_id, name)
                    );
                    """
            )
        }
        migrator.registerMigration("v3") { db in
            // Upstream-refresh leases: one row per credential being refreshed, gone with the
            // session; expired rows are taken over in place and swept by purgeExpired.
            try db.execute(
                sql: """
                    CREATE TABLE credential_leases (
                        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        fence TEXT NOT NULL,
                        expires_at REAL NOT NULL,
                        PRIMARY KEY (session_id, name)
                    );
                    """
            )
        }
        migrator.registerMigration("v4") { db in
            // MFA recovery codes, as SHA-256 hashes only; one row per unused code.
            try db.execute(
                sql: """
                    CREATE TABLE mfa_recovery_codes (
                        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                        hash TEXT NOT NULL,
                        PRIMARY KEY (user_id, hash)
                    );
                    """
            )
        }
        migrator.registerMigration("v5") { db in
            // Set while an administrator has locked the account (seconds since 1970).
            try db.execute(sql: "ALTER TABLE users ADD COLUMN locked_at REAL")
        }
        return migrator
    }

    /// Runs a write transaction; failures of the database itself become `StoreError`.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let error as DatabaseError where error.resultCode != .SQLITE_CONSTRAINT {
            throw StoreError(backend: "sqlite", message: "\(error)")
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw StoreError(backend: "sqlite", message: "\(error)")
        }
    }
}

extension Date {
    var storedValue: Double { timeIntervalSince1970 }
    init(stored: Double) { self.init(timeIntervalSince1970: stored) }
}
