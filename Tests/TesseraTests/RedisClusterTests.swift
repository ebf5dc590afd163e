import Foundation
import Synchronization
import Tessera
import TesseraRESP
import TesseraTestSupport
import Testing

@testable import TesseraRedis

/// Tessera on a real 3-primary, 3-replica Redis Cluster started by the suite: data spread over
/// every primary, slot migration under load, and a primary killed under load.
@Suite("Redis Cluster", .redisCluster, .serialized)
struct RedisClusterTests {
    final class Progress: Sendable {
        let operations = Atomic<Int>(0)
        let stopped = Atomic<Bool>(false)
        let failures = Mutex<[String]>([])
    }

    var cluster: RedisClusterProcess { RedisClusterScope.current! }

    @Test func everyKeyOfAUserAndEveryScriptStaysInOneSlot() throws {
        let store = RedisTokenStore(client: RedisClient(configuration: RedisConfiguration()), keyPrefix: "tessera:")
        let cache = RedisUserCache(client: RedisClient(configuration: RedisConfiguration()), keyPrefix: "tessera:")
        for user in ["alice", "42", "a{b}c", "}{", UUID().uuidString] {
            let keys = [
                store.sessionKey(user, "s1"), store.indexKey(user), store.denyKey(user, .tokenID("j")), store.denyKey(user, .session("s1")),
                store.oneTimeKey(user, "verify"), store.credentialsKey(user, "s1"), store.leaseKey(user, "s1", "github"), cache.userKey(user),
                // What revokeAllSessions derives inside its script from the user prefix.
                store.userPrefix(user) + "s:s2", store.userPrefix(user) + "cred:s2", store.userPrefix(user) + "deny:sid:s2",
                // The denial index set the deny scripts add to, on a cluster.
                DenialIndex.key(prefix: "tessera:", for: store.userPrefix(user), cluster: true),
            ]
            #expect(Set(keys.map { RedisKeySlot.slot(of: $0) }).count == 1, "keys of user \(user) span slots")
        }
    }

    @Test func keysOfManyUsersLandOnEveryPrimaryAndStatisticsSeeThemAll() async throws {
        let clock = ManualClock()
        try await withClusterClient(url: cluster.url) { client in
            let store = RedisTokenStore(client: client, keyPrefix: "spread:", clock: clock)
            for index in 0..<40 {
                let now = clock.now()
                try await store.createSession(SessionRecord(
                    id: "s\(index)", userID: "user-\(index)", generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
                    idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                ))
            }
            try await store.deny(.tokenID("j1"), userID: "user-3", until: clock.now().addingTimeInterval(60))
            let primaries = try await client.primaries()
            #expect(primaries.count == 3)
            for primary in primaries {
                let reply = try await primary.send(["SCAN", "0", "MATCH", "spread:*", "COUNT", "10000"])
                #expect((reply.array?[1].array?.count ?? 0) > 0, "no key on \(primary.configuration)")
            }
            let statistics = try await store.statistics()
            #expect(statistics.liveSessions == 40)
            #expect(statistics.deniedTokens == 1)
            // The denial is listed in its slot's index set, which the view reloads from.
            let denyKey = "spread:{u:user-3}:deny:jti:j1"
            let index = DenialIndex.key(prefix: "spread:", for: denyKey, cluster: true)
            #expect(try await client.send(["ZRANGE", .init(index), "0", "-1"]).array?.compactMap(\.string) == [denyKey])
            let view = RevocationView(client: client, keyPrefix: "spread:")
            #expect(try await view.load() == 1)
            #expect(try await client.send(["EXISTS", "spread:denials:indexed:slots"]).int == 1)
            #expect(try await view.loadIndex() == 1 && view.holds(denyKey))
            // The local slot computation agrees with the cluster's.
            for key in ["spread:{u:user-1}:sessions", "foo", "hello", "{user1000}.following"] {
                let slot = try await client.send(["CLUSTER", "KEYSLOT", RESPArgument(key)])
                #expect(slot.int == RedisKeySlot.slot(of: key))
            }
        }
    }

    @Test func aSlotMigratedUnderLoadCausesNoError() async throws {
        let clock = ManualClock()
        try await withClusterClient(url: cluster.url) { client in
            let store = RedisTokenStore(client: client, keyPrefix: "mig:", clock: clock)
            let user = "migrating"
            let slot = RedisKeySlot.slot(of: store.indexKey(user))
            _ = try await client.primaries()
            let map = try #require(client.slotMap)
            let source = try #require(map.primary(forSlot: slot))
            let target = try #require(map.primaries.first { $0 != source })
            let sourceID = try await cluster.cli(["-p", "\(source.port)", "CLUSTER", "MYID"]).trimmingCharacters(in: .whitespacesAndNewlines)
            let targetID = try await cluster.cli(["-p", "\(target.port)", "CLUSTER", "MYID"]).trimmingCharacters(in: .whitespacesAndNewlines)

            let progress = Progress()
            let load = Task {
                var sessions: [SessionRecord] = []
                while !progress.stopped.load(ordering: .relaxed) {
                    do {
                        let now = clock.now()
                        let session = SessionRecord(
                            id: UUID().uuidString, userID: user, generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
                            idleExpiresAt: now.addingTimeInterval(600), absoluteExpiresAt: now.addingTimeInterval(3600)
                        )
                        try await store.createSession(session)
                        sessions.append(session)
                        _ = try await store.rotate(RotationRequest(
                            userID: user, sessionID: session.id, presentedGeneration: 1, graceWindow: 10, idleTTL: 600, revokedAccessTTL: 900
                        ))
                        if sessions.count % 3 == 0 {
                            let ended = sessions.removeFirst()
                            #expect(try await store.revokeSession(id: ended.id, userID: user, accessTTL: 900))
                            #expect(try await store.isRevoked(tokenID: "none", sessionID: ended.id, userID: user))
                        }
                        #expect(try await store.sessions(userID: user).count == sessions.count)
                        // A single-key read: answered with ASK while its key has moved and the slot has not.
                        #expect(try await store.session(id: session.id, userID: user) != nil)
                        progress.operations.add(1, ordering: .relaxed)
                    } catch {
                        progress.failures.withLock { $0.append("\(error)") }
                    }
                }
                return sessions.count
            }
            try await waitUntil("some operations before the migration", .seconds(30)) { progress.operations.load(ordering: .relaxed) > 20 }
            // The documented migration steps, slowed down so that requests meet each phase.
            _ = try await cluster.cli(["-p", "\(target.port)", "CLUSTER", "SETSLOT", "\(slot)", "IMPORTING", sourceID])
            _ = try await cluster.cli(["-p", "\(source.port)", "CLUSTER", "SETSLOT", "\(slot)", "MIGRATING", targetID])
            try await Task.sleep(for: .milliseconds(300))
            while true {
                let keys = try await cluster.cli(["-p", "\(source.port)", "CLUSTER", "GETKEYSINSLOT", "\(slot)", "5"])
                    .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
                if keys.isEmpty { break }
                _ = try await cluster.cli(["-p", "\(source.port)", "MIGRATE", "127.0.0.1", "\(target.port)", "", "0", "5000", "KEYS"] + keys)
                try await Task.sleep(for: .milliseconds(100))
            }
            // Every key moved, slot not yet reassigned: reads are answered with ASK, multi-key
            // scripts with TRYAGAIN (retried) until the slot is reassigned, as in a real resharding.
            try await waitUntil("a read redirected with ASK", .seconds(30)) { client.redirections.ask > 0 }
            try await Task.sleep(for: .milliseconds(300))
            for node in [target, source] {
                _ = try await cluster.cli(["-p", "\(node.port)", "CLUSTER", "SETSLOT", "\(slot)", "NODE", targetID])
            }
            for node in map.primaries where node != target && node != source {
                _ = try await cluster.cli(["-p", "\(node.port)", "CLUSTER", "SETSLOT", "\(slot)", "NODE", targetID])
            }
            let afterMove = progress.operations.load(ordering: .relaxed)
            try await waitUntil("operations after the move (MOVED)", .seconds(30)) { progress.operations.load(ordering: .relaxed) > afterMove + 20 }
            progress.stopped.store(true, ordering: .relaxed)
            let live = try await load.value
            #expect(progress.failures.withLock { $0 } == [])
            #expect(client.slotMap?.primary(forSlot: slot) == target)
            #expect(client.redirections.moved > 0)
            #expect(try await store.sessions(userID: user).count == live)
        }
    }
}
