import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport
import Testing

/// A real redis-server stopped with SIGSTOP: commands sent meanwhile run when it continues.
@Suite("Rotation behind a stalled Redis")
struct StalledRedisTests {
    @Test func aRetryOfARefreshThatRanLateIsAnsweredInsideTheGraceWindow() async throws {
        try await withRedisServer { server in
            var configuration = try RedisConfiguration(url: server.url)
            configuration.commandTimeout = .seconds(1)
            configuration.acquireTimeout = .seconds(30)
            let client = RedisClient(configuration: configuration)
            defer { Task { await client.shutdown() } }
            // The system clock: the store dates rotations by Redis's clock when they run.
            let store = RedisTokenStore(client: client, keyPrefix: "stall:")
            #expect(store.usesServerTime)
            let now = Date()
            let session = SessionRecord(
                id: "s1", userID: "alice", rotatedAt: now, createdAt: now, lastUsedAt: now,
                idleExpiresAt: now.addingTimeInterval(3600), absoluteExpiresAt: now.addingTimeInterval(7200)
            )
            try await store.createSession(session)
            try await store.createSession(SessionRecord(
                id: "warm", userID: "alice", rotatedAt: now, createdAt: now, lastUsedAt: now,
                idleExpiresAt: now.addingTimeInterval(3600), absoluteExpiresAt: now.addingTimeInterval(7200)
            ))
            let request = { (generation: Int64) in
                RotationRequest(userID: "alice", sessionID: "s1", presentedGeneration: generation, graceWindow: 6, idleTTL: 3600, revokedAccessTTL: 900)
            }
            // Loads the script first, so the stalled call is the rotation itself.
            _ = try await store.rotate(.init(userID: "alice", sessionID: "warm", presentedGeneration: 1, graceWindow: 6, idleTTL: 3600, revokedAccessTTL: 900))

            server.pause()
            // The client gives up after its timeout; the script stays queued in the server.
            await #expect(throws: StoreError.self) { try await store.rotate(request(1)) }
            // Longer than the grace window, so that dating the rotation by the request would refuse it.
            try await Task.sleep(for: .seconds(10))
            server.resume()

            let checker = try RedisClient(url: server.url)
            defer { Task { await checker.shutdown() } }
            try await waitUntil("the queued rotation ran", .seconds(30)) {
                try await checker.send(["HGET", "stall:{u:alice}:s:s1", "g"]).string == "2"
            }
            // The client's retry of generation 1: 10 s after it was sent, but just after the
            // rotation took effect, so inside the 6 s grace window (wide enough for a loaded
            // machine between the rotation and the retry).
            let retry = try await store.rotate(request(1))
            guard case .reissued(let current) = retry else {
                Issue.record("the retry was answered \(retry), not reissued")
                return
            }
            #expect(current.generation == 2)
            #expect(try await store.session(id: "s1", userID: "alice") != nil)
        }
    }
}
