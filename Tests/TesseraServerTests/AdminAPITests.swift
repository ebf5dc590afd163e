import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraServer
import Testing

/// `/v1/admin/users…` and `/v1/admin/keys…` with the admin key, in process.
@Suite("Admin API")
struct AdminAPITests {
    static let key = "admin-key-for-tests-0123456789"

    func tessera() async throws -> TestTessera {
        var tessera = try await TestTessera.make()
        tessera.options.adminKey = Self.key
        return tessera
    }

    @Test func everyAdminRouteNeedsTheAdminKey() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let routes: [(HTTPRequest.Method, String)] = [
                (.get, "/v1/admin/users?email=a@example.com"), (.get, "/v1/admin/users/x"), (.delete, "/v1/admin/users/x"),
                (.post, "/v1/admin/users/x/lock"), (.post, "/v1/admin/users/x/unlock"), (.get, "/v1/admin/users/x/sessions"),
                (.delete, "/v1/admin/users/x/sessions"), (.delete, "/v1/admin/users/x/sessions/y"), (.get, "/v1/admin/keys"),
                (.post, "/v1/admin/keys/rotate"), (.delete, "/v1/admin/keys/k"), (.post, "/v1/admin/keys/reseal"),
            ]
            for (method, uri) in routes {
                let reply = try await client.call(method, uri, body: "{}", bearer: "not-the-admin-key-000000")
                #expect(reply.status == .unauthorized, "\(method) \(uri)")
                #expect(reply.code == "invalid_admin_key", "\(method) \(uri)")
            }
        }
    }

    @Test func unknownUsersAndSessionsAreProblems() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let missing = try await client.call(.get, "/v1/admin/users?email=nobody@example.com", bearer: Self.key)
            #expect(missing.status == .notFound && missing.code == "user_not_found")
            #expect(missing.headers[.contentType] == "application/problem+json")
            #expect(try await client.call(.get, "/v1/admin/users", bearer: Self.key).code == "invalid_request")
            #expect(try await client.call(.post, "/v1/admin/users/nobody/lock", bearer: Self.key).code == "user_not_found")
            #expect(try await client.call(.delete, "/v1/admin/users/nobody", bearer: Self.key).code == "user_not_found")
            let user = try await client.register("known@example.com")
            let id = try #require((user.json["user"] as? [String: Any])?["id"] as? String)
            let session = try await client.call(.delete, "/v1/admin/users/\(id)/sessions/nope", bearer: Self.key)
            #expect(session.status == .notFound && session.code == "session_not_found")
        }
    }

    @Test func sessionsAreListedAndEnded() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let first = try await client.register("sessions@example.com")
            _ = try await client.post("/v1/auth/login", ["email": "sessions@example.com", "password": "correct horse"])
            let found = try await client.call(.get, "/v1/admin/users?email=Sessions@Example.com", bearer: Self.key)
            #expect(found.status == .ok && found["email"] == "sessions@example.com" && found.json["locked"] as? Bool == false)
            let id = try #require(found["id"])
            let list = try await client.call(.get, "/v1/admin/users/\(id)/sessions", bearer: Self.key)
            let sessions = try #require(list.json["sessions"] as? [[String: Any]])
            #expect(sessions.count == 2)
            #expect(sessions.allSatisfy { $0["current"] == nil })
            let one = try #require(first["session_id"])
            #expect(try await client.call(.delete, "/v1/admin/users/\(id)/sessions/\(one)", bearer: Self.key).status == .noContent)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: first["access_token"]).code == "token_revoked")
            let all = try await client.call(.delete, "/v1/admin/users/\(id)/sessions", bearer: Self.key)
            #expect(all.json["sessions_ended"] as? Int == 1)
            // The user's session list outlives the DELETE: it is there, and empty.
            let after = try await client.call(.get, "/v1/admin/users/\(id)/sessions", bearer: Self.key)
            #expect(after.status == .ok && (after.json["sessions"] as? [[String: Any]])?.isEmpty == true)
        }
    }

    @Test func lockUnlockAndDelete() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let grant = try await client.register("lockme@example.com")
            let id = try #require((grant.json["user"] as? [String: Any])?["id"] as? String)
            let locked = try await client.call(.post, "/v1/admin/users/\(id)/lock", bearer: Self.key)
            #expect(locked["status"] == "locked" && locked.json["sessions_ended"] as? Int == 1)
            let login = try await client.post("/v1/auth/login", ["email": "lockme@example.com", "password": "correct horse"])
            #expect(login.status == .forbidden && login.code == "account_disabled")
            #expect(try await client.call(.get, "/v1/admin/users/\(id)", bearer: Self.key).json["locked"] as? Bool == true)
            let unlocked = try await client.call(.post, "/v1/admin/users/\(id)/unlock", bearer: Self.key)
            #expect(unlocked["status"] == "unlocked" && unlocked.json["was_locked"] as? Bool == true)
            let again = try await client.post("/v1/auth/login", ["email": "lockme@example.com", "password": "correct horse"])
            #expect(again.status == .ok)
            let deleted = try await client.call(.delete, "/v1/admin/users/\(id)", bearer: Self.key)
            #expect(deleted["status"] == "deleted" && deleted.json["sessions_ended"] as? Int == 1)
            #expect(try await client.call(.get, "/v1/auth/me", bearer: again["access_token"]).code == "token_revoked")
            #expect(try await client.call(.get, "/v1/admin/users/\(id)", bearer: Self.key).code == "user_not_found")
        }
    }

    /// Every operator action is an `admin.action` audit record naming the target and the
    /// operator's request (docs/AUDIT.md); a key rotation is `key.rotated`.
    @Test func operatorActionsAreAuditRecords() async throws {
        let logs = LogCapture()
        var tessera = try await TestTessera.make(logs: logs)
        tessera.options.adminKey = Self.key
        let requestID = HTTPField.Name("X-Request-Id")!
        try await tessera.test { client in
            let grant = try await client.register("audited@example.com")
            let id = try #require((grant.json["user"] as? [String: Any])?["id"] as? String)
            let sid = try #require(grant["session_id"])
            _ = try await client.post("/v1/auth/login", ["email": "audited@example.com", "password": "correct horse"])
            for (method, path) in [
                (HTTPRequest.Method.delete, "/v1/admin/users/\(id)/sessions/\(sid)"), (.delete, "/v1/admin/users/\(id)/sessions"),
                (.post, "/v1/admin/users/\(id)/lock"), (.post, "/v1/admin/users/\(id)/unlock"), (.delete, "/v1/admin/users/\(id)"),
            ] {
                let reply = try await client.call(method, path, bearer: Self.key, headers: [requestID: "op-\(path.count)"])
                #expect(reply.status.code < 300, "\(path)")
            }
        }
        let actions = logs.records.filter { $0.label == "tessera.audit" && $0.metadata["event"] == "admin.action" }
        #expect(actions.map { $0.metadata["action"] } == ["user.session_revoked", "user.sessions_revoked", "user.locked", "user.unlocked", "user.deleted"])
        #expect(actions.allSatisfy { $0.metadata["request_id"]?.hasPrefix("op-") == true })
        #expect(actions.allSatisfy { $0.metadata["user_id"] != nil })
        let revoked = logs.records.filter { $0.metadata["event"] == "session.revoked" && $0.metadata["by"] == "admin" }
        #expect(revoked.count == 1)
    }

    @Test func aLockStopsTheMFAStepOfALoginAlreadyUnderway() async throws {
        let tessera = try await tessera()
        let clock = tessera.clock
        try await tessera.test { client in
            let grant = try await client.register("mfalock@example.com")
            let id = try #require((grant.json["user"] as? [String: Any])?["id"] as? String)
            let secret = try #require(try await client.post("/v1/auth/mfa/enroll", ["password": "correct horse"], bearer: grant["access_token"])["secret"])
            let confirm = try await client.post(
                "/v1/auth/mfa/confirm", ["code": TestTOTP.code(secret: secret, at: clock.now()), "password": "correct horse"],
                bearer: grant["access_token"]
            )
            #expect(confirm.status == .ok)
            let login = try await client.post("/v1/auth/login", ["email": "mfalock@example.com", "password": "correct horse"])
            let token = try #require(login["mfa_token"])
            #expect(try await client.call(.post, "/v1/admin/users/\(id)/lock", bearer: Self.key).status == .ok)
            clock.advance(by: 30)
            let verify = try await client.post("/v1/auth/mfa/verify", ["mfa_token": token, "code": TestTOTP.code(secret: secret, at: clock.now())])
            #expect(verify.status == .forbidden && verify.code == "account_disabled")
            #expect(verify["access_token"] == nil)
        }
    }

    @Test func keysAreListedRotatedAndRetired() async throws {
        var tessera = try await tessera()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-adminkeys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let keyPath = directory.appendingPathComponent("tessera.key").path
        let secretsPath = directory.appendingPathComponent("tessera-encryption.key").path
        try KeyFile.write(tessera.service.keyRing.material, to: keyPath)
        try EncryptionKeyFile.replace(tessera.service.keyRing.secrets, at: secretsPath)
        tessera.options.keyFiles = KeyFiles(keyFile: keyPath, encryptionKeyFile: secretsPath)
        let original = tessera.service.keyRing.material.signingKeys[0].id
        let (configured, clock) = (tessera, tessera.clock)
        try await configured.test { client in
            let grant = try await client.register("keys@example.com")
            let list = try await client.call(.get, "/v1/admin/keys", bearer: Self.key)
            let keys = try #require(list.json["keys"] as? [[String: Any]])
            #expect(keys.map { $0["kind"] as? String } == ["signing", "refresh", "encryption"])
            #expect(keys.allSatisfy { $0["state"] as? String == "active" })

            let rotated = try await client.post("/v1/admin/keys/rotate", ["kind": "signing", "publish_delay": 300], bearer: Self.key)
            #expect(rotated.status == .created && rotated["state"] == "staged" && rotated["activates_at"] != nil)
            let staged = try #require(rotated["id"])
            // Published at once, not yet signing.
            let jwks = try await client.call(.get, "/.well-known/jwks.json")
            #expect(Set((jwks.json["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String }) == [original, staged])
            let pending = try await client.post("/v1/admin/keys/rotate", ["kind": "signing"], bearer: Self.key)
            #expect(pending.status == .conflict && pending.code == "rotation_pending")
            let inUse = try await client.call(.delete, "/v1/admin/keys/\(original)", bearer: Self.key)
            #expect(inUse.status == .conflict && inUse.code == "key_in_use")
            let unknown = try await client.call(.delete, "/v1/admin/keys/nope", bearer: Self.key)
            #expect(unknown.status == .notFound && unknown.code == "key_not_found")
            #expect(try await client.post("/v1/admin/keys/rotate", ["kind": "other"], bearer: Self.key).code == "invalid_request")

            // After the activation time the new key signs and the old one may be retired; its
            // tokens stop verifying.
            // Activation is on the whole second after rotation + delay.
            clock.advance(by: 301)
            let refreshed = try await client.post("/v1/auth/refresh", ["refresh_token": grant["refresh_token"]!])
            #expect(refreshed.status == .ok)
            let retired = try await client.call(.delete, "/v1/admin/keys/\(original)", bearer: Self.key)
            #expect(retired.status == .ok && retired["kind"] == "signing")
            #expect(try await client.call(.get, "/v1/auth/me", bearer: grant["access_token"]).code == "invalid_token")
            #expect(try await client.call(.get, "/v1/auth/me", bearer: refreshed["access_token"]).status == .ok)
            #expect(try KeyFile.load(path: keyPath).signingKeys.map(\.id) == [staged])

            let encryption = try await client.post("/v1/admin/keys/rotate", ["kind": "encryption"], bearer: Self.key)
            #expect(encryption.status == .created && encryption["state"] == "active")
            let reseal = try await client.call(.post, "/v1/admin/keys/reseal", bearer: Self.key)
            #expect(reseal.status == .ok)
            #expect((reseal.json["mfa_secrets"] as? [String: Any])?["resealed"] as? Int == 0)
            #expect((reseal.json["credentials"] as? [String: Any])?["current"] as? Int == 0)
        }
    }

    @Test func keyRoutesWithoutKeyFilesAreConflicts() async throws {
        let tessera = try await tessera()
        try await tessera.test { client in
            let reply = try await client.post("/v1/admin/keys/rotate", ["kind": "signing"], bearer: Self.key)
            #expect(reply.status == .conflict && reply.code == "keys_ephemeral")
        }
    }
}
