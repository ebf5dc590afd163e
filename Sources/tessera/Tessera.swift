import ArgumentParser
import Foundation
import Logging
import Tessera
import TesseraApp
import TesseraServer

@main
struct TesseraCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Tessera: authentication tokens and sessions for server-side Swift.",
        subcommands: [Serve.self, KeysCommand.self, SessionsCommand.self, UsersCommand.self, MFACommand.self, BenchFloor.self, BenchRESP.self, BenchResync.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Tessera HTTP service.",
        discussion: """
            Every option can also be set by the environment variable shown in its help; a flag wins \
            over the variable. Durations are in seconds.
            """
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServerConfiguration
        let level: Logger.Level
        let json: Bool
        do {
            var settings = Settings(environment: environment)
            configuration = try settings.configuration(options)
            level = try settings.logLevel(options.logLevel)
            json = try settings.jsonLogs(options.logFormat)
        } catch let error as ConfigurationError {
            fail(error.description)
        }
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: level, format: json ? .json : .text)
        }
        let logger = Logger(label: "tessera")

        let runtime: TesseraRuntime
        do {
            runtime = try await TesseraRuntime.bootstrap(configuration, logger: logger)
        } catch {
            fail("\(error)")
        }
        do {
            try await TesseraHTTP.serve(runtime: runtime, configuration: configuration, logger: logger)
        } catch {
            fail("cannot serve on \(configuration.host):\(configuration.port): \(error)")
        }
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("tessera: error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// The flags of `serve`, shared by every command that works on a deployment (`keys`,
/// `sessions`, `users`, `mfa`), so that they open exactly the stores and keys `serve` does.
/// Every option falls back to a `TESSERA_*` environment variable, then to its default.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on. [env: TESSERA_HOST] (default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one. [env: TESSERA_PORT] (default: 8080)")
    var port: Int?

    @Option(help: "Users (and tokens, with the sqlite token store): sqlite:PATH or memory:. [env: TESSERA_DATABASE_URL] (default: sqlite:tessera.db)")
    var databaseURL: String?

    @Option(help: "Where sessions and tokens live: sqlite, redis or memory. [env: TESSERA_TOKEN_STORE] (default: sqlite)")
    var tokenStore: String?

    @Option(help: "Redis for the redis token store: redis://[user:password@]host[:port][/db] (rediss:// for TLS), redis-cluster://[user:password@]host:port[,host:port...] (a Redis Cluster's seed nodes), or redis-sentinel://[user:password@]host:port[,host:port...][/db]#<master name> (rediss-cluster://, rediss-sentinel:// for TLS). [env: TESSERA_REDIS_URL] (default: redis://127.0.0.1:6379)")
    var redisURL: String?

    @Option(help: "Prefix of every Redis key. [env: TESSERA_REDIS_KEY_PREFIX] (default: tessera:)")
    var redisKeyPrefix: String?

    @Option(help: "While Redis is unreachable: none (answer 503) or memory (serve from a local store, write revocations back later). [env: TESSERA_REDIS_FALLBACK] (default: none)")
    var redisFallback: String?

    @Option(help: "With --redis-fallback memory: file (created 0600) holding revocations made during an outage until Redis has them. [env: TESSERA_REDIS_FALLBACK_JOURNAL] (default: tessera-fallback.journal beside the database)")
    var redisFallbackJournal: String?

    @Option(help: "Redis connect and command timeout, in seconds. [env: TESSERA_REDIS_TIMEOUT] (default: 2)")
    var redisTimeout: Double?

    @Option(help: "Replicas that must acknowledge (WAIT) every revocation before it is answered, so that a failover cannot undo it: auto (1 when the primary has a replica, else 0) or a number; 0 turns it off. [env: TESSERA_REDIS_MIN_REPLICAS_ACKED] (default: auto)")
    var redisMinReplicasAcked: String?

    @Option(help: "How long a revocation waits for those replicas before the request answers 503, in seconds. [env: TESSERA_REDIS_REPLICA_ACK_TIMEOUT] (default: 1)")
    var redisReplicaAckTimeout: Double?

    @Option(help: "Signing and refresh-token keys, created with mode 0600 on first start. [env: TESSERA_KEY_FILE] (default: tessera.key beside the database)")
    var keyFile: String?

    @Option(help: "Access token lifetime. [env: TESSERA_ACCESS_TTL] (default: 900)")
    var accessTTL: Double?

    @Option(help: "Refresh token idle lifetime; each refresh restarts it. [env: TESSERA_REFRESH_TTL] (default: 604800)")
    var refreshTTL: Double?

    @Option(help: "Absolute session lifetime. [env: TESSERA_SESSION_MAX_AGE] (default: 2592000)")
    var sessionMaxAge: Double?

    @Option(help: "Window in which the previous refresh token is answered with the current pair. [env: TESSERA_REFRESH_REUSE_GRACE] (default: 10)")
    var refreshReuseGrace: Double?

    @Option(help: "bcrypt cost factor, 4-31. [env: TESSERA_BCRYPT_COST] (default: 12)")
    var bcryptCost: Int?

    @Option(help: "Password hashes that may wait for a thread; past that, logins and registrations answer 503 at once. [env: TESSERA_BCRYPT_QUEUE] (default: 16)")
    var bcryptQueue: Int?

    @Option(help: "Put this aud claim in access tokens and accept only tokens that carry it. [env: TESSERA_AUDIENCE]")
    var audience: String?

    @Option(help: "Seconds a client has to send a whole request head, from its first byte. [env: TESSERA_HEADER_TIMEOUT] (default: 10)")
    var headerTimeout: Double?

    @Option(help: "Seconds a connection with no request in progress stays open. [env: TESSERA_IDLE_TIMEOUT] (default: 60)")
    var idleTimeout: Double?

    @Option(help: "Connections served at once; more wait until one closes. [env: TESSERA_MAX_CONNECTIONS] (default: 1024)")
    var maxConnections: Int?

    @Option(help: "Bearer key for /metrics, at least 16 characters; unset leaves /metrics open. [env: TESSERA_METRICS_KEY]")
    var metricsKey: String?

    @Option(help: "text (one line per record) or json (one JSON object per line). [env: TESSERA_LOG_FORMAT] (default: text)")
    var logFormat: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical. [env: TESSERA_LOG_LEVEL] (default: info)")
    var logLevel: String?

    // Account security.

    @Option(help: "Bearer key for /v1/admin/*; unset turns the admin endpoints off. [env: TESSERA_ADMIN_KEY]")
    var adminKey: String?

    @Option(help: "Key that services present for the service endpoints (revocation stream, introspection), at least 16 characters; unset turns them off. [env: TESSERA_SERVICE_KEY]")
    var serviceKey: String?

    @Option(help: "Directory for password-reset messages, one JSON file each. [env: TESSERA_OUTBOX_DIR] (default: outbox beside the database)")
    var outboxDir: String?

    @Option(help: "POST account messages (reset tokens, MFA notices) as JSON to this http(s) URL instead of the outbox. [env: TESSERA_NOTIFY_WEBHOOK]")
    var notifyWebhook: String?

    @Option(help: "With --notify-webhook: directory where messages wait until delivered, kept across restarts. [env: TESSERA_NOTIFY_SPOOL_DIR] (default: notify-spool beside the database)")
    var notifySpoolDir: String?

    @Option(help: "AES-256-GCM key for TOTP secrets and session credentials, created with mode 0600 on first start. [env: TESSERA_ENCRYPTION_KEY_FILE] (default: tessera-encryption.key beside the database)")
    var encryptionKeyFile: String?

    @Option(help: "Logins per client IP, N/SECONDS or off. [env: TESSERA_RATE_LIMIT_LOGIN] (default: 30/60)")
    var rateLimitLogin: String?
    @Option(help: "Logins per account (email), counted per client IP. [env: TESSERA_RATE_LIMIT_LOGIN_ACCOUNT] (default: 10/60)")
    var rateLimitLoginAccount: String?
    @Option(help: "Registrations per client IP. [env: TESSERA_RATE_LIMIT_REGISTER] (default: 20/3600)")
    var rateLimitRegister: String?
    @Option(help: "Password-reset requests per client IP. [env: TESSERA_RATE_LIMIT_FORGOT] (default: 10/900)")
    var rateLimitForgot: String?
    @Option(help: "Password-reset requests per account (email). [env: TESSERA_RATE_LIMIT_FORGOT_ACCOUNT] (default: 3/900)")
    var rateLimitForgotAccount: String?
    @Option(help: "MFA codes per client IP. [env: TESSERA_RATE_LIMIT_MFA] (default: 15/60)")
    var rateLimitMfa: String?
    @Option(help: "MFA codes per account. [env: TESSERA_RATE_LIMIT_MFA_ACCOUNT] (default: 10/60)")
    var rateLimitMfaAccount: String?
    @Option(help: "Refreshes per client IP. [env: TESSERA_RATE_LIMIT_REFRESH] (default: 150/300)")
    var rateLimitRefresh: String?
    @Option(help: "Refreshes per account. [env: TESSERA_RATE_LIMIT_REFRESH_ACCOUNT] (default: 60/60)")
    var rateLimitRefreshAccount: String?

    @Option(help: "Consecutive failed logins from one client (IP) that lock that client out of an account; 0 turns locking off. [env: TESSERA_LOCKOUT_THRESHOLD] (default: 10)")
    var lockoutThreshold: Int?

    @Option(help: "How long a locked client stays locked, in seconds. [env: TESSERA_LOCKOUT_DURATION] (default: 900)")
    var lockoutDuration: Double?
    @Option(help: "Proxies whose X-Forwarded-For / Forwarded headers name the client: IPv4/IPv6 addresses or CIDR blocks, separated by commas. [env: TESSERA_TRUSTED_PROXIES] (default: none)")
    var trustedProxies: String?

    @Option(help: "URL prefixes allowed as token endpoints of OAuth2 session credentials, separated by commas; unset refuses OAuth2 credentials. [env: TESSERA_UPSTREAM_TOKEN_ENDPOINTS]")
    var upstreamTokenEndpoints: String?

    @Option(help: "An OAuth2 credential's access token is refreshed when it is valid for less than this, in seconds. [env: TESSERA_UPSTREAM_MIN_VALIDITY] (default: 60)")
    var upstreamMinValidity: Double?


    @Option(help: "Failed logins for an account from all clients before each further attempt must wait (1 s, doubling); 0 turns it off. [env: TESSERA_LOGIN_SLOWDOWN_THRESHOLD] (default: 20)")
    var loginSlowdownThreshold: Int?

    @Option(help: "Longest wait between login attempts of a slowed-down account, in seconds. [env: TESSERA_LOGIN_SLOWDOWN_MAX_DELAY] (default: 300)")
    var loginSlowdownMaxDelay: Double?
    @Option(help: "Comma-separated origins (scheme://host[:port]) whose pages may call Tessera with credentials: CORS, and the CSRF check of cookie-authenticated requests. [env: TESSERA_CORS_ORIGINS] (default: none)")
    var corsOrigins: String?

    @Option(help: "How often a running instance checks whether the key files changed, in seconds. [env: TESSERA_KEY_RELOAD_INTERVAL] (default: 10)")
    var keyReloadInterval: Double?

    @Option(help: "How long a new signing key is published in the JWKS before it signs, in seconds. [env: TESSERA_KEY_PUBLISH_DELAY] (default: the JWKS cache time, 300, plus the key reload interval)")
    var keyPublishDelay: Double?

    // Fast validation path.
    @Option(help: "With the redis token store: on (keep a local copy of the denylist, updated by pub/sub) or off (ask Redis on every request). [env: TESSERA_LOCAL_REVOCATIONS] (default: on)")
    var localRevocations: String?

    // Tracing.
    @Option(help: "Send request and store spans to this OTLP/HTTP collector URL (a URL without a path gets /v1/traces); unset turns tracing off. [env: TESSERA_OTLP_ENDPOINT]")
    var otlpEndpoint: String?

    @Option(help: "With --otlp-endpoint: the service.name of the spans. [env: TESSERA_OTLP_SERVICE_NAME] (default: tessera)")
    var otlpServiceName: String?

    @Option(help: "With --otlp-endpoint: share of new traces recorded, 0 to 1; requests with a traceparent follow their caller's decision. [env: TESSERA_TRACE_SAMPLE_RATIO] (default: 1)")
    var traceSampleRatio: Double?
}

/// Resolves flag, then environment variable, then default, with one clear error per bad value.
struct Settings {
    let environment: [String: String]

    mutating func configuration(_ flags: ServerOptions) throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = flags.host ?? environment["TESSERA_HOST"] ?? configuration.host
        configuration.port = try value(flags.port, "TESSERA_PORT", configuration.port)
        guard (0...65535).contains(configuration.port) else { throw ConfigurationError("port must be between 0 and 65535") }
        configuration.databaseURL = flags.databaseURL ?? environment["TESSERA_DATABASE_URL"] ?? configuration.databaseURL
        configuration.tokenStore = flags.tokenStore ?? environment["TESSERA_TOKEN_STORE"] ?? configuration.tokenStore
        configuration.keyFile = flags.keyFile ?? environment["TESSERA_KEY_FILE"]
        configuration.redisURL = flags.redisURL ?? environment["TESSERA_REDIS_URL"] ?? configuration.redisURL
        configuration.redisKeyPrefix = flags.redisKeyPrefix ?? environment["TESSERA_REDIS_KEY_PREFIX"] ?? configuration.redisKeyPrefix
        configuration.redisFallback = flags.redisFallback ?? environment["TESSERA_REDIS_FALLBACK"] ?? configuration.redisFallback
        configuration.redisFallbackJournal = flags.redisFallbackJournal ?? environment["TESSERA_REDIS_FALLBACK_JOURNAL"]
        if configuration.redisFallbackJournal?.isEmpty == true { throw ConfigurationError("the Redis fallback journal path is empty") }
        configuration.redisTimeout = try value(flags.redisTimeout, "TESSERA_REDIS_TIMEOUT", configuration.redisTimeout)
        configuration.redisMinReplicasAcked =
            flags.redisMinReplicasAcked ?? environment["TESSERA_REDIS_MIN_REPLICAS_ACKED"] ?? configuration.redisMinReplicasAcked
        configuration.redisReplicaAckTimeout = try value(
            flags.redisReplicaAckTimeout, "TESSERA_REDIS_REPLICA_ACK_TIMEOUT", configuration.redisReplicaAckTimeout
        )
        var policy = configuration.policy
        policy.accessTTL = try value(flags.accessTTL, "TESSERA_ACCESS_TTL", policy.accessTTL)
        policy.refreshTTL = try value(flags.refreshTTL, "TESSERA_REFRESH_TTL", policy.refreshTTL)
        policy.sessionMaxAge = try value(flags.sessionMaxAge, "TESSERA_SESSION_MAX_AGE", policy.sessionMaxAge)
        policy.refreshReuseGrace = try value(flags.refreshReuseGrace, "TESSERA_REFRESH_REUSE_GRACE", policy.refreshReuseGrace)
        let cost = try value(flags.bcryptCost, "TESSERA_BCRYPT_COST", Int(policy.bcryptCost))
        guard (4...31).contains(cost) else { throw ConfigurationError("bcrypt cost must be between 4 and 31") }
        policy.bcryptCost = UInt8(cost)
        policy.bcryptQueue = try value(flags.bcryptQueue, "TESSERA_BCRYPT_QUEUE", policy.bcryptQueue)
        // Checked with the other lifetimes and limits in TokenPolicy.validated().
        policy.audience = flags.audience ?? environment["TESSERA_AUDIENCE"]
        configuration.policy = policy

        configuration.adminKey = flags.adminKey ?? environment["TESSERA_ADMIN_KEY"]
        if let key = configuration.adminKey, key.utf8.count < 16 {
            throw ConfigurationError("the admin key must be at least 16 characters")
        }
        configuration.metricsKey = flags.metricsKey ?? environment["TESSERA_METRICS_KEY"]
        if let key = configuration.metricsKey, key.utf8.count < 16 {
            throw ConfigurationError("the metrics key must be at least 16 characters")
        }
        var connections = configuration.connections
        let headerTimeout = try value(flags.headerTimeout, "TESSERA_HEADER_TIMEOUT", 10.0)
        let idleTimeout = try value(flags.idleTimeout, "TESSERA_IDLE_TIMEOUT", 60.0)
        guard headerTimeout > 0, idleTimeout > 0 else { throw ConfigurationError("header and idle timeouts must be positive") }
        connections.headerTimeout = .milliseconds(Int64(headerTimeout * 1000))
        connections.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
        connections.maxConnections = try value(flags.maxConnections, "TESSERA_MAX_CONNECTIONS", connections.maxConnections)
        guard connections.maxConnections >= 1 else { throw ConfigurationError("max connections must be at least 1") }
        configuration.connections = connections
        configuration.serviceKey = flags.serviceKey ?? environment["TESSERA_SERVICE_KEY"]
        if let key = configuration.serviceKey, key.utf8.count < 16 {
            throw ConfigurationError("the service key must be at least 16 characters")
        }
        configuration.outboxDirectory = flags.outboxDir ?? environment["TESSERA_OUTBOX_DIR"]
        configuration.notifyWebhook = flags.notifyWebhook ?? environment["TESSERA_NOTIFY_WEBHOOK"]
        configuration.notifySpoolDirectory = flags.notifySpoolDir ?? environment["TESSERA_NOTIFY_SPOOL_DIR"]
        configuration.encryptionKeyFile = flags.encryptionKeyFile ?? environment["TESSERA_ENCRYPTION_KEY_FILE"]
        var limits = configuration.rateLimits
        let settings: [(RateLimitedAction, perAccount: Bool, String?, String)] = [
            (.login, false, flags.rateLimitLogin, "TESSERA_RATE_LIMIT_LOGIN"),
            (.login, true, flags.rateLimitLoginAccount, "TESSERA_RATE_LIMIT_LOGIN_ACCOUNT"),
            (.register, false, flags.rateLimitRegister, "TESSERA_RATE_LIMIT_REGISTER"),
            (.forgot, false, flags.rateLimitForgot, "TESSERA_RATE_LIMIT_FORGOT"),
            (.forgot, true, flags.rateLimitForgotAccount, "TESSERA_RATE_LIMIT_FORGOT_ACCOUNT"),
            (.mfaVerify, false, flags.rateLimitMfa, "TESSERA_RATE_LIMIT_MFA"),
            (.mfaVerify, true, flags.rateLimitMfaAccount, "TESSERA_RATE_LIMIT_MFA_ACCOUNT"),
            (.refresh, false, flags.rateLimitRefresh, "TESSERA_RATE_LIMIT_REFRESH"),
            (.refresh, true, flags.rateLimitRefreshAccount, "TESSERA_RATE_LIMIT_REFRESH_ACCOUNT"),
        ]
        for (action, perAccount, flag, variable) in settings {
            guard let text = flag ?? environment[variable] else { continue }
            let limit = try RateLimit.setting(text, name: variable)
            if perAccount { limits.perAccount[action] = limit } else { limits.perIP[action] = limit }
        }
        limits.lockoutThreshold = try value(flags.lockoutThreshold, "TESSERA_LOCKOUT_THRESHOLD", limits.lockoutThreshold)
        limits.lockoutDuration = try value(flags.lockoutDuration, "TESSERA_LOCKOUT_DURATION", limits.lockoutDuration)
        guard limits.lockoutThreshold >= 0, limits.lockoutDuration >= 1 else {
            throw ConfigurationError("lockout threshold must not be negative and lockout duration must be at least 1 second")
        }
        limits.slowdownThreshold = try value(flags.loginSlowdownThreshold, "TESSERA_LOGIN_SLOWDOWN_THRESHOLD", limits.slowdownThreshold)
        limits.slowdownMaxDelay = try value(flags.loginSlowdownMaxDelay, "TESSERA_LOGIN_SLOWDOWN_MAX_DELAY", limits.slowdownMaxDelay)
        guard limits.slowdownThreshold >= 0, limits.slowdownMaxDelay >= 1, limits.slowdownMaxDelay <= limits.slowdownWindow else {
            throw ConfigurationError("login slow-down threshold must not be negative and its maximum delay must be 1 to 86400 seconds")
        }
        configuration.rateLimits = limits
        if let text = flags.trustedProxies ?? environment["TESSERA_TRUSTED_PROXIES"] {
            do {
                configuration.trustedProxies = try TrustedProxies(parsing: text)
            } catch {
                throw ConfigurationError("trusted proxies: \(error)")
            }
        }
        if let text = flags.upstreamTokenEndpoints ?? environment["TESSERA_UPSTREAM_TOKEN_ENDPOINTS"] {
            configuration.upstreamTokenEndpoints = try text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.map { item in
                    guard let prefix = UpstreamCredentials.allowedPrefix(item) else {
                        throw ConfigurationError("upstream token endpoint '\(item)' is not an http(s) URL with a host and no query")
                    }
                    return prefix
                }
        }
        configuration.upstreamMinValidity = try value(flags.upstreamMinValidity, "TESSERA_UPSTREAM_MIN_VALIDITY", configuration.upstreamMinValidity)
        guard configuration.upstreamMinValidity >= 0 else { throw ConfigurationError("upstream min validity must not be negative") }
        configuration.corsOrigins = try Self.origins(flags.corsOrigins ?? environment["TESSERA_CORS_ORIGINS"])
        configuration.keyReloadInterval = try value(flags.keyReloadInterval, "TESSERA_KEY_RELOAD_INTERVAL", configuration.keyReloadInterval)
        guard configuration.keyReloadInterval > 0 else { throw ConfigurationError("key reload interval must be positive") }
        if flags.keyPublishDelay != nil || environment["TESSERA_KEY_PUBLISH_DELAY"] != nil {
            let delay = try value(flags.keyPublishDelay, "TESSERA_KEY_PUBLISH_DELAY", 0.0)
            guard delay >= 0 else { throw ConfigurationError("key publish delay must not be negative") }
            configuration.keyPublishDelay = delay
        }
        configuration.localRevocations = try onOff(flags.localRevocations ?? environment["TESSERA_LOCAL_REVOCATIONS"], "local revocations", true)
        if let endpoint = flags.otlpEndpoint ?? environment["TESSERA_OTLP_ENDPOINT"], !endpoint.isEmpty {
            var tracing = TracingConfiguration(endpoint: endpoint)
            tracing.serviceName = flags.otlpServiceName ?? environment["TESSERA_OTLP_SERVICE_NAME"] ?? tracing.serviceName
            tracing.sampleRatio = try value(flags.traceSampleRatio, "TESSERA_TRACE_SAMPLE_RATIO", tracing.sampleRatio)
            configuration.tracing = tracing
        }
        return configuration
    }

    func jsonLogs(_ flag: String?) throws -> Bool {
        switch (flag ?? environment["TESSERA_LOG_FORMAT"] ?? "text").lowercased() {
        case "text": return false
        case "json": return true
        case let other: throw ConfigurationError("unknown log format '\(other)': choose text or json")
        }
    }

    /// `--cors-origins`: exact origins; any entry that is not one stops start-up.
    static func origins(_ raw: String?) throws -> [WebOrigin] {
        guard let raw else { return [] }
        return try raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { text in
            guard let origin = WebOrigin(configured: text) else {
                throw ConfigurationError("cors origin '\(text)' is not an origin: use scheme://host[:port], e.g. https://app.example.com")
            }
            return origin
        }
    }

    func logLevel(_ flag: String?) throws -> Logger.Level {
        let name = flag ?? environment["TESSERA_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: name.lowercased()) else {
            throw ConfigurationError("unknown log level '\(name)'")
        }
        return level
    }

    private func onOff(_ raw: String?, _ name: String, _ fallback: Bool) throws -> Bool {
        switch raw?.lowercased() {
        case nil: return fallback
        case "on", "true", "1", "yes": return true
        case "off", "false", "0", "no": return false
        case let other?: throw ConfigurationError("\(name) must be on or off, not '\(other)'")
        }
    }

    private func value<T: LosslessStringConvertible>(_ flag: T?, _ variable: String, _ fallback: T) throws -> T {
        if let flag { return flag }
        guard let raw = environment[variable] else { return fallback }
        guard let parsed = T(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError("\(variable)='\(raw)' is not a valid number")
        }
        return parsed
    }
}
