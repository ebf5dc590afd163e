import Foundation
import Tessera
import TesseraRESP
import Testing

@testable import TesseraRedis

@Suite("Redis user cache entries (real redis-server)")
struct RedisUserCacheTests {
    /// Entries are read by field name (HMGET): written by this version, by one from before
    /// locks existed (no `lck`), or missing.
    @Test func entriesOfEveryVersionAreRead() async throws {
        try await withRedisClient { client, _ in
            let clock = ManualClock()
            let cache = RedisUserCache(client: client, keyPrefix: "c:", clock: clock)
            let now = clock.now()
            let locked = User(
                id: "u1", email: "one@example.test", passwordHash: "secret", mfaEnabled: true, createdAt: now.addingTimeInterval(-60),
                updatedAt: now, lockedAt: now.addingTimeInterval(-5)
            )
            try await cache.store(locked, ttl: 300)
            let read = try #require(try await cache.user(id: "u1"))
            #expect(read.id == "u1" && read.email == "one@example.test" && read.mfaEnabled && read.passwordHash.isEmpty)
            #expect(abs(read.lockedAt!.timeIntervalSince(locked.lockedAt!)) < 0.001)
            #expect(abs(read.updatedAt.timeIntervalSince(now)) < 0.001)

            let expiry = String(now.addingTimeInterval(300).timeIntervalSince1970)
            let created = String(now.timeIntervalSince1970)
            try await client.send([
                "HSET", "c:{u:old}:user", "id", "old", "email", "old@example.test", "mfa", "0", "cre", .init(created), "upd", .init(created),
                "exp", .init(expiry),
            ])
            let old = try #require(try await cache.user(id: "old"))
            #expect(old.email == "old@example.test" && !old.mfaEnabled && old.lockedAt == nil)

            #expect(try await cache.user(id: "missing") == nil)
            clock.advance(by: 301)
            #expect(try await cache.user(id: "u1") == nil)
        }
    }
}
