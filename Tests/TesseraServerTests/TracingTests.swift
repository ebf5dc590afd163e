import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import Synchronization
import Tessera
import TesseraApp
import TesseraServer
import Testing
import Tracing

/// `--otlp-endpoint`: spans go over OTLP/HTTP to a collector (here a receiver on loopback), one
/// per request named by route pattern with each store call as a child, continuing an inbound
/// `traceparent`, and no attribute holds a token or secret.
@Suite("Tracing over OTLP/HTTP")
struct TracingTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpanID = "00f067aa0ba902b7"
    static let password = "correct horse"

    @Test func requestSpansNestStoreSpansAndContinueTheCallersTrace() async throws {
        let receiver = OTLPReceiver()
        let (sessionID, tokens) = try await receiver.serving { url in
            let exporter = try TracingExporter.make(
                TracingConfiguration(endpoint: url, serviceName: "tessera-under-test"), logger: Logger(label: "otel")
            )
            let metrics = TesseraMetrics()
            var configured = try await TestTessera.make(wrapTokens: { metrics.measuring($0, tracer: exporter.tracer) })
            configured.options.tracer = exporter.tracer
            let tessera = configured
            let exporting = ServiceGroup(configuration: .init(services: [exporter.service], logger: Logger(label: "otel")))
            return try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await exporting.run() }
                let handedOut = try await tessera.test { client in
                    let traceparent = HTTPFields([HTTPField(name: HTTPField.Name("traceparent")!, value: "00-\(Self.traceID)-\(Self.callerSpanID)-01")])
                    let registered = try await client.call(
                        .post, "/v1/auth/register", body: jsonBody(["email": "traced@example.com", "password": Self.password]),
                        headers: traceparent
                    )
                    #expect(registered.status == .created)
                    let login = try await client.login("traced@example.com")
                    let refreshed = try await client.post("/v1/auth/refresh", ["refresh_token": try #require(login["refresh_token"])])
                    let session = try #require(login["session_id"])
                    let access = try #require(registered["access_token"])
                    #expect(try await client.call(.delete, "/v1/auth/sessions/\(session)", bearer: access).status == .noContent)
                    #expect(try await client.call(.post, "/v1/auth/logout", bearer: access).status == .noContent)
                    return (
                        session,
                        [registered["access_token"], registered["refresh_token"], login["access_token"], login["refresh_token"],
                            refreshed["access_token"], refreshed["refresh_token"]].compactMap { $0 }
                    )
                }
                // Shutdown exports what is still batched.
                await exporting.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return handedOut
            }
        }
        let secrets = [Self.password] + tokens
        let exports = receiver.exports
        #expect(!exports.isEmpty)
        #expect(exports.allSatisfy { $0.contentType == "application/x-protobuf" }, "\(exports.map(\.contentType))")
        let spans = receiver.spans
        #expect(spans.allSatisfy { $0.serviceName == "tessera-under-test" })

        // The inbound traceparent: the register span is its child, in its trace.
        let register = try #require(spans.first { $0.name == "/v1/auth/register" }, "\(spans.map(\.name))")
        #expect(register.traceID == Self.traceID)
        #expect(register.parentSpanID == Self.callerSpanID)
        #expect(register.kind == 2)  // SPAN_KIND_SERVER
        #expect(register.attributes["http.request.method"] == "POST")
        #expect(register.attributes["http.route"] == "/v1/auth/register")
        #expect(register.attributes["http.response.status_code"] == "201")
        #expect(register.attributes["tessera.request_id"]?.isEmpty == false)
        let createSession = spans.filter { $0.name == "store.create_session" && $0.parentSpanID == register.spanID }
        #expect(createSession.count == 1)
        #expect(createSession.first?.traceID == Self.traceID)
        #expect(createSession.first?.kind == 3)  // SPAN_KIND_CLIENT
        #expect(createSession.first?.attributes["db.system.name"] == "memory")

        // Without a traceparent each request starts its own trace, with its store calls inside.
        let refresh = try #require(spans.first { $0.name == "/v1/auth/refresh" })
        #expect(refresh.traceID != Self.traceID && refresh.parentSpanID.isEmpty)
        #expect(refresh.attributes["http.response.status_code"] == "200")
        #expect(spans.contains { $0.name == "store.rotate" && $0.parentSpanID == refresh.spanID && $0.traceID == refresh.traceID })
        // Route patterns, never raw paths: the session id stays out of span names.
        let delete = try #require(spans.first { $0.name == "/v1/auth/sessions/{id}" }, "\(spans.map(\.name))")
        #expect(delete.attributes["http.response.status_code"] == "204")
        #expect(spans.contains { $0.name == "store.revoke_session" && $0.parentSpanID == delete.spanID })
        #expect(!spans.contains { $0.name.contains(sessionID) })
        let logout = try #require(spans.first { $0.name == "/v1/auth/logout" })
        #expect(Set(spans.filter { $0.parentSpanID == logout.spanID }.map(\.name)).isSuperset(of: ["store.is_revoked", "store.end_session"]))
        // Every store span hangs under a request span.
        let requests = Set(spans.filter { $0.kind == 2 }.map(\.spanID))
        #expect(spans.filter { $0.name.hasPrefix("store.") }.allSatisfy { requests.contains($0.parentSpanID) })

        // No attribute, name or other byte of any export holds a token or the password.
        #expect(secrets.count == 7)
        for export in exports {
            let body = Data(export.body)
            for secret in secrets + ["tsr1.", "eyJ"] {
                #expect(body.range(of: Data(secret.utf8)) == nil, "\(secret.prefix(12))… in an export")
            }
        }
        for span in spans {
            for (key, value) in span.attributes {
                #expect(!secrets.contains { value.contains($0) }, "\(span.name) \(key)")
            }
        }
    }

    /// An upstream refresh (async-http-client) is a client span under the request that caused
    /// it, and its `traceparent` reaches the token endpoint, so the provider's trace joins ours.
    @Test func anUpstreamRefreshIsAClientSpanWhoseTraceparentReachesTheEndpoint() async throws {
        let receiver = OTLPReceiver()
        let endpoint = FakeTokenEndpoint()
        let secret = "client-secret-never-in-a-span"
        let presented = "upstream-refresh-token-never-in-a-span"
        let sent = try await receiver.serving { url in
            let exporter = try TracingExporter.make(
                TracingConfiguration(endpoint: url, serviceName: "tessera-under-test"), logger: Logger(label: "otel")
            )
            let exporting = ServiceGroup(configuration: .init(services: [exporter.service], logger: Logger(label: "otel")))
            return try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await exporting.run() }
                let client = HTTPUpstreamTokenClient(tracer: exporter.tracer)
                let traceparent = try await endpoint.serve { tokenURL in
                    try await Self.underSpan("caller", exporter.tracer) {
                        let tokens = try await client.refresh(
                            UpstreamRefreshRequest(endpoint: tokenURL, refreshToken: presented, clientID: "app", clientSecret: secret, scope: nil)
                        )
                        #expect(tokens.accessToken == "at-1")
                    }
                    return endpoint.state.withLock { $0.lastTraceparent }
                }
                try await client.shutdown()
                await exporting.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return traceparent
            }
        }
        let spans = receiver.spans
        let caller = try #require(spans.first { $0.name == "caller" }, "\(spans.map(\.name))")
        let upstream = try #require(spans.first { $0.name == "upstream.token_refresh" }, "\(spans.map(\.name))")
        #expect(upstream.kind == 3)  // SPAN_KIND_CLIENT
        #expect(upstream.parentSpanID == caller.spanID && upstream.traceID == caller.traceID)
        #expect(upstream.attributes["server.address"] == "127.0.0.1")
        #expect(upstream.attributes["http.response.status_code"] == "200")
        // W3C: version-traceid-spanid-flags, naming the client span as the parent.
        #expect(sent == "00-\(upstream.traceID)-\(upstream.spanID)-01")
        for export in receiver.exports {
            for value in [secret, presented, "at-1", "rt-1"] {
                #expect(Data(export.body).range(of: Data(value.utf8)) == nil, "\(value) in an export")
            }
        }
    }

    /// `body` inside a root span named `name` (an `any Tracer` opens into `T`).
    static func underSpan<T: Tracer>(_ name: String, _ tracer: T, _ body: () async throws -> Void) async throws {
        let span = tracer.startSpan(name, context: .topLevel, ofKind: .server)
        defer { span.end() }
        try await ServiceContext.$current.withValue(span.context) { try await body() }
    }

    @Test func theEndpointIsCheckedAndGetsTheTracesPath() throws {
        #expect(try TracingConfiguration(endpoint: "http://collector:4318").tracesURL() == "http://collector:4318/v1/traces")
        #expect(try TracingConfiguration(endpoint: "https://collector/").tracesURL() == "https://collector/v1/traces")
        #expect(try TracingConfiguration(endpoint: "http://collector:4318/custom/traces").tracesURL() == "http://collector:4318/custom/traces")
        #expect(throws: ConfigurationError.self) { try TracingConfiguration(endpoint: "collector:4318").tracesURL() }
        #expect(throws: ConfigurationError.self) { try TracingConfiguration(endpoint: "ftp://collector").tracesURL() }
        #expect(throws: ConfigurationError.self) { try TracingConfiguration(endpoint: "http://c:4318", sampleRatio: 1.5).tracesURL() }
        #expect(throws: ConfigurationError.self) { try TracingConfiguration(endpoint: "http://c:4318", serviceName: "").tracesURL() }
    }
}
