import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Tessera
import TesseraServer
import Testing

extension TestClientProtocol {
    /// A form-encoded POST, as OAuth resource servers send it.
    func form(_ uri: String, _ fields: [(String, String)], authorization: String?, contentType: String = "application/x-www-form-urlencoded")
        async throws -> Reply
    {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = fields.map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
        var headers: HTTPFields = [.contentType: contentType]
        if let authorization { headers[.authorization] = authorization }
        return try await execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            Reply(status: response.status, headers: response.headers, body: Data(response.body.readableBytesView))
        }
    }
}

@Suite("RFC 7662 introspection and RFC 7009 revocation")
struct OAuthAPITests {
    static let key = "service-key-0123456789"
    static let bearer = "Bearer \(key)"

    static func tessera(accessTTL: TimeInterval = 900) async throws -> TestTessera {
        var tessera = try await TestTessera.make(accessTTL: accessTTL)
        tessera.options.serviceKey = key
        return tessera
    }

    func introspect(_ client: any TestClientProtocol, _ token: String, hint: String? = nil) async throws -> Reply {
        var fields = [("token", token)]
        if let hint { fields.append(("token_type_hint", hint)) }
        let reply = try await client.form("/v1/oauth/introspect", fields, authorization: Self.bearer)
        #expect(reply.status == .ok)
        #expect(reply.headers[.cacheControl] == "no-store")
        return reply
    }

    func expectInactive(_ reply: Reply) {
        #expect(String(decoding: reply.body, as: UTF8.self) == #"{"active":false}"#)
    }

    @Test func anActiveAccessTokenIsDescribedInFull() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let grant = try await client.register("introspect@example.com")
            let token = try #require(grant["access_token"])
            let claims = try tessera.service.accessTokens.verify(token, now: tessera.clock.now())
            let json = try await introspect(client, token).json
            #expect(json["active"] as? Bool == true)
            #expect(json["sub"] as? String == claims.sub)
            #expect(json["sid"] as? String == grant["session_id"])
            #expect(json["jti"] as? String == claims.jti)
            #expect((json["exp"] as? Int).map(Int64.init) == claims.exp)
            #expect((json["iat"] as? Int).map(Int64.init) == claims.iat)
            #expect(json["iss"] as? String == "tessera")
            #expect(json["token_type"] as? String == "Bearer")
            #expect(json["username"] as? String == "introspect@example.com")
            #expect(json.count == 9)
            // The hint only orders the checks.
            #expect(try await introspect(client, token, hint: "refresh_token").json["jti"] as? String == claims.jti)
        }
    }

    @Test func garbageExpiredAndRevokedAccessTokensAreInactive() async throws {
        let tessera = try await Self.tessera(accessTTL: 60)
        try await tessera.test { client in
            expectInactive(try await introspect(client, "garbage"))
            expectInactive(try await introspect(client, "eyJhbGciOiJub25lIn0.e30."))
            let first = try #require(try await client.register()["access_token"])
            #expect(try await client.call(.post, "/v1/auth/logout", bearer: first).status == .noContent)
            expectInactive(try await introspect(client, first))
            let second = try #require(try await client.register()["access_token"])
            tessera.clock.advance(by: 61)
            expectInactive(try await introspect(client, second))
        }
    }

    @Test func refreshTokensAreActiveOnlyAsTheirSessionsCurrentGeneration() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let grant = try await client.register("refresh@example.com")
            let refresh = try #require(grant["refresh_token"])
            let json = try await introspect(client, refresh, hint: "refresh_token").json
            #expect(json["active"] as? Bool == true)
            #expect(json["sid"] as? String == grant["session_id"])
            #expect(json["token_type"] as? String == "refresh_token")
            #expect(json["username"] as? String == "refresh@example.com")
            #expect(json["jti"] == nil)
            #expect((json["exp"] as? Int).map { $0 > Int(tessera.clock.now().timeIntervalSince1970) } == true)

            // Rotated out: inactive. Presented again after the grace window: re-use ends the session.
            let rotated = try await client.post("/v1/auth/refresh", ["refresh_token": refresh])
            let next = try #require(rotated["refresh_token"])
            expectInactive(try await introspect(client, refresh))
            #expect(try await introspect(client, next).json["active"] as? Bool == true)
            tessera.clock.advance(by: 11)
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": refresh]).code == "refresh_token_reused")
            expectInactive(try await introspect(client, next))
            expectInactive(try await introspect(client, "tsr1.a.b.1.AAAA"))
        }
    }

    @Test func revokingARefreshTokenEndsItsSession() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let grant = try await client.register()
            let reply = try await client.form("/v1/oauth/revoke", [("token", grant["refresh_token"]!), ("token_type_hint", "refresh_token")], authorization: Self.bearer)
            #expect(reply.status == .ok)
            #expect(reply.body.isEmpty)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"]).code == "token_revoked")
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": grant["refresh_token"]!]).code == "invalid_refresh_token")
        }
    }

    @Test func revokingAnAccessTokenDeniesThatTokenOnly() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let grant = try await client.register()
            let token = try #require(grant["access_token"])
            // An unknown hint is ignored (RFC 7009 §2.1).
            #expect(try await client.form("/v1/oauth/revoke", [("token", token), ("token_type_hint", "id_token")], authorization: Self.bearer).status == .ok)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: token).code == "token_revoked")
            expectInactive(try await introspect(client, token))
            // The session lives on: its refresh token still works and mints a working access token.
            let refreshed = try await client.post("/v1/auth/refresh", ["refresh_token": grant["refresh_token"]!])
            #expect(try await client.call(.get, "/v1/auth/me", bearer: refreshed["access_token"]).status == .ok)
        }
    }

    @Test func anyTokenKnownOrNotIsRevokedWith200() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            for token in ["garbage", "tsr1.a.b.1.AAAA", "eyJhbGciOiJub25lIn0.e30."] {
                let reply = try await client.form("/v1/oauth/revoke", [("token", token)], authorization: Self.bearer)
                #expect(reply.status == .ok)
            }
        }
    }

    @Test func callersNeedTheServiceKey() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let token = try #require(try await client.register()["access_token"])
            for path in ["/v1/oauth/introspect", "/v1/oauth/revoke"] {
                for authorization in [nil, "Bearer wrong-key-0123456789", "Basic " + Data("client:wrong".utf8).base64EncodedString(), "Bearer \(token)"] {
                    let reply = try await client.form(path, [("token", token)], authorization: authorization)
                    #expect(reply.status == .unauthorized)
                    #expect(reply.code == "invalid_service_key")
                    #expect(reply.headers[.wwwAuthenticate] != nil)
                }
            }
            // HTTP Basic with the key as the password (any user name), as OAuth client libraries send it.
            let basic = "Basic " + Data("resource-server:\(Self.key)".utf8).base64EncodedString()
            #expect(try await client.form("/v1/oauth/introspect", [("token", token)], authorization: basic).json["active"] as? Bool == true)
            // The token was not revoked by the refused calls.
            #expect(try await client.call(.get, "/v1/auth/me", bearer: token).status == .ok)
        }
    }

    @Test func withoutAServiceKeyTheEndpointsDoNotExist() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            for path in ["/v1/oauth/introspect", "/v1/oauth/revoke"] {
                let reply = try await client.form(path, [("token", "x")], authorization: Self.bearer)
                #expect(reply.status == .notFound)
            }
        }
    }

    @Test func requestsMustBeWellFormedForms() async throws {
        let tessera = try await Self.tessera()
        try await tessera.test { client in
            let missing = try await client.form("/v1/oauth/introspect", [("token_type_hint", "access_token")], authorization: Self.bearer)
            #expect(missing.status == .badRequest)
            #expect(missing.code == "invalid_request")
            let twice = try await client.form("/v1/oauth/introspect", [("token", "a"), ("token", "b")], authorization: Self.bearer)
            #expect(twice.status == .badRequest)
            let json = try await client.form("/v1/oauth/revoke", [("token", "a")], authorization: Self.bearer, contentType: "application/json")
            #expect(json.status == .badRequest)
            #expect(json.code == "invalid_request")
        }
    }
}
