import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraSQLite
import TesseraTestSupport
import Testing

/// Every token store implementation the conformance suite runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    case sqlite
    /// A real redis-server, started for the test on a free loopback port.
    case redis
    /// Redis with a running `RevocationView`: `isRevoked` answers locally while it is synced.
    case redisWithView
    /// A 3-primary, 3-replica Redis Cluster shared by the suite (its `.redisCluster` trait
    /// starts it); every test has a key prefix of its own.
    case redisCluster
    /// The cluster with a `RevocationView` subscribed on every primary.
    case redisClusterWithView

    /// The kinds that need no cluster: what suites without the `.redisCluster` trait run on.
    static let allCases: [StoreKind] = [.memory, .sqlite, .redis, .redisWithView]
    /// Every kind, the cluster included (for suites with the `.redisCluster` trait).
    static let everywhere: [StoreKind] = allCases + [.redisCluster, .redisClusterWithView]

    var description: String { rawValue }
    var isPersistent: Bool { self != .memory }
    var isRedis: Bool { self != .memory && self != .sqlite }
    /// Whether expired entries stay until `purgeExpired()` (no native TTL).
    var needsSweep: Bool { !isRedis }
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
    case .redisCluster, .redisClusterWithView:
        try await withClusterStore(kind, clock: clock, body)
    case .memory:
        let store = MemoryTokenStore(clock: clock)
        try await body(StoreFixture(kind: kind, store: store, clock: clock, reopen: { store }))
    case .sqlite:
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tokens.db").path
        let store = try await openSQLite(path).tokenStore(clock: clock)
        try await body(
            StoreFixture(kind: kind, store: store, clock: clock, reopen: { try await openSQLite(path).tokenStore(clock: clock) })
        )
    case .redis:
        try await withRedisClient { client, server in
            let store = RedisTokenStore(client: client, keyPrefix: "test:", clock: clock)
            try await body(
                StoreFixture(kind: kind, store: store, clock: clock, reopen: {
                    // A new client: what a restarted Tessera instance would open.
                    RedisTokenStore(client: try RedisClient(url: server.url), keyPrefix: "test:", clock: clock)
                })
            )
        }
    case .redisWithView:
        try await withRedisClient { client, server in
            // A long lease: the whole suite shares two cooperative threads, and a heartbeat answer
            // handled more than a second late would keep the view from ever trusting itself. The
            // lease (silent-stall detection) is not what these tests are about.
            let view = RevocationView(
                client: client, keyPrefix: "test:", clock: clock, heartbeatInterval: .milliseconds(100), lease: .seconds(30)
            )
            let running = Task { try await view.run() }
            let store = RedisTokenStore(client: client, keyPrefix: "test:", clock: clock, revocations: view)
            do {
                try await waitUntil("the revocation view is synced", .seconds(45)) { view.isTrusted }
                try await body(
                    StoreFixture(kind: kind, store: store, clock: clock, reopen: {
                        RedisTokenStore(client: try RedisClient(url: server.url), keyPrefix: "test:", clock: clock)
                    })
                )
            } catch {
                running.cancel()
                _ = await running.result
                throw error
            }
            running.cancel()
            _ = await running.result
        }
    }
}

/// The cluster the suite's `.redisCluster` trait started.
func withClusterStore(_ kind: StoreKind, clock: ManualClock, _ body: (StoreFixture) async throws -> Void) async throws {
    let cluster = try #require(RedisClusterScope.current, "a cluster store kind needs the .redisCluster suite trait")
    let prefix = "t\(UUID().uuidString.prefix(8)):"
    try await withClusterClient(url: cluster.url) { client in
        let reopen: @Sendable () async throws -> any TokenStore = {
            RedisTokenStore(client: try clusterClient(url: cluster.url), keyPrefix: prefix, clock: clock)
        }
        guard kind == .redisClusterWithView else {
            let store = RedisTokenStore(client: client, keyPrefix: prefix, clock: clock)
            try await body(StoreFixture(kind: kind, store: store, clock: clock, reopen: reopen))
            return
        }
        let view = RevocationView(client: client, keyPrefix: prefix, clock: clock, heartbeatInterval: .milliseconds(100), lease: .seconds(30))
        let running = Task { try await view.run() }
        defer { running.cancel() }
        let store = RedisTokenStore(client: client, keyPrefix: prefix, clock: clock, revocations: view)
        try await waitUntil("the revocation view is synced on every primary", .seconds(45)) { view.isTrusted }
        try await body(StoreFixture(kind: kind, store: store, clock: clock, reopen: reopen))
    }
}

/// A cluster client with a patient pool (the suite runs in parallel on few cores).
func clusterClient(url: String, commandTimeout: Duration = .seconds(20)) throws -> RedisClusterClient {
    guard case .cluster(var configuration, let seeds) = try RedisDeployment(url: url) else {
        throw TimedOut(description: "not a cluster URL: \(url)")
    }
    configuration.acquireTimeout = .seconds(60)
    configuration.commandTimeout = commandTimeout
    return RedisClusterClient(configuration: configuration, seeds: seeds)
}

func withClusterClient<T>(
    url: String, commandTimeout: Duration = .seconds(20), _ body: (RedisClusterClient) async throws -> T
) async throws -> T {
    let client = try clusterClient(url: url, commandTimeout: commandTimeout)
    return try await withCleanup({ await client.shutdown() }) { try await body(client) }
}

/// Starts one Redis Cluster for a whole suite and hands it to its tests (`RedisClusterScope.current`).
struct RedisClusterScope: SuiteTrait, TestScoping {
    @TaskLocal static var current: RedisClusterProcess?

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        if Self.current != nil { return try await function() }
        try await withRedisCluster { cluster in
            try await Self.$current.withValue(cluster) { try await function() }
        }
    }
}

extension Trait where Self == RedisClusterScope {
    /// Runs the suite with a 3-primary, 3-replica Redis Cluster started for it.
    static var redisCluster: Self { RedisClusterScope() }
}

/// Opens (and migrates) a database on a dispatch queue: opening is synchronous file I/O, and
/// the tests share two cooperative threads that must never be blocked.
func openSQLite(_ path: String) async throws -> SQLiteDatabase {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try SQLiteDatabase(path: path) }) }
    }
}

/// A fresh redis-server and a client of it for `body`; the client is shut down afterwards.
func withRedisClient<T>(_ body: (RedisClient, RedisServerProcess) async throws -> T) async throws -> T {
    try await withRedisServer { server in
        try await withRedisClient(url: server.url) { client in try await body(client, server) }
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
