import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Tessera
import TesseraServer
import Testing

/// The audit log is a contract (docs/AUDIT.md): every security outcome of the API is one record
/// under `tessera.audit` with a stable `event`, and no log line of any label holds a secret.
@Suite("Audit log (HTTP)")
struct AuditLogTests {
    static let password = "correct horse"
    static let newPassword = "battery staple"
    static let resetPassword = "another horse battery"
    static let adminKey = "admin-key-for-the-audit-log-tests"
    static let serviceKey = "service-key-for-the-audit-log-tests"
    static let requestID = HTTPField.Name("X-Request-Id")!

    /// What one run of `fullFlow` handed out: every value that must never reach a log.
    struct Flow {
        var userID = ""
        var sessions: [String: String] = [:]
        var secrets: [String: String] = [:]
    }

    static func tessera(_ logs: LogCapture) async throws -> TestTessera {
        var tessera = try await TestTessera.make(logs: logs)
        tessera.options.adminKey = adminKey
        tessera.options.serviceKey = serviceKey
        return tessera
    }

    /// Register, failed and good logins, refresh and re-use, MFA on (challenge, wrong code,
    /// recovery code), password change, session revoked by id and by RFC 7009, admin MFA
    /// reset, MFA off, password reset, logout and logout-all.
    static func fullFlow(_ client: any TestClientProtocol, _ tessera: TestTessera) async throws -> Flow {
        var flow = Flow()
        flow.secrets = ["password": password, "new password": newPassword, "reset password": resetPassword, "admin key": adminKey,
            "service key": serviceKey]
        func keep(_ name: String, _ value: String?) throws -> String {
            let value = try #require(value, "\(name)")
            flow.secrets[name] = value
            return value
        }
        let email = "audit-\(UUID().uuidString.prefix(8).lowercased())@example.com"

        let registered = try await client.call(
            .post, "/v1/auth/register", body: jsonBody(["email": email, "password": password]), headers: [requestID: "audit-register-1"]
        )
        #expect(registered.status == .created)
        #expect(registered.headers[requestID] == "audit-register-1")
        let access = try keep("register access token", registered["access_token"])
        _ = try keep("register refresh token", registered["refresh_token"])
        flow.userID = try #require((registered.json["user"] as? [String: Any])?["id"] as? String)
        flow.sessions["register"] = registered["session_id"]

        #expect(try await client.login(email, "wrong password").code == "invalid_credentials")
        #expect(try await client.login("nobody-\(UUID().uuidString.prefix(6))@example.com").code == "invalid_credentials")

        let login = try await client.login(email)
        _ = try keep("login access token", login["access_token"])
        let refresh = try keep("login refresh token", login["refresh_token"])
        flow.sessions["login"] = login["session_id"]
        let refreshed = try await client.post("/v1/auth/refresh", ["refresh_token": refresh])
        _ = try keep("rotated access token", refreshed["access_token"])
        _ = try keep("rotated refresh token", refreshed["refresh_token"])
        tessera.clock.advance(by: 11)  // past the re-use grace
        #expect(try await client.post("/v1/auth/refresh", ["refresh_token": refresh]).code == "refresh_token_reused")

        let enrollment = try await client.post("/v1/auth/mfa/enroll", ["password": password], bearer: access)
        let secret = try keep("totp secret", enrollment["secret"])
        _ = try keep("otpauth uri", enrollment["otpauth_uri"])
        let confirmCode = try keep("confirm code", TestTOTP.code(secret: secret, at: tessera.clock.now()))
        let confirmed = try await client.post("/v1/auth/mfa/confirm", ["code": confirmCode, "password": password], bearer: access)
        let codes = try #require(confirmed.json["recovery_codes"] as? [String])
        #expect(codes.count == 10)
        for (index, code) in codes.enumerated() { flow.secrets["recovery code \(index)"] = code }

        func mfaLogin(_ password: String, code: String) async throws -> Reply {
            let challenge = try await client.login(email, password)
            let token = try keep("mfa token \(flow.secrets.count)", challenge["mfa_token"])
            return try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": code])
        }
        let current = TestTOTP.code(secret: secret, at: tessera.clock.now())
        let wrong = String(format: "%06d", Int32((Int(current)! + 1) % 1_000_000))
        #expect(try await mfaLogin(password, code: wrong).code == "invalid_mfa_code")
        let second = try await mfaLogin(password, code: codes[0])
        #expect(second.status == .ok)
        _ = try keep("mfa access token", second["access_token"])
        _ = try keep("mfa refresh token", second["refresh_token"])
        flow.sessions["mfa"] = second["session_id"]

        let badChange = try await client.post(
            "/v1/auth/password/change", ["current_password": "not my password", "new_password": newPassword], bearer: access
        )
        #expect(badChange.code == "invalid_credentials")
        let changed = try await client.post(
            "/v1/auth/password/change", ["current_password": password, "new_password": newPassword], bearer: access
        )
        #expect(changed.status == .noContent)

        let other = try await mfaLogin(newPassword, code: codes[1])
        _ = try keep("other access token", other["access_token"])
        _ = try keep("other refresh token", other["refresh_token"])
        let otherSession = try #require(other["session_id"])
        flow.sessions["revoked"] = otherSession
        #expect(try await client.call(.delete, "/v1/auth/sessions/\(otherSession)", bearer: access).status == .noContent)

        let third = try await mfaLogin(newPassword, code: codes[2])
        let thirdRefresh = try keep("third refresh token", third["refresh_token"])
        flow.sessions["oauth revoked"] = third["session_id"]
        let revoked = try await client.execute(
            uri: "/v1/oauth/revoke", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", .authorization: "Bearer \(serviceKey)"],
            body: ByteBuffer(string: "token=\(thirdRefresh)")
        ) { $0.status }
        #expect(revoked == .ok)

        #expect(try await client.call(.post, "/v1/admin/users/\(flow.userID)/mfa/reset", bearer: adminKey).status == .ok)

        // MFA again, then off with a TOTP code of a later step (each step's code works once).
        tessera.clock.advance(by: 60)
        let again = try await client.post("/v1/auth/mfa/enroll", ["password": newPassword], bearer: access)
        let secondSecret = try keep("second totp secret", again["secret"])
        _ = try keep("second otpauth uri", again["otpauth_uri"])
        let secondConfirm = try keep("second confirm code", TestTOTP.code(secret: secondSecret, at: tessera.clock.now()))
        let reconfirmed = try await client.post("/v1/auth/mfa/confirm", ["code": secondConfirm, "password": newPassword], bearer: access)
        for (index, code) in (reconfirmed.json["recovery_codes"] as? [String] ?? []).enumerated() { flow.secrets["second recovery code \(index)"] = code }
        tessera.clock.advance(by: 60)
        let disableCode = try keep("disable code", TestTOTP.code(secret: secondSecret, at: tessera.clock.now()))
        #expect(try await client.post("/v1/auth/mfa/disable", ["code": disableCode, "password": newPassword], bearer: access).status == .noContent)

        #expect(try await client.post("/v1/auth/password/forgot", ["email": "nobody-at-all@example.com"]).status == .accepted)
        #expect(try await client.post("/v1/auth/password/forgot", ["email": email]).status == .accepted)
        let resetToken = try keep("reset token", try await waitForToken(tessera.outbox))
        #expect(try await client.post("/v1/auth/password/reset", ["token": resetToken, "new_password": resetPassword]).status == .noContent)

        let leaving = try await client.login(email, resetPassword)
        let leavingAccess = try keep("logout access token", leaving["access_token"])
        _ = try keep("logout refresh token", leaving["refresh_token"])
        flow.sessions["logout"] = leaving["session_id"]
        #expect(try await client.call(.post, "/v1/auth/logout", bearer: leavingAccess).status == .noContent)
        let last = try await client.login(email, resetPassword)
        _ = try keep("second last access token", try await client.login(email, resetPassword)["access_token"])
        let lastAccess = try keep("last access token", last["access_token"])
        _ = try keep("last refresh token", last["refresh_token"])
        flow.sessions["logout all"] = last["session_id"]
        #expect(try await client.call(.post, "/v1/auth/logout-all", bearer: lastAccess).status == .noContent)
        return flow
    }

    /// The audit records of `event`, oldest first.
    static func events(_ logs: LogCapture, _ event: AuditEvent.Name) -> [LogCapture.Record] {
        logs.records.filter { $0.label == AuditLog.label && $0.metadata["event"] == event.rawValue }
    }

    @Test func everyEventOfTheFlowsIsRecordedWithItsFields() async throws {
        let logs = LogCapture()
        let tessera = try await Self.tessera(logs)
        // A real socket: the records carry the peer's address.
        let flow = try await tessera.test(.live) { client in try await Self.fullFlow(client, tessera) }
        // password/forgot finishes in the background: wait (bounded) for its records.
        for _ in 0..<200 where Self.events(logs, .passwordResetRequested).count < 2 { try await Task.sleep(for: .milliseconds(25)) }

        func only(_ event: AuditEvent.Name, reason: String? = nil, step: String? = nil, method: String? = nil) throws -> LogCapture.Record {
            let matching = Self.events(logs, event).filter {
                $0.metadata["reason"] == reason && $0.metadata["step"] == step && (method == nil || $0.metadata["method"] == method)
            }
            #expect(matching.count == 1, "\(event.rawValue) reason \(reason ?? "-"): \(matching.map(\.line))")
            let record = try #require(matching.first, "\(event.rawValue)")
            #expect(record.message == event.rawValue)
            #expect(record.level == (reason == nil && event != .refreshReuseDetected ? .notice : .warning), "\(record.line)")
            #expect(record.metadata["client_ip"] == "127.0.0.1", "\(record.line)")
            #expect(record.metadata["request_id"]?.isEmpty == false, "\(record.line)")
            return record
        }
        func expect(_ record: LogCapture.Record, user: Bool = true, session: String? = nil) {
            #expect(record.metadata["user_id"] == (user ? flow.userID : nil), "\(record.line)")
            if let session { #expect(record.metadata["session_id"] == flow.sessions[session], "\(record.line)") }
        }

        let registered = try only(.accountRegistered)
        expect(registered, session: "register")
        #expect(registered.metadata["request_id"] == "audit-register-1")
        expect(try only(.loginFailed, reason: "wrong_password"))
        expect(try only(.loginFailed, reason: "unknown_account"), user: false)
        expect(try only(.loginFailed, reason: "wrong_password", step: "reauthentication"), session: "register")
        let passwordLogins = Self.events(logs, .loginSucceeded).filter { $0.metadata["method"] == "password" }
        #expect(passwordLogins.count == 4)
        #expect(passwordLogins.first?.metadata["session_id"] == flow.sessions["login"])
        let mfaLogins = Self.events(logs, .loginSucceeded).filter { $0.metadata["method"] == "mfa" }
        #expect(mfaLogins.map { $0.metadata["second_factor"] } == ["recovery_code", "recovery_code", "recovery_code"])
        #expect(mfaLogins.first?.metadata["session_id"] == flow.sessions["mfa"])
        let reuse = try only(.refreshReuseDetected)
        expect(reuse, session: "login")
        #expect(reuse.metadata["generation"] == "1")
        #expect(Self.events(logs, .mfaChallenged).count == 4)
        #expect(Self.events(logs, .mfaChallenged).allSatisfy { $0.metadata["user_id"] == flow.userID })
        let wrongCode = try only(.mfaFailed, reason: "wrong_code")
        expect(wrongCode)
        #expect(wrongCode.metadata["attempts"] == "1")
        #expect(Self.events(logs, .mfaEnabled).count == 2)
        expect(try #require(Self.events(logs, .mfaEnabled).first), session: "register")
        let changed = try only(.passwordChanged)
        expect(changed, session: "register")
        #expect(changed.metadata["sessions_ended"] == "1")
        let revokedSessions = Self.events(logs, .sessionRevoked)
        #expect(revokedSessions.map { $0.metadata["session_id"] } == [flow.sessions["revoked"], flow.sessions["oauth revoked"]])
        #expect(revokedSessions.first?.metadata["by_session"] == flow.sessions["register"])
        #expect(revokedSessions.last?.metadata["by"] == "token_revocation")
        #expect(revokedSessions.allSatisfy { $0.metadata["user_id"] == flow.userID && $0.metadata["client_ip"] == "127.0.0.1" })
        let reset = try only(.mfaReset)
        expect(reset)
        #expect(reset.metadata["mfa_was_enabled"] == "true")
        let admin = try only(.adminAction)
        expect(admin)
        #expect(admin.metadata["action"] == "user.mfa_reset")
        expect(try only(.mfaDisabled), session: "register")
        expect(try only(.passwordResetRequested))
        let unknownReset = Self.events(logs, .passwordResetRequested).filter { $0.metadata["reason"] == "unknown_account" }
        #expect(unknownReset.count == 1 && unknownReset.first?.metadata["user_id"] == nil)
        let passwordReset = try only(.passwordReset)
        expect(passwordReset)
        #expect(passwordReset.metadata["sessions_ended"] == "1")
        expect(try only(.logout), session: "logout")
        let all = try only(.logoutAll)
        expect(all, session: "logout all")
        #expect(all.metadata["sessions_ended"] == "2")

        // Every name of the contract was written, except the key rotation this branch has no
        // operation for.
        let written = Set(logs.records.filter { $0.label == AuditLog.label }.compactMap { $0.metadata["event"] })
        #expect(Set(AuditEvent.Name.allCases.map(\.rawValue)).subtracting(written) == [AuditEvent.Name.keyRotated.rawValue])
    }

    /// Every record of every label at every level, from register to logout-all: no token,
    /// password, TOTP secret or code, recovery code or key appears, nor any token prefix.
    @Test func noLogLineOfAFullFlowHoldsASecret() async throws {
        let logs = LogCapture()
        let tessera = try await Self.tessera(logs)
        let flow = try await tessera.test { client in try await Self.fullFlow(client, tessera) }
        for _ in 0..<200 where Self.events(logs, .passwordResetRequested).count < 2 { try await Task.sleep(for: .milliseconds(25)) }
        let lines = logs.records.map(\.line)
        // The service's logger, the audit log and the HTTP server's are all captured.
        #expect(Set(logs.records.map(\.label)).isSuperset(of: ["tessera", AuditLog.label]))
        #expect(lines.count > 40, "the flow logs: \(lines.count) records")
        #expect(flow.secrets.count > 40)
        for (name, value) in flow.secrets {
            let leaking = lines.filter { line in
                // A 6-digit code counts only on its own, not inside a longer number.
                value.count == 6 && value.allSatisfy(\.isNumber)
                    ? line.range(of: "(?<![0-9])\(value)(?![0-9])", options: .regularExpression) != nil : line.contains(value)
            }
            #expect(leaking.isEmpty, "\(name) in \(leaking)")
        }
        for prefix in ["tsr1.", "tsp1.", "tsm1.", "eyJ", "otpauth:"] {
            #expect(lines.filter { $0.contains(prefix) }.isEmpty, "\(prefix)")
        }
    }

    /// Refusals before any password or code is checked are audited too, with the refusal's code.
    @Test func lockoutsRateLimitsAndUnknownMFATokensAreAuditedWithTheirReason() async throws {
        var limits = RateLimitPolicy.unlimited
        limits.lockoutThreshold = 1
        limits.perIP[.mfaVerify] = RateLimit(count: 1, period: 60)
        let logs = LogCapture()
        let tessera = try await TestTessera.make(rateLimits: limits, logs: logs)
        try await tessera.test(.live) { client in
            let email = "locked-\(UUID().uuidString.prefix(6).lowercased())@example.com"
            let access = try #require(try await client.register(email)["access_token"])
            #expect(try await client.login(email, "wrong password").code == "invalid_credentials")
            #expect(try await client.login(email).code == "account_locked")
            // The lock holds for the password asked again with an access token, too.
            #expect(try await client.post("/v1/auth/mfa/enroll", ["password": "correct horse"], bearer: access).code == "account_locked")
            let garbage = ["mfa_token": "tsm1.someone.not-a-token", "code": "123456"]
            #expect(try await client.post("/v1/auth/mfa/verify", garbage).code == "invalid_mfa_token")
            #expect(try await client.post("/v1/auth/mfa/verify", garbage).code == "rate_limited")
        }
        let failedLogins = Self.events(logs, .loginFailed)
        #expect(failedLogins.map { $0.metadata["reason"] } == ["wrong_password", "account_locked", "account_locked"])
        #expect(failedLogins.map { $0.metadata["step"] } == [nil, nil, "reauthentication"])
        let failedCodes = Self.events(logs, .mfaFailed)
        #expect(failedCodes.map { $0.metadata["reason"] } == ["invalid_mfa_token", "rate_limited"])
        #expect((failedLogins + failedCodes).allSatisfy { $0.level == .warning && $0.metadata["client_ip"] == "127.0.0.1" })
        #expect(failedCodes.allSatisfy { $0.metadata["user_id"] == nil })
    }

    @Test func aPlainInboundRequestIDIsKeptAndAnythingElseReplaced() async throws {
        let logs = LogCapture()
        let tessera = try await Self.tessera(logs)
        try await tessera.test { client in
            let kept = try await client.call(.get, "/health/live", headers: [Self.requestID: "edge-7f3a:01.b_c-d"])
            #expect(kept.headers[Self.requestID] == "edge-7f3a:01.b_c-d")
            for bad in ["two words", "quote\"d", String(repeating: "a", count: 129), "line\\nforged event=login.succeeded"] {
                let replaced = try await client.call(.get, "/health/live", headers: [Self.requestID: bad])
                let id = try #require(replaced.headers[Self.requestID])
                #expect(id != bad && id.count == 16, "\(id)")
            }
            let made = try await client.call(.post, "/v1/auth/login", body: jsonBody(["email": "x@example.com", "password": "whatever1"]))
            let id = try #require(made.headers[Self.requestID])
            #expect(made.code == "invalid_credentials")
            #expect(Self.events(logs, .loginFailed).last?.metadata["request_id"] == id)
            let other = try await client.call(.get, "/health/live")
            #expect(other.headers[Self.requestID] != id)
        }
    }
}
