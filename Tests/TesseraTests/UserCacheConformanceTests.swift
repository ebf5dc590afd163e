import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import Testing

func withUserCache(_ kind: SharedStoreKind, _ body: (SharedStoreFixture<any UserCache>) async throws -> Void) async throws {
    try await withSharedStore(
        kind, memory: { MemoryUserCache(clock: $0) }, redis: { RedisUserCache(client: $0, keyPrefix: $1, clock: $2) }, body
    )
}

extension User {
    /// A user with both secrets set, to check that no cache keeps them.
    static func withSecrets(email: String = "ada@example.com") -> User {
        var user = makeUser(email: email)
        user.mfaEnabled = true
        user.mfaSecret = "SEALED-TOTP-SECRET"
        return user
    }
}

@Suite("UserCache conformance")
struct UserCacheConformanceTests {
    @Test(arguments: SharedStoreKind.allCases)
    func storedUsersReadBackWithoutSecrets(kind: SharedStoreKind) async throws {
        try await withUserCache(kind) { f in
            #expect(f.store.backendName == kind.rawValue)
            let user = User.withSecrets()
            try await f.store.store(user, ttl: 3600)
            let cached = try await f.store.user(id: user.id)
            #expect(cached == user.withoutSecrets)
            #expect(cached?.passwordHash == "")
            #expect(cached?.mfaSecret == nil)
            #expect(try await f.store.user(id: "missing") == nil)

            var changed = user
            changed.email = "ada.lovelace@example.com"
            changed.mfaEnabled = false
            try await f.store.store(changed, ttl: 3600)
            #expect(try await f.store.user(id: user.id) == changed.withoutSecrets)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func entriesExpireAfterTheirTTL(kind: SharedStoreKind) async throws {
        try await withUserCache(kind) { f in
            let user = User.withSecrets()
            try await f.store.store(user, ttl: 60)
            f.clock.advance(by: 59)
            #expect(try await f.store.user(id: user.id) == user.withoutSecrets)
            f.clock.advance(by: 1)
            #expect(try await f.store.user(id: user.id) == nil)
            // Storing again starts a new TTL.
            try await f.store.store(user, ttl: 60)
            #expect(try await f.store.user(id: user.id) == user.withoutSecrets)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func invalidateDropsOnlyThatUser(kind: SharedStoreKind) async throws {
        try await withUserCache(kind) { f in
            let ada = User.withSecrets()
            let grace = User.withSecrets(email: "grace@example.com")
            try await f.store.store(ada, ttl: 3600)
            try await f.store.store(grace, ttl: 3600)
            try await f.store.invalidate(userID: ada.id)
            try await f.store.invalidate(userID: "never-cached")
            #expect(try await f.store.user(id: ada.id) == nil)
            #expect(try await f.store.user(id: grace.id) == grace.withoutSecrets)
        }
    }

    @Test func redisStoresNoSecretsAndATTL() async throws {
        try await withUserCache(.redis) { f in
            let raw = try #require(f.raw)
            let user = User.withSecrets()
            try await f.store.store(user, ttl: 3600)
            let key = RESPArgument("test:{u:\(user.id)}:user")
            #expect(try await raw.send(["KEYS", "*"]).array?.compactMap(\.string) == ["test:{u:\(user.id)}:user"])
            let contents = try await raw.send(["HGETALL", key])
            let text = "\(contents)"
            #expect(text.contains(user.email))
            #expect(!text.contains(user.passwordHash))
            #expect(!text.contains("SEALED-TOTP-SECRET"))
            let expiry = try await raw.send(["PEXPIRETIME", key]).int
            #expect(expiry == Int((f.clock.now().addingTimeInterval(3600).timeIntervalSince1970 * 1000).rounded(.up)))
        }
    }
}
