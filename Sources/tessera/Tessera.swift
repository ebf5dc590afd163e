import ArgumentParser
import Foundation
import Logging
import Tessera
import TesseraServer

@main
struct TesseraCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Tessera: authentication tokens and sessions for server-side Swift.",
        subcommands: [Serve.self, BenchFloor.self]
    )
}

/// Every option falls back to a `TESSERA_*` environment variable, then to its default.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the Tessera HTTP service.",
        discussion: """
            Every option can also be set by the environment variable shown in its help; a flag wins \
            over the variable. Durations are in seconds.
            """
    )

    @Option(help: "Address to listen on. [env: TESSERA_HOST] (default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one. [env: TESSERA_PORT] (default: 8080)")
    var port: Int?

    @Option(help: "Users (and tokens, with the sqlite token store): sqlite:PATH or memory:. [env: TESSERA_DATABASE_URL] (default: sqlite:tessera.db)")
    var databaseURL: String?

    @Option(help: "Where sessions and tokens live: sqlite, redis or memory. [env: TESSERA_TOKEN_STORE] (default: sqlite)")
    var tokenStore: String?

    @Option(help: "Redis server for the redis token store: redis://[user:password@]host[:port][/db] or rediss://. [env: TESSERA_REDIS_URL] (default: redis://127.0.0.1:6379)")
    var redisURL: String?

    @Option(help: "Prefix of every Redis key. [env: TESSERA_REDIS_KEY_PREFIX] (default: tessera:)")
    var redisKeyPrefix: String?

    @Option(help: "While Redis is unreachable: none (answer 503) or memory (serve from a local store, write revocations back later). [env: TESSERA_REDIS_FALLBACK] (default: none)")
    var redisFallback: String?

    @Option(help: "Redis connect and command timeout, in seconds. [env: TESSERA_REDIS_TIMEOUT] (default: 2)")
    var redisTimeout: Double?

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

    @Option(help: "trace, debug, info, notice, warning, error or critical. [env: TESSERA_LOG_LEVEL] (default: info)")
    var logLevel: String?

    // Fast validation path.
    @Option(help: "With the redis token store: on (keep a local copy of the denylist, updated by pub/sub) or off (ask Redis on every request). [env: TESSERA_LOCAL_REVOCATIONS] (default: on)")
    var localRevocations: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: ServerConfiguration
        let level: Logger.Level
        do {
            var settings = Settings(environment: environment)
            configuration = try settings.configuration(self)
            level = try settings.logLevel(logLevel)
        } catch let error as ConfigurationError {
            fail(error.description)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
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

/// Resolves flag, then environment variable, then default, with one clear error per bad value.
private struct Settings {
    let environment: [String: String]

    mutating func configuration(_ flags: Serve) throws -> ServerConfiguration {
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
        configuration.redisTimeout = try value(flags.redisTimeout, "TESSERA_REDIS_TIMEOUT", configuration.redisTimeout)
        var policy = configuration.policy
        policy.accessTTL = try value(flags.accessTTL, "TESSERA_ACCESS_TTL", policy.accessTTL)
        policy.refreshTTL = try value(flags.refreshTTL, "TESSERA_REFRESH_TTL", policy.refreshTTL)
        policy.sessionMaxAge = try value(flags.sessionMaxAge, "TESSERA_SESSION_MAX_AGE", policy.sessionMaxAge)
        policy.refreshReuseGrace = try value(flags.refreshReuseGrace, "TESSERA_REFRESH_REUSE_GRACE", policy.refreshReuseGrace)
        let cost = try value(flags.bcryptCost, "TESSERA_BCRYPT_COST", Int(policy.bcryptCost))
        guard (4...31).contains(cost) else { throw ConfigurationError("bcrypt cost must be between 4 and 31") }
        policy.bcryptCost = UInt8(cost)
        configuration.policy = policy
        configuration.localRevocations = try onOff(flags.localRevocations ?? environment["TESSERA_LOCAL_REVOCATIONS"], "local revocations", true)
        return configuration
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
