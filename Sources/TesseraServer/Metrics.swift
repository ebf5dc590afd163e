import CoreMetrics
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Prometheus
import Synchronization
import Tessera

/// The process's metrics: swift-metrics handles made through an injected Prometheus factory
/// (no global `MetricsSystem`), rendered by `GET /metrics`.
public final class TesseraMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    private let published = Mutex([String: Int]())
    private let requestHandles = HandleCache<RequestLabels, RequestHandles>()
    private let eventCounters = HandleCache<String, CoreMetrics.Counter>()
    private let storeHandles = HandleCache<String, StoreHandles>()

    struct RequestLabels: Hashable, Sendable {
        var route: String
        var method: String
        var status: Int
    }

    struct RequestHandles: Sendable {
        var count: CoreMetrics.Counter
        var latency: CoreMetrics.Timer
    }

    struct StoreHandles: Sendable {
        var latency: CoreMetrics.Timer
        var errors: CoreMetrics.Counter
    }

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .milliseconds(2500), .seconds(5),
        ]
        self.factory = factory
    }

    func request(route: String, method: String, status: Int, duration: Duration) {
        let handles = requestHandles.value(for: RequestLabels(route: route, method: method, status: status)) {
            RequestHandles(
                count: Counter(
                    label: "tessera_http_requests_total", dimensions: [("route", route), ("method", method), ("status", String(status))],
                    factory: factory
                ),
                latency: Timer(
                    label: "tessera_http_request_duration_seconds", dimensions: [("route", route), ("method", method)], factory: factory
                )
            )
        }
        handles.count.increment()
        handles.latency.recordNanoseconds(duration.nanoseconds)
    }

    public func record(_ event: TokenEvent) {
        eventCounters.value(for: event.rawValue) {
            Counter(label: "tessera_token_operations_total", dimensions: [("operation", event.rawValue)], factory: factory)
        }.increment()
    }

    func storeRoundTrip(_ operation: String, duration: Duration, failed: Bool) {
        let handles = storeHandles.value(for: operation) {
            StoreHandles(
                latency: Timer(label: "tessera_store_duration_seconds", dimensions: [("operation", operation)], factory: factory),
                errors: Counter(label: "tessera_store_errors_total", dimensions: [("operation", operation)], factory: factory)
            )
        }
        handles.latency.recordNanoseconds(duration.nanoseconds)
        if failed { handles.errors.increment() }
    }

    /// Values kept elsewhere (fallback state, cache and limiter counters, sweeps) are copied in
    /// at scrape time. Monotonic ones go through counters by their increase since the last scrape.
    func collect(_ service: AuthService, sweeper: ExpirySweeper?) {
        let fallback = service.tokens as? FallbackTokenStore
        Gauge(label: "tessera_store_fallback_active", factory: factory).record(fallback?.mode == .fallback ? 1 : 0)
        var totals: [String: (label: String, dimensions: [(String, String)], value: Int)] = [:]
        func total(_ label: String, _ dimensions: [(String, String)] = [], _ value: Int) {
            totals[label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()] = (label, dimensions, value)
        }
        if let fallback {
            total("tessera_store_fallback_transitions_total", [], fallback.transitions)
            total("tessera_store_fallback_replayed_total", [], fallback.replayed)
        }
        let cache = service.userCacheStatistics
        total("tessera_user_cache_requests_total", [("result", "hit")], cache.hits)
        total("tessera_user_cache_requests_total", [("result", "miss")], cache.misses)
        for (action, count) in service.limiter.rejections {
            total("tessera_rate_limit_rejections_total", [("action", action)], count)
        }
        if let sweep = sweeper?.statistics {
            total("tessera_expiry_sweeps_total", [], sweep.runs)
            total("tessera_expiry_swept_entries_total", [], sweep.removed)
            total("tessera_expiry_sweep_failures_total", [], sweep.failures)
        }
        let increases = published.withLock { published in
            totals.map { key, entry in
                let increase = entry.value - (published[key] ?? 0)
                published[key] = entry.value
                return (entry.label, entry.dimensions, increase)
            }
        }
        for (label, dimensions, increase) in increases {
            Counter(label: label, dimensions: dimensions, factory: factory).increment(by: max(0, increase))
        }
    }

    func response() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
        )
    }
}

/// Counts every request by route pattern (never the raw path: ids would explode the label set),
/// method and status, with its latency.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: TesseraMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        // Inside the problem middleware: errors have become responses by now.
        let response = try await next(request, context)
        metrics.request(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code,
            duration: ContinuousClock.now - start
        )
        return response
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
