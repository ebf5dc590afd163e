import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Tessera
import TesseraServer
import Testing

/// One HTTP answer, decoded for assertions.
struct Reply: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: Data

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var code: String? { json["code"] as? String }
    subscript(_ key: String) -> String? { json[key] as? String }
}

func jsonBody(_ object: [String: Any]) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
}

extension TestClientProtocol {
    func call(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, bearer: String? = nil, headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let bearer { headers[.authorization] = "Bearer \(bearer)" }
        headers.append(contentsOf: extra)
        return try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            Reply(status: response.status, headers: response.headers, body: Data(response.body.readableBytesView))
        }
    }

    func post(_ uri: String, _ object: [String: Any], bearer: String? = nil) async throws -> Reply {
        try await call(.post, uri, body: jsonBody(object), bearer: bearer)
    }
}

extension TestClient {
    func call(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil, bearer: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let bearer { headers[.authorization] = "Bearer \(bearer)" }
        let response = try await execute(.init(uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }))
        return Reply(status: response.status, headers: response.headers, body: Data((response.body ?? ByteBuffer()).readableBytesView))
    }
}

/// An in-process Tessera on memory stores, a manual clock and cheap bcrypt. Messages go to a
/// fresh outbox directory; rate limits are off unless a test asks for them. With `logs`, every
/// logger (the service's, the audit log, the HTTP server's) writes there.
struct TestTessera {
    let clock: ManualClock
    let service: AuthService
    let outbox: String
    var options = TesseraHTTP.Options()
    var logs: LogCapture?

    static func make(
        grace: TimeInterval = 10, accessTTL: TimeInterval = 900, rateLimits: RateLimitPolicy = .unlimited, logs: LogCapture? = nil,
        adjust: (inout AccountSecurity) -> Void = { _ in }, wrapTokens: (any TokenStore) -> any TokenStore = { $0 }
    ) async throws -> TestTessera {
        let clock = ManualClock(Date())
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        policy.refreshReuseGrace = grace
        policy.accessTTL = accessTTL
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-outbox-\(UUID().uuidString)").path
        var security = AccountSecurity.local(secrets: .generate(), outbox: outbox, rateLimits: rateLimits, clock: clock)
        adjust(&security)
        let service = try await AuthService(
            policy: policy, users: MemoryUserStore(), tokens: wrapTokens(MemoryTokenStore(clock: clock)), keys: .generate(), security: security,
            clock: clock, logger: logs?.logger("tessera") ?? Logger(label: "tessera"),
            audit: AuditLog(logger: logs?.logger(AuditLog.label) ?? Logger(label: AuditLog.label))
        )
        return TestTessera(clock: clock, service: service, outbox: outbox, logs: logs)
    }

    /// `.live` when the test needs a real peer address (trusted proxies).
    func test<Value>(
        _ setup: TestingSetup = .router, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Value
    ) async throws -> Value {
        let app = Application(router: TesseraHTTP.router(service: service, options: options), logger: logs?.logger("hummingbird"))
        return try await app.test(setup) { client in try await body(client) }
    }
}

extension TestClientProtocol {
    /// Registers a fresh user; returns the token response.
    func register(_ email: String = "user-\(UUID().uuidString.prefix(8))@example.com", password: String = "correct horse") async throws -> Reply {
        let reply = try await post("/v1/auth/register", ["email": email, "password": password])
        #expect(reply.status == .created)
        return reply
    }
}
