import Foundation
import HTTPTypes
import HummingbirdTesting
import TesseraTestSupport
import Testing

/// The tessera process on a Redis Cluster and behind Sentinel, from `--redis-url` alone.
@Suite("Redis Cluster and Sentinel deployments (processes)")
struct RedisHighAvailabilityProcessTests {
    let deployment = RedisDeploymentTests()

    func serve(_ url: String, _ directory: URL) async throws -> TesseraProcess {
        try await TesseraProcess.start(
            ["--database-url", "sqlite:\(directory.path)/users.db", "--token-store", "redis", "--redis-url", url, "--redis-timeout", "2"]
        )
    }

    /// Two instances: a logout on one is in force on the other at once, sessions are shared.
    func logoutReachesTheOtherInstance(_ url: String) async throws {
        try await withTemporaryDirectory { directory in
            let a = try await serve(url, directory)
            let b = try await serve(url, directory)
            #expect(a.log.contains("revocations acknowledged by auto replicas"))
            let grant = try await deployment.register(a, "ha@example.com")
            #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: grant["access_token"]).status == .ok)
            let refreshed = try await deployment.call(b, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
            #expect(refreshed.status == .ok)
            #expect(try await deployment.call(a, .post, "/v1/auth/logout", bearer: refreshed["access_token"]).status == .noContent)
            #expect(try await deployment.call(b, .get, "/v1/auth/me", bearer: refreshed["access_token"]).code == "token_revoked")
            await a.stop()
            await b.stop()
        }
    }

    @Test func tesseraRunsOnARedisCluster() async throws {
        try await withRedisCluster { cluster in
            try await logoutReachesTheOtherInstance(cluster.url)
        }
    }

    @Test func tesseraRunsBehindSentinel() async throws {
        try await withRedisSentinels { sentinels in
            try await logoutReachesTheOtherInstance(sentinels.url)
        }
    }
}
