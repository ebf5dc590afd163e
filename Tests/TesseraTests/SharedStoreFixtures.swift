import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import TesseraTestSupport

/// The implementations of the stores that exist in memory and on Redis only (rate limits,
/// user cache): the embedded deployments use the memory ones.
enum SharedStoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case memory
    case redis

    var description: String { rawValue }
}

struct SharedStoreFixture<Store: Sendable>: Sendable {
    let kind: SharedStoreKind
    let store: Store
    let clock: ManualClock
    /// A separate client to the same Redis (nil for memory), to read raw keys.
    let raw: RedisClient?
    let keyPrefix = "test:"
}

/// A fresh store of one kind; `memory` and `redis` build it from the clock (and client, prefix).
func withSharedStore<Store: Sendable>(
    _ kind: SharedStoreKind,
    memory: (ManualClock) -> Store,
    redis: (RedisClient, String, ManualClock) -> Store,
    _ body: (SharedStoreFixture<Store>) async throws -> Void
) async throws {
    // Fractional start: the GCRA arithmetic must agree to the last bit, not only on round numbers.
    let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000.123_456))
    switch kind {
    case .memory:
        try await body(SharedStoreFixture(kind: kind, store: memory(clock), clock: clock, raw: nil))
    case .redis:
        try await withRedisClient { client, server in
            try await withRedisClient(url: server.url) { raw in
                try await body(SharedStoreFixture(kind: kind, store: redis(client, "test:", clock), clock: clock, raw: raw))
            }
        }
    }
}

/// A client of an already running server for `body`, shut down afterwards. Its pool waits
/// longer than the default for a free connection: the whole suite runs in parallel on few cores.
func withRedisClient<T>(url: String, _ body: (RedisClient) async throws -> T) async throws -> T {
    var configuration = try RedisConfiguration(url: url)
    configuration.acquireTimeout = .seconds(60)
    let client = RedisClient(configuration: configuration)
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch {
        await client.shutdown()
        throw error
    }
}
