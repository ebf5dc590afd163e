import Foundation
import HTTPTypes
import HummingbirdTesting
import Tessera
import TesseraTestSupport
import Testing

/// `tessera keys|sessions|users|mfa` as real processes against the stores and key files of a
/// running `tessera serve`.
@Suite("Admin CLI (processes)")
struct AdminCLITests {
    /// The flags every process of one deployment shares (`TesseraProcess.start` adds a cheap
    /// bcrypt cost for servers; commands get it here).
    func flags(_ directory: URL) -> [String] {
        ["--database-url", "sqlite:\(directory.path)/tessera.db", "--key-reload-interval", "0.2"]
    }

    func cli(_ arguments: [String], _ shared: [String]) async throws -> (status: Int32, output: String) {
        try await TesseraProcess.run(arguments + shared + ["--bcrypt-cost", "4"])
    }

    func kid(_ token: String?) -> String? {
        guard let token, let header = Base64URL.decode(String(token.split(separator: ".")[0])),
            let object = try? JSONSerialization.jsonObject(with: Data(header)) as? [String: Any]
        else { return nil }
        return object["kid"] as? String
    }

    /// When the token says it was signed (`iat`).
    func issuedAt(_ token: String?) -> Date? {
        guard let token, let payload = Base64URL.decode(String(token.split(separator: ".")[1])),
            let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
            let iat = object["iat"] as? Int
        else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(iat))
    }

    func jwksKids(_ server: TesseraProcess) async throws -> Set<String> {
        let reply = try await server.call(.get, "/.well-known/jwks.json")
        return Set((reply.json["keys"] as? [[String: Any]] ?? []).compactMap { $0["kid"] as? String })
    }

    func login(_ server: TesseraProcess, _ email: String) async throws -> Reply {
        try await server.call(.post, "/v1/auth/login", body: ["email": email, "password": "correct horse"])
    }

    @Test func accountCommandsActOnTheRunningDeployment() async throws {
        try await withTemporaryDirectory { directory in
            let shared = flags(directory)
            let server = try await TesseraProcess.start(shared)
            let registered = try await server.call(.post, "/v1/auth/register", body: ["email": "ops@example.com", "password": "correct horse"])
            #expect(registered.status == .created)
            let second = try await login(server, "ops@example.com")

            let show = try await cli(["users", "show", "--email", "OPS@example.com"], shared)
            #expect(show.status == 0, "\(show.output)")
            #expect(show.output.contains("email: ops@example.com") && show.output.contains("locked: no"))

            let list = try await cli(["sessions", "list", "--email", "ops@example.com"], shared)
            #expect(list.status == 0)
            #expect(list.output.contains(registered["session_id"]!) && list.output.contains(second["session_id"]!))

            let one = try await cli(["sessions", "revoke", "--email", "ops@example.com", "--session", registered["session_id"]!], shared)
            #expect(one.status == 0 && one.output.contains("ended"), "\(one.output)")
            #expect(try await server.call(.get, "/v1/auth/me", bearer: registered["access_token"]).code == "token_revoked")
            #expect(try await server.call(.get, "/v1/auth/me", bearer: second["access_token"]).status == .ok)

            let missingSession = try await cli(["sessions", "revoke", "--email", "ops@example.com", "--session", "nope"], shared)
            #expect(missingSession.status == 3 && missingSession.output.contains("session_not_found"))
            let nobody = try await cli(["sessions", "list", "--email", "nobody@example.com"], shared)
            #expect(nobody.status == 3 && nobody.output.contains("user_not_found"))
            let usage = try await cli(["sessions", "revoke", "--email", "ops@example.com"], shared)
            #expect(usage.status == 64)

            let lock = try await cli(["users", "lock", "--email", "ops@example.com"], shared)
            #expect(lock.status == 0 && lock.output.contains("1 session(s) ended"), "\(lock.output)")
            #expect(try await server.call(.get, "/v1/auth/me", bearer: second["access_token"]).code == "token_revoked")
            #expect(try await login(server, "ops@example.com").code == "account_disabled")
            #expect(try await cli(["users", "unlock", "--email", "ops@example.com"], shared).status == 0)
            let third = try await login(server, "ops@example.com")
            #expect(third.status == .ok)

            let mfa = try await cli(["mfa", "reset", "--email", "ops@example.com"], shared)
            #expect(mfa.status == 0 && mfa.output.contains("mfa was not on"))

            let delete = try await cli(["users", "delete", "--email", "ops@example.com"], shared)
            #expect(delete.status == 0 && delete.output.contains("deleted"))
            #expect(try await server.call(.get, "/v1/auth/me", bearer: third["access_token"]).code == "token_revoked")
            #expect(try await cli(["users", "show", "--email", "ops@example.com"], shared).status == 3)
            await server.stop()
        }
    }

    @Test func aMissingDatabaseIsAnErrorNotANewDeployment() async throws {
        try await withTemporaryDirectory { directory in
            let result = try await cli(["users", "show", "--email", "a@example.com"], flags(directory))
            #expect(result.status == 1 && result.output.contains("no database at"))
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("tessera.db").path))
        }
    }

    @Test func aSigningKeyRotationIsStagedAcrossInstances() async throws {
        try await withTemporaryDirectory { directory in
            let shared = flags(directory)
            // Two instances sharing the database and the key files.
            let a = try await TesseraProcess.start(shared)
            let b = try await TesseraProcess.start(shared)
            _ = try await a.call(.post, "/v1/auth/register", body: ["email": "rot@example.com", "password": "correct horse"])
            let before = try await login(a, "rot@example.com")
            let oldKid = try #require(kid(before["access_token"]))

            let rotate = try await cli(["keys", "rotate", "--key-publish-delay", "8"], shared)
            #expect(rotate.status == 0, "\(rotate.output)")
            let keyFile = directory.appendingPathComponent("tessera.key").path
            let material = try KeyFile.load(path: keyFile)
            let newKid = material.signingKeys[0].id
            #expect(newKid != oldKid && material.signingKeys[0].activatesAt != nil)
            let activatesAt = try #require(material.signingKeys[0].activatesAt)
            let listed = try await cli(["keys", "list"], shared)
            #expect(listed.status == 0 && listed.output.contains(newKid))
            // Timing-tolerant: on a slow machine the list may come after the activation.
            if Date() < activatesAt.addingTimeInterval(-1) { #expect(listed.output.contains("staged")) }

            // Both instances publish the new key, and sign with the old one until the activation time.
            #expect(try await eventually(.seconds(20)) {
                let (onA, onB) = (try await jwksKids(a), try await jwksKids(b))
                return onA.contains(newKid) && onB.contains(newKid)
            })
            if Date() < activatesAt.addingTimeInterval(-1) {
                // Judged by when the token was signed: under load the login itself can end
                // after the activation time.
                let token = try await login(b, "rot@example.com")["access_token"]
                if let signed = issuedAt(token), signed < activatesAt.addingTimeInterval(-1) {
                    #expect(kid(token) == oldKid)
                }
            }
            // From the activation time on, both sign with the new key (waited for, not polled:
            // logins are rate-limited per account).
            let untilActive = activatesAt.timeIntervalSinceNow + 0.5
            if untilActive > 0 { try await Task.sleep(for: .milliseconds(Int(untilActive * 1000))) }
            #expect(kid(try await login(a, "rot@example.com")["access_token"]) == newKid)
            #expect(kid(try await login(b, "rot@example.com")["access_token"]) == newKid)

            // The old key's token still verifies on both, until it is retired.
            #expect(try await b.call(.get, "/v1/auth/me", bearer: before["access_token"]).status == .ok)
            let refused = try await cli(["keys", "retire", newKid], shared)
            #expect(refused.status == 4 && refused.output.contains("key_in_use"))
            let retire = try await cli(["keys", "retire", oldKid], shared)
            #expect(retire.status == 0, "\(retire.output)")
            #expect(try await eventually(.seconds(20)) {
                let onA = try await a.call(.get, "/v1/auth/me", bearer: before["access_token"]).code
                let onB = try await b.call(.get, "/v1/auth/me", bearer: before["access_token"]).code
                return onA == "invalid_token" && onB == "invalid_token"
            })
            #expect(try await jwksKids(a) == [newKid])
            #expect(try await cli(["keys", "retire", "nope"], shared).status == 3)
            await a.stop()
            await b.stop()
        }
    }

    @Test func refreshAndEncryptionKeysRotateWithOverlap() async throws {
        try await withTemporaryDirectory { directory in
            let shared = flags(directory)
            let server = try await TesseraProcess.start(shared)
            let grant = try await server.call(.post, "/v1/auth/register", body: ["email": "mac@example.com", "password": "correct horse"])
            let enrolled = try await server.call(.post, "/v1/auth/mfa/enroll", body: ["password": "correct horse"], bearer: grant["access_token"])
            #expect(enrolled.status == .ok)
            let stored = try await server.call(.put, "/v1/auth/session/credentials/idp", body: ["token": "upstream"], bearer: grant["access_token"])
            #expect(stored.status == .noContent)

            // Refresh key: the old token refreshes, and what comes back is under the new key.
            #expect(try await cli(["keys", "rotate", "--kind", "refresh"], shared).status == 0)
            let keyFile = directory.appendingPathComponent("tessera.key").path
            let material = try KeyFile.load(path: keyFile)
            #expect(material.refreshKeys.count == 2)
            try await Task.sleep(for: .seconds(1))
            let refreshed = try await server.call(.post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
            #expect(refreshed.status == .ok)
            let token = try #require(refreshed["refresh_token"])
            #expect(RefreshTokenCodec(key: material.refreshKeys[0].key).decode(token) != nil)
            #expect(RefreshTokenCodec(key: material.refreshKeys[1].key).decode(token) == nil)

            // Encryption key: retiring the old one waits for the re-seal.
            let secretsFile = directory.appendingPathComponent("tessera-encryption.key").path
            let oldKey = try EncryptionKeyFile.load(path: secretsFile).keys[0].id
            #expect(try await cli(["keys", "rotate", "--kind", "encryption"], shared).status == 0)
            let early = try await cli(["keys", "retire", oldKey], shared)
            #expect(early.status == 4 && early.output.contains("key_still_sealing"))
            let reseal = try await cli(["keys", "reseal"], shared)
            #expect(reseal.status == 0, "\(reseal.output)")
            #expect(reseal.output.contains("mfa secrets: 1 re-sealed") && reseal.output.contains("credentials: 1 re-sealed"))
            let again = try await cli(["keys", "reseal"], shared)
            #expect(again.output.contains("mfa secrets: 0 re-sealed, 1 already current"))
            #expect(again.output.contains("credentials: 0 re-sealed, 1 already current"))
            #expect(try await cli(["keys", "retire", oldKey], shared).status == 0)
            #expect(try EncryptionKeyFile.load(path: secretsFile).keys.count == 1)
            await server.stop()
        }
    }

    @Test func sessionCommandsWorkOnTheRedisTokenStore() async throws {
        try await withRedisServer { redis in
            try await withTemporaryDirectory { directory in
                let shared = flags(directory) + ["--token-store", "redis", "--redis-url", redis.url, "--redis-timeout", "1"]
                let server = try await TesseraProcess.start(shared)
                let grant = try await server.call(.post, "/v1/auth/register", body: ["email": "redis@example.com", "password": "correct horse"])
                let list = try await cli(["sessions", "list", "--email", "redis@example.com"], shared)
                #expect(list.status == 0 && list.output.contains(grant["session_id"]!), "\(list.output)")
                // Credentials on Redis are found by SCAN and re-sealed by a compare-and-set script.
                let stored = try await server.call(.put, "/v1/auth/session/credentials/idp", body: ["t": 1], bearer: grant["access_token"])
                #expect(stored.status == .noContent)
                #expect(try await cli(["keys", "rotate", "--kind", "encryption"], shared).status == 0)
                let reseal = try await cli(["keys", "reseal"], shared)
                #expect(reseal.output.contains("credentials: 1 re-sealed"), "\(reseal.output)")
                try await Task.sleep(for: .seconds(1))
                let read = try await server.call(.get, "/v1/auth/session/credentials/idp", bearer: grant["access_token"])
                #expect(read.status == .ok && read.json["t"] as? Int == 1)
                let revoke = try await cli(["sessions", "revoke", "--email", "redis@example.com", "--all"], shared)
                #expect(revoke.status == 0 && revoke.output.contains("1 session(s) ended"))
                #expect(try await eventually(.seconds(20)) { try await server.call(.get, "/v1/auth/me", bearer: grant["access_token"]).code == "token_revoked" })
                let refresh = try await server.call(.post, "/v1/auth/refresh", body: ["refresh_token": grant["refresh_token"]!])
                #expect(refresh.code == "invalid_refresh_token")
                #expect(try await cli(["users", "lock", "--email", "redis@example.com"], shared).status == 0)
                #expect(try await login(server, "redis@example.com").code == "account_disabled")
                await server.stop()
            }
        }
    }
}
