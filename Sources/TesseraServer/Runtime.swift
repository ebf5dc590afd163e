import Foundation
import Logging
import ServiceLifecycle
import Tessera
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

        var sqlite: SQLiteDatabase?
        let users: any UserStore
        switch database {
        case .sqlite(let path):
            let opened = try SQLiteDatabase(path: path)
            sqlite = opened
            users = opened.userStore()
        case .memory:
            users = MemoryUserStore()
        }

        let tokens: any TokenStore
        switch tokenKind {
        case .sqlite:
            guard let sqlite else {
                throw ConfigurationError("token store 'sqlite' needs a sqlite: database URL")
            }
            tokens = sqlite.tokenStore(clock: clock)
        case .memory:
            tokens = MemoryTokenStore(clock: clock)
        }

        let keys: KeyMaterial
        let keyDescription: String
        if let keyPath = configuration.keyFile ?? defaultKeyFile(for: database) {
            let (loaded, origin) = try KeyFile.loadOrCreate(path: keyPath, now: clock.now())
            keys = loaded
            keyDescription = "\(keyPath) (\(origin == .created ? "created" : "loaded"))"
            if origin == .created { logger.notice("signing key created", metadata: ["key_file": "\(keyPath)"]) }
        } else {
            keys = .generate(now: clock.now())
            keyDescription = "ephemeral (memory database; tokens die with the process)"
        }

        let service = try await AuthService(policy: policy, users: users, tokens: tokens, keys: keys, clock: clock, logger: logger)
        let databaseDescription: String
        switch database {
        case .sqlite(let path): databaseDescription = "sqlite \(path)"
        case .memory: databaseDescription = "memory"
        }
        return TesseraRuntime(
            service: service,
            services: [ExpirySweeper(store: tokens, interval: configuration.sweepInterval, logger: logger)],
            summary: "users: \(databaseDescription), tokens: \(tokens.backendName), keys: \(keyDescription)"
        )
    }

    static func defaultKeyFile(for database: DatabaseLocation) -> String? {
        switch database {
        case .sqlite(let path):
            URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("tessera.key").path
        case .memory:
            nil
        }
    }
}
