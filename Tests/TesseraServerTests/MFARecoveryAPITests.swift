import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

/// Finding 3 of issue 10: MFA changes need the password, confirming hands out recovery codes,
/// every change is told to the owner, and an operator can reset a user's MFA.
@Suite("MFA re-authentication, recovery codes and notices (HTTP)")
struct MFARecoveryAPITests {
    static let password = MFAAPITests.password

    /// The audit's attack: an access token alone (no password) tries to turn MFA on.
    @Test func aStolenAccessTokenAloneCannotEnrolOrConfirm() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.lockoutThreshold = 3
        let tessera = try await TestTessera.make(rateLimits: limits)
        try await tessera.test { client in
            let email = "stolen@example.com"
            let session = try await client.register(email)
            let stolen = session["access_token"]
            #expect(try await client.post("/v1/auth/mfa/enroll", [:], bearer: stolen).code == "invalid_request")
            let guessed = try await client.post("/v1/auth/mfa/enroll", ["password": "guessed password"], bearer: stolen)
            #expect(guessed.status == .unauthorized)
            #expect(guessed.code == "invalid_credentials")
            #expect(guessed["secret"] == nil)

            // The owner starts an enrolment; the token holder, even with a valid code, cannot
            // confirm it without the password.
            let secret = try #require(try await client.post("/v1/auth/mfa/enroll", ["password": Self.password], bearer: stolen)["secret"])
            let code = TestTOTP.code(secret: secret, at: tessera.clock.now())
            #expect(try await client.post("/v1/auth/mfa/confirm", ["code": code], bearer: stolen).code == "invalid_request")
            let confirm = try await client.post("/v1/auth/mfa/confirm", ["code": code, "password": "guessed again"], bearer: stolen)
            #expect(confirm.code == "invalid_credentials")
            #expect(try await client.call(.get, "/v1/auth/me", bearer: stolen).json["mfa_enabled"] as? Bool == false)
            // The owner still logs in with the password alone.
            #expect(try await client.login(email).json["access_token"] != nil)
            // Wrong passwords here are failed logins: three in a row lock this client out.
            for guess in ["first", "second", "third"] {
                #expect(try await client.post("/v1/auth/mfa/enroll", ["password": "\(guess) guess"], bearer: stolen).code == "invalid_credentials")
            }
            #expect(try await client.post("/v1/auth/mfa/enroll", ["password": Self.password], bearer: stolen).code == "account_locked")
            #expect(try await client.login(email).code == "account_locked")
        }
    }

    @Test func recoveryCodesWorkOnceInPlaceOfACodeAndCanBeRegenerated() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "recovery@example.com"
            let (session, _, codes) = try await MFAAPITests.enrolledWithCodes(client, tessera, email: email)
            #expect(codes.count == 10)
            #expect(Set(codes).count == 10)
            let alphabet = Set("abcdefghijkmnpqrstuvwxyz23456789")
            for code in codes {
                let groups = code.split(separator: "-", omittingEmptySubsequences: false)
                #expect(groups.count == 4 && groups.allSatisfy { $0.count == 4 && $0.allSatisfy(alphabet.contains) }, "\(code)")
            }
            let userID = try #require((session.json["user"] as? [String: Any])?["id"] as? String)
            #expect(try await tessera.service.users.recoveryCodeCount(userID: userID) == 10)

            func verify(_ code: String) async throws -> Reply {
                let login = try await client.login(email)
                return try await client.post("/v1/auth/mfa/verify", ["mfa_token": try #require(login["mfa_token"]), "code": code])
            }
            // Typed in upper case without dashes still counts; then it is used up.
            let typed = codes[0].uppercased().replacingOccurrences(of: "-", with: "")
            #expect(try await verify(typed).status == .ok)
            #expect(try await verify(codes[0]).code == "invalid_mfa_code")
            #expect(try await tessera.service.users.recoveryCodeCount(userID: userID) == 9)

            let bearer = session["access_token"]
            #expect(try await client.post("/v1/auth/mfa/recovery-codes", ["password": "wrong password"], bearer: bearer).code == "invalid_credentials")
            #expect(try await client.post("/v1/auth/mfa/recovery-codes", [:], bearer: bearer).code == "invalid_request")
            let regenerated = try await client.post("/v1/auth/mfa/recovery-codes", ["password": Self.password], bearer: bearer)
            #expect(regenerated.status == .ok)
            #expect(regenerated.headers[.cacheControl] == "no-store")
            let fresh = try #require(regenerated.json["recovery_codes"] as? [String])
            #expect(fresh.count == 10 && Set(fresh).isDisjoint(with: codes))
            // The old ones stopped working, the new ones work.
            #expect(try await verify(codes[1]).code == "invalid_mfa_code")
            #expect(try await verify(fresh[0]).status == .ok)

            // A recovery code also turns MFA off (with the password).
            #expect(try await client.post("/v1/auth/mfa/disable", ["code": fresh[1], "password": Self.password], bearer: bearer).status == .noContent)
            #expect(try await tessera.service.users.recoveryCodeCount(userID: userID) == 0)
            #expect(try await client.login(email).json["access_token"] != nil)
            #expect(try await client.post("/v1/auth/mfa/recovery-codes", ["password": Self.password], bearer: bearer).code == "mfa_not_enrolled")
        }
    }

    @Test func everyMFAChangeIsSentToTheAccountsEmailWithoutASecret() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "noticed@example.com"
            let (session, _, codes) = try await MFAAPITests.enrolledWithCodes(client, tessera, email: email)
            let bearer = session["access_token"]
            let login = try await client.login(email)
            _ = try await client.post("/v1/auth/mfa/verify", ["mfa_token": try #require(login["mfa_token"]), "code": codes[0]])
            _ = try await client.post("/v1/auth/mfa/recovery-codes", ["password": Self.password], bearer: bearer)
            let messages = try await waitForOutbox(tessera.outbox, count: 3)
            let kinds = Set(messages.compactMap { $0["kind"] as? String })
            #expect(kinds.isSuperset(of: ["mfa_enabled", "mfa_recovery_code_used", "mfa_recovery_codes_regenerated"]))
            for message in messages {
                #expect(message["to"] as? String == email)
                #expect(message["token"] == nil)
                for code in codes { #expect(!"\(message)".contains(code)) }
            }
        }
    }

    @Test func disablingIsNoticedToo() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let email = "disabled-notice@example.com"
            let (session, _, codes) = try await MFAAPITests.enrolledWithCodes(client, tessera, email: email)
            let disabled = try await client.post("/v1/auth/mfa/disable", ["code": codes[0], "password": Self.password], bearer: session["access_token"])
            #expect(disabled.status == .noContent)
            let messages = try await waitForOutbox(tessera.outbox, count: 3)
            #expect(Set(messages.compactMap { $0["kind"] as? String }) == ["mfa_enabled", "mfa_recovery_code_used", "mfa_disabled"])
        }
    }

    @Test func anAdministratorCanResetAUsersMFA() async throws {
        var configured = try await TestTessera.make()
        let adminKey = "admin-key-for-the-mfa-reset-test"
        configured.options.adminKey = adminKey
        let tessera = configured
        try await tessera.test { client in
            let email = "lost-phone@example.com"
            let (session, _) = try await MFAAPITests.enrolled(client, tessera, email: email)
            let userID = try #require((session.json["user"] as? [String: Any])?["id"] as? String)
            #expect(try await client.login(email).json["mfa_required"] as? Bool == true)

            let path = "/v1/admin/users/\(userID)/mfa/reset"
            #expect(try await client.call(.post, path).code == "invalid_admin_key")
            #expect(try await client.call(.post, path, bearer: session["access_token"]).code == "invalid_admin_key")
            let reset = try await client.call(.post, path, bearer: adminKey)
            #expect(reset.status == .ok)
            #expect(reset.json["mfa_was_enabled"] as? Bool == true)
            #expect(try await client.login(email).json["access_token"] != nil)
            #expect(try await tessera.service.users.recoveryCodeCount(userID: userID) == 0)
            #expect(try await tessera.service.users.user(id: userID)?.mfaSecret == nil)
            let again = try await client.call(.post, path, bearer: adminKey)
            #expect(again.json["mfa_was_enabled"] as? Bool == false)
            let unknown = try await client.call(.post, "/v1/admin/users/no-such-user/mfa/reset", bearer: adminKey)
            #expect(unknown.status == .notFound)
            #expect(unknown.code == "user_not_found")
            let messages = try await waitForOutbox(tessera.outbox, count: 2)
            #expect(messages.compactMap { $0["kind"] as? String }.contains("mfa_reset"))
        }
    }
}
