import Foundation
import Tessera
import TesseraVapor
import XCTVapor

/// A Vapor route behind `TesseraAuthenticator`, with Tessera embedded (memory stores).
final class TesseraAuthenticatorTests: XCTestCase {
    var app: Application!
    var clock: ManualClock!
    var service: AuthService!

    override func setUp() async throws {
        app = try await Application.make(.testing)
        clock = ManualClock(Date())
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-vapor-\(UUID().uuidString)").path
        service = try await AuthService(
            policy: policy, users: MemoryUserStore(), tokens: MemoryTokenStore(clock: clock), keys: .generate(),
            security: .local(secrets: .generate(), outbox: outbox, rateLimits: .unlimited, clock: clock), clock: clock
        )
        app.grouped(TesseraAuthenticator(verifier: service)).get("whoami") { request in
            request.auth.get(TesseraIdentity.self).map { "\($0.userID) \($0.sessionID)" } ?? "anonymous"
        }
    }

    override func tearDown() async throws {
        try await app.asyncShutdown()
    }

    func register() async throws -> TokenGrant {
        try await service.register(email: "user-\(UUID().uuidString.prefix(8))@example.com", password: "correct horse")
    }

    func code(_ response: XCTHTTPResponse) -> String? {
        ((try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))) as? [String: Any])?["code"] as? String
    }

    func testNoCredentialIsNoIdentity() async throws {
        try await app.test(.GET, "whoami") { response async in
            XCTAssertEqual(response.status, .ok)
            XCTAssertEqual(response.body.string, "anonymous")
        }
    }

    func testBearerAndCookieGiveTheIdentity() async throws {
        let grant = try await register()
        try await app.test(.GET, "whoami", headers: ["Authorization": "Bearer \(grant.accessToken)"]) { response async in
            XCTAssertEqual(response.body.string, "\(grant.user.id) \(grant.sessionID)")
        }
        try await app.test(.GET, "whoami", headers: ["Cookie": "__Host-tessera_at=\(grant.accessToken)"]) { response async in
            XCTAssertEqual(response.body.string, "\(grant.user.id) \(grant.sessionID)")
        }
    }

    func testRevokedExpiredAndForgedAreRefusedWithTesserasCodes() async throws {
        let revoked = try await register()
        try await service.logout(try await service.authenticate(bearer: revoked.accessToken))
        let live = try await register()
        for (token, expected) in [(revoked.accessToken, "token_revoked"), (live.accessToken + "x", "invalid_token")] {
            try await app.test(.GET, "whoami", headers: ["Authorization": "Bearer \(token)"]) { response async in
                XCTAssertEqual(response.status, .unauthorized)
                XCTAssertEqual(self.code(response), expected)
                XCTAssertEqual(response.headers.first(name: .wwwAuthenticate), "Bearer error=\"invalid_token\"")
                XCTAssertEqual(response.headers.first(name: .contentType), "application/problem+json")
            }
        }
        clock.advance(by: 901)
        try await app.test(.GET, "whoami", headers: ["Authorization": "Bearer \(live.accessToken)"]) { response async in
            XCTAssertEqual(response.status, .unauthorized)
            XCTAssertEqual(self.code(response), "token_expired")
        }
    }

    func testARemoteVerifierThatCannotReachTesseraFailsClosed() async throws {
        let grant = try await register()
        // Port 9 (discard) on loopback: nothing answers there in the test environment.
        let verifier = TesseraRemoteVerifier(baseURL: "http://127.0.0.1:9", serviceKey: "service-key-for-the-tests")
        app.grouped(TesseraAuthenticator(verifier: verifier)).get("remote") { request in
            request.auth.get(TesseraIdentity.self)?.userID ?? "anonymous"
        }
        try await app.test(.GET, "remote", headers: ["Authorization": "Bearer \(grant.accessToken)"]) { response async in
            XCTAssertEqual(response.status, .serviceUnavailable)
            XCTAssertEqual(self.code(response), "verification_unavailable")
        }
    }
}
