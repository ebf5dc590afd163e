import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraServer
import TesseraTestSupport
import Testing

/// Forward-auth on the Redis token store with the local revocation view and the per-instance
/// user cache, as `tessera serve --token-store redis` wires them.
@Suite("Forward-auth on Redis")
struct ForwardAuthRedisTests {
    /// Every command Redis has executed but the subscription's heartbeat PINGs and our INFO.
    static func commands(_ admin: RedisClient) async throws -> Int {
        let info = try await admin.send(["INFO", "commandstats"]).string ?? ""
        return info.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("cmdstat_") && !$0.hasPrefix("cmdstat_ping:") && !$0.hasPrefix("cmdstat_info:") }
            .compactMap { line in line.split(separator: "=").dropFirst().first.flatMap { Int($0.prefix { $0.isNumber }) } }
            .reduce(0, +)
    }

    @Test func checksInSteadyStateSendNoRedisCommandAndALogoutIsSeen() async throws {
        try await withRedisServer { redis in
            let client = try RedisClient(url: redis.url)
            let admin = try RedisClient(url: redis.url)
            // A long lease: a starved test process answers heartbeats late (as in the view's own tests).
            let view = RevocationView(client: client, keyPrefix: "fa:", heartbeatInterval: .milliseconds(100), lease: .seconds(30))
            let running = Task { try await view.run() }
            defer { running.cancel() }
            let store = RedisTokenStore(client: client, keyPrefix: "fa:", revocations: view)
            var policy = TokenPolicy()
            policy.bcryptCost = 4
            var security = AccountSecurity.local(secrets: .generate(), outbox: NSTemporaryDirectory(), rateLimits: .unlimited)
            security.userCache = SubscribedUserCache(
                shared: RedisUserCache(client: client, keyPrefix: "fa:", invalidationChannel: view.channel), view: view
            )
            let service = try await AuthService(policy: policy, users: MemoryUserStore(), tokens: store, keys: .generate(), security: security)
            let deadline = ContinuousClock.now + .seconds(45)
            while !view.isTrusted, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(view.isTrusted)

            try await Application(router: TesseraHTTP.router(service: service)).test(.router) { http in
                let token = try #require(try await http.register()["access_token"])
                // Warm-up: the first check verifies the signature and fills the shared user cache,
                // the second copies the user into this instance's cache.
                for _ in 0..<2 { #expect(try await http.call(.get, "/v1/authz/check", bearer: token).status == .ok) }
                let before = try await Self.commands(admin)
                for _ in 0..<50 {
                    #expect(try await http.call(.get, "/v1/authz/check/app", bearer: token).status == .ok)
                }
                #expect(try await Self.commands(admin) == before, "forward-auth checks must not touch Redis in steady state")

                #expect(try await http.call(.post, "/v1/auth/logout", bearer: token).status == .noContent)
                var refused = false
                for _ in 0..<40 where !refused {
                    refused = try await http.call(.get, "/v1/authz/check", bearer: token).status == .unauthorized
                    if !refused { try await Task.sleep(for: .milliseconds(50)) }
                }
                #expect(refused)
            }
            await admin.shutdown()
            await client.shutdown()
        }
    }
}
