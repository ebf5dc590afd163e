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
        var store: Store
    }

    static func health(_ store: any TokenStore) async throws -> Response {
        let start = ContinuousClock.now
        do {
            try await store.ping()
            let elapsed = ContinuousClock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
            return try JSONBody.response(
                Health(status: "ok", store: .init(backend: store.backendName, connected: true, latencyMs: (ms * 1000).rounded() / 1000))
            )
        } catch {
            return try JSONBody.response(
                Health(status: "down", store: .init(backend: store.backendName, connected: false, latencyMs: nil)),
                status: .serviceUnavailable
            )
        }
    }
}
