import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import HummingbirdTesting
import NIOCore
import Tessera
import TesseraHummingbird
import Testing

/// An app route behind `TesseraAuthenticator`, with Tessera embedded (an `AuthService`).
@Suite("TesseraAuthenticator (embedded)")
struct AuthenticatorTests {
    @Test func noCredentialReachesTheRouteWithNoIdentity() async throws {
        let tessera = try await EmbeddedTessera.make()
        try await tessera.app(tessera.service).test(.router) { client in
            let reply = try await client.get("/whoami")
            #expect(reply.status == .ok)
            #expect(reply.text == "anonymous")
        }
    }

    @Test func aValidTokenGivesTheIdentity() async throws {
        let tessera = try await EmbeddedTessera.make()
        let grant = try await tessera.register()
        try await tessera.app(tessera.service).test(.router) { client in
            let reply = try await client.get("/whoami", bearer: grant.accessToken)
            #expect(reply.status == .ok)
            #expect(reply.text == "\(grant.user.id) \(grant.sessionID)")
            // The cookie-mode access cookie works the same, when there is no Authorization header.
            let cookie = try await client.get("/whoami", headers: [.cookie: "\(TesseraAuthenticator<TesseraAuthRequestContext>.accessCookieName)=\(grant.accessToken)"])
            #expect(cookie.text == "\(grant.user.id) \(grant.sessionID)")
        }
    }

    @Test func revokedExpiredAndForgedTokensAreRefusedWithTesserasCodes() async throws {
        let tessera = try await EmbeddedTessera.make()
        let revoked = try await tessera.register()
        try await tessera.service.logout(try await tessera.service.authenticate(bearer: revoked.accessToken))
        let live = try await tessera.register()
        // One character in the middle of the signature changed (never a no-op, never only padding bits).
        var characters = Array(live.accessToken)
        let middle = characters.count - 40
        characters[middle] = characters[middle] == "A" ? "B" : "A"
        let forgedToken = String(characters)
        try await tessera.app(tessera.service).test(.router) { client in
            for (token, code) in [(revoked.accessToken, "token_revoked"), (forgedToken, "invalid_token"), ("not-a-token", "invalid_token")] {
                let reply = try await client.get("/whoami", bearer: token)
                #expect(reply.status == .unauthorized)
                #expect(reply.code == code)
                #expect(reply.headers[.wwwAuthenticate] == "Bearer error=\"invalid_token\"")
                #expect(reply.headers[.contentType] == "application/problem+json")
            }
            tessera.clock.advance(by: 901)
            let expired = try await client.get("/whoami", bearer: live.accessToken)
            #expect(expired.status == .unauthorized)
            #expect(expired.code == "token_expired")
        }
    }

    @Test func aStoreThatCannotAnswerIsA503NeverAnIdentity() async throws {
        let tessera = try await EmbeddedTessera.make()
        let grant = try await tessera.register()
        try await tessera.app(Unavailable()).test(.router) { client in
            let reply = try await client.get("/whoami", bearer: grant.accessToken)
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.code == "verification_unavailable")
        }
    }

    /// A verifier that can never decide, as a store that is down.
    struct Unavailable: TesseraVerifying {
        func verify(token: String) async throws(TesseraVerificationError) -> TesseraIdentity { throw .unavailable("down") }
    }
}

/// Tessera embedded: memory stores, a manual clock, cheap bcrypt.
struct EmbeddedTessera {
    let clock: ManualClock
    let service: AuthService

    /// - Parameter clock: false: the system clock (for tests with a real server and real time).
    static func make(clock manual: Bool = true) async throws -> EmbeddedTessera {
        let clock = ManualClock(Date())
        let storeClock: any TesseraClock = manual ? clock : SystemClock()
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-outbox-\(UUID().uuidString)").path
        let service = try await AuthService(
            policy: policy, users: MemoryUserStore(), tokens: MemoryTokenStore(clock: storeClock), keys: .generate(),
            security: .local(secrets: .generate(), outbox: outbox, rateLimits: .unlimited, clock: storeClock), clock: storeClock
        )
        return EmbeddedTessera(clock: clock, service: service)
    }

    func register() async throws -> TokenGrant {
        try await service.register(email: "user-\(UUID().uuidString.prefix(8))@example.com", password: "correct horse")
    }

    /// The app: one route that says who is calling.
    func app(_ verifier: some TesseraVerifying) -> some ApplicationProtocol {
        Application(router: AppRouter.make(verifier))
    }
}

enum AppRouter {
    static func make(_ verifier: some TesseraVerifying) -> Router<TesseraAuthRequestContext> {
        let router = Router(context: TesseraAuthRequestContext.self)
        router.add(middleware: TesseraAuthenticator(verifier: verifier))
        router.get("whoami") { _, context in
            context.identity.map { "\($0.userID) \($0.sessionID)" } ?? "anonymous"
        }
        return router
    }
}

struct AppReply {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var text: String
    var code: String? {
        ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["code"] as? String
    }
}

extension TestClientProtocol {
    func get(_ uri: String, bearer: String? = nil, headers: HTTPFields = [:]) async throws -> AppReply {
        var headers = headers
        if let bearer { headers[.authorization] = "Bearer \(bearer)" }
        return try await execute(uri: uri, method: .get, headers: headers) { response in
            AppReply(status: response.status, headers: response.headers, text: String(buffer: response.body))
        }
    }
}
