import Foundation
import HTTPTypes
import HummingbirdTesting
import TesseraTestSupport
import Testing

/// A real `tessera serve` and a real app process beside it (the RemoteExample executable,
/// which verifies tokens with `TesseraRemoteVerifier`), on loopback.
@Suite("Remote app beside tessera serve (processes)")
struct RemoteAppProcessTests {
    static let serviceKey = "a-service-key-for-the-process-tests"

    @Test func onSQLite() async throws {
        try await withTemporaryDirectory { directory in
            try await exercise(["--database-url", "sqlite:\(directory.path)/tessera.db"])
        }
    }

    @Test func onRedis() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                try await exercise([
                    "--database-url", "sqlite:\(directory.path)/users.db", "--token-store", "redis", "--redis-url", redis.url,
                ])
            }
        }
    }

    func exercise(_ arguments: [String]) async throws {
        let tessera = try await TesseraProcess.start(arguments + ["--service-key", Self.serviceKey])
        defer { Task { await tessera.stop() } }
        let app = try await TesseraProcess.startApp(
            "RemoteExample",
            environment: ["TESSERA_URL": "http://127.0.0.1:\(tessera.port)", "TESSERA_SERVICE_KEY": Self.serviceKey, "PORT": "0"]
        )
        defer { Task { await app.stop() } }

        let revoked = try await register(tessera, "leaving@example.com")
        let staying = try await register(tessera, "staying@example.com")
        let token = try #require(revoked["access_token"])
        let other = try #require(staying["access_token"])
        // Until the app has followed the stream once (it asks Tessera meanwhile).
        #expect(try await eventually { try await get(app, "/hello", token).status == .ok })
        #expect(try await eventually { try await get(app, "/hello", other).status == .ok })

        // Steady state: app requests cost Tessera nothing.
        let before = try await requestsServed(tessera)
        for _ in 0..<20 { #expect(try await get(app, "/hello", token).status == .ok) }
        #expect(try await requestsServed(tessera) == before)

        // A logout at Tessera is refused by the app within a second.
        let logout = try await call(tessera, .post, "/v1/auth/logout", bearer: token)
        #expect(logout.status == .noContent)
        let start = ContinuousClock.now
        var answer = try await get(app, "/hello", token)
        while answer.status == .ok, ContinuousClock.now - start < .seconds(1) {
            try await Task.sleep(for: .milliseconds(5))
            answer = try await get(app, "/hello", token)
        }
        #expect(answer.status == .unauthorized)
        #expect(answer.code == "token_revoked")

        // Tessera stopped for 3 s: the revoked token never gets through; the other one is
        // answered from the local copy or refused with 503, never wrongly.
        sendSignal(tessera.process.processIdentifier, SIGSTOP)
        let stopped = ContinuousClock.now
        var statuses: [HTTPResponse.Status: Int] = [:]
        while ContinuousClock.now - stopped < .seconds(3) {
            #expect(try await get(app, "/hello", token).status != .ok)
            let status = try await get(app, "/hello", other).status
            statuses[status, default: 0] += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        sendSignal(tessera.process.processIdentifier, SIGCONT)
        #expect(Set(statuses.keys).isSubset(of: [.ok, .serviceUnavailable]))
        // Back: the app resynchronises and answers locally again.
        #expect(try await eventually { try await get(app, "/hello", other).status == .ok })
        #expect(try await get(app, "/hello", token).status == .unauthorized)
    }

    // MARK: Helpers

    func register(_ server: TesseraProcess, _ email: String) async throws -> Reply {
        let reply = try await call(server, .post, "/v1/auth/register", body: jsonBody(["email": email, "password": "correct horse"]))
        #expect(reply.status == .created)
        return reply
    }

    func call(_ server: TesseraProcess, _ method: HTTPRequest.Method, _ uri: String, body: String? = nil, bearer: String? = nil) async throws -> Reply {
        try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
            try await client.call(method, uri, body: body, bearer: bearer)
        }
    }

    func get(_ app: TesseraProcess, _ uri: String, _ bearer: String) async throws -> Reply {
        try await call(app, .get, uri, bearer: bearer)
    }

    /// Every request Tessera has answered, by its own counters (`/metrics` itself left out).
    func requestsServed(_ server: TesseraProcess) async throws -> Double {
        let text = String(decoding: try await call(server, .get, "/metrics").body, as: UTF8.self)
        return text.split(separator: "\n")
            .filter { $0.hasPrefix("tessera_http_requests_total{") && !$0.contains("route=\"/metrics\"") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0, +)
    }

    func eventually(_ limit: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}
