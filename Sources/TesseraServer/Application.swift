import Foundation
import Hummingbird
import Logging
import NIOCore
import Tessera

/// The HTTP front of Tessera.
public enum TesseraHTTP {
    public static func router(service: AuthService) -> Router<TesseraRequestContext> {
        let router = Router(context: TesseraRequestContext.self)
        router.add(middleware: ProblemMiddleware())
        AuthController(service: service).addRoutes(to: router.group("v1/auth"))
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
            router: router(service: runtime.service),
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
        let start = ContinuousClock.now
        let connected: Bool
        do {
            try await store.ping()
            connected = true
        } catch {
            connected = false
        }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let latency = connected ? (ms * 1000).rounded() / 1000 : nil
        let storeHealth = Health.Store(backend: store.backendName, connected: connected, latencyMs: latency)
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
