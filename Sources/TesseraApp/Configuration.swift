import Foundation
import Tessera
import TesseraServer

/// Everything `tessera serve` can be told, with the documented defaults.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// `sqlite:PATH` (default `sqlite:tessera.db`), `postgres://…` or `memory:` (nothing persisted).
    public var databaseURL = "sqlite:tessera.db"
    /// `sqlite` (the database above), `redis` or `memory`.
    public var tokenStore = "sqlite"
    /// The SQLite file for tokens when the sqlite token store is combined with a non-SQLite
    /// user database.
    public var tokenDatabasePath = "tessera-tokens.db"
    public var redisURL = "redis://127.0.0.1:6379"
    public var redisKeyPrefix = "tessera:"
    /// What to do while Redis is unreachable: `none` (503) or `memory` (serve locally).
    public var redisFallback = "none"
    /// With the memory fallback: the file that keeps revocations made during an outage until
    /// Redis has them. nil: `tessera-fallback.journal` beside the SQLite database (or in the
    /// working directory).
    public var redisFallbackJournal: String?
    /// Connect and command timeout for Redis, in seconds.
    public var redisTimeout: Double = 2
    /// Replicas every revocation waits for (`WAIT`) before it is acknowledged: `auto` (one
    /// when the primary has a replica, else none) or a number (0 turns the wait off).
    public var redisMinReplicasAcked = "auto"
    /// How long a revocation waits for those replicas before the request answers 503, in seconds.
    public var redisReplicaAckTimeout: Double = 1
    /// Signing and refresh keys. nil: `tessera.key` beside the SQLite database.
    public var keyFile: String?
    /// How often a running instance checks whether the key files changed, in seconds.
    public var keyReloadInterval: Double = 10
    /// How long a new signing key is published before it signs, in seconds. nil: the JWKS
    /// cache time plus the key reload interval, so that every verifier can have it first.
    public var keyPublishDelay: Double?
    /// False for the operations commands: a missing database or key file is an error (a wrong
    /// path should not quietly start an empty deployment).
    public var createMissing = true
    public var policy = TokenPolicy()
    public var sweepInterval: Duration = .seconds(60)
    /// Bearer key for `/v1/admin/*`; nil turns the admin endpoints off (404).
    public var adminKey: String?
    /// Bearer key for `/metrics`; nil: open to whoever reaches the port.
    public var metricsKey: String?
    /// Header and idle timeouts, connection cap.
    public var connections = ConnectionLimits()
    /// Key for the service endpoints (remote verification, introspection); nil: off (404).
    public var serviceKey: String?
    /// Where password-reset messages are written. nil: `outbox` beside the SQLite database (or
    /// in the working directory).
    public var outboxDirectory: String?
    /// POST account messages to this URL instead of writing them to the outbox.
    public var notifyWebhook: String?
    /// With the webhook: where messages wait until delivered (survives restarts). nil:
    /// `notify-spool` beside the SQLite database; with other databases, in memory only.
    public var notifySpoolDirectory: String?
    /// AES-256-GCM key for TOTP secrets and session credentials, created 0600 on first start.
    /// nil: `tessera-encryption.key` beside the SQLite database.
    public var encryptionKeyFile: String?
    public var rateLimits = RateLimitPolicy()
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed; none by default.
    public var trustedProxies = TrustedProxies.none
    /// URL prefixes OAuth2 credentials' token endpoints must match; empty: OAuth2 credentials
    /// are refused (422).
    public var upstreamTokenEndpoints: [String] = []
    /// GET of an OAuth2 credential answers a token valid at least this long, in seconds.
    public var upstreamMinValidity: Double = 60
    /// Other origins whose pages may call Tessera from a browser (CORS, CSRF check).
    public var corsOrigins: [WebOrigin] = []

    // Fast validation path (docs/REDIS.md, "Local revocation view").
    /// With the redis token store: keep a local copy of the denylist, kept current by pub/sub,
    /// so that checking an access token costs no Redis round trip.
    public var localRevocations = true
    /// Spans to an OTLP/HTTP collector (`--otlp-endpoint`); nil: no tracing.
    public var tracing: TracingConfiguration?

    public init() {}

    /// What `keyPublishDelay` is when unset.
    public var effectiveKeyPublishDelay: Double { keyPublishDelay ?? (TesseraHTTP.jwksMaxAge + keyReloadInterval) }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Where users live, parsed from `--database-url`.
enum DatabaseLocation: Equatable {
    case sqlite(path: String)
    case postgres(url: String)
    case memory

    init(url: String) throws {
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            self = .postgres(url: url)
        } else if url == "memory:" || url == "memory" {
            self = .memory
        } else if url.hasPrefix("sqlite://") {
            self = .sqlite(path: try Self.path(String(url.dropFirst("sqlite://".count)), url))
        } else if url.hasPrefix("sqlite:") {
            self = .sqlite(path: try Self.path(String(url.dropFirst("sqlite:".count)), url))
        } else {
            throw ConfigurationError("unsupported database URL '\(url)': use sqlite:PATH, postgres://… or memory:")
        }
    }

    private static func path(_ path: String, _ url: String) throws -> String {
        guard !path.isEmpty else { throw ConfigurationError("database URL '\(url)' has no file path") }
        return path
    }
}

enum TokenStoreKind: String, CaseIterable {
    case sqlite, redis, memory

    init(_ name: String) throws {
        guard let kind = Self(rawValue: name.lowercased()) else {
            throw ConfigurationError(
                "unknown token store '\(name)': choose one of \(Self.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        self = kind
    }
}

enum RedisFallbackPolicy: String, CaseIterable {
    case none, memory

    init(_ name: String) throws {
        guard let policy = Self(rawValue: name.lowercased()) else {
            throw ConfigurationError("unknown Redis fallback '\(name)': choose none or memory")
        }
        self = policy
    }
}

extension RateLimit {
    /// `N/SECONDS`, or `off` for no limit.
    public static func setting(_ text: String, name: String) throws -> RateLimit? {
        if text.lowercased() == "off" { return nil }
        guard let limit = RateLimit(parsing: text) else {
            throw ConfigurationError("\(name)='\(text)' is not a rate limit: use N/SECONDS (e.g. 10/60) or off")
        }
        return limit
    }
}

extension TokenPolicy {
    /// Rejects lifetimes that make no sense before the server starts.
    func validated() throws -> TokenPolicy {
        guard accessTTL >= 1 else { throw ConfigurationError("access TTL must be at least 1 second") }
        guard refreshTTL >= 1 else { throw ConfigurationError("refresh TTL must be at least 1 second") }
        guard sessionMaxAge >= 1 else { throw ConfigurationError("session max age must be at least 1 second") }
        guard refreshReuseGrace >= 0 else { throw ConfigurationError("refresh reuse grace must not be negative") }
        guard (4...31).contains(bcryptCost) else { throw ConfigurationError("bcrypt cost must be between 4 and 31") }
        guard bcryptQueue >= 0 else { throw ConfigurationError("bcrypt queue must not be negative") }
        if let audience, audience.isEmpty { throw ConfigurationError("the audience must not be empty") }
        return self
    }
}
