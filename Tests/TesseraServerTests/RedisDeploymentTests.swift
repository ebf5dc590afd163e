import Foundation
import HTTPTypes
import HummingbirdTesting
import TesseraRESP
import TesseraTestSupport
import Testing

/// Real processes on loopback: redis-server and tessera, started and stopped by the tests.
@Suite("Redis deployment (processes)")
struct RedisDeploymentTests {
    func serve(_ redis: RedisServerProcess, _ directory: URL, _ extra: [String] = []) async throws -> TesseraProcess {
        try await TesseraProcess.start(
            ["--database-url", "sqlite:\(directory.path)/users.db", "--token-store", "redis", "--redis-url", redis.url, "--redis-timeout", "1"]
                + extra
        )
    }

    func register(_ server: TesseraProcess, _ email: String) async throws -> Reply {
        let reply = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
            try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": email, "password": "correct horse"]))
        }
        #expect(reply.status == .created)
        return reply
    }

    func call(_ server: TesseraProcess, _ method: HTTPRequest.Method, _ uri: String, body: [String: Any]? = nil, bearer: String? = nil) async throws -> Reply {
        try await server.call(method, uri, body: body, bearer: bearer)
    }

    func eventually(_ limit: Duration = .seconds(15), _ condition: () async throws -> Bool) async throws -> Bool {
        try await TesseraServerTests.eventually(limit, condition)
    }

    @Test func sessionsSurviveATesseraRestartOnRedis() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let first = try await serve(redis, directory)
                #expect(first.log.contains("tokens: redis redis://127.0.0.1:\(redis.port)"))
                let grant = try await register(first, "restart@example.com")
                await first.stop()
                let second = try await serve(redis, directory)
                #expect(try await call(second, .get, "/v1/auth/me", bearer: grant["access_token"]).status == .ok)
                let refreshed = try await call(second, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
                #expect(refreshed.status == .ok)
                #expect(refreshed["session_id"] == grant["session_id"])
                await second.stop()
            }
        }
    }

    @Test func tokensSurviveARedisRestartWithAOF() async throws {
        try await withRedisServer(options: .init(appendOnly: true)) { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory)
                let grant = try await register(server, "aof@example.com")
                let loggedOut = try await register(server, "aof-out@example.com")
                #expect(try await call(server, .post, "/v1/auth/logout", bearer: loggedOut["access_token"]).status == .noContent)
                await redis.stop()
                try await redis.start()
                let ok = try await eventually { try await call(server, .get, "/health").status == .ok }
                #expect(ok)
                #expect(try await call(server, .get, "/v1/auth/me", bearer: grant["access_token"]).status == .ok)
                #expect(try await call(server, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!]).status == .ok)
                // Revocations survive too.
                #expect(try await call(server, .get, "/v1/auth/me", bearer: loggedOut["access_token"]).code == "token_revoked")
                await server.stop()
            }
        }
    }

    @Test func theSessionReallyLivesInRedis() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory, ["--redis-key-prefix", "app1:"])
                let grant = try await register(server, "keys@example.com")
                let userID = try #require((grant.json["user"] as? [String: Any])?["id"] as? String)
                let sessionID = try #require(grant["session_id"])
                let client = try RedisClient(url: redis.url)
                let sessionKey = RESPArgument("app1:{u:\(userID)}:s:\(sessionID)")
                #expect(try await client.send(["EXISTS", sessionKey]).int == 1)
                #expect(try await client.send(["HGET", sessionKey, "g"]).string == "1")
                // No token material anywhere in Redis.
                let dump = try await client.send(["HGETALL", sessionKey]).description
                #expect(!dump.contains(grant["refresh_token"]!.split(separator: ".").last!))
                #expect(try await call(server, .post, "/v1/auth/logout", bearer: grant["access_token"]).status == .noContent)
                #expect(try await client.send(["EXISTS", sessionKey]).int == 0)
                #expect(try await client.send(["EXISTS", RESPArgument("app1:{u:\(userID)}:deny:sid:\(sessionID)")]).int == 1)
                await client.shutdown()
                await server.stop()
            }
        }
    }

    @Test func withoutFallbackAnOutageIsA503AndFailsClosed() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory)
                let grant = try await register(server, "down@example.com")
                await redis.kill()
                let health = try await call(server, .get, "/health")
                #expect(health.status == .serviceUnavailable)
                #expect(health["status"] == "down")
                let started = ContinuousClock.now
                let me = try await call(server, .get, "/v1/auth/me", bearer: grant["access_token"])
                // A token that cannot be checked against the denylist is not accepted.
                #expect(me.status == .serviceUnavailable)
                #expect(me.code == "store_unavailable")
                // Promptly, not after a hang: the bound leaves room for a machine loaded by the suite.
                #expect(ContinuousClock.now - started < .seconds(15))
                #expect(try await call(server, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!]).code == "store_unavailable")
                #expect(try await call(server, .post, "/v1/auth/login", body: ["email": "down@example.com", "password": "correct horse"]).code == "store_unavailable")
                try await redis.start()
                let back = try await eventually { try await call(server, .get, "/v1/auth/me", bearer: grant["access_token"]).status == .ok }
                #expect(back)
                #expect(try await call(server, .get, "/health")["status"] == "ok")
                await server.stop()
            }
        }
    }

    /// A logout this instance saw stays refused while Redis is down and after it comes back
    /// without its data (no persistence), before the view has reloaded: what the view holds is
    /// proof even when it cannot vouch for being complete.
    @Test func withoutFallbackAKnownLogoutStaysRefusedThroughAnOutageAndAnEmptyRestart() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory)
                let grant = try await register(server, "known-down@example.com")
                let other = try await register(server, "other-down@example.com")
                #expect(try await call(server, .post, "/v1/auth/logout", bearer: grant["access_token"]).status == .noContent)
                await redis.kill()
                #expect(try await call(server, .get, "/v1/auth/me", bearer: grant["access_token"]).code == "token_revoked")
                // A token the view knows nothing against still cannot be checked.
                #expect(try await call(server, .get, "/v1/auth/me", bearer: other["access_token"]).code == "store_unavailable")
                try await redis.start()
                #expect(try await call(server, .get, "/v1/auth/me", bearer: grant["access_token"]).code == "token_revoked")
                await server.stop()
            }
        }
    }

    @Test func withMemoryFallbackTheInstanceServesAndWritesRevocationsBack() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory, ["--redis-fallback", "memory"])
                let before = try await register(server, "before@example.com")
                _ = try await register(server, "during@example.com")
                await redis.kill()

                // The first request that needs Redis switches to the fallback.
                #expect(try await call(server, .post, "/v1/auth/logout", bearer: before["access_token"]).status == .noContent)
                let health = try await call(server, .get, "/health")
                #expect(health.status == .ok)
                #expect(health["status"] == "degraded" && health["mode"] == "fallback")
                #expect(try await call(server, .get, "/v1/auth/me", bearer: before["access_token"]).code == "token_revoked")
                // Sessions from before the outage are out of reach, not invalid.
                #expect(try await call(server, .post, "/v1/auth/refresh", body: ["refresh_token": before["refresh_token"]!]).code == "store_unavailable")
                // New sessions work during the outage.
                let during = try await call(server, .post, "/v1/auth/login", body: ["email": "during@example.com", "password": "correct horse"])
                #expect(during.status == .ok)
                let rotated = try await call(server, .post, "/v1/auth/refresh", body: ["refresh_token": during["refresh_token"]!])
                #expect(rotated.status == .ok)
                #expect(server.log.contains("serving from the local fallback store"))

                try await redis.start()
                let recovered = try await eventually { try await call(server, .get, "/health")["mode"] == "primary" }
                #expect(recovered)
                #expect(server.log.contains("back on the primary store"))
                // The logout made during the outage reached Redis: a fresh instance sees it.
                let other = try await serve(redis, directory)
                #expect(try await call(other, .get, "/v1/auth/me", bearer: before["access_token"]).code == "token_revoked")
                #expect(try await call(other, .post, "/v1/auth/refresh", body: ["refresh_token": before["refresh_token"]!]).status == .unauthorized)
                // The session created during the outage was written through, at its latest generation.
                let next = try await call(other, .post, "/v1/auth/refresh", body: ["refresh_token": rotated["refresh_token"]!])
                #expect(next.status == .ok)
                #expect(next["session_id"] == during["session_id"])
                await other.stop()
                await server.stop()
            }
        }
    }
}

@Suite("Two instances on Redis + PostgreSQL (processes)")
struct SharedDeploymentTests {
    @Test func instancesShareSessionsAndRevocations() async throws {
        try await withRedisServer { redis in
            try await withPostgresServer { postgres in
                try await withTemporaryDirectory { directory in
                    let arguments = [
                        "--database-url", postgres.url, "--token-store", "redis", "--redis-url", redis.url,
                        "--key-file", "\(directory.path)/shared.key", "--encryption-key-file", "\(directory.path)/shared-encryption.key",
                        "--redis-timeout", "1", "--rate-limit-login-account", "3/3600",
                    ]
                    let a = try await TesseraProcess.start(arguments)
                    let b = try await TesseraProcess.start(arguments)
                    #expect(a.log.contains("users: postgres"))
                    let deployment = RedisDeploymentTests()

                    // Register on A, refresh on B, log out on B: A rejects the access token.
                    let grant = try await deployment.register(a, "shared@example.com")
                    let refreshed = try await deployment.call(b, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
                    #expect(refreshed.status == .ok)
                    #expect(try await deployment.call(a, .get, "/v1/auth/me", bearer: refreshed["access_token"]).status == .ok)
                    #expect(try await deployment.call(b, .post, "/v1/auth/logout", bearer: refreshed["access_token"]).status == .noContent)
                    // Another instance learns of a revocation through pub/sub: within a bounded time.
                    let seenOnA = try await eventually(.seconds(2)) {
                        try await deployment.call(a, .get, "/v1/auth/me", bearer: refreshed["access_token"]).code == "token_revoked"
                    }
                    #expect(seenOnA)

                    // A user registered on A logs in on B; logout-all on A ends B's sessions.
                    let onB = try await deployment.call(b, .post, "/v1/auth/login", body: ["email": "shared@example.com", "password": "correct horse"])
                    #expect(onB.status == .ok)
                    let onA = try await deployment.call(a, .post, "/v1/auth/login", body: ["email": "shared@example.com", "password": "correct horse"])
                    #expect(try await deployment.call(a, .post, "/v1/auth/logout-all", bearer: onA["access_token"]).status == .noContent)
                    let seenOnB = try await eventually(.seconds(2)) {
                        try await deployment.call(b, .get, "/v1/auth/me", bearer: onB["access_token"]).code == "token_revoked"
                    }
                    #expect(seenOnB)
                    #expect(try await deployment.call(b, .post, "/v1/auth/refresh", body: ["refresh_token": onB["refresh_token"]!]).code == "invalid_refresh_token")
                    // The email is taken on both: one user table.
                    let again = try await deployment.call(b, .post, "/v1/auth/register", body: ["email": "shared@example.com", "password": "correct horse"])
                    #expect(again.code == "email_taken")

                    // One login budget for both instances: 3 an hour per account, wherever they land.
                    _ = try await deployment.register(a, "budget@example.com")
                    let login = ["email": "budget@example.com", "password": "correct horse"]
                    for instance in [a, b, a] {
                        #expect(try await deployment.call(instance, .post, "/v1/auth/login", body: login).status == .ok)
                    }
                    let refused = try await deployment.call(b, .post, "/v1/auth/login", body: login)
                    #expect(refused.status == .tooManyRequests)
                    #expect(refused.code == "rate_limited")

                    // One user cache: B has the user cached (locally, fed by the revocation channel);
                    // MFA turned on through A shows on B within the same bound as a revocation.
                    let cached = try await deployment.register(a, "cached@example.com")
                    #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: cached["access_token"]).json["mfa_enabled"] as? Bool == false)
                    let secret = try #require(try await deployment.call(a, .post, "/v1/auth/mfa/enroll", body: ["password": "correct horse"], bearer: cached["access_token"])["secret"])
                    let code = TestTOTP.code(secret: secret, at: Date())
                    #expect(try await deployment.call(a, .post, "/v1/auth/mfa/confirm", body: ["code": code, "password": "correct horse"], bearer: cached["access_token"]).status == .ok)
                    let changeSeenOnB = try await eventually(.seconds(2)) {
                        try await deployment.call(b, .get, "/v1/auth/me", bearer: cached["access_token"]).json["mfa_enabled"] as? Bool == true
                    }
                    #expect(changeSeenOnB)
                    // The code just used is refused on the other instance too (shared replay guard).
                    let challenge = try await deployment.call(b, .post, "/v1/auth/login", body: ["email": "cached@example.com", "password": "correct horse"])
                    let replay = try await deployment.call(b, .post, "/v1/auth/mfa/verify", body: ["mfa_token": challenge["mfa_token"]!, "code": code])
                    #expect(replay.code == "invalid_mfa_code")
                    await a.stop()
                    await b.stop()
                }
            }
        }
    }
}
