import Foundation
import Hummingbird
import Logging
import NIOCore
import Tessera
import Tracing

/// The HTTP front of Tessera.
public enum TesseraHTTP {
    /// What the router serves besides the auth API.
    public struct Options: Sendable {
        /// Bearer key for `/v1/admin/*`; nil: those routes answer 404.
        public var adminKey: String?
        /// Key that services beside Tessera (apps verifying tokens remotely, resource servers,
        /// gateways) present for the service endpoints; nil: those endpoints answer 404.
        public var serviceKey: String?
        /// Bearer key for `/metrics`; nil: `/metrics` is open to whoever reaches the port.
        public var metricsKey: String?
        /// Start-up and shutdown phase for `/health/ready`; nil: ready whenever the router runs.
        public var readiness: Readiness?
        /// nil: no `/metrics`.
        public var metrics: TesseraMetrics?
        /// Its counters appear in stats and metrics.
        public var sweeper: ExpirySweeper?
        /// How often the revocation stream proves it is alive; followers trust it for 3 intervals.
        public var revocationHeartbeat: Duration = .seconds(1)
        /// Peers whose `X-Forwarded-For` / `Forwarded` headers name the client.
        public var trustedProxies: TrustedProxies
        /// The key files the admin key routes rotate; nil: they answer 409 `keys_ephemeral`.
        public var keyFiles: KeyFiles?
        /// How long a signing key rotated through the admin API is published before it signs.
        public var keyPublishDelay: TimeInterval = TesseraHTTP.jwksMaxAge
        /// Pages of these origins may call the API with credentials (CORS) and pass the CSRF
        /// check of cookie-authenticated requests. Empty: no CORS at all.
        public var corsOrigins: [WebOrigin]
        /// One server span per request (named by route pattern) and its store calls as children;
        /// nil: no tracing. Wrap the token store with `TesseraMetrics.measuring(_:tracer:)` too.
        public var tracer: (any Tracer)?

        public init(
            adminKey: String? = nil, serviceKey: String? = nil, metricsKey: String? = nil, metrics: TesseraMetrics? = nil,
            sweeper: ExpirySweeper? = nil, readiness: Readiness? = nil, trustedProxies: TrustedProxies = .none,
            corsOrigins: [WebOrigin] = [], revocationHeartbeat: Duration = .seconds(1), tracer: (any Tracer)? = nil
        ) {
            self.tracer = tracer
            self.readiness = readiness
            self.adminKey = adminKey
            self.serviceKey = serviceKey
            self.metricsKey = metricsKey
            self.metrics = metrics
            self.sweeper = sweeper
            self.trustedProxies = trustedProxies
            self.corsOrigins = corsOrigins
            self.revocationHeartbeat = revocationHeartbeat
        }
    }

    /// How long verifiers may cache the JWKS, in seconds; a new signing key is published at
    /// least this long before it signs.
    public static let jwksMaxAge: Double = 300

    public static func router(service: AuthService, options: Options = .init()) -> Router<TesseraRequestContext> {
        // HEAD on every GET route (RFC 9110 §9.3.2: the GET's status and headers, no body), which
        // load balancers and uptime checks use.
        let router = Router(context: TesseraRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: RequestIDMiddleware())
        if let tracer = options.tracer {
            router.add(middleware: RequestTracingMiddleware(tracer: tracer))
        }
        router.add(middleware: ResponseHeadersMiddleware())
        if let metrics = options.metrics {
            router.add(middleware: MetricsMiddleware(metrics: metrics))
            let metricsKey = options.metricsKey.map(SharedKey.init)
            router.get("metrics") { request, _ in
                if let metricsKey {
                    guard let presented = request.bearerToken, metricsKey.matches(presented) else {
                        // Registered before the problem middleware, so the problem is answered here.
                        return APIError(
                            .unauthorized, code: "invalid_metrics_key", detail: "This endpoint needs the metrics key as a Bearer token.",
                            headers: [.wwwAuthenticate: "Bearer realm=\"tessera-metrics\""]
                        ).response()
                    }
                }
                metrics.collect(service, sweeper: options.sweeper)
                return metrics.response()
            }
        }
        let browser = BrowserPolicy(corsOrigins: options.corsOrigins)
        router.add(middleware: CORSMiddleware(policy: browser))
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: UnsupportedMethodMiddleware())
        let auth = AuthController(service: service, browser: browser, trustedProxies: options.trustedProxies)
        auth.addRoutes(to: router.group("v1/auth"))
        if let serviceKey = options.serviceKey {
            OAuthController(service: service, serviceKey: SharedKey(serviceKey), trustedProxies: options.trustedProxies)
                .addRoutes(to: router.group("v1/oauth"))
            RevocationStreamController(service: service, serviceKey: SharedKey(serviceKey), heartbeat: options.revocationHeartbeat)
                .addRoutes(to: router.group("v1/revocations"))
        }
        ClientScript.addRoute(to: router)
        OpenAPIDocument.addRoute(to: router)
        if let adminKey = options.adminKey {
            AdminController(
                service: service, adminKey: SharedKey(adminKey), sweeper: options.sweeper, keyFiles: options.keyFiles,
                keyPublishDelay: options.keyPublishDelay, trustedProxies: options.trustedProxies
            ).addRoutes(to: router.group("v1/admin"))
        }
        router.get(".well-known/jwks.json") { _, _ in
            var response = try JSONBody.response(service.jwks())
            response.headers[.cacheControl] = "public, max-age=\(Int(jwksMaxAge))"
            return response
        }
        router.get("health") { _, _ in try await health(service.tokens) }
        router.get("health/live") { _, _ in try JSONBody.response(["status": "live"]) }
        router.get("health/ready") { _, _ in try await ready(service.tokens, phase: options.readiness?.phase ?? .serving) }
        // After every route: these wrap only the not-found path, where /v1/authz/check lands for
        // any method, and where a known path asked with another method lands.
        router.add(middleware: ForwardAuthMiddleware(controller: auth))
        router.add(middleware: MethodNotAllowedMiddleware(allowed: AllowedMethods(router.routes.map { ($0.path, $0.method) })))
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

    struct ReadyBody: Encodable {
        var status: String
        var phase: String
        var mode: String?
    }

    /// 200 while the instance can do its job: serving, and the store answers or a fallback
    /// serves in its place. 503 before the server listens, once shutdown has begun, and while
    /// the store is unreachable with nothing in its place.
    static func ready(_ store: any TokenStore, phase: Readiness.Phase) async throws -> Response {
        guard phase == .serving else {
            return try JSONBody.response(ReadyBody(status: "not_ready", phase: phase.name), status: .serviceUnavailable)
        }
        let fallback = store as? FallbackTokenStore
        let connected = await probe(store).connected
        guard connected || fallback != nil else {
            return try JSONBody.response(
                ReadyBody(status: "not_ready", phase: phase.name, mode: StoreMode.primary.rawValue), status: .serviceUnavailable
            )
        }
        let mode = connected ? (fallback?.mode ?? .primary) : .fallback
        return try JSONBody.response(ReadyBody(status: "ready", phase: phase.name, mode: mode.rawValue))
    }

    /// 200 `ok` on the primary store; 200 `degraded` while a fallback serves or, with a fallback
    /// configured, while the store does not answer (`mode` says which store serves); 503 `down`
    /// when the store does not answer and no fallback is configured.
    static func health(_ store: any TokenStore) async throws -> Response {
        let fallback = store as? FallbackTokenStore
        let storeHealth = await probe(store)
        let connected = storeHealth.connected
        switch (connected, fallback) {
        case (true, let fallback):
            let mode = fallback?.mode ?? .primary
            return try JSONBody.response(Health(status: mode == .primary ? "ok" : "degraded", mode: mode.rawValue, store: storeHealth))
        case (false, .some(let fallback)):
            // An unreachable store switches now rather than at the next probe; a busy one is no
            // outage and the instance stays on it (docs/REDIS.md, "three different answers").
            // Either way the answer is the mode the instance is in.
            await fallback.switchIfUnreachable()
            return try JSONBody.response(Health(status: "degraded", mode: fallback.mode.rawValue, store: storeHealth))
        case (false, .none):
            return try JSONBody.response(Health(status: "down", mode: StoreMode.primary.rawValue, store: storeHealth), status: .serviceUnavailable)
        }
    }
}
