import Foundation
import NIOCore
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport
import Testing

/// Session hashes in layout 2 (one-letter fields, integer milliseconds, no ids, 64-byte runs),
/// and sessions written in layout 1 by earlier versions, which keep working until they expire.
@Suite("Redis session layout")
struct RedisSessionLayoutTests {
    static let browser =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    /// 2 + 3 + 4 bytes per character, so the 64-byte cuts fall inside characters.
    static let device = String(repeating: "é€😀", count: 20)

    func withStore(_ body: (RedisTokenStore, RedisClient, ManualClock) async throws -> Void) async throws {
        try await withRedisClient { client, _ in
            // A whole-millisecond clock: layout 2 keeps times to the millisecond.
            let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000.125))
            try await body(RedisTokenStore(client: client, keyPrefix: "t:", clock: clock), client, clock)
        }
    }

    func session(_ clock: ManualClock, user: String = "alice", id: String = "s1") -> SessionRecord {
        let now = clock.now()
        return SessionRecord(
            id: id, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now, idleExpiresAt: now.addingTimeInterval(3600),
            absoluteExpiresAt: now.addingTimeInterval(86400), device: Self.device, userAgent: Self.browser, ipAddress: "2001:db8::1"
        )
    }

    /// The raw fields; a value cut inside a UTF-8 sequence reads as "" here (its bytes are in `sizes`).
    func fields(_ client: RedisClient, _ key: String) async throws -> [String: String] {
        (try await client.send(["HGETALL", .init(key)]).stringMap ?? [:]).mapValues { $0.string ?? "" }
    }

    func sizes(_ client: RedisClient, _ key: String) async throws -> [Int] {
        (try await client.send(["HGETALL", .init(key)]).stringMap ?? [:]).values.map { $0.bytes?.readableBytes ?? -1 }
    }

    @Test func aSessionIsStoredCompactlyAndReadBackWhole() async throws {
        try await withStore { store, client, clock in
            let a = session(clock)
            try await store.createSession(a)
            #expect(try await store.session(id: "s1", userID: "alice") == a)
            #expect(try await store.sessions(userID: "alice") == [a])
            let key = "t:{u:alice}:s:s1"
            let stored = try await fields(client, key)
            #expect(Set(stored.keys) == ["g", "c", "l", "i", "a", "d", "d1", "d2", "u", "u1", "p"])
            #expect(stored["l"] == "1800000000125")
            #expect(stored["i"] == "1800003600125")
            #expect(try await sizes(client, key).allSatisfy { (0...64).contains($0) })
            // No id is repeated in the hash: both are in the key.
            #expect(!stored.values.contains("alice") && !stored.values.contains("s1"))
            #expect(try await client.send(["OBJECT", "ENCODING", .init(key)]).string == "listpack")
            #expect(try await client.send(["OBJECT", "ENCODING", "t:{u:alice}:sessions"]).string == "listpack")
            // The index scores are whole seconds, rounded up.
            #expect(try await client.send(["ZSCORE", "t:{u:alice}:sessions", "s1"]).double == 1_800_003_601)
        }
    }

    @Test func rotationReplacesTheUserAgentAndAddressRuns() async throws {
        try await withStore { store, client, clock in
            try await store.createSession(session(clock))
            clock.advance(by: 1)
            let outcome = try await store.rotate(
                RotationRequest(
                    userID: "alice", sessionID: "s1", presentedGeneration: 1, graceWindow: 4, idleTTL: 3600, revokedAccessTTL: 900,
                    userAgent: "curl/8.5.0", ipAddress: "192.0.2.7"
                )
            )
            guard case .rotated(let rotated) = outcome else {
                Issue.record("\(outcome)")
                return
            }
            #expect(rotated.userAgent == "curl/8.5.0")
            #expect(rotated.ipAddress == "192.0.2.7")
            #expect(rotated.device == Self.device)
            #expect(rotated.generation == 2)
            #expect(rotated.rotatedAt == clock.now() && rotated.lastUsedAt == clock.now())
            let stored = try await fields(client, "t:{u:alice}:s:s1")
            #expect(stored["u1"] == nil && stored["u"] == "curl/8.5.0" && stored["r"] == nil)
            #expect(try await store.session(id: "s1", userID: "alice") == rotated)
            // The previous generation inside the grace window is re-issued the same session.
            let retry = try await store.rotate(
                RotationRequest(userID: "alice", sessionID: "s1", presentedGeneration: 1, graceWindow: 4, idleTTL: 3600, revokedAccessTTL: 900)
            )
            #expect(retry == .reissued(rotated))
        }
    }

    /// A session as the layout-1 scripts wrote it: decimal seconds, ids repeated, index scored
    /// by the exact expiry.
    func writeLegacySession(_ client: RedisClient, _ clock: ManualClock, user: String, id: String) async throws {
        let now = clock.now().timeIntervalSince1970
        let key = RESPArgument("t:{u:\(user)}:s:\(id)")
        let idle = now + 3600
        try await client.send([
            "HSET", key, "uid", .init(user), "sid", .init(id), "gen", "3", "rot", .init(String(now - 5)), "cre", .init(String(now - 60)),
            "last", .init(String(now - 5)), "idle", .init(String(idle)), "abs", .init(String(now + 86400)), "dev", "Old phone",
            "ua", .init(Self.browser), "ip", "198.51.100.4",
        ])
        try await client.send(["PEXPIREAT", key, .init(Int((idle * 1000).rounded(.up)))])
        try await client.send(["ZADD", .init("t:{u:\(user)}:sessions"), .init(String(idle)), .init(id)])
        try await client.send(["PEXPIREAT", .init("t:{u:\(user)}:sessions"), .init(Int((idle * 1000).rounded(.up)))])
    }

    @Test func aLayoutOneSessionIsReadListedCountedAndRewrittenByItsNextRotation() async throws {
        try await withStore { store, client, clock in
            try await writeLegacySession(client, clock, user: "bob", id: "old")
            let now = clock.now()
            let read = try #require(try await store.session(id: "old", userID: "bob"))
            #expect(read.generation == 3 && read.device == "Old phone" && read.userAgent == Self.browser && read.ipAddress == "198.51.100.4")
            #expect(read.createdAt == now.addingTimeInterval(-60) && read.idleExpiresAt == now.addingTimeInterval(3600))
            #expect(try await store.sessions(userID: "bob") == [read])
            #expect(try await store.statistics().liveSessions == 1)
            // Its ids must match the key's, as before.
            #expect(try await store.session(id: "old", userID: "mallory") == nil)

            // Within the grace window the previous generation is re-issued, still in layout 1.
            #expect(try await store.rotate(.init(userID: "bob", sessionID: "old", presentedGeneration: 2, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900)) == .reissued(read))
            let before = try await client.send(["PEXPIRETIME", "t:{u:bob}:s:old"]).int
            clock.advance(by: 1)
            guard case .rotated(let rotated) = try await store.rotate(
                .init(userID: "bob", sessionID: "old", presentedGeneration: 3, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900)
            ) else {
                Issue.record("the layout-1 session did not rotate")
                return
            }
            #expect(rotated.generation == 4 && rotated.device == "Old phone" && rotated.userAgent == Self.browser)
            #expect(rotated.createdAt == read.createdAt && rotated.absoluteExpiresAt == read.absoluteExpiresAt)
            let stored = try await fields(client, "t:{u:bob}:s:old")
            #expect(stored["uid"] == nil && stored["sid"] == nil && stored["gen"] == nil && stored["g"] == "4")
            #expect(try await client.send(["OBJECT", "ENCODING", "t:{u:bob}:s:old"]).string == "listpack")
            #expect(try await client.send(["PEXPIRETIME", "t:{u:bob}:s:old"]).int ?? 0 > before ?? 0)
            #expect(try await store.session(id: "old", userID: "bob") == rotated)
        }
    }

    @Test func layoutOneSessionsEndLikeAnyOther() async throws {
        try await withStore { store, client, clock in
            try await writeLegacySession(client, clock, user: "carol", id: "a")
            try await writeLegacySession(client, clock, user: "carol", id: "b")
            try await writeLegacySession(client, clock, user: "carol", id: "c")
            // Another user's layout-1 record under this key is not carol's session.
            #expect(try await store.revokeSession(id: "a", userID: "mallory", accessTTL: 900) == false)
            let credential = SessionCredential(name: "idp", sessionID: "a", userID: "carol", sealed: "S", updatedAt: clock.now())
            #expect(try await store.putCredential(credential, limit: 4) == .stored)
            #expect(try await store.credential(named: "idp", sessionID: "a", userID: "carol")?.sealed == "S")
            #expect(try await store.revokeSession(id: "a", userID: "carol", accessTTL: 900))
            #expect(try await store.session(id: "a", userID: "carol") == nil)
            #expect(try await store.isRevoked(tokenID: "j", sessionID: "a", userID: "carol"))
            #expect(try await store.revokeAllSessions(userID: "carol", keeping: "c", accessTTL: 900) == 1)
            #expect(try await store.sessions(userID: "carol").map(\.id) == ["c"])
            #expect(try await store.isRevoked(tokenID: "j", sessionID: "b", userID: "carol"))
        }
    }

    @Test func layoutOneSessionsStillExpireOnTime() async throws {
        try await withStore { store, client, clock in
            try await writeLegacySession(client, clock, user: "dave", id: "x")
            clock.advance(by: 3600)
            #expect(try await store.session(id: "x", userID: "dave") == nil)
            #expect(try await store.rotate(.init(userID: "dave", sessionID: "x", presentedGeneration: 3, graceWindow: 10, idleTTL: 3600, revokedAccessTTL: 900)) == .invalid)
            #expect(try await store.sessions(userID: "dave").isEmpty)
        }
    }
}
