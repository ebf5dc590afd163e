import Foundation
import Tessera
import TesseraRESP
import TesseraTestSupport
import Testing

@testable import TesseraRedis

/// Revocations are acknowledged only once a replica has them (`WAIT`), so that a failover
/// cannot undo a logout that was answered.
@Suite("Revocations wait for replicas")
struct RevocationDurabilityTests {
    /// (connected replicas, replicas the control plane lists healthy, seen one recently) → required.
    @Test(arguments: [
        (1, nil, false, 1), (1, 0, false, 1),
        // A replica listed healthy but not connected (still syncing, or cut off by a switch).
        (0, 1, false, 1), (0, 1, true, 1),
        // Listed down by the control plane: alone, whatever was seen before.
        (0, 0, true, 0), (0, 0, false, 0),
        // One server, no control plane: the memory decides.
        (0, nil, true, 1), (0, nil, false, 0),
    ] as [(Int, Int?, Bool, Int)])
    func theAutomaticRuleWaitsForEveryReplicaAFailoverCouldPromote(_ connected: Int, _ expected: Int?, _ remembered: Bool, _ required: Int) {
        #expect(RevocationDurability.required(connected: connected, expected: expected, remembered: remembered) == required)
    }

    @Test func aPrimarySeenWithAReplicaKeepsNeedingOneForAWhile() {
        let history = ReplicaHistory()
        let start = ContinuousClock.now
        #expect(!history.recentlyHadReplica("a", connected: 0, memory: .seconds(60), now: start))
        #expect(history.recentlyHadReplica("a", connected: 1, memory: .seconds(60), now: start))
        // The replica just left (a demotion in progress): still remembered.
        #expect(history.recentlyHadReplica("a", connected: 0, memory: .seconds(60), now: start + .seconds(59)))
        #expect(!history.recentlyHadReplica("a", connected: 0, memory: .seconds(60), now: start + .seconds(61)))
        // A promoted replica has a replication ID of its own.
        #expect(!history.recentlyHadReplica("b", connected: 0, memory: .seconds(60), now: start + .seconds(1)))
    }

    @Test func infoReplicationIsRead() {
        let info: RESPValue = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nmaster_replid:abc123\r\n"
        #expect(RevocationDurability.replication(info).connectedReplicas == 2)
        #expect(RevocationDurability.replication(info).id == "abc123")
        #expect(RevocationDurability.replication("# Replication\r\nrole:master\r\n").connectedReplicas == 0)
        // Lines ended by \n alone, a field last without an end, and look-alike names.
        let bare: RESPValue = "master_replid2:000\nconnected_slaves_x:9\nmaster_replid:def\nconnected_slaves:1"
        #expect(RevocationDurability.replication(bare).id == "def")
        #expect(RevocationDurability.replication(bare).connectedReplicas == 1)
        #expect(RevocationDurability.replication(.integer(1)).connectedReplicas == 0)
    }

    @Test func aServerWithoutReplicasSkipsTheLeaseUntilOneShowsUp() {
        let durability = RevocationDurability(minimumReplicas: nil)
        #expect(durability.expectsNoReplica(expected: nil, isCluster: false))
        #expect(!durability.expectsNoReplica(expected: 1, isCluster: false))
        #expect(!durability.expectsNoReplica(expected: nil, isCluster: true))
        #expect(!RevocationDurability(minimumReplicas: 1).expectsNoReplica(expected: nil, isCluster: false))
        let info: RESPValue = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nmaster_replid:abc\r\n"
        #expect(durability.requiredReplicas(replicationInfo: info, expected: nil) == 1)
        // Once one was seen, revocations take the leased connection and its WAIT for a while.
        #expect(!durability.expectsNoReplica(expected: nil, isCluster: false))
        #expect(durability.expectsNoReplica(expected: nil, isCluster: false, now: .now + .seconds(61)))
    }

    /// A primary without replicas acknowledges logouts from a shared connection; a replica
    /// that connects later is waited for from the first revocation after it did.
    @Test func aReplicaThatConnectsLaterIsWaitedFor() async throws {
        try await withRedisServer { primary in
            try await withRedisClient(url: primary.url) { client in
                let clock = ManualClock()
                let store = RedisTokenStore(
                    client: client, keyPrefix: "d:", clock: clock, durability: RevocationDurability(minimumReplicas: nil, timeout: .milliseconds(300))
                )
                func session(_ id: String) async throws {
                    let now = clock.now()
                    try await store.createSession(
                        SessionRecord(
                            id: id, userID: "u", generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
                            idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                        )
                    )
                }
                try await session("alone")
                #expect(try await store.endSession(id: "alone", userID: "u", accessTTL: 900, tokenID: "j1", tokenExpiresAt: clock.now().addingTimeInterval(60)))
                #expect(store.durability.expectsNoReplica(expected: nil, isCluster: false))

                try await withSyncedReplica(of: primary) { replica in
                    // The store has not seen the replica yet; the logout still waits for it.
                    try await session("stalled")
                    replica.pause()
                    await #expect(throws: StoreError.self) {
                        try await store.endSession(id: "stalled", userID: "u", accessTTL: 900, tokenID: "j2", tokenExpiresAt: clock.now().addingTimeInterval(60))
                    }
                    #expect(!store.durability.expectsNoReplica(expected: nil, isCluster: false))
                    replica.resume()
                    // The client's retry (idempotent) succeeds once the replica has caught up.
                    try await waitUntil("the retried logout is acknowledged", .seconds(10)) {
                        (try? await store.endSession(id: "stalled", userID: "u", accessTTL: 900, tokenID: "j2", tokenExpiresAt: clock.now().addingTimeInterval(60))) != nil
                    }
                    #expect(try await store.isRevoked(tokenID: "j2", sessionID: "other", userID: "u"))
                    try await session("synced")
                    #expect(try await store.revokeSession(id: "synced", userID: "u", accessTTL: 900))
                    let onReplica = try await runRedisCLI(["-p", "\(replica.port)", "EXISTS", "d:{u:u}:deny:sid:synced"])
                    #expect(onReplica.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
                }
            }
        }
    }

    /// A rotation revokes only on re-use, so on a server without a known replica it asks for
    /// `INFO replication` only then: an ordinary rotation never waits, a detected re-use still
    /// waits for a replica the store had not seen.
    @Test func aReuseDetectedByARotationWaitsForAReplicaNotSeenBefore() async throws {
        try await withReplicatedStore { replica, store, clock in
            let now = clock.now()
            try await store.createSession(
                SessionRecord(
                    id: "r", userID: "u", generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
                    idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                )
            )
            #expect(store.durability.expectsNoReplica(expected: nil, isCluster: false))
            replica.pause()
            defer { replica.resume() }
            func rotation(presenting generation: Int64) -> RotationRequest {
                RotationRequest(userID: "u", sessionID: "r", presentedGeneration: generation, graceWindow: 0, idleTTL: 600, revokedAccessTTL: 900)
            }
            guard case .rotated = try await store.rotate(rotation(presenting: 1)) else {
                Issue.record("an ordinary rotation must not wait for the stalled replica")
                return
            }
            clock.advance(by: 5)
            // Generation 1 again, past the grace window: a re-use, which ends the session.
            await #expect(throws: StoreError.self) { try await store.rotate(rotation(presenting: 1)) }
            #expect(!store.durability.expectsNoReplica(expected: nil, isCluster: false))
        }
    }

    @Test func aLogoutIsAcknowledgedOnlyOnceTheReplicaHasIt() async throws {
        try await withReplicatedStore { replica, store, clock in
            func session(_ id: String) async throws -> SessionRecord {
                let now = clock.now()
                let record = SessionRecord(
                    id: id, userID: "u", generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
                    idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                )
                try await store.createSession(record)
                return record
            }
            _ = try await session("a")
            #expect(try await store.revokeSession(id: "a", userID: "u", accessTTL: 900))
            // The replica stalls: the logout lands on the primary but is not acknowledged.
            _ = try await session("b")
            _ = try await session("b2")
            replica.pause()
            await #expect(throws: StoreError.self) { try await store.revokeSession(id: "b", userID: "u", accessTTL: 900) }
            await #expect(throws: StoreError.self) { try await store.revokeAllSessions(userID: "u", keeping: nil, accessTTL: 900) }
            // Without the wait, the primary alone acknowledges.
            let primaryOnly = RedisTokenStore(client: store.client, keyPrefix: "d:", clock: clock, durability: .primaryOnly)
            _ = try await session("c")
            #expect(try await primaryOnly.revokeSession(id: "c", userID: "u", accessTTL: 900))
            replica.resume()
            // The retry is idempotent: the session is gone, the denial in force.
            _ = try await store.revokeSession(id: "b", userID: "u", accessTTL: 900)
            #expect(try await store.isRevoked(tokenID: "x", sessionID: "b", userID: "u"))
            _ = try await session("d")
            #expect(try await store.revokeSession(id: "d", userID: "u", accessTTL: 900))
        }
    }
}

/// A primary with a replica in sync, and a store on the primary whose revocations wait up to
/// 300 ms for replicas (by the automatic rule).
private func withReplicatedStore(_ body: (RedisServerProcess, RedisTokenStore, ManualClock) async throws -> Void) async throws {
    try await withRedisServer { primary in
        try await withSyncedReplica(of: primary) { replica in
            try await withRedisClient(url: primary.url) { client in
                let clock = ManualClock()
                let store = RedisTokenStore(
                    client: client, keyPrefix: "d:", clock: clock, durability: RevocationDurability(minimumReplicas: nil, timeout: .milliseconds(300))
                )
                try await body(replica, store, clock)
            }
        }
    }
}

private func withSyncedReplica(of primary: RedisServerProcess, _ body: (RedisServerProcess) async throws -> Void) async throws {
    try await withRedisServer(options: .init(extraConfiguration: ["replicaof 127.0.0.1 \(primary.port)"])) { replica in
        try await waitUntil("the replica is in sync", .seconds(30)) {
            let info = (try? await runRedisCLI(["-p", "\(replica.port)", "INFO", "replication"])) ?? ""
            return info.contains("master_link_status:up")
        }
        try await body(replica)
    }
}
