import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport
import Testing

/// Two instances' per-instance user caches on one real redis-server, each fed by its own
/// revocation view: cached reads cost no Redis command, an invalidation on A reaches B, and
/// a dropped subscription sends B back to Redis.
@Suite("Per-instance user cache over the revocation channel")
struct SubscribedUserCacheTests {
    struct Instance {
        let cache: SubscribedUserCache
        let view: RevocationView
        let running: Task<Void, any Error>
    }

    func instance(_ client: RedisClient) -> Instance {
        // A long lease, as in the other view tests: a loaded test process answers heartbeats late.
        let view = RevocationView(client: client, keyPrefix: "t:", heartbeatInterval: .milliseconds(100), lease: .seconds(30))
        let shared = RedisUserCache(client: client, keyPrefix: "t:", invalidationChannel: view.channel)
        return Instance(cache: SubscribedUserCache(shared: shared, view: view), view: view, running: Task { try await view.run() })
    }

    func hgetallCalls(_ admin: RedisClient) async throws -> Int {
        let info = try await admin.send(["INFO", "commandstats"]).string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_hgetall:calls=") }) else { return 0 }
        return Int(line.dropFirst("cmdstat_hgetall:calls=".count).prefix { $0.isNumber }) ?? 0
    }

    @Test func cachedReadsStayLocalAndAnInvalidationOnAReachesB() async throws {
        try await withRedisClient { client, server in
            try await withRedisClient(url: server.url) { clientB in
                let a = instance(client)
                let b = instance(clientB)
                defer {
                    a.running.cancel()
                    b.running.cancel()
                }
                try await waitUntil("both views are synced", .seconds(45)) { a.view.isTrusted && b.view.isTrusted }
                let user = User(id: "u1", email: "cached@example.com", passwordHash: "x", createdAt: Date(timeIntervalSince1970: 1_000_000))
                try await a.cache.store(user, ttl: 3600)

                #expect(try await b.cache.user(id: "u1")?.email == "cached@example.com")
                let before = try await hgetallCalls(client)
                for _ in 0..<20 { #expect(try await b.cache.user(id: "u1") != nil) }
                #expect(try await hgetallCalls(client) == before, "cached reads on B must not touch Redis")

                try await a.cache.invalidate(userID: "u1")
                try await waitUntil("B drops its copy", .seconds(2)) { try await b.cache.user(id: "u1") == nil }
                var changed = user
                changed.mfaEnabled = true
                try await a.cache.store(changed, ttl: 3600)
                #expect(try await b.cache.user(id: "u1")?.mfaEnabled == true)
            }
        }
    }

    @Test func aDroppedSubscriptionSendsReadsBackToRedis() async throws {
        try await withRedisClient { client, server in
            try await withRedisClient(url: server.url) { admin in
                let b = instance(client)
                defer { b.running.cancel() }
                try await waitUntil("the view is synced", .seconds(45)) { b.view.isTrusted }
                let user = User(id: "u2", email: "dropped@example.com", passwordHash: "x", createdAt: Date(timeIntervalSince1970: 1_000_000))
                try await b.cache.store(user, ttl: 3600)
                #expect(try await b.cache.user(id: "u2") != nil)
                let resyncs = b.view.resyncCount
                // Kill the subscription and, in the same pipeline, delete the shared entry with no
                // message: the change B would have missed.
                _ = try await admin.pipeline([["CLIENT", "KILL", "TYPE", "pubsub"], ["DEL", "t:{u:u2}:user"]])
                try await waitUntil("B notices", .seconds(2)) { !b.view.isTrusted || b.view.resyncCount > resyncs }
                #expect(try await b.cache.user(id: "u2") == nil, "untrusted: the read goes to Redis, which no longer has it")
                try await b.cache.store(user, ttl: 3600)
                try await waitUntil("B resynchronises", .seconds(30)) { b.view.isTrusted && b.view.resyncCount > resyncs }
                // What B held before the drop is void after the resync; the fresh read is cached again.
                #expect(try await b.cache.user(id: "u2")?.email == "dropped@example.com")
            }
        }
    }
}
