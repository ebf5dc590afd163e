import Foundation
import HTTPTypes
import TesseraRESP
import TesseraTestSupport
import Testing

/// Two real tessera processes on one Redis (and one SQLite user file): a logout on A is
/// enforced by B, which validates from its local revocation view, also after B's subscription
/// was killed. Deadlines are bounds, not measurements (see BENCHMARKS.md for those).
@Suite("Revocation propagation between instances (processes)")
struct RevocationPropagationTests {
    @Test func aLogoutOnAIsEnforcedByBAlsoAfterItsSubscriptionWasKilled() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let arguments = ["--database-url", "sqlite:\(directory.path)/users.db", "--token-store", "redis", "--redis-url", redis.url]
                let a = try await TesseraProcess.start(arguments)
                let b = try await TesseraProcess.start(arguments)
                #expect(b.log.contains("local revocations"))
                let deployment = RedisDeploymentTests()
                let first = try await deployment.register(a, "propagate@example.com")
                let second = try await deployment.call(a, .post, "/v1/auth/login", body: ["email": "propagate@example.com", "password": "correct horse"])
                #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: first["access_token"]).status == .ok)
                #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: second["access_token"]).status == .ok)

                #expect(try await deployment.call(a, .post, "/v1/auth/logout", bearer: first["access_token"]).status == .noContent)
                let seen = try await deployment.eventually(.seconds(2)) {
                    try await deployment.call(b, .get, "/v1/auth/me", bearer: first["access_token"]).code == "token_revoked"
                }
                #expect(seen)

                // Kill every pub/sub connection (A's and B's), then log out on A at once: B
                // missed the message, yet never accepts the token (Redis, then its reload).
                let admin = try RedisClient(url: redis.url)
                #expect((try await admin.send(["CLIENT", "KILL", "TYPE", "pubsub"]).int ?? 0) >= 2)
                #expect(try await deployment.call(a, .post, "/v1/auth/logout", bearer: second["access_token"]).status == .noContent)
                let stillRejected = try await deployment.eventually(.seconds(2)) {
                    try await deployment.call(b, .get, "/v1/auth/me", bearer: second["access_token"]).code == "token_revoked"
                }
                #expect(stillRejected)
                // Once resubscribed, B keeps rejecting it.
                let resubscribed = try await deployment.eventually(.seconds(10)) {
                    (try await admin.send(["PUBSUB", "NUMSUB", "tessera:revocations"]).stringMap?["tessera:revocations"]?.int ?? 0) >= 2
                }
                #expect(resubscribed)
                #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: second["access_token"]).code == "token_revoked")
                await admin.shutdown()
                await a.stop()
                await b.stop()
            }
        }
    }
}
