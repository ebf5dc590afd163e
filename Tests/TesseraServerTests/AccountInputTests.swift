import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Tessera
import TesseraServer
import Testing

/// The smaller findings of issue 10 about what users send: email spellings, byte bounds and
/// a `password/forgot` that does its work off the request path.
@Suite("Account input: email normalization, byte bounds, forgot off the request path (HTTP)")
struct AccountInputTests {
    @Test(arguments: [
        "jo\u{200B}se@example.com",  // zero-width space
        "jo\u{AD}se@example.com",  // soft hyphen
        "\u{FEFF}jose@example.com",  // BOM
        "jose@exa\u{202E}moc.elpmaxe",  // bidi override
        "jose\u{2066}@example.com",  // bidi isolate
        "jo\u{200D}se@example.com",  // zero-width joiner
        "jose\u{34F}@example.com",  // combining grapheme joiner (default-ignorable)
    ])
    func invisibleCharactersAreRefused(email: String) async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            _ = try await client.register("jose@example.com")
            let reply = try await client.post("/v1/auth/register", ["email": email, "password": "correct horse"])
            #expect(reply.status == .unprocessableContent)
            #expect(reply.code == "invalid_request")
            // Nor do they reach the existing account at login.
            #expect(try await client.login(email).code == "invalid_credentials")
        }
    }

    @Test func stringsAreBoundedInUTF8BytesNotCharacters() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            // One character of 30,000 combining marks: 60 kB as UTF-8.
            let label = "a" + String(repeating: "\u{301}", count: 30_000)
            #expect(label.count == 1)
            _ = try await client.register("bytes@example.com")
            tessera.clock.advance(by: 1)  // sessions are listed oldest first
            let login = try await client.login("bytes@example.com", device: label)
            let sessions = try await client.call(.get, "/v1/auth/sessions", bearer: login["access_token"]).json["sessions"] as? [[String: Any]]
            let stored = try #require(sessions?.last?["device"] as? String)
            #expect(stored.utf8.count <= 200)
            #expect(stored.utf8.starts(with: "a\u{301}\u{301}".utf8))

            // A password of 8 "characters" and 16 kB is refused, not hashed.
            let heavy = String(repeating: "x" + String(repeating: "\u{301}", count: 1000), count: 8)
            #expect(heavy.count == 8)
            let refused = try await client.post("/v1/auth/register", ["email": "heavy@example.com", "password": heavy])
            #expect(refused.code == "invalid_request")
            let long = try await client.post("/v1/auth/register", ["email": "long@example.com", "password": String(repeating: "é", count: 256)])
            #expect(long.status == .created)
        }
    }

    @Test func theUserAgentIsBoundedInBytes() async throws {
        let tessera = try await TestTessera.make()
        try await tessera.test { client in
            let agent = "agent/" + String(repeating: "\u{301}", count: 5_000)
            let reply = try await client.call(
                .post, "/v1/auth/register", body: jsonBody(["email": "agent@example.com", "password": "correct horse"]),
                headers: [.userAgent: agent]
            )
            let sessions = try await client.call(.get, "/v1/auth/sessions", bearer: reply["access_token"]).json["sessions"] as? [[String: Any]]
            let stored = try #require(sessions?.first?["user_agent"] as? String)
            #expect(stored.utf8.count <= 512 && stored.utf8.starts(with: "agent/\u{301}".utf8))
        }
    }

    /// A user store whose email look-ups wait until the test opens the gate: if `forgot` looked
    /// the user up on the request path, its answer could not arrive while the gate is closed.
    final class GatedUserStore: UserStore {
        let base = MemoryUserStore()
        let open = Mutex(false)
        let waiting = Mutex(0)
        let finished = Mutex(0)
        var backendName: String { "gated" }

        func createUser(_ user: User) async throws { try await base.createUser(user) }
        func user(id: String) async throws -> User? { try await base.user(id: id) }
        func user(email: String) async throws -> User? {
            waiting.withLock { $0 += 1 }
            // Bounded: a broken implementation fails the test instead of hanging it.
            for _ in 0..<400 where !open.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(25)) }
            defer { finished.withLock { $0 += 1 } }
            return try await base.user(email: email)
        }
        func updateUser(_ user: User) async throws { try await base.updateUser(user) }
        func replaceRecoveryCodes(userID: String, hashes: [String]) async throws {
            try await base.replaceRecoveryCodes(userID: userID, hashes: hashes)
        }
        func consumeRecoveryCode(userID: String, hash: String) async throws -> Bool {
            try await base.consumeRecoveryCode(userID: userID, hash: hash)
        }
        func recoveryCodeCount(userID: String) async throws -> Int { try await base.recoveryCodeCount(userID: userID) }
        func deleteUser(id: String) async throws -> Bool { try await base.deleteUser(id: id) }
        func sealedMFASecrets() async throws -> [SealedSecret] { try await base.sealedMFASecrets() }
        func replaceMFASecret(userID: String, expected: String, with sealed: String) async throws -> Bool {
            try await base.replaceMFASecret(userID: userID, expected: expected, with: sealed)
        }
    }

    @Test func forgotAnswersIdenticallyBeforeTheLookUpAndTheResetStillWorks() async throws {
        let clock = ManualClock(Date())
        var policy = TokenPolicy()
        policy.bcryptCost = 4
        let outbox = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-outbox-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outbox) }
        let users = GatedUserStore()
        let service = try await AuthService(
            policy: policy, users: users, tokens: MemoryTokenStore(clock: clock), keys: .generate(),
            security: .local(secrets: .generate(), outbox: outbox, rateLimits: .unlimited, clock: clock), clock: clock
        )
        let app = Application(router: TesseraHTTP.router(service: service))
        try await app.test(.router) { client in
            let email = "gated@example.com"
            #expect(try await client.register(email).status == .created)
            let known = try await client.post("/v1/auth/password/forgot", ["email": email])
            let unknown = try await client.post("/v1/auth/password/forgot", ["email": "nobody@example.com"])
            // Both answered while their look-ups still wait: nothing about the account was known.
            #expect(users.finished.withLock { $0 } == 0)
            #expect(outboxMessages(outbox).isEmpty)
            #expect(known.status == .accepted && unknown.status == .accepted)
            #expect(known.body == unknown.body)
            var knownHeaders = known.headers
            var unknownHeaders = unknown.headers
            knownHeaders[.date] = nil
            unknownHeaders[.date] = nil
            // Every answer has a request id of its own, whatever the account.
            let requestID = HTTPField.Name("X-Request-Id")!
            #expect(knownHeaders[requestID] != nil && knownHeaders[requestID] != unknownHeaders[requestID])
            knownHeaders[requestID] = nil
            unknownHeaders[requestID] = nil
            #expect(knownHeaders == unknownHeaders)
            try await waitUntilLookups(users, 2)

            users.open.withLock { $0 = true }
            let token = try #require(try await waitForOutbox(outbox, count: 1).first?["token"] as? String)
            #expect(outboxMessages(outbox).count == 1)
            #expect(try await client.post("/v1/auth/password/reset", ["token": token, "new_password": "a new password"]).status == .noContent)
            #expect(try await client.login(email, "a new password").status == .ok)
        }
    }

    private func waitUntilLookups(_ users: GatedUserStore, _ count: Int) async throws {
        for _ in 0..<400 where users.waiting.withLock({ $0 }) < count { try await Task.sleep(for: .milliseconds(25)) }
        #expect(users.waiting.withLock { $0 } >= count)
    }
}
