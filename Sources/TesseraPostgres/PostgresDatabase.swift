import Foundation
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Tessera

/// One PostgreSQL database holding Tessera's users, shared by every Tessera instance.
///
/// The pooled `client` only leases connections while its `run()` is running: add this object
/// (or `client`, never both) to the process's `ServiceGroup`, listed before the HTTP server so
/// that graceful shutdown stops the server first. `migrate()` does not need the pool: it opens a
/// connection of its own, so call it before the service group starts.
public final class PostgresDatabase: Sendable {
    /// The pooled client. It is a ServiceLifecycle `Service`; `run()` may be called only once.
    public let client: PostgresClient
    public let logger: Logger
    /// Upper bound for one store operation, including waiting for a connection. Without it a
    /// request would wait for the pool's circuit breaker (about a minute) when the server is down.
    public let operationTimeout: Duration
    /// Host, port, database and user, without the password: safe for logs and error messages.
    public let redactedURL: String
    let url: PostgresURL

    /// - Parameters:
    ///   - url: `postgres://user:password@host:port/database?sslmode=disable|prefer|require|verify-full`
    ///     (`postgresql://` too; sslmode defaults to prefer, as in libpq). Percent-encode reserved
    ///     characters in the user and password.
    ///   - operationTimeout: See `operationTimeout`; also bounds connecting.
    ///   - maximumConnections: Pool size of `client`.
    public init(
        url: String, logger: Logger = Logger(label: "tessera.postgres"), operationTimeout: Duration = .seconds(10),
        maximumConnections: Int = 10
    ) throws {
        let parsed = try PostgresURL(url)
        var configuration = PostgresClient.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
            database: parsed.database, tls: parsed.clientTLS
        )
        configuration.options.maximumConnections = max(1, maximumConnections)
        configuration.options.connectTimeout = min(configuration.options.connectTimeout, operationTimeout)
        self.url = parsed
        self.logger = logger
        self.operationTimeout = operationTimeout
        self.redactedURL = parsed.redacted
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    public func userStore() -> PostgresUserStore {
        PostgresUserStore(database: self)
    }

    /// Round trip to the server through the pool; throws `StoreError` when it cannot answer.
    public func ping() async throws {
        try await self.perform { client, logger in
            for try await _ in try await client.query("SELECT 1", logger: logger) {}
        }
    }

    // MARK: Migrations

    /// Schema versions, applied in order, each once. Never edit a shipped entry: append.
    /// Each entry is a list because the extended query protocol runs one statement per query.
    static let migrations: [(version: Int, statements: [String])] = [
        (
            1,
            [
                // Dates are double precision seconds since 1970, as in the SQLite store, so both
                // backends round-trip a `Date` identically (timestamptz would cut to microseconds).
                """
                CREATE TABLE IF NOT EXISTS users (
                    id text PRIMARY KEY,
                    email text NOT NULL,
                    password_hash text NOT NULL,
                    mfa_enabled boolean NOT NULL DEFAULT false,
                    created_at double precision NOT NULL,
                    updated_at double precision NOT NULL,
                    CONSTRAINT users_email_key UNIQUE (email)
                )
                """
            ]
        ),
        (
            2,
            [
                // The TOTP secret, sealed by `SecretBox` before it reaches the store.
                "ALTER TABLE users ADD COLUMN IF NOT EXISTS mfa_secret text"
            ]
        ),
        (
            3,
            [
                // MFA recovery codes, as SHA-256 hashes only; one row per unused code.
                """
                CREATE TABLE IF NOT EXISTS mfa_recovery_codes (
                    user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    hash text NOT NULL,
                    PRIMARY KEY (user_id, hash)
                )
                """
            ]
        ),
        (
            4,
            [
                // Set while an administrator has locked the account.
                "ALTER TABLE users ADD COLUMN IF NOT EXISTS locked_at double precision"
            ]
        ),
    ]

    /// Arbitrary but fixed: every Tessera instance takes the same advisory lock to migrate.
    static let migrationLockKey: Int64 = 0x7465_7373_6572_61

    /// Creates or upgrades the schema. Safe to call from several instances at once: each runs
    /// in one transaction under a transaction-scoped advisory lock, so they apply it in turn
    /// (concurrent `CREATE TABLE IF NOT EXISTS` alone can fail on the catalog's unique index).
    ///
    /// Uses a connection of its own rather than the pool: it needs no running `client`, so it can
    /// run before the service group starts, and a wrong host or password fails at once with the
    /// server's reason instead of waiting out the pool's reconnect backoff.
    public func migrate() async throws {
        let logger = self.logger
        let configuration = try self.url.connectionConfiguration()
        // Waiting for another instance's lock is expected: allow more than one operation's time.
        let limit = self.operationTimeout * 6
        try await Self.mapErrors {
            try await withDeadline(limit) {
                let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
                do {
                    try await connection.withTransaction(logger: logger) { connection in
                        try await Self.applyMigrations(on: connection, logger: logger)
                    }
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            }
        }
    }

    private static func applyMigrations(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLockKey))", logger: logger)
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS tessera_schema_migrations (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            logger: logger
        )
        var current = 0
        let rows = try await connection.query(
            "SELECT COALESCE(MAX(version), 0)::integer FROM tessera_schema_migrations", logger: logger
        )
        for try await version in rows.decode(Int32.self) {
            current = Int(version)
        }
        for migration in migrations where migration.version > current {
            for statement in migration.statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let version = Int32(migration.version)
            try await connection.query("INSERT INTO tessera_schema_migrations (version) VALUES (\(version))", logger: logger)
            logger.info("applied schema migration", metadata: ["version": "\(migration.version)"])
        }
    }

    // MARK: Running operations

    /// Runs `body` on the pooled client within `operationTimeout`; database failures become
    /// `StoreError`, while `UserStoreError` thrown by `body` passes through.
    func perform<T: Sendable>(
        _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T
    ) async throws -> T {
        let client = self.client
        let logger = self.logger
        return try await Self.mapErrors {
            try await withDeadline(self.operationTimeout) { try await body(client, logger) }
        }
    }

    static func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as UserStoreError {
            throw error
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(backend: "postgres", message: describe(error), kind: kind(ofSQLState: serverError(error)?.state))
        }
    }

    /// A server that answered with an error is no outage: only connection trouble (class 08),
    /// an operator shutting it down (57) or no answer at all is. Too few resources (53) and
    /// lock or serialization conflicts are worth a retry; anything else is a fault to log.
    static func kind(ofSQLState state: String?) -> StoreError.Kind {
        guard let state else { return .unavailable }
        if state.hasPrefix("08") || state.hasPrefix("57") { return .unavailable }
        if state.hasPrefix("53") || ["40001", "40P01", "55P03"].contains(state) { return .overloaded }
        return .failed
    }

    /// A message for logs that never includes the password, bound values or the query text.
    /// (`PSQLError`'s own description is deliberately empty and its debug description has binds.)
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as PSQLError:
            var parts = ["\(error.code)"]
            if let state = error.serverInfo?[.sqlState] { parts.append("SQLSTATE \(state)") }
            if let message = error.serverInfo?[.message] { parts.append(message) }
            if let underlying = error.underlying { parts.append(describe(underlying)) }
            return parts.joined(separator: ": ")
        case let error as PostgresTransactionError:
            let inner = error.beginError ?? error.closureError ?? error.commitError ?? error.rollbackError
            return inner.map(describe) ?? "transaction failed"
        case let error as PostgresDecodingError:
            return "cannot decode column \(error.columnName) (\(error.code))"
        case is DeadlineExceeded:
            return "no answer within the operation timeout (server unreachable or pool exhausted)"
        default:
            return String(describing: error)
        }
    }
}

extension PostgresDatabase: Service {
    /// Runs the pooled client until cancelled or the service group shuts down gracefully.
    public func run() async throws {
        await self.client.run()
    }
}

/// `sqlState` and `constraintName` of a server error, looking through transaction wrappers.
func serverError(_ error: any Error) -> (state: String, constraint: String?)? {
    switch error {
    case let error as PSQLError:
        guard let state = error.serverInfo?[.sqlState] else { return nil }
        return (state, error.serverInfo?[.constraintName])
    case let error as PostgresTransactionError:
        return (error.closureError ?? error.commitError).flatMap(serverError)
    default:
        return nil
    }
}

struct DeadlineExceeded: Error {}

/// Runs `body`, giving up after `limit`. Waiting for a pooled connection is cancellable; a query
/// already on the wire is not, so a hung server can still hold the caller until the socket fails.
func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw DeadlineExceeded()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// The parts of a `postgres://` URL.
struct PostgresURL: Sendable {
    enum SSLMode: Sendable {
        case disable, prefer, require
    }

    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var sslMode: SSLMode
    var redacted: String

    init(_ string: String) throws {
        guard let components = URLComponents(string: string),
            let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql"
        else {
            throw PostgresConfigurationError(description: "expected a postgres:// or postgresql:// URL")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PostgresConfigurationError(description: "the postgres URL has no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PostgresConfigurationError(description: "the postgres URL has no user name")
        }
        self.host = host
        self.port = components.port ?? 5432
        self.username = user
        self.password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        switch mode {
        case "disable": self.sslMode = .disable
        case "allow", "prefer": self.sslMode = .prefer
        // Stricter than libpq's "require": the certificate and host name are always verified
        // against the system trust store.
        case "require", "verify-ca", "verify-full": self.sslMode = .require
        default:
            throw PostgresConfigurationError(description: "unsupported sslmode \(mode): use disable, prefer, require or verify-full")
        }
        self.redacted = "\(scheme)://\(user)@\(host):\(self.port)/\(self.database ?? "")"
    }

    var clientTLS: PostgresClient.Configuration.TLS {
        switch self.sslMode {
        case .disable: .disable
        case .prefer: .prefer(.makeClientConfiguration())
        case .require: .require(.makeClientConfiguration())
        }
    }

    /// The same settings for a single `PostgresConnection`, which takes an SSL context instead.
    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch self.sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        return PostgresConnection.Configuration(
            host: self.host, port: self.port, username: self.username, password: self.password, database: self.database, tls: tls
        )
    }
}

/// The URL cannot be used; the message never contains the password.
public struct PostgresConfigurationError: Error, CustomStringConvertible {
    public var description: String
}
