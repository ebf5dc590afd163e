import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
import TesseraRESP
import TesseraRedis
import Synchronization
import TesseraApp
import TesseraServer
import TesseraTestSupport
import Testing

/// OAuth2 session credentials refreshed at a fake token endpoint on loopback, through the real
/// async-http-client implementation.
@Suite("Upstream OAuth2 credentials")
struct UpstreamCredentialTests {
    static func oauth2(_ endpoint: String, expiresIn: Int = 0, secret: String? = "s3cret") -> String {
        var body: [String: Any] = [
            "type": "oauth2", "access_token": "at-0", "refresh_token": "rt-0", "expires_in": expiresIn, "token_endpoint": endpoint,
            "client_id": "tessera-app",
        ]
        if let secret { body["client_secret"] = secret }
        return jsonBody(body)
    }

    static let path = "/v1/auth/session/credentials/idp"

    /// Registers a user and stores `credential` as `idp` on its session; returns the access token.
    static func session(_ client: any TestClientProtocol, storing credential: String) async throws -> String {
        let token = try #require(try await client.register()["access_token"])
        #expect(try await client.call(.put, path, body: credential, bearer: token).status == .noContent)
        return token
    }

    /// An in-process Tessera on memory stores whose OAuth2 credentials may use `allowed`.
    static func tessera(allowed: [String], client: HTTPUpstreamTokenClient) async throws -> TestTessera {
        try await TestTessera.make { security in
            security.upstream = UpstreamCredentials(allowedEndpoints: allowed, client: client)
        }
    }

    static func withClient<T>(timeout: Duration = .seconds(5), _ body: (HTTPUpstreamTokenClient) async throws -> T) async throws -> T {
        let client = HTTPUpstreamTokenClient(timeout: timeout)
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @Test func twoInstancesOnOneRedisMakeExactlyOneUpstreamCallFor50ConcurrentReads() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await withRedisServer { redis in
                try await Self.withClient { upstream in
                    let clock = ManualClock(Date())
                    let keys = KeyMaterial.generate(now: clock.now())
                    let secrets = SecretBox.generate()
                    let users = MemoryUserStore()
                    var policy = TokenPolicy()
                    policy.bcryptCost = 4
                    // The access token outlives the clock jumps below.
                    policy.accessTTL = 7200
                    var instances: [AuthService] = []
                    var clients: [RedisClient] = []
                    for _ in 0..<2 {
                        // Patient pools: the whole suite runs in parallel on few cores.
                        var configuration = try RedisConfiguration(url: redis.url)
                        configuration.acquireTimeout = .seconds(60)
                        configuration.commandTimeout = .seconds(30)
                        let redisClient = RedisClient(configuration: configuration)
                        clients.append(redisClient)
                        var security = AccountSecurity.local(secrets: secrets, outbox: NSTemporaryDirectory(), rateLimits: .unlimited, clock: clock)
                        security.upstream = UpstreamCredentials(allowedEndpoints: [endpoint], client: upstream)
                        instances.append(
                            try await AuthService(
                                policy: policy, users: users, tokens: RedisTokenStore(client: redisClient, keyPrefix: "up:", clock: clock), keys: keys,
                                security: security, clock: clock
                            )
                        )
                    }
                    let routers = instances.map { Application(router: TesseraHTTP.router(service: $0)) }
                    try await routers[0].test(.router) { first in
                        try await routers[1].test(.router) { second in
                            let token = try #require(try await first.register()["access_token"])
                            let stored = try await first.call(.put, Self.path, body: Self.oauth2(endpoint), bearer: token)
                            #expect(stored.status == .noContent)

                            let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                                for index in 0..<50 {
                                    group.addTask {
                                        try await (index.isMultiple(of: 2) ? first : second).call(.get, Self.path, bearer: token)
                                    }
                                }
                                return try await group.reduce(into: []) { $0.append($1) }
                            }
                            #expect(fake.calls == 1)
                            #expect(replies.count == 50)
                            #expect(
                                replies.allSatisfy { $0.status == .ok && $0["access_token"] == "at-1" },
                                "\(replies.filter { $0.status != .ok }.map { "\($0.status.code) \($0.code ?? "")" })"
                            )
                            #expect(replies.allSatisfy { $0.json["expires_in"] as? Int == 3600 && $0["token_type"] == "Bearer" })
                            #expect(fake.presented == ["rt-0"])
                            #expect(fake.state.withLock { $0.lastAuthorization } == "Basic " + Data("tessera-app:s3cret".utf8).base64EncodedString())

                            // Fresh: served from the store, no upstream call.
                            #expect(try await second.call(.get, Self.path, bearer: token)["access_token"] == "at-1")
                            #expect(fake.calls == 1)

                            // Due again: the rotated refresh token is the one presented.
                            clock.advance(by: 3600 - 59)
                            let again = try await second.call(.get, Self.path, bearer: token)
                            #expect(again["access_token"] == "at-2")
                            #expect(fake.presented == ["rt-0", "rt-1"])
                        }
                    }
                    for client in clients { await client.shutdown() }
                }
            }
        }
    }

    /// The same through two real `tessera serve` processes on one Redis, configured by their flags.
    @Test func twoTesseraProcessesOnOneRedisRefreshOnce() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await withRedisServer { redis in
                try await withTemporaryDirectory { directory in
                    let origin = String(endpoint.dropLast("token".count))
                    let arguments = [
                        "--database-url", "sqlite:\(directory.path)/users.db", "--token-store", "redis", "--redis-url", redis.url,
                        "--upstream-token-endpoints", origin, "--redis-timeout", "10",
                    ]
                    // A first, so that B loads the key files A created beside the database.
                    let a = try await TesseraProcess.start(arguments)
                    let b = try await TesseraProcess.start(arguments)
                    let deployment = RedisDeploymentTests()
                    let token = try #require(try await deployment.register(a, "upstream@example.com")["access_token"])
                    let stored = try await TestClient.withClient(host: "127.0.0.1", port: a.port) { client in
                        try await client.call(.put, Self.path, body: Self.oauth2(endpoint), bearer: token)
                    }
                    #expect(stored.status == .noContent)
                    let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                        for index in 0..<50 {
                            let port = index.isMultiple(of: 2) ? a.port : b.port
                            group.addTask {
                                try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                                    try await client.call(.get, Self.path, bearer: token)
                                }
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                    #expect(fake.calls == 1)
                    #expect(replies.allSatisfy { $0.status == .ok && $0["access_token"] == "at-1" })
                    await a.stop()
                    await b.stop()
                }
            }
        }
    }

    @Test func aDeadLeaseHolderDelaysOthersOnlyUntilItsLeaseEnds() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await Self.withClient { upstream in
                let tessera = try await Self.tessera(allowed: [endpoint], client: upstream)
                try await tessera.test { client in
                    let grant = try await client.register()
                    let token = try #require(grant["access_token"])
                    let claims = try tessera.service.accessTokens.verify(token, now: tessera.clock.now())
                    #expect(try await client.call(.put, Self.path, body: Self.oauth2(endpoint), bearer: token).status == .noContent)
                    // A refresher that took the lease and died before finishing.
                    let leaseTTL = try #require(tessera.service.security.upstream?.leaseTTL)
                    #expect(
                        try await tessera.service.tokens.acquireCredentialLease(
                            named: "idp", sessionID: claims.sid, userID: claims.sub, fence: "dead-holder", ttl: leaseTTL
                        )
                    )
                    let reader = Task { try await client.call(.get, Self.path, bearer: token) }
                    try await Task.sleep(for: .milliseconds(300))
                    #expect(fake.calls == 0, "the lease is still held: nobody may refresh")
                    tessera.clock.advance(by: leaseTTL)
                    let reply = try await reader.value
                    #expect(reply.status == .ok)
                    #expect(reply["access_token"] == "at-1")
                    #expect(fake.calls == 1)
                }
            }
        }
    }

    @Test func invalidGrantMarksTheCredentialDeadUntilItIsReplaced() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await Self.withClient { upstream in
                let tessera = try await Self.tessera(allowed: [endpoint], client: upstream)
                try await tessera.test { client in
                    let token = try await Self.session(client, storing: Self.oauth2(endpoint))
                    fake.set(.invalidGrant)
                    // Readers arriving while the refused refresh is in flight get its answer.
                    let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                        for _ in 0..<10 { group.addTask { try await client.call(.get, Self.path, bearer: token) } }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                    #expect(replies.allSatisfy { $0.status == .conflict && $0.code == "upstream_refresh_failed" })
                    #expect(fake.calls == 1)
                    // Dead: answered without asking the provider again.
                    #expect(try await client.call(.get, Self.path, bearer: token).code == "upstream_refresh_failed")
                    #expect(fake.calls == 1)

                    fake.set(.rotate(expiresIn: 3600))
                    #expect(try await client.call(.put, Self.path, body: Self.oauth2(endpoint), bearer: token).status == .noContent)
                    #expect(try await client.call(.get, Self.path, bearer: token)["access_token"] == "at-2")
                }
            }
        }
    }

    @Test(arguments: [FakeTokenEndpoint.Mode.serverError, .slow(Duration.seconds(12)), .oversized, .redirect])
    func upstreamFailuresAre502AndLeaveTheCredentialUnchanged(mode: FakeTokenEndpoint.Mode) async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            // 5 s: long enough for a machine loaded by the whole suite to answer (2 s was not),
            // far shorter than the slow endpoint.
            try await Self.withClient(timeout: .seconds(5)) { upstream in
                let tessera = try await Self.tessera(allowed: [endpoint], client: upstream)
                try await tessera.test { client in
                    let token = try await Self.session(client, storing: Self.oauth2(endpoint, secret: nil))
                    fake.set(mode)
                    let failed = try await client.call(.get, Self.path, bearer: token)
                    #expect(failed.status == .badGateway)
                    #expect(failed.code == "upstream_unavailable")
                    // Unchanged: once the provider is back, the original refresh token still works.
                    fake.set(.rotate(expiresIn: 3600))
                    let recovered = try await client.call(.get, Self.path, bearer: token)
                    #expect(recovered.status == .ok)
                    #expect(recovered["access_token"] == "at-2")
                    #expect(fake.presented == ["rt-0", "rt-0"])
                }
            }
        }
    }

    @Test func aFreshCredentialIsServedWithoutAnUpstreamCall() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await Self.withClient { upstream in
                let tessera = try await Self.tessera(allowed: [endpoint], client: upstream)
                try await tessera.test { client in
                    let token = try await Self.session(client, storing: Self.oauth2(endpoint, expiresIn: 600))
                    tessera.clock.advance(by: 100)
                    let reply = try await client.call(.get, Self.path, bearer: token)
                    #expect(reply.json as NSDictionary == ["access_token": "at-0", "expires_in": 500, "token_type": "Bearer"] as NSDictionary)
                    #expect(reply.headers[.cacheControl] == "no-store")
                    #expect(fake.calls == 0)
                    // Inside the minimum validity (60 s): refreshed first.
                    tessera.clock.advance(by: 450)
                    #expect(try await client.call(.get, Self.path, bearer: token)["access_token"] == "at-1")
                    #expect(fake.calls == 1)
                    // Secrets never come back out.
                    let body = String(decoding: try await client.call(.get, Self.path, bearer: token).body, as: UTF8.self)
                    #expect(!body.contains("rt-") && !body.contains("s3cret"))
                }
            }
        }
    }

    /// `expires_in` is any non-negative integer; the largest used to trap the server when the
    /// credential was read (its seconds left did not fit back into an Int).
    @Test func aHugeLifetimeIsServedCapped() async throws {
        let fake = FakeTokenEndpoint()
        try await fake.serve { endpoint in
            try await Self.withClient { upstream in
                let tessera = try await Self.tessera(allowed: [endpoint], client: upstream)
                try await tessera.test { client in
                    let token = try await Self.session(client, storing: Self.oauth2(endpoint, expiresIn: Int.max))
                    let reply = try await client.call(.get, Self.path, bearer: token)
                    #expect(reply.status == .ok)
                    #expect(reply.json["expires_in"] as? Int == Int(Int32.max))
                    #expect(fake.calls == 0)
                }
            }
        }
    }

    @Test func theSSRFGuardRefusesEndpointsOutsideTheAllowedPrefixes() async throws {
        try await Self.withClient { upstream in
            let tessera = try await Self.tessera(allowed: ["https://idp.example.com/oauth/"], client: upstream)
            try await tessera.test { client in
                let token = try #require(try await client.register()["access_token"])
                for endpoint in [
                    "http://127.0.0.1:9/token", "https://idp.example.com.evil.test/oauth/token", "https://idp.example.com/other/token",
                    "https://user@idp.example.com/oauth/token", "https://idp.example.com/oauth/../admin", "ftp://idp.example.com/oauth/token",
                ] {
                    let reply = try await client.call(.put, Self.path, body: Self.oauth2(endpoint), bearer: token)
                    #expect(reply.status == .unprocessableContent, "\(endpoint)")
                    #expect(reply.code == "invalid_request")
                }
                let allowed = try await client.call(
                    .put, Self.path, body: Self.oauth2("https://idp.example.com/oauth/token", expiresIn: 3600), bearer: token
                )
                #expect(allowed.status == .noContent)
            }
            // Not configured: OAuth2 credentials are refused, opaque ones still work.
            let plain = try await TestTessera.make()
            try await plain.test { client in
                let token = try #require(try await client.register()["access_token"])
                let reply = try await client.call(.put, Self.path, body: Self.oauth2("https://idp.example.com/oauth/token"), bearer: token)
                #expect(reply.status == .unprocessableContent)
                #expect(try await client.call(.put, Self.path, body: #"{"type":"opaque"}"#, bearer: token).status == .noContent)
            }
        }
    }

    @Test func allowedPrefixesAreParsedStrictly() {
        #expect(UpstreamCredentials.allowedPrefix("https://idp.example.com") == "https://idp.example.com/")
        #expect(UpstreamCredentials.allowedPrefix("https://idp.example.com/oauth/") == "https://idp.example.com/oauth/")
        #expect(UpstreamCredentials.allowedPrefix("idp.example.com") == nil)
        #expect(UpstreamCredentials.allowedPrefix("https://u:p@idp.example.com/") == nil)
        #expect(UpstreamCredentials.allowedPrefix("https://idp.example.com/?a=1") == nil)
        #expect(UpstreamCredentials.allowedPrefix("file:///etc/passwd") == nil)
    }
}
