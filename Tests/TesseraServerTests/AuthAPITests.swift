import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

@Suite("HTTP API v1: accounts and tokens")
struct AuthAPITests {
    @Test func registerAnswersATokenResponse() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let reply = try await client.post("/v1/auth/register", ["email": "  Alice@Example.COM ", "password": "correct horse"])
            #expect(reply.status == .created)
            #expect(reply.headers[.contentType] == "application/json")
            let json = reply.json
            #expect(json["token_type"] as? String == "Bearer")
            #expect(json["expires_in"] as? Int == 900)
            #expect(json["refresh_expires_in"] as? Int == 604_800)
            #expect((json["access_token"] as? String)?.split(separator: ".").count == 3)
            #expect((json["refresh_token"] as? String)?.hasPrefix("tsr1.") == true)
            #expect(json["session_id"] is String)
            let user = try #require(json["user"] as? [String: Any])
            #expect(user["email"] as? String == "alice@example.com")
            #expect(user["mfa_enabled"] as? Bool == false)
            #expect(user["id"] is String && user["created_at"] is String)
            #expect(user["password_hash"] == nil)
        }
    }

    @Test func registeringATakenEmailIsAConflict() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            _ = try await client.register("bob@example.com")
            let again = try await client.post("/v1/auth/register", ["email": "BOB@example.com", "password": "another password"])
            #expect(again.status == .conflict)
            #expect(again.code == "email_taken")
            #expect(again.headers[.contentType] == "application/problem+json")
            #expect(again.json["status"] as? Int == 409)
            #expect(again["title"] != nil && again["detail"] != nil)
        }
    }

    @Test(arguments: [
        ["email": "not-an-email", "password": "long enough"],
        ["email": "a@b", "password": "long enough"],
        ["email": "a b@example.com", "password": "long enough"],
        ["email": "ok@example.com", "password": "short"],
        ["email": "ok@example.com", "password": String(repeating: "x", count: 257)],
    ])
    func registerValidatesInput(body: [String: String]) async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let reply = try await client.post("/v1/auth/register", body)
            #expect(reply.status == .unprocessableContent)
            #expect(reply.code == "invalid_request")
        }
    }

    @Test func passwordsOf256CharactersAreAccepted() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let password = String(repeating: "p", count: 255) + "!"
            _ = try await client.register("long@example.com", password: password)
            // bcrypt alone would ignore everything past 72 bytes; Tessera does not.
            let truncated = String(repeating: "p", count: 255) + "?"
            #expect(try await client.post("/v1/auth/login", ["email": "long@example.com", "password": truncated]).status == .unauthorized)
            #expect(try await client.post("/v1/auth/login", ["email": "long@example.com", "password": password]).status == .ok)
        }
    }

    @Test func loginStartsANewSessionAndFailuresLookAlike() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let registered = try await client.register("carol@example.com")
            let login = try await client.post("/v1/auth/login", ["email": "Carol@example.com", "password": "correct horse", "device": "phone"])
            #expect(login.status == .ok)
            #expect(login["session_id"] != registered["session_id"])
            let wrongPassword = try await client.post("/v1/auth/login", ["email": "carol@example.com", "password": "wrong horse"])
            let unknownEmail = try await client.post("/v1/auth/login", ["email": "nobody@example.com", "password": "correct horse"])
            #expect(wrongPassword.status == .unauthorized && unknownEmail.status == .unauthorized)
            #expect(wrongPassword.code == "invalid_credentials")
            #expect(wrongPassword.body == unknownEmail.body)
        }
    }

    @Test func refreshRotatesAndTheOldTokenStopsWorking() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let first = try await client.register()
            let refreshed = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            #expect(refreshed.status == .ok)
            #expect(refreshed["session_id"] == first["session_id"])
            #expect(refreshed["refresh_token"] != first["refresh_token"])
            #expect(refreshed["access_token"] != first["access_token"])
            #expect(try await client.call(.get, "/v1/auth/me", bearer: refreshed["access_token"]).status == .ok)
            // Past the grace window the old token is re-use: the whole session ends.
            tessera.clock.advance(by: 11)
            let reused = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            #expect(reused.status == .unauthorized)
            #expect(reused.code == "refresh_token_reused")
            let current = try await client.post("/v1/auth/refresh", ["refresh_token": refreshed["refresh_token"]!])
            #expect(current.status == .unauthorized)
            #expect(current.code == "invalid_refresh_token")
            let me = try await client.call(.get, "/v1/auth/me", bearer: refreshed["access_token"])
            #expect(me.status == .unauthorized)
            #expect(me.code == "token_revoked")
        }
    }

    @Test func aRepeatedRefreshInsideTheGraceWindowGetsTheCurrentPair() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let first = try await client.register()
            let a = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            tessera.clock.advance(by: 5)
            let b = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            #expect(b.status == .ok)
            // The other tab gets the same current refresh token: no second chain.
            #expect(b["refresh_token"] == a["refresh_token"])
            #expect(b["session_id"] == a["session_id"])
            let next = try await client.post("/v1/auth/refresh", ["refresh_token": b["refresh_token"]!])
            #expect(next.status == .ok)
            // Two generations back is never inside the grace rule.
            let old = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            #expect(old.code == "refresh_token_reused")
        }
    }

    @Test(arguments: ["", "garbage", "tsr1.u.a.1.AAAA", "tsr1.u.abc.1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
    func unknownRefreshTokensAreRejected(token: String) async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let reply = try await client.post("/v1/auth/refresh", ["refresh_token": token])
            #expect(reply.status == .unauthorized)
            #expect(reply.code == "invalid_refresh_token")
        }
    }

    @Test func refreshAfterTheIdleLifetimeIsRejected() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let first = try await client.register()
            tessera.clock.advance(by: 604_801)
            let reply = try await client.post("/v1/auth/refresh", ["refresh_token": first["refresh_token"]!])
            #expect(reply.code == "invalid_refresh_token")
        }
    }

    @Test func logoutRevokesTheStillUnexpiredAccessTokenAndTheRefreshToken() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let grant = try await client.register()
            let access = grant["access_token"]!
            #expect(try await client.call(.get, "/v1/auth/me", bearer: access).status == .ok)
            #expect(try await client.call(.post, "/v1/auth/logout", bearer: access).status == .noContent)
            let me = try await client.call(.get, "/v1/auth/me", bearer: access)
            #expect(me.status == .unauthorized)
            #expect(me.code == "token_revoked")
            #expect(me.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": grant["refresh_token"]!]).code == "invalid_refresh_token")
            #expect(try await client.call(.post, "/v1/auth/logout", bearer: access).code == "token_revoked")
        }
    }

    @Test func logoutLeavesOtherSessionsAlone() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let laptop = try await client.register("dave@example.com")
            let phone = try await client.post("/v1/auth/login", ["email": "dave@example.com", "password": "correct horse"])
            #expect(try await client.call(.post, "/v1/auth/logout", bearer: laptop["access_token"]).status == .noContent)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: phone["access_token"]).status == .ok)
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": phone["refresh_token"]!]).status == .ok)
        }
    }

    @Test func logoutAllEndsEveryDevice() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let laptop = try await client.register("erin@example.com")
            let phone = try await client.post("/v1/auth/login", ["email": "erin@example.com", "password": "correct horse"])
            let other = try await client.register("frank@example.com")
            #expect(try await client.call(.post, "/v1/auth/logout-all", bearer: laptop["access_token"]).status == .noContent)
            for grant in [laptop, phone] {
                #expect(try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"]).code == "token_revoked")
                #expect(try await client.post("/v1/auth/refresh", ["refresh_token": grant["refresh_token"]!]).code == "invalid_refresh_token")
            }
            #expect(try await client.call(.get, "/v1/auth/me", bearer: other["access_token"]).status == .ok)
        }
    }

    @Test func meAnswersTheUser() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let grant = try await client.register("gina@example.com")
            let me = try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"])
            #expect(me.status == .ok)
            #expect(me["email"] == "gina@example.com")
            #expect(me["id"] == (grant.json["user"] as? [String: Any])?["id"] as? String)
        }
    }

    @Test func expiredAccessTokensAreRejected() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let grant = try await client.register()
            tessera.clock.advance(by: 901)
            let me = try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"])
            #expect(me.status == .unauthorized)
            #expect(me.code == "token_expired")
        }
    }

    @Test func badBearerTokensAreRejected() async throws {
        let tessera = try await TestTessera.make()
        let foreign = try await TestTessera.make()
        let foreignToken = try await foreign.test { client in try await client.register()["access_token"]! }
        try await tessera.test { client in
            let grant = try await client.register()
            let token = grant["access_token"]!
            let parts = token.split(separator: ".").map(String.init)
            let noneHeader = Base64URL.encode(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
            var flipped = Array(parts[2])
            flipped[3] = flipped[3] == "A" ? "B" : "A"
            let cases: [(HTTPFields, String)] = [
                ([:], "no header"),
                ([.authorization: "Basic dXNlcjpwYXNz"], "basic"),
                ([.authorization: "Bearer"], "empty bearer"),
                ([.authorization: "Bearer garbage"], "garbage"),
                ([.authorization: "Bearer \(noneHeader).\(parts[1])."], "alg none"),
                ([.authorization: "Bearer \(parts[0]).\(parts[1]).\(String(flipped))"], "bad signature"),
                ([.authorization: "Bearer \(foreignToken)"], "unknown kid"),
            ]
            for (headers, label) in cases {
                let reply = try await client.call(.get, "/v1/auth/me", headers: headers)
                #expect(reply.status == .unauthorized, "\(label)")
                #expect(reply.code == "invalid_token", "\(label)")
            }
        }
    }

    @Test func jwksVerifiesIssuedTokens() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let token = try await client.register()["access_token"]!
            let jwks = try await client.call(.get, "/.well-known/jwks.json")
            #expect(jwks.status == .ok)
            let keys = try #require(jwks.json["keys"] as? [[String: String]])
            let parts = token.split(separator: ".").map(String.init)
            let header = try #require(try JSONSerialization.jsonObject(with: Base64URL.decode(parts[0])!) as? [String: String])
            let jwk = try #require(keys.first { $0["kid"] == header["kid"] })
            #expect(jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519" && jwk["alg"] == "EdDSA" && jwk["use"] == "sig")
            #expect(jwk["d"] == nil)
            // A third party can verify the token with nothing but the JWKS.
            let key = try Curve25519.Signing.PublicKey(rawRepresentation: Base64URL.decode(jwk["x"]!)!)
            #expect(key.isValidSignature(Base64URL.decode(parts[2])!, for: Data("\(parts[0]).\(parts[1])".utf8)))
        }
    }

    @Test func healthReportsTheStore() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let health = try await client.call(.get, "/health")
            #expect(health.status == .ok)
            #expect(health["status"] == "ok")
            let store = try #require(health.json["store"] as? [String: Any])
            #expect(store["backend"] as? String == "memory")
            #expect(store["connected"] as? Bool == true)
            #expect(store["latency_ms"] is Double)
        }
    }
}

@Suite("HTTP API v1: bad input")
struct BadInputTests {
    @Test func malformedJSONIsA400() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
            for body in ["{", "not json", "[1,2]", "\"string\"", "", "null", "42", deep, #"{"email":"a@example.com""#] {
                let reply = try await client.call(.post, "/v1/auth/login", body: body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.code == "malformed_json")
                #expect(reply.headers[.contentType] == "application/problem+json")
            }
        }
    }

    @Test func missingOrMistypedFieldsAreA422NamingTheField() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let missing = try await client.call(.post, "/v1/auth/register", body: #"{"email":"a@example.com"}"#)
            #expect(missing.status == .unprocessableContent)
            #expect(missing.code == "invalid_request")
            #expect(missing["detail"]?.contains("password") == true)
            let mistyped = try await client.call(.post, "/v1/auth/refresh", body: #"{"refresh_token":42}"#)
            #expect(mistyped.status == .unprocessableContent)
            #expect(mistyped["detail"]?.contains("refresh_token") == true)
            let null = try await client.call(.post, "/v1/auth/login", body: #"{"email":null,"password":"x"}"#)
            #expect(null.status == .unprocessableContent)
            // An object with a wrong field is 422 however the field is wrong, not 400.
            let array = try await client.call(.post, "/v1/auth/login", body: #"{"email":["a@example.com"],"password":"x"}"#)
            #expect(array.status == .unprocessableContent)
            #expect(array["detail"]?.contains("email") == true)
        }
    }

    @Test func oversizedBodiesAreA413() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let big = jsonBody(["email": "a@example.com", "password": String(repeating: "x", count: 70_000)])
            let reply = try await client.call(.post, "/v1/auth/register", body: big)
            #expect(reply.status == .contentTooLarge)
            #expect(reply.code == "payload_too_large")
        }
    }

    @Test func unknownRoutesAndMethodsAreProblems() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let missing = try await client.call(.get, "/v1/nope")
            #expect(missing.status == .notFound)
            #expect(missing.code == "not_found")
            let method = try await client.call(.get, "/v1/auth/login")
            #expect(method.status.code >= 400 && method.status.code < 500)
            #expect(method.code != nil)
        }
    }
}
