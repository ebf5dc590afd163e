import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// The real binary, as a user runs it.
@Suite("tessera serve (process)")
struct ProcessTests {
    @Test func sessionsSurviveARestartOnSQLite() async throws {
        try await withTemporaryDirectory { directory in
            let database = "sqlite:\(directory.path)/tessera.db"
            let first = try await TesseraProcess.start(["--database-url", database])
            #expect(first.log.contains("tokens: sqlite"))
            #expect(first.log.contains("created"))
            let grant = try await TestClient.withClient(host: "127.0.0.1", port: first.port) { client in
                try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": "restart@example.com", "password": "correct horse"]))
            }
            #expect(grant.status == .created)
            let credential = #"{"access_token":"from-the-identity-provider"}"#
            let stored = try await TestClient.withClient(host: "127.0.0.1", port: first.port) { client in
                try await client.call(.put, "/v1/auth/session/credentials/idp", body: credential, bearer: grant["access_token"])
            }
            #expect(stored.status == .noContent)
            await first.stop()
            #expect(first.process.terminationStatus == 0)

            // The key file is created with mode 0600 beside the database.
            let keyMode = try FileManager.default.attributesOfItem(atPath: "\(directory.path)/tessera.key")[.posixPermissions] as? Int
            #expect(keyMode == 0o600)

            let second = try await TesseraProcess.start(["--database-url", database])
            defer { Task { await second.stop() } }
            #expect(second.log.contains("loaded"))
            try await TestClient.withClient(host: "127.0.0.1", port: second.port) { client in
                // The access token minted before the restart still verifies (same key).
                #expect(try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"]).status == .ok)
                // Session credentials survive too, and still open (same encryption key file).
                let read = try await client.call(.get, "/v1/auth/session/credentials/idp", bearer: grant["access_token"])
                #expect(String(decoding: read.body, as: UTF8.self) == credential)
                let refreshed = try await client.call(.post, "/v1/auth/refresh", body: jsonBody(["refresh_token": grant["refresh_token"]!]))
                #expect(refreshed.status == .ok)
                #expect(refreshed["session_id"] == grant["session_id"])
                let login = try await client.call(.post, "/v1/auth/login", body: jsonBody(["email": "restart@example.com", "password": "correct horse"]))
                #expect(login.status == .ok)
            }
            await second.stop()
        }
    }

    @Test func environmentVariablesConfigureTheServer() async throws {
        try await withTemporaryDirectory { directory in
            let server = try await TesseraProcess.start(
                [], environment: ["TESSERA_DATABASE_URL": "memory:", "TESSERA_TOKEN_STORE": "memory", "TESSERA_ACCESS_TTL": "120"]
            )
            #expect(server.log.contains("tokens: memory"))
            let grant = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": "env@example.com", "password": "correct horse"]))
            }
            #expect(grant.json["expires_in"] as? Int == 120)
            await server.stop()
        }
    }

    @Test func anyUserStoreCombinesWithTheSQLiteTokenStore() async throws {
        try await withTemporaryDirectory { directory in
            let server = try await TesseraProcess.start(
                ["--database-url", "memory:", "--token-store", "sqlite", "--key-file", "\(directory.path)/k.key"], directory: directory
            )
            #expect(server.log.contains("tokens: sqlite tessera-tokens.db"))
            let grant = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": "combo@example.com", "password": "correct horse"]))
            }
            #expect(grant.status == .created)
            #expect(FileManager.default.fileExists(atPath: "\(directory.path)/tessera-tokens.db"))
            await server.stop()
        }
    }

    @Test(arguments: [
        (["serve", "--token-store", "nosuch"], "unknown token store"),
        (["serve", "--database-url", "mysql://x"], "unsupported database URL"),
        (["serve", "--bcrypt-cost", "99"], "bcrypt cost"),
        (["serve", "--access-ttl", "0"], "access TTL"),
        (["serve", "--rate-limit-login", "ten per minute"], "TESSERA_RATE_LIMIT_LOGIN='ten per minute' is not a rate limit"),
        (["serve", "--rate-limit-refresh", "0/60"], "not a rate limit"),
        (["serve", "--admin-key", "short"], "admin key must be at least 16 characters"),
        (["serve", "--notify-webhook", "ftp://mail.example.com/hook"], "not an http(s) URL"),
        (["serve", "--lockout-duration", "0"], "lockout duration"),
        (["serve", "--trusted-proxies", "10.0.0.1/8"], "host bits set"),
        (["serve", "--trusted-proxies", "10.0.0.0/33"], "bad prefix length"),
        (["serve", "--trusted-proxies", "10.0.0.0/8,localhost"], "'localhost' is not an IPv4 or IPv6 address"),
        (["serve", "--upstream-token-endpoints", "idp.example.com/token"], "is not an http(s) URL"),
        (["serve", "--upstream-min-validity=-1"], "upstream min validity"),
        (["serve", "--login-slowdown-max-delay", "0"], "login slow-down"),
        (["serve", "--cors-origins", "https://app.example.com,app.example.com"], "cors origin 'app.example.com' is not an origin"),
        (["serve", "--cors-origins", "https://app.example.com/login"], "cors origin 'https://app.example.com/login' is not an origin"),
    ])
    func badConfigurationStopsStartupWithOneClearLine(arguments: [String], message: String) async throws {
        try await withTemporaryDirectory { directory in
            let database = ["--database-url", "sqlite:\(directory.path)/t.db"]
            let (status, output) = try await TesseraProcess.run(arguments.contains("--database-url") ? arguments : arguments + database)
            #expect(status != 0)
            #expect(output.contains("tessera: error:"), "\(output)")
            #expect(output.contains(message), "\(output)")
        }
    }

    @Test(arguments: [
        ("TESSERA_LOGIN_SLOWDOWN_THRESHOLD", "-1", "login slow-down"),
        ("TESSERA_LOGIN_SLOWDOWN_MAX_DELAY", "100000", "login slow-down"),
        ("TESSERA_LOGIN_SLOWDOWN_MAX_DELAY", "soon", "TESSERA_LOGIN_SLOWDOWN_MAX_DELAY='soon' is not a valid number"),
    ])
    func badLoginSlowdownSettingsStopStartup(variable: String, value: String, message: String) async throws {
        let (status, output) = try await TesseraProcess.run(
            ["serve", "--database-url", "memory:", "--token-store", "memory"], environment: [variable: value]
        )
        #expect(status != 0)
        #expect(output.contains("tessera: error:") && output.contains(message), "\(output)")
    }

    @Test func anUnreadableKeyFileStopsStartup() async throws {
        try await withTemporaryDirectory { directory in
            let keyFile = directory.appendingPathComponent("bad.key").path
            try Data("{}".utf8).write(to: URL(fileURLWithPath: keyFile))
            let (status, output) = try await TesseraProcess.run(["serve", "--database-url", "sqlite:\(directory.path)/t.db", "--key-file", keyFile])
            #expect(status != 0)
            #expect(output.contains("tessera: error:") && output.contains("key file"), "\(output)")
        }
    }

    @Test func aPortInUseStopsStartup() async throws {
        let first = try await TesseraProcess.start(["--database-url", "memory:", "--token-store", "memory"])
        let (status, output) = try await TesseraProcess.run(
            ["serve", "--port", "\(first.port)", "--database-url", "memory:", "--token-store", "memory", "--bcrypt-cost", "4"]
        )
        await first.stop()
        #expect(status != 0)
        #expect(output.contains("tessera: error: cannot serve on 127.0.0.1:\(first.port)"), "\(output)")
    }

    @Test func accountSecurityFilesLiveBesideTheDatabaseAndMetricsAreServed() async throws {
        try await withTemporaryDirectory { directory in
            let server = try await TesseraProcess.start(
                ["--database-url", "sqlite:\(directory.path)/data/tessera.db", "--admin-key", "an-admin-key-of-some-length"]
            )
            #expect(server.log.contains("encryption key: \(directory.path)/data/tessera-encryption.key (created)"))
            #expect(server.log.contains("messages: outbox \(directory.path)/data/outbox"))
            let keyMode = try FileManager.default.attributesOfItem(atPath: "\(directory.path)/data/tessera-encryption.key")[.posixPermissions] as? Int
            #expect(keyMode == 0o600)
            try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                let email = "files@example.com"
                _ = try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": email, "password": "correct horse"]))
                #expect(try await client.call(.post, "/v1/auth/password/forgot", body: jsonBody(["email": email])).status == .accepted)
                let messages = try await waitForOutbox("\(directory.path)/data/outbox", count: 1)
                #expect(messages.first?["to"] as? String == email)

                let stats = try await client.call(.get, "/v1/admin/stats", bearer: "an-admin-key-of-some-length")
                #expect(stats.status == .ok)
                #expect((stats.json["tokens"] as? [String: Any])?["pending_reset_tokens"] as? Int == 1)
                let metrics = String(decoding: try await client.call(.get, "/metrics").body, as: UTF8.self)
                #expect(metrics.contains(#"tessera_store_duration_seconds_count{operation="create_session"} 1"#), "\(metrics)")
                #expect(metrics.contains(#"tessera_http_requests_total{route="/v1/auth/password/forgot",method="POST",status="202"} 1"#))
            }
            await server.stop()
        }
    }
}

/// Issue 10, finding 5: a webhook message that could not be delivered before the process
/// stopped is delivered by the next process (the spool is on disk, beside the database).
@Suite("Durable webhook delivery (process)")
struct DurableWebhookProcessTests {
    @Test func aMessageTheWebhookMissedIsDeliveredAfterARestart() async throws {
        try await withTemporaryDirectory { directory in
            let database = "sqlite:\(directory.path)/tessera.db"
            let spool = "\(directory.path)/notify-spool"
            let email = "spooled@example.com"
            // No one listens on port 1: every attempt fails at once.
            let first = try await TesseraProcess.start(["--database-url", database, "--notify-webhook", "http://127.0.0.1:1/hook?key=sender-secret"])
            #expect(first.log.contains("(spool \(spool))"), "\(first.log)")
            try await TestClient.withClient(host: "127.0.0.1", port: first.port) { client in
                _ = try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": email, "password": "correct horse"]))
                #expect(try await client.call(.post, "/v1/auth/password/forgot", body: jsonBody(["email": email])).status == .accepted)
            }
            for _ in 0..<400 where ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).isEmpty {
                try await Task.sleep(for: .milliseconds(25))
            }
            await first.stop()
            #expect(first.process.terminationStatus == 0)
            #expect(!first.log.contains("sender-secret"))
            let left = try FileManager.default.contentsOfDirectory(atPath: spool)
            #expect(left.count == 1)
            let mode = try FileManager.default.attributesOfItem(atPath: "\(spool)/\(left[0])")[.posixPermissions] as? Int
            #expect(mode == 0o600)

            let bodies = Mutex<[Data]>([])
            let router = Router()
            router.post("hook") { request, _ -> HTTPResponse.Status in
                let body = try await request.body.collect(upTo: 65536)
                bodies.withLock { $0.append(Data(body.readableBytesView)) }
                return .noContent
            }
            try await Application(router: router).test(.live) { hook in
                let port = try #require(hook.port)
                let second = try await TesseraProcess.start(["--database-url", database, "--notify-webhook", "http://127.0.0.1:\(port)/hook"])
                for _ in 0..<400 where bodies.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(25)) }
                let body = try #require(bodies.withLock { $0.first })
                let message = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
                #expect(message["to"] as? String == email)
                let token = try #require(message["token"] as? String)
                for _ in 0..<200 where !((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).isEmpty {
                    try await Task.sleep(for: .milliseconds(25))
                }
                #expect(try FileManager.default.contentsOfDirectory(atPath: spool).isEmpty)
                // The token still works: it is the one the first process stored.
                let reset = try await TestClient.withClient(host: "127.0.0.1", port: second.port) { client in
                    try await client.call(.post, "/v1/auth/password/reset", body: jsonBody(["token": token, "new_password": "after the restart"]))
                }
                #expect(reset.status == .noContent)
                await second.stop()
            }
        }
    }
}
