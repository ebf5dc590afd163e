import Foundation
import Synchronization
import Testing

@testable import Tessera

/// The limits that apply to one request are asked for at once: on Redis each is a round trip,
/// and a refresh or a login must not wait for them one after another.
@Suite struct RateLimiterRoundTripTests {
    /// A memory store whose every call waits until `expected` calls are in flight together (or
    /// 2 s pass), and records the most seen at once.
    final class GatedStore: RateLimitStore {
        let base: MemoryRateLimitStore
        let expected: Int
        private let inFlight = Mutex((now: 0, most: 0))
        var backendName: String { "gated" }
        var most: Int { inFlight.withLock { $0.most } }

        init(expected: Int) {
            base = MemoryRateLimitStore(clock: ManualClock(Date()))
            self.expected = expected
        }

        private func gate<T>(_ body: () async throws -> T) async throws -> T {
            inFlight.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            let deadline = ContinuousClock.now + .seconds(2)
            while inFlight.withLock({ $0.most }) < expected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
            defer { inFlight.withLock { $0.now -= 1 } }
            return try await body()
        }

        func acquire(_ key: String, limit: RateLimit) async throws -> RateLimitDecision { try await gate { try await base.acquire(key, limit: limit) } }
        func recordFailure(_ key: String, window: TimeInterval) async throws -> Int { try await base.recordFailure(key, window: window) }
        func failures(_ key: String) async throws -> (count: Int, resetsIn: TimeInterval) { try await gate { try await base.failures(key) } }
        func clearFailures(_ key: String) async throws { try await base.clearFailures(key) }
        func claimOnce(_ key: String, ttl: TimeInterval) async throws -> Bool { try await base.claimOnce(key, ttl: ttl) }
    }

    @Test func theIPAndAccountLimitsOfARefreshAreAskedTogether() async throws {
        let store = GatedStore(expected: 2)
        let limiter = RateLimiter(policy: RateLimitPolicy(), store: store)
        try await limiter.check(.refresh, ip: "192.0.2.1", account: "user-1")
        #expect(store.most == 2)
    }

    @Test func everyLoginCheckIsAskedTogether() async throws {
        let store = GatedStore(expected: 4)
        let limiter = RateLimiter(policy: RateLimitPolicy(), store: store)
        try await limiter.checkLogin(account: "ada@example.com", ip: "192.0.2.1")
        #expect(store.most == 4)
    }

    @Test func refusalsKeepTheirOrder() async throws {
        // Both limits exhausted: the per-IP refusal is the one reported, as before.
        var policy = RateLimitPolicy.unlimited
        policy.perIP[.refresh] = RateLimit(count: 1, period: 3600)
        policy.perAccount[.refresh] = RateLimit(count: 1, period: 60)
        let limiter = RateLimiter(policy: policy, store: MemoryRateLimitStore(clock: ManualClock(Date())))
        try await limiter.check(.refresh, ip: "192.0.2.1", account: "user-1")
        await #expect(throws: AuthError.rateLimited(retryAfter: 3600)) {
            try await limiter.check(.refresh, ip: "192.0.2.1", account: "user-1")
        }
    }
}
