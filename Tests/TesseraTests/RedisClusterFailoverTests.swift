import Foundation
import Synchronization
import Tessera
import TesseraRESP
import TesseraTestSupport
import Testing

@testable import TesseraRedis

/// `kill -9` of a Redis Cluster primary under a load of logins and logouts: the replica takes
/// over, the same client recovers without a restart, and every logout that was acknowledged
/// (after `WAIT` for its replica) is still in force afterwards.
@Suite("Redis Cluster failover", .redisCluster)
struct RedisClusterFailoverTests {
    @Test func aKilledPrimaryIsReplacedAndNoAcknowledgedRevocationIsLost() async throws {
        let cluster = try #require(RedisClusterScope.current)
        // Tessera's own command timeout: requests during the failover fail rather than wait long.
        try await withClusterClient(url: cluster.url, commandTimeout: .seconds(2)) { client in
            // With the local revocation view, subscribed on every primary: it must follow the new
            // primary and vouch again for a denylist that holds every acknowledged logout.
            let view = RevocationView(client: client, keyPrefix: "fo:", heartbeatInterval: .milliseconds(100), lease: .seconds(30))
            let following = Task { try await view.run() }
            defer { following.cancel() }
            try await waitUntil("the revocation view is synced on every primary", .seconds(45)) { view.isTrusted }
            let store = RedisTokenStore(client: client, keyPrefix: "fo:", revocations: view, usesServerTime: false, durability: .automatic)
            let users = (0..<24).map { "user-\($0)" }
            _ = try await client.primaries()
            let map = try #require(client.slotMap)
            let victim = try #require(map.primary(forSlot: RedisKeySlot.slot(of: store.indexKey(users[0]))))
            let victimUsers = users.filter { map.primary(forSlot: RedisKeySlot.slot(of: store.indexKey($0))) == victim }
            let victimProcess = try #require(cluster.nodes.first { $0.port == victim.port })

            let load = FailoverLoad()
            let running = Task { await load.run(store, users: users) }
            // Logouts acknowledged before the kill are what the test is about: wait for some
            // (a fixed 2 s saw none on a machine loaded by the whole suite).
            try await Task.sleep(for: .seconds(2))
            try await waitUntil("logouts acknowledged before the kill", .seconds(60)) { load.acknowledged.withLock { $0.count } >= 5 }
            let killedAt = ContinuousClock.now
            let acknowledgedBefore = load.acknowledged.withLock { $0.count }
            await victimProcess.kill()
            try await waitUntil("a request on the failed primary's slots succeeds", .seconds(60)) {
                load.recovery(after: killedAt, users: victimUsers) != nil
            }
            try await Task.sleep(for: .seconds(1))
            let stoppedAt = ContinuousClock.now
            load.stop()
            await running.value
            let recovery = try #require(load.recovery(after: killedAt, users: victimUsers))

            try await waitUntil("the revocation view is synced again", .seconds(45)) { view.isTrusted }
            let viewMissing = load.acknowledged.withLock { $0 }.filter { entry in
                view.isRevoked(store.denyKey(entry.user, .session(entry.session))) != true
            }.count
            #expect(viewMissing == 0)
            // Every acknowledged logout, read from Redis by a fresh client (no local view).
            let lost = try await withClusterClient(url: cluster.url) { reader in
                try await load.lostRevocations(RedisTokenStore(client: reader, keyPrefix: "fo:", usesServerTime: false))
            }
            print(
                "cluster failover: acknowledged logouts \(load.acknowledged.withLock { $0.count }) (\(acknowledgedBefore) before the kill), "
                    + "lost \(lost); kill -9: \(load.failures(from: killedAt, to: stoppedAt)) failed requests, first success on the failed slots after \(recovery.milliseconds) ms, "
                    + "longest time without any success \(load.longestGap(from: killedAt, to: stoppedAt)) ms"
            )
            #expect(lost == 0)
            #expect(acknowledgedBefore > 0)
            // A replica serves the dead primary's slots now, and the same client found it.
            #expect(client.slotMap?.primary(forSlot: RedisKeySlot.slot(of: store.indexKey(victimUsers[0]))) != victim)
        }
    }
}
