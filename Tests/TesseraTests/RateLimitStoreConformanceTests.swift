import Foundation
import Tessera
import TesseraRESP
import TesseraRedis
import Testing

func withRateLimitStore(_ kind: SharedStoreKind, _ body: (SharedStoreFixture<any RateLimitStore>) async throws -> Void) async throws {
    try await withSharedStore(
        kind, memory: { MemoryRateLimitStore(clock: $0) }, redis: { RedisRateLimitStore(client: $0, keyPrefix: $1, clock: $2) }, body
    )
}

/// One suite, every rate-limit store: the same decisions to the last bit.
@Suite("RateLimitStore conformance")
struct RateLimitStoreConformanceTests {
    @Test(arguments: SharedStoreKind.allCases)
    func aBurstIsAdmittedThenRefusedExactlyAsGCRADecides(kind: SharedStoreKind) async throws {
        try await withRateLimitStore(kind) { f in
            #expect(f.store.backendName == kind.rawValue)
            // 3 per 7 s: an emission interval (7/3 s) that is not exact in binary.
            let limit = RateLimit(count: 3, period: 7)
            var arrival: Date?
            var decisions: [RateLimitDecision] = []
            for step in [0, 0, 0, 0, 0.5, 1.9, 0.5, 0, 2.4, 0, 0, 7, 0, 0, 0, 0] as [TimeInterval] {
                f.clock.advance(by: step)
                let (expected, next) = GCRA.decide(storedArrival: arrival, now: f.clock.now(), limit: limit)
                if let next { arrival = next }
                let decision = try await f.store.acquire("login:ip", limit: limit)
                #expect(decision == expected, "after \(decisions.count) requests")
                decisions.append(decision)
            }
            // The whole burst of 3 is admitted, although 3 × 7/3 rounds a hair above 7.
            #expect(decisions.prefix(3).allSatisfy { $0.allowed })
            #expect(!decisions[3].allowed)
            #expect(decisions[3].retryAfter > 0 && decisions[3].retryAfter <= limit.emissionInterval + GCRA.tolerance)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func aRefusedKeyRecoversAfterRetryAfterAndKeysAreIndependent(kind: SharedStoreKind) async throws {
        try await withRateLimitStore(kind) { f in
            let limit = RateLimit(count: 2, period: 60)
            #expect(try await f.store.acquire("a", limit: limit).allowed)
            #expect(try await f.store.acquire("a", limit: limit).allowed)
            let refused = try await f.store.acquire("a", limit: limit)
            #expect(!refused.allowed)
            #expect(refused.retryAfter == 30)
            #expect(try await f.store.acquire("b", limit: limit).allowed)
            f.clock.advance(by: 29)
            #expect(try await !f.store.acquire("a", limit: limit).allowed)
            f.clock.advance(by: 1)
            #expect(try await f.store.acquire("a", limit: limit).allowed)
            // After a whole period of quiet the full burst is available again.
            f.clock.advance(by: 60)
            #expect(try await f.store.acquire("a", limit: limit).allowed)
            #expect(try await f.store.acquire("a", limit: limit).allowed)
            #expect(try await !f.store.acquire("a", limit: limit).allowed)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func concurrentRequestsNeverExceedTheBudget(kind: SharedStoreKind) async throws {
        try await withRateLimitStore(kind) { f in
            let store = f.store
            let limit = RateLimit(count: 10, period: 60)
            let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<32 { group.addTask { try await store.acquire("shared", limit: limit).allowed } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(admitted == 10)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func failuresAreCountedExpireAndClear(kind: SharedStoreKind) async throws {
        try await withRateLimitStore(kind) { f in
            #expect(try await f.store.failures("lock:a") == (0, 0))
            #expect(try await f.store.recordFailure("lock:a", window: 60) == 1)
            #expect(try await f.store.recordFailure("lock:a", window: 60) == 2)
            #expect(try await f.store.recordFailure("lock:b", window: 60) == 1)
            #expect(try await f.store.failures("lock:a") == (2, 60))
            f.clock.advance(by: 30)
            #expect(try await f.store.failures("lock:a") == (2, 30))
            // Each failure pushes the window forward.
            #expect(try await f.store.recordFailure("lock:a", window: 60) == 3)
            f.clock.advance(by: 45)
            #expect(try await f.store.failures("lock:a") == (3, 15))
            #expect(try await f.store.failures("lock:b") == (0, 0))
            f.clock.advance(by: 15)
            #expect(try await f.store.failures("lock:a") == (0, 0))
            #expect(try await f.store.recordFailure("lock:a", window: 60) == 1)
            try await f.store.clearFailures("lock:a")
            try await f.store.clearFailures("never-failed")
            #expect(try await f.store.failures("lock:a") == (0, 0))
            // Failures and rate limits of the same name do not share state.
            #expect(try await f.store.acquire("lock:a", limit: RateLimit(count: 1, period: 60)).allowed)
            #expect(try await f.store.recordFailure("lock:a", window: 60) == 1)
        }
    }

    @Test(arguments: SharedStoreKind.allCases)
    func aClaimIsGrantedOnceUntilItExpires(kind: SharedStoreKind) async throws {
        try await withRateLimitStore(kind) { f in
            let store = f.store
            let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<32 { group.addTask { try await store.claimOnce("totp:alice:123456", ttl: 90) } }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(granted == 1)
            #expect(try await store.claimOnce("totp:alice:654321", ttl: 90))
            f.clock.advance(by: 89)
            #expect(try await !store.claimOnce("totp:alice:123456", ttl: 90))
            f.clock.advance(by: 1)
            #expect(try await store.claimOnce("totp:alice:123456", ttl: 90))
        }
    }

    @Test func redisKeysCarryTTLs() async throws {
        try await withRateLimitStore(.redis) { f in
            let raw = try #require(f.raw)
            _ = try await f.store.acquire("k", limit: RateLimit(count: 5, period: 10))
            _ = try await f.store.recordFailure("k", window: 60)
            _ = try await f.store.claimOnce("k", ttl: 90)
            let keys = try await raw.send(["KEYS", "*"]).array?.compactMap(\.string).sorted()
            #expect(keys == ["test:fail:k", "test:gcra:k", "test:once:k"])
            let now = f.clock.now().timeIntervalSince1970
            let expected = ["test:gcra:k": now + 2, "test:fail:k": now + 60, "test:once:k": now + 90]
            for (key, expiry) in expected {
                let actual = try await raw.send(["PEXPIRETIME", .init(key)]).int
                #expect(actual == Int((expiry * 1000).rounded(.up)), "\(key)")
            }
        }
    }
}
