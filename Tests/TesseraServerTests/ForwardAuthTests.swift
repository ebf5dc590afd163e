import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

@Suite("Forward-auth: /v1/authz/check")
struct ForwardAuthTests {
    @Test(arguments: [
        (HTTPRequest.Method.get, "/v1/authz/check"),
        (.post, "/v1/authz/check"),
        (.delete, "/v1/authz/check/orders/17?expand=items"),
        (.put, "/v1/authz/check/"),
        (HTTPRequest.Method("PROPFIND")!, "/v1/authz/check/dav/folder"),
    ])
    func aValidTokenIsAnsweredWithTheIdentityInHeaders(method: HTTPRequest.Method, path: String) async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let grant = try await client.register("gateway@example.com")
            let user = try #require(grant.json["user"] as? [String: Any])
            let reply = try await client.call(method, path, body: method == .post ? "ignored" : nil, bearer: grant["access_token"])
            #expect(reply.status == .ok)
            #expect(reply.headers[HTTPField.Name("X-Tessera-User-Id")!] == user["id"] as? String)
            #expect(reply.headers[HTTPField.Name("X-Tessera-Session-Id")!] == grant["session_id"])
            #expect(reply.headers[HTTPField.Name("X-Tessera-Email")!] == "gateway@example.com")
            #expect(reply.headers[HTTPField.Name("X-Tessera-MFA")!] == "false")
            #expect(reply.headers[.cacheControl] == "no-store")
            #expect(reply.body.isEmpty)
        }
    }

    @Test func headIsAnsweredLikeGet() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let grant = try await client.register()
            let reply = try await client.call(.head, "/v1/authz/check", bearer: grant["access_token"])
            #expect(reply.status == .ok)
            #expect(reply.headers[HTTPField.Name("X-Tessera-Session-Id")!] == grant["session_id"])
            #expect(try await client.call(.head, "/v1/authz/check").status == .unauthorized)
        }
    }

    @Test func missingBadExpiredAndRevokedTokensAre401WithAProblem() async throws {
        let tessera = try await TestTessera.make(accessTTL: 60)
        try await tessera.test { client in
            let grant = try await client.register()
            let token = try #require(grant["access_token"])
            func expectRefused(_ bearer: String?, _ code: String) async throws {
                let reply = try await client.call(.get, "/v1/authz/check/app", bearer: bearer)
                #expect(reply.status == .unauthorized)
                #expect(reply.code == code)
                #expect(reply.headers[.contentType] == "application/problem+json")
                #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(reply.headers[HTTPField.Name("X-Tessera-User-Id")!] == nil)
            }
            try await expectRefused(nil, "invalid_token")
            try await expectRefused("not-a-token", "invalid_token")
            // A signature byte changed in the middle (replacing the last two characters with "AA"
            // leaves the token unchanged whenever its last byte is already 0: 1 run in 256).
            var forged = Array(token.utf8)
            forged[forged.count - 20] = forged[forged.count - 20] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            try await expectRefused(String(decoding: forged, as: UTF8.self), "invalid_token")

            // The same token the moment its session is logged out.
            #expect(try await client.call(.get, "/v1/authz/check", bearer: token).status == .ok)
            #expect(try await client.call(.post, "/v1/auth/logout", bearer: token).status == .noContent)
            try await expectRefused(token, "token_revoked")

            let other = try #require(try await client.register()["access_token"])
            tessera.clock.advance(by: 61)
            try await expectRefused(other, "token_expired")
        }
    }

    @Test func mfaHeaderFollowsTheAccount() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let token = try #require(try await client.register()["access_token"])
            let enrolled = try await client.post("/v1/auth/mfa/enroll", ["password": "correct horse"], bearer: token)
            let secret = try #require(enrolled["secret"])
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            #expect(try await client.post("/v1/auth/mfa/confirm", ["code": code, "password": "correct horse"], bearer: token).status == .ok)
            let reply = try await client.call(.get, "/v1/authz/check", bearer: token)
            #expect(reply.headers[HTTPField.Name("X-Tessera-MFA")!] == "true")
        }
    }

    @Test func theAccessCookieIsAcceptedAndAForeignOriginIsRefusedWith403() async throws {
        var tessera = try await TestTessera.make()
        tessera.options.corsOrigins = [WebOrigin(configured: "https://app.example.com")!]
        try await tessera.test { client in
            let (grant, cookies) = try await client.registerWithCookies("cookies@example.com")
            let user = try #require(grant.json["user"] as? [String: Any])
            let cookie: HTTPFields = [.cookie: "__Host-tessera_at=\(try #require(cookies.access))"]
            let reply = try await client.raw(.get, "/v1/authz/check", headers: cookie)
            #expect(reply.status == .ok)
            #expect(reply.headers[HTTPField.Name("X-Tessera-User-Id")!] == user["id"] as? String)
            // The CSRF rule of cookie-authenticated requests holds here too: a client-caused 403, not a 503.
            var foreign = cookie
            foreign[.origin] = "https://evil.example.net"
            let refused = try await client.raw(.post, "/v1/authz/check", headers: foreign)
            #expect(refused.status == .forbidden)
            #expect(refused.code == "csrf_failed")
            var allowed = cookie
            allowed[.origin] = "https://app.example.com"
            #expect(try await client.raw(.post, "/v1/authz/check", headers: allowed).status == .ok)
        }
    }

    @Test func onlyTheCheckPathAndItsSubpathsAreForwardAuth() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let token = try #require(try await client.register()["access_token"])
            #expect(try await client.call(.get, "/v1/authz/checkout", bearer: token).status == .notFound)
            #expect(try await client.call(.get, "/v1/authz", bearer: token).status == .notFound)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: token).status == .ok)
        }
    }
}

@Suite("Trusted proxies")
struct TrustedProxyTests {
    func proxies(_ text: String) throws -> TrustedProxies { try TrustedProxies(parsing: text) }

    @Test(arguments: ["10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/08", "010.0.0.0/8", "10.0.0/8", "1.2.3.4.5", "fd00::1/8",
        "fd00::/129", "localhost", "10.0.0.0/+8", "::ffff:10.0.0.1/8x"])
    func badNetworksAreRefused(text: String) {
        #expect(throws: IPNetwork.ParseError.self) { try TrustedProxies(parsing: text) }
    }

    @Test func networksMatchTheirAddressesOnly() throws {
        let trusted = try proxies("10.0.0.0/8, 192.168.1.7 fd00::/8,::1")
        #expect(trusted.networks.map(\.description) == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128"])
        #expect(trusted.trusts(IPAddress("10.255.0.3")!))
        #expect(!trusted.trusts(IPAddress("11.0.0.1")!))
        #expect(trusted.trusts(IPAddress("192.168.1.7")!))
        #expect(!trusted.trusts(IPAddress("192.168.1.8")!))
        #expect(trusted.trusts(IPAddress("fdab:1::2")!))
        #expect(!trusted.trusts(IPAddress("fe80::1")!))
        // A dual-stack listener reports IPv4 peers as mapped IPv6 addresses.
        #expect(trusted.trusts(IPAddress("::ffff:10.1.2.3")!))
        #expect(try proxies("0.0.0.0/0").trusts(IPAddress("203.0.113.9")!))
        #expect(!(try proxies("0.0.0.0/0").trusts(IPAddress("2001:db8::1")!)))
        #expect(try proxies("").networks.isEmpty)
    }

    @Test func theClientIsTheRightMostUntrustedHop() throws {
        let trusted = try proxies("10.0.0.0/8")
        func client(_ peer: String, _ fields: [(String, String)]) -> String? {
            var headers = HTTPFields()
            for (name, value) in fields { headers.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
            return trusted.clientAddress(peer: peer, headers: headers)
        }
        // A forged left-most entry is not believed: the proxy appended the real peer.
        #expect(client("10.0.0.2", [("X-Forwarded-For", "1.1.1.1, 203.0.113.5")]) == "203.0.113.5")
        #expect(client("10.0.0.2", [("X-Forwarded-For", "1.1.1.1, 203.0.113.5, 10.0.0.9")]) == "203.0.113.5")
        // Several header lines are one list, in order.
        #expect(client("10.0.0.2", [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "203.0.113.5:4711")]) == "203.0.113.5")
        #expect(client("10.0.0.2", [("X-Forwarded-For", "[2001:DB8:0::1]:443")]) == "2001:db8::1")
        // Every hop trusted: the left-most is the client.
        #expect(client("10.0.0.2", [("X-Forwarded-For", "10.1.1.1, 10.0.0.9")]) == "10.1.1.1")
        // Unreadable hop: the walk stops at the last trusted proxy.
        #expect(client("10.0.0.2", [("X-Forwarded-For", "203.0.113.5, garbage")]) == "10.0.0.2")
        // From an untrusted peer the headers are ignored.
        #expect(client("198.51.100.1", [("X-Forwarded-For", "203.0.113.5")]) == "198.51.100.1")
        // RFC 7239, read only when there is no X-Forwarded-For.
        #expect(client("10.0.0.2", [("Forwarded", #"for=1.1.1.1, For="[2001:db8::7]:8080";proto=https"#)]) == "2001:db8::7")
        #expect(client("10.0.0.2", [("Forwarded", "proto=https;for=203.0.113.8")]) == "203.0.113.8")
        #expect(client("10.0.0.2", [("Forwarded", "for=unknown")]) == "10.0.0.2")
        #expect(client("10.0.0.2", [("Forwarded", "for=1.1.1.1"), ("X-Forwarded-For", "203.0.113.5")]) == "203.0.113.5")
        // No headers: the peer.
        #expect(client("10.0.0.2", []) == "10.0.0.2")
    }

    func login(_ client: any TestClientProtocol, forwardedFor: String) async throws -> Reply {
        try await client.call(
            .post, "/v1/auth/login", body: jsonBody(["email": "proxied@example.com", "password": "correct horse"]),
            headers: [HTTPField.Name("X-Forwarded-For")!: forwardedFor]
        )
    }

    /// Two logins per client IP per 10 minutes, behind `trusted`.
    func limitedTessera(trusting trusted: String) async throws -> TestTessera {
        var limits = RateLimitPolicy.unlimited
        limits.perIP[.login] = RateLimit(count: 2, period: 600)
        var tessera = try await TestTessera.make(rateLimits: limits)
        tessera.options.trustedProxies = try proxies(trusted)
        return tessera
    }

    /// The address the session of `grant` records.
    func recordedAddress(_ client: any TestClientProtocol, _ grant: Reply) async throws -> String? {
        let sessions = try await client.call(.get, "/v1/auth/sessions", bearer: grant["access_token"])
        let current = (sessions.json["sessions"] as? [[String: Any]])?.first { $0["current"] as? Bool == true }
        return current?["ip_address"] as? String
    }

    @Test func perIPLoginLimitFollowsForwardedForFromATrustedPeer() async throws {
        let tessera = try await limitedTessera(trusting: "127.0.0.1, ::1")
        try await tessera.test(.live) { client in
            _ = try await client.register("proxied@example.com")
            #expect(try await login(client, forwardedFor: "203.0.113.5").status == .ok)
            let second = try await login(client, forwardedFor: "198.51.100.77, 203.0.113.5")
            #expect(second.status == .ok)
            #expect(try await login(client, forwardedFor: "203.0.113.5").status == .tooManyRequests)
            // Another client behind the same proxy has its own allowance.
            let other = try await login(client, forwardedFor: "203.0.113.6")
            #expect(other.status == .ok)
            // The session records the client, not the proxy.
            #expect(try await recordedAddress(client, other) == "203.0.113.6")
        }
    }

    @Test func forwardedForFromAnUntrustedPeerIsIgnored() async throws {
        let tessera = try await limitedTessera(trusting: "10.0.0.0/8")
        try await tessera.test(.live) { client in
            _ = try await client.register("proxied@example.com")
            #expect(try await login(client, forwardedFor: "203.0.113.1").status == .ok)
            let second = try await login(client, forwardedFor: "203.0.113.2")
            #expect(second.status == .ok)
            // Rotating the header does not buy a fresh allowance.
            #expect(try await login(client, forwardedFor: "203.0.113.3").status == .tooManyRequests)
            let recorded = try #require(try await recordedAddress(client, second))
            #expect(recorded == "127.0.0.1" || recorded == "::1")
        }
    }
}
