import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport
import Testing

/// What only the Redis store promises: key layout, TTLs, one slot per user.
@Suite("Redis token store")
struct RedisTokenStoreTests {
    func withRedisStore(_ body: (RedisTokenStore, RedisClient, ManualClock) async throws -> Void) async throws {
        try await withRedisClient { client, _ in
            let clock = ManualClock(Date())
            try await body(RedisTokenStore(client: client, keyPrefix: "t:", clock: clock), client, clock)
        }
    }

    func allKeys(_ client: RedisClient) async throws -> [String] {
        try await client.send(["KEYS", "*"]).array?.compactMap(\.string).sorted() ?? []
    }

    func session(_ clock: ManualClock, user: String, id: String, lifetime: TimeInterval = 3600) -> SessionRecord {
        let now = clock.now()
        return SessionRecord(
            id: id, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(lifetime), absoluteExpiresAt: now.addingTimeInterval(lifetime * 2)
        )
    }

    @Test func everyKeyHasATTLAndNoTokenMaterial() async throws {
        try await withRedisStore { store, client, clock in
            let a = session(clock, user: "alice", id: "s1")
            try await store.createSession(a)
            try await store.createSession(session(clock, user: "alice", id: "s2"))
            _ = try await store.rotate(.init(userID: "alice", sessionID: "s1", presentedGeneration: 1, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900))
            _ = try await store.revokeSession(id: "s2", userID: "alice", accessTTL: 900)
            try await store.deny(.tokenID("jti-1"), userID: "alice", until: clock.now().addingTimeInterval(900))
            try await store.putOneTimeToken(.init(kind: "reset", hash: "abc", userID: "alice", expiresAt: clock.now().addingTimeInterval(3600)))
            let keys = try await allKeys(client)
            #expect(keys == [
                "t:denials", "t:{u:alice}:deny:jti:jti-1", "t:{u:alice}:deny:sid:s2", "t:{u:alice}:ott:reset", "t:{u:alice}:s:s1", "t:{u:alice}:sessions",
            ].sorted())
            for key in keys {
                let ttl = try await client.send(["PTTL", .init(key)]).int ?? -3
                #expect(ttl > 0, "\(key) has no TTL")
            }
            // The session key expires with the session (its times are whole milliseconds); the
            // denylist entry with the access TTL.
            let sessionExpiry = try await client.send(["PEXPIRETIME", "t:{u:alice}:s:s1"]).int
            #expect(sessionExpiry == Int((a.idleExpiresAt.timeIntervalSince1970 * 1000).rounded()))
            let denyExpiry = try await client.send(["PEXPIRETIME", "t:{u:alice}:deny:sid:s2"]).int
            #expect(denyExpiry == Int((clock.now().addingTimeInterval(900).timeIntervalSince1970 * 1000).rounded(.up)))
        }
    }

    @Test func credentialsHaveTheirOwnKeyExpiringWithTheSession() async throws {
        try await withRedisStore { store, client, clock in
            let a = session(clock, user: "alice", id: "s1")
            try await store.createSession(a)
            let credential = SessionCredential(name: "idp", sessionID: "s1", userID: "alice", sealed: "SEALED-BYTES", updatedAt: clock.now())
            #expect(try await store.putCredential(credential, limit: 4) == .stored)
            let key = "t:{u:alice}:cred:s1"
            #expect(try await allKeys(client).contains(key))
            let expiry = try await client.send(["PEXPIRETIME", .init(key)]).int
            #expect(expiry == Int((a.absoluteExpiresAt.timeIntervalSince1970 * 1000).rounded()))
            // The refresh path never carries credential bytes: neither the session hash nor the
            // rotation's reply mentions them.
            let rotated = try await store.rotate(
                .init(userID: "alice", sessionID: "s1", presentedGeneration: 1, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900)
            )
            #expect(!"\(rotated)".contains("SEALED"))
            let hash = try await client.send(["HGETALL", "t:{u:alice}:s:s1"])
            #expect(!"\(hash)".contains("SEALED"))
            #expect(try await store.revokeSession(id: "s1", userID: "alice", accessTTL: 900))
            #expect(try await client.send(["EXISTS", .init(key)]).int == 0)
        }
    }

    @Test func statisticsIgnoreOtherPrefixesAndOtherKeys() async throws {
        try await withRedisStore { store, client, clock in
            try await store.createSession(session(clock, user: "alice", id: "s1"))
            let other = RedisTokenStore(client: client, keyPrefix: "other:", clock: clock)
            try await other.createSession(session(clock, user: "alice", id: "s2"))
            try await client.send(["SET", "t:unrelated", "1"])
            #expect(try await store.statistics() == TokenStoreStatistics(liveSessions: 1, deniedTokens: 0, pendingOneTimeTokens: [:]))
        }
    }

    @Test func aUsersKeysShareOneClusterSlot() async throws {
        try await withRedisStore { store, client, clock in
            try await store.createSession(session(clock, user: "bob", id: "s1"))
            try await store.deny(.tokenID("j"), userID: "bob", until: clock.now().addingTimeInterval(60))
            // On one server the denial index is one set of its own (on a cluster, one per slot:
            // RedisClusterTests).
            let slots = Set(try await allKeys(client).filter { $0 != "t:denials" }.map { RedisKeySlot.slot(of: $0) })
            #expect(slots == [RedisKeySlot.slot(of: "u:bob")])
        }
    }

    @Test func theSessionIndexIsPrunedAsMembersExpire() async throws {
        try await withRedisStore { store, client, clock in
            try await store.createSession(session(clock, user: "carol", id: "short", lifetime: 60))
            try await store.createSession(session(clock, user: "carol", id: "long", lifetime: 3600))
            #expect(try await client.send(["ZCARD", "t:{u:carol}:sessions"]).int == 2)
            clock.advance(by: 120)
            #expect(try await store.sessions(userID: "carol").map(\.id) == ["long"])
            #expect(try await client.send(["ZCARD", "t:{u:carol}:sessions"]).int == 1)
            try await store.createSession(session(clock, user: "carol", id: "new", lifetime: 60))
            #expect(try await client.send(["ZRANGE", "t:{u:carol}:sessions", 0, -1]).array?.compactMap(\.string).sorted() == ["long", "new"])
        }
    }

    @Test func anUnreachableRedisIsAStoreErrorNotAnAbsence() async throws {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        configuration.connectTimeout = .milliseconds(500)
        let client = RedisClient(configuration: configuration)
        let store = RedisTokenStore(client: client, clock: ManualClock(Date()))
        await #expect(throws: StoreError.self) { try await store.isRevoked(tokenID: "j", sessionID: "s", userID: "u") }
        await #expect(throws: StoreError.self) { try await store.session(id: "s", userID: "u") }
        await #expect(throws: StoreError.self) { try await store.ping() }
        await client.shutdown()
    }
}

/// The denial index: every way a denial is written lists it in the set of its slot, so that
/// the revocation view reloads from the index instead of SCANning the keyspace.
@Suite("Redis denial index")
struct RedisDenialIndexTests {
    func members(_ client: RedisClient, _ key: String) async throws -> [String] {
        (try await client.send(["ZRANGE", .init(key), "0", "-1"]).array ?? []).compactMap(\.string).sorted()
    }

    @Test func everyDenialIsIndexedInItsSlotWithATTL() async throws {
        try await withRedisClient { client, _ in
            let clock = ManualClock(Date())
            let store = RedisTokenStore(client: client, keyPrefix: "t:", clock: clock)
            let now = clock.now()
            func session(_ id: String) -> SessionRecord {
                SessionRecord(
                    id: id, userID: "erin", rotatedAt: now, createdAt: now, lastUsedAt: now, idleExpiresAt: now.addingTimeInterval(3600),
                    absoluteExpiresAt: now.addingTimeInterval(7200)
                )
            }
            for id in ["a", "b", "c", "d", "e"] { try await store.createSession(session(id)) }
            #expect(try await store.revokeSession(id: "a", userID: "erin", accessTTL: 900))
            #expect(try await store.endSession(id: "e", userID: "erin", accessTTL: 900, tokenID: "j2", tokenExpiresAt: now.addingTimeInterval(600)))
            try await store.deny(.tokenID("j1"), userID: "erin", until: now.addingTimeInterval(600))
            // Re-use of generation 0 after a rotation ends the session and denies it.
            _ = try await store.rotate(.init(userID: "erin", sessionID: "b", presentedGeneration: 1, graceWindow: 0, idleTTL: 3600, revokedAccessTTL: 900))
            clock.advance(by: 1)
            #expect(try await store.rotate(.init(userID: "erin", sessionID: "b", presentedGeneration: 1, graceWindow: 0, idleTTL: 3600, revokedAccessTTL: 900)) == .reused(userID: "erin"))
            #expect(try await store.revokeAllSessions(userID: "erin", keeping: "d", accessTTL: 900) == 1)

            let index = "t:denials"
            #expect(try await members(client, index) == [
                "t:{u:erin}:deny:jti:j1", "t:{u:erin}:deny:jti:j2", "t:{u:erin}:deny:sid:a", "t:{u:erin}:deny:sid:b", "t:{u:erin}:deny:sid:c",
                "t:{u:erin}:deny:sid:e",
            ])
            // Scores are the denials' ends in ms; the set expires with the last one.
            let last = try await client.send(["PEXPIRETIME", "t:{u:erin}:deny:sid:c"]).int
            #expect(try await client.send(["ZSCORE", .init(index), "t:{u:erin}:deny:sid:c"]).double.map { Int($0) } == last)
            #expect(try await client.send(["PEXPIRETIME", .init(index)]).int == last)
        }
    }
}
