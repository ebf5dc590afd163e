import Foundation
import Tessera
import TesseraRESP
@testable import TesseraRedis
import TesseraTestSupport
import Testing

/// Two "instances" on one real redis-server: A writes revocations, B validates with a local
/// revocation view. Propagation is asserted within a bounded deadline (2 s); how fast it really
/// is, is measured by the benchmarks, not here.
@Suite("Local revocation view")
struct RevocationViewTests {
    struct Instances {
        let a: RedisTokenStore
        let b: RedisTokenStore
        let view: RevocationView
        /// A third connection, for the test's own commands (CLIENT KILL, raw writes).
        let admin: RedisClient
    }

    func withInstances(clock: any TesseraClock = SystemClock(), _ body: (Instances) async throws -> Void) async throws {
        try await withRedisServer { server in
            var configuration = try RedisConfiguration(url: server.url)
            // Slow reconnects, so that the gap after a dropped subscription is wide enough to
            // write into it.
            configuration.reconnectBaseDelay = .milliseconds(400)
            let clientA = try RedisClient(url: server.url)
            let clientB = RedisClient(configuration: configuration)
            let admin = try RedisClient(url: server.url)
            // A long lease, as in StoreFixtures: a loaded test process answers heartbeats late. The
            // dropped-subscription test does not rely on it: a closed connection ends trust at once.
            let view = RevocationView(
                client: clientB, keyPrefix: "t:", clock: clock, heartbeatInterval: .milliseconds(100), lease: .seconds(30)
            )
            let running = Task { try await view.run() }
            let instances = Instances(
                a: RedisTokenStore(client: clientA, keyPrefix: "t:"),
                b: RedisTokenStore(client: clientB, keyPrefix: "t:", clock: clock, revocations: view), view: view, admin: admin
            )
            func stop() async {
                running.cancel()
                _ = await running.result
                for client in [clientA, clientB, admin] { await client.shutdown() }
            }
            do {
                try await waitUntil("the revocation view is synced", .seconds(45)) { view.isTrusted }
                try await body(instances)
            } catch {
                await stop()
                throw error
            }
            await stop()
        }
    }

    /// B refuses the token within 2 s (from its view, or from Redis while the view cannot vouch
    /// for itself), and its view holds the entry (a longer bound: a loaded machine may delay
    /// heartbeats, and the view then answers nothing until the next one).
    func seen(_ i: Instances, _ what: String, user: String, jti: String = "none", sid: String = "none", key: String) async throws {
        try await waitUntil("\(what): refused by B", .seconds(2)) {
            try await i.b.isRevoked(tokenID: jti, sessionID: sid, userID: user)
        }
        try await waitUntil("\(what): in B's view", .seconds(30)) { i.view.isRevoked(key) == true }
    }

    func session(user: String, id: String) -> SessionRecord {
        let now = Date()
        return SessionRecord(
            id: id, userID: user, rotatedAt: now, createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(3600), absoluteExpiresAt: now.addingTimeInterval(7200)
        )
    }

    func commandCalls(_ client: RedisClient, _ command: String) async throws -> Int {
        let info = try await client.send(["INFO", "commandstats"]).string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):calls=") }) else { return 0 }
        return Int(line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }) ?? 0
    }

    @Test func aRevocationOnAIsSeenByBWithoutAskingRedis() async throws {
        try await withInstances { i in
            try await i.a.createSession(session(user: "alice", id: "s1"))
            try await i.a.createSession(session(user: "alice", id: "s2"))
            try await i.a.createSession(session(user: "alice", id: "s3"))
            #expect(try await i.b.isRevoked(tokenID: "j1", sessionID: "s1", userID: "alice") == false)

            // Logout of one session, a denied token id, then logout-all: each is seen by B.
            #expect(try await i.a.revokeSession(id: "s1", userID: "alice", accessTTL: 900))
            try await seen(i, "logout", user: "alice", sid: "s1", key: "t:{u:alice}:deny:sid:s1")
            try await i.a.deny(.tokenID("j9"), userID: "alice", until: Date().addingTimeInterval(900))
            try await seen(i, "denied token id", user: "alice", jti: "j9", key: "t:{u:alice}:deny:jti:j9")
            #expect(try await i.a.revokeAllSessions(userID: "alice", keeping: "s3", accessTTL: 900) == 1)
            try await seen(i, "logout-all", user: "alice", sid: "s2", key: "t:{u:alice}:deny:sid:s2")
            #expect(try await i.b.isRevoked(tokenID: "j3", sessionID: "s3", userID: "alice") == false)
            #expect(try await i.b.isRevoked(tokenID: "j1", sessionID: "s1", userID: "bob") == false)
            // A synced view answers without a Redis command (A never sends MGET either).
            try await waitUntil("the view is trusted", .seconds(30)) { i.view.isTrusted }
            let mgetBefore = try await commandCalls(i.admin, "mget")
            for _ in 0..<100 {
                _ = try await i.b.isRevoked(tokenID: "j1", sessionID: "s1", userID: "alice")
            }
            if i.view.isTrusted {
                #expect(try await commandCalls(i.admin, "mget") == mgetBefore)
            }
        }
    }

    @Test func aReusedRefreshTokenOnAIsSeenByB() async throws {
        try await withInstances { i in
            try await i.a.createSession(session(user: "carol", id: "s1"))
            let request = RotationRequest(
                userID: "carol", sessionID: "s1", presentedGeneration: 1, graceWindow: 0, idleTTL: 3600, revokedAccessTTL: 900
            )
            guard case .rotated = try await i.a.rotate(request) else {
                Issue.record("expected a rotation")
                return
            }
            #expect(try await i.a.rotate(request) == .reused(userID: "carol"))
            try await seen(i, "re-use revocation", user: "carol", sid: "s1", key: "t:{u:carol}:deny:sid:s1")
        }
    }

    @Test func aDroppedSubscriptionFallsBackToRedisThenResynchronises() async throws {
        try await withInstances { i in
            try await i.a.createSession(session(user: "dave", id: "s1"))
            let resyncs = i.view.resyncCount
            let until = Date().addingTimeInterval(900)
            // Kill B's subscription and, in the same pipeline, write a revocation (key and
            // index entry, as the scripts do) with no message at all: the worst case of a message
            // missed while disconnected.
            let untilMs = RESPArgument(Int((until.timeIntervalSince1970 * 1000).rounded(.up)))
            let replies = try await i.admin.pipeline([
                ["CLIENT", "KILL", "TYPE", "pubsub"],
                ["SET", "t:{u:dave}:deny:sid:s1", RESPArgument(String(until.timeIntervalSince1970)), "PXAT", untilMs],
                ["ZADD", RESPArgument(DenialIndex.key(prefix: "t:", for: "t:{u:dave}:deny:sid:s1", cluster: false)), untilMs, "t:{u:dave}:deny:sid:s1"],
                ["PEXPIREAT", RESPArgument(DenialIndex.key(prefix: "t:", for: "t:{u:dave}:deny:sid:s1", cluster: false)), untilMs],
            ])
            #expect(replies[0].int == 1)
            // B notices the drop and stops answering from its view...
            try await waitUntil("B notices the dropped subscription", .seconds(2)) {
                !i.view.isTrusted || i.view.resyncCount > resyncs
            }
            // ...so the revocation it never heard of is still enforced (asked from Redis).
            #expect(try await i.b.isRevoked(tokenID: "j1", sessionID: "s1", userID: "dave"))
            // After reconnecting it reloads, and then knows it locally.
            try await waitUntil("B resynchronises", .seconds(30)) { i.view.isTrusted && i.view.resyncCount > resyncs }
            #expect(i.view.isRevoked("t:{u:dave}:deny:sid:s1") == true)
            #expect(try await i.b.isRevoked(tokenID: "j1", sessionID: "s1", userID: "dave"))
            // And it is following the channel again.
            _ = try await i.a.revokeSession(id: "s1", userID: "dave", accessTTL: 900)
            try await i.a.deny(.tokenID("j7"), userID: "dave", until: until)
            try await seen(i, "revocation after the resync", user: "dave", jti: "j7", key: "t:{u:dave}:deny:jti:j7")
        }
    }

    /// Denials from before the index: the first load finds them by SCAN and completes the index;
    /// from then on a load reads only the index (a key it does not list is not looked for).
    @Test func theFirstLoadScansAndCompletesTheIndexLaterLoadsReadOnlyTheIndex() async throws {
        try await withRedisClient { client, _ in
            let until = Date().addingTimeInterval(900)
            let untilText = RESPArgument(String(until.timeIntervalSince1970))
            let untilMs = RESPArgument(Int((until.timeIntervalSince1970 * 1000).rounded(.up)))
            for user in ["u1", "u2", "u3"] {
                try await client.send(["SET", .init("x:{u:\(user)}:deny:sid:old"), untilText, "PXAT", untilMs])
            }
            // More than one backfill pipeline (512 each): the first meets NOSCRIPT, the next do not.
            _ = try await client.pipeline(
                (0..<1100).map { ["SET", .init("x:{u:bulk\($0)}:deny:sid:old"), untilText, "PXAT", untilMs] }, timeout: nil
            )
            let view = RevocationView(client: client, keyPrefix: "x:")
            #expect(try await view.load() == 1103)
            #expect(try await client.send(["ZCARD", .init(DenialIndex.serverKey(prefix: "x:"))]).int == 1103)
            #expect(try await client.send(["EXISTS", "x:denials:indexed"]).int == 1)
            for user in ["u1", "u2", "u3"] {
                let key = "x:{u:\(user)}:deny:sid:old"
                #expect(try await client.send(["ZSCORE", .init(DenialIndex.key(prefix: "x:", for: key, cluster: false)), .init(key)]).double != nil)
            }
            // Written around the scripts (as no Tessera does): not in the index, so not loaded.
            try await client.send(["SET", "x:{u:u4}:deny:sid:raw", untilText, "PXAT", untilMs])
            let store = RedisTokenStore(client: client, keyPrefix: "x:")
            try await store.deny(.tokenID("j"), userID: "u5", until: until)
            let again = RevocationView(client: client, keyPrefix: "x:")
            #expect(try await again.load() == 1104)
            #expect(again.holds("x:{u:u5}:deny:jti:j"))
            #expect(again.holds("x:{u:u1}:deny:sid:old"))
            #expect(!again.holds("x:{u:u4}:deny:sid:raw"))
        }
    }

    @Test func theDenialIndexHasATagForEverySlot() {
        #expect(DenialIndex.tags.count == RedisKeySlot.count)
        for (slot, tag) in DenialIndex.tags.enumerated() { #expect(RedisKeySlot.slot(of: "p{\(tag)}:denials") == slot) }
    }

    @Test func entriesLastUntilTheirTimeAndNoLonger() async throws {
        let clock = ManualClock(Date())
        try await withInstances(clock: clock) { i in
            try await i.a.deny(.tokenID("short"), userID: "erin", until: clock.now().addingTimeInterval(60))
            try await waitUntil("B's view has the denial", .seconds(30)) {
                i.view.isRevoked("t:{u:erin}:deny:jti:short") == true
            }
            clock.advance(by: 61)
            #expect(i.view.isRevoked("t:{u:erin}:deny:jti:short") != true)
            #expect(i.view.count == 1)
            i.view.sweep()
            #expect(i.view.count == 0)
        }
    }

    @Test func globCharactersInThePrefixAreEscaped() {
        #expect(RevocationView.globEscaped("app*[1]?\\:") == "app\\*\\[1\\]\\?\\\\:")
    }
}
