import Foundation
import Logging
import ServiceLifecycle
import Tessera
import TesseraPostgres
import TesseraRESP
import TesseraRedis
import TesseraSQLite

/// The wired-up service: one store instance of each kind, one key set, one clock. Built once
/// per process and injected everywhere; nothing here is a global.
public struct TesseraRuntime: Sendable {
    public let service: AuthService
    /// Background work to run beside the HTTP server (expiry sweeps).
    public let services: [any Service]
    /// For the start-up log line: which stores and keys are in use.
    public let summary: String

    public static func bootstrap(
        _ configuration: ServerConfiguration, clock: any TesseraClock = SystemClock(), logger: Logger
    ) async throws -> TesseraRuntime {
        let policy = try configuration.policy.validated()
        let database = try DatabaseLocation(url: configuration.databaseURL)
        let tokenKind = try TokenStoreKind(configuration.tokenStore)

        var services: [any Service] = []
        var sqlite: SQLiteDatabase?
        let users: any UserStore
        let databaseDescription: String
        switch database {
        case .sqlite(let path):
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

        var tokenDescription: String
        let tokens: any TokenStore
        switch tokenKind {
        case .sqlite:
            if let sqlite {
                tokens = sqlite.tokenStore(clock: clock)
                tokenDescription = "sqlite"
            } else {
                // Users live elsewhere (PostgreSQL, memory): tokens get a SQLite file of their own.
                let path = configuration.tokenDatabasePath
                tokens = try SQLiteDatabase(path: path).tokenStore(clock: clock)
                tokenDescription = "sqlite \(path)"
            }
        case .memory:
            tokens = MemoryTokenStore(clock: clock)
            tokenDescription = "memory"
        case .redis:
            let fallbackPolicy = try RedisFallbackPolicy(configuration.redisFallback)
            var redis: RedisConfiguration
            do {
                redis = try RedisConfiguration(url: configuration.redisURL)
            } catch {
                throw ConfigurationError("bad Redis URL: \(error)")
            }
            guard configuration.redisTimeout > 0 else { throw ConfigurationError("Redis timeout must be positive") }
            let timeout = Duration.milliseconds(Int64(configuration.redisTimeout * 1000))
            redis.commandTimeout = timeout
            redis.connectTimeout = timeout
            redis.acquireTimeout = timeout
            redis.clientName = "tessera"
            let client = RedisClient(configuration: redis, logger: logger)
            services.append(client)
            let revocations = configuration.localRevocations
                ? RevocationView(client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock, logger: logger) : nil
            if let revocations { services.append(revocations) }
            let store = RedisTokenStore(client: client, keyPrefix: configuration.redisKeyPrefix, clock: clock, revocations: revocations)
            tokenDescription = "redis \(redis)" + (revocations == nil ? "" : ", local revocations")
            switch fallbackPolicy {
            case .none:
                tokens = store
                tokenDescription += ", fallback none"
            case .memory:
                let fallback = FallbackTokenStore(primary: store, fallback: MemoryTokenStore(clock: clock), clock: clock, logger: logger)
                services.append(fallback)
                tokens = fallback
                tokenDescription += ", fallback memory"
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
        if let keyPath = configuration.keyFile ?? defaultKeyFile(for: database) {
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

        let service = try await AuthService(policy: policy, users: users, tokens: tokens, keys: keys, clock: clock, logger: logger)
        services.append(ExpirySweeper(store: tokens, interval: configuration.sweepInterval, logger: logger))
        return TesseraRuntime(
            service: service,
            services: services,
            summary: "users: \(databaseDescription), tokens: \(tokenDescription), keys: \(keyDescription)"
        )
    }

    static func defaultKeyFile(for database: DatabaseLocation) -> String? {
        switch database {
        case .sqlite(let path):
            URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("tessera.key").path
        case .postgres, .memory:
            nil
        }
    }
}
