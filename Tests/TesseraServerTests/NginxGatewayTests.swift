import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import TesseraTestSupport
import Testing

/// A real nginx, configured with the `auth_request` block of docs/GATEWAYS.md, in front of an
/// echo application, asking a real `tessera serve` process.
@Suite("nginx gateway (processes)")
struct NginxGatewayTests {
    /// What reached the application: the `X-Tessera-User-Id` of every request.
    final class EchoApplication: Sendable {
        let seen = Mutex<[String?]>([])
        var count: Int { seen.withLock { $0.count } }

        var router: Router<BasicRequestContext> {
            let router = Router()
            router.get("**") { request, _ in
                let user = request.headers[HTTPField.Name("X-Tessera-User-Id")!]
                self.seen.withLock { $0.append(user) }
                return "hello \(user ?? "nobody")"
            }
            return router
        }
    }

    /// The nginx block of docs/GATEWAYS.md, with the documented ports replaced by the test's.
    static func documentedConfiguration(tessera: Int, application: Int, nginx: Int) throws -> String {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/GATEWAYS.md")
        let text = try String(contentsOf: docs, encoding: .utf8)
        let start = try #require(text.range(of: "```nginx\n"))
        let end = try #require(text.range(of: "\n```", range: start.upperBound..<text.endIndex))
        let block = String(text[start.upperBound..<end.lowerBound])
        for documented in ["127.0.0.1:8080", "127.0.0.1:9000", "listen 127.0.0.1:8000"] {
            #expect(block.contains(documented), "docs/GATEWAYS.md no longer has \(documented) in its nginx block")
        }
        return block.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(tessera)")
            .replacingOccurrences(of: "127.0.0.1:9000", with: "127.0.0.1:\(application)")
            .replacingOccurrences(of: "listen 127.0.0.1:8000", with: "listen 127.0.0.1:\(nginx)")
    }

    func get(_ port: Int, _ path: String, bearer: String? = nil, headers: HTTPFields = [:]) async throws -> Reply {
        try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            var fields = headers
            // HTTP/1.1 needs a Host header; nginx answers 400 without one.
            fields[HTTPField.Name("Host")!] = "127.0.0.1:\(port)"
            if let bearer { fields[.authorization] = "Bearer \(bearer)" }
            let response = try await client.execute(.init(path, method: .get, headers: fields))
            return Reply(status: response.status, headers: response.headers, body: Data((response.body ?? ByteBuffer()).readableBytesView))
        }
    }

    @Test func nginxLetsThroughOnlyWhatTesseraAccepts() async throws {
        let tessera = try await TesseraProcess.start(["--database-url", "memory:", "--token-store", "memory"])
        let application = EchoApplication()
        let upstream = Hummingbird.Application(router: application.router)
        try await upstream.test(.live) { upstreamClient in
            let nginxPort = try RedisServerProcess.freeLoopbackPort()
            let nginx = try await NginxProcess.start(
                port: nginxPort,
                httpBlock: try Self.documentedConfiguration(tessera: tessera.port, application: try #require(upstreamClient.port), nginx: nginxPort)
            )
            do {
                let grant = try await TestClient.withClient(host: "127.0.0.1", port: tessera.port) { client in
                    try await client.call(.post, "/v1/auth/register", body: jsonBody(["email": "nginx@example.com", "password": "correct horse"]))
                }
                let token = try #require(grant["access_token"])
                let userID = try #require((grant.json["user"] as? [String: Any])?["id"] as? String)

                // A valid token reaches the application with the user's id, whatever the client claimed.
                let allowed = try await get(nginxPort, "/orders/7?full=1", bearer: token, headers: [HTTPField.Name("X-Tessera-User-Id")!: "forged"])
                #expect(allowed.status == .ok)
                #expect(String(decoding: allowed.body, as: UTF8.self) == "hello \(userID)")
                #expect(application.seen.withLock { $0 } == [userID])

                // No token, a forged token: 401 with Tessera's challenge; nothing reaches the application.
                let anonymous = try await get(nginxPort, "/orders/7", headers: [HTTPField.Name("X-Tessera-User-Id")!: userID])
                #expect(anonymous.status == .unauthorized)
                #expect(anonymous.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(try await get(nginxPort, "/orders/7", bearer: token + "x").status == .unauthorized)
                #expect(application.count == 1)

                // Right after logout the same token is refused.
                let logout = try await TestClient.withClient(host: "127.0.0.1", port: tessera.port) { client in
                    try await client.call(.post, "/v1/auth/logout", bearer: token)
                }
                #expect(logout.status == .noContent)
                #expect(try await get(nginxPort, "/orders/7", bearer: token).status == .unauthorized)
                #expect(application.count == 1)

                // With Tessera stopped, nothing reaches the application.
                let again = try await TestClient.withClient(host: "127.0.0.1", port: tessera.port) { client in
                    try await client.call(.post, "/v1/auth/login", body: jsonBody(["email": "nginx@example.com", "password": "correct horse"]))
                }
                let fresh = try #require(again["access_token"])
                #expect(try await get(nginxPort, "/home", bearer: fresh).status == .ok)
                #expect(application.count == 2)
                await tessera.stop()
                let down = try await get(nginxPort, "/home", bearer: fresh)
                #expect(down.status == .internalServerError)
                #expect(application.count == 2)
            } catch {
                Issue.record("nginx error log:\n\(nginx.errorLog)")
                await nginx.stop()
                throw error
            }
            await nginx.stop()
        }
        await tessera.stop()
    }
}
