import Foundation
import Synchronization
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

@Suite("Sessions per device (HTTP)")
struct SessionsAPITests {
    @Test func listsLiveSessionsAndMarksTheCallers() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "devices@example.com"
            let first = try await client.register(email)
            tessera.clock.advance(by: 1)
            let phone = try await client.login(email, device: "phone")
            let list = try await client.call(.get, "/v1/auth/sessions", bearer: phone["access_token"])
            #expect(list.status == .ok)
            let sessions = try #require(list.json["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2)
            #expect(sessions.map { $0["id"] as? String } == [first["session_id"], phone["session_id"]])
            #expect(sessions.map { $0["current"] as? Bool } == [false, true])
            #expect(sessions[1]["device"] as? String == "phone")
            for session in sessions {
                for field in ["created_at", "last_used_at", "expires_at"] {
                    let value = try #require(session[field] as? String, "\(field)")
                    #expect(try Date(value, strategy: .iso8601) > Date(timeIntervalSince1970: 0))
                }
                #expect(session.keys.contains("user_agent") && session.keys.contains("ip_address"))
            }
        }
    }

    @Test func deletingASessionEndsItsTokens() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "delete-one@example.com"
            let laptop = try await client.register(email)
            let phone = try await client.login(email, device: "phone")
            let deleted = try await client.call(.delete, "/v1/auth/sessions/\(phone["session_id"]!)", bearer: laptop["access_token"])
            #expect(deleted.status == .noContent)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: phone["access_token"]).code == "token_revoked")
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": phone["refresh_token"]!]).code == "invalid_refresh_token")
            let list = try await client.call(.get, "/v1/auth/sessions", bearer: laptop["access_token"])
            #expect((list.json["sessions"] as? [[String: Any]])?.count == 1)
            // Gone now: a second delete is a 404 like any unknown id.
            let again = try await client.call(.delete, "/v1/auth/sessions/\(phone["session_id"]!)", bearer: laptop["access_token"])
            #expect(again.status == .notFound)
            #expect(again.code == "session_not_found")
        }
    }

    @Test func anotherUsersSessionIsNotFoundAndStaysAlive() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let alice = try await client.register("alice-sessions@example.com")
            let bob = try await client.register("bob-sessions@example.com")
            let reply = try await client.call(.delete, "/v1/auth/sessions/\(bob["session_id"]!)", bearer: alice["access_token"])
            #expect(reply.status == .notFound)
            #expect(reply.code == "session_not_found")
            #expect(try await client.call(.get, "/v1/auth/me", bearer: bob["access_token"]).status == .ok)
            #expect(try await client.call(.delete, "/v1/auth/sessions/nope", bearer: alice["access_token"]).code == "session_not_found")
            #expect(try await client.call(.get, "/v1/auth/sessions").code == "invalid_token")
        }
    }
}

@Suite("Passwords (HTTP)")
struct PasswordAPITests {
    @Test func changingThePasswordEndsEveryOtherSession() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "change@example.com"
            let caller = try await client.register(email)
            let other = try await client.login(email)
            let wrong = try await client.post(
                "/v1/auth/password/change", ["current_password": "not it at all", "new_password": "brand new secret"],
                bearer: caller["access_token"]
            )
            #expect(wrong.status == .unauthorized)
            #expect(wrong.code == "invalid_credentials")
            let weak = try await client.post(
                "/v1/auth/password/change", ["current_password": "correct horse", "new_password": "short"], bearer: caller["access_token"]
            )
            #expect(weak.status == .unprocessableContent)
            let changed = try await client.post(
                "/v1/auth/password/change", ["current_password": "correct horse", "new_password": "brand new secret"],
                bearer: caller["access_token"]
            )
            #expect(changed.status == .noContent)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: other["access_token"]).code == "token_revoked")
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": other["refresh_token"]!]).code == "invalid_refresh_token")
            #expect(try await client.call(.get, "/v1/auth/me", bearer: caller["access_token"]).status == .ok)
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": caller["refresh_token"]!]).status == .ok)
            #expect(try await client.login(email).code == "invalid_credentials")
            #expect(try await client.login(email, "brand new secret").status == .ok)
        }
    }

    @Test func forgotAnswersTheSameForUnknownEmailsAndWritesTheTokenToTheOutbox() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "forgot@example.com"
            _ = try await client.register(email)
            let unknown = try await client.post("/v1/auth/password/forgot", ["email": "nobody@example.com"])
            let known = try await client.post("/v1/auth/password/forgot", ["email": email])
            #expect(unknown.status == .accepted)
            #expect(known.status == .accepted)
            #expect(unknown.body == known.body)
            let messages = try await waitForOutbox(tessera.outbox, count: 1)
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message["to"] as? String == email)
            #expect(message["kind"] as? String == "password_reset")
            let token = try #require(message["token"] as? String)
            #expect(token.hasPrefix("tsp1."))
            // The file holds a live token: owner-only.
            let files = try FileManager.default.contentsOfDirectory(atPath: tessera.outbox)
            let attributes = try FileManager.default.attributesOfItem(atPath: "\(tessera.outbox)/\(files[0])")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
    }

    @Test func aResetTokenWorksOnceAndEndsEverySession() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "reset@example.com"
            let session = try await client.register(email)
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            let token = try #require(try await waitForOutbox(tessera.outbox, count: 1).first?["token"] as? String)

            // A weak password is refused before the token is spent.
            let weak = try await client.post("/v1/auth/password/reset", ["token": token, "new_password": "short"])
            #expect(weak.status == .unprocessableContent)
            let reset = try await client.post("/v1/auth/password/reset", ["token": token, "new_password": "reset and renewed"])
            #expect(reset.status == .noContent)
            let again = try await client.post("/v1/auth/password/reset", ["token": token, "new_password": "another password"])
            #expect(again.status == .badRequest)
            #expect(again.code == "invalid_reset_token")

            #expect(try await client.call(.get, "/v1/auth/me", bearer: session["access_token"]).code == "token_revoked")
            #expect(try await client.post("/v1/auth/refresh", ["refresh_token": session["refresh_token"]!]).code == "invalid_refresh_token")
            #expect(try await client.login(email).code == "invalid_credentials")
            #expect(try await client.login(email, "reset and renewed").status == .ok)
        }
    }

    /// Outbox files hold live tokens: they go once the token is used, replaced or expired.
    @Test func outboxFilesAreDeletedOnceTheirTokenIsUsedReplacedOrExpired() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "outbox-cleanup@example.com"
            _ = try await client.register(email)
            func files() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: tessera.outbox)) ?? []).filter { $0.hasSuffix(".json") } }
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            let first = try #require(try await waitForOutbox(tessera.outbox, count: 1).first?["token"] as? String)
            tessera.clock.advance(by: 1)
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            let second = try await waitForToken(tessera.outbox, other: first)
            // The replaced token's file went; only the newer one is left.
            #expect(outboxMessages(tessera.outbox).compactMap { $0["token"] as? String } == [second])
            #expect(try await client.post("/v1/auth/password/reset", ["token": second, "new_password": "fresh password"]).status == .noContent)
            #expect(files().isEmpty)

            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            _ = try await waitForOutbox(tessera.outbox, count: 1)
            #expect(tessera.service.security.notifier.purgeExpired() == 0)
            tessera.clock.advance(by: 3601)
            #expect(tessera.service.security.notifier.purgeExpired() == 1)
            #expect(files().isEmpty)
        }
    }

    @Test func aNewResetTokenReplacesTheOldAndTokensExpire() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "reset-twice@example.com"
            _ = try await client.register(email)
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            let first = try #require(try await waitForOutbox(tessera.outbox, count: 1).first?["token"] as? String)
            tessera.clock.advance(by: 1)
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            let second = try await waitForToken(tessera.outbox, other: first)
            #expect(first != second)
            #expect(try await client.post("/v1/auth/password/reset", ["token": first, "new_password": "first try pass"]).code == "invalid_reset_token")

            tessera.clock.advance(by: 3601)
            #expect(try await client.post("/v1/auth/password/reset", ["token": second, "new_password": "too late now"]).code == "invalid_reset_token")
            for garbage in ["", "tsp1.x.y", "tsr1.a.b.1.c", String(repeating: "a", count: 300)] {
                let reply = try await client.post("/v1/auth/password/reset", ["token": garbage, "new_password": "whatever works"])
                #expect(reply.code == "invalid_reset_token", "\(garbage)")
            }
        }
    }
}

@Suite("TOTP MFA (HTTP)")
struct MFAAPITests {
    static let password = "correct horse"

    /// Registers, enrols and confirms MFA; returns the session reply and the base32 secret.
    static func enrolled(_ client: any TestClientProtocol, _ tessera: TestTessera, email: String) async throws -> (Reply, String) {
        let (session, secret, _) = try await enrolledWithCodes(client, tessera, email: email)
        return (session, secret)
    }

    /// As `enrolled`, with the recovery codes the confirmation answered.
    static func enrolledWithCodes(
        _ client: any TestClientProtocol, _ tessera: TestTessera, email: String
    ) async throws -> (Reply, String, [String]) {
        let session = try await client.register(email)
        let enrollment = try await client.post("/v1/auth/mfa/enroll", ["password": password], bearer: session["access_token"])
        #expect(enrollment.status == .ok)
        let secret = try #require(enrollment["secret"])
        let confirm = try await client.post(
            "/v1/auth/mfa/confirm", ["code": TestTOTP.code(secret: secret, at: tessera.clock.now()), "password": password],
            bearer: session["access_token"]
        )
        #expect(confirm.status == .ok)
        let codes = try #require(confirm.json["recovery_codes"] as? [String])
        return (session, secret, codes)
    }

    @Test func enrolConfirmAndLoginWithASecondFactor() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "mfa@example.com"
            let session = try await client.register(email)
            let enrollment = try await client.post("/v1/auth/mfa/enroll", ["password": Self.password], bearer: session["access_token"])
            let secret = try #require(enrollment["secret"])
            let uri = try #require(enrollment["otpauth_uri"])
            #expect(uri.hasPrefix("otpauth://totp/"))
            #expect(uri.contains("secret=\(secret)"))
            #expect(uri.contains("issuer=Tessera"))
            #expect(TestTOTP.decodeBase32(secret).count >= 20)
            // Not on until a code proves the app has the secret.
            #expect(try await client.call(.get, "/v1/auth/me", bearer: session["access_token"]).json["mfa_enabled"] as? Bool == false)
            let wrong = try await client.post("/v1/auth/mfa/confirm", ["code": "000000", "password": Self.password], bearer: session["access_token"])
            #expect(wrong.code == "invalid_mfa_code")
            #expect(try await client.login(email).json["access_token"] != nil)

            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            let confirmed = try await client.post("/v1/auth/mfa/confirm", ["code": code, "password": Self.password], bearer: session["access_token"])
            #expect(confirmed.status == .ok)
            #expect(confirmed.headers[.cacheControl] == "no-store")
            #expect((confirmed.json["recovery_codes"] as? [String])?.count == 10)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: session["access_token"]).json["mfa_enabled"] as? Bool == true)

            let login = try await client.login(email, device: "tablet")
            #expect(login.status == .ok)
            #expect(login.json["mfa_required"] as? Bool == true)
            #expect(login.json["expires_in"] as? Int == 300)
            #expect(login.json["access_token"] == nil && login.json["refresh_token"] == nil)
            let mfaToken = try #require(login["mfa_token"])

            tessera.clock.advance(by: 30)
            let verified = try await client.post(
                "/v1/auth/mfa/verify", ["mfa_token": mfaToken, "code": TestTOTP.code(secret: secret, at: tessera.clock.now())]
            )
            #expect(verified.status == .ok)
            let access = try #require(verified["access_token"])
            #expect(try await client.call(.get, "/v1/auth/me", bearer: access).status == .ok)
            let sessions = try await client.call(.get, "/v1/auth/sessions", bearer: access).json["sessions"] as? [[String: Any]]
            #expect(sessions?.last?["device"] as? String == "tablet")
            // One-time: the same MFA token cannot start a second session.
            tessera.clock.advance(by: 30)
            let reused = try await client.post(
                "/v1/auth/mfa/verify", ["mfa_token": mfaToken, "code": TestTOTP.code(secret: secret, at: tessera.clock.now())]
            )
            #expect(reused.code == "invalid_mfa_token")
        }
    }

    @Test func aCodeIsAcceptedOnceAndWithinOneStepOfSkew() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "mfa-skew@example.com"
            let (_, secret) = try await Self.enrolled(client, tessera, email: email)
            tessera.clock.advance(by: 60)
            let now = tessera.clock.now()

            func verify(_ code: String) async throws -> Reply {
                let login = try await client.login(email)
                return try await client.post("/v1/auth/mfa/verify", ["mfa_token": login["mfa_token"]!, "code": code])
            }
            // Two steps away: refused.
            #expect(try await verify(TestTOTP.code(secret: secret, at: now.addingTimeInterval(-60))).code == "invalid_mfa_code")
            #expect(try await verify(TestTOTP.code(secret: secret, at: now.addingTimeInterval(60))).code == "invalid_mfa_code")
            // One step behind (a slow phone) and one ahead: accepted.
            let previous = TestTOTP.code(secret: secret, at: now.addingTimeInterval(-30))
            #expect(try await verify(previous).status == .ok)
            #expect(try await verify(TestTOTP.code(secret: secret, at: now.addingTimeInterval(30))).status == .ok)
            // The same code again, within its window: a replay.
            #expect(try await verify(previous).code == "invalid_mfa_code")
        }
    }

    @Test func anMFATokenDiesAfterFiveWrongCodesAndAfterFiveMinutes() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "mfa-attempts@example.com"
            let (_, secret) = try await Self.enrolled(client, tessera, email: email)
            tessera.clock.advance(by: 30)
            let login = try await client.login(email)
            let token = try #require(login["mfa_token"])
            for attempt in 1...5 {
                let reply = try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": "12345\(attempt)"])
                #expect(reply.status == .unauthorized)
                #expect(reply.code == "invalid_mfa_code", "attempt \(attempt)")
            }
            let right = TestTOTP.code(secret: secret, at: tessera.clock.now())
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": right]).code == "invalid_mfa_token")

            let late = try #require(try await client.login(email)["mfa_token"])
            tessera.clock.advance(by: 301)
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": late, "code": code]).code == "invalid_mfa_token")
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": "tsm1.x.y", "code": code]).code == "invalid_mfa_token")
        }
    }

    @Test func disableNeedsACodeAndStateErrorsAreConflicts() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "mfa-disable@example.com"
            let fresh = try await client.register("mfa-none@example.com")
            let password = Self.password
            let confirmFirst = try await client.post("/v1/auth/mfa/confirm", ["code": "123456", "password": password], bearer: fresh["access_token"])
            #expect(confirmFirst.status == .conflict)
            #expect(confirmFirst.code == "mfa_not_enrolled")
            let disableFirst = try await client.post("/v1/auth/mfa/disable", ["code": "123456", "password": password], bearer: fresh["access_token"])
            #expect(disableFirst.code == "mfa_not_enrolled")

            let (session, secret) = try await Self.enrolled(client, tessera, email: email)
            let bearer = session["access_token"]
            #expect(try await client.post("/v1/auth/mfa/enroll", ["password": password], bearer: bearer).code == "mfa_already_enabled")
            #expect(try await client.post("/v1/auth/mfa/disable", ["code": "000000", "password": password], bearer: bearer).code == "invalid_mfa_code")
            tessera.clock.advance(by: 30)
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            // The right code without the password is not enough.
            #expect(try await client.post("/v1/auth/mfa/disable", ["code": code], bearer: bearer).code == "invalid_request")
            #expect(try await client.post("/v1/auth/mfa/disable", ["code": code, "password": "not my password"], bearer: bearer).code == "invalid_credentials")
            #expect(try await client.post("/v1/auth/mfa/disable", ["code": code, "password": password], bearer: bearer).status == .noContent)
            #expect(try await client.login(email).json["access_token"] != nil)
            #expect(try await client.post("/v1/auth/mfa/confirm", [:], bearer: bearer).code == "invalid_request")
        }
    }

    @Test func theSecretIsStoredSealed() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let (session, secret) = try await Self.enrolled(client, tessera, email: "mfa-sealed@example.com")
            let userID = try #require((session.json["user"] as? [String: Any])?["id"] as? String)
            let stored = try #require(try await tessera.service.users.user(id: userID)?.mfaSecret)
            let raw = String(decoding: TestTOTP.decodeBase32(secret), as: UTF8.self)
            #expect(!stored.contains(secret) && !stored.contains(raw))
            #expect(stored.hasPrefix("v1."))
            // Bound to its owner: the same ciphertext does not open as another user's secret.
            #expect(throws: SecretBoxError.self) { try tessera.service.security.secrets.open(stored, context: "totp|someone-else") }
        }
    }
}

@Suite("Rate limits and lockout (HTTP)")
struct RateLimitAPITests {
    @Test func perAccountLoginLimitAnswers429WithRetryAfter() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.perAccount[.login] = RateLimit(count: 3, period: 60)
        let tessera = try await TestTessera.make(rateLimits: limits)
        try await tessera.test { client in
            let email = "limited@example.com"
            _ = try await client.register(email)
            for _ in 1...3 { #expect(try await client.login(email).status == .ok) }
            let refused = try await client.login(email)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.code == "rate_limited")
            let retryAfter = try #require(refused.headers[.retryAfter].flatMap { Int($0) })
            #expect((1...20).contains(retryAfter))
            // Another account is not affected; the same one is again after the interval.
            _ = try await client.register("unlimited@example.com")
            #expect(try await client.login("unlimited@example.com").status == .ok)
            tessera.clock.advance(by: TimeInterval(retryAfter))
            #expect(try await client.login(email).status == .ok)
        }
    }

    @Test func perIPLimitsCountEveryEmailFromOneClient() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.perIP[.forgot] = RateLimit(count: 2, period: 600)
        let tessera = try await TestTessera.make(rateLimits: limits)
        // Live mode: requests come over a socket from 127.0.0.1.
        let app = Application(router: TesseraHTTP.router(service: tessera.service))
        try await app.test(.live) { client in
            #expect(try await client.post("/v1/auth/password/forgot", ["email": "a@example.com"]).status == .accepted)
            #expect(try await client.post("/v1/auth/password/forgot", ["email": "b@example.com"]).status == .accepted)
            let refused = try await client.post("/v1/auth/password/forgot", ["email": "c@example.com"])
            #expect(refused.status == .tooManyRequests)
            #expect(refused.code == "rate_limited")
            #expect(refused.headers[.retryAfter] == "300")
        }
    }

    @Test func mfaCodesAreLimitedPerAccountButMadeUpTokensSpendNothing() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.perAccount[.mfaVerify] = RateLimit(count: 2, period: 60)
        let tessera = try await TestTessera.make(rateLimits: limits)
        try await tessera.test { client in
            let email = "mfa-limited@example.com"
            let (session, secret) = try await MFAAPITests.enrolled(client, tessera, email: email)
            let userID = try #require((session.json["user"] as? [String: Any])?["id"] as? String)
            tessera.clock.advance(by: 60)  // the confirmation spent one of the two
            let forged = "tsm1.\(userID).\(Base64URL.encode(Array(repeating: UInt8(7), count: 32)))"
            for _ in 1...5 {
                #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": forged, "code": "123456"]).code == "invalid_mfa_token")
            }
            let token = try #require(try await client.login(email)["mfa_token"])
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": "000001"]).code == "invalid_mfa_code")
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": "000002"]).code == "invalid_mfa_code")
            let limited = try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": "000003"])
            #expect(limited.code == "rate_limited")
            // Refused by the limit, the token was not spent: the right code works once the budget is back.
            tessera.clock.advance(by: 30)
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            #expect(try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": code]).status == .ok)
        }
    }

    @Test func consecutiveFailuresLockTheAccountUntilTheLockExpires() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.lockoutThreshold = 3
        limits.lockoutDuration = 900
        let tessera = try await TestTessera.make(rateLimits: limits)
        try await tessera.test { client in
            let email = "lockout@example.com"
            _ = try await client.register(email)
            // A success in between starts the count again.
            for _ in 1...2 { #expect(try await client.login(email, "wrong password").code == "invalid_credentials") }
            #expect(try await client.login(email).status == .ok)
            for _ in 1...3 { #expect(try await client.login(email, "wrong password").code == "invalid_credentials") }
            let locked = try await client.login(email)
            #expect(locked.status == .tooManyRequests)
            #expect(locked.code == "account_locked")
            #expect(locked.headers[.retryAfter] == "900")
            // Unknown emails lock the same way: a lock says nothing about whether an account exists.
            for _ in 1...3 { _ = try await client.login("ghost@example.com", "wrong password") }
            #expect(try await client.login("ghost@example.com", "wrong password").code == "account_locked")

            tessera.clock.advance(by: 901)
            #expect(try await client.login(email).status == .ok)
        }
    }
}

@Suite("Session credentials (HTTP)")
struct CredentialsAPITests {
    @Test func storeReadReplaceAndDeleteThroughTheSession() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "creds@example.com"
            let session = try await client.register(email)
            let bearer = session["access_token"]
            let value = #"{"access_token":"idp-access-123","refresh_token":"idp-refresh-456"}"#
            #expect(try await client.call(.put, "/v1/auth/session/credentials/idp", body: value, bearer: bearer).status == .noContent)
            let read = try await client.call(.get, "/v1/auth/session/credentials/idp", bearer: bearer)
            #expect(read.status == .ok)
            #expect(String(decoding: read.body, as: UTF8.self) == value)

            // Stored sealed, bound to the session.
            let claims = try await tessera.service.authenticate(bearer: bearer!)
            let stored = try #require(try await tessera.service.tokens.credential(named: "idp", sessionID: claims.sid, userID: claims.sub))
            #expect(!stored.sealed.contains("idp-access-123"))

            // Another session of the same user does not see it.
            let other = try await client.login(email)
            #expect(try await client.call(.get, "/v1/auth/session/credentials/idp", bearer: other["access_token"]).code == "credential_not_found")

            let replaced = #"{"access_token":"rotated"}"#
            #expect(try await client.call(.put, "/v1/auth/session/credentials/idp", body: replaced, bearer: bearer).status == .noContent)
            #expect(String(decoding: try await client.call(.get, "/v1/auth/session/credentials/idp", bearer: bearer).body, as: UTF8.self) == replaced)
            #expect(try await client.call(.delete, "/v1/auth/session/credentials/idp", bearer: bearer).status == .noContent)
            let gone = try await client.call(.get, "/v1/auth/session/credentials/idp", bearer: bearer)
            #expect(gone.status == .notFound)
            #expect(gone.code == "credential_not_found")
            #expect(try await client.call(.delete, "/v1/auth/session/credentials/idp", bearer: bearer).code == "credential_not_found")
        }
    }

    @Test func badNamesBodiesAndTheLimit() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let bearer = try await client.register()["access_token"]
            #expect(try await client.call(.put, "/v1/auth/session/credentials/bad%20name", body: "{}", bearer: bearer).code == "invalid_request")
            #expect(try await client.call(.put, "/v1/auth/session/credentials/x", body: "{not json", bearer: bearer).code == "malformed_json")
            let big = "\"" + String(repeating: "a", count: AuthService.maxCredentialSize) + "\""
            #expect(try await client.call(.put, "/v1/auth/session/credentials/x", body: big, bearer: bearer).status == .contentTooLarge)
            #expect(try await client.call(.put, "/v1/auth/session/credentials/x", body: "{}").code == "invalid_token")
            for index in 0..<16 {
                #expect(try await client.call(.put, "/v1/auth/session/credentials/c\(index)", body: "{}", bearer: bearer).status == .noContent)
            }
            let over = try await client.call(.put, "/v1/auth/session/credentials/c16", body: "{}", bearer: bearer)
            #expect(over.status == .conflict)
            #expect(over.code == "credential_limit_reached")
            // Replacing an existing name is not a new one.
            #expect(try await client.call(.put, "/v1/auth/session/credentials/c3", body: "[1]", bearer: bearer).status == .noContent)
        }
    }

    @Test func credentialsEndWithTheirSession() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let session = try await client.register()
            let bearer = session["access_token"]
            _ = try await client.call(.put, "/v1/auth/session/credentials/idp", body: "{}", bearer: bearer)
            let claims = try await tessera.service.authenticate(bearer: bearer!)
            #expect(try await client.post("/v1/auth/logout", [:], bearer: bearer).status == .noContent)
            #expect(try await tessera.service.tokens.credential(named: "idp", sessionID: claims.sid, userID: claims.sub) == nil)
        }
    }
}

@Suite("Admin stats, metrics and the user cache (HTTP)")
struct ObservabilityAPITests {
    @Test func statsNeedTheAdminKeyAndCountTokens() async throws {
        var tessera = try await TestTessera.make()
        tessera.options.adminKey = "admin-key-for-tests-0123456789"
        try await tessera.test { client in
            #expect(try await client.call(.get, "/v1/admin/stats").code == "invalid_admin_key")
            #expect(try await client.call(.get, "/v1/admin/stats", bearer: "admin-key-for-tests-012345678").status == .unauthorized)

            let email = "stats@example.com"
            let session = try await client.register(email)
            _ = try await client.login(email)
            _ = try await client.post("/v1/auth/logout", [:], bearer: session["access_token"])
            _ = try await client.post("/v1/auth/password/forgot", ["email": email])
            _ = try await client.call(.get, "/v1/auth/me", bearer: try await client.login(email)["access_token"])

            let stats = try await client.call(.get, "/v1/admin/stats", bearer: "admin-key-for-tests-0123456789")
            #expect(stats.status == .ok)
            let tokens = try #require(stats.json["tokens"] as? [String: Any])
            #expect(tokens["live_sessions"] as? Int == 2)
            #expect(tokens["refresh_tokens"] as? Int == 2)
            #expect(tokens["denied_tokens"] as? Int == 2)  // the ended session and its access token
            #expect(tokens["pending_reset_tokens"] as? Int == 1)
            #expect(tokens["pending_mfa_tokens"] as? Int == 0)
            #expect(stats.json["mode"] as? String == "primary")
            let store = try #require(stats.json["store"] as? [String: Any])
            #expect(store["backend"] as? String == "memory")
            #expect(store["connected"] as? Bool == true)
            let cache = try #require(stats.json["user_cache"] as? [String: Any])
            #expect(cache["misses"] as? Int == 1)
            #expect(stats.json["rate_limit_rejections"] is [String: Any])
        }
    }

    @Test func adminEndpointsAreOffWithoutAKey() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let reply = try await client.call(.get, "/v1/admin/stats", bearer: "anything")
            #expect(reply.status == .notFound)
        }
    }

    @Test func theUserCacheIsReadAndInvalidatedOnChange() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let session = try await client.register("cache@example.com")
            let bearer = session["access_token"]
            let before = tessera.service.userCacheStatistics
            _ = try await client.call(.get, "/v1/auth/me", bearer: bearer)
            _ = try await client.call(.get, "/v1/auth/me", bearer: bearer)
            let after = tessera.service.userCacheStatistics
            #expect(after.misses - before.misses == 1)
            #expect(after.hits - before.hits == 1)
            // Enrolling MFA and confirming it changes the user: the next read is a miss.
            let secret = try #require(try await client.post("/v1/auth/mfa/enroll", ["password": "correct horse"], bearer: bearer)["secret"])
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            _ = try await client.post("/v1/auth/mfa/confirm", ["code": code, "password": "correct horse"], bearer: bearer)
            let me = try await client.call(.get, "/v1/auth/me", bearer: bearer)
            #expect(me.json["mfa_enabled"] as? Bool == true)
            #expect(tessera.service.userCacheStatistics.misses - after.misses == 1)
        }
    }

    @Test func metricsArePrometheusText() async throws {
        let metrics = TesseraMetrics()
        var tessera = try await TestTessera.make { $0.events = { metrics.record($0) } }
        tessera.options.metrics = metrics
        try await tessera.test { client in
            let session = try await client.register()
            _ = try await client.call(.get, "/v1/auth/me", bearer: session["access_token"])
            _ = try await client.post("/v1/auth/refresh", ["refresh_token": session["refresh_token"]!])
            _ = try await client.call(.get, "/v1/auth/sessions/none")
            let reply = try await client.call(.get, "/metrics")
            #expect(reply.status == .ok)
            #expect(reply.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(decoding: reply.body, as: UTF8.self)
            #expect(text.contains(#"tessera_http_requests_total{route="/v1/auth/register",method="POST",status="201"} 1"#))
            #expect(text.contains(#"tessera_http_requests_total{route="/v1/auth/me",method="GET",status="200"} 1"#))
            #expect(text.contains(#"tessera_http_request_duration_seconds_bucket{route="/v1/auth/me",method="GET",le="#))
            #expect(text.contains(#"tessera_token_operations_total{operation="session_started"} 1"#))
            #expect(text.contains(#"tessera_token_operations_total{operation="refreshed"} 1"#))
            #expect(text.contains("tessera_store_fallback_active 0"))
            #expect(text.contains(#"tessera_user_cache_requests_total{result="miss"} 1"#))
            // Route patterns, never raw paths with ids in them.
            #expect(!text.contains("/sessions/none"))
        }
    }
}

@Suite("Webhook notifier")
struct WebhookNotifierTests {
    /// A mail sender's endpoint on loopback that fails its first answer, then records bodies.
    final class Receiver: Sendable {
        let bodies = Mutex<[Data]>([])
        let failures = Mutex(1)
    }

    @Test func resetMessagesArePostedAsJSONWithRetries() async throws {
        let receiver = Receiver()
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 65536)
            if receiver.failures.withLock({ failures in
                defer { failures -= 1 }
                return failures > 0
            }) {
                return .internalServerError
            }
            receiver.bodies.withLock { $0.append(Data(body.readableBytesView)) }
            return .noContent
        }
        try await Application(router: router).test(.live) { hook in
            let port = try #require(hook.port)
            let url = try #require(URL(string: "http://127.0.0.1:\(port)/hook?key=sender-secret"))
            let notifier = WebhookNotifier(url: url)
            #expect(notifier.summary == "webhook http://127.0.0.1:\(port)/hook")
            let tessera = try await TestTessera.make { $0.notifier = notifier }
            try await tessera.test { client in
                _ = try await client.register("hooked@example.com")
                #expect(try await client.post("/v1/auth/password/forgot", ["email": "hooked@example.com"]).status == .accepted)
            }
            for _ in 0..<200 where receiver.bodies.withLock({ $0.isEmpty }) {
                try await Task.sleep(for: .milliseconds(25))
            }
            let body = try #require(receiver.bodies.withLock { $0.first })
            let message = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
            #expect(message["to"] as? String == "hooked@example.com")
            #expect(message["kind"] as? String == "password_reset")
            #expect((message["token"] as? String)?.hasPrefix("tsp1.") == true)
            #expect(receiver.failures.withLock { $0 } < 0)
        }
    }
}
