import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraSQLite
import TesseraTestSupport

/// Every token store implementation the conformance suite runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    case sqlite
    /// A real redis-server, started for the test on a free loopback port.
    case redis
    /// Redis with a running `RevocationView`: `isRevoked` answers locally while it is synced.
    case redisWithView

    var description: String { rawValue }
    var isPersistent: Bool { self != .memory }
    /// Whether expired entries stay until `purgeExpired()` (no native TTL).
    var needsSweep: Bool { self != .redis && self != .redisWithView }
}

/// A fresh, empty store of one kind with a clock the test controls.
struct StoreFixture: Sendable {
    let kind: StoreKind
    let store: any TokenStore
    let clock: ManualClock
    /// Opens the same backing data again, as a restarted process would.
    let reopen: @Sendable () async throws -> any TokenStore
}

func withStore(_ kind: StoreKind, _ body: (StoreFixture) async throws -> Void) async throws {
    let clock = ManualClock()
    switch kind {
    case .memory:
        let store = MemoryTokenStore(clock: clock)
        try await body(StoreFixture(kind: kind, store: store, clock: clock, reopen: { store }))
    case .sqlite:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tokens.db").path
        let store = try SQLiteDatabase(path: path).tokenStore(clock: clock)
        try await body(
            StoreFixture(kind: kind, store: store, clock: clock, reopen: { try SQLiteDatabase(path: path).tokenStore(clock: clock) })
        )
    case .redis:
        try await withRedisServer { server in
            let client = try RedisClient(url: server.url)
            let store = RedisTokenStore(client: client, keyPrefix: "test:", clock: clock)
            do {
                try await body(
                    StoreFixture(kind: kind, store: store, clock: clock, reopen: {
                        // A new client: what a restarted Tessera instance would open.
                        RedisTokenStore(client: try RedisClient(url: server.url), keyPrefix: "test:", clock: clock)
                    })
                )
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    case .redisWithView:
        try await withRedisServer { server in
            let client = try RedisClient(url: server.url)
            // A long lease: on a loaded machine heartbeats come back late, and the view would (rightly)
            // keep deferring to Redis instead of being exercised.
            let view = RevocationView(client: client, keyPrefix: "test:", clock: clock, heartbeatInterval: .milliseconds(100), lease: .seconds(30))
            let running = Task { try await view.run() }
            let store = RedisTokenStore(client: client, keyPrefix: "test:", clock: clock, revocations: view)
            do {
                try await waitUntil("the revocation view is synced", .seconds(30)) { view.isTrusted }
                try await body(
                    StoreFixture(kind: kind, store: store, clock: clock, reopen: {
                        RedisTokenStore(client: try RedisClient(url: server.url), keyPrefix: "test:", clock: clock)
                    })
                )
            } catch {
                running.cancel()
                _ = await running.result
                await client.shutdown()
                throw error
            }
            running.cancel()
            _ = await running.result
            await client.shutdown()
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Polls (never blocks a thread) until `condition` holds; throws after `limit`.
func waitUntil(_ what: String, _ limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(5))
    }
    throw TimedOut(description: "\(what): not within \(limit)")
}

extension StoreFixture {
    /// A session created now with the given lifetimes.
    func makeSession(
        user: String = "user-1", id: String = SecureRandom.identifier(), idle: TimeInterval = 3600, absolute: TimeInterval = 86400
    ) async throws -> SessionRecord {
        let now = clock.now()
        let session = SessionRecord(
            id: id, userID: user, generation: 1, rotatedAt: now, createdAt: now, lastUsedAt: now,
            idleExpiresAt: now.addingTimeInterval(idle), absoluteExpiresAt: now.addingTimeInterval(absolute),
            device: "laptop", userAgent: "tests", ipAddress: "127.0.0.1"
        )
        try await store.createSession(session)
        return session
    }

    func rotation(_ session: SessionRecord, generation: Int64, grace: TimeInterval = 10, idle: TimeInterval = 3600) -> RotationRequest {
        RotationRequest(userID: session.userID, sessionID: session.id, presentedGeneration: generation, graceWindow: grace, idleTTL: idle, revokedAccessTTL: 900)
    }
}
