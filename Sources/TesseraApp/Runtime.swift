import Foundation
import Logging
import ServiceLifecycle
import Tessera
import TesseraPostgres
import TesseraRESP
import TesseraRedis
import TesseraSQLite
import TesseraServer
import Tracing

/// The wired-up service: one store instance of each kind, one key set, one clock. Built once
/// per process and injected everywhere; nothing here is a global.
public struct TesseraRuntime: Sendable {
    public let service: AuthService
    public let metrics: TesseraMetrics
    /// Set with `--otlp-endpoint`: the router's request spans and the store's child spans.
    public let tracer: (any Tracer)?
    public let sweeper: ExpirySweeper
    /// Background work to run beside the HTTP server (expiry sweeps, key reloads).
    public let services: [any Service]
    /// What a one-shot command needs running while it works (connection pools, message
    /// delivery), without the server's periodic work.
    public let commandServices: [any Service]
    /// Where the keys live, for rotation.
    public let keyFiles: KeyFiles
    /// For the start-up log line: which stores and keys are in use.
    public let summary: String

    public static func bootstrap(
        _ configuration: ServerConfiguration, clock: any TesseraClock = SystemClock(), logger: Logger
    ) async throws -> TesseraRuntime {
        let policy = try configuration.policy.validated()
        let database = try DatabaseLocation(url: configuration.databaseURL)
        let tokenKind = try TokenStoreKind(configuration.tokenStore)

        var services: [any Service] = []
        var tracer: (any Tracer)?
        if let tracing = configuration.tracing {
            let exporter = try TracingExporter.make(tracing, logger: logger)
            tracer = exporter.tracer
            // First in, last out: spans of the last requests are still exported at shutdown.
            services.append(exporter.service)
        }
        var sqlite: SQLiteDatabase?
        let users: any UserStore
        let databaseDescription: String
        switch database {
        case .sqlite(let path):
            if !configuration.createMissing, !FileManager.default.fileExists(atPath: path) {
                throw ConfigurationError("no database at \(path): give the --database-url that serve uses")
            }
            let opened = try SQLiteDatabase(path: path)
            sqlite = opened
            users = opened.userStore()
            databaseDescription = "sqlite \(path)"
        case .postgres(let url):
            let postgres: PostgresDatabase
            do {
                postgres = try PostgresDatabase(url: url, logger: logger)
            } catch {
                throw ConfigurationError("bad PostgreSQL URL: \(error)")
            }
            // Migrations before serving; safe when several instances start at once.
            try await postgres.migrate()
            services.append(postgres)
            users = postgres.userStore()
            databaseDescription = "postgres \(postgres.redactedURL)"
        case .memory:
            users = MemoryUserStore()
            databaseDescription = "memory"
        }

        let metrics = TesseraMetrics()
        // Rate limits and the user cache are local unless the token store is shared (Redis).
        let localLimits = MemoryRateLimitStore(clock: clock)
        var rateLimitStore: any RateLimitStore = localLimits
        var userCache: any UserCache = MemoryUserCache(clock: clock)
        var tokenDescription: String
        let tokens: any TokenStore
        switch tokenKind {
        case .sqlite:
            if let sqlite {
                tokens = metrics.measuring(sqlite.tokenStore(clock: clock), tracer: tracer)
                tokenDescription = "sqlite"
            } else {
                // Users live elsewhere (PostgreSQL, memory): tokens get a SQLite file of their own.
                let path = configuration.tokenDatabasePath
                tokens = metrics.measuring(try SQLiteDatabase(path: path).tokenStore(clock: clock), tracer: tracer)
                tokenDescription = "sqlite \(path)"
            }
        case .memory:
            tokens = metrics.measuring(MemoryTokenStore(clock: clock), tracer: tracer)
            tokenDescription = "memory"
        case .redis:
            let fallbackPolicy = try RedisFallbackPolicy(configuration.redisFallback)
            var deployment: RedisDeployment
            do {
                deployment = try RedisDeployment(url: configuration.redisURL)
            } catch {
                throw ConfigurationError("bad Redis URL: \(error)")
            }
            guard configuration.redisTimeout > 0 else { throw ConfigurationError("Redis timeout must be positive") }
            let timeout = Duration.milliseconds(Int64(configuration.redisTimeout * 1000))
            deployment.configuration.commandTimeout = timeout
            deployment.configuration.connectTimeout = timeout
            deployment.configuration.acquireTimeout = timeout
            deployment.configuration.clientName = "tessera"
            let durability = try revocationDurability(configuration)
            let client = deployment.makeClient(logger: logger)
            services.append(client)
            let revocations = configuration.localRevocations
                ? RevocationView(client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock, logger: logger) : nil
            if let revocations { services.append(revocations) }
            let store = RedisTokenStore(
                client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock, revocations: revocations, durability: durability
            )
            let sharedLimits = RedisRateLimitStore(client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock)
            if let revocations {
                // Per instance, fed by the view's channel: no Redis command to read a cached user.
                let shared = RedisUserCache(
                    client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock, invalidationChannel: revocations.channel
                )
                userCache = SubscribedUserCache(shared: shared, view: revocations, clock: clock)
            } else {
                userCache = RedisUserCache(client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock)
            }
            tokenDescription = "redis \(deployment)" + (revocations == nil ? "" : ", local revocations")
                + ", revocations acknowledged by \(durability.minimumReplicas.map { "\($0)" } ?? "auto") replicas"
            switch fallbackPolicy {
            case .none:
                tokens = metrics.measuring(store, tracer: tracer)
                rateLimitStore = sharedLimits
                tokenDescription += ", fallback none"
            case .memory:
                rateLimitStore = FailoverRateLimitStore(primary: sharedLimits, local: localLimits)
                let journalPath = configuration.redisFallbackJournal ?? besideDatabase(database, "tessera-fallback.journal")
                    ?? "tessera-fallback.journal"
                let journal: FallbackJournal
                do {
                    journal = try FallbackJournal(path: journalPath)
                } catch {
                    throw ConfigurationError("Redis fallback journal: \(error)")
                }
                let fallback = FallbackTokenStore(
                    primary: metrics.measuring(store, tracer: tracer), fallback: MemoryTokenStore(clock: clock), clock: clock,
                    journal: journal, knownRevocations: revocations, logger: logger
                )
                services.append(fallback)
                tokens = fallback
                tokenDescription += ", fallback memory (journal \(journalPath))"
            }
            // Fail fast at start-up: a wrong URL or password should not wait for the first login.
            do {
                try await store.ping()
            } catch {
                if fallbackPolicy == .none {
                    logger.warning("Redis is not reachable at start-up; requests will get 503 until it is", metadata: ["error": "\(error)"])
                } else {
                    logger.warning("Redis is not reachable at start-up; serving from the memory fallback", metadata: ["error": "\(error)"])
                }
            }
        }

        let keys: KeyMaterial
        let keyDescription: String
        let keyPath = configuration.keyFile ?? besideDatabase(database, "tessera.key")
        if let keyPath {
            if !configuration.createMissing, !FileManager.default.fileExists(atPath: keyPath) {
                throw ConfigurationError("no key file at \(keyPath): give the --key-file that serve uses")
            }
            let (loaded, origin) = try KeyFile.loadOrCreate(path: keyPath, now: clock.now())
            keys = loaded
            keyDescription = "\(keyPath) (\(origin == .created ? "created" : "loaded"))"
            if origin == .created { logger.notice("signing key created", metadata: ["key_file": "\(keyPath)"]) }
        } else if case .postgres = database {
            throw ConfigurationError("with a PostgreSQL database, give every instance the same --key-file")
        } else {
            keys = .generate(now: clock.now())
            keyDescription = "ephemeral (memory database; tokens die with the process)"
        }

        let (secrets, secretsDescription, secretsPath) = try encryptionKeys(configuration, database: database, logger: logger)
        let notifier = try notifier(configuration, database: database)
        var security = AccountSecurity(
            secrets: secrets, rateLimits: configuration.rateLimits, rateLimitStore: rateLimitStore, userCache: userCache,
            notifier: notifier
        )
        security.notificationSpool = notificationSpool(configuration, database: database)
        security.events = { metrics.record($0) }
        if !configuration.upstreamTokenEndpoints.isEmpty {
            guard configuration.upstreamMinValidity >= 0 else { throw ConfigurationError("upstream min validity must not be negative") }
            let client = HTTPUpstreamTokenClient(tracer: tracer)
            services.append(client)
            var upstream = UpstreamCredentials(allowedEndpoints: configuration.upstreamTokenEndpoints, client: client)
            upstream.minValidity = configuration.upstreamMinValidity
            security.upstream = upstream
        }
        let service = try await AuthService(
            policy: policy, users: users, tokens: tokens, keys: keys, security: security, clock: clock, logger: logger,
            audit: AuditLog(logger: Logger(label: AuditLog.label))
        )
        let sweeper = ExpirySweeper(
            store: tokens, rateLimits: localLimits, notifier: notifier, interval: configuration.sweepInterval, logger: logger
        )
        let delivery = NotificationService(dispatcher: service.dispatcher)
        let commandServices = services + [delivery]
        guard configuration.keyReloadInterval > 0 else { throw ConfigurationError("key reload interval must be positive") }
        let watcher = KeyFileWatcher(
            keyRing: service.keyRing, keyFile: keyPath, encryptionKeyFile: secretsPath,
            interval: .milliseconds(Int64(configuration.keyReloadInterval * 1000)), logger: logger
        )
        services += [sweeper, delivery, watcher]
        return TesseraRuntime(
            service: service,
            metrics: metrics,
            tracer: tracer,
            sweeper: sweeper,
            services: services,
            commandServices: commandServices,
            keyFiles: KeyFiles(keyFile: keyPath, encryptionKeyFile: secretsPath),
            summary: "users: \(databaseDescription), tokens: \(tokenDescription), keys: \(keyDescription), "
                + "encryption key: \(secretsDescription), messages: \(notifier.summary)"
                + (security.notificationSpool.map { " (spool \($0))" } ?? "")
                + (configuration.tracing == nil ? "" : ", traces: OTLP/HTTP")
        )
    }

    /// `--redis-min-replicas-acked` and `--redis-replica-ack-timeout`.
    static func revocationDurability(_ configuration: ServerConfiguration) throws -> RevocationDurability {
        guard configuration.redisReplicaAckTimeout > 0 else { throw ConfigurationError("the replica acknowledgement timeout must be positive") }
        let timeout = Duration.milliseconds(Int64((configuration.redisReplicaAckTimeout * 1000).rounded(.up)))
        switch configuration.redisMinReplicasAcked.lowercased() {
        case "auto": return RevocationDurability(minimumReplicas: nil, timeout: timeout)
        case let text:
            guard let count = Int(text), count >= 0 else {
                throw ConfigurationError("--redis-min-replicas-acked must be auto or a number of replicas, not '\(text.prefix(16))'")
            }
            return RevocationDurability(minimumReplicas: count, timeout: timeout)
        }
    }

    static func encryptionKeys(
        _ configuration: ServerConfiguration, database: DatabaseLocation, logger: Logger
    ) throws -> (SecretBox, String, path: String?) {
        if let path = configuration.encryptionKeyFile ?? besideDatabase(database, "tessera-encryption.key") {
            if !configuration.createMissing, !FileManager.default.fileExists(atPath: path) {
                throw ConfigurationError("no encryption key file at \(path): give the --encryption-key-file that serve uses")
            }
            let (box, origin) = try EncryptionKeyFile.loadOrCreate(path: path)
            if origin == .created { logger.notice("encryption key created", metadata: ["key_file": "\(path)"]) }
            return (box, "\(path) (\(origin == .created ? "created" : "loaded"))", path)
        }
        if case .postgres = database {
            throw ConfigurationError("with a PostgreSQL database, give every instance the same --encryption-key-file")
        }
        return (SecretBox.generate(), "ephemeral (memory database)", nil)
    }

    static func notifier(_ configuration: ServerConfiguration, database: DatabaseLocation) throws -> any Notifier {
        if let webhook = configuration.notifyWebhook {
            guard let url = URL(string: webhook), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ConfigurationError("notify webhook '\(webhook)' is not an http(s) URL")
            }
            return WebhookNotifier(url: url)
        }
        return OutboxNotifier(directory: configuration.outboxDirectory ?? besideDatabase(database, "outbox") ?? "outbox")
    }

    /// Webhook messages wait on local disk until delivered; the outbox is a directory already.
    static func notificationSpool(_ configuration: ServerConfiguration, database: DatabaseLocation) -> String? {
        guard configuration.notifyWebhook != nil else { return nil }
        return configuration.notifySpoolDirectory ?? besideDatabase(database, "notify-spool")
    }

    /// A file beside the SQLite database; nil for the other databases.
    static func besideDatabase(_ database: DatabaseLocation, _ name: String) -> String? {
        guard case .sqlite(let path) = database else { return nil }
        return URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(name).path
    }
}
