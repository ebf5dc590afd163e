import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Tessera
import TesseraServer
import Testing

/// One request exactly as a browser would send it: no default headers.
extension TestClientProtocol {
    func raw(_ method: HTTPRequest.Method, _ uri: String, headers: HTTPFields = [:], body: String? = nil) async throws -> Reply {
        try await execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            Reply(status: response.status, headers: response.headers, body: Data(response.body.readableBytesView))
        }
    }

    /// Registers in cookie mode; returns the answer and its cookies.
    func registerWithCookies(_ email: String = "user-\(UUID().uuidString.prefix(8))@example.com") async throws -> (Reply, BrowserCookies) {
        let reply = try await raw(
            .post, "/v1/auth/register", headers: [.contentType: "application/json", TokenTransportHeader.name: "cookie"],
            body: jsonBody(["email": email, "password": "correct horse"])
        )
        #expect(reply.status == .created)
        return (reply, BrowserCookies(reply.headers))
    }
}

enum TokenTransportHeader {
    static let name = HTTPField.Name("Tessera-Transport")!
}

/// The `Set-Cookie` fields of an answer, by cookie name.
struct BrowserCookies {
    struct Cookie {
        var value: String
        var attributes: [String: String]
    }
    var cookies: [String: Cookie] = [:]

    init(_ headers: HTTPFields) {
        for field in headers[values: .setCookie] {
            let parts = field.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let pair = parts.first, let equals = pair.firstIndex(of: "=") else { continue }
            var attributes: [String: String] = [:]
            for attribute in parts.dropFirst() {
                let kv = attribute.split(separator: "=", maxSplits: 1).map(String.init)
                attributes[kv[0].lowercased()] = kv.count > 1 ? kv[1] : ""
            }
            cookies[String(pair[..<equals])] = Cookie(value: String(pair[pair.index(after: equals)...]), attributes: attributes)
        }
    }

    subscript(_ name: String) -> Cookie? { cookies[name] }
    var access: String? { cookies["__Host-tessera_at"]?.value }
    var refresh: String? { cookies["__Secure-tessera_rt"]?.value }

    /// Both cookies deleted (`Max-Age=0`, empty value, same path and flags as when set).
    var clearsBoth: Bool {
        guard let access = cookies["__Host-tessera_at"], let refresh = cookies["__Secure-tessera_rt"] else { return false }
        return access.value.isEmpty && refresh.value.isEmpty && access.attributes["max-age"] == "0" && refresh.attributes["max-age"] == "0"
            && access.attributes["path"] == "/" && refresh.attributes["path"] == "/v1/auth/refresh"
            && access.attributes["secure"] != nil && refresh.attributes["secure"] != nil
    }
}

private let allowedOrigin = "https://app.example.com"

private func tessera(corsOrigins: [String] = [allowedOrigin]) async throws -> TestTessera {
    var tessera = try await TestTessera.make()
    tessera.options.corsOrigins = corsOrigins.map { WebOrigin(configured: $0)! }
    return tessera
}

@Suite("Browser: cookie mode")
struct CookieModeTests {
    @Test func cookieModePutsTheTokensInHttpOnlyCookiesAndOutOfTheBody() async throws {
        try await tessera().test { client in
            let (reply, cookies) = try await client.registerWithCookies("cookie@example.com")
            let json = reply.json
            #expect(json["access_token"] == nil && json["refresh_token"] == nil)
            #expect(json["token_type"] as? String == "Bearer")
            #expect(json["expires_in"] as? Int == 900)
            #expect(json["refresh_expires_in"] as? Int == 604_800)
            #expect(json["session_id"] is String)
            #expect((json["user"] as? [String: Any])?["email"] as? String == "cookie@example.com")

            let access = try #require(cookies["__Host-tessera_at"])
            #expect(access.value.split(separator: ".").count == 3)
            #expect(access.attributes["httponly"] != nil && access.attributes["secure"] != nil)
            #expect(access.attributes["samesite"] == "Lax")
            #expect(access.attributes["path"] == "/")
            #expect(access.attributes["max-age"] == "900")
            #expect(access.attributes["domain"] == nil)
            let refresh = try #require(cookies["__Secure-tessera_rt"])
            #expect(refresh.value.hasPrefix("tsr1."))
            #expect(refresh.attributes["httponly"] != nil && refresh.attributes["secure"] != nil)
            #expect(refresh.attributes["samesite"] == "Strict")
            #expect(refresh.attributes["path"] == "/v1/auth/refresh")
            #expect(refresh.attributes["max-age"] == "604800")
        }
    }

    @Test func loginInCookieModeAndBearerModeByDefault() async throws {
        try await tessera().test { client in
            _ = try await client.register("both@example.com")
            let bearer = try await client.login("both@example.com")
            #expect(bearer["access_token"] != nil)
            #expect(bearer.headers[values: .setCookie].isEmpty)
            let cookie = try await client.raw(
                .post, "/v1/auth/login", headers: [.contentType: "application/json", TokenTransportHeader.name: "Cookie"],
                body: jsonBody(["email": "both@example.com", "password": "correct horse"])
            )
            #expect(cookie.status == .ok)
            #expect(cookie["access_token"] == nil)
            #expect(BrowserCookies(cookie.headers).access != nil)
            let unknown = try await client.raw(
                .post, "/v1/auth/login", headers: [.contentType: "application/json", TokenTransportHeader.name: "carrier-pigeon"],
                body: jsonBody(["email": "both@example.com", "password": "correct horse"])
            )
            #expect(unknown.status == .unprocessableContent)
            #expect(unknown.code == "invalid_request")
        }
    }

    @Test func theAccessCookieAuthenticatesAndAnAuthorizationHeaderWins() async throws {
        try await tessera().test { client in
            let (_, cookies) = try await client.registerWithCookies("me@example.com")
            let me = try await client.raw(.get, "/v1/auth/me", headers: [.cookie: "theme=dark; __Host-tessera_at=\(cookies.access!)"])
            #expect(me.status == .ok)
            #expect(me["email"] == "me@example.com")
            let both = try await client.raw(
                .get, "/v1/auth/me", headers: [.cookie: "__Host-tessera_at=\(cookies.access!)", .authorization: "Bearer not-a-token"]
            )
            #expect(both.status == .unauthorized)
            #expect(both.code == "invalid_token")
            // A cookie of a lookalike name is not the access cookie.
            let lookalike = try await client.raw(.get, "/v1/auth/me", headers: [.cookie: "tessera_at=\(cookies.access!)"])
            #expect(lookalike.status == .unauthorized)
        }
    }

    @Test func refreshReadsTheRefreshCookieAndAnswersWithNewCookies() async throws {
        try await tessera().test { client in
            let (_, cookies) = try await client.registerWithCookies()
            // Same-origin pages send their own origin; Referer counts when Origin is absent.
            for origin: HTTPField in [HTTPField(name: .origin, value: "http://localhost"), HTTPField(name: .referer, value: "\(allowedOrigin)/app?x=1")] {
                var headers: HTTPFields = [.cookie: "__Secure-tessera_rt=\(cookies.refresh!)"]
                headers.append(origin)
                let refreshed = try await client.raw(.post, "/v1/auth/refresh", headers: headers)
                #expect(refreshed.status == .ok, "\(origin)")
                #expect(refreshed["access_token"] == nil && refreshed["refresh_token"] == nil)
                let renewed = BrowserCookies(refreshed.headers)
                #expect(renewed.refresh != nil && renewed.refresh != cookies.refresh)
                #expect(renewed.access != nil && renewed.access != cookies.access)
            }
        }
    }

    @Test func aRefreshWithoutAnyTokenIsRefusedAndClearsTheCookies() async throws {
        try await tessera().test { client in
            let none = try await client.raw(.post, "/v1/auth/refresh", headers: [TokenTransportHeader.name: "cookie"])
            #expect(none.status == .unauthorized)
            #expect(none.code == "invalid_refresh_token")
            #expect(BrowserCookies(none.headers).clearsBoth)
            // Bearer clients still learn which field is missing.
            let bearer = try await client.call(.post, "/v1/auth/refresh", body: "{}")
            #expect(bearer.status == .unprocessableContent)
            #expect(bearer["detail"]?.contains("refresh_token") == true)
        }
    }

    @Test func everyAnswerThatEndsTheSessionClearsBothCookies() async throws {
        try await tessera().test { client in
            let own = [HTTPField(name: .origin, value: "http://localhost")]
            func withCookie(_ token: String) -> HTTPFields {
                var headers: HTTPFields = [.cookie: "__Host-tessera_at=\(token)"]
                headers.append(contentsOf: own)
                return headers
            }
            let (_, first) = try await client.registerWithCookies("ends@example.com")
            let logout = try await client.raw(.post, "/v1/auth/logout", headers: withCookie(first.access!))
            #expect(logout.status == .noContent)
            #expect(BrowserCookies(logout.headers).clearsBoth)
            #expect(try await client.raw(.get, "/v1/auth/me", headers: withCookie(first.access!)).code == "token_revoked")

            let second = BrowserCookies(try await cookieLogin(client, "ends@example.com").headers)
            let all = try await client.raw(.post, "/v1/auth/logout-all", headers: withCookie(second.access!))
            #expect(all.status == .noContent)
            #expect(BrowserCookies(all.headers).clearsBoth)

            // Revoking another device's session leaves this browser signed in; revoking its own does not.
            let laptop = BrowserCookies(try await cookieLogin(client, "ends@example.com").headers)
            let phone = try await client.login("ends@example.com", device: "phone")
            let other = try await client.raw(.delete, "/v1/auth/sessions/\(phone["session_id"]!)", headers: withCookie(laptop.access!))
            #expect(other.status == .noContent)
            #expect(other.headers[values: .setCookie].isEmpty)
            let sessions = try await client.raw(.get, "/v1/auth/sessions", headers: withCookie(laptop.access!))
            let current = try #require((sessions.json["sessions"] as? [[String: Any]])?.first { $0["current"] as? Bool == true })
            let mine = try await client.raw(.delete, "/v1/auth/sessions/\(current["id"] as! String)", headers: withCookie(laptop.access!))
            #expect(mine.status == .noContent)
            #expect(BrowserCookies(mine.headers).clearsBoth)
        }
    }

    @Test func aReusedRefreshCookieAndAPasswordResetClearTheCookies() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let (_, cookies) = try await client.registerWithCookies("reuse@example.com")
            let refreshHeaders: HTTPFields = [.cookie: "__Secure-tessera_rt=\(cookies.refresh!)", .origin: allowedOrigin]
            #expect(try await client.raw(.post, "/v1/auth/refresh", headers: refreshHeaders).status == .ok)
            tessera.clock.advance(by: 11)  // past the grace window
            let reused = try await client.raw(.post, "/v1/auth/refresh", headers: refreshHeaders)
            #expect(reused.code == "refresh_token_reused")
            #expect(BrowserCookies(reused.headers).clearsBoth)

            _ = try await client.post("/v1/auth/password/forgot", ["email": "reuse@example.com"])
            let token = try #require(try await waitForOutbox(tessera.outbox, count: 1).first?["token"] as? String)
            let reset = try await client.post("/v1/auth/password/reset", ["token": token, "new_password": "another horse"])
            #expect(reset.status == .noContent)
            #expect(BrowserCookies(reset.headers).clearsBoth)
        }
    }

    private func cookieLogin(_ client: any TestClientProtocol, _ email: String) async throws -> Reply {
        let reply = try await client.raw(
            .post, "/v1/auth/login", headers: [.contentType: "application/json", TokenTransportHeader.name: "cookie"],
            body: jsonBody(["email": email, "password": "correct horse"])
        )
        #expect(reply.status == .ok)
        return reply
    }
}

@Suite("Browser: CSRF defence")
struct CSRFTests {
    @Test(arguments: [
        ["origin": "https://evil.example.com"],
        ["origin": "https://app.example.com.evil.example"],
        ["origin": "http://app.example.com"],  // the scheme counts
        ["origin": "null"],
        ["referer": "https://evil.example.com/\(allowedOrigin)"],
        [:],  // neither Origin nor Referer
    ])
    func aCookieAuthenticatedLogoutFromAnotherOriginIsRefusedAndChangesNothing(origin: [String: String]) async throws {
        try await tessera().test { client in
            let (_, cookies) = try await client.registerWithCookies()
            var headers: HTTPFields = [.cookie: "__Host-tessera_at=\(cookies.access!)"]
            if let value = origin["origin"] { headers[.origin] = value }
            if let value = origin["referer"] { headers[.referer] = value }
            let refused = try await client.raw(.post, "/v1/auth/logout", headers: headers)
            #expect(refused.status == .forbidden)
            #expect(refused.code == "csrf_failed")
            #expect(refused.headers[.contentType] == "application/problem+json")
            #expect(refused.headers[values: .setCookie].isEmpty)
            // The session survives: the same cookie still works, and so does its refresh cookie.
            #expect(try await client.raw(.get, "/v1/auth/me", headers: [.cookie: "__Host-tessera_at=\(cookies.access!)"]).status == .ok)
            var refresh: HTTPFields = [.cookie: "__Secure-tessera_rt=\(cookies.refresh!)"]
            if let value = origin["origin"] { refresh[.origin] = value }
            #expect(try await client.raw(.post, "/v1/auth/refresh", headers: refresh).code == "csrf_failed")
            refresh[.origin] = allowedOrigin
            #expect(try await client.raw(.post, "/v1/auth/refresh", headers: refresh).status == .ok)
        }
    }

    @Test func allowedAndOwnOriginsPassAndBearerRequestsAreNotAffected() async throws {
        try await tessera().test { client in
            let (_, a) = try await client.registerWithCookies()
            let allowed = try await client.raw(.post, "/v1/auth/logout", headers: [.cookie: "__Host-tessera_at=\(a.access!)", .origin: allowedOrigin])
            #expect(allowed.status == .noContent)
            let (_, b) = try await client.registerWithCookies()
            let own = try await client.raw(.post, "/v1/auth/logout", headers: [.cookie: "__Host-tessera_at=\(b.access!)", .origin: "http://LOCALHOST:80"])
            #expect(own.status == .noContent)
            let bearer = try await client.register()
            let header = try await client.raw(
                .post, "/v1/auth/logout", headers: [.authorization: "Bearer \(bearer["access_token"]!)", .origin: "https://evil.example.com"]
            )
            #expect(header.status == .noContent)
        }
    }

    @Test func forwardAuthAcceptsTheAccessCookieUnderTheSameRule() async throws {
        try await tessera().test { client in
            let (_, cookies) = try await client.registerWithCookies()
            let cookie = "__Host-tessera_at=\(cookies.access!)"
            #expect(try await client.raw(.get, "/v1/authz/check/orders", headers: [.cookie: cookie]).status == .ok)
            #expect(try await client.raw(.post, "/v1/authz/check/orders", headers: [.cookie: cookie, .origin: allowedOrigin]).status == .ok)
            let refused = try await client.raw(.post, "/v1/authz/check/orders", headers: [.cookie: cookie, .origin: "https://evil.example.com"])
            #expect(refused.status == .forbidden)
            #expect(refused.code == "csrf_failed")
        }
    }

    @Test func safeMethodsNeedNoOrigin() async throws {
        try await tessera().test { client in
            let (_, cookies) = try await client.registerWithCookies()
            let me = try await client.raw(.get, "/v1/auth/me", headers: [.cookie: "__Host-tessera_at=\(cookies.access!)", .origin: "https://evil.example.com"])
            #expect(me.status == .ok)
        }
    }
}

@Suite("Browser: JSON content type")
struct ContentTypeTests {
    @Test(arguments: ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", nil])
    func jsonEndpointsRefuseOtherContentTypes(type: String?) async throws {
        try await tessera().test { client in
            var headers: HTTPFields = [:]
            if let type { headers[.contentType] = type }
            let body = jsonBody(["email": "form@example.com", "password": "correct horse"])
            let reply = try await client.raw(.post, "/v1/auth/register", headers: headers, body: body)
            #expect(reply.status == .unsupportedMediaType)
            #expect(reply.code == "unsupported_media_type")
            #expect(reply.headers[.contentType] == "application/problem+json")
            // Nothing was created: the same email registers fine as JSON.
            let json = try await client.raw(.post, "/v1/auth/register", headers: [.contentType: "Application/JSON; charset=utf-8"], body: body)
            #expect(json.status == .created)
        }
    }

    @Test func credentialsAndRefreshBodiesMustBeJSONToo() async throws {
        try await tessera().test { client in
            let registered = try await client.register()
            let put = try await client.raw(
                .put, "/v1/auth/session/credentials/github",
                headers: [.contentType: "text/plain", .authorization: "Bearer \(registered["access_token"]!)"], body: #"{"a":1}"#
            )
            #expect(put.status == .unsupportedMediaType)
            let refresh = try await client.raw(
                .post, "/v1/auth/refresh", headers: [.contentType: "text/plain"], body: jsonBody(["refresh_token": registered["refresh_token"]!])
            )
            #expect(refresh.status == .unsupportedMediaType)
        }
    }
}

@Suite("Browser: CORS")
struct CORSTests {
    @Test func preflightsFromAnAllowedOriginAnswer204WithTheAPIsHeadersAndMethods() async throws {
        try await tessera(corsOrigins: ["https://other.example.com", "HTTPS://App.Example.com:443/"]).test { client in
            let reply = try await client.raw(
                .options, "/v1/auth/login",
                headers: [.origin: allowedOrigin, .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "content-type, tessera-transport"]
            )
            #expect(reply.status == .noContent)
            #expect(reply.headers[.accessControlAllowOrigin] == allowedOrigin)
            #expect(reply.headers[.accessControlAllowCredentials] == "true")
            let methods = reply.headers[.accessControlAllowMethods] ?? ""
            #expect(["GET", "POST", "PUT", "DELETE"].allSatisfy(methods.contains))
            let headers = reply.headers[.accessControlAllowHeaders]?.lowercased() ?? ""
            #expect(["authorization", "content-type", "tessera-transport"].allSatisfy(headers.contains))
            #expect(reply.headers[values: .vary].contains("Origin"))
        }
    }

    @Test func answersToAnAllowedOriginCarryCORSHeadersErrorsIncluded() async throws {
        try await tessera().test { client in
            let me = try await client.raw(.get, "/v1/auth/me", headers: [.origin: allowedOrigin])
            #expect(me.status == .unauthorized)
            #expect(me.headers[.accessControlAllowOrigin] == allowedOrigin)
            #expect(me.headers[.accessControlAllowCredentials] == "true")
            #expect(me.headers[.accessControlExposeHeaders]?.contains("Retry-After") == true)
            #expect(me.headers[values: .vary].contains("Origin"))
        }
    }

    @Test func otherOriginsGetNoCORSHeaders() async throws {
        try await tessera().test { client in
            for origin in ["https://evil.example.com", "null", "http://app.example.com"] {
                let preflight = try await client.raw(.options, "/v1/auth/logout", headers: [.origin: origin, .accessControlRequestMethod: "POST"])
                #expect(preflight.headers[.accessControlAllowOrigin] == nil, "\(origin)")
                #expect(preflight.headers[.accessControlAllowCredentials] == nil)
                #expect(preflight.status != .noContent)
                let get = try await client.raw(.get, "/health", headers: [.origin: origin])
                #expect(get.status == .ok)
                #expect(get.headers[.accessControlAllowOrigin] == nil)
            }
        }
    }

    @Test func withoutCORSOriginsThereIsNoCORSAtAll() async throws {
        try await tessera(corsOrigins: []).test { client in
            let get = try await client.raw(.get, "/health", headers: [.origin: allowedOrigin])
            #expect(get.headers[.accessControlAllowOrigin] == nil)
            #expect(get.headers[.vary] == nil)
            let preflight = try await client.raw(.options, "/v1/auth/login", headers: [.origin: allowedOrigin, .accessControlRequestMethod: "POST"])
            #expect(preflight.headers[.accessControlAllowOrigin] == nil)
        }
    }
}

@Suite("Browser: the JavaScript client")
struct ClientScriptTests {
    static var file: Data {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            return try Data(contentsOf: root.appendingPathComponent("clients/js/tessera.js"))
        }
    }

    @Test func theServedScriptIsTheFileByteForByte() async throws {
        try await tessera().test { client in
            let reply = try await client.raw(.get, "/v1/client/tessera.js")
            #expect(reply.status == .ok)
            #expect(reply.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(reply.headers[.cacheControl]?.hasPrefix("public") == true)
            // If this fails, run scripts/generate-client.
            #expect(reply.body == (try Self.file), "the embedded client differs from clients/js/tessera.js: run scripts/generate-client")
        }
    }

    @Test func anUnchangedScriptAnswers304() async throws {
        try await tessera().test { client in
            let first = try await client.raw(.get, "/v1/client/tessera.js")
            let etag = try #require(first.headers[.eTag])
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\"") && etag.count > 10)
            for presented in [etag, "W/\(etag)", "\"other\", \(etag)", "*"] {
                let again = try await client.raw(.get, "/v1/client/tessera.js", headers: [.ifNoneMatch: presented])
                #expect(again.status == .notModified, "\(presented)")
                #expect(again.body.isEmpty)
                #expect(again.headers[.eTag] == etag)
            }
            let stale = try await client.raw(.get, "/v1/client/tessera.js", headers: [.ifNoneMatch: "\"0123\""])
            #expect(stale.status == .ok)
            #expect(stale.body == first.body)
        }
    }

    @Test func allowedOriginsMayImportIt() async throws {
        try await tessera().test { client in
            let reply = try await client.raw(.get, "/v1/client/tessera.js", headers: [.origin: allowedOrigin])
            #expect(reply.headers[.accessControlAllowOrigin] == allowedOrigin)
        }
    }
}

@Suite("Browser: parsing")
struct BrowserParsingTests {
    @Test func originsAreNormalizedAsBrowsersSendThem() {
        #expect(WebOrigin(configured: "HTTPS://App.Example.COM/")?.serialized == "https://app.example.com")
        #expect(WebOrigin(configured: "https://app.example.com:443")?.serialized == "https://app.example.com")
        #expect(WebOrigin(configured: "http://127.0.0.1:8080")?.serialized == "http://127.0.0.1:8080")
        #expect(WebOrigin(configured: "http://[::1]:3000")?.serialized == "http://[::1]:3000")
        for bad in ["app.example.com", "ftp://app.example.com", "https://", "https://app.example.com/path", "https://a@b.com",
            "https://app.example.com:0", "https://app.example.com:99999", "https://app.example.com:80a", "*", "https://app.example.com?x"]
        {
            #expect(WebOrigin(configured: bad) == nil, "\(bad)")
        }
    }

    @Test func theBearerSchemeIsCaseInsensitiveAndSpacesAroundTheTokenDoNotCount() async throws {
        try await tessera().test { client in
            let token = try await client.register()["access_token"]!
            for header in ["Bearer \(token)", "bearer \(token)", "BEARER   \(token)  ", "Bearer\t\(token)"] {
                #expect(try await client.raw(.get, "/v1/auth/me", headers: [.authorization: header]).status == .ok, "\(header)")
            }
            for header in ["Bearer", "Bearer ", "Bearerx \(token)", "Basic \(token)", token] {
                #expect(try await client.raw(.get, "/v1/auth/me", headers: [.authorization: header]).code == "invalid_token", "\(header)")
            }
        }
    }
}
