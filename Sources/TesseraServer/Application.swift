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
        /// Key that services beside Tessera (apps verifying tokens remotely, resource servers,
        /// gateways) present for the service endpoints; nil: those endpoints answer 404.
        public var serviceKey: String?
        /// nil: no `/metrics`.
        public var metrics: TesseraMetrics?
        /// Its counters appear in stats and metrics.
        public var sweeper: ExpirySweeper?
        /// How often the revocation stream proves it is alive; followers trust it for 3 intervals.
        public var revocationHeartbeat: Duration = .seconds(1)

        public init(
            adminKey: String? = nil, serviceKey: String? = nil, metrics: TesseraMetrics? = nil, sweeper: ExpirySweeper? = nil,
            revocationHeartbeat: Duration = .seconds(1)
        ) {
            self.adminKey = adminKey
            self.serviceKey = serviceKey
            self.metrics = metrics
            self.sweeper = sweeper
            self.revocationHeartbeat = revocationHeartbeat
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
        router.add(middleware: ProblemMiddleware())
        AuthController(service: service).addRoutes(to: router.group("v1/auth"))
        if let adminKey = options.adminKey {
            AdminController(service: service, adminKey: SharedKey(adminKey), sweeper: options.sweeper).addRoutes(to: router.group("v1/admin"))
        }
        if let serviceKey = options.serviceKey {
            RevocationStreamController(service: service, serviceKey: SharedKey(serviceKey), heartbeat: options.revocationHeartbeat)
                .addRoutes(to: router.group("v1/revocations"))
        }
        router.get(".well-known/jwks.json") { _, _ in
            var response = try JSONBody.response(service.jwks())
            response.headers[.cacheControl] = "public, max-age=300"
            return response
        }
        router.get("health") { _, _ in try await health(service.tokens) }
        return router
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
