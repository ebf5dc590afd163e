import Foundation
import HTTPTypes
import TesseraTestSupport
import Testing

/// `--redis-fallback memory` against real processes: a redis-server killed with SIGKILL and
/// tessera itself restarted during the outage (issue 10, findings 1 and 2).
@Suite("Redis memory fallback keeps revocations (processes)")
struct FallbackDeploymentTests {
    let deployment = RedisDeploymentTests()

    func serve(_ redis: RedisServerProcess, _ directory: URL) async throws -> TesseraProcess {
        try await deployment.serve(redis, directory, ["--redis-fallback", "memory"])
    }

    func login(_ server: TesseraProcess, _ email: String) async throws -> Reply {
        let reply = try await deployment.call(server, .post, "/v1/auth/login", body: ["email": email, "password": "correct horse"])
        #expect(reply.status == .ok)
        return reply
    }

    func me(_ server: TesseraProcess, _ grant: Reply) async throws -> Reply {
        try await deployment.call(server, .get, "/v1/auth/me", bearer: grant["access_token"])
    }

    func refresh(_ server: TesseraProcess, _ grant: Reply) async throws -> Reply {
        try await deployment.call(server, .post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
    }

    /// A redis-server and one tessera with the memory fallback on it; both stopped afterwards.
    func withFallbackServer(
        appendOnly: Bool = false, _ body: (RedisServerProcess, TesseraProcess) async throws -> Void
    ) async throws {
        try await withRedisServer(options: .init(appendOnly: appendOnly)) { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory)
                try await body(redis, server)
                await server.stop()
            }
        }
    }

    func logout(_ server: TesseraProcess, _ grant: Reply) async throws -> Reply {
        try await deployment.call(server, .post, "/v1/auth/logout", bearer: grant["access_token"])
    }

    func waitForPrimary(_ server: TesseraProcess) async throws {
        let back = try await deployment.eventually(.seconds(30)) { try await deployment.call(server, .get, "/health")["mode"] == "primary" }
        #expect(back, "the instance did not return to the primary store:\n\(server.log)")
    }

    @Test func anAcknowledgedLogoutSurvivesATesseraRestartBeforeRedisReturns() async throws {
        try await withRedisServer(options: .init(appendOnly: true)) { redis in
            try await withTemporaryDirectory { directory in
                let first = try await serve(redis, directory)
                let grant = try await deployment.register(first, "restart@example.com")
                await redis.kill()
                #expect(try await logout(first, grant).status == .noContent)
                await first.stop()

                // Restarted while Redis is still down: the journal is read back.
                let second = try await serve(redis, directory)
                #expect(try await me(second, grant).code == "token_revoked")
                #expect(second.log.contains("revocations from an earlier outage"))
                let journal = directory.appendingPathComponent("tessera-fallback.journal").path
                let mode = try FileManager.default.attributesOfItem(atPath: journal)[.posixPermissions] as? Int
                #expect(mode == 0o600)

                // Redis returns with the session still in its AOF: the replay ends it there.
                try await redis.start()
                try await waitForPrimary(second)
                #expect(try await me(second, grant).code == "token_revoked")
                #expect(try await refresh(second, grant).status == .unauthorized)
                #expect(try String(contentsOfFile: journal, encoding: .utf8).isEmpty)
                await second.stop()

                // And a third instance, which never saw the outage, agrees.
                let third = try await deployment.serve(redis, directory)
                #expect(try await me(third, grant).code == "token_revoked")
                #expect(try await refresh(third, grant).status == .unauthorized)
                await third.stop()
            }
        }
    }

    @Test func aLogoutBeforeTheOutageStillHoldsDuringIt() async throws {
        try await withFallbackServer { redis, server in
            let grant = try await deployment.register(server, "known@example.com")
            #expect(try await logout(server, grant).status == .noContent)
            #expect(try await me(server, grant).code == "token_revoked")
            await redis.kill()
            #expect(try await me(server, grant).code == "token_revoked")
            #expect(try await deployment.call(server, .get, "/health")["mode"] == "fallback")
        }
    }

    /// A logout acknowledged before the outage is known only to Redis and to the instance's
    /// view; the instance keeps the view's denials in its journal when the outage starts, so a
    /// restart (here a crash) before Redis returns does not forget them.
    @Test func aLogoutBeforeTheOutageHoldsAfterACrashDuringIt() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let first = try await serve(redis, directory)
                let grant = try await deployment.register(first, "before-crash@example.com")
                let alive = try await login(first, "before-crash@example.com")
                #expect(try await logout(first, grant).status == .noContent)
                await redis.kill()
                #expect(try await me(first, grant).code == "token_revoked")
                // The instance notices the outage by itself (its probe), with no request failing.
                let switched = try await deployment.eventually(.seconds(10)) { first.log.contains("serving from the local fallback store") }
                #expect(switched)
                await first.crash()

                let second = try await serve(redis, directory)
                #expect(try await me(second, grant).code == "token_revoked")
                #expect(try await me(second, alive).status == .ok)
                await second.stop()
            }
        }
    }

    /// The same when no request met the outage before a graceful restart: the shutdown finds
    /// the store unreachable and keeps the denials then.
    @Test func aLogoutBeforeTheOutageHoldsAfterARestartThatNoRequestPrecededIt() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let first = try await serve(redis, directory)
                let grant = try await deployment.register(first, "before-restart@example.com")
                #expect(try await logout(first, grant).status == .noContent)
                await redis.kill()
                await first.stop()

                let second = try await serve(redis, directory)
                #expect(try await me(second, grant).code == "token_revoked")
                await second.stop()
            }
        }
    }

    @Test func aLogoutDuringTheOutageEndsTheWholeSessionFromBeforeIt() async throws {
        try await withFallbackServer { redis, server in
            let first = try await deployment.register(server, "session@example.com")
            // A second access token of the same session, minted before the outage.
            let second = try await refresh(server, first)
            #expect(second.status == .ok)
            await redis.kill()
            #expect(try await logout(server, second).status == .noContent)
            #expect(try await me(server, first).code == "token_revoked")
            #expect(try await me(server, second).code == "token_revoked")
        }
    }

    @Test func endingAnotherSessionDuringTheOutageRefusesItsTokens() async throws {
        try await withFallbackServer { redis, server in
            let laptop = try await deployment.register(server, "devices@example.com")
            let phone = try await login(server, "devices@example.com")
            await redis.kill()
            let ended = try await deployment.call(server, .delete, "/v1/auth/sessions/\(phone["session_id"]!)", bearer: laptop["access_token"])
            #expect(ended.status == .noContent)
            #expect(try await me(server, phone).code == "token_revoked")
            #expect(try await me(server, laptop).status == .ok)
        }
    }

    @Test func logoutAllDuringTheOutageRefusesEverySessionOfTheUser() async throws {
        // AOF: Redis comes back with the sessions, and the replayed logout-all must end them.
        try await withFallbackServer(appendOnly: true) { redis, server in
            let laptop = try await deployment.register(server, "everywhere@example.com")
            let phone = try await login(server, "everywhere@example.com")
            let bystander = try await deployment.register(server, "bystander@example.com")
            await redis.kill()
            // A session created during the outage, before the logout-all, ends too.
            let tablet = try await login(server, "everywhere@example.com")
            #expect(try await deployment.call(server, .post, "/v1/auth/logout-all", bearer: laptop["access_token"]).status == .noContent)
            for grant in [laptop, phone, tablet] {
                #expect(try await me(server, grant).code == "token_revoked")
            }
            #expect(try await me(server, bystander).status == .ok)
            // Logging in again after the logout-all works.
            let again = try await login(server, "everywhere@example.com")
            #expect(try await me(server, again).status == .ok)

            try await redis.start()
            try await waitForPrimary(server)
            #expect(try await me(server, phone).code == "token_revoked")
            #expect(try await me(server, again).status == .ok)
        }
    }

    /// A Redis kept busy by a script (alive, answering `BUSY`) is no outage: requests answer
    /// 503 with `Retry-After` and the instance never leaves the store it shares with the others.
    @Test func aBusyRedisAnswers503WithRetryAfterAndTheInstanceStaysOnRedis() async throws {
        try await withRedisServer(options: RedisServerProcess.busyAfterOneTenthOfASecond) { redis in
            try await withTemporaryDirectory { directory in
                let server = try await serve(redis, directory)
                let grant = try await deployment.register(server, "busy@example.com")
                try await redis.whileBusy {
                    let busy = try await refresh(server, grant)
                    #expect(busy.status == .serviceUnavailable)
                    #expect(busy.code == "store_unavailable")
                    #expect(busy.headers[.retryAfter] == "1")
                    // Several probe periods (0.5 s) later, still on Redis.
                    try await Task.sleep(for: .seconds(2))
                    #expect(try await refresh(server, grant).status == .serviceUnavailable)
                    #expect(try await deployment.call(server, .get, "/health")["mode"] == "primary")
                }
                // The rotation never ran, so the same refresh token still works, on Redis.
                #expect(try await refresh(server, grant).status == .ok)
                #expect(try await deployment.call(server, .get, "/health")["mode"] == "primary")
                #expect(server.log.contains("token store overloaded"))
                #expect(!server.log.contains("serving from the local fallback store"))
                await server.stop()
            }
        }
    }
}
