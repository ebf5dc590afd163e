import Foundation
import Hummingbird
import Logging
import NIOCore
import Tessera

/// The HTTP front of Tessera.
public enum TesseraHTTP {
    /// What the router serves besides the auth API.
    public struct Options: Sendable {
        /// Bearer key for `/v1/admin/*`; nil: those routes answer 404.
        public var adminKey: String?
        /// nil: no `/metrics`.
        public var metrics: TesseraMetrics?
        /// Its counters appear in stats and metrics.
        public var sweeper: ExpirySweeper?
        /// Pages of these origins may call the API with credentials (CORS) and pass the CSRF
        /// check of cookie-authenticated requests. Empty: no CORS at all.
        public var corsOrigins: [WebOrigin]

        public init(adminKey: String? = nil, metrics: TesseraMetrics? = nil, sweeper: ExpirySweeper? = nil, corsOrigins: [WebOrigin] = []) {
            self.adminKey = adminKey
            self.metrics = metrics
            self.sweeper = sweeper
            self.corsOrigins = corsOrigins
        }
    }

    public static func router(service: AuthService, options: Options = .init()) -> Router<TesseraRequestContext> {
        let router = Router(context: TesseraRequestContext.self)
        if let metrics = options.metrics {
            router.add(middleware: MetricsMiddleware(metrics: metrics))
            router.get("metrics") { _, _ in
                metrics.collect(service, sweeper: options.sweeper)
                return metrics.response()
            }
        }
        let browser = BrowserPolicy(corsOrigins: options.corsOrigins)
        router.add(middleware: CORSMiddleware(policy: browser))
        router.add(middleware: ProblemMiddleware())
        AuthController(service: service, browser: browser).addRoutes(to: router.group("v1/auth"))
        ClientScript.addRoute(to: router)
        if let adminKey = options.adminKey {
            AdminController(service: service, adminKey: adminKey, sweeper: options.sweeper).addRoutes(to: router.group("v1/admin"))
        }
        router.get(".well-known/jwks.json") { _, _ in
            var response = try JSONBody.response(service.jwks())
            response.headers[.cacheControl] = "public, max-age=300"
            return response
        }
        router.get("health") { _, _ in try await health(service.tokens) }
        return router
    }

    public static func application(
        runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: router(
                service: runtime.service,
                options: .init(
                    adminKey: configuration.adminKey, metrics: runtime.metrics, sweeper: runtime.sweeper,
                    corsOrigins: configuration.corsOrigins
                )
            ),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "tessera"),
            services: runtime.services,
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.notice("Tessera listening on http://\(configuration.host):\(port) (\(runtime.summary))")
                await onListening(port)
            },
            logger: logger
        )
    }

    /// Serves until SIGINT/SIGTERM, then shuts down gracefully.
    public static func serve(runtime: TesseraRuntime, configuration: ServerConfiguration, logger: Logger) async throws {
        try await application(runtime: runtime, configuration: configuration, logger: logger).runService()
    }

    /// One ping: whether the store answers and how fast (milliseconds, 3 decimals).
    static func probe(_ store: any TokenStore) async -> Health.Store {
        let start = ContinuousClock.now
        do {
            try await store.ping()
        } catch {
            return Health.Store(backend: store.backendName, connected: false, latencyMs: nil)
        }
        let elapsed = ContinuousClock.now - start
        return Health.Store(backend: store.backendName, connected: true, latencyMs: (Double(elapsed.nanoseconds) / 1000).rounded() / 1000)
    }

    struct Health: Encodable {
        struct Store: Encodable {
            var backend: String
            var connected: Bool
            var latencyMs: Double?
            enum CodingKeys: String, CodingKey {
                case backend, connected
                case latencyMs = "latency_ms"
            }
        }
        var status: String
        var mode: String
        var store: Store
    }

    /// 200 `ok` on the primary store; 200 `degraded` while a fallback serves; 503 `down` when
    /// the store is unreachable and nothing serves in its place.
    static func health(_ store: any TokenStore) async throws -> Response {
        let fallback = store as? FallbackTokenStore
        let storeHealth = await probe(store)
        let connected = storeHealth.connected
        switch (connected, fallback) {
        case (true, let fallback):
            let mode = fallback?.mode ?? .primary
            return try JSONBody.response(Health(status: mode == .primary ? "ok" : "degraded", mode: mode.rawValue, store: storeHealth))
        case (false, .some):
            return try JSONBody.response(Health(status: "degraded", mode: StoreMode.fallback.rawValue, store: storeHealth))
        case (false, .none):
            return try JSONBody.response(Health(status: "down", mode: StoreMode.primary.rawValue, store: storeHealth), status: .serviceUnavailable)
        }
    }
}
