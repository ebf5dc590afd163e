import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

/// The real `tessera` binary with `--log-format json --log-level trace`: a flow from register to
/// logout writes its audit events as JSON lines, and its whole standard error holds no token,
/// password, code or key.
@Suite("Audit log of a tessera process")
struct AuditProcessTests {
    static let password = "correct horse"
    static let newPassword = "battery staple horse"
    static let adminKey = "admin-key-for-the-audit-process-test"

    @Test func aFullFlowLogsItsEventsAsJSONAndNoSecret() async throws {
        try await withTemporaryDirectory { directory in
            let outbox = directory.appendingPathComponent("outbox").path
            let server = try await TesseraProcess.start([
                "--database-url", "memory:", "--token-store", "memory", "--log-format", "json", "--log-level", "trace",
                "--outbox-dir", outbox, "--admin-key", Self.adminKey, "--refresh-reuse-grace", "0",
            ])
            let secrets = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await Self.flow(client, outbox: outbox)
            }
            await server.stop()
            let log = server.log
            let records = log.split(separator: "\n").compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }
            let audit = records.filter { $0["label"] as? String == "tessera.audit" }
            let events = Set(audit.compactMap { $0["event"] as? String })
            let expected: Set = [
                "account.registered", "login.failed", "login.succeeded", "refresh.reuse_detected", "mfa.enabled", "mfa.challenged",
                "mfa.failed", "password.reset_requested", "password.reset", "logout", "mfa.reset", "admin.action",
            ]
            #expect(expected.subtracting(events).isEmpty, "missing: \(expected.subtracting(events))")
            for record in audit {
                #expect(record["client_ip"] as? String == "127.0.0.1", "\(record)")
                #expect((record["request_id"] as? String)?.isEmpty == false, "\(record)")
                #expect(record["message"] as? String == record["event"] as? String)
            }
            #expect(secrets.count > 20)
            for (name, value) in secrets {
                // A 6-digit code counts only on its own, not inside a longer number.
                let leaks = value.count == 6 && value.allSatisfy(\.isNumber)
                    ? log.range(of: "(?<![0-9])\(value)(?![0-9])", options: .regularExpression) != nil : log.contains(value)
                #expect(!leaks, "\(name) in the log")
            }
            for prefix in ["tsr1.", "tsp1.", "tsm1.", "eyJ", "otpauth:"] {
                #expect(!log.contains(prefix), "\(prefix) in the log")
            }
        }
    }

    /// Register, a wrong password, login, refresh and its re-use, MFA on, a wrong code and a
    /// recovery code, password reset, logout, and an admin MFA reset. Returns what it was handed.
    static func flow(_ client: TestClient, outbox: String) async throws -> [String: String] {
        var secrets = ["password": password, "new password": newPassword, "admin key": adminKey]
        func keep(_ name: String, _ value: String?) throws -> String {
            let value = try #require(value, "\(name)")
            secrets[name] = value
            return value
        }
        func post(_ uri: String, _ body: [String: Any], bearer: String? = nil) async throws -> Reply {
            try await client.call(.post, uri, body: jsonBody(body), bearer: bearer)
        }
        let email = "process-audit@example.com"
        let registered = try await post("/v1/auth/register", ["email": email, "password": password])
        let access = try keep("register access token", registered["access_token"])
        _ = try keep("register refresh token", registered["refresh_token"])
        let userID = try #require((registered.json["user"] as? [String: Any])?["id"] as? String)
        #expect(try await post("/v1/auth/login", ["email": email, "password": "wrong horse"]).code == "invalid_credentials")

        let login = try await post("/v1/auth/login", ["email": email, "password": password])
        let refresh = try keep("login refresh token", login["refresh_token"])
        _ = try keep("login access token", login["access_token"])
        _ = try keep("rotated refresh token", try await post("/v1/auth/refresh", ["refresh_token": refresh])["refresh_token"])
        #expect(try await post("/v1/auth/refresh", ["refresh_token": refresh]).code == "refresh_token_reused")

        let enrollment = try await post("/v1/auth/mfa/enroll", ["password": password], bearer: access)
        let secret = try keep("totp secret", enrollment["secret"])
        _ = try keep("otpauth uri", enrollment["otpauth_uri"])
        let code = try keep("totp code", TestTOTP.code(secret: secret, at: Date()))
        let confirmed = try await post("/v1/auth/mfa/confirm", ["code": code, "password": password], bearer: access)
        let codes = try #require(confirmed.json["recovery_codes"] as? [String])
        for (index, code) in codes.enumerated() { secrets["recovery code \(index)"] = code }

        func mfaLogin(_ password: String, code: String) async throws -> Reply {
            let challenge = try await post("/v1/auth/login", ["email": email, "password": password])
            let token = try keep("mfa token \(secrets.count)", challenge["mfa_token"])
            return try await post("/v1/auth/mfa/verify", ["mfa_token": token, "code": code])
        }
        // A recovery code of another shape is never a right code.
        #expect(try await mfaLogin(password, code: "aaaa-aaaa-aaaa-aaaa").code == "invalid_mfa_code")
        _ = try keep("mfa access token", try await mfaLogin(password, code: codes[0])["access_token"])

        #expect(try await post("/v1/auth/password/forgot", ["email": email]).status == .accepted)
        let resetToken = try keep("reset token", try await waitForToken(outbox))
        #expect(try await post("/v1/auth/password/reset", ["token": resetToken, "new_password": newPassword]).status == .noContent)

        let last = try await mfaLogin(newPassword, code: codes[1])
        let lastAccess = try keep("last access token", last["access_token"])
        _ = try keep("last refresh token", last["refresh_token"])
        #expect(try await client.call(.post, "/v1/auth/logout", bearer: lastAccess).status == .noContent)
        #expect(try await client.call(.post, "/v1/admin/users/\(userID)/mfa/reset", bearer: adminKey).status == .ok)
        return secrets
    }
}
